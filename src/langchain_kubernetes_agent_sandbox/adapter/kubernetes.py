"""`KubernetesAgentSandbox`: the 0.2.x adapter's class, same constructor and methods, on the Kubernetes provider.

    sandbox = KubernetesAgentSandbox(sandbox=client.create_sandbox("python-pool"), timeout=300)
    agent = create_deep_agent(model=model, backend=sandbox)
    ...
    sandbox.sandbox.terminate()

What 0.2.x got wrong is fixed by running through the provider's sandbox: stderr is kept, commands run
through `/bin/sh -c`, `/app/x` stays `/app/x` and every absolute path works, and a timeout kills the command
(exit code 124, with the output written so far). The caller owns the handle and terminates it.
"""

from __future__ import annotations

import time
from typing import Any, cast

from k8s_agent_sandbox.models import (
    SandboxDirectConnectionConfig,
    SandboxGatewayConnectionConfig,
    SandboxInClusterConnectionConfig,
)

from ..errors import InvalidArgumentError
from ..sandbox import SandboxInfo
from .backend import ADAPTER_LIMITS, SandboxBackend

SEED_TIMEOUT = 300
"""The 0.2.x default: seconds a command may run."""


class _HandleClaims:
    """The provider's `Claims` for a handle someone else claimed: attaching gives that handle, nothing else."""

    def __init__(self, runtime: Any) -> None:
        self._runtime = runtime

    async def create(self, labels: dict[str, str], shutdown_after: int) -> tuple[str, Any]:
        raise InvalidArgumentError("A KubernetesAgentSandbox wraps an existing sandbox; it never claims one.")

    async def attach(self, claim: str) -> Any:
        return self._runtime

    async def close(self) -> None:
        """The handle is the caller's to close."""


def _config_for(handle: Any, timeout: float) -> Any:
    """Provider settings matching how the caller's handle reaches its pod."""
    from ..providers.kubernetes import ConnectionMode, KubernetesConfig

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
    margin = KubernetesConfig.timeout_margin
    # 0.2.x let a command wait `timeout` seconds whatever the router allows; keep that promise.
    proxy_timeout = max(KubernetesConfig.proxy_timeout, timeout + margin)
    return KubernetesConfig(
        warm_pool=str(handle.claim_name or handle.sandbox_id),
        namespace=handle.namespace,
        proxy_timeout=proxy_timeout,
        **options,
    )


class KubernetesAgentSandbox(SandboxBackend):
    """A deepagents backend on a `k8s_agent_sandbox` sandbox handle, as in 0.2.x; `.sandbox` is that handle."""

    def __init__(self, *, sandbox: Any, timeout: float = SEED_TIMEOUT) -> None:
        from ..providers.kubernetes import KubernetesSandbox
        from ..providers.kubernetes.connection import ThreadedRuntime
        from ..providers.kubernetes.sandbox import Backend

        config = _config_for(sandbox, timeout)
        runtime = ThreadedRuntime(sandbox)
        backend = Backend(config=config, claim_api=cast(Any, None), claims=cast(Any, _HandleClaims(runtime)))
        info = SandboxInfo(
            id=str(sandbox.claim_name or sandbox.sandbox_id), provider="kubernetes", created_at=time.time()
        )
        super().__init__(KubernetesSandbox(backend, info, ADAPTER_LIMITS, runtime), timeout=timeout)
        self.sandbox = sandbox
        """The `k8s_agent_sandbox` handle passed in; `sandbox.sandbox.terminate()` ends it, as in 0.2.x."""

    @property
    def id(self) -> str:
        return str(self.sandbox.sandbox_id)
