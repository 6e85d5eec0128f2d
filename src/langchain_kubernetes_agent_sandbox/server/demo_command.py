"""`kubernetes-agent-sandbox demo`: the main job end to end, as an MCP client sees it.

It starts `serve` over stdio on the embedded local provider, exactly as a desktop client would, and drives it
with a real MCP client session, printing each step.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
from typing import Any

from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client
from mcp.types import CallToolResult, TextContent

CSV = "city,temp_c\nOslo,4\nLima,19\nPerth,25\nNairobi,22\n"
ANALYSIS = """\
import csv, json
rows = list(csv.DictReader(open('weather.csv')))
temps = [int(row['temp_c']) for row in rows]
summary = {'cities': len(rows), 'mean_c': round(sum(temps) / len(temps), 2),
           'warmest': max(rows, key=lambda row: int(row['temp_c']))['city']}
json.dump(summary, open('summary.json', 'w'), indent=2)
print(f"{summary['cities']} cities, mean {summary['mean_c']} C, warmest {summary['warmest']}")
"""


def register(subcommands: Any) -> None:
    parser = subcommands.add_parser(
        "demo",
        help="The main job: start the MCP server over stdio and drive it with a real MCP client.",
        description="Start `serve` over stdio on the embedded local provider and, through a real MCP client "
        "session, create a session, upload a CSV, analyse it with execute_python, download the result file, "
        "list sessions and close the session, printing each step. Needs bubblewrap.",
    )
    parser.add_argument("--state-dir", help="Folder for the demo's sandboxes (default: a temporary folder).")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    with tempfile.TemporaryDirectory(prefix="kas-demo-") as scratch:
        return asyncio.run(_drive(args.state_dir or scratch))


def _text(result: CallToolResult) -> str:
    return "\n".join(block.text for block in result.content if isinstance(block, TextContent))


async def _step(client: ClientSession, title: str, tool: str, **arguments: Any) -> dict[str, Any]:
    shown = ", ".join(f"{key}={value!r}" for key, value in arguments.items() if key not in ("code", "content"))
    print(f"\n== {title}: {tool}({shown})")
    for key in ("code", "content"):
        if key in arguments:
            print(f"   {key}:\n" + "".join(f"   | {line}\n" for line in arguments[key].splitlines()), end="")
    result = await client.call_tool(tool, arguments)
    print("   -> " + _text(result).replace("\n", "\n      "))
    if result.isError or result.structuredContent is None:
        raise RuntimeError(f"{tool} failed: {_text(result)}")
    return result.structuredContent


async def _drive(state_dir: str) -> int:
    server = StdioServerParameters(
        command=sys.executable,
        args=["-m", "langchain_kubernetes_agent_sandbox", "serve", "--state-dir", state_dir],
    )
    print(f"starting: {' '.join([server.command, *server.args])}")
    async with stdio_client(server) as (read, write), ClientSession(read, write) as client:
        initialized = await client.initialize()
        tools = [tool.name for tool in (await client.list_tools()).tools]
        print(f"connected to {initialized.serverInfo.name}; tools: {', '.join(tools)}")
        session = await _step(client, "1. create a session", "create_session", labels={"purpose": "demo"})
        session_id = session["session_id"]
        await _step(client, "2. upload a CSV", "upload_file", path="weather.csv", content=CSV, session_id=session_id)
        await _step(client, "3. compute with Python", "execute_python", code=ANALYSIS, session_id=session_id)
        summary = await _step(
            client, "4. download the result", "download_file", path="summary.json", session_id=session_id
        )
        slow = await _step(
            client,
            "5. a runaway command meets its timeout",
            "execute",
            command="echo started; sleep 30",
            timeout=1,
            session_id=session_id,
        )
        listed = await _step(client, "6. list sessions", "list_sessions")
        await _step(client, "7. close the session", "close_session", session_id=session_id)
    print(
        f"\ndone: summary.json had {summary['size']} bytes; the runaway command exited {slow['exit_code']} "
        f"(timed_out={slow['timed_out']}); {len(listed['sessions'])} session(s) were open before closing."
    )
    return 0
