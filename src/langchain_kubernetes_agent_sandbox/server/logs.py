"""Logging for the server: one JSON object per line when stderr is not a terminal (log collectors), plain
text on a terminal. Audit records (`observe.py`) carry their fields under `audit`, which JSON lines flatten."""

from __future__ import annotations

import datetime
import json
import logging
import sys
from typing import IO, Any

import anyio

SDK_HTTP_TRANSPORT = "mcp.server.streamable_http"


class JsonFormatter(logging.Formatter):
    """`{"time", "level", "logger", "message", ...audit fields, "exception"?}` on one line."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.datetime.fromtimestamp(record.created, datetime.UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        audit = getattr(record, "audit", None)
        if isinstance(audit, dict):
            line.update(audit)
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str)


def configure_logging(level: str, stream: IO[str] | None = None, *, json_lines: bool | None = None) -> None:
    """Log to `stream` (stderr) at `level`; JSON unless the stream is a terminal (or `json_lines` says)."""
    stream = stream or sys.stderr
    if json_lines is None:
        json_lines = not stream.isatty()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter() if json_lines else logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)


class EndedSessionStreams(logging.Filter):
    """Drops the mcp 1.x SDK's "Error in standalone SSE writer" traceback for a session that ended while its
    client's GET stream was open (the client's DELETE, which mcp clients send on close, or an idle timeout):
    ending the session closes that stream under its writer, with `ClosedResourceError`. Nothing failed."""

    def filter(self, record: logging.LogRecord) -> bool:
        ended = record.exc_info is not None and isinstance(record.exc_info[1], anyio.ClosedResourceError)
        return not (ended and record.msg == "Error in standalone SSE writer")


def quiet_ended_session_streams() -> None:
    """Install `EndedSessionStreams` on the SDK's HTTP transport logger, once."""
    transport = logging.getLogger(SDK_HTTP_TRANSPORT)
    if not any(isinstance(known, EndedSessionStreams) for known in transport.filters):
        transport.addFilter(EndedSessionStreams())
