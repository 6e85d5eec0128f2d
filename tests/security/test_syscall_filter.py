"""Attacks through system calls a sandbox has no business making: every one is refused by the filter of
`providers/local/seccomp.py`, whatever calling convention it comes through, in every process of the sandbox."""

from __future__ import annotations

import asyncio
import errno
import json
import platform
import re
import shlex
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from langchain_kubernetes_agent_sandbox.providers.local import LocalProvider, LocalSandbox, seccomp

PROBE = Path(__file__).with_name("syscall_probe.py")
ATTACH_PROBE = Path(__file__).with_name("attach_probe.py")
NATIVE, *COMPAT = seccomp.ARCHITECTURES[platform.machine()]
EXPECTED = {call: refusal.errno for refusal in seccomp.REFUSED for call in refusal.calls} | {
    call: errno.EPERM for refusal in seccomp.REFUSED_BY_ARGUMENT for call in refusal.calls
}
"""What each refused call answers; `clone` and `unshare` are probed with CLONE_NEWUSER, `ptrace` with
PTRACE_ATTACH."""


@pytest.fixture(params=[True, False], ids=["holder", "own-namespaces"])
async def sandbox(request: pytest.FixtureRequest, local_state_dir: Path) -> AsyncIterator[LocalSandbox]:
    """A sandbox whose commands join its holder, and one whose every command has namespaces of its own."""
    made = await LocalProvider(local_state_dir, keep_background=request.param).create()
    await made.write_file("/tmp/probe.py", PROBE.read_bytes())
    yield made
    await made.terminate()


async def probe(sandbox: LocalSandbox, numbers: dict[str, int], *options: str) -> dict[str, int]:
    command = shlex.join(["python3", "/tmp/probe.py", json.dumps(numbers), *options])
    result = await sandbox.run(command, timeout=60)
    assert result.exit_code == 0, result.stderr
    answers: dict[str, int] = json.loads(result.stdout)
    return answers


async def test_every_refused_call_fails_with_the_filters_errno(sandbox: LocalSandbox) -> None:
    numbers = {call: NATIVE.numbers[call] for call in EXPECTED if call in NATIVE.numbers}
    answers = await probe(sandbox, numbers)
    assert {call: errno.errorcode.get(code, code) for call, code in answers.items()} == {
        call: errno.errorcode[EXPECTED[call]] for call in numbers
    }


@pytest.mark.skipif(platform.machine() != "x86_64", reason="the i386 gate exists on x86_64 machines only")
async def test_a_32_bit_call_on_x86_64_is_refused_under_its_own_number(sandbox: LocalSandbox) -> None:
    (i386,) = COMPAT
    answers = await probe(sandbox, {"keyctl": i386.numbers["keyctl"]}, "--i386")
    assert answers == {"keyctl": errno.EPERM}


async def test_every_process_of_a_sandbox_runs_under_the_filter(sandbox: LocalSandbox) -> None:
    """An unfiltered process in the sandbox (its init, the holder) could be made to call for the others:
    they share its user and may ptrace it."""
    result = await sandbox.run("sleep 30 & grep -H '^Seccomp:' /proc/[0-9]*/status; kill $!")
    modes = dict(re.findall(r"^/proc/(\d+)/status:Seccomp:\s+(\d+)$", result.stdout, re.MULTILINE))
    assert "1" in modes
    assert len(modes) >= 3, result.stdout
    assert set(modes.values()) == {"2"}, result.stdout


async def test_a_starting_command_cannot_be_attached_to_before_its_filter(sandbox: LocalSandbox) -> None:
    """bubblewrap makes itself dumpable when it drops its capabilities and installs the filter a moment later:
    in a sandbox whose commands share one pid namespace, each start is a window for the others (without the
    refusal of PTRACE_ATTACH this probe attached to about one start in three)."""
    await sandbox.write_file("/tmp/attach.py", ATTACH_PROBE.read_bytes())
    scanning = asyncio.create_task(sandbox.run("python3 /tmp/attach.py 4", timeout=30))
    await asyncio.sleep(0.5)
    while not scanning.done():
        await sandbox.run("true", timeout=10)
    result = await scanning
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["attached"] == 0, result.stdout


def test_call_numbers_match_the_kernel_headers() -> None:
    headers = (
        (seccomp.X86_64, Path("/usr/include/x86_64-linux-gnu/asm/unistd_64.h")),
        (seccomp.I386, Path("/usr/include/x86_64-linux-gnu/asm/unistd_32.h")),
        (seccomp.AARCH64, Path("/usr/include/asm-generic/unistd.h")),
    )
    if not all(path.exists() for _, path in headers):
        pytest.skip("needs the kernel's uapi headers of x86_64 and the generic table (Debian: linux-libc-dev)")
    compared = 0
    for architecture, header in headers:
        defined = dict(re.findall(r"^#define __NR_(\w+)\s+(\d+)$", header.read_text(), re.MULTILINE))
        for call, number in architecture.numbers.items():
            if call in defined:  # headers older than the kernel lack the newest calls
                assert int(defined[call]) == number, f"{call} on {header}"
                compared += 1
    assert compared >= 3 * 25
