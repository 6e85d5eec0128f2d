"""One taxonomy of sandbox errors, shared by every layer.

Providers translate their libraries' exceptions into these in exactly one place each; the MCP server and the
deepagents adapters map these to their own vocabularies. Every message says what was wrong and what to do.
"""

from __future__ import annotations

TOOL_ERROR_META = "kubernetes-agent-sandbox/error"
"""The key of an MCP tool error's `_meta` under which the server sends the error's `code` (one of these classes'),
`message` and `remedy`, and the MCP-backed clients read them: the format's one definition."""


class SandboxError(Exception):
    """Base of every error this package raises on purpose."""

    code = "sandbox_error"


class InvalidArgumentError(SandboxError, ValueError):
    """An argument is out of range or malformed (a negative timeout, an unknown setting)."""

    code = "invalid_argument"


class InvalidPathError(InvalidArgumentError):
    """A path is empty, holds a NUL byte, escapes the filesystem root, or names the wrong kind of object."""

    code = "invalid_path"


class NotFoundError(SandboxError, LookupError):
    """A file, directory or sandbox does not exist (or is not visible to the caller)."""

    code = "not_found"


class PermissionDeniedError(SandboxError, PermissionError):
    """The sandbox user may not read or write that path."""

    code = "permission_denied"


class IsDirectoryError(SandboxError):
    """A file operation named a directory."""

    code = "is_directory"


class TooLargeError(SandboxError):
    """Content exceeds a configured size limit."""

    code = "too_large"


class TimedOutError(SandboxError, TimeoutError):
    """An operation other than a command run did not finish in time (a command run reports it in its result)."""

    code = "timed_out"


class SandboxGoneError(SandboxError):
    """The sandbox was terminated, expired, or lost its workspace; create a new one."""

    code = "sandbox_gone"


class QuotaExceededError(SandboxError):
    """A per-owner limit (sessions, concurrent runs) was reached."""

    code = "quota_exceeded"


class DiskQuotaExceededError(QuotaExceededError):
    """A write found the sandbox's disk quota (bytes or files) used up; deleting files makes room again."""


class BackendUnavailableError(SandboxError):
    """The provider cannot be reached or cannot work on this host (missing bubblewrap, cluster down)."""

    code = "backend_unavailable"


class NoCapacityError(BackendUnavailableError):
    """The cluster has no room to start a sandbox's pod now (a resume or a claim); retrying later may succeed."""

    code = "no_capacity"


__all__ = [
    "BackendUnavailableError",
    "DiskQuotaExceededError",
    "InvalidArgumentError",
    "InvalidPathError",
    "IsDirectoryError",
    "NoCapacityError",
    "NotFoundError",
    "PermissionDeniedError",
    "QuotaExceededError",
    "SandboxError",
    "SandboxGoneError",
    "TimedOutError",
    "TooLargeError",
]
