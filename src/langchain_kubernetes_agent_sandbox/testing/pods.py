"""Imitation pods: one runtime process each, started from a command template and probed like a kubelet would."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import signal
import socket
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from ..providers.kubernetes.config import AGENT_PORT
from ..providers.local.state import discard_state

DEFAULT_RUNTIME_COMMAND = (
    sys.executable,
    "-m",
    "langchain_kubernetes_agent_sandbox.testing.runtime",
    "--port",
    "{port}",
    "--state-dir",
    "{state_dir}",
    "--forward",
    "{forward}",
    "--keep-files",
)
"""`{port}`, `{state_dir}` and `{forward}` are filled in per pod; any server of the legacy runtime protocol can be
dropped in (without `{forward}`, its pod has no port but the runtime's). `--keep-files` stands for the template's volume
at /app: a pod of a suspended Sandbox started again with the same name finds its files."""
RUNTIME_PORT = 8888
"""The pod port of the runtime, as in the reference template."""
PREVIEW_PORTS = (8000, 8001)
"""Pod ports an imitation pod relays into its sandbox for previews of servers started there (a real pod network
reaches every port of a pod; here each relayed port is a listener of the runtime's): serve on one of these."""
FORWARDED_PORTS = (AGENT_PORT, *PREVIEW_PORTS)
"""The other pod ports a pod serves (`{forward}` is `pod port=loopback port,...`): the agent's default port and
`PREVIEW_PORTS`."""

READY_TIMEOUT = 60.0
_addresses = itertools.count(2)


def _next_pod_ip() -> str:
    n = next(_addresses)
    return f"10.244.{n // 250}.{n % 250 + 2}"


class PodStartError(RuntimeError):
    """A runtime process exited or did not answer its readiness probe."""


def reserve_port() -> socket.socket:
    """A free loopback port, held bound (not listening) until the pod's runtime listens on it.

    Closing it before the runtime starts would let another `bind(0)` on the machine take the port meanwhile,
    and the probe would then be answered by someone else's server. A bound socket keeps the kernel from
    handing the port out; the runtime can still bind it because both set SO_REUSEADDR (asyncio, uvicorn and
    Go servers do) and this one never listens.
    """
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    return sock


@dataclass
class Pod:
    name: str
    port: int
    state_dir: str
    process: asyncio.subprocess.Process
    forwards: dict[int, int] = field(default_factory=dict)
    """Loopback ports on which the runtime relays connections to other ports of the pod, by pod port."""
    ip: str = field(default_factory=_next_pod_ip)
    """The pod IP the Sandbox status reports (the router routes by name, as the imitation has no pod network)."""

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def url_for(self, pod_port: int) -> str | None:
        """Where the pod's `pod_port` is reached, or None when nothing serves it."""
        if pod_port == RUNTIME_PORT:
            return self.url
        forwarded = self.forwards.get(pod_port)
        return None if forwarded is None else f"http://127.0.0.1:{forwarded}"

    @property
    def alive(self) -> bool:
        return self.process.returncode is None

    def kill(self) -> None:
        """SIGKILL the runtime and everything it started, as an OOM kill or node loss would."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)

    async def stop(self, *, keep_files: bool = False) -> None:
        """End the runtime; its files go too unless `keep_files` (a suspension: the volume stays)."""
        if self.alive:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGTERM)
            try:
                await asyncio.wait_for(self.process.wait(), 5)
            except TimeoutError:
                self.kill()
                await self.process.wait()
        if not keep_files:
            await asyncio.to_thread(discard_state, Path(self.state_dir))


class PodLauncher:
    """Starts runtime processes from `command`, a template in which `{port}` and `{state_dir}` are replaced."""

    def __init__(self, command: tuple[str, ...], work_dir: str, log_dir: str | None = None) -> None:
        self.command = command
        self.work_dir = work_dir
        self.log_dir = log_dir

    async def start(self, name: str) -> Pod:
        forwarded = any("{forward}" in part for part in self.command)
        with contextlib.ExitStack() as held:
            port, *others = (
                held.enter_context(reserve_port()).getsockname()[1]
                for _ in range(1 + (len(FORWARDED_PORTS) if forwarded else 0))
            )
            return await self._start(name, port, dict(zip(FORWARDED_PORTS, others, strict=False)))

    async def _start(self, name: str, port: int, forwards: dict[int, int]) -> Pod:
        state_dir = os.path.join(self.work_dir, name)
        os.makedirs(state_dir, exist_ok=True)
        forward = ",".join(f"{pod_port}={local}" for pod_port, local in forwards.items())
        argv = [part.format(port=port, state_dir=state_dir, forward=forward) for part in self.command]
        log = open(os.path.join(self.log_dir, f"{name}.log"), "ab") if self.log_dir else None  # noqa: SIM115, ASYNC230
        try:
            process = await asyncio.create_subprocess_exec(
                *argv,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=log or asyncio.subprocess.DEVNULL,
                stderr=log or asyncio.subprocess.DEVNULL,
                start_new_session=True,
            )
        finally:
            if log is not None:
                log.close()
        pod = Pod(name, port, state_dir, process, forwards)
        try:
            await self._probe(pod)
        except BaseException:
            await pod.stop()
            raise
        return pod

    async def _probe(self, pod: Pod) -> None:
        deadline = time.monotonic() + READY_TIMEOUT
        async with httpx.AsyncClient(timeout=2.0) as client:
            while time.monotonic() < deadline:
                if not pod.alive:
                    raise PodStartError(f"runtime of pod {pod.name} exited with {pod.process.returncode}")
                with contextlib.suppress(httpx.HTTPError):
                    if (await client.get(pod.url + "/")).status_code == 200:
                        return
                await asyncio.sleep(0.05)
        raise PodStartError(f"runtime of pod {pod.name} did not answer GET / within {READY_TIMEOUT:g} s")
