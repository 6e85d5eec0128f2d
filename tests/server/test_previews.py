"""Preview URLs through a real MCP client: a server started in the sandbox, reached through expose_port's URL by
its owner only, on the local provider, the imitation cluster and the real control plane.

Over the in-memory transport (as over stdio) the server opens a loopback listener for previews; over streamable
HTTP they are served on the server's own listener and need the owner's bearer token.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import os
import secrets
import sys
import time
import urllib.parse
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client
from mcp.shared.memory import create_connected_server_and_client_session
from websockets.asyncio.client import connect as websocket
from websockets.exceptions import ConnectionClosed, InvalidStatus

from langchain_kubernetes_agent_sandbox.server.config import ServerConfig
from langchain_kubernetes_agent_sandbox.server.previews import PreviewLimits
from langchain_kubernetes_agent_sandbox.server.previews.browser import COOKIE
from langchain_kubernetes_agent_sandbox.server.previews.table import (
    MAX_TICKETS,
    TICKET_SECONDS,
    Preview,
    PreviewTable,
    new_token,
)
from langchain_kubernetes_agent_sandbox.server.runtime import running
from tests.server.http_serving import http_server, mcp_client
from tests.server.mcp_calls import call, data, fail, text_of
from tests.server.providers import CLUSTER_FIXTURES, Cluster, on_cluster

APP = (Path(__file__).parent / "preview_app.py").read_text()
PORT = 8000
CLOSED_PORT = 8001
"""Both relayed by the imitation's pods (`testing.pods.PREVIEW_PORTS`); nothing listens on this one."""
ALICE = "alice-token-0123456789abcdef"
BOB = "bob-token-0123456789abcdef00"
READY_TIMEOUT = 20.0

Open = Callable[..., contextlib.AbstractAsyncContextManager[ClientSession]]


@pytest.fixture(params=["local", *CLUSTER_FIXTURES])
def previewing(request: pytest.FixtureRequest, make_config: Callable[..., ServerConfig]) -> Iterator[Open]:
    """Opens an in-memory MCP client to a server on the provider; the test's sessions are closed at its end."""
    cluster: Cluster | None = None
    if request.param != "local":
        cluster = request.getfixturevalue(CLUSTER_FIXTURES[request.param])
    suffix = secrets.token_hex(4)

    def config(principal: str, **settings: Any) -> ServerConfig:
        if cluster is None:
            return make_config(principal=principal, **settings)
        return on_cluster(cluster, principal=f"{principal}-{suffix}", **settings)

    used: set[str] = set()

    @contextlib.asynccontextmanager
    async def served(principal: str = "alice", **settings: Any) -> AsyncIterator[ClientSession]:
        used.add(principal)
        async with (
            running(config(principal, **settings)) as server,
            create_connected_server_and_client_session(server) as client,
        ):
            yield client

    async def close_sessions() -> None:
        for principal in used:
            async with served(principal) as client:
                for session in data(await call(client, "list_sessions"))["sessions"]:
                    await client.call_tool("close_session", {"session_id": session["session_id"]})

    yield served
    asyncio.run(close_sessions())


async def start_app(client: ClientSession, port: int = PORT, session_id: str | None = None) -> None:
    """Start the test app in the session's sandbox, listening on `port`."""
    where = {"session_id": session_id} if session_id else {}
    await call(client, "upload_file", path="/app/preview_app.py", content=APP, **where)
    command = f"python3 /app/preview_app.py {port} >/tmp/preview_app.log 2>&1"
    await call(client, "execute", command=command, background=True, **where)


async def ready(http: httpx.AsyncClient, url: str) -> httpx.Response:
    """The app's /hello through the preview, once the app answers there."""
    deadline = time.monotonic() + READY_TIMEOUT
    while True:
        answer = await http.get(url + "hello?q=1")
        if answer.status_code != 502 or time.monotonic() > deadline:
            return answer
        await asyncio.sleep(0.2)


