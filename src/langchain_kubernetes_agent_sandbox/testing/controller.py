"""The imitation controller: binds SandboxClaims to runtime pods from declared warm pools, as agent-sandbox does.

A claim on a declared pool adopts a warm pod (or cold-starts one when the pool is empty), gets a Sandbox named
`<pool>-<5 chars>`, and receives `status.sandbox` and its Ready condition in one update. Undeclared pools get
`WarmPoolNotFound`. `spec.lifecycle.shutdownTime` is honoured; deleting a claim deletes its Sandbox and pod;
a pod whose process dies turns the Sandbox and claim `Ready=False, PodFailed`.

A Sandbox's `spec.operatingMode: Suspended` stops its pod and keeps its files (every template here keeps /app on
a volume); `Running` starts a pod of the same name on them again, or, while the pool is exhausted (no capacity),
leaves it `Ready=False` with the scheduler's message until there is room.
"""

from __future__ import annotations

import asyncio
import calendar
import contextlib
import logging
import secrets
import string
import time
from collections.abc import Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..providers.local.state import discard_state
from .faults import Faults
from .pods import Pod, PodLauncher
from .store import JsonObject, Store, StoreError

logger = logging.getLogger(__name__)

CLAIMS, SANDBOXES, POOLS, TEMPLATES = "sandboxclaims", "sandboxes", "sandboxwarmpools", "sandboxtemplates"
WORKSPACE_VOLUME = "workspace"
"""The volumeClaimTemplate every imitation template mounts at /app (the runtime's `--keep-files`)."""
_NAME_CHARS = string.ascii_lowercase + string.digits


@dataclass(frozen=True)
class PoolSpec:
    """A SandboxWarmPool the imitation serves: `replicas` pods are kept started and waiting."""

    name: str
    replicas: int = 1
    template: str = "python-runtime"


def name_hash(name: str) -> str:
    """FNV-1a (32 bit) of the sandbox name, as the `agents.x-k8s.io/sandbox-name-hash` label carries it."""
    value = 0x811C9DC5
    for byte in name.encode():
        value = ((value ^ byte) * 0x01000193) & 0xFFFFFFFF
    return f"{value:08x}"


