"""Forks of local sandboxes: held to the fork's disk quota (a refusal leaves no sandbox, folder or mount behind),
and a copy that follows no link of the source out to the host's files."""

from __future__ import annotations

from pathlib import Path

import pytest

from langchain_kubernetes_agent_sandbox import DiskQuotaExceededError
from langchain_kubernetes_agent_sandbox.providers.local import LocalProvider, ResourceLimits
from tests.local.test_quotas import MIB, attached_loop_files, mounts_under, needs_disk_images


@needs_disk_images
async def test_a_fork_that_does_not_fit_the_disk_quota_is_refused_and_leaves_nothing(local_state_dir: Path) -> None:
    """The operator lowered the quota after the source was made: its workspace no longer fits a new sandbox."""
    roomy = LocalProvider(local_state_dir, resources=ResourceLimits(disk_bytes=96 * MIB, disk_files=4096))
    source = await roomy.create()
    assert (await source.run("head -c 40000000 /dev/urandom > /app/data", timeout=60)).exit_code == 0
    tight = LocalProvider(local_state_dir, resources=ResourceLimits(disk_bytes=32 * MIB, disk_files=4096))

    with pytest.raises(DiskQuotaExceededError, match=r"disk quota of 32 MiB .*disk_quota_mib.* Nothing was created"):
        await tight.fork(source, max_bytes=1024 * MIB)

    assert [sandbox.id for sandbox in await tight.list()] == [source.id]
    assert [folder.name for folder in (local_state_dir / "sandboxes").iterdir()] == [source.id]
    assert len(mounts_under(local_state_dir)) == 1
    assert attached_loop_files().count(str(local_state_dir)) == 1
    assert (await source.run("wc -c < /app/data")).stdout == "40000000\n", "the source is untouched"


async def test_a_fork_copies_links_as_links_and_never_a_host_file_they_point_at(local_state_dir: Path) -> None:
    provider = LocalProvider(local_state_dir)
    source = await provider.create()
    outside = local_state_dir / "host-secret"
    outside.write_text("host only")
    outside.chmod(0o644)  # readable by the sandbox user on the host: only the sandbox's view keeps it out
    links = f"ln -s {outside} /app/secret && ln -s / /app/root && ln -s /etc/shadow /app/shadow"
    assert (await source.run(links)).exit_code == 0

    fork = await provider.fork(source, max_bytes=64 * MIB)

    assert (await fork.run("readlink secret root shadow")).stdout == f"{outside}\n/\n/etc/shadow\n"
    assert (await fork.run("test -e /app/secret")).exit_code == 1, "the host file is not in the sandbox's view"
    copied = provider.state.mounts(fork.id).workspace
    assert all((copied / name).is_symlink() for name in ("secret", "root", "shadow"))
    assert "host only" not in (await fork.run("cat secret root/etc/shadow 2>&1")).stdout
