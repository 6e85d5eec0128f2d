"""Preview benchmark: an HTTP GET of a 1 MiB page through a preview URL against the same GET made inside the
sandbox, in the same run (issue 16: at most 1.3x the time plus 2 ms).

Run: .venv/bin/python bench/bench_preview.py [--runs N]
The page is served by a keep-alive HTTP/1.1 server (the standard library's) started in a local sandbox. Both sides
run the same client, a process of its own that makes N GETs on one kept-alive connection: inside the sandbox
straight to 127.0.0.1:8000, and on the host to the preview URL (served by the MCP server, over its loopback
listener as over stdio: the MCP server in this process; each connection to the port is made inside the sandbox and
handed over). Figures are medians; the first GET of each side, which opens its connection (through a preview that
starts a helper process in the sandbox), is reported apart.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import httpx
from mcp import ClientSession
from mcp.shared.memory import create_connected_server_and_client_session

from langchain_kubernetes_agent_sandbox.providers.local.state import temporary_state
from langchain_kubernetes_agent_sandbox.server.config import ServerConfig
from langchain_kubernetes_agent_sandbox.server.logs import configure_logging
from langchain_kubernetes_agent_sandbox.server.runtime import running

PORT = 8000
MIB = 1024 * 1024
SERVER = """
import http.server, sys
http.server.SimpleHTTPRequestHandler.protocol_version = "HTTP/1.1"
http.server.SimpleHTTPRequestHandler.log_message = lambda *args: None
handler = lambda *args: http.server.SimpleHTTPRequestHandler(*args, directory="/app/site")
http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), handler).serve_forever()
"""
CLIENT = """
import http.client, json, sys, time, urllib.parse
url, runs = urllib.parse.urlsplit(sys.argv[1]), int(sys.argv[2])
connection = http.client.HTTPConnection(url.hostname, url.port)
samples = []
for _ in range(runs + 1):
    started = time.perf_counter()
    connection.request("GET", url.path)
    answer = connection.getresponse()
    body = answer.read()
    samples.append(time.perf_counter() - started)
    assert answer.status == 200 and len(body) == int(sys.argv[3]), (answer.status, len(body))
print(json.dumps({"first": samples[0], "kept_alive": samples[1:]}))
"""
"""N GETs on one connection; the first, which opens it, is reported apart."""


async def _call(client: ClientSession, tool: str, **arguments: Any) -> dict[str, Any]:
    result = await client.call_tool(tool, arguments)
    if result.isError or result.structuredContent is None:
        raise RuntimeError(f"{tool} failed: {result.content}")
    return dict(result.structuredContent)


async def _wait_listening(url: str) -> None:
    deadline = time.monotonic() + 20
    async with httpx.AsyncClient(timeout=10) as http:
        while (await http.get(url)).status_code == 502:
            if time.monotonic() > deadline:
                raise RuntimeError("the page server in the sandbox did not start")
            await asyncio.sleep(0.1)


@contextlib.contextmanager
def logging_as_served() -> Iterator[None]:
    """The log lines (one audit line per request) formatted as `serve` writes them, JSON, and then discarded;
    the logging of before afterwards."""
    root = logging.getLogger()
    before, level = list(root.handlers), root.level
    with open(os.devnull, "w") as discarded:
        configure_logging("WARNING", discarded, json_lines=True)
        try:
            yield
        finally:
            root.handlers[:] = before
            root.setLevel(level)


async def measure(runs: int) -> list[tuple[str, float, float, str]]:
    """(figure, value ms, baseline ms, what the baseline is) rows."""
    with logging_as_served():
        return await _measure(runs)


async def _measure(runs: int) -> list[tuple[str, float, float, str]]:
    with temporary_state("kas-bench-preview-") as state:
        config = ServerConfig(state_dir=state, principal="bench")
        async with running(config) as server, create_connected_server_and_client_session(server) as client:
            await _call(client, "execute", command=f"mkdir -p /app/site && head -c {MIB} /dev/zero > /app/site/page")
            await _call(client, "upload_file", path="/app/server.py", content=SERVER)
            await _call(client, "upload_file", path="/app/client.py", content=CLIENT)
            await _call(client, "execute", command=f"python3 /app/server.py {PORT}", background=True)
            await _wait_listening((await _call(client, "expose_port", port=PORT))["url"] + "page")
            await _call(client, "unexpose_port", port=PORT)  # a new preview: its first GET opens its connection
            url = (await _call(client, "expose_port", port=PORT))["url"] + "page"
            inside_run = await _call(
                client, "execute", command=f"python3 /app/client.py http://127.0.0.1:{PORT}/page {runs} {MIB}"
            )
            inside = json.loads(inside_run["stdout"])
            outside = json.loads(
                await asyncio.to_thread(
                    lambda: (
                        subprocess.run(
                            [sys.executable, "-c", CLIENT, url, str(runs), str(MIB)],
                            capture_output=True,
                            text=True,
                            check=True,
                            timeout=600,
                        ).stdout
                    )
                )
            )
            await _call(client, "close_session", session_id=inside_run["session_id"])
    kept = statistics.median(outside["kept_alive"]) * 1000
    kept_inside = statistics.median(inside["kept_alive"]) * 1000
    return [
        ("1 MiB GET through a preview, kept-alive connection", kept, kept_inside, "the same GET inside the sandbox"),
        (
            "1 MiB GET through a new preview, opening its connection",
            outside["first"] * 1000,
            inside["first"] * 1000,
            "the same GET inside the sandbox",
        ),
    ]


def main(runs: int) -> None:
    print("| figure | through the preview | inside the sandbox | ratio | added per GET | target |")
    print("|---|---:|---:|---:|---:|---:|")
    for figure, value, base, _ in asyncio.run(measure(runs)):
        print(
            f"| {figure} | {value:.2f} ms | {base:.2f} ms | {value / base:.2f}x | {value - base:+.2f} ms "
            f"| {base * 1.3 + 2:.2f} ms |"
        )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=50)
    main(parser.parse_args().runs)
