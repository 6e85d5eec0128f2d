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

from typing import TYPE_CHECKING, Any, cast

from ..engine import workspace_copy
from ..errors import InvalidArgumentError
from .backend import ADAPTER_LIMITS, FORK_MAX_BYTES, SandboxBackend

if TYPE_CHECKING:
    from ..providers.kubernetes.sandbox import KubernetesSandbox

SEED_TIMEOUT = 300
"""The 0.2.x default: seconds a command may run."""


class KubernetesAgentSandbox(SandboxBackend):
    """A deepagents backend on a `k8s_agent_sandbox` sandbox handle, as in 0.2.x; `.sandbox` is that handle."""

    def __init__(self, *, sandbox: Any, timeout: float = SEED_TIMEOUT) -> None:
        from ..providers.kubernetes import sandbox_from_handle

        super().__init__(sandbox_from_handle(sandbox, limits=ADAPTER_LIMITS, longest_command=timeout), timeout=timeout)
        self.sandbox = sandbox
        """The `k8s_agent_sandbox` handle passed in; `sandbox.sandbox.terminate()` ends it, as in 0.2.x."""

    @property
    def id(self) -> str:
        return str(self.sandbox.sandbox_id)

    def fork(self, sandbox: Any = None, *, max_bytes: int = FORK_MAX_BYTES) -> KubernetesAgentSandbox:
        """A backend on `sandbox`, a handle the caller claimed for the fork (`client.create_sandbox(...)`) and
        keeps, as for the constructor, with a copy of this sandbox's `/app` (at most `max_bytes`) streamed in."""
        return self._runner.run(self._fork_into(sandbox, max_bytes))

    async def afork(self, sandbox: Any = None, *, max_bytes: int = FORK_MAX_BYTES) -> KubernetesAgentSandbox:
        """`fork()` for async code."""
        return await self._runner.call(self._fork_into(sandbox, max_bytes))

    async def _fork_into(self, sandbox: Any, max_bytes: int) -> KubernetesAgentSandbox:
        if sandbox is None:
            raise InvalidArgumentError(
                "KubernetesAgentSandbox cannot claim a sandbox itself: claim one for the fork and pass its handle, "
                "backend.fork(client.create_sandbox('python-pool'))."
            )
        forked = self._sharing(
            KubernetesAgentSandbox(sandbox=sandbox, timeout=self._default_timeout or SEED_TIMEOUT), created_by=None
        )
        try:
            await workspace_copy.copy_workspace(self.core, forked.core, max_bytes=max_bytes)
        except BaseException:
            await forked._release()
            forked._runner.close()
            raise
        return forked

    async def _release(self) -> None:
        """The handle stays its owner's; only this backend's connection to the pod's agent is closed."""
        await super()._release()
        await cast("KubernetesSandbox", self.core).release()
