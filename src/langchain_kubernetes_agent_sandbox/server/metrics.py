"""Prometheus metrics of one server process, served at /metrics in the text format.

Tool calls are counted and timed in one place (`observe.py`, around every tool), which also notes the jobs the
results report running; claim latency is timed around the provider's `create`; active sessions are counted from
the provider when Prometheus scrapes.
"""

from __future__ import annotations

import asyncio
import builtins
import logging
import time
from collections.abc import Mapping

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from ..errors import SandboxError
from ..network.policy import EgressPolicy
from ..network.proxy import EgressEvent
from ..network.service import EgressObservable
from ..sandbox import Sandbox, SandboxProvider
from ..sessions import labels as session_labels

logger = logging.getLogger(__name__)

PREFIX = "kubernetes_agent_sandbox"
CONTENT_TYPE = CONTENT_TYPE_LATEST
LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 900.0)
CLAIM_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 120.0, 180.0)
COUNT_TIMEOUT = 5.0


class ServerMetrics:
    """The server's metrics in a registry of their own (several servers may live in one test process)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.tool_calls = Counter(
            f"{PREFIX}_tool_calls",
            "Tool calls by tool and outcome (ok, or the error code).",
            ["tool", "outcome"],
            registry=r,
        )
        self.tool_latency = Histogram(
            f"{PREFIX}_tool_call_duration_seconds",
            "Wall-clock duration of tool calls.",
            ["tool"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.bytes_moved = Counter(
            f"{PREFIX}_bytes",
            "Bytes moved by tool calls: in = file content uploaded, out = file content downloaded and command output.",
            ["tool", "direction"],
            registry=r,
        )
        self.preview_requests = Counter(
            f"{PREFIX}_preview_requests",
            "Requests to previews by kind (http, websocket) and outcome (ok, refused, unreachable, too_large, "
            "timed_out, cut, bad_answer); refused ones named no live preview of the caller's, or no credentials.",
            ["kind", "outcome"],
            registry=r,
        )
        self.preview_bytes = Counter(
            f"{PREFIX}_preview_bytes",
            "Bytes through previews: in = to the sandbox, out = from it.",
            ["direction"],
            registry=r,
        )
        self.quota_refusals = Counter(
            f"{PREFIX}_quota_refusals", "Tool calls refused by a per-principal quota.", ["tool"], registry=r
        )
        self.claim_latency = Histogram(
            f"{PREFIX}_sandbox_create_duration_seconds",
            "Time to create a sandbox (on Kubernetes: claim until bound to a ready pod), by provider and outcome.",
            ["provider", "outcome"],
            buckets=CLAIM_BUCKETS,
            registry=r,
        )
        self.active_sessions = Gauge(
            f"{PREFIX}_active_sessions",
            "Live sessions by provider, as the provider lists them at scrape time (all replicas' sessions).",
            ["provider"],
            registry=r,
        )
        self.jobs_running = Gauge(
            f"{PREFIX}_jobs_running",
            "Jobs (commands and Python cells that outlived their call) this replica last saw running: counted when a "
            "call returns a running job, uncounted when job_status, job_wait or job_cancel here reports it ended "
            "(or its session is closed here). A job followed only through another replica, or never followed again, "
            "stays counted.",
            registry=r,
        )
        self._running_jobs: set[tuple[str, str]] = set()
        self.egress_connections = Counter(
            f"{PREFIX}_egress_connections",
            "Connections sandboxes asked the egress proxy for, by decision (allowed, refused) and reason.",
            ["decision", "reason"],
            registry=r,
        )
        self.scrape_errors = Counter(
            f"{PREFIX}_session_count_errors", "Scrapes where the provider could not list sessions.", registry=r
        )

    def saw_egress(self, event: EgressEvent) -> None:
        """Count one connection the egress proxy decided (called from the proxy's thread; counters are safe)."""
        self.egress_connections.labels(decision=event.decision, reason=event.reason).inc()

    def saw_job(self, session_id: str, job_id: str, running: bool) -> None:
        """Note what a tool result said about a job; the gauge is the number last seen running."""
        if running:
            self._running_jobs.add((session_id, job_id))
        else:
            self._running_jobs.discard((session_id, job_id))
        self.jobs_running.set(len(self._running_jobs))

    def session_closed(self, session_id: str) -> None:
        """A closed session's jobs ended with its sandbox."""
        self._running_jobs = {job for job in self._running_jobs if job[0] != session_id}
        self.jobs_running.set(len(self._running_jobs))

    async def render(self, provider: SandboxProvider) -> bytes:
        """The text exposition, after counting the provider's live sessions (the last count stays on failure)."""
        try:
            async with asyncio.timeout(COUNT_TIMEOUT):
                sessions = await provider.list({session_labels.ROLE: session_labels.ROLE_SESSION})
            now = time.time()
            live = [s for s in sessions if s.info.expires_at is None or s.info.expires_at > now]
            self.active_sessions.labels(provider=provider.name).set(len(live))
        except (SandboxError, TimeoutError) as error:
            self.scrape_errors.inc()
            logger.warning("counting sessions for /metrics failed: %s", error)
        return generate_latest(self.registry)


class MeasuredProvider(SandboxProvider):
    """A provider whose `create` is timed into `ServerMetrics.claim_latency`; everything else passes through."""

    def __init__(self, inner: SandboxProvider, metrics: ServerMetrics) -> None:
        self.inner = inner
        self.metrics = metrics
        self.name = inner.name
        if isinstance(inner, EgressObservable):
            inner.observe_egress(metrics.saw_egress)

    async def create(
        self,
        *,
        labels: Mapping[str, str] | None = None,
        lifetime: float | None = None,
        network: bool | EgressPolicy = False,
    ) -> Sandbox:
        started = time.perf_counter()
        outcome = "ok"
        try:
            return await self.inner.create(labels=labels, lifetime=lifetime, network=network)
        except SandboxError as error:
            outcome = error.code
            raise
        except BaseException:
            outcome = "error"
            raise
        finally:
            self.metrics.claim_latency.labels(provider=self.name, outcome=outcome).observe(
                time.perf_counter() - started
            )

    async def fork(
        self, source: Sandbox, *, labels: Mapping[str, str] | None = None, lifetime: float | None = None, max_bytes: int
    ) -> Sandbox:
        return await self.inner.fork(source, labels=labels, lifetime=lifetime, max_bytes=max_bytes)

    async def get(self, sandbox_id: str) -> Sandbox:
        return await self.inner.get(sandbox_id)

    async def list(self, labels: Mapping[str, str] | None = None) -> builtins.list[Sandbox]:
        return await self.inner.list(labels)

    def can_suspend(self, network: bool | EgressPolicy = False) -> bool:
        return self.inner.can_suspend(network)

    async def check(self) -> None:
        await self.inner.check()

    async def aclose(self) -> None:
        await self.inner.aclose()
