"""`kubernetes-agent-sandbox egress-proxy`, the allow-list proxy as a service of its own (for clusters): it lets
through what its rules allow, refuses the rest, and writes an audit line per decision naming the client."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest

from .conftest import WebServer


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def proxy(web: WebServer) -> Iterator[tuple[int, subprocess.Popen[str]]]:
    port = free_port()
    rule = f"127.0.0.1:{web.port}"
    command = [
        sys.executable,
        "-m",
        "langchain_kubernetes_agent_sandbox",
        "egress-proxy",
        "--listen",
        f"127.0.0.1:{port}",
    ]
    started = subprocess.Popen(
        [*command, "--egress-allow", rule, "--egress-private", rule], stderr=subprocess.PIPE, text=True
    )
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            time.sleep(0.05)
    try:
        yield port, started
    finally:
        started.terminate()
        started.wait(10)


def fetch(proxy_port: int, url: str) -> str:
    answer = subprocess.run(
        ["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "-x", f"http://127.0.0.1:{proxy_port}", url],
        capture_output=True,
        text=True,
        timeout=30,
    )
    return answer.stdout


def test_the_proxy_service_allows_its_rules_and_audits_each_decision(
    web: WebServer, proxy: tuple[int, subprocess.Popen[str]]
) -> None:
    port, process = proxy
    (web.root / "hello.txt").write_text("hello")
    assert fetch(port, f"http://127.0.0.1:{web.port}/hello.txt") == "200"
    assert fetch(port, f"http://127.0.0.1:{free_port()}/") == "403"
    process.terminate()
    _, errors = process.communicate(timeout=10)
    audits = [json.loads(line) for line in errors.splitlines() if '"event": "egress"' in line]
    assert [(a["sandbox"], a["host"], a["decision"]) for a in audits] == [
        ("127.0.0.1", "127.0.0.1", "allowed"),
        ("127.0.0.1", "127.0.0.1", "refused"),
    ]


def test_the_proxy_service_refuses_to_start_without_rules() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "langchain_kubernetes_agent_sandbox", "egress-proxy"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "egress-proxy needs --egress-allow" in result.stderr
