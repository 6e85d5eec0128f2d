"""The imitation sandbox-router: a streaming reverse proxy to runtime pods, chosen by `X-Sandbox-ID` and
`X-Sandbox-Port`.

Same contract as the upstream routers: routing headers validated (400 with `{"detail": ...}`), stripped before
forwarding together with Host, Authorization and hop-by-hop headers; the wait is
`min(X-Sandbox-Timeout, proxy timeout)` and ends in 504; an unreachable pod is 502. A sandbox the cluster does
not know is 404 rather than the upstream 502, because the client retries 5xx on GET for about 15 seconds.
WebSockets are relayed message by message, as the upstream Python router does, with no proxy timeout (the Go
router does not apply it to upgraded connections either).
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import math
import re
from collections.abc import AsyncIterator, Callable

import aiohttp
import httpx
from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.requests import HTTPConnection, Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket

from .faults import Faults
from .pods import RUNTIME_PORT

DEFAULT_PROXY_TIMEOUT = 180.0
MAX_WEBSOCKET_MESSAGE = 16 * 1024 * 1024
"""As the upstream Python router."""
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_HOP_BY_HOP = {
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailers",
    "transfer-encoding",
    "upgrade",
}
_ROUTING = {"x-sandbox-id", "x-sandbox-namespace", "x-sandbox-port", "x-sandbox-pod-ip", "x-sandbox-timeout"}

Resolver = Callable[[str, str, int], str | None]
"""(namespace, sandbox name, pod port) -> base URL of that port of the pod, or None when there is no such pod."""
_WEBSOCKET_OWN = {"sec-websocket-key", "sec-websocket-version", "sec-websocket-extensions", "sec-websocket-accept"}


def _detail(status: int, detail: str) -> JSONResponse:
    return JSONResponse({"detail": detail}, status_code=status)


def _valid_label(value: str) -> bool:
    return len(value) <= 63 and bool(_DNS_LABEL.match(value))


class Router:
    def __init__(self, resolve: Resolver, faults: Faults, proxy_timeout: float = DEFAULT_PROXY_TIMEOUT) -> None:
        self.resolve = resolve
        self.faults = faults
        self.proxy_timeout = proxy_timeout
        self.client = httpx.AsyncClient(
            timeout=None, limits=httpx.Limits(max_connections=None, max_keepalive_connections=256)
        )

    async def healthz(self, _: Request) -> Response:
        return JSONResponse({"status": "ok"})

    def _budget(self, raw: str | None) -> float:
        try:
            asked = float(raw) if raw else self.proxy_timeout
        except ValueError:
            return self.proxy_timeout
        if not math.isfinite(asked) or asked <= 0:
            return self.proxy_timeout
        return min(asked, self.proxy_timeout)

    def _check_headers(self, request: HTTPConnection) -> Response | tuple[str, str, int]:
        headers = request.headers
        sandbox = headers.get("x-sandbox-id")
        if not sandbox:
            return _detail(400, "X-Sandbox-ID header is required.")
        if not _valid_label(sandbox):
            return _detail(400, "Invalid sandbox ID format.")
        namespace = headers.get("x-sandbox-namespace", "default")
        if not _valid_label(namespace):
            return _detail(400, "Invalid namespace format.")
        port = headers.get("x-sandbox-port", str(RUNTIME_PORT))
        if not port.isdigit() or not 1 <= int(port) <= 65535:
            return _detail(400, "Invalid port format.")
        pod_ip = headers.get("x-sandbox-pod-ip")
        if pod_ip is not None:
            try:
                address = ipaddress.ip_address(pod_ip)
            except ValueError:
                return _detail(400, "Invalid target IP address format.")
            if address.is_loopback or address.is_link_local or address.is_multicast or address.is_unspecified:
                return _detail(400, "Invalid target IP address.")
        return sandbox, namespace, int(port)

    def _upstream(self, request: HTTPConnection) -> Response | str:
        """The URL to forward `request` to, or the answer that refuses it."""
        checked = self._check_headers(request)
        if isinstance(checked, Response):
            return checked
        sandbox, namespace, port = checked
        base = self.resolve(namespace, sandbox, port)
        if base is None:
            if self.resolve(namespace, sandbox, RUNTIME_PORT) is not None:
                return _detail(502, f"Could not connect to the backend sandbox: {sandbox}")
            return _detail(404, f"Sandbox not found: {sandbox}")
        if self.faults.router_status == 504:
            return _detail(504, f"Timed out waiting for the backend sandbox: {sandbox}")
        if self.faults.router_status is not None:
            return _detail(self.faults.router_status, f"Could not connect to the backend sandbox: {sandbox}")
        return base + request.url.path + (f"?{request.url.query}" if request.url.query else "")

    @staticmethod
    def _forwarded_headers(request: HTTPConnection) -> list[tuple[str, str]]:
        return [
            (name, value)
            for name, value in request.headers.items()
            if name not in _HOP_BY_HOP and name not in _ROUTING and name not in ("host", "authorization")
        ]

    async def proxy(self, request: Request) -> Response:
        url = self._upstream(request)
        if isinstance(url, Response):
            return url
        sandbox = request.headers["x-sandbox-id"]
        headers = self._forwarded_headers(request)
        upstream_request = self.client.build_request(request.method, url, headers=headers, content=request.stream())
        try:
            async with asyncio.timeout(self._budget(request.headers.get("x-sandbox-timeout"))):
                if self.faults.runtime_delay:
                    await asyncio.sleep(self.faults.runtime_delay)
                upstream = await self.client.send(upstream_request, stream=True)
        except TimeoutError:
            return _detail(504, f"Timed out waiting for the backend sandbox: {sandbox}")
        except httpx.HTTPError:
            return _detail(502, f"Could not connect to the backend sandbox: {sandbox}")
        answer_headers = {name: value for name, value in upstream.headers.items() if name not in _HOP_BY_HOP}
        return StreamingResponse(
            self._relay(upstream),
            status_code=upstream.status_code,
            headers=answer_headers,
            background=BackgroundTask(upstream.aclose),
        )

    @staticmethod
    async def _relay(upstream: httpx.Response) -> AsyncIterator[bytes]:
        async for chunk in upstream.aiter_raw():
            yield chunk

    async def websocket(self, websocket: WebSocket) -> None:
        url = self._upstream(websocket)
        if isinstance(url, Response):
            await websocket.send_denial_response(url)
            return
        headers = [(name, value) for name, value in self._forwarded_headers(websocket) if name not in _WEBSOCKET_OWN]
        session = aiohttp.ClientSession()
        try:
            try:
                upstream = await session.ws_connect(
                    "ws" + url[len("http") :], headers=headers, max_msg_size=MAX_WEBSOCKET_MESSAGE, autoping=True
                )
            except aiohttp.WSServerHandshakeError as error:
                await websocket.send_denial_response(Response(status_code=error.status))
                return
            except (aiohttp.ClientError, OSError):
                refusal = _detail(502, f"Could not connect to the backend sandbox: {websocket.headers['x-sandbox-id']}")
                await websocket.send_denial_response(refusal)
                return
            await websocket.accept()
            await _relay_websocket(websocket, upstream)
        finally:
            await session.close()

    def app(self) -> Starlette:
        methods = ["GET", "POST", "PUT", "DELETE", "PATCH"]
        return Starlette(
            routes=[
                Route("/healthz", self.healthz),
                Route("/{path:path}", self.proxy, methods=methods),
                WebSocketRoute("/{path:path}", self.websocket),
            ]
        )

    async def aclose(self) -> None:
        await self.client.aclose()


async def _relay_websocket(client: WebSocket, upstream: aiohttp.ClientWebSocketResponse) -> None:
    """Pass messages both ways until either side closes, then close the other."""

    async def from_client() -> None:
        while True:
            message = await client.receive()
            if message["type"] == "websocket.disconnect":
                return
            if message.get("bytes") is not None:
                await upstream.send_bytes(message["bytes"])
            elif message.get("text") is not None:
                await upstream.send_str(message["text"])

    async def from_upstream() -> None:
        async for message in upstream:
            if message.type is aiohttp.WSMsgType.BINARY:
                await client.send_bytes(message.data)
            elif message.type is aiohttp.WSMsgType.TEXT:
                await client.send_text(message.data)

    tasks = [asyncio.ensure_future(from_client()), asyncio.ensure_future(from_upstream())]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        with contextlib.suppress(Exception):
            await upstream.close()
        with contextlib.suppress(Exception):
            await client.close()
