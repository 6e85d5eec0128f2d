"""Metrics at /metrics and one audit line per tool call, after real tool calls through real MCP clients;
neither ever holds file contents, code or tokens."""

from __future__ import annotations

import base64
import io
import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from mcp.shared.memory import create_connected_server_and_client_session
from prometheus_client.parser import text_string_to_metric_families

from langchain_kubernetes_agent_sandbox.server.config import ServerConfig
from langchain_kubernetes_agent_sandbox.server.logs import JsonFormatter, configure_logging
from langchain_kubernetes_agent_sandbox.server.runtime import build_server, make_provider, session_policy
from langchain_kubernetes_agent_sandbox.sessions import SessionRegistry
from tests.server.http_serving import http_server, mcp_client
from tests.server.mcp_calls import call, data, fail

SECRET_FILE = "contents-never-logged-7f3a"
SECRET_CODE = "code-never-logged-91bc"
TOKEN = "audit-token-0123456789abcdef0123"
AUDIT = "langchain_kubernetes_agent_sandbox.audit"


def samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(found: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str) -> float:
    return found.get((name, frozenset(labels.items())), 0.0)


def audit_lines(caplog: pytest.LogCaptureFixture) -> list[dict[str, Any]]:
    return [record.audit for record in caplog.records if record.name == AUDIT]  # type: ignore[attr-defined]


async def test_tool_calls_show_in_metrics_and_the_audit_log(
    make_config: Callable[..., ServerConfig], caplog: pytest.LogCaptureFixture
) -> None:
    config = make_config(max_sessions=2)
    provider = make_provider(config)
    registry = SessionRegistry(provider, session_policy(config))
    server = build_server(config, registry)
    caplog.set_level(logging.INFO, logger=AUDIT)
    try:
        async with create_connected_server_and_client_session(server) as client:
            uploaded = await call(client, "upload_file", path="data.txt", content=SECRET_FILE)
            session = uploaded.structuredContent["session_id"]  # type: ignore[index]
            await call(client, "download_file", path="data.txt")
            await call(client, "execute_python", code=f"print('x' * 10)  # {SECRET_CODE}")
            await fail(client, "download_file", path="missing.txt")
            await fail(client, "execute", command="true", timeout=-1)
            await call(client, "create_session")
            await fail(client, "create_session")  # a third session: over max_sessions
        transport = httpx.ASGITransport(app=server.streamable_http_app())
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as http:
            response = await http.get("/metrics")
    finally:
        for sandbox in await provider.list():
            await sandbox.terminate()

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    text = response.text
    found = samples(text)
    prefix = "kubernetes_agent_sandbox_"
    assert value(found, prefix + "tool_calls_total", tool="upload_file", outcome="ok") == 1
    assert value(found, prefix + "tool_calls_total", tool="download_file", outcome="ok") == 1
    assert value(found, prefix + "tool_calls_total", tool="download_file", outcome="not_found") == 1
    assert value(found, prefix + "tool_calls_total", tool="execute", outcome="invalid_argument") == 1
    assert value(found, prefix + "tool_calls_total", tool="create_session", outcome="quota_exceeded") == 1
    assert value(found, prefix + "quota_refusals_total", tool="create_session") == 1
    assert value(found, prefix + "tool_call_duration_seconds_count", tool="execute_python") == 1
    assert value(found, prefix + "bytes_total", tool="upload_file", direction="in") == len(SECRET_FILE)
    assert value(found, prefix + "bytes_total", tool="download_file", direction="out") == len(SECRET_FILE)
    assert value(found, prefix + "bytes_total", tool="execute_python", direction="out") == 11
    assert value(found, prefix + "sandbox_create_duration_seconds_count", provider="local", outcome="ok") == 2
    assert value(found, prefix + "active_sessions", provider="local") == 2
    assert value(found, prefix + "jobs_running") == 0
    assert SECRET_FILE not in text
    assert SECRET_CODE not in text

    lines = audit_lines(caplog)
    assert [(line["tool"], line["outcome"]) for line in lines] == [
        ("upload_file", "ok"),
        ("download_file", "ok"),
        ("execute_python", "ok"),
        ("download_file", "not_found"),
        ("execute", "invalid_argument"),
        ("create_session", "ok"),
        ("create_session", "quota_exceeded"),
    ]
    assert {line["principal"] for line in lines} == {"alice"}
    assert lines[0]["session"] == session
    assert lines[0]["bytes_in"] == len(SECRET_FILE)
    assert lines[1]["bytes_out"] == len(SECRET_FILE)
    assert all(line["duration_seconds"] >= 0 for line in lines)
    formatted = "\n".join(JsonFormatter().format(r) for r in caplog.records if r.name == AUDIT)
    assert SECRET_FILE not in formatted
    assert SECRET_CODE not in formatted
    assert base64.b64encode(SECRET_FILE.encode()).decode() not in formatted


