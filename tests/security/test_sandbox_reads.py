"""Reads and listings that go through the sandbox, attacked with what the sandbox can make: links to endless
devices and to pipes, a pipe swapped in while the file is read, a folder of tens of thousands of entries, and
names holding newlines and escape sequences. Each must stop at once at its bound, and never hang the call."""

from __future__ import annotations

import time

import pytest

from langchain_kubernetes_agent_sandbox import InvalidPathError, Sandbox, SandboxError, TooLargeError, shell_files
from langchain_kubernetes_agent_sandbox.providers.local import LocalProvider
from tests.conftest import ProviderFactory

QUICK = 10.0
"""Seconds a refused read or a bounded listing may take, with room for a loaded machine."""

ENTRIES = 30_000
"""Three times the listing limit: enough to show that a listing stops at the limit, whatever the folder holds."""


def through_the_sandbox(sandbox: Sandbox, *paths: str) -> list[str]:
    """The paths whose reads go through the sandbox's shell: on Kubernetes those under /app take the runtime's
    file API instead, a different path (see the report on it)."""
    kubernetes = type(sandbox).__name__.startswith("Kubernetes")
    return [path for path in paths if not (kubernetes and path.startswith("/app/"))]


async def refused_quickly(sandbox: Sandbox, path: str, error: type[SandboxError]) -> str:
    started = time.monotonic()
    with pytest.raises(error) as raised:
        await sandbox.read_file(path)
    assert time.monotonic() - started < QUICK
    return str(raised.value)


async def test_a_link_to_an_endless_device_is_refused_at_once(sandbox: Sandbox) -> None:
    await sandbox.run("ln -s /dev/zero /app/zero && ln -s /dev/urandom /tmp/random")
    for path in through_the_sandbox(sandbox, "/app/zero", "/tmp/random", "/dev/zero"):
        assert "not a regular file" in await refused_quickly(sandbox, path, InvalidPathError)


async def test_a_link_to_a_pipe_is_refused_without_opening_it(sandbox: Sandbox) -> None:
    await sandbox.run("mkfifo /tmp/pipe && ln -s /tmp/pipe /app/pipe")
    for path in through_the_sandbox(sandbox, "/app/pipe", "/tmp/pipe"):
        assert "not a regular file" in await refused_quickly(sandbox, path, InvalidPathError)


async def test_a_file_over_the_limit_behind_a_link_is_refused_without_reading_it(sandbox: Sandbox) -> None:
    await sandbox.run("truncate -s 1G /tmp/huge && ln -s /tmp/huge /app/huge && ln -s /tmp/huge /tmp/link")
    for path in through_the_sandbox(sandbox, "/app/huge", "/tmp/link"):
        assert "larger than" in await refused_quickly(sandbox, path, TooLargeError)


async def test_a_pipe_swapped_in_after_the_checks_does_not_hang_the_read(
    local_provider_factory: ProviderFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(shell_files, "READ_SECONDS", 2)
    provider = await local_provider_factory()
    assert isinstance(provider, LocalProvider)
    sandbox = await provider.create()
    await sandbox.run(
        "mkfifo /tmp/pipe && echo content > /tmp/file && "
        "setsid sh -c 'while :; do ln -sfn /tmp/pipe /app/r; ln -sfn /tmp/file /app/r; done' >/dev/null 2>&1 & "
        "until [ -L /app/r ]; do sleep 0.05; done"
    )
    outcomes = set()
    for _ in range(10):
        started = time.monotonic()
        try:
            outcomes.add(await sandbox.read_file("/app/r"))
        except SandboxError as error:
            outcomes.add(type(error).__name__)
        assert time.monotonic() - started < 2 + QUICK
    assert outcomes <= {b"content\n", "InvalidPathError", "NotFoundError", "TimedOutError"}


async def test_a_huge_folder_behind_a_link_lists_quickly_and_says_it_is_incomplete(sandbox: Sandbox) -> None:
    built = await sandbox.run(
        f"mkdir /tmp/many && cd /tmp/many && seq 1 {ENTRIES} | xargs touch && ln -s /tmp/many /app/many && echo ok",
        timeout=120,
    )
    assert built.stdout == "ok\n", built.stderr
    for path in ("/app/many", "/tmp/many"):
        started = time.monotonic()
        listing = await sandbox.list_dir(path)
        assert time.monotonic() - started < QUICK
        assert len(listing) == sandbox.limits.max_list_entries
        assert listing.truncated
        assert len({entry.name for entry in listing}) == len(listing)
    small = await sandbox.list_dir("/app")
    assert not small.truncated


NAMES = ["a\nb", "\x1b[31mred", "\r\ncarriage", "tab\tand\x7fdel", "\u202eevil"]


async def test_names_with_newlines_and_escapes_list_exactly_through_the_sandbox(sandbox: Sandbox) -> None:
    for name in NAMES:
        await sandbox.write_file(f"/tmp/names/{name}", b"x")
    await sandbox.run("ln -s /tmp/names /app/names")
    for path in ("/app/names", "/tmp/names"):
        listing = await sandbox.list_dir(path)
        assert [entry.name for entry in listing] == sorted(NAMES)
        assert {entry.kind for entry in listing} == {"file"}
        assert [entry.path for entry in listing] == [f"{path}/{name}" for name in sorted(NAMES)]
