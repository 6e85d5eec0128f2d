"""The one wrapper around every tool call: metrics, the audit log line and an OpenTelemetry span.

The audit line says who (principal), where (session), what (tool), how it ended (outcome: ok or the error
code), how long it took and how many bytes moved. It never holds arguments or results: no code, no commands,
no file contents, no paths, no tokens.
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from ..errors import QuotaExceededError
from .failures import classify
from .metrics import ServerMetrics
from .models import ClosedSession, CommandOutput, Rendered

audit_logger = logging.getLogger("langchain_kubernetes_agent_sandbox.audit")
audit_logger.setLevel(logging.INFO)
"""Audit lines are written at INFO whatever the server's log level."""

try:
    from opentelemetry import trace as _trace

    _tracer: Any = _trace.get_tracer("langchain_kubernetes_agent_sandbox.server")
except ImportError:  # pragma: no cover - opentelemetry-api comes with the dependencies, but is not required
    _tracer = None

UPLOADING_TOOLS = frozenset({"upload_file"})
_current: contextvars.ContextVar[ToolCall | None] = contextvars.ContextVar("tool_call", default=None)


@dataclass
class ToolCall:
    """One tool call in progress; the wrapper fills in the result or the failure."""

    tool: str
    principal: str
    session_id: str | None
    started: float = field(default_factory=time.perf_counter)
    outcome: str = "ok"
    bytes_in: int = 0
    bytes_out: int = 0
    job: tuple[str, bool] | None = None
    """The job the result reported (every command runs as one) and whether it still runs."""
    closed: bool = False

    def succeeded(self, result: Rendered) -> None:
        """Note what the tool's result says: its session, its job, the bytes it moved."""
        self.session_id = getattr(result, "session_id", None) or self.session_id
        if isinstance(result, CommandOutput):
            self.job = (result.job_id, result.running)
        self.closed = isinstance(result, ClosedSession)
        if self.tool in UPLOADING_TOOLS:
            self.bytes_in += result.moved_bytes
        else:
            self.bytes_out += result.moved_bytes

    def failed(self, error: BaseException) -> None:
        self.outcome = classify(error).code


def record_result(result: Rendered) -> None:
    """Tell the call in progress (if any) what its tool returned; `reply` does this for every result."""
    call = _current.get()
    if call is not None:
        call.succeeded(result)


@contextlib.contextmanager
def observed(metrics: ServerMetrics, tool: str, principal: str, arguments: Mapping[str, Any]) -> Iterator[ToolCall]:
    """Count, time, trace and audit the tool call made inside the block."""
    requested = arguments.get("session_id")
    call = ToolCall(tool, principal, requested if isinstance(requested, str) else None)
    span_context: contextlib.AbstractContextManager[Any] = (
        _tracer.start_as_current_span(f"tools/call {tool}", attributes={"mcp.tool": tool})
        if _tracer is not None
        else contextlib.nullcontext()
    )
    with span_context as span:
        token = _current.set(call)
        try:
            yield call
        except BaseException as error:
            if call.outcome == "ok":  # the caller may have named the failure from the original error already
                call.failed(error)
            raise
        finally:
            _current.reset(token)
            duration = time.perf_counter() - call.started
            _record(metrics, call, duration)
            if span is not None and call.outcome != "ok":
                span.set_attribute("mcp.outcome", call.outcome)


def _record(metrics: ServerMetrics, call: ToolCall, duration: float) -> None:
    metrics.tool_calls.labels(tool=call.tool, outcome=call.outcome).inc()
    metrics.tool_latency.labels(tool=call.tool).observe(duration)
    if call.bytes_in:
        metrics.bytes_moved.labels(tool=call.tool, direction="in").inc(call.bytes_in)
    if call.bytes_out:
        metrics.bytes_moved.labels(tool=call.tool, direction="out").inc(call.bytes_out)
    if call.outcome == QuotaExceededError.code:
        metrics.quota_refusals.labels(tool=call.tool).inc()
    if call.session_id is not None and call.job is not None:
        metrics.saw_job(call.session_id, *call.job)
    if call.session_id is not None and call.closed:
        metrics.session_closed(call.session_id)
    audit_logger.info(
        "tool call %s by %s: %s in %.3f s",
        call.tool,
        call.principal,
        call.outcome,
        duration,
        extra={
            "audit": {
                "event": "tool_call",
                "principal": call.principal,
                "session": call.session_id,
                "tool": call.tool,
                "outcome": call.outcome,
                "duration_seconds": round(duration, 6),
                "bytes_in": call.bytes_in,
                "bytes_out": call.bytes_out,
            }
        },
    )
