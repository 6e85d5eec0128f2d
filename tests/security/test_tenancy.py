"""Tenancy over HTTP with two tokens: a principal cannot list, use, close or even detect another principal's
sessions through any tool; the answer for someone else's session is the answer for one that never existed."""

from __future__ import annotations

from pathlib import Path

from langchain_kubernetes_agent_sandbox.server.config import ServerConfig
from tests.reliability.workload import text_of
from tests.server.http_serving import http_server, mcp_client

ALICE, BOB = "alice-token-tenancy-0123456789", "bob-token-tenancy-0123456789ab"
SESSION_TOOLS = {
    "execute": {"command": "cat /app/secret.txt"},
    "execute_python": {"code": "print(open('/app/secret.txt').read())"},
    "upload_file": {"path": "/app/secret.txt", "content": "overwritten by bob"},
    "download_file": {"path": "/app/secret.txt"},
    "list_files": {"path": "/app"},
    "session_info": {},
    "close_session": {},
}


async def test_another_principals_sessions_cannot_be_listed_used_closed_or_detected(
    local_state_dir: Path, tmp_path: Path
) -> None:
    tokens = tmp_path / "tokens"
    tokens.write_text(f"{ALICE} alice\n{BOB} bob\n")
    config = ServerConfig.model_validate({"state_dir": local_state_dir, "transport": "http", "token_file": tokens})
    async with http_server(config) as url:
        async with mcp_client(url, ALICE) as alice:
            named = (await alice.call_tool("create_session", {})).structuredContent["session_id"]  # type: ignore[index]
            gone = (await alice.call_tool("create_session", {})).structuredContent["session_id"]  # type: ignore[index]
            await alice.call_tool("close_session", {"session_id": gone})
            default = (await alice.call_tool("execute", {"command": "true"})).structuredContent["session_id"]  # type: ignore[index]
            for session_id in (named, default):
                await alice.call_tool(
                    "upload_file", {"path": "/app/secret.txt", "content": "alice's", "session_id": session_id}
                )
        never = "s" + "a" * (len(named) - 1)
        async with mcp_client(url, BOB) as bob:
            assert (await bob.call_tool("list_sessions", {})).structuredContent == {"sessions": []}
            for tool, arguments in SESSION_TOOLS.items():
                answers = {}
                for label, session_id in {
                    "alice's": named,
                    "alice's default": default,
                    "closed": gone,
                    "never": never,
                }.items():
                    result = await bob.call_tool(tool, {**arguments, "session_id": session_id})
                    assert result.isError, f"bob's {tool} on {label} session succeeded"
                    answers[label] = text_of(result).replace(session_id, "<id>")
                assert answers["never"].startswith("not_found:"), answers
                assert set(answers.values()) == {answers["never"]}, f"{tool} tells sessions apart: {answers}"
            own = await bob.call_tool("execute", {"command": "cat /app/secret.txt; ls /app"})
            assert own.structuredContent["session_id"] not in (named, default)  # type: ignore[index]
            assert "alice's" not in text_of(own)
        async with mcp_client(url, ALICE) as alice:
            listed = (await alice.call_tool("list_sessions", {})).structuredContent["sessions"]  # type: ignore[index]
            assert sorted(entry["session_id"] for entry in listed) == sorted([named, default])
            for session_id in (named, default):
                read = await alice.call_tool("download_file", {"path": "/app/secret.txt", "session_id": session_id})
                assert read.structuredContent["content"] == "alice's"  # type: ignore[index]