@contextlib.asynccontextmanager
async def previewed_app(config: ServerConfig) -> AsyncIterator[tuple[ClientSession, httpx.AsyncClient, str]]:
    """An in-memory client to a server on `config` whose default session runs the test app, an HTTP client, and
    the app's preview URL, once the app answers there."""
    async with (
        running(config) as server,
        create_connected_server_and_client_session(server) as client,
        httpx.AsyncClient(timeout=30) as http,
    ):
        await start_app(client)
        url = await exposed(client)
        assert (await ready(http, url)).status_code == 200
        yield client, http, url


async def exposed(client: ClientSession, port: int = PORT, session_id: str | None = None) -> str:
    where = {"session_id": session_id} if session_id else {}
    result = data(await call(client, "expose_port", port=port, **where))
    assert result["port"] == port
    return str(result["url"])


async def test_a_preview_serves_get_streams_and_websockets_of_the_sandboxs_server(previewing: Open) -> None:
    async with previewing() as client, httpx.AsyncClient(timeout=30) as http:
        await start_app(client)
        url = await exposed(client)
        assert url.startswith("http://127.0.0.1:")
        assert "/preview/" in url
        assert await exposed(client) == url, "exposing the same port again gives the same URL"
        hello = await ready(http, url)
        assert hello.status_code == 200, hello.text
        seen = hello.json()
        assert seen["path"] == "/hello?q=1"
        if data(await call(client, "session_info"))["provider"] == "local":  # a router sets a Host of its own
            assert seen["host"] == f"localhost:{PORT}", "development servers accept their own names only"

        page = await http.get(url + "page")
        assert page.status_code == 200, page.text[:2000]
        assert len(page.content) == 1024 * 1024

        body = secrets.token_bytes(3 * 1024 * 1024)
        posted = await http.post(url + "upload", content=body)
        assert posted.text == hashlib.sha256(body).hexdigest(), "a large request body passes whole"

        arrivals = []
        async with http.stream("GET", url + "stream") as streamed:
            async for line in streamed.aiter_lines():
                arrivals.append((time.monotonic(), line))
        assert [line for _, line in arrivals] == [f"tick {n}" for n in range(5)]
        assert arrivals[-1][0] - arrivals[0][0] > 0.5, "lines arrive as the server writes them, not all at the end"

        async with websocket("ws" + url.removeprefix("http") + "ws") as socket:
            await socket.send("hello")
            assert await socket.recv() == "HELLO"
            await socket.send(b"\x00\x01binary")
            assert await socket.recv() == b"\x00\x01binary"


async def test_a_port_nothing_listens_on_gives_a_502_page_saying_so(previewing: Open) -> None:
    async with previewing() as client, httpx.AsyncClient(timeout=60) as http:
        url = await exposed(client, CLOSED_PORT)
        answer = await http.get(url)
        assert answer.status_code == 502
        assert f"nothing listens on port {CLOSED_PORT}" in answer.text
        assert "Start your server inside the sandbox" in answer.text
        with pytest.raises(InvalidStatus) as refused:
            async with websocket("ws" + url.removeprefix("http") + "ws"):
                pass
        assert refused.value.response.status_code == 502


async def test_unexpose_and_closing_the_session_end_the_preview(previewing: Open) -> None:
    async with previewing() as client, httpx.AsyncClient(timeout=30) as http:
        session_id = data(await call(client, "create_session"))["session_id"]
        await start_app(client, session_id=session_id)
        url = await exposed(client, session_id=session_id)
        assert (await ready(http, url)).status_code == 200
        async with websocket("ws" + url.removeprefix("http") + "ws") as socket:
            unexposed = data(await call(client, "unexpose_port", port=PORT, session_id=session_id))
            assert unexposed["unexposed"] is True
            with pytest.raises(ConnectionClosed):
                await asyncio.wait_for(socket.recv(), 10)
        gone = await http.get(url + "hello")
        assert gone.status_code == 404
        assert "no such preview" in gone.text
        again = data(await call(client, "unexpose_port", port=PORT, session_id=session_id))
        assert again["unexposed"] is False

        url = await exposed(client, session_id=session_id)
        assert (await http.get(url + "hello")).status_code == 200
        await call(client, "close_session", session_id=session_id)
        assert (await http.get(url + "hello")).status_code == 404


