"""The Kubernetes API access the provider needs: one table for the manifests' Role, `doctor` and the docs.

Read off the provider and the `k8s-agent-sandbox` 1.0.8 async client it drives:

- sandboxclaims: `create` (a new sandbox), `watch` (the client waits on one watch for the claim to be bound and
  ready), `get` (find one again by id), `list` (find by labels, readiness), `patch` (slide the expiry, keep
  hashed labels), `delete` (terminate, reap, roll back a failed create).
- sandboxes: `get` (the client reads the pod IP for routing; the provider asks a failed call's Sandbox whether
  its pod died, and a resuming one whether its new pod is ready), `patch` (suspend and resume: the Sandbox's
  `spec.operatingMode`, on pools in `suspend_pools`; granted whatever the pools, so that an operator who adds
  a pool there needs no new Role). Nothing lists or watches Sandboxes.
- gateways, only with `--connection gateway`: `list` and `watch` (the client watches the named Gateway for its
  address), in the gateway's namespace.
- pods, only with `--runtime sandboxd --connection tunnel`: `get` (kubectl reads the pod) and `create` on
  `pods/portforward` (the tunnel to sandboxd's ports), in the sandboxes' namespace.
"""

from __future__ import annotations

from dataclasses import dataclass

from .config import ConnectionMode, KubernetesConfig, RuntimeKind

CLAIMS_GROUP = "extensions.agents.x-k8s.io"
SANDBOX_GROUP = "agents.x-k8s.io"
GATEWAY_GROUP = "gateway.networking.k8s.io"


@dataclass(frozen=True)
class Access:
    """Verbs on one resource of one API group, in one namespace."""

    group: str
    resource: str
    verbs: tuple[str, ...]
    namespace: str
    why: str
    subresource: str = ""


CLAIM_VERBS = ("create", "delete", "get", "list", "patch", "watch")
SANDBOX_VERBS = ("get", "patch")
GATEWAY_VERBS = ("list", "watch")
CORE_GROUP = ""


def required_access(config: KubernetesConfig) -> list[Access]:
    """What the provider configured as `config` calls on the Kubernetes API."""
    needed = [
        Access(CLAIMS_GROUP, "sandboxclaims", CLAIM_VERBS, config.namespace, "claim, find, wait for, slide, delete"),
        Access(SANDBOX_GROUP, "sandboxes", SANDBOX_VERBS, config.namespace, "resolve, suspend, resume a claim's pod"),
    ]
    if config.connection is ConnectionMode.GATEWAY:
        needed.append(
            Access(GATEWAY_GROUP, "gateways", GATEWAY_VERBS, config.gateway_namespace, "wait for the Gateway address")
        )
    if config.runtime is RuntimeKind.SANDBOXD and config.connection is ConnectionMode.TUNNEL:
        needed += [
            Access(CORE_GROUP, "pods", ("get",), config.namespace, "kubectl port-forward finds the pod"),
            Access(CORE_GROUP, "pods", ("create",), config.namespace, "the tunnel to sandboxd", "portforward"),
        ]
    return needed
