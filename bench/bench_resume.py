"""Resume latency against a fresh claim's, on the imitation cluster and the real control plane, in one run.

    .venv/bin/python bench/bench_resume.py [--rounds 8]

Each round times, on one provider whose pool keeps /app on a volume (`suspend_pools`), both ways for a session to
get a ready sandbox and run its first command (`echo hi`, one-shot through the runtime, so that neither side pays
for starting the pod's agent):

- fresh claim: `create()` on the warm pool, then the command (the anchor: what a session ended on idle costs to
  come back as an empty one);
- resume: `resume()` of a sandbox suspended beforehand (its pod deleted, its files kept), then the command.

The sides alternate which goes first in every round, and each claim waits until the warm pool has had time to
refill. The real control plane needs Go (it is built from tests/controlplane and cached); without it, that half
says why and is left out.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from langchain_kubernetes_agent_sandbox.providers.kubernetes import KubernetesConfig, KubernetesProvider
from langchain_kubernetes_agent_sandbox.testing import FakeCluster
from langchain_kubernetes_agent_sandbox.testing.control_plane import ControlPlane
from langchain_kubernetes_agent_sandbox.testing.go_build import GoMissingError, build_control_plane
from langchain_kubernetes_agent_sandbox.testing.pod_network import PodNetworkError

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from tests.control_plane import KEPT_POOL, NAMESPACE, kept_pool_manifests, wait_for_pool  # noqa: E402

COMMAND = "echo hi"
REFILL_SECONDS = 2.0
"""Pause before each timed claim, for the pool to replace the pod the last one took."""
Figure = dict[str, Any]


@contextlib.contextmanager
def real_control_plane() -> Any:
    """The real control plane with the kept pool ready, as (router URL, kubeconfig, pool)."""
    binaries = build_control_plane(ROOT / "tests" / "controlplane")
    with ControlPlane(binaries) as plane:
        for manifest in kept_pool_manifests(NAMESPACE):
            plane.apply(manifest)
        wait_for_pool(plane, NAMESPACE, KEPT_POOL)
        yield plane.router_url, plane.kubeconfig, KEPT_POOL


async def first_command(provider: KubernetesProvider, sandbox: Any = None) -> tuple[Any, float]:
    """A ready sandbox and its first command: a fresh claim when `sandbox` is None, else its resume."""
    started = time.perf_counter()
    if sandbox is None:
        sandbox = await provider.create(lifetime=600)
    else:
        await sandbox.resume(120)
    result = await sandbox.run(COMMAND)
    assert result.stdout == "hi\n", result
    return sandbox, time.perf_counter() - started


async def measure(router_url: str, kubeconfig: str, pool: str, rounds: int) -> tuple[float, float]:
    """Median seconds of (resume + first command, fresh claim + first command)."""
    config = KubernetesConfig(
        warm_pool=pool, api_url=router_url, kubeconfig=kubeconfig, suspend_pools=(pool,), agent_port=None
    )
    provider = KubernetesProvider(config)
    resumes: list[float] = []
    fresh: list[float] = []
    try:
        kept, _ = await first_command(provider)
        await kept.write_file("/app/kept.txt", b"kept")
        for number in range(rounds):
            await kept.suspend()
            await asyncio.sleep(REFILL_SECONDS)
            order = ["resume", "fresh"] if number % 2 == 0 else ["fresh", "resume"]
            for side in order:
                if side == "resume":
                    _, seconds = await first_command(provider, kept)
                    resumes.append(seconds)
                    assert await kept.read_file("/app/kept.txt") == b"kept"
                else:
                    claimed, seconds = await first_command(provider)
                    fresh.append(seconds)
                    await claimed.terminate()
                    await asyncio.sleep(REFILL_SECONDS)
        await kept.terminate()
    finally:
        await provider.aclose()
    return statistics.median(resumes), statistics.median(fresh)


def figures(rounds: int) -> list[Figure]:
    found: list[Figure] = []
    with FakeCluster({"python-pool": 2}) as cluster:
        resume, fresh = asyncio.run(measure(cluster.router_url, cluster.kubeconfig, cluster.pool, rounds))
    found.append(figure("imitation", resume, fresh, rounds))
    try:
        with real_control_plane() as (router_url, kubeconfig, pool):
            resume, fresh = asyncio.run(measure(router_url, kubeconfig, pool, rounds))
        found.append(figure("real control plane", resume, fresh, rounds))
    except (GoMissingError, PodNetworkError) as missing:
        print(f"real control plane left out: {missing}", file=sys.stderr)
    return found


def figure(where: str, resume: float, fresh: float, rounds: int) -> Figure:
    return {
        "figure": f"resume + first command, {where} (median of {rounds})",
        "value": resume * 1000,
        "unit": "ms",
        "baseline": fresh * 1000,
        "baseline_is": "fresh claim + first command",
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=8, help="resumes and fresh claims each (default 8)")
    arguments = parser.parse_args()
    for f in figures(arguments.rounds):
        ratio = f["value"] / f["baseline"]
        print(f"{f['figure']}: {f['value']:.0f} ms, {f['baseline_is']} {f['baseline']:.0f} ms, {ratio:.2f}x")
