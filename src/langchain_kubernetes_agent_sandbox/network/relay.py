"""The relay inside a sandbox: listens on the sandbox's own loopback and carries each connection to the proxy's
unix socket, bind-mounted into the sandbox. It decides nothing (the host-side proxy does), so code that kills or
bypasses it gains nothing: the socket is the sandbox's only way out either way.

Run as `python3 relay.py PORT SOCKET`; stdlib only, since it runs on the sandbox's Python, not the server's. It
forks into the background once it listens, so whoever starts it knows that connections from then on arrive.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import sys

CHUNK = 256 * 1024
MAX_CONNECTIONS = 256


async def _pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(OSError):
        while data := await reader.read(CHUNK):
            writer.write(data)
            await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()


async def _carry(path: str, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        proxy_reader, proxy_writer = await asyncio.open_unix_connection(path, limit=CHUNK)
    except OSError:
        writer.close()
        return
    try:
        await asyncio.gather(_pump(reader, proxy_writer), _pump(proxy_reader, writer))
    finally:
        proxy_writer.close()
        writer.close()


def main(port: int, path: str) -> None:
    listener = socket.create_server(("127.0.0.1", port), backlog=MAX_CONNECTIONS)
    if os.fork():
        os._exit(0)
    os.setsid()

    async def serve() -> None:
        slots = asyncio.Semaphore(MAX_CONNECTIONS)

        async def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            async with slots:
                await _carry(path, reader, writer)

        server = await asyncio.start_server(accept, sock=listener, limit=CHUNK)
        await server.serve_forever()

    asyncio.run(serve())


if __name__ == "__main__":
    main(int(sys.argv[1]), sys.argv[2])
