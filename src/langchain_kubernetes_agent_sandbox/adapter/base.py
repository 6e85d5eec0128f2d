"""A deepagents `BaseSandbox` written async first: the sync API runs the async one on a private loop."""

from __future__ import annotations

import abc
from typing import Self

from deepagents.backends.protocol import ExecuteResponse, FileDownloadResponse, FileUploadResponse
from deepagents.backends.sandbox import BaseSandbox

from .loop import LoopThread


class AsyncFirstSandbox(BaseSandbox, abc.ABC):
    """Subclasses implement `aexecute`, `aupload_files` and `adownload_files`; the sync trio follows."""

    def __init__(self) -> None:
        self._runner = LoopThread()

    @abc.abstractmethod
    async def aexecute(self, command: str, *, timeout: int | None = None) -> ExecuteResponse:
        """Run `command` through a shell; `timeout` seconds, `None` for the default, `0` for the longest allowed."""

    @abc.abstractmethod
    async def aupload_files(self, files: list[tuple[str, bytes]]) -> list[FileUploadResponse]: ...

    @abc.abstractmethod
    async def adownload_files(self, paths: list[str]) -> list[FileDownloadResponse]: ...

    def execute(self, command: str, *, timeout: int | None = None) -> ExecuteResponse:
        return self._runner.run(self.aexecute(command, timeout=timeout))

    def upload_files(self, files: list[tuple[str, bytes]]) -> list[FileUploadResponse]:
        return self._runner.run(self.aupload_files(files))

    def download_files(self, paths: list[str]) -> list[FileDownloadResponse]:
        return self._runner.run(self.adownload_files(paths))

    def close(self) -> None:
        """Stop the private loop; subclasses release what they opened first."""
        self._runner.close()

    async def aclose(self) -> None:
        self._runner.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()
