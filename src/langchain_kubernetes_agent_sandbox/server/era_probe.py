"""The answer to the era probe of 2026-07-28 clients on stdio: "Method not found", so they fall back at once.

Clients of the 2026-07-28 revision (mcp 2.x, the TypeScript client 2.x) that also speak the older revisions open
a stdio connection with a `server/discover` request and fall back to the `initialize` handshake on any error
that is not one of the new revision's own. The mcp 1.x SDK this server is built on parses every request against
the methods it knows, so on its own it answers the probe with "Invalid request parameters" after logging a
31-line validation warning per probe, and some clients fall back only on "Method not found". Over streamable
HTTP no such request reaches the SDK's session: its transport refuses the probe's `MCP-Protocol-Version:
2026-07-28` header (or its missing session id) with `400 Bad Request` and a JSON-RPC error body, which is
the new revision's own signal to fall back there.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

import anyio
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream
from mcp.server.lowlevel import Server
from mcp.server.stdio import stdio_server
from mcp.shared.message import SessionMessage
from mcp.types import LATEST_PROTOCOL_VERSION, METHOD_NOT_FOUND, ErrorData, JSONRPCError, JSONRPCMessage, JSONRPCRequest

DISCOVER = "server/discover"
ANSWER = ErrorData(
    code=METHOD_NOT_FOUND,
    message=f"Method not found: {DISCOVER}; this server speaks MCP through the initialize handshake "
    f"(revisions up to {LATEST_PROTOCOL_VERSION})",
)

Incoming = SessionMessage | Exception


def discover_probe(message: Incoming) -> JSONRPCRequest | None:
    """The message as a `server/discover` request, or None when it is anything else."""
    if isinstance(message, SessionMessage):
        request = message.message.root
        if isinstance(request, JSONRPCRequest) and request.method == DISCOVER:
            return request
    return None


@contextlib.asynccontextmanager
async def probes_answered(
    incoming: MemoryObjectReceiveStream[Incoming], outgoing: MemoryObjectSendStream[SessionMessage]
) -> AsyncIterator[MemoryObjectReceiveStream[Incoming]]:
    """`incoming` without its `server/discover` requests, each answered on `outgoing` with "Method not found"."""
    relay_send, relay_receive = anyio.create_memory_object_stream[Incoming](0)

    async def relay() -> None:
        async with relay_send:
            async for message in incoming:
                if (probe := discover_probe(message)) is not None:
                    answer = JSONRPCError(jsonrpc="2.0", id=probe.id, error=ANSWER)
                    await outgoing.send(SessionMessage(JSONRPCMessage(answer)))
                else:
                    await relay_send.send(message)

    async with anyio.create_task_group() as tasks:
        tasks.start_soon(relay)
        try:
            yield relay_receive
        finally:
            tasks.cancel_scope.cancel()


async def serve_stdio(server: Server[Any, Any]) -> None:
    """What FastMCP's `run_stdio_async` does, with the era probe answered before the SDK's session sees it."""
    async with stdio_server() as (incoming, outgoing), probes_answered(incoming, outgoing) as requests:
        await server.run(requests, outgoing, server.create_initialization_options())
