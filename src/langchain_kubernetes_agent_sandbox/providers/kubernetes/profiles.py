"""Which warm pool serves a session's network choice: on Kubernetes a pod's network is its template's (the
NetworkPolicy the pool's SandboxTemplate carries), so the operator names a pool per profile instead of the
provider opening or closing anything per sandbox.

Profiles: `none` (no egress), served by the warm pool; `egress` (the cluster's egress proxy and its allow-list,
see docs/kubernetes.md), served by the egress pool when the operator names one.
"""

from __future__ import annotations

from typing import Any

from ...errors import InvalidArgumentError
from ...network.policy import EgressPolicy
from .config import KubernetesConfig


def pool_for(config: KubernetesConfig, network: bool | EgressPolicy) -> str:
    """The warm pool that serves `network`, or an error that says which profile no pool serves."""
    if network is False:
        return config.warm_pool
    if isinstance(network, EgressPolicy):
        raise InvalidArgumentError(
            "On Kubernetes a session cannot narrow egress with its own rules: the egress pool's NetworkPolicy and "
            "the cluster's egress proxy decide what it reaches. Create the session with network=true, or without."
        )
    if config.egress_pool is None:
        raise InvalidArgumentError(
            f"No warm pool serves the network profile 'egress' here (sessions without network use "
            f"{config.warm_pool!r}): create the session without network, or ask the operator to name a pool whose "
            "template allows egress through the cluster's proxy (--egress-pool)."
        )
    return config.egress_pool


def pool_of(claim: dict[str, Any]) -> str | None:
    return ((claim.get("spec") or {}).get("warmPoolRef") or {}).get("name")
