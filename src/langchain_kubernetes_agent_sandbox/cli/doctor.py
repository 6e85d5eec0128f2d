"""`kubernetes-agent-sandbox doctor`: check a cluster and this configuration before serving on it."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from typing import Any

from ..providers.kubernetes.config import KubernetesConfig
from ..server import runtime
from ..server.config import ConfigError, ServerConfig, load
from .serve import add_setting_arguments

KUBERNETES_SETTINGS = (
    "namespace",
    "warm_pool",
    "connection",
    "api_url",
    "gateway_name",
    "gateway_namespace",
    "kubeconfig",
    "runtime",
    "sandboxd_address",
    "sandboxd_rest_port",
    "sandboxd_grpc_port",
    "suspend_pools",
)

DESCRIPTION = """\
Check, from where it runs, that the Kubernetes provider can serve with these settings: credentials work, the
agent-sandbox CRDs are installed, the RBAC verbs are granted, the warm pool exists and has ready pods, the router
(or gateway) answers, each pool in --suspend-pools keeps /app on a volume, and a test claim runs a command and
is deleted. Takes the same settings as `serve` (flags, KUBERNETES_AGENT_SANDBOX_* variables, --config file).
Exits 1 when a check fails, naming what to fix."""


def register(subcommands: Any) -> None:
    parser = subcommands.add_parser(
        "doctor",
        help="Check a Kubernetes cluster and the provider settings; say what to fix.",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_setting_arguments(parser, KUBERNETES_SETTINGS)
    parser.add_argument("--no-claim", action="store_true", help="skip the test claim (creates and deletes one pod)")
    parser.add_argument(
        "--claim-timeout", type=float, default=120.0, metavar="SECONDS", help="longest wait for the test claim"
    )
    parser.set_defaults(handler=run)


def kubernetes_config(config: ServerConfig) -> KubernetesConfig:
    """The server's Kubernetes settings; unless the operator set one, time for a test claim to become ready on a
    cold pool."""
    return runtime.kubernetes_config(config, ready_timeout=120.0)


def run(args: argparse.Namespace) -> int:
    from ..providers.kubernetes.doctor import Doctor

    flags: dict[str, Any] = {name: getattr(args, name) for name in KUBERNETES_SETTINGS}
    # Only the Kubernetes settings matter here; the serving ones (transport, tokens) are not checked.
    flags.update(transport="stdio", provider="kubernetes", allow_unauthenticated=False)
    try:
        config = load(flags, {k: v for k, v in os.environ.items() if _relevant(k)}, args.config)
        cluster = kubernetes_config(config)
    except ConfigError as error:
        print(f"kubernetes-agent-sandbox doctor: {error}", file=sys.stderr)
        return 2
    doctor = Doctor(cluster, run_claim=not args.no_claim, claim_timeout=args.claim_timeout)
    print(f"Checking {cluster.where()} over the {cluster.connection.value} connection:", flush=True)
    asyncio.run(doctor.run(lambda check: print(check.render(), flush=True)))
    failed = [check.name for check in doctor.checks if check.status == "failed"]
    if failed:
        print(f"{len(failed)} check(s) failed: {', '.join(failed)}.")
        return 1
    print("All checks passed: `serve --provider kubernetes` with these settings can serve sandboxes.")
    return 0


def _relevant(name: str) -> bool:
    return any(name == "KUBERNETES_AGENT_SANDBOX_" + setting.upper() for setting in (*KUBERNETES_SETTINGS, "config"))
