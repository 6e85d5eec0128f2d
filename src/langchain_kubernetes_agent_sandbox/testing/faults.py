"""Fault switches of the imitation cluster: each one breaks the cluster the way a real one breaks.

Tests flip them through `FakeCluster.set_faults(...)` (an HTTP call to the cluster process) and clear them with
`FakeCluster.clear_faults()`; counters (`api_unavailable`, `watch_breaks`, `watch_gone`) switch themselves off
once used up.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any


@dataclass
class Faults:
    claim_never_ready: bool = False
    """Claims get a pod that never turns Ready (`Pod is Running but not Ready`)."""
    pool_exhausted: bool = False
    """Warm pools hand out nothing and no pod is cold-started: claims stay pending."""
    api_status: int | None = None
    """Every Kubernetes API request is answered with this HTTP status (e.g. 500) and a Status object."""
    api_unavailable: int = 0
    """The next N Kubernetes API requests are answered 503, as by an API server that is still starting."""
    api_hang: bool = False
    """Kubernetes API requests are never answered while this is set."""
    watch_breaks: int = 0
    """The next N watch streams are cut off right after their headers."""
    watch_gone: int = 0
    """The next N watches answer with an ERROR event of code 410 (resourceVersion too old)."""
    router_status: int | None = None
    """The router answers every proxied request with this status (502 or 504) without reaching the pod."""
    runtime_delay: float = 0.0
    """Seconds every runtime request waits before it reaches the pod (a slow runtime)."""
    rbac_denied: list[str] = dataclasses.field(default_factory=list)
    """SelfSubjectAccessReviews deny these 'VERB RESOURCE' pairs (e.g. 'delete sandboxclaims'); '*' denies all."""
    crds_missing: bool = False
    """API discovery answers 404 for the agent-sandbox groups, as in a cluster without agent-sandbox."""

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def update(self, changes: dict[str, Any]) -> None:
        names = {field.name for field in dataclasses.fields(self)}
        unknown = set(changes) - names
        if unknown:
            raise ValueError(f"Unknown fault switches: {sorted(unknown)}; known: {sorted(names)}.")
        for name, value in changes.items():
            setattr(self, name, value)
