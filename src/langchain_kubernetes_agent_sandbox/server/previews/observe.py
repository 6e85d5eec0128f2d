"""Metrics and audit lines of preview traffic, like those of tool calls (`server/observe.py`): who, which session
and port, how it ended, how long it took, how many bytes moved. Never a path, a header or a body."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Literal

from prometheus_client import Counter

from ..metrics import PREFIX, ServerMetrics
from ..observe import audit_logger
from .table import Preview

logger = logging.getLogger(__name__)

Kind = Literal["http", "websocket"]


class PreviewMetrics:
    def __init__(self, metrics: ServerMetrics) -> None:
        self.requests = Counter(
            f"{PREFIX}_preview_requests",
            "Requests to previews by kind (http, websocket) and outcome (ok, refused, unreachable, too_large, "
            "timed_out, cut, bad_answer); refused ones named no live preview of the caller's, or no credentials.",
            ["kind", "outcome"],
            registry=metrics.registry,
        )
        self.bytes = Counter(
            f"{PREFIX}_preview_bytes",
            "Bytes through previews: in = to the sandbox, out = from it.",
            ["direction"],
            registry=metrics.registry,
        )


@dataclass
class PreviewCall:
    """One HTTP exchange or WebSocket through a preview, in progress."""

    kind: Kind
    preview: Preview
    started: float = field(default_factory=time.perf_counter)
    outcome: str = "ok"
    status: int | None = None
    responded: bool = False
    """Whether the port's response has started to pass (after that a failure can only cut it)."""
    bytes_in: int = 0
    bytes_out: int = 0

    def record(self, metrics: PreviewMetrics) -> None:
        duration = time.perf_counter() - self.started
        metrics.requests.labels(kind=self.kind, outcome=self.outcome).inc()
        if self.bytes_in:
            metrics.bytes.labels(direction="in").inc(self.bytes_in)
        if self.bytes_out:
            metrics.bytes.labels(direction="out").inc(self.bytes_out)
        preview = self.preview
        audit_logger.info(
            "preview %s by %s on port %d: %s in %.3f s",
            self.kind,
            preview.principal,
            preview.port,
            self.outcome,
            duration,
            extra={
                "audit": {
                    "event": "preview_request",
                    "principal": preview.principal,
                    "session": preview.session_id,
                    "port": preview.port,
                    "kind": self.kind,
                    "outcome": self.outcome,
                    "status": self.status,
                    "duration_seconds": round(duration, 6),
                    "bytes_in": self.bytes_in,
                    "bytes_out": self.bytes_out,
                }
            },
        )


def record_refusal(metrics: PreviewMetrics, kind: Kind, principal: str | None, status: int) -> None:
    """A request that reached no preview: no valid credentials (401), or no live preview of the caller's (404)."""
    metrics.requests.labels(kind=kind, outcome="refused").inc()
    audit_logger.info(
        "preview %s by %s refused: %d",
        kind,
        principal or "an unauthenticated caller",
        status,
        extra={
            "audit": {"event": "preview_refused", "principal": principal, "kind": kind, "status": status},
        },
    )
