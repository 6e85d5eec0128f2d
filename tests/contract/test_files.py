"""Files: one filesystem for the shell and the file API, `/app` as the working directory, typed errors."""

from __future__ import annotations

import pytest

from langchain_kubernetes_agent_sandbox import (
    ExecutionLimits,
    InvalidPathError,
    IsDirectoryError,
    NotFoundError,
    Sandbox,
    TooLargeError,
)
from tests.conftest import ProviderFactory


async def test_file_written_by_the_api_is_the_file_the_shell_sees(sandbox: Sandbox) -> None:
    assert await sandbox.write_file("/app/notes/a.txt", b"written by api") == "/app/notes/a.txt"
    result = await sandbox.run("cat /app/notes/a.txt; echo ' and shell' >> notes/a.txt")
    assert result.stdout == "written by api"
    assert await sandbox.read_file("notes/a.txt") == b"written by api and shell\n"


async def test_app_paths_stay_app_paths(sandbox: Sandbox) -> None:
    await sandbox.write_file("/app/x.txt", b"x")
    result = await sandbox.run("ls /app; test -e /app/app && echo NESTED || echo flat")
    assert result.stdout.split() == ["x.txt", "flat"]


@pytest.mark.parametrize("path", ["/tmp/scratch/t.bin", "/app/deep/er/f.bin", "spaces in name/ü.txt"])
async def test_binary_content_round_trips_byte_for_byte(sandbox: Sandbox, path: str) -> None:
    data = bytes(range(256)) * 41
    written = await sandbox.write_file(path, data)
    assert await sandbox.read_file(path) == data
    size = await sandbox.run(f"wc -c < '{written}'")
    assert size.stdout.strip() == str(len(data))


async def test_tmp_persists_between_commands(sandbox: Sandbox) -> None:
    await sandbox.run("echo kept > /tmp/between.txt")
    assert (await sandbox.run("cat /tmp/between.txt")).stdout == "kept\n"


async def test_overwrite_replaces_the_whole_file(sandbox: Sandbox) -> None:
    await sandbox.write_file("f.txt", b"a much longer first version")
    await sandbox.write_file("f.txt", b"short")
    assert await sandbox.read_file("f.txt") == b"short"


async def test_empty_file_round_trips(sandbox: Sandbox) -> None:
    await sandbox.write_file("empty", b"")
    assert await sandbox.read_file("empty") == b""
    assert await sandbox.exists("empty")


async def test_list_dir_shows_kinds_and_sizes(sandbox: Sandbox) -> None:
    await sandbox.write_file("d/one.txt", b"123")
    await sandbox.run("mkdir -p d/sub && ln -s one.txt d/link")
    entries = {entry.name: entry for entry in await sandbox.list_dir("d")}
    assert {name: entry.kind for name, entry in entries.items()} == {
        "link": "symlink",
        "one.txt": "file",
        "sub": "directory",
    }
    assert entries["one.txt"].size == 3
    assert entries["one.txt"].path == "/app/d/one.txt"


async def test_exists(sandbox: Sandbox) -> None:
    await sandbox.write_file("here.txt", b"")
    assert await sandbox.exists("/app/here.txt")
    assert await sandbox.exists("/app")
    assert not await sandbox.exists("missing.txt")
    assert not await sandbox.exists("here.txt/below")


async def test_reading_a_missing_file_is_not_found(sandbox: Sandbox) -> None:
    with pytest.raises(NotFoundError, match=r"missing\.txt"):
        await sandbox.read_file("missing.txt")


async def test_reading_a_directory_is_refused(sandbox: Sandbox) -> None:
    await sandbox.run("mkdir -p adir")
    with pytest.raises(IsDirectoryError):
        await sandbox.read_file("adir")


async def test_writing_onto_a_directory_is_refused_and_loses_nothing(sandbox: Sandbox) -> None:
    await sandbox.write_file("adir/inside.txt", b"keep me")
    with pytest.raises(IsDirectoryError):
        await sandbox.write_file("adir", b"data")
    assert await sandbox.read_file("adir/inside.txt") == b"keep me"


async def test_writing_below_a_file_is_an_invalid_path(sandbox: Sandbox) -> None:
    await sandbox.write_file("plain.txt", b"x")
    with pytest.raises(InvalidPathError):
        await sandbox.write_file("plain.txt/child.txt", b"y")


async def test_listing_a_file_or_a_missing_folder_fails_clearly(sandbox: Sandbox) -> None:
    await sandbox.write_file("plain.txt", b"x")
    with pytest.raises(InvalidPathError):
        await sandbox.list_dir("plain.txt")
    with pytest.raises(NotFoundError):
        await sandbox.list_dir("nowhere")


@pytest.mark.parametrize("path", ["", "a\x00b", "/../etc/passwd", "../../x", "x" * 5000])
async def test_malformed_paths_are_refused(sandbox: Sandbox, path: str) -> None:
    with pytest.raises(InvalidPathError):
        await sandbox.write_file(path, b"data")
    with pytest.raises(InvalidPathError):
        await sandbox.read_file(path)


async def test_files_above_the_size_limit_are_refused(provider_factory: ProviderFactory) -> None:
    provider = await provider_factory(limits=ExecutionLimits(max_file_bytes=1000))
    sandbox = await provider.create()
    with pytest.raises(TooLargeError, match=r"\b1000\b"):
        await sandbox.write_file("big", b"x" * 1001)
    assert not await sandbox.exists("big")
    await sandbox.run("head -c 5000 /dev/zero > made-big")
    with pytest.raises(TooLargeError):
        await sandbox.read_file("made-big")
