"""`Previews`: expose and unexpose ports of sessions, and serve them, on the server's own HTTP listener (under
`/preview/{token}/`, with the principal's authentication) or, over stdio, on a loopback listener of their own
that opens with the first preview.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Iterator

import uvicorn
from starlette.applications import Starlette
from starlette.routing import BaseRoute, Route, WebSocketRoute

from ...errors import NotFoundError, QuotaExceededError, SandboxError, SandboxGoneError
from ...ports import check_port
from ...sessions import Session, SessionRegistry
from ..metrics import ServerMetrics
from .browser import OPEN_PREFIX, BrowserLinks
from .proxy import PreviewProxy
from .table import PATH_PREFIX, Preview, PreviewLimits, PreviewTable, new_token
from .upstream import Upstream

LOOPBACK = "127.0.0.1"
logger = logging.getLogger(__name__)


class Previews:
    def __init__(self, registry: SessionRegistry, limits: PreviewLimits, metrics: ServerMetrics) -> None:
        self.registry = registry
        self.limits = limits
        self.metrics = metrics
        self.table = PreviewTable()
        self.open_websockets = 0
        self.base_url: str | None = None
        """Where the server's own listener serves previews; None until it does (stdio: the loopback listener)."""
        self.authenticated = False
        """Whether the server's own listener checks bearer tokens, and so previews served there do."""
        self._loopback: _LoopbackListener | None = None
        self._lock = asyncio.Lock()

    def serve_on(self, base_url: str, *, authenticated: bool) -> list[BaseRoute]:
        """The routes that serve previews on the server's own listener at `base_url` (`authenticated` when it
        checks bearer tokens); previews made from now on get URLs there."""
        self.base_url, self.authenticated = base_url.rstrip("/"), authenticated
        _quiet_denials()
        routes = self._routes(authenticated=authenticated)
        if authenticated:
            links = BrowserLinks(self, secure=self.base_url.startswith("https:"))
            routes.append(Route(OPEN_PREFIX + "{ticket}", links.open, methods=["GET"]))
        return routes

    def _routes(self, *, authenticated: bool) -> list[BaseRoute]:
        proxy = PreviewProxy(self, authenticated=authenticated)
        path = PATH_PREFIX + "{token}/{rest:path}"
        return [Route(path, proxy), WebSocketRoute(path, proxy)]

    async def expose(self, principal: str, session: Session, port: int) -> tuple[Preview, str]:
        """The preview of `port` in `session` (the same one when it is exposed already), and its URL."""
        check_port(port)
        async with self._lock:
            preview = self.table.of(session.id, port)
            if preview is None:
                if len(self.table.of_session(session.id)) >= self.limits.max_per_session:
                    raise QuotaExceededError(
                        f"Session {session.id} exposes {self.limits.max_per_session} ports already, the most allowed: "
                        "unexpose_port one you no longer need, then retry."
                    )
                route = await session.sandbox.port_route(port)
                preview = Preview(new_token(), principal, session.id, port, Upstream(route))
                self.table.add(preview)
            return preview, await self._url(preview)

    def browser_url(self, preview: Preview, url: str) -> str:
        """What a person opens in a browser for the preview at `url`: a one-time link that lets that browser in
        where requests need a bearer token (see `browser`), else the URL itself."""
        if not self.authenticated or self.base_url is None:
            return url
        return f"{self.base_url}{OPEN_PREFIX}{self.table.new_ticket(preview)}"

    async def unexpose(self, session_id: str, port: int) -> bool:
        """End the preview of `port` in the session; False when there was none."""
        check_port(port)
        preview = self.table.of(session_id, port)
        if preview is None:
            return False
        await self.drop(preview)
        return True

    async def end_session(self, session_id: str) -> None:
        """End every preview of a session that ends."""
        for preview in self.table.of_session(session_id):
            await self.drop(preview)

    async def alive(self, preview: Preview) -> bool:
        """Whether the preview's session is still open, its idle deadline slid (a preview in use is a use of the
        session); a preview whose session ended is dropped."""
        try:
            await self.registry.touch(preview.principal, preview.session_id)
        except (NotFoundError, SandboxGoneError):
            await self.drop(preview)
            return False
        except SandboxError as error:  # the deadline could not be slid now: the request may still be served
            logger.warning("sliding session %s for its preview failed: %s", preview.session_id, error)
        return True

    async def drop(self, preview: Preview) -> None:
        if self.table.remove(preview):
            await preview.end()

    async def aclose(self) -> None:
        for preview in self.table.all():
            await self.drop(preview)
        if self._loopback is not None:
            await self._loopback.stop()
            self._loopback = None

    async def _url(self, preview: Preview) -> str:
        base = self.base_url
        if base is None:
            if self._loopback is None:
                self._loopback = await _LoopbackListener.start(self)
            base = self._loopback.url
        return base + preview.path


DENIAL_NOISE = "ASGI callable returned without completing handshake."
"""What uvicorn's WebSocket protocol logs, as an error, after every handshake refused with a page of ours."""


class _DenialsAreNoErrors(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return record.getMessage() != DENIAL_NOISE


def _quiet_denials() -> None:
    """A preview that refuses a WebSocket (401, 404, 502) answers with a page, as it should: not an error."""
    server_log = logging.getLogger("uvicorn.error")
    if not any(isinstance(existing, _DenialsAreNoErrors) for existing in server_log.filters):
        server_log.addFilter(_DenialsAreNoErrors())


class _SignalFreeServer(uvicorn.Server):
    """The process's signals stay with the MCP server, which stops this one when it stops."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class _LoopbackListener:
    """A uvicorn of its own on 127.0.0.1 that serves only previews (token only: stdio has no authentication)."""

    def __init__(self, server: uvicorn.Server, task: asyncio.Task[None], url: str, listener: socket.socket) -> None:
        self.server = server
        self.task = task
        self.url = url
        self._listener = listener

    @classmethod
    async def start(cls, previews: Previews) -> _LoopbackListener:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.bind((LOOPBACK, 0))
        port = listener.getsockname()[1]
        app = Starlette(routes=previews._routes(authenticated=False))
        _quiet_denials()
        config = uvicorn.Config(
            app, log_level="warning", access_log=False, lifespan="off", ws="websockets-sansio", ws_max_size=2**24
        )
        server = _SignalFreeServer(config)
        task = asyncio.create_task(server.serve(sockets=[listener]))
        while not server.started:
            if task.done():
                task.result()
            await asyncio.sleep(0.01)
        return cls(server, task, f"http://{LOOPBACK}:{port}", listener)

    async def stop(self) -> None:
        self.server.should_exit = True
        with contextlib.suppress(asyncio.CancelledError):
            await self.task
        self._listener.close()
