"""A deepagents backend whose every operation is a tool call to this project's MCP server.

The MCP client session is bound to the event loop that opened it, so it lives on the backend's private loop
(in one long-lived task, as anyio requires) and async callers on any other loop hop onto it.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
from typing import Any

from deepagents.backends.protocol import ExecuteResponse, FileDownloadResponse, FileUploadResponse
from mcp import ClientSession
from mcp.types import TextContent

from .. import errors
from ..errors import BackendUnavailableError, SandboxError
from ..results import CommandResult
from .base import AsyncFirstSandbox
from .mcp_connect import Connect
from .translate import execute_error, execute_response, file_error_of, is_relative

_ERRORS: dict[str, type[SandboxError]] = {
    cls.code: cls for cls in (getattr(errors, name) for name in errors.__all__) if issubclass(cls, SandboxError)
}
_PARALLEL_TRANSFERS = 4
"""Files moved at once in a batch; the server bounds each principal's concurrent calls (8 by default)."""


_JOB_WAIT = 60.0
"""Seconds of each job_wait call while following a command the server detached."""


class ToolFailed(SandboxError):
    """The server answered with an error whose code this client does not know."""


def _server_error(result_text: str) -> SandboxError:
    """Rebuild the taxonomy error from the server's `<code>: <message>` error text."""
    code, _, message = result_text.partition(": ")
    error = _ERRORS.get(code, ToolFailed)(message or result_text)
    if error.__class__ is ToolFailed:
        error.code = code if code.isidentifier() else ToolFailed.code
    return error


class McpSandboxBackend(AsyncFirstSandbox):
    """A deep agent's sandbox on a remote server: `McpSandboxBackend(mcp_connect.http(url))`.

    With no `session_id` it creates its own session on first use and closes it in `close()`; given one, it
    works in that session and leaves it open.
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
                self._client = await ready
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
            raise _server_error(text)
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
        try:
            output = await self._call("execute", command=command, timeout=limit)
            stdout, stderr, dropped = output["stdout"], output["stderr"], output["dropped_bytes"]
            while output.get("running"):
                # The server detached a long command into a job; deepagents expects the call to block until the
                # command ends (within its own timeout, which the server enforces), so follow the job.
                output = await self._call(
                    "job_wait", job_id=output["job_id"], timeout=_JOB_WAIT, cursor=output["cursor"]
                )
                stdout, stderr = stdout + output["stdout"], stderr + output["stderr"]
                dropped += output["dropped_bytes"]
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
                timed_out=output["timed_out"],
                dropped_bytes=dropped,
            )
        )

    async def aupload_files(self, files: list[tuple[str, bytes]]) -> list[FileUploadResponse]:
        return list(await asyncio.gather(*(self._upload(path, data) for path, data in files)))

    async def _upload(self, path: str, data: bytes) -> FileUploadResponse:
        if is_relative(path):
            return FileUploadResponse(path=path, error="invalid_path")
        content = base64.b64encode(data).decode("ascii")
        try:
            await self._transfer("upload_file", path=path, content=content, encoding="base64")
        except SandboxError as error:
            return FileUploadResponse(path=path, error=file_error_of(error))
        return FileUploadResponse(path=path)

    async def adownload_files(self, paths: list[str]) -> list[FileDownloadResponse]:
        return list(await asyncio.gather(*(self._download(path) for path in paths)))

    async def _download(self, path: str) -> FileDownloadResponse:
        if is_relative(path):
            return FileDownloadResponse(path=path, error="invalid_path")
        try:
            downloaded = await self._transfer("download_file", path=path, encoding="base64")
        except SandboxError as error:
            return FileDownloadResponse(path=path, error=file_error_of(error))
        return FileDownloadResponse(path=path, content=base64.b64decode(downloaded["content"]))

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
