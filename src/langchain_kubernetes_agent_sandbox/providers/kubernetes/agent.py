"""The agent of a pod: installed and started through the runtime's one-shot commands, then reached over a
WebSocket on a port of its own, through the sandbox-router (`X-Sandbox-Port`) or straight at the pod.

Everything the pod says is as trustworthy as the code it runs: the record the start command prints is parsed
strictly and bounded, and the channel then checks every frame (`engine.channel`).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import re
import shlex
import ssl
import urllib.parse
import zlib
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
from k8s_agent_sandbox.models import (
    SandboxConnectionConfig,
    SandboxdInClusterConnectionConfig,
    SandboxDirectConnectionConfig,
    SandboxdPodTunnelConnectionConfig,
    SandboxInClusterConnectionConfig,
)

from ...engine import budget, program, wire
from ...engine.channel import Connection
from ...engine.links import Connect
from ...errors import SandboxError

MAX_RECORD_CHARS = 4096
_TOKEN = re.compile(r"^[A-Za-z0-9_-]{32,128}$")
HEARTBEAT = 30.0
"""Seconds between pings on an idle connection, so that proxies with idle limits keep it open."""

Endpoint = tuple[str, dict[str, str], ssl.SSLContext | None]
"""A WebSocket URL, the headers that route it to the pod's port, and the TLS settings to use."""
RunScript = Callable[[str, float], Awaitable[tuple[str, str, int]]]
"""Runs a shell script in the pod within a limit: (stdout, stderr, exit code)."""


def endpoint_of(
    config: SandboxConnectionConfig | SandboxdInClusterConnectionConfig | SandboxdPodTunnelConnectionConfig,
    base_url: str,
    sandbox_id: str,
    namespace: str,
    pod_ip: str | None,
    port: int,
) -> Endpoint:
    """Where the agent's port is reached on this connection: through the router that `base_url` names, with the
    routing headers the client sends there, or (in-cluster) at the pod itself."""
    if isinstance(config, SandboxInClusterConnectionConfig):
        host = pod_ip or f"{sandbox_id}.{namespace}.svc.cluster.local"
        return f"ws://{f'[{host}]' if ':' in host else host}:{port}{wire.PORT_PATH}", {}, None
    if isinstance(config, SandboxdInClusterConnectionConfig):
        # sandboxd's REST address is the pod's (or its Service's), and so is every other port of the pod.
        host = urllib.parse.urlsplit(base_url).hostname or ""
        return f"ws://{f'[{host}]' if ':' in host else host}:{port}{wire.PORT_PATH}", {}, None
    if isinstance(config, SandboxdPodTunnelConnectionConfig):
        raise SandboxError(
            f"Port {port} of sandbox {sandbox_id} cannot be reached: the pod tunnel forwards sandboxd's own ports "
            "only. Serve with --connection in-cluster (a server inside the cluster) to reach its other ports."
        )
    headers = {"X-Sandbox-ID": sandbox_id, "X-Sandbox-Namespace": namespace, "X-Sandbox-Port": str(port)}
    if pod_ip:
        headers["X-Sandbox-Pod-IP"] = pod_ip
    tls = None
    if isinstance(config, SandboxDirectConnectionConfig):
        headers = {**config.extra_headers, **headers}
        if config.ca_cert or config.client_cert:
            tls = ssl.create_default_context(cafile=config.ca_cert)
            if config.client_cert:
                tls.load_cert_chain(*config.client_cert)
    scheme = "wss" if base_url.startswith("https:") else "ws"
    return f"{scheme}{base_url[base_url.index(':') :].rstrip('/')}{wire.PORT_PATH}", headers, tls


class AgentUnavailable(SandboxError):
    """The pod cannot host an agent, or its port cannot be reached: commands run one-shot instead."""


def _bundle() -> str:
    files = {name: base64.b64encode(content).decode() for name, content in program.FILES.items()}
    return base64.b64encode(zlib.compress(json.dumps(files).encode(), 9)).decode()


_BUNDLE = _bundle()


_INSTALLER = """import base64, json, os, sys, zlib
folder = sys.argv[1]
os.makedirs(folder, exist_ok=True)
for name, content in json.loads(zlib.decompress(base64.b64decode(sys.argv[2]))).items():
    content, path = base64.b64decode(content), os.path.join(folder, name)
    try:
        with open(path, "rb") as file:
            same = file.read() == content
    except OSError:
        same = False
    if not same:
        with open(path + ".part", "wb") as file:
            file.write(content)
        os.replace(path + ".part", path)
agent = [sys.executable, "-u", "-E", "-s", "-S", folder + "/agent.py", sys.argv[3], folder]
os.execv(sys.executable, agent + sys.argv[4:])
"""


