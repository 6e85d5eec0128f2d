"""What the tools say and allow is what the server runs with: descriptions and argument bounds follow the
settings, and the defaults shown in `serve --help` and the README are the code's own."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from langchain_kubernetes_agent_sandbox.cli.main import build_parser
from langchain_kubernetes_agent_sandbox.limits import ExecutionLimits
from langchain_kubernetes_agent_sandbox.providers.kubernetes import KubernetesConfig
from langchain_kubernetes_agent_sandbox.providers.local.limits import ResourceLimits
from langchain_kubernetes_agent_sandbox.server.config import BY_NAME, ServerConfig, settings_table
from langchain_kubernetes_agent_sandbox.server.tool_limits import ToolLimits
from langchain_kubernetes_agent_sandbox.sessions import SessionPolicy
from tests.server.mcp_calls import Connect, fail

README = Path(__file__).resolve().parents[2] / "README.md"


def bound(schema: dict[str, Any], name: str) -> float:
    """The `maximum` of an argument, optional or not."""
    argument = schema["properties"][name]
    return next(choice["maximum"] for choice in [argument, *argument.get("anyOf", [])] if "maximum" in choice)


async def test_descriptions_and_bounds_state_the_servers_settings(connect: Connect) -> None:
    settings = {"detach_after": 7, "max_timeout": 900, "default_timeout": 100, "max_idle_timeout": 7200}
    async with connect(**settings, max_call_output_bytes=500_000, max_transfer_bytes=65536) as client:
        tools = {tool.name: tool for tool in (await client.list_tools()).tools}
        execute = tools["execute"]
        assert "after 7 s becomes a job" in str(execute.description)
        assert "Omit for 100 s" in execute.inputSchema["properties"]["timeout"]["description"]
        assert bound(execute.inputSchema, "timeout") == 900
        assert bound(execute.inputSchema, "max_output_bytes") == 500_000
        assert bound(tools["create_session"].inputSchema, "ttl_seconds") == 7200
        assert bound(tools["download_file"].inputSchema, "length") == 65536
        assert "(65536 bytes)" in str(tools["upload_file"].description)
        refused = await fail(client, "execute", command="true", timeout=901)
        assert refused.startswith("invalid_argument: timeout:")


def test_the_servers_defaults_are_those_of_the_dataclasses_that_own_them() -> None:
    config, tools, policy, execution = ServerConfig(principal="p"), ToolLimits(), SessionPolicy(), ExecutionLimits()
    assert (config.max_output_bytes, config.max_call_output_bytes, config.max_transfer_bytes) == (
        tools.output_bytes,
        tools.max_call_output_bytes,
        tools.max_transfer_bytes,
    )
    assert (config.idle_timeout, config.max_idle_timeout, config.max_lifetime, config.max_sessions) == (
        policy.idle_timeout,
        policy.max_idle_timeout,
        policy.max_lifetime,
        policy.max_sessions,
    )
    assert (config.default_timeout, config.max_timeout) == (execution.default_timeout, execution.max_timeout)
    assert BY_NAME["cpu_limit"].default == ResourceLimits().cpus
    assert BY_NAME["router_timeout"].default == KubernetesConfig.__dataclass_fields__["proxy_timeout"].default


@pytest.mark.parametrize("name", ["idle_timeout", "max_output_bytes", "detach_after", "router_timeout", "port"])
def test_serve_help_shows_each_default(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        build_parser().parse_args(["serve", "--help"])
    text = re.sub(r"\s+", " ", capsys.readouterr().out)
    default = BY_NAME[name].default
    shown = f"{default:g}" if isinstance(default, float) else str(default)
    assert f"(default {shown})" in text


def test_the_readmes_configuration_table_is_the_codes() -> None:
    readme = README.read_text()
    table = readme.split("<!-- settings:start -->\n", 1)[1].split("<!-- settings:end -->", 1)[0]
    assert table == settings_table(), "regenerate the README's table from config.settings_table()"
