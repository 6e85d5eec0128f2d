"""The command wrapper a shell-less runtime receives: fewest processes, exact quoting, variables, the limit."""

from __future__ import annotations

import shlex
from collections.abc import AsyncIterator

import pytest

from langchain_kubernetes_agent_sandbox import Sandbox
from langchain_kubernetes_agent_sandbox.providers.kubernetes import KubernetesConfig, KubernetesProvider, commands
from langchain_kubernetes_agent_sandbox.testing import FakeCluster


@pytest.fixture
async def sandbox(fake_cluster: FakeCluster) -> AsyncIterator[Sandbox]:
    """A sandbox whose commands go through the wrapper, one `/execute` request each (no agent)."""
    config = KubernetesConfig(
        warm_pool=fake_cluster.pool,
        api_url=fake_cluster.router_url,
        kubeconfig=fake_cluster.kubeconfig,
        agent_port=None,
    )
    provider = KubernetesProvider(config)
    created = await provider.create()
    yield created
    await created.terminate()
    await provider.aclose()


def test_the_runtime_execs_timeout_which_runs_one_shell() -> None:
    argv = shlex.split(commands.wrap("echo 'a b' | wc -c", 12.5, "/app/my dir", {"GREETING": "it's"}))
    assert argv[:6] == ["timeout", "-s", "KILL", "12.5", "/bin/sh", "-c"]
    assert argv[6] == "cd '/app/my dir' || exit 1; export GREETING='it'\"'\"'s'; echo 'a b' | wc -c"
    assert commands.seconds(1_000_000) == "1000000"


def test_names_the_shell_cannot_export_go_through_env() -> None:
    argv = shlex.split(commands.wrap("true", 5, "/app", {"A-B": "1", "IFS": ":", "OK": "2"}))
    assert argv[:7] == ["timeout", "-s", "KILL", "5", "env", "A-B=1", "IFS=:"]
    assert argv[7:9] == ["/bin/sh", "-c"]
    assert "export OK=2" in argv[9]


async def test_quoting_variables_and_directory_survive_the_wrapper(sandbox: Sandbox) -> None:
    odd = 'it\'s "quoted" $HOME `date` \\ ; | & \n second line'
    await sandbox.run("mkdir -p '/app/a dir'")
    result = await sandbox.run(
        'printf "%s|%s|%s" "$ODD" "$EMPTY" "$PWD"', cwd="/app/a dir", env={"ODD": odd, "EMPTY": ""}
    )
    assert result.stdout == f"{odd}||/app/a dir"


async def test_comments_here_documents_and_exit_codes_are_the_commands_own(sandbox: Sandbox) -> None:
    assert (await sandbox.run("echo one # a comment")).stdout == "one\n"
    assert (await sandbox.run("cat <<EOF\nfrom a here-document\nEOF")).stdout == "from a here-document\n"
    assert (await sandbox.run("exit 7")).exit_code == 7
    assert (await sandbox.run("for x in 1 2; do echo $x; done; (exit 3)")).exit_code == 3
    missing = await sandbox.run("true", cwd="/app/does-not-exist")
    assert missing.exit_code != 0


async def test_the_limit_kills_in_the_pod_and_answers_124(sandbox: Sandbox) -> None:
    result = await sandbox.run("echo started; sleep 30", timeout=1)
    assert result.timed_out
    assert result.exit_code == 124
    assert "started" in result.stdout