async def test_a_request_cannot_choose_where_the_preview_leads(previewing: Open) -> None:
    """An absolute URL as the path, and routing headers naming another sandbox or port, still reach only the
    exposed port of the preview's own sandbox."""
    async with previewing() as client, httpx.AsyncClient(timeout=30) as http:
        await start_app(client)
        url = await exposed(client)
        first = await ready(http, url)
        assert first.status_code == 200, first.text
        hijack = {"X-Sandbox-ID": "someone-else", "X-Sandbox-Port": "6988", "X-Sandbox-Pod-IP": "10.0.0.1"}
        answer = await http.get(url + "hello", headers={**hijack, "Host": "169.254.169.254"})
        assert answer.status_code == 200, answer.text
        routing = answer.json()["sandbox_headers"]  # the Go router passes its own routing headers on
        assert routing.get("x-sandbox-id") != "someone-else"
        assert routing.get("x-sandbox-port", str(PORT)) == str(PORT)
        assert "x-sandbox-pod-ip" not in routing or routing["x-sandbox-pod-ip"] != "10.0.0.1"
        assert answer.json()["host"] != "169.254.169.254"
        odd = await http.get(url + "http://169.254.169.254/hello")
        if odd.status_code == 307:  # the Go router cleans the path's '//' first, by a redirect to a path
            assert odd.headers["location"].startswith("/http:/169.254.169.254/hello")
        else:
            assert odd.status_code == 404, "the path goes to the app, as a path"
            assert odd.text == "not here"


async def test_a_bad_port_or_session_is_refused_with_what_to_do(previewing: Open) -> None:
    async with previewing() as client:
        for port in (0, 65536, -1):
            assert "port" in (await fail(client, "expose_port", port=port)).lower()
        refused = await fail(client, "expose_port", port=PORT, session_id="sdoesnotexist0000000000000000")
        assert refused.startswith("not_found:")
        assert "list_sessions" in refused


async def test_a_session_exposes_a_bounded_number_of_ports(make_config: Callable[..., ServerConfig]) -> None:
    async with running(make_config()) as server, create_connected_server_and_client_session(server) as client:
        most = PreviewLimits().max_per_session
        for port in range(9000, 9000 + most):
            await exposed(client, port)
        refused = await fail(client, "expose_port", port=9000 + most)
        assert refused.startswith("quota_exceeded:")
        assert "unexpose_port" in refused
        await call(client, "unexpose_port", port=9000)
        await exposed(client, 9000 + most)
        await call(client, "close_session", session_id=data(await call(client, "session_info"))["session_id"])


# Bounds: on the local provider, where they are quickest to reach.


async def read_all(http: httpx.AsyncClient, url: str) -> tuple[int, Exception | None]:
    """How many body bytes a GET of `url` delivered, and the error that ended it (None: it ended whole)."""
    received = 0
    try:
        async with http.stream("GET", url) as streamed:
            assert streamed.status_code == 200
            async for chunk in streamed.aiter_raw():
                received += len(chunk)
    except httpx.HTTPError as error:
        return received, error
    return received, None


async def test_a_huge_endless_or_hostile_response_is_bounded(make_config: Callable[..., ServerConfig]) -> None:
    config = make_config(preview_max_bytes=4 * 1024 * 1024, preview_max_seconds=3)
    async with previewed_app(config) as (_, http, url):
        announced = await http.get(url + "huge")
        assert announced.status_code == 502
        assert "preview_max_bytes" in announced.text
        assert str(10 * 1024**3) in announced.text

        started = time.monotonic()
        received, error = await read_all(http, url + "huge-chunked")
        assert isinstance(error, httpx.RemoteProtocolError), "a cut response does not look complete"
        assert 0 < received <= 4 * 1024 * 1024, "no more than preview_max_bytes arrives"
        assert time.monotonic() - started < 10

        started = time.monotonic()
        received, error = await read_all(http, url + "forever")
        assert isinstance(error, httpx.RemoteProtocolError)
        assert received > 0
        assert 2.5 < time.monotonic() - started < 10, "cut after preview_max_seconds"

        for hostile in ("endless-head", "not-http"):
            answer = await http.get(url + hostile)
            assert answer.status_code == 502, hostile
            assert "gave no valid HTTP answer" in answer.text

        assert (await http.get(url + "hello")).status_code == 200, "the preview still serves afterwards"