async def test_jobs_running_counts_the_jobs_this_server_last_saw_running(
    make_config: Callable[..., ServerConfig],
) -> None:
    config = make_config(detach_after=0.5)
    provider = make_provider(config)
    server = build_server(config, SessionRegistry(provider, session_policy(config)))
    transport = httpx.ASGITransport(app=server.streamable_http_app())

    async def jobs_running() -> float:
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as http:
            found = samples((await http.get("/metrics")).text)
        return value(found, "kubernetes_agent_sandbox_jobs_running")

    try:
        async with create_connected_server_and_client_session(server) as client:
            await call(client, "execute", command="true")
            assert await jobs_running() == 0
            slow = data(await call(client, "execute", command="sleep 1.5; echo done"))["job_id"]
            endless = data(await call(client, "execute", command="sleep 300", background=True))["job_id"]
            cell = data(await call(client, "execute_python", code="import time\ntime.sleep(1.5)"))["job_id"]
            assert await jobs_running() == 3
            await call(client, "job_status", job_id=endless)
            assert await jobs_running() == 3
            assert data(await call(client, "job_wait", job_id=slow, timeout=30))["state"] != "running"
            assert await jobs_running() == 2
            assert data(await call(client, "job_wait", job_id=cell, timeout=30))["state"] != "running"
            assert await jobs_running() == 1
            await call(client, "job_cancel", job_id=endless)
            assert await jobs_running() == 0
            other = data(await call(client, "create_session"))["session_id"]
            await call(client, "execute", command="sleep 300", background=True, session_id=other)
            assert await jobs_running() == 1
            await call(client, "close_session", session_id=other)
            assert await jobs_running() == 0
    finally:
        for sandbox in await provider.list():
            await sandbox.terminate()


async def test_audit_lines_over_http_name_the_tokens_principal_never_the_token(
    make_config: Callable[..., ServerConfig], tmp_path: Path
) -> None:
    tokens = tmp_path / "tokens.txt"
    tokens.write_text(f"{TOKEN} carol\n")
    stream = io.StringIO()
    configure_logging("WARNING", stream, json_lines=True)
    try:
        config = make_config(transport="http", token_file=tokens)
        async with http_server(config) as url:
            async with mcp_client(url, TOKEN) as client:
                await call(client, "upload_file", path="a.txt", content=SECRET_FILE)
                await call(client, "execute", command=f"echo {SECRET_CODE} >/dev/null")
            async with httpx.AsyncClient() as http:
                metrics = (await http.get(f"{url}/metrics")).text
    finally:
        logging.getLogger().handlers.clear()
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    audit = [line for line in lines if line["logger"] == AUDIT]
    assert [(line["tool"], line["principal"], line["outcome"]) for line in audit] == [
        ("upload_file", "carol", "ok"),
        ("execute", "carol", "ok"),
    ]
    assert audit[0]["session"] == audit[1]["session"]
    everything = stream.getvalue() + metrics
    assert TOKEN not in everything
    assert SECRET_FILE not in everything
    assert SECRET_CODE not in everything
    assert "kubernetes_agent_sandbox_tool_calls_total" in metrics


def test_logs_are_plain_text_on_a_terminal_and_json_otherwise() -> None:
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    try:
        for stream, is_json in ((Terminal(), False), (io.StringIO(), True)):
            configure_logging("INFO", stream)
            logging.getLogger("langchain_kubernetes_agent_sandbox.test").info("hello")
            line = stream.getvalue().strip()
            if is_json:
                assert json.loads(line)["message"] == "hello"
            else:
                assert line == "INFO langchain_kubernetes_agent_sandbox.test: hello"
    finally:
        logging.getLogger().handlers.clear()
