"""`doctor`'s checks: from wherever it runs, can this configuration serve sandboxes on this cluster?

Each check reports ok, failed (with what to fix) or skipped (an earlier failure makes it meaningless). They run
in order: credentials, CRDs, RBAC, warm pool, router or gateway, and a test claim that runs a command and is
deleted again. The doctor talks to the Kubernetes API directly (it is a diagnosis, not a provider), and to the
sandboxes through the real provider.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Literal

import httpx
from kubernetes_asyncio import client as k8s

from ...errors import NotFoundError, SandboxError
from .config import ConnectionMode, KubernetesConfig
from .connection import api_client
from .provider import KubernetesProvider
from .rbac import CLAIMS_GROUP, GATEWAY_GROUP, SANDBOX_GROUP, required_access

CRDS = {
    (CLAIMS_GROUP, "v1beta1"): ("sandboxclaims", "sandboxwarmpools", "sandboxtemplates"),
    (SANDBOX_GROUP, "v1beta1"): ("sandboxes",),
}
DOCTOR_LABELS = {"doctor": "true"}
TEST_COMMAND = "echo doctor-ok"


@dataclass
class Check:
    name: str
    status: Literal["ok", "failed", "skipped"]
    detail: str
    fix: str = ""

    def render(self) -> str:
        mark = {"ok": "ok  ", "failed": "FAIL", "skipped": "skip"}[self.status]
        line = f"[{mark}] {self.name}: {self.detail}"
        return f"{line}\n       fix: {self.fix}" if self.fix else line


class Failed(Exception):
    """A check failed: what was found, and what to do about it."""

    def __init__(self, detail: str, fix: str) -> None:
        super().__init__(detail)
        self.detail = detail
        self.fix = fix


class Unchecked(Exception):
    """A check that this account may not make, and that the server does not need: said, not failed."""


def describe(error: BaseException) -> str:
    """A one-line account of an API or connection error."""
    status = getattr(error, "status", None)
    reason = getattr(error, "reason", None)
    if isinstance(status, int) and status:
        return f"HTTP {status} {reason or ''}".strip()
    if isinstance(error, TimeoutError):
        return "no answer in time"
    return f"{type(error).__name__}: {error}".rstrip(": ")


class Doctor:
    def __init__(self, config: KubernetesConfig, *, run_claim: bool = True, claim_timeout: float = 120.0) -> None:
        self.config = config
        self.run_claim = run_claim
        self.claim_timeout = claim_timeout
        self.checks: list[Check] = []
        self._api: Any = None

    @property
    def ok(self) -> bool:
        return all(check.status != "failed" for check in self.checks)

    async def run(self, report: Callable[[Check], None] = lambda _: None) -> list[Check]:
        steps: list[tuple[str, Callable[[], Awaitable[str]], bool]] = [
            ("credentials", self.credentials, True),
            ("custom resources", self.crds, True),
            ("rbac", self.rbac, False),
            ("warm pool", self.warm_pool, False),
            ("suspension", self.suspension, False),
            (self._path_name(), self.path, False),
            ("test claim", self.claim, False),
        ]
        blocked = ""
        try:
            for name, step, essential in steps:
                if name == "test claim" and not self.run_claim:
                    check = Check(name, "skipped", "not run (--no-claim)")
                elif blocked:
                    check = Check(name, "skipped", f"needs {blocked}")
                else:
                    check = await self._attempt(name, step)
                    if check.status == "failed" and (essential or name == "warm pool"):
                        blocked = name
                self.checks.append(check)
                report(check)
        finally:
            if self._api is not None:
                await self._api.close()
        return self.checks

    async def _attempt(self, name: str, step: Callable[[], Awaitable[str]]) -> Check:
        try:
            async with asyncio.timeout(self.claim_timeout + self.config.api_timeout):
                return Check(name, "ok", await step())
        except Failed as failure:
            return Check(name, "failed", failure.detail, failure.fix)
        except Unchecked as unchecked:
            return Check(name, "skipped", str(unchecked))
        except TimeoutError:
            return Check(name, "failed", "no answer in time", "see the checks above; is the API server overloaded?")

    def _path_name(self) -> str:
        return {
            ConnectionMode.DIRECT: "router",
            ConnectionMode.GATEWAY: "gateway",
            ConnectionMode.IN_CLUSTER: "pod network",
            ConnectionMode.TUNNEL: "router tunnel",
        }[self.config.connection]

    @contextlib.asynccontextmanager
    async def _calling(self, what: str, fix: str) -> AsyncIterator[None]:
        try:
            async with asyncio.timeout(self.config.api_timeout):
                yield
        except Failed:
            raise
        except Exception as error:
            raise Failed(f"could not {what}: {describe(error)}", fix) from error

    async def credentials(self) -> str:
        source = self.config.kubeconfig or "the in-cluster service account, else $KUBECONFIG or ~/.kube/config"
        fix = (
            "give --kubeconfig (or $KUBECONFIG) a working kubeconfig, or run in a pod whose service account token "
            "is mounted (automountServiceAccountToken: true); check that the API server address is reachable"
        )
        try:
            self._api = await api_client(self.config)
        except Exception as error:
            raise Failed(f"could not load credentials from {source}: {describe(error)}", fix) from error
        async with self._calling("reach the Kubernetes API", fix):
            version = await k8s.VersionApi(self._api).get_code()
        host = self._api.configuration.host
        return f"Kubernetes {version.git_version} at {host}"

    async def crds(self) -> str:
        missing = []
        objects = k8s.CustomObjectsApi(self._api)
        for (group, version), plurals in CRDS.items():
            try:
                async with asyncio.timeout(self.config.api_timeout):
                    found = await objects.get_api_resources(group, version)
                served = {resource.name for resource in found.resources or []}
            except Exception as error:
                if getattr(error, "status", None) != 404:
                    raise Failed(
                        f"could not discover {group}/{version}: {describe(error)}", "check the API server"
                    ) from error
                served = set()
            missing += [f"{plural}.{group}/{version}" for plural in plurals if plural not in served]
        if missing:
            raise Failed(
                f"not installed: {', '.join(missing)}",
                "install agent-sandbox with its extensions (the CRDs, the controller and the sandbox-router) at a "
                "release that serves v1beta1",
            )
        return "SandboxClaim, SandboxWarmPool, SandboxTemplate and Sandbox (v1beta1) are served"

    async def rbac(self) -> str:
        authorization = k8s.AuthorizationV1Api(self._api)
        denied = []
        checked = 0
        for access in required_access(self.config):
            for verb in access.verbs:
                attributes = k8s.V1ResourceAttributes(
                    namespace=access.namespace,
                    verb=verb,
                    group=access.group,
                    resource=access.resource,
                    subresource=access.subresource or None,
                )
                body = k8s.V1SelfSubjectAccessReview(
                    spec=k8s.V1SelfSubjectAccessReviewSpec(resource_attributes=attributes)
                )
                async with self._calling("ask the API server what this account may do", "check the API server"):
                    review = await authorization.create_self_subject_access_review(body)
                checked += 1
                if not review.status.allowed:
                    resource = "/".join(filter(None, (access.resource, access.subresource)))
                    named = f"{resource}.{access.group}" if access.group else resource
                    denied.append(f"{verb} {named} in namespace {access.namespace}")
        if denied:
            raise Failed(
                "denied: " + "; ".join(denied),
                "bind this account to a Role with these verbs (deploy/base/role.yaml; for --connection gateway also "
                "deploy/components/gateway), or use a kubeconfig user that has them",
            )
        return f"all {checked} verbs the provider uses are granted"

    async def warm_pool(self) -> str:
        name, namespace = self.config.warm_pool, self.config.namespace
        objects = k8s.CustomObjectsApi(self._api)
        try:
            async with asyncio.timeout(self.config.api_timeout):
                pool = await objects.get_namespaced_custom_object(
                    CLAIMS_GROUP, "v1beta1", namespace, "sandboxwarmpools", name
                )
        except Exception as error:
            if getattr(error, "status", None) == 404:
                raise Failed(
                    f"no SandboxWarmPool {name!r} in namespace {namespace!r}",
                    "create it (deploy/sandbox-pool has an example), or point --warm-pool and --namespace at one",
                ) from error
            if getattr(error, "status", None) == 403:
                # The project's Role grants no reads of warm pools: the server only claims from them.
                raise Unchecked(
                    f"this account may not read SandboxWarmPool {name!r} (the server needs no such right); "
                    "the test claim checks the pool instead"
                ) from error
            raise Failed(
                f"could not read SandboxWarmPool {name!r}: {describe(error)}", "check the API server"
            ) from error
        spec, status = pool.get("spec") or {}, pool.get("status") or {}
        wanted = int(spec.get("replicas", 1))
        ready = int(status.get("readyReplicas") or 0)
        template = (spec.get("sandboxTemplateRef") or {}).get("name", "?")
        if wanted > 0 and ready == 0:
            raise Failed(
                f"SandboxWarmPool {name!r} wants {wanted} pods but none is ready",
                f"check the pods of SandboxTemplate {template!r} in namespace {namespace!r} (image pull, resources, "
                "readiness probe on port 8888): kubectl get pods,sandboxes -n " + namespace,
            )
        cold = " (every claim cold-starts)" if wanted == 0 else ""
        return f"{name!r} from template {template!r}: {ready} of {wanted} pods ready{cold}"

    async def suspension(self) -> str:
        """Each pool in suspend_pools must keep /app on a volume of its template's volumeClaimTemplates, or a suspended
        session would come back without its files."""
        pools = self.config.suspend_pools
        if not pools:
            return "no pool in suspend_pools: idle sessions end"
        objects = k8s.CustomObjectsApi(self._api)
        namespace = self.config.namespace
        kept = []
        for pool in pools:
            try:
                async with asyncio.timeout(self.config.api_timeout):
                    found = await objects.get_namespaced_custom_object(
                        CLAIMS_GROUP, "v1beta1", namespace, "sandboxwarmpools", pool
                    )
                    template_name = ((found.get("spec") or {}).get("sandboxTemplateRef") or {}).get("name", "")
                    template = await objects.get_namespaced_custom_object(
                        CLAIMS_GROUP, "v1beta1", namespace, "sandboxtemplates", template_name
                    )
            except Exception as error:
                if getattr(error, "status", None) == 403:
                    raise Unchecked(
                        f"this account may not read SandboxWarmPool {pool!r} or its template (the server needs no such "
                        "right): check by hand that the template mounts a volumeClaimTemplate at /app"
                    ) from error
                raise Failed(
                    f"could not read SandboxWarmPool {pool!r} and its template: {describe(error)}",
                    "create the pool, or remove it from --suspend-pools",
                ) from error
            volume = app_volume(template)
            if volume is None:
                raise Failed(
                    f"SandboxTemplate {template_name!r} of pool {pool!r} does not keep /app on a volumeClaimTemplate: "
                    "a suspended session would lose its files",
                    "add a volumeClaimTemplates entry and a volumeMount of it at /app to the template, or remove the "
                    "pool from --suspend-pools (its idle sessions then end)",
                )
            kept.append(f"{pool!r} (volume {volume!r})")
        return "idle sessions are suspended on " + ", ".join(kept)

    async def path(self) -> str:
        mode = self.config.connection
        if mode is ConnectionMode.DIRECT:
            url = (self.config.api_url or "").rstrip("/") + "/healthz"
            try:
                async with httpx.AsyncClient(timeout=10.0) as http:
                    answer = await http.get(url)
            except httpx.HTTPError as error:
                raise Failed(
                    f"the router at {self.config.api_url} does not answer: {describe(error)}",
                    "check --api-url (the sandbox-router Service, e.g. "
                    "http://sandbox-router-svc.agent-sandbox-system.svc.cluster.local:8080), that the router pods "
                    "run, and that a NetworkPolicy lets this pod reach them on 8080",
                ) from error
            if answer.status_code != 200:
                raise Failed(
                    f"the router at {self.config.api_url} answers /healthz with HTTP {answer.status_code}",
                    "check the sandbox-router pods' logs",
                )
            return f"the sandbox-router at {self.config.api_url} answers"
        if mode is ConnectionMode.GATEWAY:
            return await self._gateway()
        return "checked by the test claim (no router in between)"

    async def _gateway(self) -> str:
        name, namespace = self.config.gateway_name or "", self.config.gateway_namespace
        objects = k8s.CustomObjectsApi(self._api)
        async with self._calling(
            f"list Gateways in namespace {namespace!r}", "check the gateways RBAC and Gateway API"
        ):
            found = await objects.list_namespaced_custom_object(
                GATEWAY_GROUP, "v1", namespace, "gateways", field_selector=f"metadata.name={name}"
            )
        items = found.get("items") or []
        if not items:
            raise Failed(
                f"no Gateway {name!r} in namespace {namespace!r}",
                "create the Gateway that routes to the sandbox-router, or fix --gateway-name/--gateway-namespace",
            )
        addresses = [a.get("value") for a in (items[0].get("status") or {}).get("addresses") or [] if a.get("value")]
        if not addresses:
            raise Failed(
                f"Gateway {name!r} has no address yet", "check the Gateway controller and the Gateway's status"
            )
        return f"Gateway {name!r} at {', '.join(addresses)}"

    async def claim(self) -> str:
        provider = KubernetesProvider(self.config)
        fix = (
            "see the checks above; then kubectl describe sandboxclaims -n "
            f"{self.config.namespace} and the sandbox-router's logs"
        )
        try:
            started = time.perf_counter()
            sandbox = await provider.create(labels=DOCTOR_LABELS, lifetime=max(self.claim_timeout, 60.0))
            claimed = time.perf_counter() - started
            try:
                result = await sandbox.run(TEST_COMMAND, timeout=30)
            finally:
                await sandbox.terminate()
            if result.exit_code != 0 or "doctor-ok" not in result.stdout:
                raise Failed(
                    f"the test command exited {result.exit_code} with {result.stdout!r} {result.stderr!r}",
                    "check that the SandboxTemplate runs agent-sandbox's python-runtime (port 8888) with /bin/sh",
                )
            try:
                await provider.get(sandbox.id)
            except NotFoundError:
                pass
            else:
                raise Failed(
                    f"claim {sandbox.id} is still there after terminate", "check the delete verb and finalizers"
                )
            return f"claim {sandbox.id} ready in {claimed:.1f} s, ran {TEST_COMMAND!r}, deleted"
        except SandboxError as error:
            raise Failed(f"{error.code}: {error}", fix) from error
        finally:
            await provider.aclose()


def app_volume(template: dict[str, Any]) -> str | None:
    """The name of the volumeClaimTemplate a SandboxTemplate mounts at /app, or None."""
    spec = template.get("spec") or {}
    claims = {(entry.get("metadata") or {}).get("name") for entry in spec.get("volumeClaimTemplates") or []}
    for container in ((spec.get("podTemplate") or {}).get("spec") or {}).get("containers") or []:
        for mount in container.get("volumeMounts") or []:
            if mount.get("mountPath", "").rstrip("/") == "/app" and mount.get("name") in claims:
                return str(mount["name"])
    return None
