"""The preview proxy: an ASGI app under `/preview/{token}/...` that passes HTTP exchanges (streamed both ways)
and WebSockets (message by message) to the exposed port of the token's session, and nowhere else.

A request reaches the port only with a live token, over HTTP with authentication also with the bearer token of
the principal who exposed it, and only while the session is open. The client's own routing headers and its
Authorization never reach the sandbox. What the sandbox sends back is bounded: bytes per response or WebSocket,
seconds per exchange (`PreviewLimits`); a response that breaks a bound midway is cut, as the connection closes.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import urllib.parse
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

import httpcore
from mcp.server.auth.middleware.bearer_auth import AuthenticatedUser
from starlette.responses import Response
from starlette.types import Message, Receive, Scope, Send
from starlette.websockets import WebSocket, WebSocketDisconnect
from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus

from . import browser, pages
from .observe import Kind, PreviewCall, record_refusal
from .table import PATH_PREFIX, Preview

if TYPE_CHECKING:
    from .service import Previews

logger = logging.getLogger(__name__)

HOP_BY_HOP = frozenset(
    {"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailer", "trailers"}
    | {"transfer-encoding", "upgrade", "proxy-connection"}
)
NEVER_FORWARDED = frozenset({"host", "authorization", "cookie2"})
"""The client's credentials for this server stay here; Host is the port's own."""
WEBSOCKET_FORWARDED = frozenset({"cookie", "user-agent", "accept-language"})
"""What a WebSocket's opening passes on (the rest of its handshake is made anew toward the sandbox)."""
ROUTER_REFUSAL = "Could not connect to the backend sandbox"
"""How the sandbox-routers say that nothing listens on the pod's port (502 with `{"detail": ...}`)."""
PEEK_BYTES = 4096

IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS"})
"""Methods whose request may be sent again after the connection it went out on failed without an answer."""


