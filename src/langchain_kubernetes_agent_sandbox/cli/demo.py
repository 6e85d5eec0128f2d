"""`kubernetes-agent-sandbox demo`: the main job end to end, as an MCP client sees it.

It starts `serve` over stdio on the embedded local provider, exactly as a desktop client would, and drives it
with a real MCP client session, printing each step.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import os
import sys
from pathlib import Path
from typing import Any

from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import get_default_environment, stdio_client
from mcp.types import CallToolResult, ImageContent, TextContent

from ..providers.local.state import temporary_state

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
CHART = """\
import matplotlib.pyplot as plt
plt.bar([row['city'] for row in rows], temps)
plt.ylabel('temp_c')
print(f'plotted {len(rows)} cities')
"""
BUILD = "for i in 1 2 3; do echo step $i; sleep 0.5; done; echo built"


def register(subcommands: Any) -> None:
    parser = subcommands.add_parser(
        "demo",
        help="The main job: start the MCP server over stdio and drive it with a real MCP client.",
        description="Start `serve` over stdio on the embedded local provider and, through a real MCP client "
        "session, create a session, upload a CSV, analyse it with execute_python, download the result file, "
        "plot it (the figure comes back as an image), watch a timeout, follow a command that detached into a "
        "job, fork the session, suspend the session and resume it with the next call, list sessions and close them, "
        "printing each step. Needs bubblewrap; the figure needs "
        "matplotlib for the sandbox's python3 (Debian's python3-matplotlib, which scripts/setup.sh installs).",
    )
    parser.add_argument("--state-dir", help="Folder for the demo's sandboxes (default: a temporary folder).")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    with temporary_state("kas-demo-") as scratch:
        log = scratch / "server.log"
        try:
            return asyncio.run(_drive(args.state_dir or str(scratch), log))
        except BaseException:
            if log.exists():
                print(f"\nthe server's log (its audit lines and errors):\n{log.read_text()[-4000:]}", file=sys.stderr)
            raise


def _text(result: CallToolResult) -> str:
    return "\n".join(block.text for block in result.content if isinstance(block, TextContent))


def _images(result: CallToolResult) -> list[ImageContent]:
    return [block for block in result.content if isinstance(block, ImageContent)]


async def _step(client: ClientSession, title: str, tool: str, **arguments: Any) -> CallToolResult:
    """Call a tool, printing the call, its text and any images; a tool error ends the demo."""
    shown = ", ".join(f"{key}={value!r}" for key, value in arguments.items() if key not in ("code", "content"))
    print(f"\n== {title}: {tool}({shown})")
    for key in ("code", "content"):
        if key in arguments:
            print(f"   {key}:\n" + "".join(f"   | {line}\n" for line in arguments[key].splitlines()), end="")
    result = await client.call_tool(tool, arguments)
    print("   -> " + _text(result).replace("\n", "\n      "))
    for image in _images(result):
        print(f"   -> image content: {len(base64.b64decode(image.data))} bytes, {image.mimeType}")
    if result.isError or result.structuredContent is None:
        raise RuntimeError(f"{tool} failed: {_text(result)}")
    return result


def _data(result: CallToolResult) -> dict[str, Any]:
    assert result.structuredContent is not None  # _step made sure
    return result.structuredContent


async def _until_ended(client: ClientSession, title: str, started: CallToolResult, session_id: str) -> CallToolResult:
    """Follow a call that detached into a job with job_wait, from where its output stopped, until it ends."""
    result = started
    while _data(result)["state"] == "running":
        job = _data(result)
        result = await _step(
            client, title, "job_wait", job_id=job["job_id"], timeout=30, cursor=job["cursor"], session_id=session_id
        )
    return result


async def _drive(state_dir: str, log: Path) -> int:
    # the SDK's minimal environment, as a desktop client gives, plus PYTHONPATH: the server is this package
    path = {"PYTHONPATH": os.environ["PYTHONPATH"]} if "PYTHONPATH" in os.environ else {}
    server = StdioServerParameters(
        command=sys.executable,
        args=["-m", "langchain_kubernetes_agent_sandbox", "serve", "--state-dir", state_dir],
        env={**get_default_environment(), **path},
    )
    print(f"starting: {' '.join([server.command, *server.args])}  (its log goes to a file)")
    with log.open("w") as errlog:
        async with stdio_client(server, errlog=errlog) as (read, write), ClientSession(read, write) as client:
            initialized = await client.initialize()
            tools = [tool.name for tool in (await client.list_tools()).tools]
            print(f"connected to {initialized.serverInfo.name}; tools: {', '.join(tools)}")
            created = await _step(client, "1. create a session", "create_session", labels={"purpose": "demo"})
            session_id = _data(created)["session_id"]
            await _step(
                client, "2. upload a CSV", "upload_file", path="weather.csv", content=CSV, session_id=session_id
            )
            await _step(client, "3. compute with Python", "execute_python", code=ANALYSIS, session_id=session_id)
            summary = _data(
                await _step(
                    client, "4. download the result", "download_file", path="summary.json", session_id=session_id
                )
            )
            plotted = await _step(
                client,
                "5. plot it (the kernel kept rows and temps)",
                "execute_python",
                code=CHART,
                session_id=session_id,
            )
            plotted = await _until_ended(client, "5. the plot is still drawing: wait", plotted, session_id)
            slow = _data(
                await _step(
                    client,
                    "6. a runaway command meets its timeout",
                    "execute",
                    command="echo started; sleep 30",
                    timeout=1,
                    session_id=session_id,
                )
            )
            started = await _step(
                client,
                "7. a long command detaches into a job",
                "execute",
                command=BUILD,
                background=True,
                session_id=session_id,
            )
            job = _data(started)
            status = await _step(
                client,
                "8. look in on the job",
                "job_status",
                job_id=job["job_id"],
                session_id=session_id,
            )
            ended = _data(await _until_ended(client, "9. wait for the job to end", status, session_id))
            fork_id = _data(
                await _step(
                    client,
                    "10. fork the session: a new one with a copy of its files",
                    "fork_session",
                    session_id=session_id,
                )
            )["session_id"]
            await _step(
                client,
                "11. the fork has the files, and what it writes stays in it",
                "execute",
                command="echo draft > fork-only.txt; ls",
                session_id=fork_id,
            )
            source_files = _data(
                await _step(client, "12. the source is as it was", "execute", command="ls", session_id=session_id)
            )
            await _step(client, "13. suspend the session (as idleness would)", "suspend_session", session_id=session_id)
            await _step(
                client,
                "14. the next call resumes it: the files are there, the kernel is fresh",
                "execute",
                command="ls summary.json weather.csv",
                session_id=session_id,
            )
            listed = _data(await _step(client, "15. list sessions", "list_sessions"))
            await _step(client, "16. close the fork", "close_session", session_id=fork_id)
            await _step(client, "17. close the session", "close_session", session_id=session_id)
    images = _images(plotted)
    figure = (
        f"the chart came back as a {len(base64.b64decode(images[0].data))}-byte image ({images[0].mimeType}), "
        f"saved in the sandbox as {_data(plotted)['figures'][0]}"
        if images
        else "no figure came back (the sandbox's python3 has no matplotlib: run scripts/setup.sh)"
    )
    print(
        f"\ndone: summary.json had {summary['size']} bytes; {figure}; the runaway command exited "
        f"{slow['exit_code']} ({slow['state']}); the detached job {job['job_id']} ended "
        f"({ended['state']}) with exit code {ended['exit_code']}; the source session "
        f"{'never saw' if 'fork-only.txt' not in source_files['stdout'] else 'saw'} the fork's file; "
        f"{len(listed['sessions'])} session(s) were open before closing."
    )
    return 0
