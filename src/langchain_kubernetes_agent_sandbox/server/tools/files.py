"""upload_file, download_file and list_files: move files in and out of the session's sandbox."""

from __future__ import annotations

import base64
import binascii
import datetime
import hashlib
from typing import TYPE_CHECKING, Annotated, Any, Literal

from mcp.types import CallToolResult, ImageContent, ToolAnnotations
from pydantic import Field

from ...errors import InvalidArgumentError, TooLargeError
from ...paths import resolve
from ..context import context
from ..downloads import Snapshot
from ..models import DownloadedFile, FileItem, FileListing, UploadedFile
from ..principal import current_principal
from . import ToolSpec, reply, transfers
from .commands import SessionId

if TYPE_CHECKING:
    from ..tool_limits import ToolLimits

Path = Annotated[
    str,
    Field(
        min_length=1,
        max_length=4096,
        description="File path; relative paths resolve against /app, absolute ones are used as given.",
    ),
]

READS = ToolAnnotations(readOnlyHint=True, openWorldHint=False)
IMAGE_SIGNATURES = (
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"GIF87a", "image/gif"),
    (b"GIF89a", "image/gif"),
)


def image_type(data: bytes) -> str | None:
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return next((mime for signature, mime in IMAGE_SIGNATURES if data.startswith(signature)), None)


def as_text(data: bytes) -> str | None:
    """The content as text when it is UTF-8 without NUL bytes (which text files do not hold)."""
    if b"\x00" in data:
        return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return None


def decoded(content: str, encoding: str) -> bytes:
    if encoding == "utf-8":
        return content.encode("utf-8")
    try:
        return base64.b64decode(content, validate=True)
    except (binascii.Error, ValueError) as error:
        raise InvalidArgumentError(
            f"content is not valid base64 ({error}): send standard base64 (A-Z, a-z, 0-9, '+', '/', "
            "'=' padding, no line breaks), or encoding='utf-8' for text."
        ) from None


def text_end(data: bytes, start: int, end: int) -> int:
    """`end` moved back to the start of a UTF-8 character, so a piece of a text file is text itself."""
    boundary = end
    while boundary > start and boundary < len(data) and data[boundary] & 0xC0 == 0x80:
        boundary -= 1
    return boundary if boundary > start else end


def check_piece(size: int) -> None:
    piece = context().limits.max_transfer_bytes
    if size > piece:
        raise TooLargeError(
            f"The content is {size} bytes, over this server's limit of {piece} bytes per call: send the file "
            f"in pieces of at most {piece} bytes, each with its offset and the file's size."
        )


def piece_type(limits: ToolLimits) -> Any:
    piece = limits.max_transfer_bytes
    return Annotated[
        int | None,
        Field(
            default=None,
            ge=1,
            le=piece,
            description=f"Most bytes to return from offset (omit for {piece}); the rest of a larger file comes in "
            "further pieces.",
        ),
    ]


def content_type(limits: ToolLimits) -> Any:
    piece = limits.max_transfer_bytes
    return Annotated[
        str,
        Field(
            max_length=base64_length(piece),
            description=f"The file's content, or the piece of it that starts at offset (at most {piece} bytes).",
        ),
    ]


def entries_type(limits: ToolLimits) -> Any:
    return Annotated[int, Field(ge=1, le=limits.max_list_entries, description="Most entries to return.")]


async def upload_file(
    path: Path,
    content: str,
    encoding: Annotated[
        Literal["utf-8", "base64"],
        Field(description="'utf-8' for text as given; 'base64' for binary content encoded as standard base64."),
    ] = "utf-8",
    session_id: SessionId = None,
    offset: Annotated[
        int, Field(ge=0, description="Where this piece starts in the file, in bytes (0 for a whole file).")
    ] = 0,
    size: Annotated[
        int | None,
        Field(default=None, ge=0, description="The whole file's size in bytes, when content is one piece of it."),
    ] = None,
    sha256: Annotated[
        str | None,
        Field(
            default=None,
            pattern="^[0-9a-f]{64}$",
            description="The whole file's sha256 (hex): checked before the file is written.",
        ),
    ] = None,
) -> Annotated[CallToolResult, UploadedFile]:
    """Write a file into the sandbox, creating missing parent directories and replacing any existing file.

    The write is atomic: other calls see the old file or the new one, never a part. Returns the absolute
    path, the size in bytes and the sha256 of what was written. The file persists for the session's life.
    A file larger than one call carries ({max_transfer_bytes}) goes in pieces: each call sends content from
    `offset` with the file's `size` (and best its `sha256`); the piece that ends the file, sent last,
    writes it.
    """
    data = decoded(content, encoding)
    check_piece(len(data))
    total = offset + len(data) if size is None else size
    if offset + len(data) > total:
        raise InvalidArgumentError(
            f"The piece at offset {offset} with {len(data)} bytes ends past the file's size of {total} bytes: "
            "fix offset or size."
        )
    async with context().registry.use(current_principal.get(), session_id) as session:
        sandbox = session.sandbox
        whole = data if offset == 0 and len(data) == total else None
        if whole is None:
            whole = await transfers.receive(sandbox, path, total, offset, data)
        if whole is None:
            received = UploadedFile(
                session_id=session.id, path=resolve(path), size=total, next_offset=offset + len(data)
            )
            return reply(received.moving(len(data)))
        digest = hashlib.sha256(whole).hexdigest()
        if sha256 is not None and digest != sha256:
            raise InvalidArgumentError(
                f"The file's sha256 is {digest}, not the {sha256} given: nothing was written. Send it again "
                "from offset 0."
            )
        written = await sandbox.write_file(path, whole)
    uploaded = UploadedFile(session_id=session.id, path=written, size=len(whole), sha256=digest)
    return reply(uploaded.moving(len(data)))


