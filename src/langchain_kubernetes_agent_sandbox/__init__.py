"""Safe places for AI agents to run code: agent-sandbox pods on Kubernetes, or isolated local workspaces."""

from typing import TYPE_CHECKING, Any

from .errors import (
    BackendUnavailableError,
    DiskQuotaExceededError,
    InvalidArgumentError,
    InvalidPathError,
    IsDirectoryError,
    NotFoundError,
    PermissionDeniedError,
    QuotaExceededError,
    SandboxError,
    SandboxGoneError,
    TimedOutError,
    TooLargeError,
)
from .limits import ExecutionLimits
from .output import OutputLimit
from .paths import WORKDIR
from .results import CommandResult, FileEntry
from .sandbox import Sandbox, SandboxInfo, SandboxProvider

if TYPE_CHECKING:
    from .adapter import (
        KubernetesAgentSandbox,
        McpSandboxBackend,
        SandboxBackend,
        execute_python_tool,
        sandbox_per_run,
        sandbox_per_run_sync,
    )

_ADAPTER_NAMES = frozenset(
    {
        "KubernetesAgentSandbox",
        "McpSandboxBackend",
        "SandboxBackend",
        "execute_python_tool",
        "sandbox_per_run",
        "sandbox_per_run_sync",
    }
)
"""The deepagents doors, imported on first use so the server does not load deepagents to start."""


def __getattr__(name: str) -> Any:
    if name in _ADAPTER_NAMES:
        from . import adapter

        return getattr(adapter, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__version__ = "0.3.0"

__all__ = [
    "WORKDIR",
    "BackendUnavailableError",
    "CommandResult",
    "DiskQuotaExceededError",
    "ExecutionLimits",
    "FileEntry",
    "InvalidArgumentError",
    "InvalidPathError",
    "IsDirectoryError",
    "KubernetesAgentSandbox",
    "McpSandboxBackend",
    "NotFoundError",
    "OutputLimit",
    "PermissionDeniedError",
    "QuotaExceededError",
    "Sandbox",
    "SandboxBackend",
    "SandboxError",
    "SandboxGoneError",
    "SandboxInfo",
    "SandboxProvider",
    "TimedOutError",
    "TooLargeError",
    "__version__",
    "execute_python_tool",
    "sandbox_per_run",
    "sandbox_per_run_sync",
]
