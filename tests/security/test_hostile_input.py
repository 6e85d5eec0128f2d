"""Hostile input, property-based: paths (unicode, spaces, `..`, very long, NUL), contents (binary, empty, large)
and command strings (quotes, newlines, heredocs, shell metacharacters). What is written is read back byte for
byte on every backend, and a refusal is always one of the typed sandbox errors.

Backends: each provider directly (local, Kubernetes on the imitation cluster) and the MCP tools in memory."""

from __future__ import annotations

import shlex

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from langchain_kubernetes_agent_sandbox import InvalidPathError, Sandbox, SandboxError
from tests.security.mcp_backend import McpBackend

NAME = st.text(st.characters(exclude_categories=("Cs",), exclude_characters="/\x00"), min_size=1, max_size=40)
SEGMENT = st.one_of(NAME, st.sampled_from(["..", ".", " ", "a b", "-rf", "$(id)", "`id`", "*", "x" * 255, "y" * 300]))
RELATIVE = st.lists(SEGMENT, min_size=1, max_size=4).map("/".join).filter(lambda path: not path.startswith("../.."))
"""Paths below /app/h/, with `..` that may climb as far as /app: outside /app and /tmp see the xfail below."""
CONTENT = st.one_of(st.binary(max_size=4096), st.just(b""), st.text(max_size=512).map(str.encode))
TEXT = st.text(st.characters(exclude_categories=("Cs",), exclude_characters="\x00"), max_size=300)
SHELLISH = st.sampled_from(
    [
        "'",
        '"',
        "\\",
        "\n",
        "$HOME",
        "$(echo x)",
        "`echo y`",
        "; echo z",
        "&&",
        "|",
        ">",
        "<<EOF",
        "EOF",
        "%s",
        "\t",
        "\r",
        "#",
    ]
)
COMMAND_TEXT = st.one_of(TEXT, st.lists(st.one_of(SHELLISH, TEXT), max_size=8).map("".join))


def is_kubernetes(sandbox: Sandbox) -> bool:
    return type(sandbox).__name__.startswith("Kubernetes")


async def write_then_read(sandbox: Sandbox | McpBackend, path: str, data: bytes) -> None:
    try:
        await sandbox.write_file(path, data)
    except SandboxError:
        return  # refused, as a typed error: nothing more to check
    assert await sandbox.read_file(path) == data


@given(relative=RELATIVE, data=CONTENT)
@example(relative="dir with spaces/ünïcødé 文件.txt", data=b"\x00\xff binary \r\n")
@example(relative="../planted", data=b"x")
@example(relative="a/../b/./c", data=b"")
async def test_files_round_trip_or_are_refused_typed(sandbox: Sandbox, relative: str, data: bytes) -> None:
    await write_then_read(sandbox, f"/app/h/{relative}", data)


@given(relative=RELATIVE, data=CONTENT)
async def test_files_round_trip_or_are_refused_typed_over_mcp(
    mcp: McpBackend, sandbox: Sandbox, relative: str, data: bytes
) -> None:
    await write_then_read(mcp, f"/app/h/{relative}", data)


@pytest.mark.parametrize("name", ["\x7f", "tab\there", '"', 'say "hi".txt', "50% off", "back\\slash"])
async def test_names_with_control_characters_or_quotes(sandbox: Sandbox, name: str) -> None:
    await sandbox.write_file(f"/app/q/{name}", b"quoted")
    assert await sandbox.read_file(f"/app/q/{name}") == b"quoted"
    assert [entry.name for entry in await sandbox.list_dir("/app/q")] == [name]


@pytest.mark.parametrize("path", ["/app/nul\x00byte", "nul\x00", "/tmp/\x00"])
async def test_a_nul_in_a_path_is_a_typed_refusal(sandbox: Sandbox, mcp: McpBackend, path: str) -> None:
    for backend in (sandbox, mcp):
        with pytest.raises(SandboxError):
            await backend.write_file(path, b"x")
        with pytest.raises(SandboxError):
            await backend.read_file(path)


@pytest.mark.parametrize("size", [0, 1, 3 * 1024 * 1024 + 7])
async def test_empty_and_large_binary_files_round_trip(sandbox: Sandbox, mcp: McpBackend, size: int) -> None:
    data = bytes(range(256)) * (size // 256) + b"\xfe" * (size % 256)
    for backend in (sandbox, mcp):
        await backend.write_file("/app/big.bin", data)
        assert await backend.read_file("/app/big.bin") == data


@given(text=COMMAND_TEXT)
@example(text='it\'s "quoted" $(rm -rf /) `id` ; | & > < \\ \n\nnew line\r\n\t')
async def test_command_strings_reach_the_shell_unchanged(sandbox: Sandbox, mcp: McpBackend, text: str) -> None:
    for backend in (sandbox, mcp):
        result = await backend.run(f"printf '%s' {shlex.quote(text)}")
        assert (result.stdout, result.exit_code) == (text, 0)


def _dash_keeps_heredoc(text: str) -> bool:
    """Debian's dash (0.5.12) drops the first non-ASCII byte after a line starts like the here-document's
    delimiter ("K\u00e9" under KAS_END comes out as "K" and a stray byte): a shell bug no server can undo, so
    such lines are left out."""
    return "KAS_END" not in text and not any(line.startswith("K") for line in text.split("\n"))


@given(text=COMMAND_TEXT.filter(_dash_keeps_heredoc))
async def test_heredocs_pass_through_unchanged(sandbox: Sandbox, mcp: McpBackend, text: str) -> None:
    for backend in (sandbox, mcp):
        result = await backend.run(f"cat <<'KAS_END'\n{text}\nKAS_END")
        assert (result.stdout, result.exit_code) == (text + "\n", 0)


@given(text=COMMAND_TEXT)
async def test_python_source_reaches_python_unchanged(mcp: McpBackend, text: str) -> None:
    output = await mcp.execute_python(f"import sys\nsys.stdout.write({text!r})")
    assert output == text


async def test_a_nul_in_a_command_is_a_typed_refusal(sandbox: Sandbox, mcp: McpBackend) -> None:
    for backend in (sandbox, mcp):
        with pytest.raises(SandboxError):
            await backend.run("echo a\x00b")


@pytest.mark.parametrize("path", ["/app/" + "n" * 256, "/tmp/" + "é" * 128 + "/x", "d/" + "文" * 86])
async def test_a_name_longer_than_linux_allows_is_an_invalid_path(sandbox: Sandbox, mcp: McpBackend, path: str) -> None:
    for backend in (sandbox, mcp):
        with pytest.raises(SandboxError, match=r"invalid_path|longer than 255 bytes"):
            await backend.write_file(path, b"x")
    with pytest.raises(InvalidPathError, match="longer than 255 bytes"):
        await sandbox.read_file(path)
    await sandbox.write_file("/app/" + "n" * 255, b"the longest name fits")
    assert await sandbox.read_file("/app/" + "n" * 255) == b"the longest name fits"


@pytest.mark.parametrize("path", ["/0", "/opt/planted"])
async def test_a_file_outside_app_and_tmp_is_kept_or_refused(sandbox: Sandbox, path: str) -> None:
    await write_then_read(sandbox, path, b"kept or refused")
    result = await sandbox.run(f"cat {path} 2>/dev/null || echo refused")
    assert result.stdout in ("kept or refused", "refused\n")
