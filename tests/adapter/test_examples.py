"""The README's deep-agent examples run as written (with a scripted model instead of a hosted one)."""

from __future__ import annotations

import importlib.util
import re
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import kubernetes.config
import pytest
from k8s_agent_sandbox import SandboxClient
from k8s_agent_sandbox.models import SandboxDirectConnectionConfig
from langchain_core.messages import ToolMessage

from langchain_kubernetes_agent_sandbox.providers.local import LocalProvider
from langchain_kubernetes_agent_sandbox.testing import FakeCluster
from tests.adapter.scripted_model import ScriptedModel, call, scripted
from tests.adapter.server_process import serve_http

ROOT = Path(__file__).resolve().parents[2]


def example(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"example_{name}", ROOT / "examples" / f"{name}.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def told(model: ScriptedModel) -> list[str]:
    """The tool results the model read, in order."""
    return [str(message.content) for message in model.seen if isinstance(message, ToolMessage)]


@pytest.fixture(scope="module")
def server_url() -> Iterator[str]:
    with serve_http() as url:
        yield url


async def test_deep_agent_backend_example(state_dir: str) -> None:
    model = scripted(
        [
            call(
                "write_file",
                "w",
                file_path="/app/fib.py",
                content="a, b = 0, 1\nfor _ in range(20): a, b = b, a + b\nprint(a)\n",
            ),
            call("execute", "x", command="python3 /app/fib.py"),
        ],
        final="fib(20) is 6765",
    )
    assert await example("deep_agent_backend").run(model, state_dir) == "fib(20) is 6765"
    assert told(model)[-1] == "6765\n\n[Command succeeded with exit code 0]"


async def test_per_run_python_tool_example(state_dir: str) -> None:
    model = scripted(
        [
            call("write_file", "w", file_path="/data.txt", content="3\n4\n"),
            call("execute_python", "p", code="print(sum(int(n) for n in open('/app/data.txt')))"),
        ],
        final="7",
    )
    provider = LocalProvider(state_dir)
    assert await example("per_run_python_tool").run(model, provider) == "7"
    assert told(model)[-1].startswith("7\n")
    assert await provider.list() == []


async def test_mcp_backend_example(server_url: str) -> None:
    model = scripted([call("execute", "v", command="python3 --version")], final="3.x")
    assert await example("mcp_backend").run(model, server_url) == "3.x"
    assert re.match(r"Python 3\.\d+", told(model)[-1])


def test_kubernetes_backend_example(fake_cluster_session: FakeCluster) -> None:
    api = kubernetes.config.new_client_from_config(config_file=fake_cluster_session.kubeconfig)
    client: Any = SandboxClient(
        connection_config=SandboxDirectConnectionConfig(api_url=fake_cluster_session.router_url), api_client=api
    )
    model = scripted([call("execute", "c", command="nproc")], final="counted")
    assert example("kubernetes_backend").run(model, client, fake_cluster_session.pool) == "counted"
    assert told(model)[-1].endswith("[Command succeeded with exit code 0]")
    assert fake_cluster_session.claims() == []


def test_readme_code_is_taken_from_the_tested_examples() -> None:
    section = (ROOT / "README.md").read_text().split("## Deep agents", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```python\n(.*?)```", section, re.S)
    sources = [path.read_text() for path in (ROOT / "examples").glob("*.py")]
    assert len(blocks) >= 4
    for block in blocks:
        assert any(block in source for source in sources), f"README block not in examples/:\n{block}"
