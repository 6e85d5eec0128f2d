"""Transfer benchmark: a 64 MiB file through download_file in pieces (the server's default piece, 2 MiB, base64),
against one `Sandbox.read_file` of the same file on the same local sandbox, measured in the same run.

Run: .venv/bin/python bench/bench_transfers.py [--runs N]
Each figure is a median over N runs. The baseline is what any download must cost at least (the whole file read
out of the sandbox once); the download adds its pieces' MCP calls and base64, and reads the file once, not once
per piece.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import logging
import statistics
import time

from mcp.shared.memory import create_connected_server_and_client_session

from langchain_kubernetes_agent_sandbox.providers.local.state import temporary_state
from langchain_kubernetes_agent_sandbox.server.config import ServerConfig
from langchain_kubernetes_agent_sandbox.server.runtime import running

MIB = 1024 * 1024
SIZE = 64 * MIB
Row = tuple[str, float, float, str]
"""(figure, median ms, baseline median ms, what the baseline is)."""


async def measure(runs: int) -> list[Row]:
    logging.disable(logging.INFO)  # the audit log's line per piece would be timed too
    with temporary_state("kas-bench-transfers-") as state:
        config = ServerConfig(provider="local", state_dir=str(state), principal="bench")
        async with running(config) as server, create_connected_server_and_client_session(server) as client:
            made = await client.call_tool("execute", {"command": f"head -c {SIZE} /dev/urandom > big.bin"})
            assert not made.isError, made.content
            session = server.context.registry  # the default session's sandbox, read directly for the baseline
            async with session.use("bench", None) as opened:
                sandbox = opened.sandbox
            reads, downloads = [], []
            for _ in range(runs):
                started = time.perf_counter()
                expected = await sandbox.read_file("/app/big.bin")
                reads.append(time.perf_counter() - started)
                started = time.perf_counter()
                content, offset = bytearray(), 0
                while True:
                    piece = await client.call_tool("download_file", {"path": "big.bin", "offset": offset})
                    found = piece.structuredContent or {}
                    content += base64.b64decode(found["content"])
                    if "next_offset" not in found:
                        break
                    offset = found["next_offset"]
                downloads.append(time.perf_counter() - started)
                assert hashlib.sha256(content).hexdigest() == found["sha256"] == hashlib.sha256(expected).hexdigest()
    read_ms = statistics.median(reads) * 1000
    label = "one Sandbox.read_file of the whole file"
    return [("download_file, 64 MiB in 2 MiB pieces", statistics.median(downloads) * 1000, read_ms, label)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    for figure, value, base, label in asyncio.run(measure(args.runs)):
        print(f"{figure:<42}{value:>10.1f} ms  {value / base:>6.2f}x  {label} ({base:.1f} ms)")


if __name__ == "__main__":
    main()
