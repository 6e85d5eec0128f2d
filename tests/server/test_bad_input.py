"""Every bad input the issue lists, through a real MCP client: a tool error whose text names cause and remedy."""

from __future__ import annotations

import asyncio
import shutil
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
from mcp.shared.memory import create_connected_server_and_client_session

from langchain_kubernetes_agent_sandbox import BackendUnavailableError, Sandbox, SandboxProvider
from langchain_kubernetes_agent_sandbox.errors import TOOL_ERROR_META
from langchain_kubernetes_agent_sandbox.providers.local import LocalProvider, disk
from langchain_kubernetes_agent_sandbox.server.config import ServerConfig
from langchain_kubernetes_agent_sandbox.server.runtime import build_server, session_policy
from langchain_kubernetes_agent_sandbox.sessions import SessionRegistry
from tests.server.mcp_calls import Connect, call, data, fail, text_of


async def test_unknown_session_is_not_found_and_says_what_to_do(connect: Connect) -> None:
    async with connect() as client:
        message = await fail(client, "execute", command="true", session_id="s" + "a" * 26)
    assert message.startswith("not_found:")
    assert "list_sessions" in message
    assert "create_session" in message


async def test_closed_session_is_not_found(connect: Connect) -> None:
    async with connect() as client:
        created = await call(client, "create_session")
        session_id = created.structuredContent["session_id"]  # type: ignore[index]
        await call(client, "close_session", session_id=session_id)
        assert (await fail(client, "execute", command="true", session_id=session_id)).startswith("not_found:")
        assert (await fail(client, "close_session", session_id=session_id)).startswith("not_found:")


async def test_another_principals_session_looks_exactly_like_a_missing_one(connect: Connect) -> None:
    async with connect(principal="alice") as alice, connect(principal="bob") as bob:
        created = await call(alice, "create_session")
        session_id = created.structuredContent["session_id"]  # type: ignore[index]
        await call(alice, "upload_file", path="secret.txt", content="alice's", session_id=session_id)
        stolen = await fail(bob, "download_file", path="secret.txt", session_id=session_id)
        missing = await fail(bob, "download_file", path="secret.txt", session_id="s" + "b" * 26)
        assert stolen.replace(session_id, "ID") == missing.replace("s" + "b" * 26, "ID")
        assert (await fail(bob, "close_session", session_id=session_id)).startswith("not_found:")
        listed = (await call(bob, "list_sessions")).structuredContent
        assert listed == {"sessions": []}
        assert (await call(alice, "execute", command="cat secret.txt", session_id=session_id)).structuredContent[
            "stdout"
        ] == "alice's"  # type: ignore[index]


async def test_each_principal_gets_its_own_default_session(connect: Connect) -> None:
    async with connect(principal="alice") as alice, connect(principal="bob") as bob:
        await call(alice, "upload_file", path="mine.txt", content="a")
        result = await call(bob, "execute", command="ls /app")
        assert result.structuredContent["stdout"] == ""  # type: ignore[index]


async def test_a_piece_larger_than_one_call_carries_is_refused_with_the_limit(connect: Connect) -> None:
    async with connect(max_transfer_bytes=1024) as client:
        message = await fail(client, "upload_file", path="big.txt", content="x" * 2000)
        assert message.startswith("invalid_argument: content:")  # the schema's bound: base64 of 1024 bytes
        message = await fail(client, "upload_file", path="big.txt", content="é" * 1000)  # 2000 bytes
        assert message.startswith("too_large:")
        assert "1024 bytes per call" in message
        assert "offset" in message
        message = await fail(client, "download_file", path="big.txt", length=2000)
        assert message.startswith("invalid_argument:")
        assert "1024" in message


@pytest.mark.skipif(disk.unavailable_reason() is not None, reason=f"no disk quota here: {disk.unavailable_reason()}")
async def test_a_full_disk_quota_is_reported_with_the_quota_and_what_to_do(connect: Connect) -> None:
    async with connect(disk_quota_mib=16, max_transfer_bytes=32 * 1024 * 1024) as client:
        filled = data(await call(client, "execute", command="head -c 64M /dev/zero > /app/fill"))
        if filled["state"] == "running":  # detached on a slow disk: the quota is only full once it ended
            filled = data(await call(client, "job_wait", job_id=filled["job_id"], timeout=120))
        assert "No space left on device" in filled["stderr"]
        # Larger than the slack ext4 can give back once delayed allocation settles after the fill.
        message = await fail(client, "upload_file", path="more.txt", content="x" * 2_000_000)
        assert message.startswith("quota_exceeded:")
        assert "disk quota of 16 MiB" in message
        assert "Delete files" in message


