"""The imitation API server's object store: resourceVersions, uids, label selectors and a replayable change log.

Everything runs on one asyncio loop, so no locks: a watch replays the log and subscribes in one synchronous
step, which is what lets a client that starts watching from its create response's resourceVersion see a
status change that happened before it connected (the real apiserver's watch cache gives the same guarantee).
"""

from __future__ import annotations

import asyncio
import copy
import time
import uuid
from collections.abc import AsyncGenerator, Callable, Mapping
from dataclasses import dataclass
from typing import Any

JsonObject = dict[str, Any]

LOG_SIZE = 20_000
"""Changes kept for replay; a watch from an older resourceVersion gets 410 Gone, as after etcd compaction."""


class StoreError(Exception):
    """A request the apiserver refuses; carries the HTTP status and Kubernetes reason."""

    def __init__(self, status: int, reason: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.reason = reason
        self.message = message


@dataclass(frozen=True)
class Event:
    resource_version: int
    type: str
    resource: str
    namespace: str
    name: str
    object: JsonObject


def now_rfc3339(offset: float = 0.0) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + offset))


def parse_label_selector(selector: str | None) -> Callable[[Mapping[str, str]], bool]:
    """Equality (`a=b`, `a==b`, `a!=b`) and existence (`a`, `!a`) selectors, comma-separated."""
    terms = [term.strip() for term in (selector or "").split(",") if term.strip()]

    def matches(labels: Mapping[str, str], term: str) -> bool:
        if "!=" in term:
            key, value = term.split("!=", 1)
            return labels.get(key.strip()) != value.strip()
        if "=" in term:
            key, value = term.replace("==", "=").split("=", 1)
            return labels.get(key.strip()) == value.strip()
        if term.startswith("!"):
            return term[1:] not in labels
        return term in labels

    return lambda labels: all(matches(labels, term) for term in terms)


def parse_field_selector(selector: str | None) -> str | None:
    """The object name a `metadata.name=<n>` field selector asks for (the only field selector clients use here)."""
    for term in (selector or "").split(","):
        key, _, value = term.partition("=")
        if key.strip() == "metadata.name":
            return value.strip().lstrip("=")
    return None


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


class Store:
    """Namespaced objects keyed by (resource plural, namespace, name)."""

    def __init__(self) -> None:
        self._objects: dict[tuple[str, str, str], JsonObject] = {}
        self._log: list[Event] = []
        self._subscribers: set[asyncio.Queue[Event]] = set()
        self._version = 1000

    @property
    def resource_version(self) -> int:
        return self._version

    def _record(self, kind: str, resource: str, obj: JsonObject) -> JsonObject:
        self._version += 1
        obj["metadata"]["resourceVersion"] = str(self._version)
        stored = copy.deepcopy(obj)
        meta = stored["metadata"]
        event = Event(self._version, kind, resource, meta["namespace"], meta["name"], stored)
        self._log.append(event)
        del self._log[:-LOG_SIZE]
        for queue in self._subscribers:
            queue.put_nowait(event)
        return copy.deepcopy(stored)

    def create(self, resource: str, namespace: str, obj: JsonObject) -> JsonObject:
        meta = obj.setdefault("metadata", {})
        name = meta.get("name")
        if not name and meta.get("generateName"):
            name = meta["generateName"] + uuid.uuid4().hex[:5]
        if not name:
            raise StoreError(422, "Invalid", "metadata.name: Required value: name or generateName is required")
        key = (resource, namespace, name)
        if key in self._objects:
            raise StoreError(409, "AlreadyExists", f'{resource} "{name}" already exists')
        meta.update(
            name=name,
            namespace=namespace,
            uid=str(uuid.uuid4()),
            creationTimestamp=now_rfc3339(),
            generation=1,
        )
        self._objects[key] = obj
        return self._record("ADDED", resource, obj)

    def get(self, resource: str, namespace: str, name: str) -> JsonObject:
        try:
            return copy.deepcopy(self._objects[(resource, namespace, name)])
        except KeyError:
            raise StoreError(404, "NotFound", f'{resource} "{name}" not found') from None

    def find(self, resource: str, namespace: str, name: str) -> JsonObject | None:
        obj = self._objects.get((resource, namespace, name))
        return copy.deepcopy(obj) if obj is not None else None

    def list(self, resource: str, namespace: str | None = None, label_selector: str | None = None) -> list[JsonObject]:
        matches = parse_label_selector(label_selector)
        return [
            copy.deepcopy(obj)
            for (res, ns, _), obj in sorted(self._objects.items())
            if res == resource
            and (namespace is None or ns == namespace)
            and matches(obj["metadata"].get("labels") or {})
        ]

    def update(self, resource: str, namespace: str, name: str, mutate: Callable[[JsonObject], None]) -> JsonObject:
        """Apply `mutate` to the stored object and record one MODIFIED event."""
        key = (resource, namespace, name)
        if key not in self._objects:
            raise StoreError(404, "NotFound", f'{resource} "{name}" not found')
        obj = copy.deepcopy(self._objects[key])
        before_spec = copy.deepcopy(obj.get("spec"))
        mutate(obj)
        obj["metadata"]["name"], obj["metadata"]["namespace"] = name, namespace
        if obj.get("spec") != before_spec:
            obj["metadata"]["generation"] = obj["metadata"].get("generation", 1) + 1
        self._objects[key] = obj
        return self._record("MODIFIED", resource, obj)

    def patch(self, resource: str, namespace: str, name: str, patch: JsonObject) -> JsonObject:
        def apply(obj: JsonObject) -> None:
            merged = merge_patch(obj, patch)
            obj.clear()
            obj.update(merged)

        return self.update(resource, namespace, name, apply)

    def delete(self, resource: str, namespace: str, name: str, uid: str | None = None) -> JsonObject:
        key = (resource, namespace, name)
        obj = self._objects.get(key)
        if obj is None:
            raise StoreError(404, "NotFound", f'{resource} "{name}" not found')
        if uid is not None and obj["metadata"].get("uid") != uid:
            raise StoreError(
                409,
                "Conflict",
                f"Precondition failed: UID in precondition: {uid}, UID in object meta: {obj['metadata'].get('uid')}",
            )
        del self._objects[key]
        return self._record("DELETED", resource, obj)

    async def watch(
        self, resource: str, namespace: str | None, name: str | None, since: int | None
    ) -> AsyncGenerator[Event, None]:
        """Changes newer than `since` (replayed), then live ones; `since` None or 0 starts with the current state."""
        if since and self._log and since < self._log[0].resource_version - 1:
            raise StoreError(410, "Expired", f"too old resource version: {since} ({self._log[0].resource_version})")

        def wanted(event: Event) -> bool:
            return (
                event.resource == resource
                and (namespace is None or event.namespace == namespace)
                and (name is None or event.name == name)
            )

        if since:
            backlog = [event for event in self._log if event.resource_version > since and wanted(event)]
        else:
            backlog = [
                Event(self._version, "ADDED", resource, ns, n, copy.deepcopy(obj))
                for (res, ns, n), obj in sorted(self._objects.items())
                if res == resource and (namespace is None or ns == namespace) and (name is None or n == name)
            ]
        queue: asyncio.Queue[Event] = asyncio.Queue()
        self._subscribers.add(queue)
        try:
            for event in backlog:
                yield event
            while True:
                event = await queue.get()
                if wanted(event):
                    yield event
        finally:
            self._subscribers.discard(queue)
