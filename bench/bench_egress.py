"""Egress benchmark: an HTTP GET from a loopback test server through the egress proxy against the same GET
directly, in the same run (issue 13: at most 1.2x the time for 1 MiB, at most 2 ms added per connection).

Run: .venv/bin/python bench/bench_egress.py [--runs N]
Three paths, each a fresh connection per GET: direct TCP to the server; the proxy's unix socket (what the relay
hands it); and the relay on TCP in front of it, as a sandbox's program reaches it. The server is
`python3 -m http.server` and the relay its own process, as in a sandbox; the proxy runs in this process's thread,
as in the MCP server. Figures are medians over N GETs, the paths interleaved.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ipaddress
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from langchain_kubernetes_agent_sandbox.network import relay
from langchain_kubernetes_agent_sandbox.network.policy import IpAddress
from langchain_kubernetes_agent_sandbox.network.service import EgressService
from langchain_kubernetes_agent_sandbox.network.settings import operator_policy

MIB = 1024 * 1024
NAME = "files.test"
Fetch = Callable[[str], int]


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


def receive_all(connection: socket.socket) -> int:
    total = 0
    buffer = bytearray(256 * 1024)
    while count := connection.recv_into(buffer):
        total += count
    return total


def over_tcp(port: int) -> Fetch:
    def fetch(request: str) -> int:
        with socket.create_connection(("127.0.0.1", port)) as connection:
            connection.sendall(request.encode())
            return receive_all(connection)

    return fetch


def over_unix(path: Path) -> Fetch:
    def fetch(request: str) -> int:
        with socket.socket(socket.AF_UNIX) as connection:
            connection.connect(str(path))
            connection.sendall(request.encode())
            return receive_all(connection)

    return fetch


def measure(runs: int) -> list[tuple[str, float, float, str]]:
    """(figure, value ms, baseline ms, what the baseline is) rows."""
    with tempfile.TemporaryDirectory(prefix="kas-bench-egress-") as folder:
        root = Path(folder)
        (root / "big").write_bytes(b"x" * MIB)
        (root / "small").write_bytes(b"x")
        web, relay_port = free_port(), free_port()
        policy = operator_policy([f"{NAME}:{web}"], private=[f"{NAME}:{web}"])
        assert policy is not None
        service = EgressService(resolver=loopback_names)
        socket_path = root / "proxy.sock"
        asyncio.run(service.open("bench", socket_path, policy))
        server = [sys.executable, "-m", "http.server", "--bind", "127.0.0.1", "--directory", folder, str(web)]
        relay_argv = [sys.executable, "-I", relay.__file__, str(relay_port), str(socket_path), "--foreground"]
        try:
            with process(server, web), process(relay_argv, relay_port):
                return _compare(runs, web, over_tcp(web), over_unix(socket_path), over_tcp(relay_port))
        finally:
            service.stop()


def _compare(runs: int, port: int, direct: Fetch, proxy: Fetch, relayed: Fetch) -> list[tuple[str, float, float, str]]:
    def request(path: str, absolute: bool) -> str:
        target = f"http://{NAME}:{port}/{path}" if absolute else f"/{path}"
        return f"GET {target} HTTP/1.1\r\nHost: {NAME}:{port}\r\nConnection: close\r\n\r\n"

    paths = {"direct": (direct, False), "proxy": (proxy, True), "relay + proxy": (relayed, True)}
    rows = []
    for name, label in (("big", "1 MiB GET"), ("small", "1-byte GET (cost per connection)")):
        samples: dict[str, list[float]] = {path: [] for path in paths}
        for _ in range(runs):
            for path, (fetch, absolute) in paths.items():
                started = time.perf_counter()
                received = fetch(request(name, absolute))
                samples[path].append(time.perf_counter() - started)
                assert received > (MIB if name == "big" else 0), f"{path}: short answer ({received} bytes)"
        base = statistics.median(samples["direct"]) * 1000
        for path in ("proxy", "relay + proxy"):
            rows.append((f"{label} through {path}", statistics.median(samples[path]) * 1000, base, "direct GET"))
    return rows


def main(runs: int) -> None:
    print("| figure | through the proxy | directly | ratio | added |")
    print("|---|---:|---:|---:|---:|")
    for figure, value, base, _ in measure(runs):
        print(f"| {figure} | {value:.2f} ms | {base:.2f} ms | {value / base:.2f}x | {value - base:+.2f} ms |")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=50)
    main(parser.parse_args().runs)
