"""Long commands detach into jobs, followed with job_status, job_wait and job_cancel; output beyond the inline cap
stays whole in files the result names. Through a real MCP client, on the local provider and the imitation cluster."""

from __future__ import annotations

from tests.server.mcp_calls import Connect, call, data, fail, text_of
from tests.server.providers import Open


async def test_a_long_command_detaches_with_its_output_so_far_and_is_followed_to_its_end(provider_client: Open) -> None:
    async with provider_client(detach_after=1) as client:
        first = data(await call(client, "execute", command="echo one; sleep 2.5; echo two; exit 3"))
        assert first["state"] == "running"
        assert first["stdout"] == "one\n"
        assert first["job_id"] in text_of(await call(client, "job_status", job_id=first["job_id"]))
        done = data(await call(client, "job_wait", job_id=first["job_id"], timeout=20, cursor=first["cursor"]))
        assert (done["state"], done["exit_code"], done["stdout"]) == ("exited", 3, "two\n")
        whole = data(await call(client, "job_status", job_id=first["job_id"]))
        assert whole["stdout"] == "one\ntwo\n"


async def test_a_jobs_report_gives_its_own_limit_and_how_long_it_has_run(provider_client: Open) -> None:
    """Not the server's default limit, nor how long the job_status call took."""
    async with provider_client() as client:
        started = data(await call(client, "execute", command="sleep 30", timeout=45, background=True))
        await call(client, "job_wait", job_id=started["job_id"], timeout=1.5)
        status = await call(client, "job_status", job_id=started["job_id"])
        running = data(status)
        assert running["state"] == "running"
        assert 1.5 <= running["duration_seconds"] < 30
        assert f"after {running['duration_seconds']:g} s" in text_of(status)
        assert "killed after 45 s" in text_of(status)
        await call(client, "job_cancel", job_id=started["job_id"])


async def test_a_quick_command_is_an_ordinary_result(provider_client: Open) -> None:
    async with provider_client() as client:
        result = data(await call(client, "execute", command="echo hi; echo err >&2"))
        assert (result["state"], result["exit_code"], result["stdout"], result["stderr"]) == (
            "exited",
            0,
            "hi\n",
            "err\n",
        )


async def test_background_returns_at_once_and_the_job_survives_a_server_restart(provider_client: Open) -> None:
    async with provider_client() as client:
        started = data(await call(client, "execute", command="sleep 1.5; echo finished", background=True))
        assert started["state"] == "running"
        assert started["duration_seconds"] < 1.5
    async with provider_client() as client:
        done = data(await call(client, "job_wait", job_id=started["job_id"], timeout=20))
        assert (done["state"], done["stdout"]) == ("exited", "finished\n")


async def test_cancel_signals_the_whole_process_group(provider_client: Open) -> None:
    async with provider_client() as client:
        started = data(await call(client, "execute", command="sleep 301 & sleep 302; echo never", background=True))
        cancelled = data(await call(client, "job_cancel", job_id=started["job_id"]))
        assert cancelled["state"] == "cancelled"
        assert "never" not in cancelled["stdout"]
        left = await call(client, "execute", command="cat /proc/[0-9]*/cmdline 2>/dev/null | tr '\\0' ' '")
        assert "sleep 30" not in data(left)["stdout"]
        again = data(await call(client, "job_cancel", job_id=started["job_id"]))
        assert again["state"] == "cancelled"


async def test_a_job_runs_only_until_its_timeout(provider_client: Open) -> None:
    async with provider_client(detach_after=0.5) as client:
        started = data(await call(client, "execute", command="echo start; sleep 60", timeout=2))
        assert started["state"] == "running"
        done = data(await call(client, "job_wait", job_id=started["job_id"], timeout=20))
        assert (done["state"], done["exit_code"]) == ("timed_out", 124)
        assert done["stdout"] == "start\n"


async def test_another_principals_job_is_not_found(provider_client: Open) -> None:
    async with provider_client() as client:
        started = data(await call(client, "execute", command="sleep 5", background=True))
    async with provider_client(principal="bob") as bob:
        own = await fail(bob, "job_status", job_id=started["job_id"])
        assert own.startswith("not_found:"), own
        theirs = await fail(bob, "job_status", job_id=started["job_id"], session_id=started["session_id"])
        assert theirs.startswith("not_found:"), theirs
        invalid = await fail(bob, "job_wait", job_id="../../etc", timeout=1)
        assert invalid.startswith("not_found:"), invalid
    async with provider_client() as client:
        await call(client, "job_cancel", job_id=started["job_id"])


async def test_output_beyond_the_cap_keeps_head_and_tail_and_points_to_the_whole(provider_client: Open) -> None:
    async with provider_client(max_output_bytes=1024) as client:
        result = data(await call(client, "execute", command="seq 1 20000; seq 1 3000 >&2"))
        stdout = "".join(f"{n}\n" for n in range(1, 20001))
        stderr = "".join(f"{n}\n" for n in range(1, 3001))
        assert result["dropped_bytes"] == len(stdout) - 1024 + len(stderr) - 1024
        assert result["stdout"].startswith("1\n2\n")
        assert result["stdout"].endswith("19999\n20000\n")
        text = text_of(await call(client, "execute", command="seq 1 20000"))
        assert "/tmp/.kas/jobs/" in text
        assert "download_file" in text
        whole = data(await call(client, "download_file", path=f"/tmp/.kas/jobs/{result['job_id']}/stdout"))
        assert whole["content"] == stdout
        errors = data(await call(client, "download_file", path=f"/tmp/.kas/jobs/{result['job_id']}/stderr"))
        assert errors["content"] == "".join(f"{n}\n" for n in range(1, 3001))


async def test_stdin_is_at_end_of_file_and_closing_stdout_is_harmless(provider_client: Open) -> None:
    async with provider_client(detach_after=5) as client:
        result = data(await call(client, "execute", command="cat; echo eof; exec >&-; echo gone >&2"))
        assert (result["state"], result["stdout"], result["stderr"]) == ("exited", "eof\n", "gone\n")
        python = data(await call(client, "execute_python", code="import sys; print(repr(sys.stdin.read()))"))
        assert python["stdout"] == "''\n"


async def test_endless_output_ends_bounded_at_the_timeout(provider_client: Open) -> None:
    async with provider_client(detach_after=10, max_output_bytes=4096) as client:
        result = data(await call(client, "execute", command="yes | head -c 30000000; sleep 60", timeout=2))
        assert result["state"] == "timed_out"
        assert len(result["stdout"]) < 5000
        assert result["dropped_bytes"] == 30000000 - 4096
        assert result["stdout"].startswith("y\ny\n")
        assert result["stdout"].endswith("y\ny\n")
        after = data(await call(client, "execute", command="echo usable"))
        assert after["stdout"] == "usable\n"


async def test_gigabytes_of_output_end_at_the_file_size_limit_truthfully(connect: Connect) -> None:
    async with connect(max_output_bytes=4096) as client:
        result = data(await call(client, "execute", command="yes", timeout=60))
        assert result["state"] == "exited"
        assert result["exit_code"] == 128 + 25
        assert "File size limit exceeded" in result["stderr"]
        assert result["dropped_bytes"] >= 1024**3 - 4096
        assert len(result["stdout"]) < 5000
        assert result["duration_seconds"] < 30
        await call(client, "execute", command=f"rm /tmp/.kas/jobs/{result['job_id']}/stdout")
