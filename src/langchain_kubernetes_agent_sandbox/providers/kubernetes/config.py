"""Settings of the Kubernetes provider; they come from server configuration, never from the agent."""

from __future__ import annotations

import enum
from dataclasses import dataclass

from ...errors import InvalidArgumentError


class ConnectionMode(enum.StrEnum):
    """How requests reach the sandbox pods (the Kubernetes API is always the one the kubeconfig names)."""

    DIRECT = "direct"
    """Through a sandbox-router (or a runtime) at `api_url`."""
    GATEWAY = "gateway"
    """Through the address of the Gateway `gateway_name`."""
    IN_CLUSTER = "in-cluster"
    """Straight to the pod IP, for a server that runs inside the cluster."""
    TUNNEL = "tunnel"
    """Through `kubectl port-forward` to the router, for laptops (sync client in a worker thread)."""


class RuntimeKind(enum.StrEnum):
    """What serves the warm pool's pods: which protocol commands and files speak."""

    REFERENCE = "reference"
    """The python-runtime HTTP protocol (upstream's example runtime and compatible ones), behind the router."""
    SANDBOXD = "sandboxd"
    """sandboxd (KEP-539.2): gRPC processes and REST files, reached in-cluster or through a pod port-forward."""


class SandboxdAddress(enum.StrEnum):
    """Where in-cluster connections reach a sandboxd pod (the client's two in-cluster modes)."""

    POD_IP = "pod-ip"
    SERVICE = "service"
    """The Sandbox's Service (`status.serviceFQDN`; the template needs `service: true`)."""


AGENT_PORT = 6988
"""The pod port the execution engine's agent listens on unless configured otherwise."""


@dataclass(frozen=True)
class KubernetesConfig:
    warm_pool: str
    namespace: str = "default"
    connection: ConnectionMode = ConnectionMode.DIRECT
    api_url: str | None = None
    gateway_name: str | None = None
    gateway_namespace: str = "default"
    kubeconfig: str | None = None
    """A kubeconfig file; None picks the cluster as kubectl would (in-cluster account, then KUBECONFIG)."""
    ready_timeout: float = 180.0
    """Longest wait for a claim to be bound to a ready pod."""
    api_timeout: float = 30.0
    """Longest wait for one Kubernetes API request (the client has none of its own)."""
    file_timeout: float = 120.0
    """Longest wait for one file operation on the runtime."""
    timeout_margin: float = 5.0
    """Added to a command's limit for the wait on its answer: the pod kills the command first."""
    proxy_timeout: float = 180.0
    """The router's own limit on one request (upstream default 180 s); not applied in-cluster."""
    max_lifetime: float = 24 * 3600.0
    """No sandbox outlives this, however often its idle timeout slides."""
    agent_port: int | None = AGENT_PORT
    """The pod port on which the sandbox's agent (the execution engine) listens, reached through the router's
    `X-Sandbox-Port`; None runs every command as a one-shot request to the runtime instead."""
    egress_pool: str | None = None
    """The warm pool that serves sessions with network (profile `egress`, see `profiles.py`); None: none does."""
    runtime: RuntimeKind = RuntimeKind.REFERENCE
    sandboxd_address: SandboxdAddress = SandboxdAddress.POD_IP
    """For sandboxd in-cluster: the pod's address, or its Service's."""
    sandboxd_rest_port: int = 8080
    sandboxd_grpc_port: int = 9090
    suspend_pools: tuple[str, ...] = ()
    """Warm pools whose template keeps `/app` on a volume (a volumeClaimTemplate): their sandboxes can be suspended
    (the Sandbox's `operatingMode: Suspended` deletes the pod and keeps its PVCs); the others' only end."""

    def __post_init__(self) -> None:
        if not self.warm_pool:
            raise InvalidArgumentError("The Kubernetes provider needs a warm pool: set --warm-pool.")
        if self.connection is ConnectionMode.DIRECT and not self.api_url:
            raise InvalidArgumentError(
                "--connection direct needs --api-url: the sandbox-router's URL (or a runtime's)."
            )
        if self.connection is ConnectionMode.GATEWAY and not self.gateway_name:
            raise InvalidArgumentError("--connection gateway needs --gateway-name (and --gateway-namespace).")
        if self.agent_port is not None and not 0 < self.agent_port < 65536:
            raise InvalidArgumentError(f"agent_port must be a TCP port (1 to 65535), got {self.agent_port}.")
        if self.runtime is RuntimeKind.SANDBOXD:
            self._check_sandboxd()
        for name in ("ready_timeout", "api_timeout", "file_timeout", "max_lifetime"):
            if getattr(self, name) <= 0:
                raise InvalidArgumentError(f"{name} must be positive, got {getattr(self, name)}.")

    def _check_sandboxd(self) -> None:
        if self.connection not in (ConnectionMode.IN_CLUSTER, ConnectionMode.TUNNEL):
            raise InvalidArgumentError(
                f"--runtime sandboxd cannot use --connection {self.connection}: the sandbox-router carries HTTP/1 "
                "only, not sandboxd's gRPC. Use --connection in-cluster (a server inside the cluster) or tunnel "
                "(a port-forward to each pod, with kubectl)."
            )
        ports = (self.sandboxd_rest_port, self.sandboxd_grpc_port)
        if not all(0 < port < 65536 for port in ports) or ports[0] == ports[1]:
            raise InvalidArgumentError(
                f"sandboxd's REST and gRPC ports must be two different TCP ports (1 to 65535), got {ports}."
            )

    @property
    def pools(self) -> tuple[str, ...]:
        """Every warm pool this provider claims from."""
        return (self.warm_pool,) if self.egress_pool is None else (self.warm_pool, self.egress_pool)

    @property
    def router_limit(self) -> float | None:
        """The longest request the path to the pods allows, or None when no router sits in between."""
        if self.connection is ConnectionMode.IN_CLUSTER or self.runtime is RuntimeKind.SANDBOXD:
            return None
        return self.proxy_timeout

    def where(self) -> str:
        """How messages name the cluster side: warm pool and namespace."""
        return f"warm pool {self.warm_pool!r} in namespace {self.namespace!r}"
