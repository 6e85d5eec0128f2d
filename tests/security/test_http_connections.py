"""Connection exhaustion over HTTP: slow request heads, idle connections and floods of both against the real
`serve` process with small limits. The server closes what waits on its clients too long, keeps its open
connections (and so its file descriptors) under the ceiling, and keeps answering /healthz and tool calls; what
it is serving, however long, it never cuts."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from langchain_kubernetes_agent_sandbox.providers.local.state import temporary_state
from langchain_kubernetes_agent_sandbox.server.config import ConfigError, ServerConfig
from langchain_kubernetes_agent_sandbox.server.connections import connection_limits
from langchain_kubernetes_agent_sandbox.testing.server_process import ServedServer, serve_http
from tests.server.http_serving import mcp_client
from tests.server.mcp_calls import call, data

TOKEN = "flood-token-0123456789abcdef"
MAX_CONNECTIONS = 200
HEADER_TIMEOUT = 2.0
SLOW = 300
IDLE = 300
SLACK = 3.0
"""Seconds beyond a deadline within which the server must have acted (a shared, loaded test machine)."""
PARTIAL_HEAD = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-a: b"


@contextlib.contextmanager
def served(tmp_path: Path, *settings: str) -> Iterator[ServedServer]:
    tokens = tmp_path / "tokens.txt"
    tokens.write_text(f"{TOKEN} alice\n")
    with (
        temporary_state("kas-flood-") as state_dir,
        (tmp_path / "server.log").open("wb") as log,
        serve_http(f"--token-file={tokens}", *settings, state_dir=str(state_dir), log=log) as server,
    ):
        yield server


def port_of(server: ServedServer) -> int:
    return int(server.url.rsplit(":", 1)[1])


def open_files(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def closed_by_server(connection: socket.socket) -> bool:
    """Whether the server closed `connection` (what it had sent before is read and dropped)."""
    connection.setblocking(False)
    try:
        while connection.recv(65536):
            pass
    except BlockingIOError:
        return False
    except ConnectionError:
        pass
    return True


class Trickle:
    """Slow-header clients: each sends most of a request head, then one byte every half second, forever."""

    def __init__(self, port: int, count: int) -> None:
        self.connections = [socket.create_connection(("127.0.0.1", port)) for _ in range(count)]
        for connection in self.connections:
            connection.sendall(PARTIAL_HEAD)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._drip, daemon=True)
        self._thread.start()

    def _drip(self) -> None:
        while not self._stop.wait(0.5):
            for connection in self.connections:
                with contextlib.suppress(OSError):
                    connection.send(b"b")

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        for connection in self.connections:
            connection.close()


def idle_connections(port: int, count: int) -> list[socket.socket]:
    """Clients that connect and never send a byte."""
    return [socket.create_connection(("127.0.0.1", port)) for _ in range(count)]


async def test_a_flood_of_slow_and_idle_connections_leaves_health_and_tool_calls_answering(tmp_path: Path) -> None:
    settings = (f"--max-connections={MAX_CONNECTIONS}", f"--header-timeout={HEADER_TIMEOUT}", "--keep-alive-timeout=60")
    with served(tmp_path, *settings) as server:
        baseline = open_files(server.pid)
        slow = Trickle(port_of(server), SLOW)
        idle = idle_connections(port_of(server), IDLE)
        try:
            flooded = time.monotonic()
            async with httpx.AsyncClient(timeout=SLACK) as http:
                assert (await http.get(f"{server.url}/healthz")).json() == {"status": "ok"}
            async with mcp_client(server.url, TOKEN) as client:
                started = time.monotonic()
                result = await call(client, "execute", command="echo still-serving")
                assert data(result)["stdout"] == "still-serving\n"
                assert time.monotonic() - started < 30
            assert open_files(server.pid) <= baseline + MAX_CONNECTIONS + 10

            await asyncio.sleep(max(0.0, flooded + HEADER_TIMEOUT + SLACK - time.monotonic()))
            assert all(closed_by_server(connection) for connection in slow.connections)
            still_open = sum(not closed_by_server(connection) for connection in idle)
            assert still_open <= MAX_CONNECTIONS
            assert open_files(server.pid) <= baseline + MAX_CONNECTIONS + 10
        finally:
            slow.close()
            for connection in idle:
                connection.close()


async def test_slow_heads_and_idle_connections_close_on_their_deadlines_but_long_requests_do_not(
    tmp_path: Path,
) -> None:
    with served(tmp_path, "--header-timeout=1", "--keep-alive-timeout=1") as server:
        slow = Trickle(port_of(server), 50)
        idle = idle_connections(port_of(server), 50)
        kept_alive = socket.create_connection(("127.0.0.1", port_of(server)))
        try:
            kept_alive.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            assert b"200 OK" in kept_alive.recv(4096)
            async with mcp_client(server.url, TOKEN) as client:  # its calls outlast both deadlines
                result = await call(client, "execute", command="sleep 4; echo finished", timeout=30)
                assert data(result)["stdout"] == "finished\n"
            assert all(closed_by_server(connection) for connection in [*slow.connections, *idle, kept_alive])
        finally:
            slow.close()
            for connection in [*idle, kept_alive]:
                connection.close()


def test_the_connection_ceiling_fits_the_open_file_limit() -> None:
    assert connection_limits(ServerConfig(), 20000).max_connections == 1024
    assert connection_limits(ServerConfig(), 1024).max_connections == 256
    with pytest.raises(ConfigError, match=r"max_connections \(2000\) needs an open-file limit of at least 8000"):
        connection_limits(ServerConfig(max_connections=2000), 4096)
