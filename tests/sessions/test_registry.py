"""The session registry on the real local provider: ownership, default sessions, restarts, expiry, reaping."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from langchain_kubernetes_agent_sandbox import BackendUnavailableError, NotFoundError, TimedOutError
from langchain_kubernetes_agent_sandbox.providers.local import LocalProvider
from langchain_kubernetes_agent_sandbox.sessions import SessionPolicy, SessionRegistry
from langchain_kubernetes_agent_sandbox.sessions.labels import looks_like_session_id

MakeRegistry = Callable[..., SessionRegistry]


class Clock:
    """Time the test moves by hand, so expiry is checked without waiting."""

    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def make_registry(local_state_dir: Path) -> AsyncIterator[MakeRegistry]:
    """A registry on its own provider instance over the shared state folder: a new one models a restart."""
    providers: list[LocalProvider] = []

    def make(clock: Callable[[], float] = time.time, **policy: float | bool) -> SessionRegistry:
        provider = LocalProvider(local_state_dir)
        providers.append(provider)
        return SessionRegistry(provider, SessionPolicy(**policy), clock=clock)  # type: ignore[arg-type]

    yield make
    for sandbox in await providers[0].list() if providers else []:
        await sandbox.terminate()


async def test_racing_first_calls_share_one_default_session(make_registry: MakeRegistry) -> None:
    registry = make_registry()
    sessions = await asyncio.gather(*(registry.default("alice") for _ in range(8)))
    assert len({session.id for session in sessions}) == 1
    assert len(await registry.list_for("alice")) == 1


async def test_sessions_survive_a_restart_and_are_found_by_another_registry(make_registry: MakeRegistry) -> None:
    before = make_registry()
    default = await before.default("alice")
    named = await before.create("alice", labels={"team": "data"})
    async with before.use("alice", named.id) as session:
        await session.sandbox.write_file("kept.txt", b"still here")
    after = make_registry()
    assert (await after.default("alice")).id == default.id
    found = await after.get("alice", named.id)
    assert found.labels == {"team": "data"}
    assert await found.sandbox.read_file("kept.txt") == b"still here"
    with pytest.raises(NotFoundError):
        await after.get("bob", named.id)


async def test_ids_are_unguessable_and_distinct(make_registry: MakeRegistry) -> None:
    registry = make_registry(max_sessions=8)
    ids = [(await registry.create("alice")).id for _ in range(5)]
    assert len(set(ids)) == 5
    assert all(looks_like_session_id(session_id) and len(session_id) == 27 for session_id in ids)


async def test_use_slides_the_idle_deadline_but_never_past_the_lifetime(make_registry: MakeRegistry) -> None:
    clock = Clock()
    registry = make_registry(clock=clock, idle_timeout=100, max_lifetime=250)
    session = await registry.create("alice")
    clock.now += 90
    async with registry.use("alice", session.id):
        pass
    assert session.expires_at == pytest.approx(clock.now + 100)
    clock.now += 90
    async with registry.use("alice", session.id):
        pass
    assert session.expires_at == pytest.approx(session.created_at + 250)
    clock.now = session.created_at + 251
    with pytest.raises(NotFoundError, match="expired"):
        await registry.get("alice", session.id)


async def test_the_deadline_a_use_sets_is_seen_after_a_restart(make_registry: MakeRegistry) -> None:
    clock = Clock()
    registry = make_registry(clock=clock, idle_timeout=100)
    session = await registry.create("alice")
    clock.now += 80
    async with registry.use("alice", session.id):
        pass
    clock.now += 80
    assert (await make_registry(clock=clock, idle_timeout=100).get("alice", session.id)).id == session.id


async def test_reaping_removes_expired_sessions_of_every_owner(make_registry: MakeRegistry) -> None:
    clock = Clock()
    registry = make_registry(clock=clock, idle_timeout=100, suspend_idle=False)
    await registry.create("alice")
    await registry.create("bob", idle_timeout=1000)
    clock.now += 150
    assert await registry.reap() == 1
    assert await registry.list_for("alice") == []
    assert len(await registry.list_for("bob")) == 1


@pytest.mark.parametrize("failure", [TimedOutError("no answer"), BackendUnavailableError("unreachable")])
async def test_a_call_failing_in_a_session_closed_elsewhere_says_the_session_is_not_open(
    make_registry: MakeRegistry, failure: Exception
) -> None:
    # The pod of a session closed through another replica can stop answering before its Sandbox says it is gone:
    # what the caller needs to hear then is that the session ended, not that the pod was slow.
    holder, closer = make_registry(), make_registry()
    kept, closed = await holder.create("alice"), await holder.create("alice")
    await closer.close("alice", closed.id)
    with pytest.raises(NotFoundError, match="is open for you"):
        async with holder.use("alice", closed.id):
            raise failure
    with pytest.raises(type(failure)):
        async with holder.use("alice", kept.id):
            raise failure


async def test_calls_on_one_session_run_in_parallel(make_registry: MakeRegistry) -> None:
    registry = make_registry()
    await registry.default("alice")

    async def nap() -> None:
        async with registry.use("alice") as session:
            await session.sandbox.run("sleep 1")

    started = time.monotonic()
    await asyncio.gather(nap(), nap(), nap())
    assert time.monotonic() - started < 2.5


async def test_reaping_suspends_idle_sessions_and_a_use_resumes_them_with_their_files(
    make_registry: MakeRegistry,
) -> None:
    clock = Clock()
    registry = make_registry(clock=clock, idle_timeout=100)
    session = await registry.create("alice")
    async with registry.use("alice", session.id) as used:
        await used.sandbox.write_file("kept.txt", b"kept")
    clock.now += 150
    assert await registry.reap() == 1
    [listed] = await registry.list_for("alice")
    assert listed.suspended
    assert listed.expires_at is None
    assert await make_registry(clock=clock, idle_timeout=100).reap() == 0  # suspended, not idle any more
    async with registry.use("alice", session.id) as used:
        assert not used.suspended
        assert await used.sandbox.read_file("kept.txt") == b"kept"
    assert used.expires_at == pytest.approx(clock.now + 100)


async def test_the_maximum_lifetime_ends_a_suspended_session(make_registry: MakeRegistry) -> None:
    clock = Clock()
    registry = make_registry(clock=clock, idle_timeout=100, max_lifetime=1000)
    session = await registry.suspend("alice", (await registry.create("alice")).id)
    clock.now = session.created_at + 1001
    assert await registry.reap() == 1
    assert await registry.list_for("alice") == []
    with pytest.raises(NotFoundError):
        await registry.get("alice", session.id)


async def test_a_session_made_to_end_when_idle_still_ends_after_suspension_is_turned_on(
    make_registry: MakeRegistry,
) -> None:
    clock = Clock()
    session = await make_registry(clock=clock, idle_timeout=100, suspend_idle=False).create("alice")
    later = make_registry(clock=clock, idle_timeout=100)
    assert not (await later.get("alice", session.id)).suspends
    clock.now += 150
    assert await later.reap() == 1
    assert await later.list_for("alice") == []
