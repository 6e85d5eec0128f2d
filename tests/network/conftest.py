"""Loopback test servers under test-only names (the reserved `.test` domain), and the resolver override that
points those names at them: the proxy's private-address refusal is lifted for exactly these names and ports."""

from __future__ import annotations

import functools
import http.server
import ipaddress
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from langchain_kubernetes_agent_sandbox.network.policy import EgressPolicy, IpAddress
from langchain_kubernetes_agent_sandbox.network.settings import operator_policy

SERVED = ("files.test", "pkgs.test", "git.test")
"""Names of the loopback web server, allowed to resolve to loopback."""
TRAPS = {"loop.test": "127.0.0.1", "metadata.test": "169.254.169.254", "inner.test": "10.1.2.3"}
"""Allowed names that resolve to addresses no sandbox may reach."""


@dataclass(frozen=True)
class WebServer:
    root: Path
    port: int

    def url(self, name: str, path: str = "") -> str:
        return f"http://{name}:{self.port}/{path}"


class Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def web(tmp_path: Path) -> Iterator[WebServer]:
    """A static HTTP server on the host's loopback, serving a folder the test fills."""
    root = tmp_path / "web"
    root.mkdir()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(root)))
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield WebServer(root, server.server_address[1])
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


async def resolve_test_names(host: str, port: int) -> list[IpAddress]:
    """The resolver the tests give the proxy: test names only, never the machine's resolver."""
    if host in SERVED:
        return [ipaddress.ip_address("127.0.0.1")]
    if host in TRAPS:
        return [ipaddress.ip_address(TRAPS[host])]
    raise OSError(f"{host} is not a test name")


def policy_for(web: WebServer) -> EgressPolicy:
    """Served names and traps on the web server's port; the served ones may resolve to loopback."""
    served = [f"{name}:{web.port}" for name in SERVED]
    policy = operator_policy([*served, *(f"{name}:{web.port}" for name in TRAPS), "*.pkgs.test"], private=served)
    assert policy is not None
    return policy


@pytest.fixture
def policy(web: WebServer) -> EgressPolicy:
    return policy_for(web)
