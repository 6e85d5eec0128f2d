"""A deepagents backend over any of this package's sandboxes: local or Kubernetes, new or an existing session."""

from __future__ import annotations

import asyncio
import os
from types import TracebackType

from deepagents.backends.protocol import ExecuteResponse, FileDownloadResponse, FileUploadResponse

from ..errors import SandboxError
from ..limits import ExecutionLimits
from ..output import OutputLimit
from ..sandbox import Sandbox, SandboxProvider
from .base import AsyncFirstSandbox
from .loop import LoopThread
from .translate import execute_error, execute_response, file_error_of, is_relative

ADAPTER_LIMITS = ExecutionLimits(output=OutputLimit(max_bytes=2 * 1024 * 1024))
"""deepagents reads a file page by printing up to 500 KiB (683 KiB as base64), so output caps must exceed it."""


class SandboxBackend(AsyncFirstSandbox):
    """Give a deep agent one sandbox: `create_deep_agent(model=..., backend=SandboxBackend.local())`.

    Wrapping an existing sandbox (`SandboxBackend(await provider.get(session_id))`) reaches the same files the
    MCP server serves for that session. The caller owns a sandbox it passes in; `local()` owns the one it makes.
    """

    def __init__(
        self,
        sandbox: Sandbox,
        *,
        timeout: float | None = None,
        provider: SandboxProvider | None = None,
    ) -> None:
        super().__init__()
        self.core = sandbox
        """The sandbox this backend drives (the package's own `Sandbox`, whatever its provider)."""
        self._default_timeout = timeout
        self._owning_provider = provider

    @classmethod
    def local(
        cls,
        state_dir: str | os.PathLike[str] | None = None,
        *,
        limits: ExecutionLimits = ADAPTER_LIMITS,
        timeout: float | None = None,
    ) -> SandboxBackend:
        """A new local embedded sandbox, terminated by `close()` (or at the end of a `with` block)."""
        runner = LoopThread("kas-adapter-create")
        try:
            return runner.run(cls.alocal(state_dir, limits=limits, timeout=timeout))
        finally:
            runner.close()

    @classmethod
    async def alocal(
        cls,
        state_dir: str | os.PathLike[str] | None = None,
        *,
        limits: ExecutionLimits = ADAPTER_LIMITS,
        timeout: float | None = None,
    ) -> SandboxBackend:
        """`local()` for async code: `async with await SandboxBackend.alocal() as backend: ...`."""
        from ..providers.local import LocalProvider

        provider = LocalProvider(state_dir, limits=limits)
        return cls(await provider.create(), timeout=timeout, provider=provider)

    @property
    def id(self) -> str:
        return self.core.id

    def _timeout(self, timeout: float | None) -> float | None:
        if timeout is None:
            return self._default_timeout
        if timeout == 0:  # the protocol's "no limit where supported": the longest the sandbox allows
            return self.core.limits.max_timeout
        return timeout

    async def aexecute(self, command: str, *, timeout: int | None = None) -> ExecuteResponse:
        try:
            result = await self.core.run(command, timeout=self._timeout(timeout))
        except ValueError:
            raise  # a bad timeout or an empty command: deepagents tells the model "Invalid parameter"
        except SandboxError as error:
            return execute_error(error)
        return execute_response(result)

    async def aupload_files(self, files: list[tuple[str, bytes]]) -> list[FileUploadResponse]:
        return list(await asyncio.gather(*(self._upload(path, data) for path, data in files)))

    async def _upload(self, path: str, data: bytes) -> FileUploadResponse:
        if is_relative(path):
            return FileUploadResponse(path=path, error="invalid_path")
        try:
            await self.core.write_file(path, data)
        except SandboxError as error:
            return FileUploadResponse(path=path, error=file_error_of(error))
        return FileUploadResponse(path=path)

    async def adownload_files(self, paths: list[str]) -> list[FileDownloadResponse]:
        return list(await asyncio.gather(*(self._download(path) for path in paths)))

    async def _download(self, path: str) -> FileDownloadResponse:
        if is_relative(path):
            return FileDownloadResponse(path=path, error="invalid_path")
        try:
            content = await self.core.read_file(path)
        except SandboxError as error:
            return FileDownloadResponse(path=path, error=file_error_of(error))
        return FileDownloadResponse(path=path, content=content)

    async def aclose(self) -> None:
        """Terminate the sandbox if this backend made it; a sandbox passed in is left to its owner."""
        if self._owning_provider is not None:
            await self.core.terminate()
            await self._owning_provider.aclose()
            self._owning_provider = None

    def close(self) -> None:
        self._runner.run(self.aclose())
        super().close()

    def __enter__(self) -> SandboxBackend:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    async def __aenter__(self) -> SandboxBackend:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()
        super().close()