class PreviewProxy:
    """The ASGI app of `/preview/{token}/{rest}` for HTTP and WebSocket scopes."""

    def __init__(self, previews: Previews, *, authenticated: bool) -> None:
        self.previews = previews
        self.authenticated = authenticated
        """Whether a request must carry the bearer token of the preview's principal (HTTP with auth)."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        preview, refusal = await self._admitted(scope)
        kind: Kind = "websocket" if scope["type"] == "websocket" else "http"
        if preview is None:
            refusal = refusal or pages.not_found()
            record_refusal(self.previews.metrics, kind, _principal(scope), refusal.status_code)
            if kind == "websocket":
                await WebSocket(scope, receive, send).send_denial_response(refusal)
            else:
                await refusal(scope, receive, send)
        elif kind == "websocket":
            await self._websocket(WebSocket(scope, receive, send), preview)
        else:
            await self._http(scope, receive, send, preview)

    async def _admitted(self, scope: Scope) -> tuple[Preview | None, Response | None]:
        """The preview the request may use, or the page that refuses it."""
        preview = self.previews.table.find(str(scope.get("path_params", {}).get("token", "")))
        if self.authenticated:
            principal = _principal(scope)
            if principal is None:
                if preview is None or not browser.cookie_admits(scope, preview):
                    return None, pages.unauthenticated()
            elif preview is not None and principal != preview.principal:
                return None, None  # someone else's preview: as if there were none
        if preview is None:
            return None, None
        if not await self.previews.alive(preview):
            return None, None
        return preview, None

    # HTTP

    async def _http(self, scope: Scope, receive: Receive, send: Send, preview: Preview) -> None:
        call = PreviewCall("http", preview)
        limits = self.previews.limits
        upstream = preview.upstream
        headers = request_headers(scope["headers"], upstream.route.headers)
        has_body = _has_body(scope["headers"])
        if has_body and not any(name == b"content-length" for name, _ in headers):
            headers.append((b"transfer-encoding", b"chunked"))
        gone = asyncio.Event()
        watcher: asyncio.Task[None] | None = None

        async def body() -> AsyncIterator[bytes]:
            nonlocal watcher
            while True:
                message = await receive()
                if message["type"] == "http.disconnect":
                    gone.set()
                    return
                chunk = message.get("body", b"")
                call.bytes_in += len(chunk)
                if chunk:
                    yield chunk
                if not message.get("more_body", False):
                    break
            watcher = asyncio.ensure_future(_watch_disconnect(receive, gone))

        if not has_body:
            watcher = asyncio.ensure_future(_watch_disconnect(receive, gone))
        # A kept-alive connection the other end closed just as it was reused fails before any answer: a request
        # that can be sent again (no body, a method without effects) is, once, on a new connection.
        attempts = 2 if not has_body and scope["method"] in IDEMPOTENT else 1
        try:
            async with asyncio.timeout(limits.max_response_seconds):
                for attempt in range(attempts):
                    try:
                        async with upstream.pool.stream(
                            scope["method"],
                            upstream.url(_target(scope, preview)),
                            headers=headers,
                            content=body() if has_body else None,
                            extensions={"timeout": {"connect": limits.connect_timeout}},
                        ) as response:
                            await self._respond(scope, receive, send, call, response, gone)
                        break
                    except (httpcore.RemoteProtocolError, httpcore.ReadError, httpcore.WriteError):
                        if call.responded or gone.is_set() or attempt + 1 == attempts:
                            raise
        except TimeoutError:
            call.outcome = "timed_out"
            if not call.responded:
                call.status = 504
                await pages.too_slow(preview.port, limits.max_response_seconds)(scope, receive, send)
            else:
                logger.warning(
                    "cut a preview response from port %d of session %s after %g s (preview_max_seconds)",
                    preview.port,
                    preview.session_id,
                    limits.max_response_seconds,
                )
        except httpcore.ConnectError as error:
            call.outcome, call.status = "unreachable", 502
            await pages.nothing_listens(preview.port, preview.session_id, str(error))(scope, receive, send)
        except (httpcore.ProtocolError, httpcore.NetworkError, httpcore.TimeoutException) as error:
            call.outcome = "bad_answer"
            if not call.responded and not gone.is_set():
                call.status = 502
                await pages.bad_answer(preview.port, str(error) or type(error).__name__)(scope, receive, send)
        finally:
            if watcher is not None:
                watcher.cancel()
            call.record(self.previews.metrics)

    async def _respond(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        call: PreviewCall,
        response: httpcore.Response,
        gone: asyncio.Event,
    ) -> None:
        """Pass the port's response on, within the byte bound; a router's own 502, or a body announced over the
        bound, becomes a page of ours. Returning before the last byte leaves the response unfinished, so the
        client sees it cut (the server closes the connection)."""
        preview, most = call.preview, self.previews.limits.max_response_bytes
        chunks = response.aiter_stream()
        peeked = b""
        if preview.upstream.route.routed and response.status == 502:
            peeked, refusal = await _router_refusal(chunks)
            if refusal is not None:
                call.outcome, call.status = "unreachable", 502
                await pages.nothing_listens(preview.port, preview.session_id, refusal)(scope, receive, send)
                return
        announced = _content_length(response.headers)
        if announced is not None and announced > most:
            call.outcome, call.status = "too_large", 502
            await pages.too_large(preview.port, announced, most)(scope, receive, send)
            return
        call.status, call.responded = response.status, True
        start = {
            "type": "http.response.start",
            "status": response.status,
            "headers": response_headers(response.headers),
        }
        await send(start)
        if peeked:
            call.bytes_out += len(peeked)
            await send({"type": "http.response.body", "body": peeked, "more_body": True})
        async for chunk in chunks:
            if gone.is_set():
                call.outcome = "cut"
                return
            call.bytes_out += len(chunk)
            if call.bytes_out > most:
                call.outcome = "too_large"
                logger.warning(
                    "cut a preview response from port %d of session %s after %d bytes (preview_max_bytes)",
                    preview.port,
                    preview.session_id,
                    most,
                )
                return
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    # WebSockets

    async def _websocket(self, websocket: WebSocket, preview: Preview) -> None:
        limits = self.previews.limits
        if self.previews.open_websockets >= limits.max_websockets:
            await websocket.send_denial_response(pages.busy(limits.max_websockets))
            return
        call = PreviewCall("websocket", preview)
        self.previews.open_websockets += 1
        task = asyncio.current_task()
        if task is not None:
            preview.relays.add(task)
        try:
            forwarded = [
                (name.decode("latin-1"), value.decode("latin-1"))
                for name, value in _without_our_cookie(websocket.scope["headers"])
                if name.decode("latin-1").lower() in WEBSOCKET_FORWARDED
            ]
            try:
                upstream = await preview.upstream.websocket(
                    _target(websocket.scope, preview),
                    forwarded,
                    list(websocket.scope.get("subprotocols", [])),
                    limits.connect_timeout,
                )
            except InvalidStatus as refused:
                call.status = refused.response.status_code
                call.outcome = "unreachable" if call.status == 502 else "refused"
                await websocket.send_denial_response(
                    pages.nothing_listens(preview.port, preview.session_id, f"HTTP {call.status}")
                    if call.status == 502
                    else Response(status_code=call.status)
                )
                return
            except (OSError, InvalidHandshake, TimeoutError) as error:
                call.outcome, call.status = "unreachable", 502
                detail = str(error) or type(error).__name__
                await websocket.send_denial_response(pages.nothing_listens(preview.port, preview.session_id, detail))
                return
            try:
                await websocket.accept(subprotocol=upstream.subprotocol)
                call.status = 101
                call.outcome = await _relay(websocket, upstream, call, limits.max_response_bytes)
            finally:
                await upstream.close()
        finally:
            self.previews.open_websockets -= 1
            if task is not None:
                preview.relays.discard(task)
            call.record(self.previews.metrics)


async def _relay(websocket: WebSocket, upstream: ClientConnection, call: PreviewCall, most: int) -> str:
    """Pass messages both ways until either side closes (or the sandbox's side sends more than `most` bytes)."""

    async def from_client() -> str:
        with contextlib.suppress(WebSocketDisconnect, ConnectionClosed):
            while True:
                message = await websocket.receive()
                if message["type"] == "websocket.disconnect":
                    break
                data = message.get("bytes")
                data = data if data is not None else message.get("text")
                if data is None:
                    continue
                call.bytes_in += len(data)
                await upstream.send(data)
        return "ok"

    async def from_sandbox() -> str:
        with contextlib.suppress(ConnectionClosed, WebSocketDisconnect, RuntimeError):
            async for data in upstream:
                call.bytes_out += len(data)
                if call.bytes_out > most:
                    return "too_large"
                if isinstance(data, bytes):
                    await websocket.send_bytes(data)
                else:
                    await websocket.send_text(data)
        return "ok"

    tasks = [asyncio.ensure_future(from_client()), asyncio.ensure_future(from_sandbox())]
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        outcome = next(iter(done)).result()
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        with contextlib.suppress(Exception):
            await websocket.close(code=1009 if call.bytes_out > most else 1000)
    return outcome


def _principal(scope: Scope) -> str | None:
    """Whom the request's bearer token names, if it carries a valid one."""
    user = scope.get("user")
    if not isinstance(user, AuthenticatedUser):
        return None
    return user.access_token.subject or user.access_token.client_id


def request_headers(
    client: list[tuple[bytes, bytes]], routing: tuple[tuple[str, str], ...]
) -> list[tuple[bytes, bytes]]:
    """The client's headers as the port gets them: no hop-by-hop ones (nor those its Connection names), none of
    this server's credentials, none naming a sandbox, and the route's own routing headers."""
    named = {
        value.strip().lower()
        for name, values in client
        if name.lower() == b"connection"
        for value in values.split(b",")
    }
    ours = {name.lower().encode("latin-1") for name, _ in routing}
    kept = [
        (name, value)
        for name, value in _without_our_cookie(client)
        if (lowered := name.lower()).decode("latin-1") not in HOP_BY_HOP
        and lowered.decode("latin-1") not in NEVER_FORWARDED
        and lowered not in named
        and lowered not in ours
        and not lowered.startswith(b"x-sandbox-")
    ]
    return kept + [(name.encode("latin-1"), value.encode("latin-1")) for name, value in routing]


def _without_our_cookie(headers: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """`headers` with this server's cookie taken out of every Cookie header (see `browser`)."""
    kept: list[tuple[bytes, bytes]] = []
    for name, value in headers:
        if name.lower() == b"cookie":
            remaining = browser.without_our_cookie(value)
            if remaining is not None:
                kept.append((name, remaining))
        else:
            kept.append((name, value))
    return kept


def response_headers(upstream: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    named = {
        value.strip().lower()
        for name, values in upstream
        if name.lower() == b"connection"
        for value in values.split(b",")
    }
    return [
        (name, value)
        for name, value in upstream
        if name.lower().decode("latin-1") not in HOP_BY_HOP and name.lower() not in named
    ]


def _has_body(headers: list[tuple[bytes, bytes]]) -> bool:
    for name, value in headers:
        lowered = name.lower()
        if lowered == b"content-length":
            return value.strip() != b"0"
        if lowered == b"transfer-encoding":
            return True
    return False


def _content_length(headers: list[tuple[bytes, bytes]]) -> int | None:
    for name, value in headers:
        if name.lower() == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


def _target(scope: Scope, preview: Preview) -> str:
    """What follows `/preview/{token}` in the request's path, with its query: always starting with '/'."""
    raw = scope.get("raw_path")
    path = raw.decode("latin-1") if raw else urllib.parse.quote(scope["path"])
    rest = path[len(PATH_PREFIX) + len(preview.token) :] if path.startswith(PATH_PREFIX + preview.token) else "/"
    query = scope.get("query_string", b"").decode("latin-1")
    return (rest if rest.startswith("/") else "/" + rest) + (f"?{query}" if query else "")


async def _router_refusal(chunks: AsyncIterator[bytes]) -> tuple[bytes, str | None]:
    """The first bytes of a 502 from a router, and its detail when it is the router saying nothing listens."""
    peeked = b""
    async for chunk in chunks:
        peeked += chunk
        if len(peeked) >= PEEK_BYTES:
            break
    try:
        answer: Any = json.loads(peeked)
    except ValueError:
        return peeked, None
    detail = answer.get("detail") if isinstance(answer, dict) else None
    if isinstance(detail, str) and detail.startswith(ROUTER_REFUSAL):
        return peeked, "the sandbox-router could not connect to the pod's port"
    return peeked, None


async def _watch_disconnect(receive: Receive, gone: asyncio.Event) -> None:
    while True:
        message: Message = await receive()
        if message["type"] == "http.disconnect":
            gone.set()
            return
