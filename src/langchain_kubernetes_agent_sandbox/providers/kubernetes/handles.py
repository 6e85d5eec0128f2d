"""Sandboxes on handles someone else claimed with `k8s_agent_sandbox` (how the 0.2.x adapter was used).

The handle already reaches its pod, so the provider's sandbox runs on it as it is: same connection mode, no
claim of its own, and the handle stays its owner's to terminate.
"""

from __future__ import annotations

import time
from typing import Any, cast

from k8s_agent_sandbox.models import (
    SandboxDirectConnectionConfig,
    SandboxGatewayConnectionConfig,
    SandboxInClusterConnectionConfig,
)

from ...errors import InvalidArgumentError
from ...limits import ExecutionLimits
from ...sandbox import SandboxInfo
from .config import ConnectionMode, KubernetesConfig
from .connection import ThreadedRuntime
from .sandbox import Backend, KubernetesSandbox


class _HandleClaims:
    """The provider's `Claims` for a handle someone else claimed: attaching gives that handle, nothing else."""

    def __init__(self, runtime: ThreadedRuntime) -> None:
        self._runtime = runtime

    async def create(self, name: str, labels: dict[str, str], shutdown_after: int) -> Any:
        raise InvalidArgumentError("A sandbox on an existing handle never claims one of its own.")

    async def attach(self, claim: str) -> ThreadedRuntime:
        return self._runtime

    async def close(self) -> None:
        """The handle is the caller's to close."""


def _config_for(handle: Any, longest_command: float) -> KubernetesConfig:
    """Provider settings matching how the handle reaches its pod, letting a command wait `longest_command`."""
    connection = handle.connection_config
    options: dict[str, Any] = {"connection": ConnectionMode.TUNNEL}
    if isinstance(connection, SandboxDirectConnectionConfig):
        options = {"connection": ConnectionMode.DIRECT, "api_url": connection.api_url}
    elif isinstance(connection, SandboxGatewayConnectionConfig):
        options = {
            "connection": ConnectionMode.GATEWAY,
            "gateway_name": connection.gateway_name,
            "gateway_namespace": connection.gateway_namespace,
        }
    elif isinstance(connection, SandboxInClusterConnectionConfig):
        options = {"connection": ConnectionMode.IN_CLUSTER}
    proxy_timeout = max(KubernetesConfig.proxy_timeout, longest_command + KubernetesConfig.timeout_margin)
    return KubernetesConfig(
        warm_pool=str(handle.claim_name or handle.sandbox_id),
        namespace=handle.namespace,
        proxy_timeout=proxy_timeout,
        **options,
    )


def sandbox_from_handle(handle: Any, *, limits: ExecutionLimits, longest_command: float) -> KubernetesSandbox:
    """The provider's sandbox on a `k8s_agent_sandbox` sandbox handle (sync client), which the caller keeps.

    `longest_command` seconds are allowed per command even past the router's usual limit: the handle's owner
    chose them (0.2.x let a command wait its whole timeout).
    """
    runtime = ThreadedRuntime(handle)
    backend = Backend(
        config=_config_for(handle, longest_command), claim_api=cast(Any, None), claims=cast(Any, _HandleClaims(runtime))
    )
    info = SandboxInfo(id=str(handle.claim_name or handle.sandbox_id), provider="kubernetes", created_at=time.time())
    return KubernetesSandbox(backend, info, limits, runtime)
