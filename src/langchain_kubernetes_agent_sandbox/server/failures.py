"""What a failed tool call says, decided once: its code (the taxonomy's), a message, and a remedy.

The same `Failure` becomes the tool error the client gets (readable text, and the fields in `_meta`), the outcome
label of the metrics and the audit line's outcome, so the three cannot disagree.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import asdict, dataclass

from mcp.server.fastmcp.exceptions import ToolError
from mcp.types import CallToolResult, TextContent
from pydantic import ValidationError

from .. import errors

logger = logging.getLogger(__name__)

INTERNAL_REMEDY = "Retry once; if it fails again, report it to the server's operator."
REMEDIES: dict[str, str] = {
    errors.InvalidArgumentError.code: "Fix the argument and call the tool again.",
    errors.InvalidPathError.code: "Give an absolute path, or one relative to /app, naming the right kind of object.",
    errors.NotFoundError.code: "Check the name (list_files, list_sessions) and call again with one that exists.",
    errors.PermissionDeniedError.code: "Use a path the sandbox user may read and write, such as one under /app.",
    errors.IsDirectoryError.code: "Name a file, or look into the directory with list_files.",
    errors.TooLargeError.code: "Move it in pieces (offset and size), or make it smaller inside the sandbox.",
    errors.TimedOutError.code: "Retry; if it times out again, do less in one call.",
    errors.SandboxGoneError.code: "Start over in a new session: create_session, or call without session_id.",
    errors.QuotaExceededError.code: "Close sessions you no longer need, wait for other calls to end, or free disk.",
    errors.BackendUnavailableError.code: "Retry in a while; if it persists, tell the server's operator.",
    "invalid_request": "Call a tool the server lists, with the arguments its schema gives.",
    "cancelled": "Call again if the result is still wanted.",
    "internal_error": INTERNAL_REMEDY,
}


@dataclass(frozen=True)
class Failure:
    """A failed call as the client sees it."""

    code: str
    message: str
    remedy: str
    text: str
    """The readable form: the code and the message, with the remedy where the message does not say it."""

    def as_result(self) -> CallToolResult:
        """The MCP tool error: readable text for a model, and `code`, `message` and `remedy` for programs in
        the result's `_meta` under `errors.TOOL_ERROR_META`. Not in its structured content: clients (the
        TypeScript SDK among them) check a tool error's structured content against the tool's output schema
        too, which describes the tool's success."""
        failure = {name: value for name, value in asdict(self).items() if name != "text"}
        text = [TextContent(type="text", text=self.text)]
        return CallToolResult.model_validate(
            {"content": text, "isError": True, "_meta": {errors.TOOL_ERROR_META: failure}}
        )


def classify(error: BaseException, tool: str = "the tool") -> Failure:
    """The failure `error` (raised by a tool, or the `ToolError` FastMCP wrapped it in) stands for."""
    cause = error.__cause__ if isinstance(error, ToolError) else error
    if isinstance(error, asyncio.CancelledError):
        return _failure("cancelled", f"{tool} was cancelled before it ended.")
    if isinstance(cause, errors.SandboxError):
        code = cause.code
        return Failure(code, str(cause), REMEDIES.get(code, INTERNAL_REMEDY), f"{code}: {cause}")
    if isinstance(cause, ValidationError):
        problems = "; ".join(
            f"{'.'.join(str(part) for part in problem['loc']) or 'arguments'}: {problem['msg']}"
            for problem in cause.errors(include_url=False)
        )
        return _failure("invalid_argument", problems, f"Fix the argument and call {tool} again.", separator=". ")
    if isinstance(error, ToolError) and cause is None:
        return Failure("invalid_request", str(error), REMEDIES["invalid_request"], str(error))
    logger.error("tool %s failed unexpectedly", tool, exc_info=cause)
    return _failure(
        "internal_error",
        f"{tool} failed unexpectedly ({type(cause).__name__}); the server log has the details.",
    )


def _failure(code: str, message: str, remedy: str | None = None, separator: str = " ") -> Failure:
    remedy = remedy or REMEDIES[code]
    return Failure(code, message, remedy, f"{code}: {message}{separator}{remedy}")
