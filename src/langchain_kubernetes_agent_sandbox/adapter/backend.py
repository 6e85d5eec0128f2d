"""A deepagents backend over any of this package's sandboxes: local or Kubernetes, new or an existing session."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Coroutine
from typing import Any, TypeVar

from deepagents.backends.protocol import ExecuteResponse, FileDownloadResponse, FileUploadResponse

from ..errors import InvalidArgumentError, SandboxError
from ..limits import ExecutionLimits
from ..output import OutputLimit
from ..sandbox import Sandbox, SandboxProvider
from ..sessions import SessionPolicy
from .base import AsyncFirstSandbox
from .loop import LoopThread
from .translate import execute_error, execute_response, file_error_of, is_relative

T = TypeVar("T")
B = TypeVar("B", bound="SandboxBackend")

ADAPTER_LIMITS = ExecutionLimits(output=OutputLimit(max_bytes=2 * 1024 * 1024))
"""deepagents reads a file page by printing up to 500 KiB (683 KiB as base64), so output caps must exceed it."""
FORK_MAX_BYTES = SessionPolicy().max_fork_bytes
"""The largest workspace a backend's `fork()` copies unless told otherwise: the server's default."""
RESUME_TIMEOUT = SessionPolicy().resume_timeout
"""How long opening a suspended sandbox waits for it to start again: the server's default."""