async def test_oversized_python_code_is_refused_before_running(connect: Connect) -> None:
    async with connect() as client:
        message = await fail(client, "execute_python", code="#" + "é" * 40_000)
    assert message.startswith("too_large:")
    assert "upload_file" in message


async def test_a_command_that_quoting_makes_too_long_for_one_argument_still_runs(connect: Connect) -> None:
    """Commands are quoted into the shell script that starts them; 30,000 quotes would pass Linux's 128 KiB limit
    on one argument that way, so such a command travels as a file instead of failing."""
    async with connect() as client:
        result = await call(client, "execute", command='printf %s "' + "'" * 30_000 + '" | wc -c')
    assert result.structuredContent is not None
    assert result.structuredContent["stdout"] == "30000\n"


async def test_invalid_base64_is_refused(connect: Connect) -> None:
    async with connect() as client:
        message = await fail(client, "upload_file", path="x.bin", content="not base64!", encoding="base64")
    assert message.startswith("invalid_argument:")
    assert "base64" in message


async def test_binary_content_requested_as_utf8_is_refused_with_the_alternative(connect: Connect) -> None:
    async with connect() as client:
        await call(client, "execute", command="printf '\\377\\376\\000' > raw.bin")
        message = await fail(client, "download_file", path="raw.bin", encoding="utf-8")
    assert message.startswith("invalid_argument:")
    assert "encoding='base64'" in message


@pytest.mark.parametrize(
    ("path", "code"),
    [("../../../etc/passwd", "invalid_path"), ("/usr/bin/planted", "permission_denied"), ("", "invalid_argument")],
)
async def test_paths_outside_what_the_sandbox_allows_are_refused(connect: Connect, path: str, code: str) -> None:
    async with connect() as client:
        message = await fail(client, "upload_file", path=path, content="x")
    assert message.startswith(f"{code}:"), message


async def test_reading_a_missing_file_says_not_found(connect: Connect) -> None:
    async with connect() as client:
        assert (await fail(client, "download_file", path="nope.txt")).startswith("not_found:")


@pytest.mark.parametrize(
    ("timeout", "expected"),
    [(-1, "greater than 0"), (0, "greater than 0"), (5000, "less than or equal to 3600"), (10**7, "less than")],
)
async def test_negative_or_excessive_timeouts_are_refused(connect: Connect, timeout: float, expected: str) -> None:
    async with connect() as client:
        message = await fail(client, "execute", command="true", timeout=timeout)
    assert message.startswith("invalid_argument:")
    assert "timeout" in message
    assert expected in message


async def test_empty_command_is_refused(connect: Connect) -> None:
    async with connect() as client:
        assert (await fail(client, "execute", command="")).startswith("invalid_argument: command")


async def test_a_sandbox_that_died_under_the_default_session_is_reported_then_replaced(
    connect: Connect, local_state_dir: Path
) -> None:
    async with connect() as client:
        first = (await call(client, "execute", command="touch here")).structuredContent["session_id"]  # type: ignore[index]
        for sandbox in await LocalProvider(local_state_dir).list():
            await sandbox.terminate()
        message = await fail(client, "execute", command="ls")
        assert message.startswith("sandbox_gone:")
        assert "next call starts a fresh default session" in message
        again = await call(client, "execute", command="ls")
        assert again.structuredContent["session_id"] != first  # type: ignore[index]
        assert again.structuredContent["stdout"] == ""  # type: ignore[index]


async def test_a_sandbox_that_died_under_a_named_session_says_to_create_another(
    connect: Connect, local_state_dir: Path
) -> None:
    async with connect() as client:
        session_id = (await call(client, "create_session")).structuredContent["session_id"]  # type: ignore[index]
        for sandbox in await LocalProvider(local_state_dir).list():  # its files lost, its record still there
            shutil.rmtree(LocalProvider(local_state_dir).state.mounts(sandbox.id).workspace)
        message = await fail(client, "execute", command="ls", session_id=session_id)
        assert message.startswith("sandbox_gone:")
        assert "create_session" in message


