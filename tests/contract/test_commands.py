"""Running commands: what every provider promises about shells, output, exit codes and time limits."""

from __future__ import annotations

import asyncio
import time

import pytest

from langchain_kubernetes_agent_sandbox import ExecutionLimits, InvalidArgumentError, OutputLimit, Sandbox
from tests.conftest import ProviderFactory


async def test_stdout_and_stderr_are_kept_apart(sandbox: Sandbox) -> None:
    result = await sandbox.run("echo out; echo err >&2; exit 3")
    assert result.stdout == "out\n"
    assert result.stderr == "err\n"
    assert result.exit_code == 3
    assert not result.ok


async def test_commands_run_through_a_shell(sandbox: Sandbox) -> None:
    result = await sandbox.run("printf 'a\\nb\\n' | wc -l && x=5 && echo \"x=$x\" && cat <<'EOF'\nheredoc $x\nEOF")
    assert result.stdout.split() == ["2", "x=5", "heredoc", "$x"]
    assert result.exit_code == 0


async def test_working_directory_is_app_and_relative_paths_resolve_there(sandbox: Sandbox) -> None:
    result = await sandbox.run("pwd; echo hi > rel.txt")
    assert result.stdout.strip() == "/app"
    assert await sandbox.read_file("/app/rel.txt") == b"hi\n"


async def test_cwd_argument_changes_the_directory(sandbox: Sandbox) -> None:
    await sandbox.write_file("sub/dir/f.txt", b"x")
    result = await sandbox.run("pwd; ls", cwd="sub/dir")
    assert result.stdout.split() == ["/app/sub/dir", "f.txt"]


async def test_python3_and_python_both_work(sandbox: Sandbox) -> None:
    result = await sandbox.run("python3 -c 'print(6*7)' && python -c 'import sys; print(sys.version_info[0])'")
    assert result.stdout.split() == ["42", "3"]


async def test_timeout_kills_the_command_and_keeps_partial_output(sandbox: Sandbox) -> None:
    started = time.monotonic()
    result = await sandbox.run("echo before; sleep 30; echo after", timeout=1)
    assert time.monotonic() - started < 10
    assert result.timed_out
    assert result.exit_code == 124
    assert result.stdout == "before\n"


async def test_background_process_does_not_outlive_the_timeout(sandbox: Sandbox) -> None:
    result = await sandbox.run("(sleep 2; echo late > /app/late.txt) & sleep 30", timeout=1)
    assert result.timed_out
    await asyncio.sleep(2.5)
    assert not await sandbox.exists("/app/late.txt")


async def test_stdin_is_at_end_of_file(sandbox: Sandbox) -> None:
    result = await sandbox.run("cat; echo done", timeout=10)
    assert result.stdout == "done\n"
    assert not result.timed_out


async def test_output_that_is_not_utf8_is_replaced_not_fatal(sandbox: Sandbox) -> None:
    result = await sandbox.run("printf 'ok \\377\\376 end'")
    assert result.stdout == "ok \ufffd\ufffd end"


async def test_large_output_keeps_head_and_tail_and_says_what_was_dropped(provider_factory: ProviderFactory) -> None:
    provider = await provider_factory(limits=ExecutionLimits(output=OutputLimit(max_bytes=1000)))
    sandbox = await provider.create()
    result = await sandbox.run("echo FIRST; head -c 100000 /dev/zero | tr '\\0' x; echo; echo LAST")
    assert result.truncated
    assert result.stdout.startswith("FIRST\n")
    assert result.stdout.rstrip().endswith("LAST")
    assert result.stdout_bytes == 6 + 100000 + 1 + 5
    assert result.dropped_bytes == result.stdout_bytes - 1000
    assert f"{result.dropped_bytes} bytes of output dropped" in result.stdout


@pytest.mark.parametrize("timeout", [-1, 0, float("nan"), 10**9])
async def test_negative_or_absurd_timeouts_are_refused(sandbox: Sandbox, timeout: float) -> None:
    with pytest.raises(InvalidArgumentError, match="timeout"):
        await sandbox.run("true", timeout=timeout)


@pytest.mark.parametrize("command", ["", "   ", "echo \x00"])
async def test_empty_or_nul_commands_are_refused(sandbox: Sandbox, command: str) -> None:
    with pytest.raises(InvalidArgumentError, match="command"):
        await sandbox.run(command)


async def test_environment_is_cleared_and_extra_variables_arrive(sandbox: Sandbox) -> None:
    result = await sandbox.run("env; cat /proc/1/environ 2>/dev/null | tr '\\0' '\\n'", env={"GREETING": "hello"})
    assert "GREETING=hello" in result.stdout
    assert "server-secret-value" not in result.stdout


async def test_concurrent_commands_on_one_sandbox_do_not_mix_outputs(sandbox: Sandbox) -> None:
    results = await asyncio.gather(*(sandbox.run(f"echo {n}; echo e{n} >&2") for n in range(8)))
    assert [(r.stdout, r.stderr) for r in results] == [(f"{n}\n", f"e{n}\n") for n in range(8)]