class SandboxBackend(AsyncFirstSandbox):
    """Give a deep agent one sandbox: `create_deep_agent(model=..., backend=SandboxBackend.local())`.

    Every sandbox call runs on the backend's own event loop, because clients such as the Kubernetes
    provider's are bound to the loop that first used them; `open(provider)` makes (or, given a session id,
    finds) the sandbox on that loop. A sandbox passed to the constructor must be usable from any loop (local
    ones are). `open(provider, sandbox_id=...)` reaches the same files the MCP server serves for that
    session, and resumes it if it is suspended (see `suspend`). A backend terminates only a sandbox it created.
    """

    def __init__(self, sandbox: Sandbox, *, timeout: float | None = None) -> None:
        super().__init__()
        self.core = sandbox
        """The sandbox this backend drives (the package's own `Sandbox`, whatever its provider)."""
        self._default_timeout = timeout
        self._created_by: SandboxProvider | None = None
        self._provider: SandboxProvider | None = None
        self._close_provider = False

    @classmethod
    def open(
        cls,
        provider: SandboxProvider,
        *,
        sandbox_id: str | None = None,
        timeout: float | None = None,
        close_provider: bool = False,
    ) -> SandboxBackend:
        """A backend on a new sandbox from `provider` (terminated by `close()`), or on `sandbox_id` (left open)."""
        runner = LoopThread()
        return cls._assemble(
            runner, runner.run(_sandbox_of(provider, sandbox_id)), provider, sandbox_id, timeout, close_provider
        )

    @classmethod
    async def aopen(
        cls,
        provider: SandboxProvider,
        *,
        sandbox_id: str | None = None,
        timeout: float | None = None,
        close_provider: bool = False,
    ) -> SandboxBackend:
        """`open()` for async code: `async with await SandboxBackend.aopen(provider) as backend: ...`."""
        runner = LoopThread()
        sandbox = await runner.call(_sandbox_of(provider, sandbox_id))
        return cls._assemble(runner, sandbox, provider, sandbox_id, timeout, close_provider)

    @classmethod
    def _assemble(
        cls,
        runner: LoopThread,
        sandbox: Sandbox,
        provider: SandboxProvider,
        sandbox_id: str | None,
        timeout: float | None,
        close_provider: bool,
    ) -> SandboxBackend:
        backend = cls(sandbox, timeout=timeout)
        backend._runner = runner
        backend._created_by = provider if sandbox_id is None else None
        backend._provider = provider
        backend._close_provider = close_provider
        return backend

    def fork(self, *, max_bytes: int = FORK_MAX_BYTES) -> SandboxBackend:
        """A backend on a fork of this sandbox: a new sandbox from the same provider with a copy of its files
        (`/app`, at most `max_bytes`) and its network, independent from then on, with no processes and a fresh
        kernel (see `SandboxProvider.fork`). The fork is terminated by the new backend's `close()`; close each
        backend once."""
        return self._runner.run(self._fork(max_bytes))

    async def afork(self, *, max_bytes: int = FORK_MAX_BYTES) -> SandboxBackend:
        """`fork()` for async code."""
        return await self._runner.call(self._fork(max_bytes))

    async def _fork(self, max_bytes: int) -> SandboxBackend:
        provider = self._provider
        if provider is None:
            raise InvalidArgumentError(
                "This backend was given a sandbox, not a provider, so it cannot make a new one: open it with "
                "SandboxBackend.open(provider, sandbox_id=...) to fork it."
            )
        forked = SandboxBackend(await provider.fork(self.core, max_bytes=max_bytes), timeout=self._default_timeout)
        return self._sharing(forked, created_by=provider)

    def _sharing(self, forked: B, *, created_by: SandboxProvider | None) -> B:
        """`forked` on this backend's loop, which its sandbox is bound to; the provider is closed (if this
        backend was to close it) by whichever of the two closes last."""
        forked._runner = self._runner.share()
        forked._created_by = created_by
        forked._provider = self._provider
        forked._close_provider = self._close_provider
        return forked

    @classmethod
    def local(
        cls,
        state_dir: str | os.PathLike[str] | None = None,
        *,
        limits: ExecutionLimits = ADAPTER_LIMITS,
        timeout: float | None = None,
    ) -> SandboxBackend:
        """A new local embedded sandbox, terminated by `close()` (or at the end of a `with` block)."""
        from ..providers.local import LocalProvider

        return cls.open(LocalProvider(state_dir, limits=limits), timeout=timeout, close_provider=True)

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

        return await cls.aopen(LocalProvider(state_dir, limits=limits), timeout=timeout, close_provider=True)

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
            result = await self._runner.call(self.core.run(command, timeout=self._timeout(timeout)))
        except ValueError:
            raise  # a bad timeout or an empty command: deepagents tells the model "Invalid parameter"
        except SandboxError as error:
            return execute_error(error)
        return execute_response(result)

    async def aupload_files(self, files: list[tuple[str, bytes]]) -> list[FileUploadResponse]:
        return await self._runner.call(_gathered([self._upload(path, data) for path, data in files]))

    async def _upload(self, path: str, data: bytes) -> FileUploadResponse:
        if is_relative(path):
            return FileUploadResponse(path=path, error="invalid_path")
        try:
            await self.core.write_file(path, data)
        except SandboxError as error:
            return FileUploadResponse(path=path, error=file_error_of(error))
        return FileUploadResponse(path=path)

    async def adownload_files(self, paths: list[str]) -> list[FileDownloadResponse]:
        return await self._runner.call(_gathered([self._download(path) for path in paths]))

    async def _download(self, path: str) -> FileDownloadResponse:
        if is_relative(path):
            return FileDownloadResponse(path=path, error="invalid_path")
        try:
            content = await self.core.read_file(path)
        except SandboxError as error:
            return FileDownloadResponse(path=path, error=file_error_of(error))
        return FileDownloadResponse(path=path, content=content)

    async def asuspend(self) -> None:
        """Suspend the sandbox where its provider keeps its files (`InvalidArgumentError` where it cannot): its
        processes end, the Python kernel's variables with them, its files stay; `resume` (or opening it again by id)
        starts it again."""
        await self._runner.call(self.core.suspend())

    def suspend(self) -> None:
        self._runner.run(self.core.suspend())

    async def aresume(self, timeout: float = RESUME_TIMEOUT) -> None:
        """Start the suspended sandbox again with its files (`NoCapacityError` when the cluster has no room: it stays
        suspended); a running one is left as it is."""
        await self._runner.call(_resumed(self.core, timeout))

    def resume(self, timeout: float = RESUME_TIMEOUT) -> None:
        self._runner.run(_resumed(self.core, timeout))

    async def aclose(self) -> None:
        """Terminate the sandbox if this backend made it; a sandbox passed in or found is left to its owner."""
        await self._runner.call(self._release())
        self._runner.close()

    async def _release(self) -> None:
        provider, self._created_by = self._created_by, None
        if provider is not None:
            await self.core.terminate()
        if self._close_provider and self._provider is not None and self._runner.last_user:
            self._close_provider = False
            await self._provider.aclose()

    def close(self) -> None:
        self._runner.run(self._release())
        super().close()


async def _sandbox_of(provider: SandboxProvider, sandbox_id: str | None) -> Sandbox:
    if sandbox_id is None:
        return await provider.create()
    return await _resumed(await provider.get(sandbox_id), RESUME_TIMEOUT)


async def _resumed(sandbox: Sandbox, timeout: float) -> Sandbox:
    if sandbox.info.suspended:
        await sandbox.resume(timeout)
    return sandbox


async def _gathered(calls: list[Coroutine[Any, Any, T]]) -> list[T]:
    return list(await asyncio.gather(*calls))
