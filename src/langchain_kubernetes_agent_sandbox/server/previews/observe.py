"""Metrics and audit lines of preview traffic, like those of tool calls (`server/observe.py`): who, which session
and port, how it ended, how long it took, how many bytes moved. Never a path, a header or a body."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Literal

from ..metrics import ServerMetrics
from ..observe import audit_logger
from .table import Preview

logger = logging.getLogger(__name__)

Kind = Literal["http", "websocket"]


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

    def record(self, metrics: ServerMetrics) -> None:
        duration = time.perf_counter() - self.started
        metrics.preview_requests.labels(kind=self.kind, outcome=self.outcome).inc()
        if self.bytes_in:
            metrics.preview_bytes.labels(direction="in").inc(self.bytes_in)
        if self.bytes_out:
            metrics.preview_bytes.labels(direction="out").inc(self.bytes_out)
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


def record_refusal(metrics: ServerMetrics, kind: Kind, principal: str | None, status: int) -> None:
    """A request that reached no preview: no valid credentials (401), or no live preview of the caller's (404)."""
    metrics.preview_requests.labels(kind=kind, outcome="refused").inc()
    audit_logger.info(
        "preview %s by %s refused: %d",
        kind,
        principal or "an unauthenticated caller",
        status,
        extra={
            "audit": {"event": "preview_refused", "principal": principal, "kind": kind, "status": status},
        },
    )
