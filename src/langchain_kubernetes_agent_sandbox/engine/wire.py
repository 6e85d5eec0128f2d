"""The agent's wire format, shared by both ends: the server imports this module, and it is copied into every
sandbox beside `agent.py` (so it uses the standard library only).

A frame is an 8-byte prefix (header length, payload length, both big-endian), a JSON object as the header,
and raw bytes as the payload. Every header names its operation in "op". Both sizes are bounded before anything
is read, so a peer cannot make the other side buffer more than one bounded frame; anything malformed is a
`FrameError` and ends the connection.
"""

from __future__ import annotations

import json
import struct
from typing import Any, Protocol

VERSION = 1
"""Bumped whenever a frame changes meaning; a server replaces an agent that speaks another version."""
PROGRAM_FILES = ("agent.py", "agent_port.py", "wire.py", "pykernel.py")
"""The agent program's files, copied together into a sandbox; their digest names the program."""
MAX_HEADER_BYTES = 256 * 1024
MAX_PAYLOAD_BYTES = 1024 * 1024
PREFIX = struct.Struct(">II")
PORT_PATH = "/kas/agent"
"""Where on its TCP port the agent takes WebSocket connections (see `agent_port.py`)."""
TOKEN_HEADER = "X-Agent-Token"
"""The handshake header carrying the token the agent wrote when it started listening."""
MAX_MESSAGE_BYTES = PREFIX.size + MAX_HEADER_BYTES + MAX_PAYLOAD_BYTES
"""The largest WebSocket message either end sends on the agent's port: one frame."""

Header = dict[str, Any]


class ByteStream(Protocol):
    """What frames are read from: a socket's `asyncio.StreamReader`, or the messages of a WebSocket."""

    async def readexactly(self, n: int, /) -> bytes: ...


class FrameError(Exception):
    """The peer sent something that is not a frame of this protocol."""


def encode(header: Header, payload: bytes = b"") -> bytes:
    raw = json.dumps(header, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    if len(raw) > MAX_HEADER_BYTES or len(payload) > MAX_PAYLOAD_BYTES:
        raise FrameError(f"frame too large to send ({len(raw)} header, {len(payload)} payload bytes)")
    return PREFIX.pack(len(raw), len(payload)) + raw + payload


def decode_header(raw: bytes) -> Header:
    try:
        header = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as error:
        raise FrameError(f"header is not JSON: {error}") from None
    if not isinstance(header, dict) or not isinstance(header.get("op"), str):
        raise FrameError("header is not an object with an 'op'")
    return header


async def read_frame(reader: ByteStream) -> tuple[Header, bytes]:
    """The next frame; `asyncio.IncompleteReadError` at a clean end of the stream."""
    header_size, payload_size = PREFIX.unpack(await reader.readexactly(PREFIX.size))
    if header_size > MAX_HEADER_BYTES or payload_size > MAX_PAYLOAD_BYTES:
        raise FrameError(f"frame too large ({header_size} header, {payload_size} payload bytes)")
    header = decode_header(await reader.readexactly(header_size))
    return header, await reader.readexactly(payload_size) if payload_size else b""


def field(header: Header, name: str, kind: type | tuple[type, ...], default: Any = ...) -> Any:
    """`header[name]`, checked to be of `kind` (booleans are never numbers); a `FrameError` otherwise."""
    if name not in header:
        if default is not ...:
            return default
        raise FrameError(f"{header.get('op')!r} frame lacks {name!r}")
    value = header[name]
    kinds = kind if isinstance(kind, tuple) else (kind,)
    if isinstance(value, bool) and bool not in kinds:
        raise FrameError(f"{name!r} of {header.get('op')!r} must be {kind}, got a boolean")
    if not isinstance(value, kinds):
        raise FrameError(f"{name!r} of {header.get('op')!r} must be {kind}, got {type(value).__name__}")
    return value
