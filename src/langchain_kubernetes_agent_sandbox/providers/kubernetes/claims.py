"""SandboxClaims as this provider keeps them: labels that find them again, lifetimes that end them.

Session state lives on the claim, not in server memory: the caller's labels become claim labels under our
prefix (values that are not valid label values are hashed, the originals kept in an annotation), and the
exact expiry is a label of its own (milliseconds since the epoch), which the provider reports and enforces.
The claim's `spec.lifecycle.shutdownTime` is only the backstop that the agent-sandbox controller enforces even
if no server is left: it has whole seconds (the client truncates them), so it is rounded up and given a
margin, and never falls before the exact expiry.
"""

from __future__ import annotations

import calendar
import hashlib
import json
import math
import re
import secrets
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
EXPIRY_LABEL = "internal." + PREFIX + "expires-at"
"""The exact expiry in milliseconds; outside PREFIX so that no caller's label can collide with it."""
BACKSTOP_MARGIN = 10.0
"""Seconds the controller's shutdownTime trails the exact expiry: rounding, and clocks a little apart."""
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


def new_claim_name() -> str:
    """A name for a new claim, chosen here rather than by the client so that an attempt made again after the API
    server failed it adopts the claim the first attempt may have made, and a claim that failed is deleted by name.
    64 random bits: adopting by name must never meet another session's claim."""
    return f"sandbox-claim-{secrets.token_hex(8)}"


def format_time(moment: float) -> str:
    return time.strftime(_TIME_FORMAT, time.gmtime(moment))


def backstop_after(lifetime: float) -> int:
    """`shutdown_after_seconds` for a claim whose exact expiry is `lifetime` seconds after the call starts.

    The client adds it to its own clock and truncates to whole seconds, losing up to one second.
    """
    return math.ceil(lifetime + 1 + BACKSTOP_MARGIN)


def backstop_time(expires_at: float) -> str:
    """The shutdownTime that goes with an exact expiry: whole seconds, rounded up, plus the margin."""
    return format_time(math.ceil(expires_at + BACKSTOP_MARGIN))


def expiry_label(expires_at: float) -> str:
    return str(math.ceil(expires_at * 1000))


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
    return SandboxInfo(
        id=meta["name"],
        provider="kubernetes",
        labels=labels,
        created_at=parse_time(meta.get("creationTimestamp")) or time.time(),
        expires_at=expiry_of(claim),
    )


def expiry_of(claim: JsonObject) -> float | None:
    """The exact expiry from our label; a claim without it (made elsewhere) has its shutdownTime."""
    exact = ((claim.get("metadata") or {}).get("labels") or {}).get(EXPIRY_LABEL, "")
    if exact.isdigit():
        return int(exact) / 1000
    lifecycle = (claim.get("spec") or {}).get("lifecycle") or {}
    return parse_time(lifecycle.get("shutdownTime"))


def is_expired(claim: JsonObject, now: float) -> bool:
    expires_at = expiry_of(claim)
    return expires_at is not None and expires_at <= now


def is_ours(claim: JsonObject, config: KubernetesConfig) -> bool:
    labels = (claim.get("metadata") or {}).get("labels") or {}
    pool = ((claim.get("spec") or {}).get("warmPoolRef") or {}).get("name")
    return labels.get(MANAGED_BY) == MANAGER and pool in config.pools


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

    async def set_expiry(self, name: str, moment: float) -> None:
        """The exact expiry and its backstop, in one merge patch."""
        lifecycle = {"shutdownTime": backstop_time(moment), "shutdownPolicy": "Delete"}
        body = {"metadata": {"labels": {EXPIRY_LABEL: expiry_label(moment)}}, "spec": {"lifecycle": lifecycle}}
        await self.patch(name, body)

    async def keep_labels(self, name: str, labels: Mapping[str, str]) -> None:
        await self.patch(name, {"metadata": {"annotations": {LABELS_ANNOTATION: json.dumps(dict(labels))}}})
