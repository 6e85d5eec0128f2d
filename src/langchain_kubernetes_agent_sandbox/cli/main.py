"""The `kubernetes-agent-sandbox` command: one subcommand per job, each documented by `--help`."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

Command = Callable[[argparse.Namespace], int]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="kubernetes-agent-sandbox",
        description="Run AI agents' code in isolated sandboxes: Kubernetes agent-sandbox pods or local workspaces.",
    )
    subcommands = parser.add_subparsers(dest="command", metavar="COMMAND")
    from . import demo, doctor, egress, fake_cluster, serve

    serve.register(subcommands)
    demo.register(subcommands)
    doctor.register(subcommands)
    egress.register(subcommands)
    fake_cluster.register(subcommands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    handler: Command | None = getattr(args, "handler", None)
    if handler is None:
        parser.print_help()
        return 2
    return handler(args)


if __name__ == "__main__":
    sys.exit(main())