def install_argv(mode: str, *arguments: str) -> list[str]:
    """A command that installs this package's agent where the pod's copy differs, then runs `agent.py MODE DIR
    ARGUMENTS` (see `engine/agent.py`)."""
    return ["python3", "-c", _INSTALLER, program.AGENT_DIR, _BUNDLE, mode, *arguments]


def start_script(port: int, *, replace: bool) -> str:
    """One command that installs this package's agent where it differs, starts it on `port` unless it runs there,
    and prints its record: a single request, whatever state the pod is in."""
    return shlex.join(install_argv("listen", str(port), *(["replace"] if replace else [])))


def token_of(stdout: str, port: int) -> str:
    """The token from the record the start command printed; `AgentUnavailable` for anything else."""
    lines = stdout.strip().splitlines() if len(stdout) <= MAX_RECORD_CHARS else []
    record: Any = None
    with contextlib.suppress(ValueError):
        record = json.loads(lines[-1]) if lines else None
    if not isinstance(record, dict) or record.get("port") != port or not isinstance(record.get("token"), str):
        raise AgentUnavailable(f"the agent's start command printed no record for port {port}")
    if not _TOKEN.match(record["token"]):
        raise AgentUnavailable("the agent's record holds a malformed token")
    return str(record["token"])


def pod_connection(
    sandbox_id: str, port: int, run_script: RunScript, endpoint: Callable[[], Awaitable[Endpoint]]
) -> Connect:
    """How the Kubernetes provider opens a connection to a pod's agent."""

    async def connect(replace: bool) -> Connection:
        stdout, stderr, code = await run_script(start_script(port, replace=replace), budget.AGENT_CONNECT)
        if code != 0:
            detail = stderr.strip()[-500:] or f"exit status {code}"
            raise AgentUnavailable(f"the agent of sandbox {sandbox_id} did not start: {detail}")
        token = token_of(stdout, port)
        url, headers, tls = await endpoint()
        return await open_websocket(url, {**headers, wire.TOKEN_HEADER: token}, tls, name=f"sandbox {sandbox_id}")

    return connect


async def open_websocket(url: str, headers: dict[str, str], tls: ssl.SSLContext | None, *, name: str) -> Connection:
    session = aiohttp.ClientSession()
    try:
        async with asyncio.timeout(budget.AGENT_CONNECT):
            socket = await session.ws_connect(
                url,
                headers=headers,
                max_msg_size=wire.MAX_MESSAGE_BYTES,
                heartbeat=HEARTBEAT,
                compress=0,
                ssl=tls if tls is not None else True,
            )
    except (aiohttp.ClientError, TimeoutError, OSError) as error:
        await session.close()
        if isinstance(error, aiohttp.WSServerHandshakeError):
            reason = f"HTTP {error.status}"
        else:
            reason = str(error) or "no answer in time"
        raise AgentUnavailable(f"the agent port of {name} could not be reached ({reason})") from None
    stream = MessageStream(session, socket)
    return stream, stream


class MessageStream:
    """A client WebSocket as the agent channel's byte stream: binary messages in, one message per frame out."""

    def __init__(self, session: aiohttp.ClientSession, socket: aiohttp.ClientWebSocketResponse) -> None:
        self._session = session
        self._socket = socket
        self._received = bytearray()
        self._unsent = bytearray()
        self._closing: asyncio.Task[None] | None = None

    async def readexactly(self, n: int, /) -> bytes:
        while len(self._received) < n:
            message = await self._socket.receive()
            if message.type is aiohttp.WSMsgType.BINARY:
                self._received += message.data
            elif message.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSING, aiohttp.WSMsgType.CLOSED):
                raise asyncio.IncompleteReadError(bytes(self._received), n)
            elif message.type is aiohttp.WSMsgType.ERROR:
                raise ConnectionError(f"the WebSocket failed: {message.data}")
            else:
                raise wire.FrameError(f"a {message.type.name} message on the agent's port")
        data = bytes(self._received[:n])
        del self._received[:n]
        return data

    def write(self, data: bytes, /) -> None:
        self._unsent += data

    async def drain(self) -> None:
        if self._unsent:
            data = bytes(self._unsent)
            self._unsent.clear()
            await self._socket.send_bytes(data)

    def close(self) -> None:
        if self._closing is None:
            self._closing = asyncio.ensure_future(self._close())

    async def wait_closed(self) -> None:
        if self._closing is not None:
            await self._closing

    async def _close(self) -> None:
        with contextlib.suppress(Exception):
            await self._socket.close()
        await self._session.close()
