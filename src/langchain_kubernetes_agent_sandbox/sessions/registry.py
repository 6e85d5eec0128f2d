"""The session registry: sandboxes with owners, kept on the sandboxes' labels rather than in this process.

Any replica, or this one after a restart, finds a session again by asking the provider for sandboxes with
the session's labels; the in-memory map is only a cache of what the provider already knows.

Concurrency: calls on one session run in parallel, like two shells on one machine. They share the session's
files; each file write is atomic (a reader sees the old or the new content, never half), and nothing orders
concurrent calls against each other, so a caller that needs an order waits for one call before making the
next. Calls on different sessions never wait for each other. A principal's default session is created under
a per-principal lock, so two first calls that race get the same session; across replicas a race may make two
default sessions, and every replica then picks the same one (the oldest).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections import Counter, defaultdict
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass

from ..engine.channel import AgentLost
from ..errors import (
    BackendUnavailableError,
    InvalidArgumentError,
    NotFoundError,
    PermissionDeniedError,
    QuotaExceededError,
    SandboxError,
    SandboxGoneError,
    TimedOutError,
)
from ..network.policy import EgressPolicy
from ..sandbox import Sandbox, SandboxProvider
from . import labels as lb
from . import suspension
from .policy import SessionPolicy

logger = logging.getLogger(__name__)

SLIDE_SLACK = 0.05
"""A use moves the expiry only when that gains more than this share of the idle timeout, which spares the
provider a write per call; the idle timeout a session gets is therefore at least 95% of the one asked for."""


@dataclass
class Session:
    """A sandbox with an owner; `expires_at` changes as use slides it, and `sandbox` when another replica suspended
    or resumed it."""

    id: str
    sandbox: Sandbox
    owner: str
    is_default: bool
    idle_timeout: float
    labels: dict[str, str]
    created_at: float
    ends_at: float
    """When the maximum lifetime runs out; the idle deadline never moves past it."""
    expires_at: float | None
    """When idleness ends it, or suspends it where it `suspends` (None while suspended)."""
    suspends: bool = False
    """Whether idleness suspends it (files kept) rather than ending it; only its maximum lifetime ends it then."""

    @property
    def network(self) -> bool:
        return self.sandbox.info.network

    @property
    def suspended(self) -> bool:
        return self.sandbox.info.suspended

    def expired(self, now: float) -> bool:
        if self.suspends:
            return now >= self.ends_at
        deadline = min(self.ends_at, math.inf if self.expires_at is None else self.expires_at)
        return now >= deadline

    def idle(self, now: float) -> bool:
        """Due to be suspended: it suspends, runs, and went unused for its idle timeout."""
        return self.suspends and not self.suspended and self.expires_at is not None and now >= self.expires_at


class SessionRegistry:
    """Creates, finds, slides, closes and reaps the sessions of every principal."""

    def __init__(
        self,
        provider: SandboxProvider,
        policy: SessionPolicy | None = None,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.provider = provider
        self.policy = policy or SessionPolicy()
        self._clock = clock
        self._sessions: dict[str, Session] = {}
        self._defaults: dict[str, str] = {}
        self._locks: defaultdict[str, asyncio.Lock] = defaultdict(asyncio.Lock)
        self._running: Counter[str] = Counter()
        self._resuming: defaultdict[str, asyncio.Lock] = defaultdict(asyncio.Lock)
        """Per session: a suspension or resume in progress, which calls wait out."""
        self._in_use: Counter[str] = Counter()
        """Calls in flight by session id: idleness never suspends a session under a call of this process."""

    async def create(
        self,
        principal: str,
        *,
        idle_timeout: float | None = None,
        network: bool | Sequence[str] = False,
        labels: Mapping[str, str] | None = None,
    ) -> Session:
        """A new session for `principal`, counted against its session quota; `network` is False, True (the
        operator's allow-list) or rules that narrow it."""
        idle = self._idle_timeout(idle_timeout)
        if network is not False and not self.policy.allow_network:
            raise PermissionDeniedError(
                "This server does not give sandboxes network access: create the session without network, "
                "or ask the operator to start the server with --allow-network."
            )
        access = self._network_access(network)
        user_labels = lb.validate_user_labels(labels)
        owner = lb.owner_of(principal)
        async with self._locks[owner]:
            return await self._create_locked(owner, idle, access, user_labels, default=False)

    def _network_access(self, network: bool | Sequence[str]) -> bool | EgressPolicy:
        if isinstance(network, bool):
            return network
        if self.policy.egress is None:
            raise PermissionDeniedError(
                "This server has no egress allow-list to narrow: create the session with network=true or without."
            )
        return self.policy.egress.narrowed(list(network))

    async def get(self, principal: str, session_id: str) -> Session:
        """The session `session_id` of `principal`; `NotFoundError` when it is someone else's or gone."""
        owner = lb.owner_of(principal)
        session = self._sessions.get(session_id)
        if session is not None and session.expired(self._clock()):
            session = None  # another replica may have slid it; ask the provider
        if session is None and lb.looks_like_session_id(session_id):
            found = await self.provider.list({lb.ROLE: lb.ROLE_SESSION, lb.SESSION_ID: session_id, lb.OWNER: owner})
            session = next((s for s in map(self._session_from, found) if s is not None), None)
            if session is not None and session.expired(self._clock()):
                await self._discard(session)
                raise NotFoundError(
                    f"Session {session_id} has expired and was removed with its files: "
                    "create a new one with create_session, or omit session_id to use your default session."
                )
            if session is not None:
                self._sessions[session.id] = session
        if session is None or session.owner != owner:
            raise _not_open(session_id)
        return session

    async def default(self, principal: str) -> Session:
        """The principal's default session, made on first use."""
        owner = lb.owner_of(principal)
        cached = self._cached_default(owner)
        if cached is not None:
            return cached
        async with self._locks[owner]:
            cached = self._cached_default(owner)
            if cached is not None:
                return cached
            candidates = [s for s in await self._live(owner) if s.is_default]
            if candidates:
                session = min(candidates, key=lambda s: (s.created_at, s.id))
            else:
                session = await self._create_locked(
                    owner, self.policy.idle_timeout, network=False, user_labels={}, default=True
                )
            self._sessions.setdefault(session.id, session)
            self._defaults[owner] = session.id
            return self._sessions[session.id]

    async def resolve(self, principal: str, session_id: str | None) -> Session:
        return await (self.default(principal) if session_id is None else self.get(principal, session_id))

    @contextlib.asynccontextmanager
    async def use(self, principal: str, session_id: str | None = None) -> AsyncIterator[Session]:
        """Hold one of the principal's run slots while working in a session, and slide its idle deadline.

        When the sandbox turns out to be gone, the session is dropped and the error says what the caller can do.
        """
        owner = lb.owner_of(principal)
        if self._running[owner] >= self.policy.max_concurrent_runs:
            raise QuotaExceededError(
                f"You already have {self._running[owner]} sandbox calls running, the most allowed at once: "
                "wait for one to finish, then retry."
            )
        self._running[owner] += 1
        try:
            session = await self.resolve(principal, session_id)
            try:
                await self._enter(session, resume=True)
                try:
                    await self._touch(session)
                    yield session
                finally:
                    self._leave(session)
            except SandboxGoneError as error:
                if await self._suspended_elsewhere(session):  # its pod went with a suspension: the files are kept
                    raise SandboxError(
                        f"Session {session.id} was suspended by another server replica while this call ran; its files "
                        "are kept. Retry: the next call resumes it."
                    ) from error
                closed_elsewhere = not session.is_default and not await self._still_listed(session)
                await self._discard(session)
                if closed_elsewhere:  # through another replica: say what that replica would say
                    raise _not_open(session.id) from error
                raise SandboxGoneError(_gone_message(session, error)) from error
            except (AgentLost, TimedOutError, BackendUnavailableError) as error:
                # Its agent ended or stopped answering mid-call: with the session, if another replica closed it.
                if await self._suspended_elsewhere(session) or session.is_default or await self._still_listed(session):
                    raise
                self._forget(session)
                raise _not_open(session.id) from error
        finally:
            self._running[owner] -= 1
            if self._running[owner] <= 0:
                del self._running[owner]

    async def fork(self, principal: str, session_id: str | None = None) -> Session:
        """A new session of `principal` with the network and idle timeout of `session_id` (default: the default
        session) and a copy of its workspace; it counts against the session quota like any other.

        Nothing of the source but its files is copied: the fork has no processes and a fresh Python kernel. The
        source is not stopped while it is copied (see `engine.workspace_copy`); a fork that fails is removed. The
        principal's other session creations wait for the copy, so that the quota holds."""
        async with self.use(principal, session_id) as source, self._locks[source.owner]:
            self._check_room(await self._live(source.owner))
            labels = _session_labels(source.owner, source.idle_timeout, source.labels, default=False)
            suspends = self.policy.suspend_idle and source.sandbox.can_suspend  # the fork is made like its source
            try:
                sandbox = await self.provider.fork(
                    source.sandbox,
                    labels=labels,
                    lifetime=self._lifetime(source.idle_timeout, suspends),
                    max_bytes=self.policy.max_fork_bytes,
                )
            except SandboxGoneError as error:  # the new sandbox's, maybe: not a reason to drop the source
                raise SandboxError(f"The fork of session {source.id} failed and was removed: {error}") from error
            return await self._register(sandbox, source.idle_timeout if suspends else None)

    async def touch(self, principal: str, session_id: str) -> Session:
        """The session `session_id` of `principal`, its idle deadline slid as a call's would be: for use that is
        not a tool call and holds no run slot (a preview's traffic)."""
        session = await self.get(principal, session_id)
        await self._touch(session)
        return session

    @contextlib.asynccontextmanager
    async def peek(self, principal: str, session_id: str | None = None) -> AsyncIterator[Session]:
        """The session, kept from being suspended for idleness meanwhile, but neither resumed nor slid: for looking
        at it (session_info) without counting as a use."""
        session = await self.resolve(principal, session_id)
        await self._enter(session, resume=False)
        try:
            yield session
        finally:
            self._leave(session)

    async def _enter(self, session: Session, *, resume: bool) -> None:
        """Count a call as using the session, after any suspension in progress (a call must not meet a dying pod)
        and, with `resume`, after starting a suspended session again: once however many calls wait for it."""
        async with self._resuming[session.id]:
            if resume and session.suspended:
                await session.sandbox.resume(self.policy.resume_timeout)
                logger.info("resumed session %s (sandbox %s)", session.id, session.sandbox.id)
                suspension.resumed.set(session.id)
            self._in_use[session.id] += 1

    def _leave(self, session: Session) -> None:
        self._in_use[session.id] -= 1
        if self._in_use[session.id] <= 0:
            del self._in_use[session.id]

    async def list_for(self, principal: str) -> list[Session]:
        """The principal's live sessions, oldest first."""
        sessions = []
        for found in await self._live(lb.owner_of(principal)):
            cached = self._sessions.setdefault(found.id, found)
            cached.expires_at = found.expires_at
            if cached.suspended != found.suspended:  # suspended or resumed elsewhere: the provider's word counts
                cached.sandbox = found.sandbox
            sessions.append(cached)
        return sorted(sessions, key=lambda s: (s.created_at, s.id))

    async def close(self, principal: str, session_id: str) -> None:
        """Terminate the session and everything in it."""
        session = await self.get(principal, session_id)
        self._forget(session)
        await session.sandbox.terminate()

    async def suspend(self, principal: str, session_id: str | None = None) -> Session:
        """Suspend the session now, as its idle timeout would: processes stop, files stay, the next call resumes it."""
        session = await self.resolve(principal, session_id)
        if not session.suspends:
            raise InvalidArgumentError(
                f"Session {session.id} cannot be suspended here: this server's {self.provider.name} sandboxes do not "
                "keep their files when stopped, so idle sessions end instead. Close it with close_session when done."
            )
        await self._suspend(session)
        return session

    async def reap(self) -> int:
        """Terminate every expired session and suspend every idle one that suspends, whoever owns it; returns how
        many were reaped or suspended.

        A session whose sandbox fails to terminate or suspend is logged and skipped, so that it cannot keep the
        others alive; it is still due, so the next sweep tries it again."""
        reaped = 0
        now = self._clock()
        for sandbox in await self.provider.list({lb.ROLE: lb.ROLE_SESSION}):
            session = self._session_from(sandbox)
            if session is None or not (session.expired(now) or session.idle(now)):
                continue
            try:
                if session.expired(now):
                    await self._discard(session)
                elif not await self._suspend(self._sessions.get(session.id, session), idle=True):
                    continue  # a call of this process is using it (a long command, say): not idle
            except Exception:
                logger.exception("reaping session %s (sandbox %s) failed; retrying next sweep", session.id, sandbox.id)
                continue
            reaped += 1
        return reaped

    async def reap_forever(self) -> None:
        """Reap every `policy.reap_interval` seconds until cancelled.

        Any failure of a sweep is logged with its traceback and the next sweep runs as planned: a reaper that
        died would leave every session of every owner to live forever."""
        while True:
            await asyncio.sleep(self.policy.reap_interval)
            try:
                reaped = await self.reap()
            except Exception:
                logger.exception("reaping expired sessions failed; retrying in %g s", self.policy.reap_interval)
            else:
                if reaped:
                    logger.info("reaped %d expired sessions", reaped)

    def _idle_timeout(self, requested: float | None) -> float:
        if requested is None:
            return self.policy.idle_timeout
        if not 0 < requested <= self.policy.max_idle_timeout:
            raise InvalidArgumentError(
                f"ttl_seconds must lie between 1 and {self.policy.max_idle_timeout:g}, got {requested:g}."
            )
        return float(requested)

    def _cached_default(self, owner: str) -> Session | None:
        session_id = self._defaults.get(owner)
        session = self._sessions.get(session_id) if session_id else None
        if session is None or session.expired(self._clock()):
            return None
        return session

    async def _create_locked(
        self, owner: str, idle: float, network: bool | EgressPolicy, user_labels: dict[str, str], *, default: bool
    ) -> Session:
        self._check_room(await self._live(owner))
        suspends = self.policy.suspend_idle and self.provider.can_suspend(network)
        sandbox = await self.provider.create(
            labels=_session_labels(owner, idle, user_labels, default=default),
            lifetime=self._lifetime(idle, suspends),
            network=network,
        )
        return await self._register(sandbox, idle if suspends else None)

    def _lifetime(self, idle: float, suspends: bool) -> float:
        """A new sandbox's expiry: its maximum lifetime where idleness suspends it, else its idle timeout."""
        return self.policy.max_lifetime if suspends else min(idle, self.policy.max_lifetime)

    def _check_room(self, live: Sequence[Session]) -> None:
        if len(live) >= self.policy.max_sessions:
            raise QuotaExceededError(
                f"You hold {len(live)} sessions, the most allowed (the server's max_sessions): close one with "
                "close_session (list_sessions shows them) and retry."
            )

    async def _register(self, sandbox: Sandbox, suspend_after: float | None) -> Session:
        """The session of a sandbox just made; `suspend_after` (its idle timeout) where idleness suspends it."""
        if suspend_after is not None:
            await sandbox.set_suspend_at(self._clock() + suspend_after)
        session = self._session_from(sandbox)
        if session is None:
            raise SandboxError(f"The provider dropped the session labels of sandbox {sandbox.id}.")
        self._sessions[session.id] = session
        return session

    async def _live(self, owner: str) -> list[Session]:
        now = self._clock()
        found = await self.provider.list({lb.ROLE: lb.ROLE_SESSION, lb.OWNER: owner})
        return [s for s in map(self._session_from, found) if s is not None and not s.expired(now)]

    async def _touch(self, session: Session) -> None:
        target = min(self._clock() + session.idle_timeout, session.ends_at)
        current = session.expires_at
        if current is None or target - current > session.idle_timeout * SLIDE_SLACK:
            if session.suspends:
                await session.sandbox.set_suspend_at(target)
            else:
                await session.sandbox.set_expiry(target)
            session.expires_at = target

    async def _suspend(self, session: Session, *, idle: bool = False) -> bool:
        """Suspend it, unless `idle` and a call of this process uses it; whether it was suspended."""
        async with self._resuming[session.id]:
            if idle and self._in_use[session.id]:
                return False
            await session.sandbox.suspend()
            session.expires_at = None
        logger.info("suspended session %s (sandbox %s)", session.id, session.sandbox.id)
        return True

    def _session_from(self, sandbox: Sandbox) -> Session | None:
        info = sandbox.info
        labels = info.labels
        session_id = labels.get(lb.SESSION_ID)
        owner = labels.get(lb.OWNER)
        if labels.get(lb.ROLE) != lb.ROLE_SESSION or not session_id or not owner:
            return None
        try:
            idle = float(labels.get(lb.IDLE_SECONDS, ""))
        except ValueError:
            idle = self.policy.idle_timeout
        # A session made to be deleted when idle (before suspension existed, or with it off) stays so: its provider
        # expiry is its idle deadline. One made to suspend has a suspend-at deadline, or is suspended.
        suspends = self.policy.suspend_idle and sandbox.can_suspend and (info.suspend_at is not None or info.suspended)
        return Session(
            id=session_id,
            sandbox=sandbox,
            owner=owner,
            is_default=labels.get(lb.DEFAULT) == "true",
            idle_timeout=idle,
            labels=lb.user_labels_of(labels),
            created_at=info.created_at,
            ends_at=info.created_at + self.policy.max_lifetime,
            expires_at=info.suspend_at if suspends else info.expires_at,
            suspends=suspends,
        )

    async def _suspended_elsewhere(self, session: Session) -> bool:
        """Whether the provider says the session is suspended though this process thought it ran (another replica
        suspended it); if so, the cache takes the provider's word, so that the next call resumes it."""
        if session.suspended:
            return False
        try:
            found = await self.provider.list(
                {lb.ROLE: lb.ROLE_SESSION, lb.SESSION_ID: session.id, lb.OWNER: session.owner}
            )
        except SandboxError:
            return False
        if not found or not found[0].info.suspended:
            return False
        session.sandbox, session.expires_at = found[0], None
        return True

    async def _still_listed(self, session: Session) -> bool:
        """Whether the provider still lists the session's sandbox (when in doubt, yes)."""
        try:
            found = await self.provider.list(
                {lb.ROLE: lb.ROLE_SESSION, lb.SESSION_ID: session.id, lb.OWNER: session.owner}
            )
        except SandboxError:
            return True
        return bool(found)

    def _forget(self, session: Session) -> None:
        self._sessions.pop(session.id, None)
        lock = self._resuming.get(session.id)
        if lock is not None and not lock.locked():
            del self._resuming[session.id]
        if self._defaults.get(session.owner) == session.id:
            del self._defaults[session.owner]

    async def _discard(self, session: Session) -> None:
        """Forget a session and terminate its sandbox, tolerating one that is already gone."""
        self._forget(session)
        try:
            await session.sandbox.terminate()
        except SandboxError as error:
            logger.warning("terminating the sandbox of session %s failed: %s", session.id, error)


def _session_labels(owner: str, idle: float, user_labels: Mapping[str, str], *, default: bool) -> dict[str, str]:
    """The labels that make a new sandbox a session of `owner` (with a new id)."""
    return {
        lb.ROLE: lb.ROLE_SESSION,
        lb.SESSION_ID: lb.new_session_id(),
        lb.OWNER: owner,
        lb.DEFAULT: "true" if default else "false",
        lb.IDLE_SECONDS: _label_number(idle),
        **{lb.USER_PREFIX + key: value for key, value in user_labels.items()},
    }


def _label_number(seconds: float) -> str:
    """Seconds as a label value: plain digits, never an exponent (a '+' is not allowed in labels)."""
    return format(seconds, "f").rstrip("0").rstrip(".")


def _not_open(session_id: str) -> NotFoundError:
    return NotFoundError(
        f"No session {session_id!r} is open for you: it was closed, expired or never existed. "
        "Call list_sessions to see your sessions, create_session for a new one, "
        "or omit session_id to use your default session."
    )


def _gone_message(session: Session, error: SandboxGoneError) -> str:
    if session.is_default:
        return (
            f"The sandbox of your default session stopped or was removed ({error}); its files are lost. "
            "Retry: your next call starts a fresh default session."
        )
    return (
        f"The sandbox of session {session.id} stopped or was removed ({error}); its files are lost. "
        "Create a new session with create_session, or omit session_id to use your default session."
    )