async def test_a_websocket_that_brings_too_much_from_the_sandbox_is_closed(
    make_config: Callable[..., ServerConfig],
) -> None:
    config = make_config(preview_max_bytes=4 * 1024 * 1024)
    async with previewed_app(config) as (_, _, url):
        echoed, closed = await echo_until_closed("ws" + url.removeprefix("http") + "ws", 8, 1024 * 1024)
        assert echoed <= 4 * 1024 * 1024
        assert closed.rcvd is not None
        assert closed.rcvd.code == 1009, "closed as a message too big"


async def echo_until_closed(url: str, messages: int, size: int) -> tuple[int, ConnectionClosed]:
    """Bytes echoed back before the relay closed the WebSocket, and how it closed it."""
    echoed = 0
    async with websocket(url, max_size=2 * size) as socket:
        try:
            for _ in range(messages):
                await socket.send(bytes(size))
                echoed += len(await socket.recv())
        except ConnectionClosed as closed:
            return echoed, closed
    raise AssertionError(f"{messages} messages of {size} bytes were echoed whole")


async def test_a_killed_port_connector_is_replaced_and_a_missing_port_still_says_so(
    make_config: Callable[..., ServerConfig],
) -> None:
    # Locally one helper process in the sandbox opens every connection to its ports; the sandbox's code can kill it.
    async with previewed_app(make_config()) as (client, http, _):
        killed = await call(client, "execute", command="pkill -f 'server[.]recv' && echo killed")
        assert "killed" in text_of(killed)
        await call(client, "unexpose_port", port=PORT)  # a new preview: its first GET needs a new connection
        again = await exposed(client)
        assert (await http.get(again + "hello")).status_code == 200
        missing = await http.get(await exposed(client, CLOSED_PORT))
        assert missing.status_code == 502
        assert f"nothing listens on port {CLOSED_PORT}" in missing.text


async def test_using_a_preview_keeps_its_session_alive(make_config: Callable[..., ServerConfig]) -> None:
    async with (
        running(make_config()) as server,
        create_connected_server_and_client_session(server) as client,
        httpx.AsyncClient(timeout=30) as http,
    ):
        session_id = data(await call(client, "create_session", ttl_seconds=4))["session_id"]
        await start_app(client, session_id=session_id)
        url = await exposed(client, session_id=session_id)
        assert (await ready(http, url)).status_code == 200
        until = time.monotonic() + 6
        while time.monotonic() < until:
            assert (await http.get(url + "hello")).status_code == 200
            await asyncio.sleep(0.5)
        assert data(await call(client, "session_info", session_id=session_id))["session_id"] == session_id
        await call(client, "close_session", session_id=session_id)


# Over streamable HTTP: the server's own listener, the owner's bearer token.


@pytest.fixture(params=["local", "kubernetes"])
def http_settings(
    request: pytest.FixtureRequest, make_config: Callable[..., ServerConfig], tmp_path: Path
) -> Iterator[ServerConfig]:
    """HTTP with bearer tokens, on the local provider or the imitation cluster (whose sessions it closes after)."""
    tokens = tmp_path / "tokens.txt"
    suffix = secrets.token_hex(4)
    tokens.write_text(f"{ALICE} alice-{suffix}\n{BOB} bob-{suffix}\n")
    if request.param == "local":
        yield make_config(transport="http", token_file=tokens)
        return
    settings = on_cluster(request.getfixturevalue("fake_cluster"), transport="http", token_file=tokens)
    yield settings

    async def close_sessions() -> None:
        async with http_server(settings) as base, mcp_client(base, ALICE) as alice:
            for session in data(await call(alice, "list_sessions"))["sessions"]:
                await alice.call_tool("close_session", {"session_id": session["session_id"]})

    asyncio.run(close_sessions())


