"""The agent's TCP port (standard library only; copied into a sandbox beside `agent.py`): servers outside the
sandbox reach the agent through a WebSocket, since that is what sandbox routers forward to a pod's other ports.

The WebSocket carries the agent's byte stream (`wire` frames) in binary messages, so both ends read it as one
stream; message boundaries mean nothing. A connection must ask for `wire.PORT_PATH` and carry the token the
agent wrote when it started: the port is open to the pod's network, and the token makes it no more open than the
runtime's own.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac

import wire  # type: ignore[import-not-found,unused-ignore]  # beside this file in the sandbox

MAX_HANDSHAKE_BYTES = 16 * 1024
HANDSHAKE_SECONDS = 10.0
_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
_CLOSE, _PING, _PONG = 0x8, 0x9, 0xA


def message(opcode: int, payload: bytes) -> bytes:
    """One unmasked, final WebSocket frame (the agent is the server side, which never masks)."""
    size = len(payload)
    if size < 126:
        length = bytes([size])
    elif size < 1 << 16:
        length = bytes([126]) + size.to_bytes(2, "big")
    else:
        length = bytes([127]) + size.to_bytes(8, "big")
    return bytes([0x80 | opcode]) + length + payload


def _unmask(data: bytes, mask: bytes) -> bytes:
    size = len(data)
    key = int.from_bytes((mask * (size // 4 + 1))[:size], "little")
    return (int.from_bytes(data, "little") ^ key).to_bytes(size, "little")


async def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, token: str) -> bool:
    """Answer the opening handshake: True when the client asked for the agent with the right token."""
    try:
        async with asyncio.timeout(HANDSHAKE_SECONDS):
            head = await reader.readuntil(b"\r\n\r\n")
    except (TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
        return False
    lines = head.decode("latin-1").split("\r\n")
    request = lines[0].split(" ")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    key = headers.get("sec-websocket-key", "")
    granted = (
        len(request) == 3
        and request[0] == "GET"
        and request[1].split("?")[0] == wire.PORT_PATH
        and headers.get("upgrade", "").lower() == "websocket"
        and bool(key)
        and hmac.compare_digest(headers.get(wire.TOKEN_HEADER.lower(), "").encode(), token.encode())
    )
    if not granted:
        writer.write(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
        return False
    accepted = base64.b64encode(hashlib.sha1(key.encode("latin-1") + _GUID).digest()).decode()
    writer.write(
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        + f"Sec-WebSocket-Accept: {accepted}\r\n\r\n".encode()
    )
    return True


class MessageReader:
    """The bytes of the client's data messages as one stream, read as `wire.read_frame` reads a socket."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader = reader
        self._writer = writer
        self._buffer = bytearray()

    async def readexactly(self, size: int) -> bytes:
        while len(self._buffer) < size:
            await self._next_frame()
        data = bytes(self._buffer[:size])
        del self._buffer[:size]
        return data

    async def _next_frame(self) -> None:
        try:
            first, second = await self._reader.readexactly(2)
            size = second & 0x7F
            if size >= 126:
                size = int.from_bytes(await self._reader.readexactly(2 if size == 126 else 8), "big")
            if not second & 0x80 or size > wire.MAX_MESSAGE_BYTES:
                raise wire.FrameError("an unmasked or oversized WebSocket frame")
            mask = await self._reader.readexactly(4)
            payload = _unmask(await self._reader.readexactly(size), mask) if size else b""
        except asyncio.IncompleteReadError:
            raise asyncio.IncompleteReadError(bytes(self._buffer), None) from None
        opcode = first & 0x0F
        if opcode == _CLOSE:
            self._writer.write(message(_CLOSE, payload[:2]))
            raise asyncio.IncompleteReadError(bytes(self._buffer), None)
        if opcode == _PING:
            self._writer.write(message(_PONG, payload[:125]))
        elif opcode in (0x0, 0x1, 0x2):
            self._buffer += payload
        elif opcode != _PONG:
            raise wire.FrameError(f"WebSocket opcode {opcode}")


class MessageWriter:
    """Writes the agent's frames to the client, one binary message each."""

    def __init__(self, writer: asyncio.StreamWriter) -> None:
        self._writer = writer

    def write(self, data: bytes) -> None:
        self._writer.write(message(0x2, data))

    async def drain(self) -> None:
        await self._writer.drain()

    def close(self) -> None:
        self._writer.close()
