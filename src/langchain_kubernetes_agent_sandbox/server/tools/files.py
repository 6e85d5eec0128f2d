"""upload_file, download_file and list_files: move files in and out of the session's sandbox."""

from __future__ import annotations

import base64
import binascii
import datetime
import hashlib
from typing import TYPE_CHECKING, Annotated, Literal

from mcp.types import CallToolResult, ImageContent, ToolAnnotations
from pydantic import Field

from ...errors import InvalidArgumentError, TooLargeError
from ...paths import resolve
from ..models import DownloadedFile, FileItem, FileListing, UploadedFile
from ..principal import current_principal
from . import reply
from .commands import SessionId

if TYPE_CHECKING:
    from ..app import SandboxMCP

MAX_CONTENT_CHARS = 64 * 1024 * 1024
"""The schema's bound on inline content; the server's configured transfer limit is usually far lower."""

Path = Annotated[
    str,
    Field(
        min_length=1,
        max_length=4096,
        description="File path; relative paths resolve against /app, absolute ones are used as given.",
    ),
]

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


def register(mcp: SandboxMCP) -> None:
    def check_size(size: int, what: str, remedy: str) -> None:
        if size > mcp.limits.max_transfer_bytes:
            raise TooLargeError(
                f"{what} is {size} bytes, over this server's transfer limit of {mcp.limits.max_transfer_bytes} "
                f"bytes: {remedy}"
            )

    @mcp.tool(annotations=ToolAnnotations(readOnlyHint=False, destructiveHint=True, idempotentHint=True))
    async def upload_file(
        path: Path,
        content: Annotated[str, Field(max_length=MAX_CONTENT_CHARS, description="The file's content.")],
        encoding: Annotated[
            Literal["utf-8", "base64"],
            Field(description="'utf-8' for text as given; 'base64' for binary content encoded as standard base64."),
        ] = "utf-8",
        session_id: SessionId = None,
    ) -> Annotated[CallToolResult, UploadedFile]:
        """Write a file into the sandbox, creating missing parent directories and replacing any existing file.

        The write is atomic: other calls see the old file or the new one, never a part. Returns the absolute
        path, the size in bytes and the sha256 of what was written. The file persists for the session's life.
        """
        if encoding == "base64":
            try:
                data = base64.b64decode(content, validate=True)
            except (binascii.Error, ValueError) as error:
                raise InvalidArgumentError(
                    f"content is not valid base64 ({error}): send standard base64 (A-Z, a-z, 0-9, '+', '/', "
                    "'=' padding, no line breaks), or encoding='utf-8' for text."
                ) from None
        else:
            data = content.encode("utf-8")
        check_size(len(data), "The content", "split it into several files, or produce it inside the sandbox.")
        async with mcp.registry.use(current_principal.get(), session_id) as session:
            written = await session.sandbox.write_file(path, data)
        return reply(
            UploadedFile(session_id=session.id, path=written, size=len(data), sha256=hashlib.sha256(data).hexdigest())
        )

    @mcp.tool(annotations=ToolAnnotations(readOnlyHint=True, openWorldHint=False))
    async def download_file(
        path: Path,
        session_id: SessionId = None,
        encoding: Annotated[
            Literal["auto", "utf-8", "base64"],
            Field(description="'auto' gives text when the file is UTF-8 text and base64 otherwise."),
        ] = "auto",
    ) -> Annotated[CallToolResult, DownloadedFile]:
        """Read a file from the sandbox: text as UTF-8, binary as base64; PNG, JPEG, GIF and WebP images also
        come back as image content you can look at.

        Returns the content with its size, sha256 and media type. Files larger than the server's transfer
        limit are refused: inspect them with execute (head, tail, wc) or compress them first.
        """
        async with mcp.registry.use(current_principal.get(), session_id) as session:
            data = await session.sandbox.read_file(path)
        check_size(len(data), f"The file {path}", "read parts of it with execute (head -c, tail -c) or compress it.")
        text = as_text(data) if encoding != "base64" else None
        if encoding == "utf-8" and text is None:
            raise InvalidArgumentError(
                f"{path} is binary (not UTF-8 text): download it with encoding='base64' or encoding='auto'."
            )
        image = image_type(data)
        result = DownloadedFile(
            session_id=session.id,
            path=resolve(path),
            size=len(data),
            sha256=hashlib.sha256(data).hexdigest(),
            encoding="utf-8" if text is not None else "base64",
            mime_type=image or ("text/plain" if text is not None else "application/octet-stream"),
            content=text if text is not None else base64.b64encode(data).decode("ascii"),
        )
        if image is None:
            return reply(result)
        encoded = result.content if result.encoding == "base64" else base64.b64encode(data).decode("ascii")
        return reply(result, ImageContent(type="image", data=encoded, mimeType=image))

    @mcp.tool(annotations=ToolAnnotations(readOnlyHint=True, openWorldHint=False))
    async def list_files(
        path: Path = ".",
        session_id: SessionId = None,
        max_entries: Annotated[int, Field(ge=1, le=10_000, description="Most entries to return.")] = 200,
    ) -> Annotated[CallToolResult, FileListing]:
        """List a directory in the sandbox (default: the working directory /app), sorted by name, with each
        entry's kind, size and modification time. Hidden files are included. A directory of more than 10,000
        entries is listed in part (incomplete is then true)."""
        async with mcp.registry.use(current_principal.get(), session_id) as session:
            entries = await session.sandbox.list_dir(path)
        items = [
            FileItem(
                name=entry.name,
                path=entry.path,
                kind=entry.kind,
                size=entry.size,
                modified_at=datetime.datetime.fromtimestamp(entry.modified_at, datetime.UTC).isoformat(
                    timespec="seconds"
                ),
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
