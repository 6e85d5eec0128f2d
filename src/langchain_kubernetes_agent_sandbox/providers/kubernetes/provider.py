"""The Kubernetes provider: sandboxes are agent-sandbox pods claimed from a warm pool."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import time
from collections.abc import Mapping, Sequence

from ...errors import InvalidArgumentError, NotFoundError
from ...limits import ExecutionLimits
from ...network.policy import EgressPolicy
from ...sandbox import Sandbox, SandboxInfo, SandboxProvider
from .claims import (
    EXPIRY_LABEL,
    ClaimApi,
    JsonObject,
    backstop_after,
    claim_labels,
    expiry_label,
    info_of,
    is_expired,
    is_ours,
    new_claim_name,
    selector,
)
from .config import KubernetesConfig, RuntimeKind
from .connection import BoundedApiClient, Claims, api_client, claims_for
from .errors import translated
from .profiles import pool_for, pool_of
from .sandbox import Backend, KubernetesSandbox
from .sandboxd_sandbox import SandboxdSandbox, sandboxd_claims
from .suspension import suspend_at_of, suspended_of
from .unavailable import through_unavailability


def _claims_for(config: KubernetesConfig, api: BoundedApiClient) -> Claims:
    return sandboxd_claims(config, api) if config.runtime is RuntimeKind.SANDBOXD else claims_for(config, api)


class KubernetesProvider(SandboxProvider):
    """SandboxClaims on one warm pool in one namespace, as the server's configuration names them.

    Claims carry the caller's labels, the exact expiry and a shutdownTime backstop a little after it, so a
    restarted server finds them again by id or labels, and a claim whose server vanished still expires. The
    exact expiry is the one reported and kept: a claim past it is terminated when `get` or `list` meets it.
    """

    name = "kubernetes"

    def __init__(self, config: KubernetesConfig, *, limits: ExecutionLimits | None = None) -> None:
        self.config = config
        self.limits = self._fitted(config, limits or ExecutionLimits())
        self._backend: Backend | None = None
        self._egress_claims: Claims | None = None
        self._api: BoundedApiClient | None = None
        self._connecting = asyncio.Lock()
        self._sandbox_type = SandboxdSandbox if config.runtime is RuntimeKind.SANDBOXD else KubernetesSandbox

    @staticmethod
    def _fitted(config: KubernetesConfig, limits: ExecutionLimits) -> ExecutionLimits:
        """The limits with a default run timeout that fits through the router (explicit longer ones are refused)."""
        if config.router_limit is None:
            return limits
        fits = config.router_limit - config.timeout_margin
        return dataclasses.replace(limits, default_timeout=min(limits.default_timeout, fits))

    async def _connected(self) -> Backend:
        async with self._connecting:
            if self._backend is None:
                with translated(self.config, "connect to the cluster"):
                    self._api = await api_client(self.config)
                claims: Claims = _claims_for(self.config, self._api)
                self._backend = Backend(self.config, ClaimApi(self.config, self._api), claims)
            return self._backend

    async def create(
        self,
        *,
        labels: Mapping[str, str] | None = None,
        lifetime: float | None = None,
        network: bool | EgressPolicy = False,
    ) -> Sandbox:
        pool = pool_for(self.config, network)
        if lifetime is not None and lifetime <= 0:
            raise InvalidArgumentError(f"lifetime must be positive, got {lifetime}.")
        backend = await self._on_pool(pool)
        wanted = dict(labels or {})
        mapped, hashed = claim_labels(wanted)
        lifetime = min(lifetime or self.config.max_lifetime, self.config.max_lifetime)
        deadline = self.config.ready_timeout + 3 * self.config.api_timeout
        started = time.time()
        mapped[EXPIRY_LABEL] = expiry_label(started + lifetime)
        claim = new_claim_name()
        with translated(self.config, "create a sandbox"):
            try:
                async with asyncio.timeout(deadline):
                    runtime = await through_unavailability(
                        lambda: backend.claims.create(claim, mapped, backstop_after(lifetime)),
                        within=self.config.api_timeout,
                    )
            except BaseException:
                await asyncio.shield(self._delete_failed(backend, claim))
                raise
            if hashed:
                async with asyncio.timeout(self.config.api_timeout):
                    await backend.claim_api.keep_labels(claim, wanted)
        info = SandboxInfo(
            id=claim,
            provider=self.name,
            labels=wanted,
            created_at=started,
            expires_at=started + lifetime,
            network=pool != self.config.warm_pool,
        )
        return self._sandbox_type(backend, info, self.limits, runtime, suspendable=pool in self.config.suspend_pools)

    async def _delete_failed(self, backend: Backend, claim: str) -> None:
        """Delete the claim a failed create may have left (the client leaves named claims to their namer), through
        an API server that may still be restarting; what cannot be deleted now its shutdownTime ends."""
        with contextlib.suppress(Exception):
            async with asyncio.timeout(2 * self.config.api_timeout):
                await through_unavailability(lambda: backend.claim_api.delete(claim), within=self.config.api_timeout)

    async def get(self, sandbox_id: str) -> Sandbox:
        backend = await self._connected()
        try:
            with translated(self.config, "find the sandbox", sandbox_id):
                async with asyncio.timeout(self.config.api_timeout):
                    claim = await through_unavailability(
                        lambda: backend.claim_api.get(sandbox_id), within=self.config.api_timeout
                    )
        except NotFoundError:
            claim = None
        if claim is None or not self._live(claim):
            await backend.claims.release(sandbox_id)
            raise NotFoundError(
                f"No sandbox {sandbox_id!r} in the {self.config.where()}: it was terminated, expired, or never "
                "existed. Create a new one."
            )
        if is_expired(claim, time.time()):
            await self._reap(backend, [claim])
            raise NotFoundError(
                f"Sandbox {sandbox_id!r} in the {self.config.where()} expired and was terminated: create a new one."
            )
        return self._sandbox(backend, claim)

    async def list(self, labels: Mapping[str, str] | None = None) -> list[Sandbox]:
        backend = await self._connected()
        with translated(self.config, "list sandboxes"):
            async with asyncio.timeout(self.config.api_timeout):
                listed = await through_unavailability(
                    lambda: backend.claim_api.list(selector(labels or {})), within=self.config.api_timeout
                )
            claims = [claim for claim in listed if self._live(claim)]
        now = time.time()
        await self._reap(backend, [claim for claim in claims if is_expired(claim, now)])
        return [self._sandbox(backend, claim) for claim in claims if not is_expired(claim, now)]

    def _sandbox(self, backend: Backend, claim: JsonObject) -> KubernetesSandbox:
        pool = pool_of(claim)
        egress = self.config.egress_pool is not None and pool == self.config.egress_pool
        info = dataclasses.replace(
            info_of(claim), network=egress, suspended=suspended_of(claim), suspend_at=suspend_at_of(claim)
        )
        return self._sandbox_type(backend, info, self.limits, suspendable=pool in self.config.suspend_pools)

    def can_suspend(self, network: bool | EgressPolicy = False) -> bool:
        return pool_for(self.config, network) in self.config.suspend_pools

    async def _on_pool(self, pool: str) -> Backend:
        """The backend that claims from `pool`: the warm pool's, or the egress pool's (its own client)."""
        backend = await self._connected()
        if pool == self.config.warm_pool:
            return backend
        if self._egress_claims is None:
            assert self._api is not None
            self._egress_claims = _claims_for(dataclasses.replace(self.config, warm_pool=pool), self._api)
        # The same agent links as the warm pool's, which `aclose` closes (the sandbox ids never collide).
        return Backend(self.config, backend.claim_api, self._egress_claims, backend.agents, backend.hosts_agent)

    def _live(self, claim: JsonObject) -> bool:
        return is_ours(claim, self.config) and not claim["metadata"].get("deletionTimestamp")

    async def _reap(self, backend: Backend, claims: Sequence[JsonObject]) -> None:
        """Delete claims past their exact expiry, before the controller's backstop does; best effort, as the
        backstop follows anyway."""
        if not claims:
            return
        names = [claim["metadata"]["name"] for claim in claims]
        for name in names:
            await backend.claims.release(name)
        with contextlib.suppress(Exception):
            async with asyncio.timeout(self.config.api_timeout):
                await asyncio.gather(*(backend.claim_api.delete(name) for name in names), return_exceptions=True)

    async def check(self) -> None:
        backend = await self._connected()
        with translated(self.config, "reach the Kubernetes API"):
            async with asyncio.timeout(self.config.api_timeout):
                await backend.claim_api.list(selector({}), limit=1)

    async def aclose(self) -> None:
        backend, self._backend = self._backend, None
        if backend is not None:
            await backend.agents.aclose()
            await backend.claims.close()
        egress, self._egress_claims = self._egress_claims, None
        if egress is not None:
            await egress.close()
        if self._api is not None:
            api, self._api = self._api, None
            await api.close()