async def download_file(
    path: Path,
    session_id: SessionId = None,
    encoding: Annotated[
        Literal["auto", "utf-8", "base64"],
        Field(description="'auto' gives text when the file is UTF-8 text and base64 otherwise."),
    ] = "auto",
    offset: Annotated[int, Field(ge=0, description="Where to start, in bytes: a piece's next_offset.")] = 0,
    length: int | None = None,
) -> Annotated[CallToolResult, DownloadedFile]:
    """Read a file from the sandbox: text as UTF-8, binary as base64; PNG, JPEG, GIF and WebP images also
    come back as image content you can look at.

    Returns the content with the file's size, sha256 and media type. A file larger than one call carries
    ({max_transfer_bytes}) comes in pieces: the result's next_offset is where the next call starts
    (offset=next_offset), until there is none; the sha256 is always the whole file's, and every piece
    comes from the version of the file that the download's first piece read.
    """
    principal = current_principal.get()
    async with context().registry.use(principal, session_id) as session:
        key = (principal, session.id, resolve(path))
        snapshot = context().downloads.resumed(key) if offset > 0 else None
        if snapshot is None:
            data = await session.sandbox.read_file(path)
            snapshot = Snapshot.of(data, is_text=as_text(data) is not None)
    data = snapshot.data
    if offset > len(data):
        raise InvalidArgumentError(f"offset {offset} is past the end of {path}, which has {len(data)} bytes.")
    is_text = snapshot.is_text and encoding != "base64"
    end = min(len(data), offset + (length or context().limits.max_transfer_bytes))
    if is_text:
        end = text_end(data, offset, end)
    chunk = data[offset:end]
    text = as_text(chunk) if is_text else None
    if encoding == "utf-8" and text is None:
        raise InvalidArgumentError(
            f"{path} is binary (not UTF-8 text): download it with encoding='base64' or encoding='auto'."
        )
    if end < len(data):
        context().downloads.keep(key, snapshot)
    else:
        context().downloads.done(key)
    image = image_type(data)
    result = DownloadedFile(
        session_id=session.id,
        path=resolve(path),
        size=len(data),
        sha256=snapshot.sha256,
        encoding="utf-8" if text is not None else "base64",
        mime_type=image or ("text/plain" if text is not None else "application/octet-stream"),
        content=text if text is not None else base64.b64encode(chunk).decode("ascii"),
        offset=offset or None,
        next_offset=end if end < len(data) else None,
    ).moving(len(chunk))
    if image is None or len(chunk) < len(data):
        return reply(result)
    encoded = result.content if result.encoding == "base64" else base64.b64encode(data).decode("ascii")
    return reply(result, ImageContent(type="image", data=encoded, mimeType=image))


async def list_files(
    path: Path = ".",
    session_id: SessionId = None,
    max_entries: int = 200,
) -> Annotated[CallToolResult, FileListing]:
    """List a directory in the sandbox (default: the working directory /app), sorted by name, with each
    entry's kind, size and modification time. Hidden files are included. A directory of more than
    {max_list_entries} entries is listed in part (incomplete is then true)."""
    async with context().registry.use(current_principal.get(), session_id) as session:
        entries = await session.sandbox.list_dir(path)
    items = [
        FileItem(
            name=entry.name,
            path=entry.path,
            kind=entry.kind,
            size=entry.size,
            modified_at=datetime.datetime.fromtimestamp(entry.modified_at, datetime.UTC).isoformat(timespec="seconds"),
        )
        for entry in entries[:max_entries]
    ]
    return reply(
        FileListing(
            session_id=session.id,
            path=resolve(path),
            entries=items,
            total=len(entries),
            truncated=len(entries) > max_entries or entries.truncated,
            incomplete=entries.truncated,
        )
    )


WRITES = ToolAnnotations(readOnlyHint=False, destructiveHint=True, idempotentHint=True)
TOOLS = (
    ToolSpec(upload_file, WRITES, {"content": content_type}),
    ToolSpec(download_file, READS, {"length": piece_type}),
    ToolSpec(list_files, READS, {"max_entries": entries_type}),
)


def base64_length(size: int) -> int:
    """Characters of base64 for `size` bytes (text is never longer in characters than in bytes)."""
    return (size + 2) // 3 * 4
