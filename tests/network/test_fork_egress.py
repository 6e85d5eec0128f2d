"""A fork keeps its source's egress: the narrowed rules a session was created with, no more."""

from __future__ import annotations

from pathlib import Path

from tests.server.mcp_calls import call, data

from .conftest import WebServer
from .test_sessions import server


async def test_a_fork_reaches_what_its_source_may_and_nothing_more(local_state_dir: Path, web: WebServer) -> None:
    (web.root / "hello.txt").write_text("hello")
    curl = "curl -s -w ' %{http_code}' "
    async with server(local_state_dir, web) as (client, _):
        source = data(await call(client, "create_session", network=[f"files.test:{web.port}"]))["session_id"]
        forked = data(await call(client, "fork_session", session_id=source))
        fork = forked["session_id"]
        allowed = data(
            await call(client, "execute", session_id=fork, command=curl + web.url("files.test", "hello.txt"))
        )
        narrowed = data(await call(client, "execute", session_id=fork, command=curl + web.url("pkgs.test")))
    assert (forked["network"], forked["reachable"]) == (True, [f"files.test:{web.port}"])
    assert allowed["stdout"] == "hello 200"
    assert narrowed["stdout"].endswith(" 403")
