"""This project's MCP server as users run it, `kubernetes-agent-sandbox serve --transport http`, in a child
process on loopback: for tests, benchmarks and users' own CI."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import httpx

from ..providers.local.state import discard_state


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@dataclass(frozen=True)
class ServedServer:
    url: str
    """The base URL, such as http://127.0.0.1:PORT; the MCP endpoint is `mcp_url`."""
    pid: int

    @property
    def mcp_url(self) -> str:
        return f"{self.url}/mcp"


@contextlib.contextmanager
def serve_http(
    *settings: str,
    state_dir: str | None = None,
    log: IO[bytes] | None = None,
    startup_timeout: float = 30.0,
) -> Iterator[ServedServer]:
    """Run the server with `settings` (serve flags) until the block ends, once it answers `/readyz`.

    Without `state_dir`, the local provider's sandboxes live in a temporary folder removed afterwards.
    """
    with contextlib.ExitStack() as cleanup:
        if state_dir is None:
            state_dir = tempfile.mkdtemp(prefix="kas-served-", dir="/tmp")
            cleanup.callback(discard_state, Path(state_dir))
        port = free_port()
        argv = [sys.executable, "-m", "langchain_kubernetes_agent_sandbox", "serve", "--transport=http"]
        argv += [f"--port={port}", f"--state-dir={state_dir}", *settings]
        process = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stderr=log, env={**os.environ, "PYTHONUNBUFFERED": "1"}
        )
        cleanup.callback(_stop, process)
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + startup_timeout
        while True:
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                    break
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the MCP server did not become ready (exit code {process.poll()}): {argv}")
            time.sleep(0.05)
        yield ServedServer(url, process.pid)


def _stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