async def test_over_http_only_the_owners_token_opens_the_preview(
    http_settings: ServerConfig, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="langchain_kubernetes_agent_sandbox.audit")
    async with http_server(http_settings) as base, mcp_client(base, ALICE) as alice:
        await start_app(alice)
        result = await call(alice, "expose_port", port=PORT)
        url = data(result)["url"]
        assert url.startswith(base + "/preview/")
        assert data(result)["bearer_token_required"] is True
        assert "Authorization: Bearer" in text_of(result)
        as_alice = {"Authorization": f"Bearer {ALICE}"}
        async with httpx.AsyncClient(timeout=30, headers=as_alice) as http:
            hello = await ready(http, url)
            assert hello.status_code == 200
            assert hello.json()["authorization"] is None, "the owner's token never reaches the sandbox"
            async with websocket("ws" + url.removeprefix("http") + "ws", additional_headers=as_alice) as socket:
                await socket.send("over http")
                assert await socket.recv() == "OVER HTTP"
        async with httpx.AsyncClient(timeout=30) as anonymous:
            refused = await anonymous.get(url + "hello")
            assert refused.status_code == 401
            assert "bearer token" in refused.text
            as_bob = await anonymous.get(url + "hello", headers={"Authorization": f"Bearer {BOB}"})
            assert as_bob.status_code == 404, "someone else's token finds no preview there"
            wrong = await anonymous.get(url + "hello", headers={"Authorization": "Bearer not-a-token-at-all-000"})
            assert wrong.status_code == 401
        with pytest.raises(InvalidStatus) as bob_socket:
            async with websocket(
                "ws" + url.removeprefix("http") + "ws", additional_headers={"Authorization": f"Bearer {BOB}"}
            ):
                pass
        assert bob_socket.value.response.status_code == 404
        async with mcp_client(base, BOB) as bob:
            assert (await fail(bob, "unexpose_port", port=PORT, session_id=data(result)["session_id"])).startswith(
                "not_found:"
            )
        counted = ['{kind="http",outcome="ok"}', '{kind="websocket",outcome="ok"}', '{kind="http",outcome="refused"}']
        async with httpx.AsyncClient(timeout=30) as http:
            deadline = time.monotonic() + 10  # the WebSocket is counted once its relay has closed both sides
            while True:
                metrics = (await http.get(base + "/metrics")).text
                found = [f"kubernetes_agent_sandbox_preview_requests_total{labels}" in metrics for labels in counted]
                if found[:2] == [True, True] or time.monotonic() > deadline:
                    break
                await asyncio.sleep(0.2)
        assert found == [True, True, True]
    lines = [
        record.audit  # type: ignore[attr-defined]
        for record in caplog.records
        if getattr(record, "audit", {}).get("event") == "preview_request"
    ]
    assert lines, "every exchange through a preview has an audit line"
    assert {line["port"] for line in lines} == {PORT}
    assert all(line["principal"].startswith("alice") for line in lines)
    refused = [
        (record.audit["principal"] or "")[:3]  # type: ignore[attr-defined]
        for record in caplog.records
        if getattr(record, "audit", {}).get("event") == "preview_refused"
    ]
    assert sorted(set(refused)) == ["", "bob"], "refusals are audited: anonymous, bad token, bob's"
    everything = json.dumps([getattr(record, "audit", None) for record in caplog.records])
    assert "/hello" not in everything, "no paths in the audit log"
    assert ALICE not in everything
    assert BOB not in everything


