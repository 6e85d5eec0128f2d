"""`kubernetes-agent-sandbox fake-cluster`: run the imitation agent-sandbox cluster in the foreground."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import shlex
import sys
from collections.abc import Sequence
from typing import Any

from ..testing.cluster_process import ClusterSettings, run_cluster
from ..testing.controller import PoolSpec
from ..testing.pods import DEFAULT_RUNTIME_COMMAND
from ..testing.router import DEFAULT_PROXY_TIMEOUT

DESCRIPTION = """\
Run an imitation of an agent-sandbox cluster on this machine, for tests, benchmarks and demos without
Kubernetes: a Kubernetes API for SandboxClaims and Sandboxes, a controller that binds claims to warm-pool
pods, one runtime process per pod (legacy python-runtime protocol, isolated by bubblewrap), and a
sandbox-router. It prints the API and router URLs and writes a kubeconfig; point the server at it with
KUBECONFIG=<kubeconfig> kubernetes-agent-sandbox serve --provider kubernetes --connection direct
--api-url <router URL> --warm-pool <pool>. Everything listens on 127.0.0.1 only. Stop it with Ctrl-C.
"""


def _pool(text: str) -> PoolSpec:
    name, _, size = text.partition("=")
    try:
        return PoolSpec(name.strip(), int(size) if size else 1)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected NAME=SIZE, got {text!r}") from None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--namespace", default="default", help="namespace of the warm pools (default: default)")
    parser.add_argument(
        "--pool",
        dest="pools",
        action="append",
        type=_pool,
        metavar="NAME=SIZE",
        help="a warm pool and how many pods it keeps started; repeatable (default: python-pool=2)",
    )
    parser.add_argument("--api-port", type=int, default=0, help="port of the Kubernetes API (default: any free)")
    parser.add_argument("--router-port", type=int, default=0, help="port of the sandbox-router (default: any free)")
    parser.add_argument("--kubeconfig", help="where to write the kubeconfig (default: in the work folder)")
    parser.add_argument("--work-dir", help="folder for pod state and logs (default: a temporary folder)")
    parser.add_argument(
        "--runtime-command",
        help="command that starts one pod's runtime; {port} and {state_dir} are filled in "
        "(default: this package's imitation runtime)",
    )
    parser.add_argument(
        "--unisolated",
        action="store_true",
        help="run pod commands without bubblewrap (only for trusted code on hosts where bwrap cannot run)",
    )
    parser.add_argument(
        "--proxy-timeout",
        type=float,
        default=DEFAULT_PROXY_TIMEOUT,
        help=f"the router's longest wait for a pod, in seconds (default: {DEFAULT_PROXY_TIMEOUT:g}, as upstream)",
    )
    parser.add_argument("--json", action="store_true", help="print only one JSON line with the URLs")
    parser.add_argument("--exit-on-stdin-eof", action="store_true", help=argparse.SUPPRESS)


def settings_from(args: argparse.Namespace) -> ClusterSettings:
    command = tuple(shlex.split(args.runtime_command)) if args.runtime_command else DEFAULT_RUNTIME_COMMAND
    if args.unisolated and not args.runtime_command:
        command = (*command, "--unisolated")
    return ClusterSettings(
        namespace=args.namespace,
        pools=args.pools or [PoolSpec("python-pool", 2)],
        runtime_command=command,
        proxy_timeout=args.proxy_timeout,
        api_port=args.api_port,
        router_port=args.router_port,
        work_dir=args.work_dir,
        kubeconfig=args.kubeconfig,
        exit_on_stdin_eof=args.exit_on_stdin_eof,
    )


def _announce(as_json: bool) -> Any:
    def announce(info: dict[str, Any]) -> None:
        if as_json:
            print(json.dumps(info), flush=True)
            return
        pool = info["pools"][0]
        print(
            f"Kubernetes API:  {info['api_url']}\n"
            f"Sandbox router:  {info['router_url']}\n"
            f"Kubeconfig:      {info['kubeconfig']}\n"
            f"Warm pools:      {', '.join(info['pools'])} (namespace {info['namespace']})\n\n"
            f"Use it:  KUBECONFIG={info['kubeconfig']} kubernetes-agent-sandbox serve --provider kubernetes "
            f"--connection direct --api-url {info['router_url']} --warm-pool {pool} --namespace {info['namespace']}",
            flush=True,
        )

    return announce


def run(args: argparse.Namespace) -> int:
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(run_cluster(settings_from(args), _announce(args.json)))
    return 0


def register(subcommands: Any) -> None:
    """Add `fake-cluster` to the `kubernetes-agent-sandbox` command."""
    parser = subcommands.add_parser(
        "fake-cluster",
        help="run an imitation agent-sandbox cluster (Kubernetes API, router, pods) for tests and demos",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_arguments(parser)
    parser.set_defaults(handler=run)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="fake-cluster", description=DESCRIPTION)
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
