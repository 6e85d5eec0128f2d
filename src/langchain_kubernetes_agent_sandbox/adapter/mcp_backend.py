"""A deepagents backend whose every operation is a tool call to this project's MCP server.

The MCP client session is bound to the event loop that opened it, so it lives on the backend's private loop
(in one long-lived task, as anyio requires) and async callers on any other loop hop onto it.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
from dataclasses import dataclass
from typing import Any

from deepagents.backends.protocol import ExecuteResponse, FileDownloadResponse, FileUploadResponse
from mcp import ClientSession
from mcp.types import CallToolResult, TextContent, Tool

from .. import errors
from ..errors import BackendUnavailableError, SandboxError
from ..results import CommandResult
from .base import AsyncFirstSandbox
from .mcp_connect import Connect
from .translate import execute_error, execute_response, file_error, file_error_of, is_relative

_ERRORS: dict[str, type[SandboxError]] = {
    cls.code: cls for cls in (getattr(errors, name) for name in errors.__all__) if issubclass(cls, SandboxError)
}
_PARALLEL_TRANSFERS = 4
"""Files moved at once in a batch; the server bounds each principal's concurrent calls (8 by default)."""


_READ_ATTEMPTS = 3
"""Times a file read in pieces is read again when its digest shows it changed in between."""
_JOB_WAIT = 60.0
"""Seconds of each job_wait call while following a command the server detached."""


class ToolFailed(SandboxError):
    """The server answered with an error whose code this client does not know."""


def _server_error(result: CallToolResult, text: str) -> SandboxError:
    """Rebuild the taxonomy error from the tool error's `code` and `message` (in its `_meta`; its text when a
    server sends none)."""
    failure = (result.meta or {}).get(errors.TOOL_ERROR_META) or {}
    code, message = failure.get("code"), failure.get("message")
    if not isinstance(code, str) or not isinstance(message, str):
        return ToolFailed(text)
    error = _ERRORS.get(code, ToolFailed)(message)
    if error.__class__ is ToolFailed:
        error.code = code if code.isidentifier() else ToolFailed.code
    return error


@dataclass(frozen=True)
class _Caps:
    """What the server lets one call carry, read from its tools' input schemas (None: the server's default)."""

    output_bytes: int | None
    """The largest `max_output_bytes` execute and job_wait take."""
    piece_bytes: int | None
    """The largest piece of a file one upload_file or download_file call moves."""

    @classmethod
    def of(cls, tools: list[Tool]) -> _Caps:
        def maximum(tool: str, argument: str) -> int | None:
            for listed in tools:
                if listed.name == tool:
                    schema = listed.inputSchema.get("properties", {}).get(argument, {})
                    for choice in [schema, *schema.get("anyOf", [])]:  # an optional argument: its number's bound
                        if isinstance(choice.get("maximum"), int):
                            return int(choice["maximum"])
            return None

        return cls(maximum("execute", "max_output_bytes"), maximum("download_file", "length"))