async def test_a_browser_link_lets_one_browser_in_once_and_its_cookie_stays_here(http_settings: ServerConfig) -> None:
    async with http_server(http_settings) as base, mcp_client(base, ALICE) as alice:
        await start_app(alice)
        result = await call(alice, "expose_port", port=PORT)
        url, link = data(result)["url"], data(result)["browser_url"]
        assert link.startswith(base + "/preview-open/")
        assert link in text_of(result), "the model sees the link it can give the person"
        path = urllib.parse.urlsplit(url).path
        async with httpx.AsyncClient(timeout=30, headers={"Authorization": f"Bearer {ALICE}"}) as owner:
            assert (await ready(owner, url)).status_code == 200

        async with httpx.AsyncClient(timeout=30) as browser:
            opened = await browser.get(link)
            assert opened.status_code == 303
            assert opened.headers["location"] == url
            set_cookie = opened.headers["set-cookie"]
            assert f"Path={path}" in set_cookie
            assert "HttpOnly" in set_cookie
            assert "samesite=lax" in set_cookie.lower()
            key = browser.cookies[COOKIE]
            assert (await browser.get(url + "hello")).status_code == 200, "the browser is in, without a token"
            again = await browser.get(link)
            assert again.status_code == 404, "a link works once"
            assert "expose_port again" in again.text

        async with httpx.AsyncClient(timeout=30) as app_view:
            seen = await app_view.get(url + "hello", headers={"Cookie": f"app=kept; {COOKIE}={key}"})
            assert seen.status_code == 200
            assert seen.json()["cookie"] == "app=kept", "the app gets its own cookies, never this server's"
            cookie_alone = await app_view.get(url + "hello", headers={"Cookie": f"{COOKIE}={key}"})
            assert cookie_alone.json()["cookie"] is None
            socket_url = "ws" + url.removeprefix("http") + "ws"
            async with websocket(socket_url, additional_headers={"Cookie": f"{COOKIE}={key}"}) as socket:
                await socket.send("by cookie")
                assert await socket.recv() == "BY COOKIE"
            assert (await app_view.get(url + "hello")).status_code == 401, "without the cookie, still a token"
            other = data(await call(alice, "expose_port", port=CLOSED_PORT))
            elsewhere = await app_view.get(other["url"], headers={"Cookie": f"{COOKIE}={key}"})
            assert elsewhere.status_code == 401, "the cookie admits to its own preview only"

            unused = data(await call(alice, "expose_port", port=PORT))["browser_url"]
            await call(alice, "unexpose_port", port=PORT)
            assert (await app_view.get(url + "hello", headers={"Cookie": f"{COOKIE}={key}"})).status_code == 401
            assert (await app_view.get(unused)).status_code == 404, "a link ends with its preview"


def test_browser_links_expire_and_only_the_newest_are_kept() -> None:
    clock = [0.0]
    table = PreviewTable(clock=lambda: clock[0])
    preview = Preview(new_token(), "alice", "s-1", PORT, upstream=None)  # type: ignore[arg-type]
    table.add(preview)
    late = table.new_ticket(preview)
    clock[0] += TICKET_SECONDS + 1
    assert table.redeem(late) is None, "expired"
    tickets = [table.new_ticket(preview) for _ in range(MAX_TICKETS + 1)]
    assert table.redeem(tickets[0]) is None, "retired by newer ones"
    assert table.redeem(tickets[-1]) is preview
    assert table.redeem(tickets[-1]) is None, "spent"
    table.remove(preview)
    assert table.redeem(tickets[1]) is None, "gone with its preview"


async def test_over_stdio_the_preview_listens_on_loopback_and_ends_with_the_server(local_state_dir: Path) -> None:
    params = StdioServerParameters(
        command=sys.executable,
        args=["-m", "langchain_kubernetes_agent_sandbox", "serve", "--state-dir", str(local_state_dir)],
        env={"PYTHONPATH": os.environ["PYTHONPATH"]} if "PYTHONPATH" in os.environ else None,  # this tree's code
    )
    async with httpx.AsyncClient(timeout=30) as http:
        async with stdio_client(params) as (read, write), ClientSession(read, write) as client:
            await client.initialize()
            await start_app(client)
            result = await call(client, "expose_port", port=PORT)
            url = data(result)["url"]
            assert url.startswith("http://127.0.0.1:")
            assert data(result)["bearer_token_required"] is False
            assert data(result)["browser_url"] == url, "on loopback the URL is the browser's too"
            assert (await ready(http, url)).status_code == 200
            await call(client, "close_session", session_id=data(result)["session_id"])
        with pytest.raises(httpx.ConnectError):
            await http.get(url)