def _condition(status: bool, reason: str, message: str) -> JsonObject:
    return {
        "type": "Ready",
        "status": "True" if status else "False",
        "reason": reason,
        "message": message,
        "lastTransitionTime": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def _deadline(claim: JsonObject) -> float | None:
    stamp = ((claim.get("spec") or {}).get("lifecycle") or {}).get("shutdownTime")
    if not stamp:
        return None
    try:
        return float(calendar.timegm(time.strptime(stamp.replace("+00:00", "Z"), "%Y-%m-%dT%H:%M:%SZ")))
    except ValueError:
        return None


class Controller:
    def __init__(self, store: Store, faults: Faults, launcher: PodLauncher, namespace: str, pools: list[PoolSpec]):
        self.store = store
        self.faults = faults
        self.launcher = launcher
        self.namespace = namespace
        self.pools = {pool.name: pool for pool in pools}
        self.warm: dict[str, list[Pod]] = {pool.name: [] for pool in pools}
        self.bound: dict[tuple[str, str], Pod] = {}
        """Pods by (namespace, sandbox name): the router's routing table."""
        self._claim_of: dict[tuple[str, str], Pod] = {}
        self._pending: set[tuple[str, str]] = set()
        self._starting: dict[str, int] = dict.fromkeys(self.pools, 0)
        self._suspended: dict[tuple[str, str], tuple[str, str]] = {}
        """Claims whose pod is stopped, by (namespace, sandbox name)."""
        self._changing: set[tuple[str, str]] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    def _spawn(self, coroutine: Coroutine[Any, Any, None]) -> None:
        task = asyncio.ensure_future(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _template(self, name: str) -> JsonObject:
        """A SandboxTemplate as `doctor` reads it: the runtime container with /app on the workspace volume."""
        mount = {"name": WORKSPACE_VOLUME, "mountPath": "/app"}
        claim = {"metadata": {"name": WORKSPACE_VOLUME}, "spec": {"accessModes": ["ReadWriteOnce"]}}
        return {
            "apiVersion": "extensions.agents.x-k8s.io/v1beta1",
            "kind": "SandboxTemplate",
            "metadata": {"name": name},
            "spec": {
                "podTemplate": {"spec": {"containers": [{"name": "python-runtime", "volumeMounts": [mount]}]}},
                "volumeClaimTemplates": [claim],
            },
        }

    async def start(self) -> None:
        for template in {pool.template for pool in self.pools.values()}:
            self.store.create(TEMPLATES, self.namespace, self._template(template))
        for pool in self.pools.values():
            self.store.create(
                POOLS,
                self.namespace,
                {
                    "apiVersion": "extensions.agents.x-k8s.io/v1beta1",
                    "kind": "SandboxWarmPool",
                    "metadata": {"name": pool.name},
                    "spec": {"replicas": pool.replicas, "sandboxTemplateRef": {"name": pool.template}},
                },
            )
        self._spawn(self._watch_claims())
        self._spawn(self._watch_sandboxes())
        self._spawn(self._housekeeping())
        await asyncio.gather(*(self._replenish(name) for name in self.pools))

    async def stop(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        pods = [pod for pods in self.warm.values() for pod in pods] + list(self._claim_of.values())
        await asyncio.gather(*(pod.stop() for pod in pods), return_exceptions=True)
        for _, sandbox in self._suspended:  # no pod, but their files (the volumes) go too
            await asyncio.to_thread(discard_state, Path(self.launcher.work_dir) / sandbox)

    def pod_for(self, namespace: str, sandbox: str) -> Pod | None:
        return self.bound.get((namespace, sandbox))

    async def _replenish(self, pool: str) -> None:
        while (
            not self.faults.pool_exhausted and len(self.warm[pool]) + self._starting[pool] < self.pools[pool].replicas
        ):
            self._starting[pool] += 1
            try:
                pod = await self.launcher.start(self._new_name(pool))
            finally:
                self._starting[pool] -= 1
            self.warm[pool].append(pod)
            self._publish(pool)

    def _publish(self, pool: str) -> None:
        """The pool's status as agent-sandbox reports it: pods it holds, and how many of them are ready."""
        ready = len(self.warm[pool])

        def mutate(obj: JsonObject) -> None:
            obj["status"] = {"replicas": ready + self._starting[pool], "readyReplicas": ready}

        self.store.update(POOLS, self.namespace, pool, mutate)

    def _new_name(self, pool: str) -> str:
        while True:
            name = f"{pool}-{''.join(secrets.choice(_NAME_CHARS) for _ in range(5))}"
            if self.store.find(SANDBOXES, self.namespace, name) is None:
                return name

    async def _watch_claims(self) -> None:
        async for event in self.store.watch(CLAIMS, None, None, self.store.resource_version):
            key = (event.namespace, event.name)
            if event.type == "ADDED":
                self._spawn(self._bind(key))
            elif event.type == "DELETED":
                self._pending.discard(key)
                self._spawn(self._release(key))

    async def _housekeeping(self) -> None:
        """Expire claims past their shutdownTime, retry pending claims, keep pools full."""
        while True:
            await asyncio.sleep(0.1)
            now = time.time()
            for claim in self.store.list(CLAIMS):
                deadline = _deadline(claim)
                if deadline is not None and deadline <= now:
                    self._expire(claim)
            for key in list(self._pending):
                self._pending.discard(key)
                self._spawn(self._bind(key))
            for pool in self.pools:
                self._spawn(self._replenish(pool))
            for namespace, sandbox in list(self._suspended):
                found = self.store.find(SANDBOXES, namespace, sandbox)
                if found is not None and self._mode(found) == "Running":
                    self._spawn(self._resume(namespace, sandbox))

    def _expire(self, claim: JsonObject) -> None:
        meta = claim["metadata"]
        policy = ((claim.get("spec") or {}).get("lifecycle") or {}).get("shutdownPolicy", "Retain")
        if policy in ("Delete", "DeleteForeground"):
            with contextlib.suppress(StoreError):
                self.store.delete(CLAIMS, meta["namespace"], meta["name"])
            return
        conditions = (claim.get("status") or {}).get("conditions") or []
        if not any(c.get("reason") == "ClaimExpired" for c in conditions):
            self._set_claim_status(meta["namespace"], meta["name"], None, False, "ClaimExpired", "Claim expired")
            self._spawn(self._release((meta["namespace"], meta["name"])))

    def _set_claim_status(
        self, namespace: str, name: str, pod: Pod | None, ready: bool, reason: str, message: str
    ) -> None:
        def mutate(claim: JsonObject) -> None:
            status = claim.setdefault("status", {})
            status["conditions"] = [_condition(ready, reason, message)]
            if pod is not None:
                status["sandbox"] = {"name": pod.name, "podIPs": [pod.ip] if ready else []}
                claim["metadata"].setdefault("annotations", {})["agents.x-k8s.io/sandbox-name"] = pod.name

        with contextlib.suppress(StoreError):
            self.store.update(CLAIMS, namespace, name, mutate)

    async def _bind(self, key: tuple[str, str]) -> None:
        namespace, name = key
        claim = self.store.find(CLAIMS, namespace, name)
        if claim is None or (claim.get("status") or {}).get("sandbox"):
            return
        pool = ((claim.get("spec") or {}).get("warmPoolRef") or {}).get("name", "")
        if namespace != self.namespace or pool not in self.pools:
            self._set_claim_status(
                namespace, name, None, False, "WarmPoolNotFound", f'SandboxWarmPool "{pool}" not found'
            )
            return
        if self.faults.pool_exhausted:
            self._set_claim_status(
                namespace, name, None, False, "SandboxCreatePending", f'SandboxWarmPool "{pool}" has no free sandbox'
            )
            self._pending.add(key)
            return
        pod = self.warm[pool].pop(0) if self.warm[pool] else await self.launcher.start(self._new_name(pool))
        self._publish(pool)
        if self.store.find(CLAIMS, namespace, name) is None:
            await pod.stop()
            return
        self._spawn(self._replenish(pool))
        ready = not self.faults.claim_never_ready
        self.store.create(SANDBOXES, namespace, self._sandbox_object(claim, pod, ready))
        self.bound[(namespace, pod.name)] = pod
        self._claim_of[key] = pod
        self._spawn(self._watch_pod(key, pod))
        if ready:
            self._set_claim_status(namespace, name, pod, True, "DependenciesReady", "Pod is Ready")
        else:
            self._set_claim_status(namespace, name, pod, False, "DependenciesNotReady", "Pod is Running but not Ready")

    def _sandbox_object(self, claim: JsonObject, pod: Pod, ready: bool) -> JsonObject:
        meta = claim["metadata"]
        selector = f"agents.x-k8s.io/sandbox-name-hash={name_hash(pod.name)}"
        message = "Pod is Ready" if ready else "Pod is Running but not Ready"
        return {
            "apiVersion": "agents.x-k8s.io/v1beta1",
            "kind": "Sandbox",
            "metadata": {
                "name": pod.name,
                "labels": {"agents.x-k8s.io/sandbox-name-hash": name_hash(pod.name)},
                "annotations": {"agents.x-k8s.io/pod-name": pod.name},
                "ownerReferences": [
                    {
                        "apiVersion": "extensions.agents.x-k8s.io/v1beta1",
                        "kind": "SandboxClaim",
                        "name": meta["name"],
                        "uid": meta["uid"],
                        "controller": True,
                    }
                ],
            },
            "spec": {"podTemplate": {"spec": {"containers": [{"name": "python-runtime"}]}}},
            "status": {
                "conditions": [_condition(ready, "DependenciesReady" if ready else "DependenciesNotReady", message)],
                "podIPs": [pod.ip] if ready else [],
                "selector": selector,
            },
        }

    async def _watch_pod(self, key: tuple[str, str], pod: Pod) -> None:
        await pod.process.wait()
        if self._claim_of.get(key) is not pod:
            return
        namespace, name = key
        self.bound.pop((namespace, pod.name), None)
        message = f"Pod exited with code {pod.process.returncode}"

        def fail(sandbox: JsonObject) -> None:
            sandbox["status"] = {"conditions": [_condition(False, "PodFailed", message)], "podIPs": []}

        with contextlib.suppress(StoreError):
            self.store.update(SANDBOXES, namespace, pod.name, fail)
        self._set_claim_status(namespace, name, None, False, "PodFailed", message)

    @staticmethod
    def _mode(sandbox: JsonObject) -> str:
        return str((sandbox.get("spec") or {}).get("operatingMode") or "Running")

    async def _watch_sandboxes(self) -> None:
        async for event in self.store.watch(SANDBOXES, None, None, self.store.resource_version):
            if event.type != "MODIFIED":
                continue
            found = self.store.find(SANDBOXES, event.namespace, event.name)
            if found is None:
                continue
            if self._mode(found) == "Suspended":
                self._spawn(self._suspend(event.namespace, event.name))
            else:
                self._spawn(self._resume(event.namespace, event.name))

    def _set_sandbox_ready(self, namespace: str, sandbox: str, pod: Pod | None, reason: str, message: str) -> None:
        def mutate(obj: JsonObject) -> None:
            status = obj.setdefault("status", {})
            ready = _condition(pod is not None, reason, message)
            suspended = {**_condition(message == "Sandbox is suspended", reason, message), "type": "Suspended"}
            for condition in (ready, suspended):
                condition["observedGeneration"] = obj["metadata"].get("generation", 1)  # the spec it answers
            status["conditions"] = [ready, suspended]
            status["podIPs"] = [pod.ip] if pod is not None else []

        with contextlib.suppress(StoreError):
            self.store.update(SANDBOXES, namespace, sandbox, mutate)

    async def _suspend(self, namespace: str, sandbox: str) -> None:
        key = next((k for k, pod in self._claim_of.items() if k[0] == namespace and pod.name == sandbox), None)
        if key is None or (namespace, sandbox) in self._changing:
            return
        self._changing.add((namespace, sandbox))
        try:
            pod = self._claim_of.pop(key)
            self.bound.pop((namespace, sandbox), None)
            self._suspended[(namespace, sandbox)] = key
            self._set_sandbox_ready(namespace, sandbox, None, "SandboxSuspended", "Sandbox is suspending")
            await pod.stop(keep_files=True)
            self._set_sandbox_ready(namespace, sandbox, None, "SandboxSuspended", "Sandbox is suspended")
            self._set_claim_status(key[0], key[1], None, False, "SandboxSuspended", "Sandbox is suspended")
        finally:
            self._changing.discard((namespace, sandbox))

    async def _resume(self, namespace: str, sandbox: str) -> None:
        key = self._suspended.get((namespace, sandbox))
        if key is None or (namespace, sandbox) in self._changing:
            return
        if self.faults.pool_exhausted:
            message = "Pod is Pending: 0/1 nodes are available: 1 Insufficient cpu"
            found = self.store.find(SANDBOXES, namespace, sandbox) or {}
            if ((found.get("status") or {}).get("conditions") or [{}])[0].get("message") != message:
                self._set_sandbox_ready(namespace, sandbox, None, "DependenciesNotReady", message)
            return
        self._changing.add((namespace, sandbox))
        try:
            pod = await self.launcher.start(sandbox)
            del self._suspended[(namespace, sandbox)]
            if self.store.find(CLAIMS, *key) is None:
                await pod.stop()
                return
            self.bound[(namespace, sandbox)] = pod
            self._claim_of[key] = pod
            self._spawn(self._watch_pod(key, pod))
            self._set_sandbox_ready(namespace, sandbox, pod, "DependenciesReady", "Pod is Ready")
            self._set_claim_status(key[0], key[1], pod, True, "DependenciesReady", "Pod is Ready")
        finally:
            self._changing.discard((namespace, sandbox))

    async def _release(self, key: tuple[str, str]) -> None:
        kept = next((place for place, claim in self._suspended.items() if claim == key), None)
        if kept is not None:  # a suspended claim: its pod is gone already, its files (the volume) go now
            del self._suspended[kept]
            with contextlib.suppress(StoreError):
                self.store.delete(SANDBOXES, *kept)
            await asyncio.to_thread(discard_state, Path(self.launcher.work_dir) / kept[1])
            return
        pod = self._claim_of.pop(key, None)
        if pod is None:
            return
        self.bound.pop((key[0], pod.name), None)
        with contextlib.suppress(StoreError):
            self.store.delete(SANDBOXES, key[0], pod.name)
        await pod.stop()