async def test_a_session_closed_through_another_replica_is_not_found_here_too(
    connect: Connect, local_state_dir: Path
) -> None:
    async with connect() as client:
        session_id = (await call(client, "create_session")).structuredContent["session_id"]  # type: ignore[index]
        for sandbox in await LocalProvider(local_state_dir).list():
            await sandbox.terminate()
        message = await fail(client, "execute", command="ls", session_id=session_id)
        assert message.startswith("not_found:")
        assert "list_sessions" in message


class SwitchableProvider(SandboxProvider):
    """The real local provider behind a switch that makes it unreachable, as a cluster outage would."""

    name = "local"

    def __init__(self, inner: SandboxProvider) -> None:
        self.inner = inner
        self.down = False

    def _gate(self) -> None:
        if self.down:
            raise BackendUnavailableError("The sandbox backend did not answer: check that it is running, then retry.")

    async def create(self, **options: Any) -> Sandbox:
        self._gate()
        return await self.inner.create(**options)

    async def get(self, sandbox_id: str) -> Sandbox:
        self._gate()
        return await self.inner.get(sandbox_id)

    async def list(self, labels: Mapping[str, str] | None = None) -> list[Sandbox]:
        self._gate()
        return await self.inner.list(labels)

    async def check(self) -> None:
        self._gate()
        await self.inner.check()


async def test_provider_unreachable_during_a_call_is_reported_and_recovers(local_state_dir: Path) -> None:
    config = ServerConfig(state_dir=local_state_dir, principal="alice")
    provider = SwitchableProvider(LocalProvider(local_state_dir))
    server = build_server(config, SessionRegistry(provider, session_policy(config)))
    async with create_connected_server_and_client_session(server) as client:
        provider.down = True
        message = await fail(client, "execute", command="echo hi")
        assert message.startswith("backend_unavailable:")
        assert "retry" in message
        provider.down = False
        assert (await call(client, "execute", command="echo hi")).structuredContent["stdout"] == "hi\n"  # type: ignore[index]


async def test_session_quota_answers_with_an_error_not_a_hang(connect: Connect) -> None:
    async with connect(max_sessions=2) as client:
        await call(client, "create_session")
        await call(client, "create_session")
        message = await fail(client, "create_session")
        assert message.startswith("quota_exceeded:")
        assert "close_session" in message


async def test_concurrent_run_quota_answers_at_once(connect: Connect) -> None:
    async with connect(max_concurrent_runs=1) as client:
        slow = asyncio.create_task(client.call_tool("execute", {"command": "sleep 2"}))
        await asyncio.sleep(0.5)
        started = time.monotonic()
        message = await fail(client, "execute", command="true")
        assert time.monotonic() - started < 1
        assert message.startswith("quota_exceeded:")
        assert not (await slow).isError


async def test_network_is_refused_unless_the_operator_allows_it(connect: Connect) -> None:
    async with connect() as client:
        message = await fail(client, "create_session", network=True)
    assert message.startswith("permission_denied:")
    assert "--allow-network" in message


async def test_invalid_labels_and_ttls_are_refused(connect: Connect) -> None:
    async with connect(max_idle_timeout=100, idle_timeout=50) as client:
        assert "Label key" in await fail(client, "create_session", labels={"bad key!": "x"})
        assert "ttl_seconds" in await fail(client, "create_session", ttl_seconds=200)


async def test_a_failed_call_carries_its_code_message_and_remedy(connect: Connect) -> None:
    async with connect() as client:
        missing = await client.call_tool("download_file", {"path": "no/such/file"})
        invalid = await client.call_tool("execute", {"command": "true", "timeout": -1})
    assert (missing.isError, invalid.isError) == (True, True)
    assert (missing.structuredContent, invalid.structuredContent) == (None, None)  # it describes success only
    failure = (missing.meta or {})[TOOL_ERROR_META]
    assert failure["code"] == "not_found"
    assert "no/such/file" in failure["message"]
    assert "list_files" in failure["remedy"]
    assert text_of(missing) == f"not_found: {failure['message']}"
    assert (invalid.meta or {})[TOOL_ERROR_META]["code"] == "invalid_argument"
    assert (invalid.meta or {})[TOOL_ERROR_META]["message"].startswith("timeout:")
    assert text_of(invalid).endswith("Fix the argument and call execute again.")
