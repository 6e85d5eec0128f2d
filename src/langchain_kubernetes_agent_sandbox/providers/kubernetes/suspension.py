"""Suspending a claimed sandbox: the Sandbox's `spec.operatingMode` (agent-sandbox KEP-694), and its state on the claim.

`Suspended` makes the controller delete the pod and keep the Sandbox with its PVCs; `Running` makes it start a new
pod on the same PVCs. Only pools whose template keeps `/app` on a volume (`KubernetesConfig.suspend_pools`, which
the operator declares and `doctor` checks) keep their files this way. The claim carries what every replica must
see: whether the sandbox is suspended, and when idleness suspends it (milliseconds, like the exact expiry).
"""

from __future__ import annotations

import asyncio
import time

from kubernetes_asyncio import client as k8s

from ...errors import NoCapacityError, SandboxGoneError
from .claims import PREFIX, ClaimApi, JsonObject, expiry_label

SANDBOX_GROUP, SANDBOX_VERSION, SANDBOXES = "agents.x-k8s.io", "v1beta1", "sandboxes"
SUSPENDED_LABEL = "internal." + PREFIX + "suspended"
SUSPEND_AT_LABEL = "internal." + PREFIX + "suspend-at"
RESUME_POLL = 0.1
"""Seconds between looks at a resuming Sandbox's Ready condition."""


def suspended_of(claim: JsonObject) -> bool:
    return ((claim.get("metadata") or {}).get("labels") or {}).get(SUSPENDED_LABEL) == "true"


def suspend_at_of(claim: JsonObject) -> float | None:
    stamp = ((claim.get("metadata") or {}).get("labels") or {}).get(SUSPEND_AT_LABEL, "")
    return int(stamp) / 1000 if stamp.isdigit() else None


def condition_of(sandbox: JsonObject, kind: str) -> tuple[bool, str]:
    """Whether the Sandbox's condition `kind` (Ready, Suspended) is True for its current spec, and its message (what
    the controller says); a condition from before the last spec change (the suspension or resume itself) is stale."""
    generation = (sandbox.get("metadata") or {}).get("generation")
    for condition in (sandbox.get("status") or {}).get("conditions") or []:
        if condition.get("type") == kind:
            observed = condition.get("observedGeneration")
            if generation is not None and observed is not None and observed < generation:
                return False, "the controller has not seen the change yet"
            return condition.get("status") == "True", str(condition.get("message") or condition.get("reason") or "")
    return False, f"no {kind} condition yet"


class Suspender:
    """The API calls that suspend and resume the sandbox behind one claim."""

    def __init__(self, claim_api: ClaimApi) -> None:
        self.claim_api = claim_api
        self.objects = k8s.CustomObjectsApi(claim_api.objects.api_client)
        self.namespace = claim_api.config.namespace

    async def sandbox_name(self, claim: str) -> str:
        found = await self.claim_api.get(claim)
        name = ((found.get("status") or {}).get("sandbox") or {}).get("name")
        if not name:
            raise SandboxGoneError(f"Claim {claim} has no Sandbox any more: create a new sandbox.")
        return str(name)

    async def set_mode(self, sandbox: str, mode: str) -> None:
        await self.objects.patch_namespaced_custom_object(
            SANDBOX_GROUP,
            SANDBOX_VERSION,
            self.namespace,
            SANDBOXES,
            sandbox,
            {"spec": {"operatingMode": mode}},
            _content_type="application/merge-patch+json",
        )

    async def sandbox(self, sandbox: str) -> JsonObject:
        found = await self.objects.get_namespaced_custom_object(
            SANDBOX_GROUP, SANDBOX_VERSION, self.namespace, SANDBOXES, sandbox
        )
        return dict(found)

    async def mark(self, claim: str, *, suspended: bool) -> None:
        """The claim's suspended label (its suspend-at label goes with a suspension: it is not idle any more)."""
        labels: dict[str, str | None] = {SUSPENDED_LABEL: "true" if suspended else None}
        if suspended:
            labels[SUSPEND_AT_LABEL] = None
        await self.claim_api.patch(claim, {"metadata": {"labels": labels}})

    async def set_suspend_at(self, claim: str, moment: float) -> None:
        await self.claim_api.patch(claim, {"metadata": {"labels": {SUSPEND_AT_LABEL: expiry_label(moment)}}})

    async def suspend(self, claim: str, timeout: float) -> None:
        """Mark the claim first (a crash in between leaves a sandbox said suspended that runs, which a resume fixes),
        then wait up to `timeout` for the pod to be gone: a resume that met the old pod still terminating would take
        it for the new one. A pod slower than that to end is left to the controller."""
        await self.mark(claim, suspended=True)
        name = await self.sandbox_name(claim)
        await self.set_mode(name, "Suspended")
        give_up = time.monotonic() + timeout
        while time.monotonic() < give_up:
            if condition_of(await self.sandbox(name), "Suspended")[0]:
                return
            await asyncio.sleep(RESUME_POLL)

    async def _claim_sees(self, claim: str, sandbox: JsonObject) -> bool:
        """Whether the claim's status has the new pod's addresses yet: the client routes by what the claim says."""
        addresses = (sandbox.get("status") or {}).get("podIPs") or []
        found = ((await self.claim_api.get(claim)).get("status") or {}).get("sandbox") or {}
        return bool(addresses) and found.get("podIPs") == addresses

    async def resume(self, claim: str, timeout: float) -> None:
        """Ask for a pod again and wait for it to be ready; one that is not ready in time is suspended again and
        reported as a lack of capacity, with what the controller said."""
        name = await self.sandbox_name(claim)
        await self.set_mode(name, "Running")
        give_up = time.monotonic() + timeout
        said = ""
        while time.monotonic() < give_up:
            sandbox = await self.sandbox(name)
            ready, said = condition_of(sandbox, "Ready")
            if ready and await self._claim_sees(claim, sandbox):
                await self.mark(claim, suspended=False)
                return
            await asyncio.sleep(RESUME_POLL)
        await self.set_mode(name, "Suspended")
        raise NoCapacityError(
            f"Sandbox {claim} could not resume: its pod was not ready within {timeout:g} s (the controller says: "
            f"{said}); the cluster may have no room for it now. The session stays suspended with its files: retry "
            "later, or ask the operator to check the nodes (kubectl describe pods) and the resume_timeout setting."
        )
