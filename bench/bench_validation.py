"""What the `mcp` client spends validating each tool result against the tool's output schema.

Run: .venv/bin/python bench/bench_validation.py [--rounds N]

The mcp 1.x client checks the schema itself and then the result (jsonschema) on every call that succeeds, so a
tool's output schema costs CPU on every call. This calls the client's own validation step on real results of
the server's tools (an in-memory server on the local provider) and on a 3-field baseline schema, interleaved in
the same run. Target (issue 15): at most 2 ms for an `execute` result.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import statistics
import time
from typing import Any

from mcp import ClientSession
from mcp.shared.memory import create_connected_server_and_client_session
from mcp.types import CallToolResult

from langchain_kubernetes_agent_sandbox.providers.local.state import temporary_state
from langchain_kubernetes_agent_sandbox.server.config import ServerConfig
from langchain_kubernetes_agent_sandbox.server.runtime import running

BASELINE = "baseline (3 fields)"
BASELINE_SCHEMA = {
    "type": "object",
    "properties": {"stdout": {"type": "string"}, "stderr": {"type": "string"}, "exit_code": {"type": "integer"}},
    "required": ["stdout", "stderr", "exit_code"],
}
CALLS: dict[str, tuple[str, dict[str, Any]]] = {
    "execute": ("execute", {"command": "echo hi"}),
    "execute_python": ("execute_python", {"code": "print('hi')\n1 + 1"}),
    "download_file": ("download_file", {"path": "note.txt"}),
    "list_files": ("list_files", {}),
    "session_info": ("session_info", {}),
}
TARGET_MS = 2.0


async def results(client: ClientSession) -> dict[str, CallToolResult]:
    """One real result per tool measured, plus the baseline's, registered with the client like a listed tool."""
    await client.list_tools()  # the client caches the output schemas it validates against
    await client.call_tool("upload_file", {"path": "note.txt", "content": "a small note\n"})
    found = {label: await client.call_tool(tool, arguments) for label, (tool, arguments) in CALLS.items()}
    for label, result in found.items():
        if result.isError or result.structuredContent is None:
            raise RuntimeError(f"{label} failed: {result.content}")
    client._tool_output_schemas[BASELINE] = BASELINE_SCHEMA  # the client's own cache
    found[BASELINE] = CallToolResult(content=[], structuredContent={"stdout": "hi\n", "stderr": "", "exit_code": 0})
    return found


async def measure(rounds: int) -> list[tuple[str, float, float, int]]:
    """Per tool: p50 ms of the client's validation, the baseline's p50 ms, and the output schema's size."""
    logging.getLogger("langchain_kubernetes_agent_sandbox.audit").setLevel(logging.WARNING)  # a line per call
    config = ServerConfig(principal="bench")
    with temporary_state("kas-bench-") as state:
        config = config.model_copy(update={"state_dir": state})
        async with contextlib.AsyncExitStack() as stack:
            server = await stack.enter_async_context(running(config))
            client = await stack.enter_async_context(create_connected_server_and_client_session(server))
            found = await results(client)
            samples: dict[str, list[float]] = {label: [] for label in found}
            for _ in range(rounds):
                for label, result in found.items():
                    started = time.perf_counter()
                    await client._validate_tool_result(label, result)  # what call_tool runs
                    samples[label].append(time.perf_counter() - started)
            schemas = {label: client._tool_output_schemas[label] for label in found}
    base = statistics.median(samples.pop(BASELINE)) * 1000
    return [
        (label, statistics.median(times) * 1000, base, len(json.dumps(schemas[label])))
        for label, times in samples.items()
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=300)
    args = parser.parse_args()
    print(f"load average at start: {', '.join(f'{value:.2f}' for value in os.getloadavg())}")
    rows = asyncio.run(measure(args.rounds))
    print(f"{'tool result':<18}{'p50 ms':>9}{'baseline ms':>13}{'ratio':>8}{'schema bytes':>14}")
    for label, value, base, size in rows:
        print(f"{label:<18}{value:>9.3f}{base:>13.3f}{value / base:>8.2f}{size:>14}")
    execute = next(value for label, value, _, _ in rows if label == "execute")
    print(f"execute: {execute:.3f} ms, target at most {TARGET_MS:g} ms: {'met' if execute <= TARGET_MS else 'MISSED'}")


if __name__ == "__main__":
    main()
