"""Egress benchmark: an HTTP GET from a loopback test server through the egress proxy against the same GET
directly, in the same run (issue 13: at most 1.2x the time for 1 MiB, at most 2 ms added per connection).

Run: .venv/bin/python bench/bench_egress.py [--runs N]
Two paths, each a fresh connection per GET: directly to the server, and a plain-HTTP proxy request to the proxy's
listener (here on the host's loopback; in a sandbox on the sandbox's, made the same way). The server is
`python3 -m http.server` in its own process; the proxy runs in this process's thread, as in the MCP server.
Figures are medians over N GETs, the two paths interleaved.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ipaddress
import json
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from langchain_kubernetes_agent_sandbox.network.policy import IpAddress
from langchain_kubernetes_agent_sandbox.network.service import EgressService
from langchain_kubernetes_agent_sandbox.network.settings import operator_policy

MIB = 1024 * 1024
NAME = "files.test"


async def loopback_names(host: str, port: int) -> list[IpAddress]:
    return [ipaddress.ip_address("127.0.0.1")]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_listening(port: int) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
            return
        time.sleep(0.02)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port}")


@contextlib.contextmanager
def process(argv: list[str], port: int) -> Iterator[None]:
    started = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_listening(port)
        yield
    finally:
        started.kill()
        started.wait()


CLIENT = """
import json, socket, sys, time
web, proxy, runs, name = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
buffer = bytearray(256 * 1024)
def get(port, target):
    started = time.perf_counter()
    with socket.create_connection(("127.0.0.1", port)) as connection:
        head = f"GET {target} HTTP/1.1\\r\\nHost: files.test:{web}\\r\\nConnection: close\\r\\n\\r\\n"
        connection.sendall(head.encode())
        total = 0
        while count := connection.recv_into(buffer):
            total += count
    assert total > 0
    return time.perf_counter() - started
samples = {"direct": [], "proxy": []}
for _ in range(runs):
    samples["direct"].append(get(web, f"/{name}"))
    samples["proxy"].append(get(proxy, f"http://files.test:{web}/{name}"))
print(json.dumps(samples))
"""
"""The GETs, from a process of their own as a sandbox's program would make them."""


def measure(runs: int) -> list[tuple[str, float, float, str]]:
    """(figure, value ms, baseline ms, what the baseline is) rows."""
    with tempfile.TemporaryDirectory(prefix="kas-bench-egress-") as folder:
        (Path(folder) / "big").write_bytes(b"x" * MIB)
        (Path(folder) / "small").write_bytes(b"x")
        web = free_port()
        policy = operator_policy([f"{NAME}:{web}"], private=[f"{NAME}:{web}"])
        assert policy is not None
        service = EgressService(resolver=loopback_names)
        listener = socket.create_server(("127.0.0.1", 0))
        listener.setblocking(False)
        proxy = listener.getsockname()[1]
        asyncio.run(service.open("bench", 0, lambda: listener, policy))
        server = [sys.executable, "-m", "http.server", "--bind", "127.0.0.1", "--directory", folder, str(web)]
        try:
            with process(server, web):
                return _compare(runs, web, proxy)
        finally:
            service.stop()


def _compare(runs: int, web: int, proxy: int) -> list[tuple[str, float, float, str]]:
    rows = []
    for name, label in (("big", "1 MiB GET through the proxy"), ("small", "1-byte GET through the proxy")):
        client = subprocess.run(
            [sys.executable, "-c", CLIENT, str(web), str(proxy), str(runs), name],
            capture_output=True,
            text=True,
            check=True,
            timeout=600,
        )
        samples = json.loads(client.stdout)
        direct, proxied = (statistics.median(samples[path]) * 1000 for path in ("direct", "proxy"))
        rows.append((label, proxied, direct, "the same GET directly"))
    return rows


def main(runs: int) -> None:
    print("| figure | through the proxy | directly | ratio | added per GET |")
    print("|---|---:|---:|---:|---:|")
    for figure, value, base, _ in measure(runs):
        print(f"| {figure} | {value:.2f} ms | {base:.2f} ms | {value / base:.2f}x | {value - base:+.2f} ms |")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=50)
    main(parser.parse_args().runs)
