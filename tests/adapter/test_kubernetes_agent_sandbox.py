"""The 0.2.x class on the imitation cluster: the seed README's calls keep working, and its bugs are gone."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import kubernetes.config
import pytest
from deepagents import create_deep_agent
from k8s_agent_sandbox import SandboxClient
from k8s_agent_sandbox.models import SandboxDirectConnectionConfig
from langchain_core.messages import HumanMessage

from langchain_kubernetes_agent_sandbox.adapter import KubernetesAgentSandbox
from langchain_kubernetes_agent_sandbox.testing import FakeCluster
from tests.adapter.sandbox_suite import StandardSandboxSuite
from tests.adapter.scripted_model import call, scripted, tool_results


@pytest.fixture(scope="module")
def client(fake_cluster_session: FakeCluster) -> Any:
    api = kubernetes.config.new_client_from_config(config_file=fake_cluster_session.kubeconfig)
    return SandboxClient(
        connection_config=SandboxDirectConnectionConfig(api_url=fake_cluster_session.router_url), api_client=api
    )


@pytest.fixture
def seed_sandbox(client: Any, fake_cluster_session: FakeCluster) -> Iterator[KubernetesAgentSandbox]:
    """As the 0.2.x README: wrap a handle from the client, terminate it through `.sandbox` at the end."""
    sandbox = KubernetesAgentSandbox(sandbox=client.create_sandbox(fake_cluster_session.pool), timeout=300)
    yield sandbox
    sandbox.sandbox.terminate()
    sandbox.close()


def test_the_seed_calls_work_and_the_caller_terminates_the_handle(
    seed_sandbox: KubernetesAgentSandbox, fake_cluster_session: FakeCluster
) -> None:
    assert seed_sandbox.id == seed_sandbox.sandbox.sandbox_id
    [uploaded] = seed_sandbox.upload_files([("/app/data.csv", b"a,b\n1,2\n")])
    assert uploaded.error is None
    result = seed_sandbox.execute("wc -l < /app/data.csv")
    assert (result.output, result.exit_code) == ("2\n", 0)
    [downloaded] = seed_sandbox.download_files(["/app/data.csv"])
    assert downloaded.content == b"a,b\n1,2\n"
    claim = seed_sandbox.sandbox.claim_name
    seed_sandbox.sandbox.terminate()
    assert claim not in [c["metadata"]["name"] for c in fake_cluster_session.claims()]


def test_stderr_reaches_the_agent_beside_stdout(seed_sandbox: KubernetesAgentSandbox) -> None:
    result = seed_sandbox.execute("echo out; echo err >&2; exit 2")
    assert (result.output, result.exit_code) == ("out\nerr\n", 2)


def test_commands_run_through_a_shell(seed_sandbox: KubernetesAgentSandbox) -> None:
    result = seed_sandbox.execute("echo one two | wc -w && cd /tmp && pwd")
    assert result.output == "2\n/tmp\n"


def test_app_paths_stay_app_paths_and_other_absolute_paths_work(seed_sandbox: KubernetesAgentSandbox) -> None:
    uploads = seed_sandbox.upload_files([("/app/x.txt", b"in app"), ("/tmp/deep/y.txt", b"in tmp")])
    assert [u.error for u in uploads] == [None, None]
    result = seed_sandbox.execute("cat /app/x.txt /tmp/deep/y.txt; test -e /app/app/x.txt || echo ' no /app/app'")
    assert result.output == "in appin tmp no /app/app\n"


def test_a_timeout_kills_the_command_and_keeps_partial_output(seed_sandbox: KubernetesAgentSandbox) -> None:
    result = seed_sandbox.execute("echo started; sleep 30; echo never", timeout=2)
    assert result.exit_code == 124
    assert result.output.startswith("started\n")
    assert "never" not in result.output
    assert "Error: Command timed out after" in result.output


async def test_async_methods_and_a_deep_agent_run(seed_sandbox: KubernetesAgentSandbox) -> None:
    [uploaded] = await seed_sandbox.aupload_files([("/app/n.txt", b"20\n")])
    assert uploaded.error is None
    agent = create_deep_agent(
        model=scripted([call("execute", "c", command="python3 -c 'print(int(open(\"/app/n.txt\").read()) + 22)'")]),
        backend=seed_sandbox,
    )
    result = await agent.ainvoke({"messages": [HumanMessage("go")]})
    assert tool_results(result["messages"])["c"].content.startswith("42\n")
    [downloaded] = await seed_sandbox.adownload_files(["/app/n.txt"])
    assert downloaded.content == b"20\n"


class TestKubernetesAgentSandboxConformance(StandardSandboxSuite):
    @property
    def sandbox_root_dir(self) -> str:
        """Under /app, served by the runtime's file API (see test_conformance_kubernetes.py)."""
        return "/app/test_sandbox_ops/"

    @pytest.fixture(scope="class")
    def sandbox(self, client: Any, fake_cluster_session: FakeCluster) -> Iterator[KubernetesAgentSandbox]:
        sandbox = KubernetesAgentSandbox(sandbox=client.create_sandbox(fake_cluster_session.pool))
        yield sandbox
        sandbox.sandbox.terminate()
        sandbox.close()
