"""This project's MCP server as users run it: the `kubernetes-agent-sandbox serve` command, HTTP on loopback."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

CLI = Path(sys.executable).with_name("kubernetes-agent-sandbox")
ADAPTER_OUTPUT_BYTES = 2 * 1024 * 1024
"""The output cap deepagents needs (a 500 KiB file page, base64-encoded, fits), as the adapters' local default."""
TRANSFER_BYTES = 32 * 1024 * 1024
"""The standard suite writes a 10.5 MB text file in one call, just over the server's 10 MiB default."""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextlib.contextmanager
def serve_http(state_dir: str, *extra: str) -> Iterator[str]:
    """Start the server on a free loopback port; yields its MCP endpoint URL and stops it afterwards."""
    port = _free_port()
    argv = [
        str(CLI),
        "serve",
        "--transport=http",
        f"--port={port}",
        "--allow-unauthenticated",
        "--principal=adapter-tests",
        f"--state-dir={state_dir}",
        f"--max-output-bytes={ADAPTER_OUTPUT_BYTES}",
        f"--max-transfer-bytes={TRANSFER_BYTES}",
        "--log-level=WARNING",
        *extra,
    ]
    process = subprocess.Popen(argv, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the MCP server did not start (exit code {process.poll()})")
            time.sleep(0.1)
        yield f"http://127.0.0.1:{port}/mcp"
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
