"""The one place where this package's results and errors become deepagents' vocabulary."""

from __future__ import annotations

from deepagents.backends.protocol import (
    FILE_NOT_FOUND,
    INVALID_PATH,
    IS_DIRECTORY,
    PERMISSION_DENIED,
    ExecuteResponse,
    FileOperationError,
)

from ..errors import SandboxError
from ..results import CommandResult

_FILE_ERRORS: dict[str, FileOperationError] = {
    "not_found": FILE_NOT_FOUND,
    "sandbox_gone": FILE_NOT_FOUND,  # the file went with its sandbox
    "is_directory": IS_DIRECTORY,
    "invalid_path": INVALID_PATH,
    "invalid_argument": INVALID_PATH,
    "permission_denied": PERMISSION_DENIED,
    "too_large": PERMISSION_DENIED,  # refused by a limit, like a quota on the filesystem
    "quota_exceeded": PERMISSION_DENIED,
}
"""deepagents knows four causes; every other failure means "you may not do this now", the nearest literal."""


def file_error(code: str) -> FileOperationError:
    """The deepagents literal for one of `errors.py`'s codes (or a code sent back by the MCP server)."""
    return _FILE_ERRORS.get(code, PERMISSION_DENIED)


def file_error_of(error: SandboxError) -> FileOperationError:
    return file_error(error.code)


def is_relative(path: str) -> bool:
    """deepagents hands backends absolute paths only; a relative one is refused as `invalid_path`."""
    return not path.startswith("/")


def execute_response(result: CommandResult) -> ExecuteResponse:
    """stdout then stderr, both kept: the agent needs the traceback as much as the prints."""
    output = result.stdout
    if result.stderr:
        output += ("" if not output or output.endswith("\n") else "\n") + result.stderr
    if result.timed_out:
        output += (
            ("" if not output or output.endswith("\n") else "\n")
            + f"Error: Command timed out after {result.duration:.0f} seconds and was killed, with everything it "
            "started; the output above is what it wrote until then."
        )
    return ExecuteResponse(output=output, exit_code=result.exit_code, truncated=result.truncated)


def execute_error(error: SandboxError) -> ExecuteResponse:
    """A failure to run at all, told to the agent instead of raised into the graph."""
    return ExecuteResponse(output=f"Error: the command could not run ({error.code}): {error}", exit_code=1)
