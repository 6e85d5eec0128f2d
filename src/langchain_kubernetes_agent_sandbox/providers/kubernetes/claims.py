"""SandboxClaims as this provider keeps them: labels that find them again, lifetimes that end them.

Session state lives on the claim, not in server memory: the caller's labels become claim labels under our
prefix (values that are not valid label values are hashed, the originals kept in an annotation), and the
expiry is the claim's own `spec.lifecycle.shutdownTime`, which the agent-sandbox controller enforces even if
no server is left to do it.
"""

from __future__ import annotations

import calendar
import hashlib
import json
import re
import time
from collections.abc import Mapping
from typing import Any

from kubernetes_asyncio import client as k8s

from ... import __version__
from ...errors import InvalidArgumentError
from ...sandbox import SandboxInfo
from .config import KubernetesConfig

GROUP, VERSION, PLURAL = "extensions.agents.x-k8s.io", "v1beta1", "sandboxclaims"
PREFIX = "langchain-kubernetes-agent-sandbox/"
MANAGED_BY = "app.kubernetes.io/managed-by"
MANAGER = "langchain-kubernetes-agent-sandbox"
VERSION_LABEL = PREFIX + "provider-version"
LABELS_ANNOTATION = PREFIX + "labels"
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
_LABEL_NAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
_TIME_FORMAT = "%Y-%m-%dT%H:%M:%SZ"

JsonObject = dict[str, Any]


def _value(value: str) -> str:
    if len(value) <= 63 and _LABEL_VALUE.match(value):
        return value
    return "h-" + hashlib.sha256(value.encode()).hexdigest()[:40]


def claim_labels(labels: Mapping[str, str]) -> tuple[dict[str, str], bool]:
    """Kubernetes labels for the caller's labels, and whether any value had to be hashed."""
    result = {MANAGED_BY: MANAGER, VERSION_LABEL: __version__}
    hashed = False
    for key, value in labels.items():
        if len(key) > 63 or not _LABEL_NAME.match(key):
            raise InvalidArgumentError(
                f"Label name {key!r} is not usable on Kubernetes: use up to 63 letters, digits, '-', '_' or '.'."
            )
        result[PREFIX + key] = _value(value)
        hashed = hashed or result[PREFIX + key] != value
    return result, hashed


def selector(labels: Mapping[str, str]) -> str:
    mapped, _ = claim_labels(labels)
    mapped.pop(VERSION_LABEL)
    return ",".join(f"{key}={value}" for key, value in mapped.items())


def format_time(moment: float) -> str:
    return time.strftime(_TIME_FORMAT, time.gmtime(moment))


def parse_time(stamp: str | None) -> float | None:
    if not stamp:
        return None
    try:
        return float(calendar.timegm(time.strptime(stamp, _TIME_FORMAT)))
    except ValueError:
        return None


def info_of(claim: JsonObject) -> SandboxInfo:
    """What a claim says about its sandbox, with the caller's original labels."""
    meta = claim.get("metadata") or {}
    annotations = meta.get("annotations") or {}
    if LABELS_ANNOTATION in annotations:
        labels = dict(json.loads(annotations[LABELS_ANNOTATION]))
    else:
        labels = {
            key[len(PREFIX) :]: value
            for key, value in (meta.get("labels") or {}).items()
            if key.startswith(PREFIX) and key != VERSION_LABEL
        }
    lifecycle = (claim.get("spec") or {}).get("lifecycle") or {}
    return SandboxInfo(
        id=meta["name"],
        provider="kubernetes",
        labels=labels,
        created_at=parse_time(meta.get("creationTimestamp")) or time.time(),
        expires_at=parse_time(lifecycle.get("shutdownTime")),
    )


def is_ours(claim: JsonObject, config: KubernetesConfig) -> bool:
    labels = (claim.get("metadata") or {}).get("labels") or {}
    pool = ((claim.get("spec") or {}).get("warmPoolRef") or {}).get("name")
    return labels.get(MANAGED_BY) == MANAGER and pool == config.warm_pool


class ClaimApi:
    """The Kubernetes API calls the client library does not make for us: get, list, patch and delete claims."""

    def __init__(self, config: KubernetesConfig, api: k8s.ApiClient) -> None:
        self.config = config
        self.objects = k8s.CustomObjectsApi(api)

    def _where(self) -> dict[str, str]:
        return {"group": GROUP, "version": VERSION, "namespace": self.config.namespace, "plural": PLURAL}

    async def get(self, name: str) -> JsonObject:
        return dict(await self.objects.get_namespaced_custom_object(name=name, **self._where()))

    async def list(self, label_selector: str, limit: int | None = None) -> list[JsonObject]:
        extra = {"limit": limit} if limit else {}
        answer = await self.objects.list_namespaced_custom_object(
            label_selector=label_selector, **extra, **self._where()
        )
        return list(answer.get("items") or [])

    async def patch(self, name: str, body: JsonObject) -> JsonObject:
        # kubernetes_asyncio would label a dict body as a JSON patch, which an API server rejects.
        answer = await self.objects.patch_namespaced_custom_object(
            name=name, body=body, _content_type="application/merge-patch+json", **self._where()
        )
        return dict(answer)

    async def delete(self, name: str) -> None:
        """Delete the claim (the controller cascades to Sandbox and pod); a claim already gone is fine."""
        try:
            await self.objects.delete_namespaced_custom_object(name=name, **self._where())
        except k8s.ApiException as error:
            if error.status != 404:
                raise

    async def set_shutdown(self, name: str, moment: float) -> None:
        lifecycle = {"shutdownTime": format_time(moment), "shutdownPolicy": "Delete"}
        await self.patch(name, {"spec": {"lifecycle": lifecycle}})

    async def keep_labels(self, name: str, labels: Mapping[str, str]) -> None:
        await self.patch(name, {"metadata": {"annotations": {LABELS_ANNOTATION: json.dumps(dict(labels))}}})
