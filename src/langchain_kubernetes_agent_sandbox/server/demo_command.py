"""`kubernetes-agent-sandbox demo`: a short tour of the embedded local provider."""

from __future__ import annotations

import argparse
import asyncio
import shlex
import tempfile
from typing import Any

from ..providers.local import LocalProvider


def register(subcommands: Any) -> None:
    parser = subcommands.add_parser(
        "demo",
        help="Show the embedded local sandbox at work: run code, keep files, enforce a timeout.",
        description="Create a local sandbox, run shell and Python in it, write and read files, show a timeout "
        "killing a command, and remove the sandbox. Needs bubblewrap.",
    )
    parser.add_argument("--state-dir", help="Folder for the demo's sandbox (default: a temporary folder).")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    return asyncio.run(_tour(args.state_dir))


async def _tour(state_dir: str | None) -> int:
    with tempfile.TemporaryDirectory(prefix="kas-demo-") as scratch:
        provider = LocalProvider(state_dir or scratch)
        print(f"isolation: {provider.isolation}")
        sandbox = await provider.create(labels={"purpose": "demo"})
        print(f"created sandbox {sandbox.id}")
        try:
            path = await sandbox.write_file("data.csv", b"city,temp\nOslo,4\nLima,19\nPerth,25\n")
            print(f"uploaded {path}")
            code = (
                "import csv; rows = list(csv.DictReader(open('data.csv'))); "
                "print(sum(int(r['temp']) for r in rows) / len(rows))"
            )
            result = await sandbox.run(f"python3 -c {shlex.quote(code)} > mean.txt && cat mean.txt")
            print(f"python3 computed the mean temperature: {result.stdout.strip()} (exit {result.exit_code})")
            print(f"downloaded mean.txt: {(await sandbox.read_file('/app/mean.txt')).decode().strip()}")
            print("files in /app:", ", ".join(entry.name for entry in await sandbox.list_dir()))
            probe = await sandbox.run("cat /etc/shadow; ls /root", timeout=10)
            print(f"host secrets are out of reach (exit {probe.exit_code}): {probe.stderr.strip().splitlines()[0]}")
            slow = await sandbox.run("echo started; sleep 30", timeout=1)
            print(
                f"a 30 s command under a 1 s limit: timed_out={slow.timed_out}, exit {slow.exit_code}, "
                f"kept output {slow.stdout.strip()!r}"
            )
        finally:
            await sandbox.terminate()
            print(f"terminated {sandbox.id}")
    return 0
