"""Creating, finding again after a restart, expiring and terminating sandboxes."""

from __future__ import annotations

import asyncio
import time

import pytest

from langchain_kubernetes_agent_sandbox import NotFoundError, SandboxGoneError, SandboxProvider
from tests.conftest import ProviderFactory


async def test_sandbox_is_found_again_by_id_and_labels_after_a_restart(provider_factory: ProviderFactory) -> None:
    first = await provider_factory()
    sandbox = await first.create(labels={"owner": "alice", "session": "s1"})
    await sandbox.write_file("kept.txt", b"still here")
    await first.aclose()

    restarted = await provider_factory()
    again = await restarted.get(sandbox.id)
    assert again.info.labels == {"owner": "alice", "session": "s1"}
    assert await again.read_file("kept.txt") == b"still here"
    found = await restarted.list({"owner": "alice"})
    assert [s.id for s in found] == [sandbox.id]
    assert await restarted.list({"owner": "bob"}) == []


async def test_sandboxes_do_not_see_each_others_files(provider: SandboxProvider) -> None:
    first, second = await provider.create(), await provider.create()
    await first.write_file("/app/mine.txt", b"first's")
    await first.run("echo first > /tmp/mine.txt")
    assert not await second.exists("/app/mine.txt")
    assert (await second.run("cat /tmp/mine.txt")).exit_code != 0


async def test_terminated_sandbox_is_gone(provider: SandboxProvider) -> None:
    sandbox = await provider.create()
    await sandbox.terminate()
    await sandbox.terminate()
    with pytest.raises(SandboxGoneError, match=r"(?i)create a new sandbox"):
        await sandbox.run("true")
    with pytest.raises(NotFoundError):
        await provider.get(sandbox.id)


async def test_unknown_ids_are_not_found(provider: SandboxProvider) -> None:
    for bogus in ("does-not-exist", "../../etc", "local-" + "0" * 24):
        with pytest.raises(NotFoundError):
            await provider.get(bogus)


async def test_expired_sandboxes_are_reaped_even_when_nobody_was_watching(provider_factory: ProviderFactory) -> None:
    provider = await provider_factory()
    short = await provider.create(lifetime=1)
    kept = await provider.create(lifetime=600)
    assert short.info.expires_at is not None
    assert short.info.expires_at <= time.time() + 1
    await asyncio.sleep(1.5)
    restarted = await provider_factory()
    assert [s.id for s in await restarted.list()] == [kept.id]
    with pytest.raises(NotFoundError):
        await restarted.get(short.id)


async def test_expiry_can_be_moved(provider_factory: ProviderFactory) -> None:
    provider = await provider_factory()
    sandbox = await provider.create(lifetime=1)
    await sandbox.set_expiry(time.time() + 600)
    await asyncio.sleep(1.5)
    again = await (await provider_factory()).get(sandbox.id)
    assert again.info.expires_at is not None
    assert again.info.expires_at > time.time() + 500


async def test_check_passes_on_a_working_provider(provider: SandboxProvider) -> None:
    await provider.check()
