"""Ways to reach this project's MCP server: each is a factory of an initialized `mcp.ClientSession`."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager

import httpx
from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client
from mcp.client.streamable_http import streamable_http_client

Connect = Callable[[], AbstractAsyncContextManager[ClientSession]]
"""Opens one MCP client session; the backend enters it once and keeps it for its whole life."""

HTTP_TIMEOUT = httpx.Timeout(30.0, read=3700.0)
"""Reads wait as long as the longest command the server allows (an hour) plus a margin."""


def http(url: str, *, headers: Mapping[str, str] | None = None) -> Connect:
    """Streamable HTTP, e.g. `http("http://127.0.0.1:8000/mcp", headers={"Authorization": "Bearer ..."})`."""

    @contextlib.asynccontextmanager
    async def connect() -> AsyncIterator[ClientSession]:
        async with (
            httpx.AsyncClient(headers=dict(headers or {}), timeout=HTTP_TIMEOUT) as client,
            streamable_http_client(url, http_client=client) as (read, write, _),
            ClientSession(read, write) as session,
        ):
            await session.initialize()
            yield session

    return connect


def stdio(command: str, args: Sequence[str] = (), *, env: Mapping[str, str] | None = None) -> Connect:
    """A server started as a child process speaking MCP on its stdin and stdout."""

    @contextlib.asynccontextmanager
    async def connect() -> AsyncIterator[ClientSession]:
        parameters = StdioServerParameters(command=command, args=list(args), env=dict(env) if env else None)
        async with stdio_client(parameters) as (read, write), ClientSession(read, write) as session:
            await session.initialize()
            yield session

    return connect
