"""Safe places for AI agents to run code: agent-sandbox pods on Kubernetes, or isolated local workspaces."""

from .errors import (
    BackendUnavailableError,
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

__version__ = "0.3.0"

__all__ = [
    "WORKDIR",
    "BackendUnavailableError",
    "CommandResult",
    "ExecutionLimits",
    "FileEntry",
    "InvalidArgumentError",
    "InvalidPathError",
    "IsDirectoryError",
    "NotFoundError",
    "OutputLimit",
    "PermissionDeniedError",
    "QuotaExceededError",
    "Sandbox",
    "SandboxError",
    "SandboxGoneError",
    "SandboxInfo",
    "SandboxProvider",
    "TimedOutError",
    "TooLargeError",
    "__version__",
]
