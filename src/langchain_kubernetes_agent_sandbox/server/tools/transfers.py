"""Uploads in pieces: each piece waits in the sandbox's own /tmp until the piece that ends the file arrives.

The pieces live with the sandbox, not in the server, so a client may send them through any replica, and a
server restart loses nothing. They are kept under a name made from the target path and the file's size, so
sending a piece again (a retry) replaces it; the file is only written, whole and atomically, once every byte
from 0 to its size has arrived, and the pieces are removed then.
"""

from __future__ import annotations

import hashlib
import shlex

from ...errors import InvalidArgumentError, TooLargeError
from ...paths import resolve
from ...sandbox import Sandbox

UPLOADS_DIR = "/tmp/.kas/uploads"
OFFSET_DIGITS = 15
"""Pieces are named by their zero-padded offset, so their names sort as their offsets do."""


def staging_dir(path: str, size: int) -> str:
    key = hashlib.sha256(f"{resolve(path)}\0{size}".encode()).hexdigest()[:24]
    return f"{UPLOADS_DIR}/{key}"


async def receive(sandbox: Sandbox, path: str, size: int, offset: int, data: bytes) -> bytes | None:
    """Keep the piece of a `size`-byte file at `path` that starts at `offset`; once the piece ending the file
    is there, the whole file (the pieces are then gone), else None."""
    if size > sandbox.limits.max_file_bytes:
        raise TooLargeError(
            f"The file is {size} bytes, over the file size limit of {sandbox.limits.max_file_bytes} bytes: "
            "split it into several files, or produce it inside the sandbox."
        )
    staging = staging_dir(path, size)
    await sandbox.write_file(f"{staging}/{offset:0{OFFSET_DIGITS}d}", data)
    if offset + len(data) < size:
        return None
    try:
        return await _assembled(sandbox, staging, size)
    finally:
        await sandbox.run(f"rm -rf -- {shlex.quote(staging)}")


async def _assembled(sandbox: Sandbox, staging: str, size: int) -> bytes:
    whole = bytearray()
    for entry in await sandbox.list_dir(staging):
        start = int(entry.name) if entry.name.isdigit() else -1
        if start < 0 or start > len(whole) or len(whole) >= size:
            break
        piece = await sandbox.read_file(entry.path)
        whole += piece[len(whole) - start : size - start]  # what the sandbox holds is untrusted: never past size
    if len(whole) != size:
        raise InvalidArgumentError(
            f"Bytes {len(whole)} to {size} of the file never arrived (or arrived after the piece that ends it): "
            "nothing was written. Send the file again from offset 0, the piece that ends it last."
        )
    return bytes(whole)
