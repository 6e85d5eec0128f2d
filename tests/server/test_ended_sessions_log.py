"""A client that closes its HTTP session (mcp clients send DELETE on close) leaves nothing above INFO in the log."""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from pathlib import Path

import anyio
import pytest

from langchain_kubernetes_agent_sandbox.server.config import ServerConfig
from langchain_kubernetes_agent_sandbox.server.logs import SDK_HTTP_TRANSPORT, EndedSessionStreams
from tests.server.http_serving import http_server, mcp_client
from tests.server.mcp_calls import call

TOKEN = "ended-token-0123456789abcdef"


async def test_closing_a_session_logs_no_error(
    make_config: Callable[..., ServerConfig], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    tokens = tmp_path / "tokens.txt"
    tokens.write_text(f"{TOKEN} alice\n")
    with caplog.at_level(logging.WARNING):
        async with http_server(make_config(transport="http", token_file=tokens)) as url:
            for _ in range(3):
                async with mcp_client(url, TOKEN) as client:
                    await call(client, "list_sessions")
    assert [record.getMessage() for record in caplog.records if record.levelno >= logging.WARNING] == []


def sse_writer_failure(error: BaseException) -> logging.LogRecord:
    try:
        raise error
    except BaseException:
        exc_info = sys.exc_info()
    return logging.LogRecord(
        SDK_HTTP_TRANSPORT, logging.ERROR, __file__, 1, "Error in standalone SSE writer", (), exc_info
    )


def test_a_real_failure_of_the_stream_is_still_logged() -> None:
    assert not EndedSessionStreams().filter(sse_writer_failure(anyio.ClosedResourceError()))
    assert EndedSessionStreams().filter(sse_writer_failure(RuntimeError("broken")))
