"""The command line: every subcommand explains itself, and `python -m` is the same program."""

from __future__ import annotations

import argparse
import subprocess
import sys

import pytest

from langchain_kubernetes_agent_sandbox.cli.main import build_parser


def subcommand_names() -> list[str]:
    parser = build_parser()
    actions = [action for action in parser._actions if isinstance(action, argparse._SubParsersAction)]
    return sorted(actions[0].choices)


def test_the_main_subcommands_exist() -> None:
    assert {"demo", "serve"} <= set(subcommand_names())


@pytest.mark.parametrize("name", subcommand_names())
def test_every_subcommand_has_help_that_says_what_it_does(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        build_parser().parse_args([name, "--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    assert text.startswith(f"usage: kubernetes-agent-sandbox {name}")
    description = text.split("\n\n")[1]
    assert len(description.split()) >= 6, f"`{name} --help` needs a description of what it does"


def test_python_dash_m_runs_the_same_command_line() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "langchain_kubernetes_agent_sandbox", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0
    assert result.stdout.startswith("usage: kubernetes-agent-sandbox")
    for name in subcommand_names():
        assert name in result.stdout


def test_no_subcommand_prints_help_and_fails() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "langchain_kubernetes_agent_sandbox"], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 2
    assert "COMMAND" in result.stdout
