"""What an MCP client sees of each tool: results as structured content and as text, files that persist."""

from __future__ import annotations

import base64
import hashlib

from mcp.types import ImageContent

from tests.server.mcp_calls import Connect, call, text_of

TOOLS = {
    "execute_python",
    "job_status",
    "job_wait",
    "job_cancel",
    "execute",
    "upload_file",
    "download_file",
    "list_files",
    "create_session",
    "list_sessions",
    "close_session",
    "fork_session",
    "suspend_session",
    "session_info",
    "expose_port",
    "unexpose_port",
}
PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
)


async def test_every_tool_is_described_typed_and_has_an_output_schema(connect: Connect) -> None:
    async with connect() as client:
        tools = {tool.name: tool for tool in (await client.list_tools()).tools}
        assert set(tools) == TOOLS
        for tool in tools.values():
            assert len(tool.description or "") > 60, tool.name
            assert tool.outputSchema is not None, tool.name
        timeout = tools["execute"].inputSchema["properties"]["timeout"]["anyOf"][0]
        assert timeout["exclusiveMinimum"] == 0
        assert "maximum" in timeout
        assert "/app" in tools["execute"].description


async def test_execute_returns_stdout_stderr_and_exit_code_apart(connect: Connect) -> None:
    async with connect() as client:
        result = await call(client, "execute", command="echo out; echo err >&2; exit 3")
        assert result.structuredContent is not None
        assert result.structuredContent["stdout"] == "out\n"
        assert result.structuredContent["stderr"] == "err\n"
        assert result.structuredContent["exit_code"] == 3
        assert text_of(result) == "out\n[stderr]\nerr\n[exit code 3]"


async def test_execute_runs_in_app_by_default_and_in_cwd_when_given(connect: Connect) -> None:
    async with connect() as client:
        assert (await call(client, "execute", command="pwd")).structuredContent["stdout"] == "/app\n"  # type: ignore[index]
        await call(client, "execute", command="mkdir -p sub")
        result = await call(client, "execute", command="pwd", cwd="sub")
        assert result.structuredContent["stdout"] == "/app/sub\n"  # type: ignore[index]


async def test_files_persist_between_calls_of_the_default_session(connect: Connect) -> None:
    async with connect() as client:
        await call(client, "execute_python", code="open('n.txt', 'w').write(str(6 * 7))")
        result = await call(client, "execute", command="cat /app/n.txt")
        assert result.structuredContent["stdout"] == "42"  # type: ignore[index]


async def test_python_traceback_arrives_on_stderr_with_exit_code_1(connect: Connect) -> None:
    async with connect() as client:
        result = await call(client, "execute_python", code="print('before')\n1 / 0\n")
        assert result.structuredContent["stdout"] == "before\n"  # type: ignore[index]
        assert "ZeroDivisionError" in result.structuredContent["stderr"]  # type: ignore[index]
        assert result.structuredContent["exit_code"] == 1  # type: ignore[index]


async def test_python_code_with_quotes_and_unicode_reaches_python_unchanged(connect: Connect) -> None:
    async with connect() as client:
        code = "s = '''it's \"quoted\" $HOME `x` \\\\ é ✓'''\nprint(s)"
        result = await call(client, "execute_python", code=code)
        assert result.structuredContent["stdout"] == 'it\'s "quoted" $HOME `x` \\ é ✓\n'  # type: ignore[index]


async def test_timeout_kills_and_keeps_the_output_so_far(connect: Connect) -> None:
    async with connect() as client:
        result = await call(client, "execute_python", code="import time\nprint('started')\ntime.sleep(30)", timeout=1)
        content = result.structuredContent
        assert content is not None
        assert content["state"] == "timed_out"
        assert content["exit_code"] == 124
        assert content["stdout"] == "started\n"
        assert content["duration_seconds"] < 10
        assert "[timed out: killed after 1 s" in text_of(result)


async def test_long_output_is_cut_in_the_middle_with_a_notice(connect: Connect) -> None:
    async with connect(max_output_bytes=1024) as client:
        result = await call(client, "execute", command="seq 1 20000")
    content = result.structuredContent
    assert content is not None
    assert content["dropped_bytes"] == len("".join(f"{i}\n" for i in range(1, 20001))) - 1024
    assert content["stdout"].startswith("1\n2\n")
    assert content["stdout"].endswith("19999\n20000\n")
    assert "[output truncated:" in text_of(result)


async def test_upload_then_download_round_trips_text_with_size_and_sha256(connect: Connect) -> None:
    async with connect() as client:
        uploaded = await call(client, "upload_file", path="data/in.csv", content="a,b\n1,2\n")
        assert uploaded.structuredContent == {
            "session_id": uploaded.structuredContent["session_id"],  # type: ignore[index]
            "path": "/app/data/in.csv",
            "size": 8,
            "sha256": hashlib.sha256(b"a,b\n1,2\n").hexdigest(),
        }
        downloaded = await call(client, "download_file", path="/app/data/in.csv")
        assert downloaded.structuredContent["content"] == "a,b\n1,2\n"  # type: ignore[index]
        assert downloaded.structuredContent["encoding"] == "utf-8"  # type: ignore[index]
        assert text_of(downloaded).endswith("a,b\n1,2\n")


async def test_binary_upload_and_download_use_base64(connect: Connect) -> None:
    async with connect() as client:
        blob = bytes(range(256)) * 4
        await call(client, "upload_file", path="blob.bin", content=base64.b64encode(blob).decode(), encoding="base64")
        assert (await call(client, "execute", command="wc -c < blob.bin")).structuredContent["stdout"] == "1024\n"  # type: ignore[index]
        downloaded = await call(client, "download_file", path="blob.bin")
        assert downloaded.structuredContent["encoding"] == "base64"  # type: ignore[index]
        assert base64.b64decode(downloaded.structuredContent["content"]) == blob  # type: ignore[index]
        assert downloaded.structuredContent["sha256"] == hashlib.sha256(blob).hexdigest()  # type: ignore[index]


async def test_images_come_back_as_image_content(connect: Connect) -> None:
    async with connect() as client:
        await call(client, "upload_file", path="dot.png", content=base64.b64encode(PNG).decode(), encoding="base64")
        downloaded = await call(client, "download_file", path="dot.png")
        images = [block for block in downloaded.content if isinstance(block, ImageContent)]
        assert len(images) == 1
        assert images[0].mimeType == "image/png"
        assert base64.b64decode(images[0].data) == PNG


async def test_list_files_shows_kinds_sizes_and_respects_max_entries(connect: Connect) -> None:
    async with connect() as client:
        await call(client, "execute", command="mkdir -p d && printf 12345 > d/five && touch d/a d/b")
        listing = await call(client, "list_files", path="d", max_entries=2)
        content = listing.structuredContent
        assert content is not None
        assert content["path"] == "/app/d"
        assert content["total"] == 3
        assert content["truncated"] is True
        assert [entry["name"] for entry in content["entries"]] == ["a", "b"]
        full = (await call(client, "list_files", path="/app/d")).structuredContent
        assert {entry["name"]: entry["size"] for entry in full["entries"]}["five"] == 5  # type: ignore[index]
