"""fork_session: a new session of the same principal that starts with a copy of a session's files, independent from
then on, within the session quota and the fork size limit. Through a real MCP client on the local provider, the
imitation cluster and the real control plane."""

from __future__ import annotations

from mcp import ClientSession

from tests.server.mcp_calls import call, data, fail
from tests.server.providers import Open


async def stdout(client: ClientSession, command: str, session_id: str) -> str:
    result = data(await call(client, "execute", command=command, session_id=session_id))
    assert result["exit_code"] == 0, result
    return str(result["stdout"])


async def session_ids(client: ClientSession) -> set[str]:
    return {session["session_id"] for session in data(await call(client, "list_sessions"))["sessions"]}


async def test_a_fork_has_the_files_labels_and_idle_timeout_and_stays_independent_both_ways(
    provider_client: Open,
) -> None:
    async with provider_client() as client:
        source = data(await call(client, "create_session", ttl_seconds=600, labels={"task": "t1"}))["session_id"]
        await call(client, "upload_file", path="/app/notes.txt", content="first", session_id=source)
        await stdout(client, "mkdir -p deep/er && printf x > deep/er/leaf && ln -s notes.txt link", source)
        forked = data(await call(client, "fork_session", session_id=source))
        assert forked["forked_from"] == source
        fork = forked["session_id"]
        assert fork != source
        assert (forked["labels"], forked["idle_timeout_seconds"], forked["default"]) == ({"task": "t1"}, 600, False)
        assert await stdout(client, "cat notes.txt deep/er/leaf link", fork) == "firstxfirst"

        await call(client, "upload_file", path="/app/notes.txt", content="changed in the fork", session_id=fork)
        await stdout(client, "rm deep/er/leaf && echo new > only-fork", fork)
        await stdout(client, "echo new > only-source", source)
        assert (
            await stdout(client, "cat notes.txt deep/er/leaf; echo; ls", source)
            == "firstx\ndeep\nlink\nnotes.txt\nonly-source\n"
        )
        assert await stdout(client, "ls -R", fork) == (
            ".:\ndeep\nlink\nnotes.txt\nonly-fork\n\n./deep:\ner\n\n./deep/er:\n"
        )
        assert {source, fork} <= await session_ids(client)


async def test_a_fork_runs_none_of_the_sources_processes_and_starts_a_fresh_kernel(provider_client: Open) -> None:
    """A fork of a session being written to: the copy is taken while the writer runs, which goes on in the source
    only."""
    async with provider_client() as client:
        source = data(await call(client, "create_session"))["session_id"]
        await call(client, "execute_python", code="kept = 41", session_id=source)
        writer = "i=0; while [ $i -lt 100000 ]; do echo $i >> log; i=$((i+1)); sleep 0.01; done"
        job = data(await call(client, "execute", command=writer, session_id=source, background=True, timeout=60))
        await stdout(client, "while [ ! -s log ]; do sleep 0.05; done", source)
        fork = data(await call(client, "fork_session", session_id=source))["session_id"]

        lines = await stdout(client, "wc -l < log", fork)
        assert int(lines) >= 1
        await stdout(client, "sleep 0.5", fork)
        assert await stdout(client, "wc -l < log", fork) == lines, "something writes the fork's copy"
        assert int(await stdout(client, "sleep 0.3; wc -l < log", source)) > int(lines)
        cell = data(await call(client, "execute_python", code="kept", session_id=fork))
        assert cell["error"] == "NameError: name 'kept' is not defined"
        assert data(await call(client, "execute_python", code="kept", session_id=source))["value"] == "41"
        await call(client, "job_cancel", job_id=job["job_id"], session_id=source)


async def test_a_fork_past_the_session_quota_is_refused_and_makes_nothing(provider_client: Open) -> None:
    async with provider_client(max_sessions=2) as client:
        source = data(await call(client, "create_session"))["session_id"]
        await call(client, "upload_file", path="/app/a.txt", content="a", session_id=source)
        fork = data(await call(client, "fork_session", session_id=source))["session_id"]
        refused = await fail(client, "fork_session", session_id=source)
        assert refused.startswith("quota_exceeded:")
        assert "max_sessions" in refused
        assert await session_ids(client) == {source, fork}


async def test_a_workspace_over_the_fork_limit_is_refused_and_makes_nothing(provider_client: Open) -> None:
    async with provider_client(max_fork_mib=1) as client:
        source = data(await call(client, "create_session"))["session_id"]
        await stdout(client, "head -c 3000000 /dev/zero > big", source)
        refused = await fail(client, "fork_session", session_id=source)
        assert refused.startswith("too_large:")
        assert "max_fork_mib" in refused
        assert await session_ids(client) == {source}
        assert await stdout(client, "wc -c < big", source) == "3000000\n"


async def test_another_principal_cannot_fork_someone_elses_session(provider_client: Open) -> None:
    async with provider_client("alice") as alice:
        source = data(await call(alice, "create_session"))["session_id"]
        await call(alice, "upload_file", path="/app/secret.txt", content="alice's", session_id=source)
    async with provider_client("bob") as bob:
        assert (await fail(bob, "fork_session", session_id=source)).startswith("not_found:")
        assert await session_ids(bob) == set()


async def test_a_sparse_file_is_forked_sparse_without_streaming_its_holes(provider_client: Open) -> None:
    """A 900 MiB file of holes, far over the fork limit if its holes were copied, costs the fork nothing."""
    async with provider_client(max_fork_mib=16) as client:
        source = data(await call(client, "create_session"))["session_id"]
        await stdout(client, "truncate -s 900M holes && printf end >> holes", source)
        fork = data(await call(client, "fork_session", session_id=source))["session_id"]
        assert await stdout(client, "wc -c < holes; tail -c 3 holes; echo; du -k holes | cut -f1", fork) in (
            f"{900 * 1024 * 1024 + 3}\nend\n{kib}\n" for kib in (4, 8, 12, 16)
        )
