"""`kubernetes-agent-sandbox egress-proxy`: the same allow-list proxy the local provider runs per sandbox, as a
service of its own, for clusters: sandbox pods whose NetworkPolicy allows egress only to it reach what the
operator's rules allow and nothing else (see docs/kubernetes.md)."""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import sys
from typing import Any

from ..network.service import EgressService
from ..network.settings import operator_policy
from ..server.config import ConfigError, load
from ..server.logs import configure_logging
from .serve import add_setting_arguments

SETTINGS = ("egress_allow", "egress_ports", "egress_private", "log_level")
DESCRIPTION = """\
Serve HTTP CONNECT, plain HTTP and SOCKS5 on --listen, letting through only connections whose name and port match
--egress-allow and whose every address is public (or listed in --egress-private). Every decision is an audit line
(`event: egress`, the client's address as `sandbox`, host, port, decision, reason) on stderr; contents never are."""


def register(subcommands: Any) -> None:
    parser = subcommands.add_parser(
        "egress-proxy",
        help="Run the allow-list egress proxy as a service (for sandbox pods on Kubernetes).",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_setting_arguments(parser, SETTINGS)
    parser.add_argument("--listen", default="0.0.0.0:3128", metavar="HOST:PORT", help="where to listen (0.0.0.0:3128)")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    flags = {name: getattr(args, name) for name in SETTINGS}
    try:
        config = load(flags, os.environ, args.config)
        policy = operator_policy(config.egress_allow, config.egress_ports, config.egress_private)
        host, _, port = args.listen.rpartition(":")
        if policy is None:
            raise ConfigError("egress-proxy needs --egress-allow: with no rules it would refuse every connection")
        if not port.isdigit():
            raise ConfigError(f"--listen must be HOST:PORT, got {args.listen!r}")
    except (ConfigError, ValueError) as error:
        print(f"kubernetes-agent-sandbox egress-proxy: {error}", file=sys.stderr)
        return 2
    configure_logging("INFO" if config.log_level == "WARNING" else config.log_level)
    listener = socket.create_server((host.strip("[]") or "0.0.0.0", int(port)), backlog=1024)
    listener.setblocking(False)
    service = EgressService()

    async def serve() -> None:
        await service.open(None, 0, lambda: listener, policy)
        await asyncio.Event().wait()

    try:
        asyncio.run(serve())
    except KeyboardInterrupt:
        pass
    finally:
        service.stop()
    return 0