class McpSandboxBackend(AsyncFirstSandbox):
    """A deep agent's sandbox on a remote server: `McpSandboxBackend(mcp_connect.http(url))`.

    With no `session_id` it creates its own session on first use and closes it in `close()`; given one, it
    works in that session and leaves it open. `fork()` gives a backend on a copy of the session.
    """

    def __init__(self, connect: Connect, *, session_id: str | None = None, timeout: float | None = None) -> None:
        super().__init__()
        self._connect = connect
        self._session_id = session_id
        self._owns_session = session_id is None
        self._default_timeout = timeout
        self._client: ClientSession | None = None
        self._closing: asyncio.Event | None = None
        self._holder: asyncio.Task[None] | None = None
        self._opening: asyncio.Lock | None = None
        self._transfers: asyncio.Semaphore | None = None
        self._caps = _Caps(None, None)

    @property
    def id(self) -> str:
        if self._session_id is None:
            self._runner.run(self._open())
        assert self._session_id is not None
        return self._session_id

    async def _open(self) -> ClientSession:
        """The connected client, opened on first use (runs on the private loop)."""
        if self._opening is None:
            self._opening = asyncio.Lock()
            self._transfers = asyncio.Semaphore(_PARALLEL_TRANSFERS)
        async with self._opening:
            if self._client is None:
                ready: asyncio.Future[ClientSession] = asyncio.get_running_loop().create_future()
                self._closing = asyncio.Event()
                self._holder = asyncio.create_task(self._hold(ready, self._closing))
                client = await ready
                try:
                    self._caps = _Caps.of((await client.list_tools()).tools)
                except Exception as error:
                    raise BackendUnavailableError(f"The MCP server did not list its tools: {error!r}") from error
                self._client = client
            if self._session_id is None:
                created = await self._call_on_loop("create_session", {})
                self._session_id = str(created["session_id"])
            return self._client

    async def _hold(self, ready: asyncio.Future[ClientSession], closing: asyncio.Event) -> None:
        try:
            async with self._connect() as client:
                ready.set_result(client)
                await closing.wait()
        except Exception as error:
            if not ready.done():
                ready.set_exception(BackendUnavailableError(f"Could not reach the MCP server: {error!r}"))
        finally:
            self._client = None

    async def _call_on_loop(self, tool: str, arguments: dict[str, Any]) -> dict[str, Any]:
        client = self._client if self._client is not None else await self._open()
        try:
            result = await client.call_tool(tool, arguments)
        except Exception as error:  # a dropped connection or a protocol failure, whatever the transport
            raise BackendUnavailableError(f"The MCP server did not answer {tool}: {error!r}") from error
        text = "".join(block.text for block in result.content if isinstance(block, TextContent))
        if result.isError:
            raise _server_error(result, text)
        if result.structuredContent is None:
            raise ToolFailed(f"{tool} returned no structured content: {text[:200]}")
        return result.structuredContent

    async def _call(self, tool: str, **arguments: Any) -> dict[str, Any]:
        """Call a tool in this backend's session, from any event loop."""

        async def on_loop() -> dict[str, Any]:
            await self._open()
            return await self._call_on_loop(tool, {**arguments, "session_id": self._session_id})

        return await self._runner.call(on_loop())

    async def _transfer(self, tool: str, **arguments: Any) -> dict[str, Any]:
        async def on_loop() -> dict[str, Any]:
            await self._open()
            assert self._transfers is not None
            async with self._transfers:
                return await self._call_on_loop(tool, {**arguments, "session_id": self._session_id})

        return await self._runner.call(on_loop())

    async def aexecute(self, command: str, *, timeout: int | None = None) -> ExecuteResponse:
        limit = self._default_timeout if timeout in (None, 0) else timeout  # 0: the server's default
        # deepagents reads files in pages of up to 500 KiB through execute: ask for the largest output cap
        cap = {"max_output_bytes": self._caps.output_bytes} if self._caps.output_bytes else {}
        try:
            output = await self._call("execute", command=command, timeout=limit, **cap)
            stdout, stderr, dropped = output["stdout"], output["stderr"], output.get("dropped_bytes", 0)
            while output.get("state") == "running":
                # The server detached a long command into a job; deepagents expects the call to block until the
                # command ends (within its own timeout, which the server enforces), so follow the job.
                output = await self._call(
                    "job_wait", job_id=output["job_id"], timeout=_JOB_WAIT, cursor=output["cursor"], **cap
                )
                stdout, stderr = stdout + output["stdout"], stderr + output["stderr"]
                dropped += output.get("dropped_bytes", 0)
        except errors.InvalidArgumentError as error:
            raise ValueError(str(error)) from None  # deepagents tells the model "Invalid parameter"
        except SandboxError as error:
            return execute_error(error)
        return execute_response(
            CommandResult(
                stdout=stdout,
                stderr=stderr,
                exit_code=output["exit_code"],
                duration=output["duration_seconds"],
                timed_out=output.get("state") == "timed_out",
                dropped_bytes=dropped,
            )
        )

    async def aupload_files(self, files: list[tuple[str, bytes]]) -> list[FileUploadResponse]:
        return list(await asyncio.gather(*(self._upload(path, data) for path, data in files)))

    async def _upload(self, path: str, data: bytes) -> FileUploadResponse:
        if is_relative(path):
            return FileUploadResponse(path=path, error="invalid_path")
        piece = self._caps.piece_bytes or max(len(data), 1)
        whole = {"size": len(data), "sha256": hashlib.sha256(data).hexdigest()}
        try:
            # in pieces the server can take, the one that ends the file last: it writes the file
            for offset in range(0, max(len(data), 1), piece):
                content = base64.b64encode(data[offset : offset + piece]).decode("ascii")
                await self._transfer(
                    "upload_file", path=path, content=content, encoding="base64", offset=offset, **whole
                )
        except SandboxError as error:
            return FileUploadResponse(path=path, error=file_error_of(error))
        return FileUploadResponse(path=path)

    async def adownload_files(self, paths: list[str]) -> list[FileDownloadResponse]:
        return list(await asyncio.gather(*(self._download(path) for path in paths)))

    async def _download(self, path: str) -> FileDownloadResponse:
        if is_relative(path):
            return FileDownloadResponse(path=path, error="invalid_path")
        try:
            for _ in range(_READ_ATTEMPTS):
                content, digest = await self._pieces(path)
                if hashlib.sha256(content).hexdigest() == digest:
                    return FileDownloadResponse(path=path, content=content)
        except SandboxError as error:
            return FileDownloadResponse(path=path, error=file_error_of(error))
        # it kept changing while its pieces were read: no consistent content to give
        return FileDownloadResponse(path=path, error=file_error(errors.TimedOutError.code))

    async def _pieces(self, path: str) -> tuple[bytes, str]:
        """The file's content, piece by piece as the server gives it, and the whole file's sha256 it gave last."""
        content = bytearray()
        offset: int | None = 0
        digest = ""
        while offset is not None:
            piece = await self._transfer("download_file", path=path, encoding="base64", offset=offset)
            content += base64.b64decode(piece["content"])
            offset, digest = piece.get("next_offset"), piece["sha256"]
        return bytes(content), digest

    def fork(self) -> McpSandboxBackend:
        """A backend on a fork of this session (the server's `fork_session`): a new session with a copy of its
        files and its network, independent from then on, closed by the new backend's `close()`."""
        return self._runner.run(self._fork())

    async def afork(self) -> McpSandboxBackend:
        """`fork()` for async code."""
        return await self._runner.call(self._fork())

    async def _fork(self) -> McpSandboxBackend:
        await self._open()
        forked = await self._call_on_loop("fork_session", {"session_id": self._session_id})
        backend = McpSandboxBackend(self._connect, session_id=str(forked["session_id"]), timeout=self._default_timeout)
        backend._owns_session = True
        return backend

    async def asuspend(self) -> None:
        """Suspend the session (`suspend_session`): its processes end, its files stay; the next call resumes it."""
        await self._call("suspend_session")

    def suspend(self) -> None:
        self._runner.run(self.asuspend())

    async def aclose(self) -> None:
        """Close the session if this backend created it, then the connection and the private loop."""
        await self._runner.call(self._close_on_loop())
        self._runner.close()

    async def _close_on_loop(self) -> None:
        if self._client is not None and self._owns_session and self._session_id is not None:
            with contextlib.suppress(SandboxError):  # already gone: closing is what was wanted
                await self._call_on_loop("close_session", {"session_id": self._session_id})
            self._session_id = None
        if self._closing is not None and self._holder is not None:
            self._closing.set()
            await self._holder
            self._holder = None

    def close(self) -> None:
        self._runner.run(self._close_on_loop())
        super().close()
