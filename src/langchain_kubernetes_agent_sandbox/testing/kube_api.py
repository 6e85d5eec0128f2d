"""An imitation of the Kubernetes API for the agent-sandbox custom resources, as the real clients call it.

Create answers 201 with uid and resourceVersion, get/list (labelSelector), merge patch, delete with uid
preconditions, 409 on duplicates, Status objects for errors, and watches with fieldSelector, resourceVersion
replay, timeoutSeconds and `watch=true|True`; API discovery for the agent-sandbox groups and
SelfSubjectAccessReviews (everything is allowed unless a fault denies it). Fault switches make it answer 500,
hang, cut watches, send 410, deny RBAC or lose the CRDs.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from .faults import Faults
from .store import JsonObject, Store, StoreError, parse_field_selector

RESOURCES = {
    ("extensions.agents.x-k8s.io", "v1beta1", "sandboxclaims"): "SandboxClaim",
    ("extensions.agents.x-k8s.io", "v1beta1", "sandboxwarmpools"): "SandboxWarmPool",
    ("extensions.agents.x-k8s.io", "v1beta1", "sandboxtemplates"): "SandboxTemplate",
    ("agents.x-k8s.io", "v1beta1", "sandboxes"): "Sandbox",
    ("gateway.networking.k8s.io", "v1", "gateways"): "Gateway",
}


def status_response(status: int, reason: str, message: str) -> JSONResponse:
    body = {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": status,
    }
    return JSONResponse(body, status_code=status)


class KubeApi:
    """The HTTP face of a `Store`; fault switches are read on every request."""

    def __init__(self, store: Store, faults: Faults) -> None:
        self.store = store
        self.faults = faults

    async def _gate(self) -> Response | None:
        while self.faults.api_hang:  # noqa: ASYNC110 - a plain flag, flipped by the fault endpoint
            await asyncio.sleep(0.05)
        if self.faults.api_status is not None:
            code = self.faults.api_status
            return status_response(code, "InternalError", f"fault injected: the API server answers {code}")
        if self.faults.api_unavailable > 0:
            self.faults.api_unavailable -= 1
            return status_response(503, "ServiceUnavailable", "fault injected: the API server is still starting")
        return None

    @staticmethod
    def _resource(request: Request) -> tuple[str, str]:
        params = request.path_params
        key = (params["group"], params["version"], params["plural"])
        if key not in RESOURCES:
            raise StoreError(404, "NotFound", f"the server could not find the requested resource {key}")
        return params["plural"], params["namespace"]

    async def collection(self, request: Request) -> Response:
        gated = await self._gate()
        if gated is not None:
            return gated
        try:
            plural, namespace = self._resource(request)
            if request.method == "POST":
                body = await request.json()
                return JSONResponse(self.store.create(plural, namespace, body), status_code=201)
            query = request.query_params
            if query.get("watch", "").lower() in ("true", "1"):
                return await self._watch(request, plural, namespace)
            items = self.store.list(plural, namespace, query.get("labelSelector"))
            name = parse_field_selector(query.get("fieldSelector"))
            if name is not None:
                items = [item for item in items if item["metadata"]["name"] == name]
            kind = RESOURCES[(request.path_params["group"], request.path_params["version"], plural)]
            return JSONResponse(
                {
                    "apiVersion": f"{request.path_params['group']}/{request.path_params['version']}",
                    "kind": f"{kind}List",
                    "metadata": {"resourceVersion": str(self.store.resource_version)},
                    "items": items,
                }
            )
        except StoreError as error:
            return status_response(error.status, error.reason, error.message)
        except json.JSONDecodeError as error:
            return status_response(400, "BadRequest", f"invalid JSON body: {error}")

    async def item(self, request: Request) -> Response:
        gated = await self._gate()
        if gated is not None:
            return gated
        name = request.path_params["name"]
        try:
            plural, namespace = self._resource(request)
            if request.method == "GET":
                return JSONResponse(self.store.get(plural, namespace, name))
            if request.method == "PATCH":
                if "json-patch" in request.headers.get("content-type", ""):
                    return status_response(415, "UnsupportedMediaType", "only merge patches are supported here")
                return JSONResponse(self.store.patch(plural, namespace, name, await request.json()))
            raw = await request.body()
            options: JsonObject = json.loads(raw) if raw.strip() else {}
            uid = (options.get("preconditions") or {}).get("uid")
            deleted = self.store.delete(plural, namespace, name, uid)
            return JSONResponse(deleted)
        except StoreError as error:
            return status_response(error.status, error.reason, error.message)
        except json.JSONDecodeError as error:
            return status_response(400, "BadRequest", f"invalid JSON body: {error}")

    async def _watch(self, request: Request, plural: str, namespace: str) -> Response:
        query = request.query_params
        name = parse_field_selector(query.get("fieldSelector"))
        since = int(query.get("resourceVersion") or 0)
        timeout = float(query.get("timeoutSeconds") or 1800)
        if self.faults.watch_gone > 0:
            self.faults.watch_gone -= 1
            return self._gone_stream(since)
        events = self.store.watch(plural, namespace, name, since)
        broken = self.faults.watch_breaks > 0
        if broken:
            self.faults.watch_breaks -= 1

        async def lines() -> AsyncIterator[bytes]:
            if broken:
                raise ConnectionAbortedError("fault injected: watch stream cut off")
            try:
                async with asyncio.timeout(timeout):
                    async for event in events:
                        yield (json.dumps({"type": event.type, "object": event.object}) + "\n").encode()
            except TimeoutError:
                return
            except StoreError as error:
                yield self._error_line(error.status, error.reason, error.message)
            finally:
                await events.aclose()

        return StreamingResponse(lines(), media_type="application/json")

    def _error_line(self, code: int, reason: str, message: str) -> bytes:
        status = {"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": reason, "code": code}
        return (json.dumps({"type": "ERROR", "object": {**status, "message": message}}) + "\n").encode()

    def _gone_stream(self, since: int) -> Response:
        line = self._error_line(410, "Expired", f"fault injected: too old resource version: {since}")

        async def one() -> AsyncIterator[bytes]:
            yield line

        return StreamingResponse(one(), media_type="application/json")

    async def discovery(self, request: Request) -> Response:
        """`GET /apis/{group}/{version}`: the resources of one agent-sandbox API group version."""
        gated = await self._gate()
        if gated is not None:
            return gated
        group, version = request.path_params["group"], request.path_params["version"]
        served = [(plural, kind) for (g, v, plural), kind in RESOURCES.items() if (g, v) == (group, version)]
        if not served or self.faults.crds_missing:
            return status_response(404, "NotFound", "the server could not find the requested resource")
        resources = [
            {
                "name": plural,
                "singularName": kind.lower(),
                "namespaced": True,
                "kind": kind,
                "verbs": ["create", "delete", "get", "list", "patch", "update", "watch"],
            }
            for plural, kind in served
        ]
        group_version = f"{group}/{version}"
        return JSONResponse(
            {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": group_version, "resources": resources}
        )

    async def access_review(self, request: Request) -> Response:
        """`POST .../selfsubjectaccessreviews`: allowed, unless the `rbac_denied` fault names the verb and resource."""
        gated = await self._gate()
        if gated is not None:
            return gated
        review: JsonObject = await request.json()
        attributes = (review.get("spec") or {}).get("resourceAttributes") or {}
        wanted = f"{attributes.get('verb', '')} {attributes.get('resource', '')}"
        denied = "*" in self.faults.rbac_denied or wanted in self.faults.rbac_denied
        status: JsonObject = {"allowed": not denied}
        if denied:
            status.update(denied=True, reason=f"fault injected: RBAC denies {wanted}")
        body = {
            "apiVersion": "authorization.k8s.io/v1",
            "kind": "SelfSubjectAccessReview",
            "metadata": {},
            "spec": review.get("spec") or {},
            "status": status,
        }
        return JSONResponse(body, status_code=201)

    def routes(self) -> list[Route]:
        base = "/apis/{group}/{version}/namespaces/{namespace}/{plural}"
        return [
            Route("/apis/authorization.k8s.io/v1/selfsubjectaccessreviews", self.access_review, methods=["POST"]),
            Route("/apis/{group}/{version}", self.discovery),
            Route(base, self.collection, methods=["GET", "POST"]),
            Route(base + "/{name}", self.item, methods=["GET", "PATCH", "DELETE"]),
        ]


def kube_api_app(api: KubeApi, extra_routes: list[Any] | None = None) -> Starlette:
    async def version(_: Request) -> Response:
        gated = await api._gate()
        if gated is not None:
            return gated
        return JSONResponse(
            {
                "major": "1",
                "minor": "33",
                "gitVersion": "v1.33.0-imitation",
                "gitCommit": "0000000000000000000000000000000000000000",
                "gitTreeState": "clean",
                "buildDate": "2026-01-01T00:00:00Z",
                "goVersion": "go1.24",
                "compiler": "gc",
                "platform": "linux/amd64",
            }
        )

    return Starlette(routes=[Route("/version", version), *api.routes(), *(extra_routes or [])])
