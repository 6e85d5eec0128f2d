"""Starting the local provider: missing bubblewrap or keyctl, unisolated mode, cgroup detection, unreachable state."""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path

import pytest

from langchain_kubernetes_agent_sandbox import BackendUnavailableError
from langchain_kubernetes_agent_sandbox.providers.local import LocalProvider, ResourceLimits
from langchain_kubernetes_agent_sandbox.providers.local.cgroups import CgroupManager


def test_missing_bubblewrap_refuses_to_start_and_says_how_to_install(
    local_state_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(BackendUnavailableError, match="apt-get install bubblewrap"):
        LocalProvider(local_state_dir)


def test_missing_keyctl_refuses_to_start_and_says_how_to_install(
    local_state_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bwrap = shutil.which("bwrap")
    assert bwrap is not None
    (tmp_path / "bwrap").symlink_to(bwrap)
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(BackendUnavailableError, match="apt-get install keyutils"):
        LocalProvider(local_state_dir)


async def test_unisolated_mode_warns_on_every_start_and_still_runs(
    local_state_dir: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    monkeypatch.setenv("PATH", f"{tmp_path}:/usr/bin:/bin")
    with caplog.at_level(logging.WARNING):
        LocalProvider(local_state_dir, unisolated=True)
        provider = LocalProvider(local_state_dir, unisolated=True)
    assert sum("UNISOLATED" in record.getMessage() for record in caplog.records) == 2
    sandbox = await provider.create()
    await sandbox.write_file("in.txt", b"workspace file")
    result = await sandbox.run("cat in.txt")
    assert result.stdout == "workspace file"


@pytest.mark.skipif(os.geteuid() != 0, reason="only a root server drops to a sandbox user that needs reachable parents")
def test_state_folder_the_sandbox_user_cannot_enter_is_refused_with_a_fix(tmp_path: Path) -> None:
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o700)
    with pytest.raises(BackendUnavailableError, match="chmod o\\+x"):
        LocalProvider(locked / "state")


def fake_v2_tree(root: Path, controllers: str) -> Path:
    """A cgroup v2 root as the kernel lays it out, with the memory controller already enabled for children."""
    (root / "cgroup.controllers").write_text(controllers + "\n")
    (root / "cgroup.subtree_control").write_text("memory\n")
    base = root / "kubernetes-agent-sandbox"
    base.mkdir()
    (base / "cgroup.subtree_control").write_text("")
    return base


def test_cgroup_v2_is_detected_and_limits_written(tmp_path: Path) -> None:
    base = fake_v2_tree(tmp_path, "cpu memory pids io")
    manager = CgroupManager.detect(tmp_path)
    assert manager is not None
    assert manager.version == 2
    assert manager.cpu
    assert (tmp_path / "cgroup.subtree_control").read_text() == "+pids +cpu"
    assert (base / "cgroup.subtree_control").read_text() == "+memory +pids +cpu"
    limits = ResourceLimits(memory_bytes=256 * 1024 * 1024, max_processes=50, cpus=1.5)
    cgroup = manager.ensure("local-abc", limits)
    assert (base / "local-abc" / "memory.max").read_text() == str(256 * 1024 * 1024)
    assert (base / "local-abc" / "pids.max").read_text() == "50"
    assert (base / "local-abc" / "cpu.max").read_text() == "150000 100000"
    assert (base / "local-abc" / "cpu.weight").read_text() == "100"
    assert cgroup.procs_files == [base / "local-abc" / "cgroup.procs"]


def test_cgroup_v2_without_a_cpu_controller_limits_memory_and_says_cpu_is_unlimited(tmp_path: Path) -> None:
    base = fake_v2_tree(tmp_path, "memory pids io")
    manager = CgroupManager.detect(tmp_path)
    assert manager is not None
    assert not manager.cpu
    assert "no CPU limit" in manager.description
    manager.ensure("local-abc", ResourceLimits())
    assert (base / "local-abc" / "memory.max").exists()
    assert not (base / "local-abc" / "cpu.max").exists()


def test_cgroup_v1_is_detected_with_separate_hierarchies(tmp_path: Path) -> None:
    for controller in ("memory", "pids", "cpu", "cpuacct"):
        (tmp_path / controller).mkdir()
    manager = CgroupManager.detect(tmp_path)
    assert manager is not None
    assert manager.version == 1
    assert manager.cpu
    cgroup = manager.ensure("local-abc", ResourceLimits(cpus=0.25))
    base = "kubernetes-agent-sandbox/local-abc"
    assert (tmp_path / "memory" / base / "memory.limit_in_bytes").exists()
    assert (tmp_path / "pids" / base / "pids.max").read_text() == "256"
    assert (tmp_path / "cpu" / base / "cpu.cfs_quota_us").read_text() == "25000"
    assert (tmp_path / "cpu" / base / "cpu.cfs_period_us").read_text() == "100000"
    assert (tmp_path / "cpu" / base / "cpu.shares").read_text() == "1024"
    assert tmp_path / "cpuacct" / base / "cgroup.procs" in cgroup.procs_files, "joined for accounting"


def test_cgroup_v1_with_cpu_and_cpuacct_mounted_together_joins_that_hierarchy_once(tmp_path: Path) -> None:
    for controller in ("memory", "pids", "cpu,cpuacct"):
        (tmp_path / controller).mkdir()
    (tmp_path / "cpu").symlink_to("cpu,cpuacct")
    (tmp_path / "cpuacct").symlink_to("cpu,cpuacct")
    manager = CgroupManager.detect(tmp_path)
    assert manager is not None
    cgroup = manager.ensure("local-abc", ResourceLimits())
    assert len(cgroup.procs_files) == 3
    assert (tmp_path / "cpu,cpuacct" / "kubernetes-agent-sandbox" / "local-abc" / "cpu.cfs_quota_us").read_text() == (
        "100000"
    )


def test_cgroup_v1_without_a_cpu_hierarchy_still_limits_memory_and_processes(tmp_path: Path) -> None:
    for controller in ("memory", "pids", "cpuacct"):
        (tmp_path / controller).mkdir()
    manager = CgroupManager.detect(tmp_path)
    assert manager is not None
    assert not manager.cpu
    assert len(manager.ensure("local-abc", ResourceLimits()).procs_files) == 2


def test_no_cgroup_without_memory_and_pids_controllers(tmp_path: Path) -> None:
    (tmp_path / "cgroup.controllers").write_text("cpu io\n")
    assert CgroupManager.detect(tmp_path) is None
    assert CgroupManager.detect(tmp_path / "absent") is None


def test_rlimit_fallback_bounds_memory_per_process_and_processes_only_for_a_dedicated_user() -> None:
    limits = ResourceLimits(memory_bytes=128 * 1024 * 1024, max_processes=64)
    assert "ulimit -v 131072" in limits.ulimit_lines(per_process_memory=True, process_count=True)
    assert "ulimit -p 64" in limits.ulimit_lines(per_process_memory=True, process_count=True)
    assert not any("-p" in line for line in limits.ulimit_lines(per_process_memory=True, process_count=False))
