"""execute_python keeps a Python kernel per session: state persists, values and tracebacks come back, timeouts
interrupt without losing state, crashes are reported and recovered, figures come back as images. Through a real
MCP client on the local provider and the imitation cluster."""

from __future__ import annotations

import base64
import subprocess

import pytest
from mcp import ClientSession
from mcp.types import ImageContent

from tests.server.mcp_calls import Connect, call, data, text_of
from tests.server.providers import Open

HAS_MATPLOTLIB = subprocess.run(["/usr/bin/python3", "-c", "import matplotlib"], check=False).returncode == 0
needs_matplotlib = pytest.mark.skipif(not HAS_MATPLOTLIB, reason="the host's python3 has no matplotlib")


async def warm_matplotlib(client: ClientSession) -> None:
    """The first import in a new sandbox builds matplotlib's font cache, which can take long on a busy machine."""
    first = data(await call(client, "execute_python", code="import matplotlib.pyplot", timeout=300))
    if first["state"] == "running":
        assert data(await call(client, "job_wait", job_id=first["job_id"], timeout=120))["state"] != "running"


async def test_variables_and_imports_persist_and_a_trailing_expression_is_the_value(provider_client: Open) -> None:
    async with provider_client() as client:
        first = data(await call(client, "execute_python", code="import math\nx = 20\nprint('set')"))
        assert (first["stdout"], first.get("value"), first["exit_code"]) == ("set\n", None, 0)
        assert first["kernel"] in ("started", "kept")
        second = data(await call(client, "execute_python", code="x += 1\nmath.floor(x * 2.5)"))
        assert (second["value"], second["kernel"]) == ("52", "kept")
        assert "[value] 52" in text_of(await call(client, "execute_python", code="x * 2 + 10"))
        info = data(await call(client, "session_info"))
        assert "running" in info["python_kernel"]


async def test_a_traceback_points_at_the_agents_own_lines(provider_client: Open) -> None:
    async with provider_client() as client:
        result = data(await call(client, "execute_python", code="a = 1\nb = 0\n\nprint(a / b)\n"))
        assert result["exit_code"] == 1
        assert result["error"] == "ZeroDivisionError: division by zero"
        assert 'File "<cell>", line 4, in <module>' in result["stderr"]
        assert "print(a / b)" in result["stderr"]
        assert "program.py" not in result["stderr"]


async def test_a_timeout_interrupts_the_cell_and_keeps_the_state(provider_client: Open) -> None:
    async with provider_client() as client:
        await call(client, "execute_python", code="kept = 'still here'")
        stuck = await call(client, "execute_python", code="while True:\n    pass", timeout=1)
        assert (data(stuck)["state"], data(stuck)["exit_code"]) == ("timed_out", 124)
        assert "the kernel and its variables survived" in text_of(stuck)
        assert "variables survived" in text_of(
            await call(client, "execute_python", code="import time; time.sleep(5)", timeout=0.5)
        )
        assert data(await call(client, "execute_python", code="kept"))["value"] == "'still here'"


async def test_a_crashed_kernel_is_reported_and_restarts_on_the_next_call(provider_client: Open) -> None:
    async with provider_client() as client:
        await call(client, "execute_python", code="lost = 1")
        crash = data(await call(client, "execute_python", code="import ctypes\nctypes.string_at(0)"))
        assert crash["state"] == "lost"
        assert "the Python kernel died during this cell" in crash["stderr"]
        after = await call(client, "execute_python", code="'alive'")
        assert data(after)["kernel"] == "restarted"
        assert data(after)["value"] == "'alive'"
        assert "restarted" in text_of(after)
        assert data(await call(client, "execute_python", code="'lost' in dir()"))["value"] == "False"


async def test_killing_its_own_kernel_reading_stdin_and_closing_stdout_end_truthfully(provider_client: Open) -> None:
    async with provider_client() as client:
        read = data(await call(client, "execute_python", code="import sys\nsys.stdin.read()"))
        assert read["value"] == "''"
        closed = data(
            await call(client, "execute_python", code="import sys\nsys.stdout.close()\nprint('e', file=sys.stderr)")
        )
        assert (closed["exit_code"], closed["stderr"]) == (0, "e\n")
        assert data(await call(client, "execute_python", code="print('back')"))["stdout"] == "back\n"
        killed = data(
            await call(client, "execute_python", code="import os, signal\nos.kill(os.getpid(), signal.SIGKILL)")
        )
        assert killed["state"] == "lost"
        assert "exit status 137" in killed["stderr"]
        assert data(await call(client, "execute_python", code="1 + 1"))["value"] == "2"


async def test_a_cell_that_forks_leaves_one_kernel(provider_client: Open) -> None:
    """The forked child returns from the cell too; it ends there instead of becoming a second kernel that would
    take every other cell with variables of its own."""
    fork = "import os\nx = 1\npid = os.fork()\nif pid:\n    os.waitpid(pid, 0)\nprint('parent' if pid else 'child')"
    # A kernel's command line: the agent's child, or on the shell fallback the FIFO-fed program.
    kernel = "('\\0agent\\0', 'program.py\\0serve\\0')"
    count = (
        f"sum(any(k in open(f'/proc/{{p}}/cmdline').read() for k in {kernel}) for p in os.listdir('/proc') "
        "if p.isdigit())"
    )
    async with provider_client() as client:
        forked = data(await call(client, "execute_python", code=fork))
        assert (forked["stdout"], forked["exit_code"]) == ("child\nparent\n", 0)
        values = [data(await call(client, "execute_python", code="x += 1\nx"))["value"] for _ in range(4)]
        assert values == ["2", "3", "4", "5"]
        assert data(await call(client, "execute_python", code=count))["value"] == "1"


async def test_reset_starts_a_fresh_kernel(provider_client: Open) -> None:
    async with provider_client() as client:
        await call(client, "execute_python", code="gone = 1")
        fresh = data(await call(client, "execute_python", code="'gone' in dir()", reset=True))
        assert (fresh["kernel"], fresh["value"]) == ("reset", "False")


async def test_a_long_cell_detaches_and_its_value_arrives_through_job_wait(provider_client: Open) -> None:
    async with provider_client(detach_after=1) as client:
        started = data(await call(client, "execute_python", code="import time\nprint('begun')\ntime.sleep(2.5)\n6 * 7"))
        assert started["state"] == "running"
        assert started["stdout"] == "begun\n"
        done = data(await call(client, "job_wait", job_id=started["job_id"], timeout=20))
        assert (done["state"], done["value"]) == ("exited", "42")
        cancelled = data(await call(client, "execute_python", code="import time\ntime.sleep(60)", background=True))
        stopped = await call(client, "job_cancel", job_id=cancelled["job_id"])
        assert data(stopped)["state"] == "cancelled"
        assert "the kernel and its variables survived" in text_of(stopped)
        assert data(await call(client, "execute_python", code="'ok'"))["value"] == "'ok'"


@needs_matplotlib
async def test_every_figure_comes_back_as_an_image_and_a_file(provider_client: Open) -> None:
    code = (
        "import matplotlib.pyplot as plt\n"
        "plt.plot([1, 3, 2])\n"
        "fig = plt.figure(figsize=(10.24, 7.68), dpi=100)\n"
        "plt.bar(['a', 'b'], [3, 5])\n"
    )
    async with provider_client() as client:
        await warm_matplotlib(client)
        result = await call(client, "execute_python", code=code)
        images = [block for block in result.content if isinstance(block, ImageContent)]
        assert len(images) == 2
        for image in images:
            assert image.mimeType == "image/png"
            assert base64.b64decode(image.data).startswith(b"\x89PNG")
        figures = data(result)["figures"]
        assert len(figures) == 2
        assert "(640x480)" in text_of(result)
        assert "(1024x768)" in text_of(result)
        saved = data(await call(client, "download_file", path=figures[1]))
        assert saved["mime_type"] == "image/png"
        none = await call(client, "execute_python", code="1")
        assert not [block for block in none.content if isinstance(block, ImageContent)]


@needs_matplotlib
async def test_a_detached_cells_figures_come_back_when_the_job_is_reported_ended(provider_client: Open) -> None:
    code = "import matplotlib.pyplot as plt, time\nplt.plot([1, 3, 2])\ntime.sleep(2)\nplt.figure()\n'drawn'"
    async with provider_client(detach_after=0.5) as client:
        await warm_matplotlib(client)
        started = await call(client, "execute_python", code=code)
        assert data(started)["state"] == "running"
        assert not [block for block in started.content if isinstance(block, ImageContent)]
        job_id = data(started)["job_id"]
        ended = await call(client, "job_wait", job_id=job_id, timeout=60)
        assert data(ended)["state"] == "exited"
        images = [block for block in ended.content if isinstance(block, ImageContent)]
        assert [(image.mimeType, base64.b64decode(image.data)[:4]) for image in images] == [
            ("image/png", b"\x89PNG")
        ] * 2
        assert (data(ended)["value"], len(data(ended)["figures"])) == ("'drawn'", 2)
        assert "2 shown below" in text_of(ended)
        again = await call(client, "job_status", job_id=job_id)
        assert len([block for block in again.content if isinstance(block, ImageContent)]) == 2


async def test_without_matplotlib_nothing_is_said_about_figures(provider_client: Open) -> None:
    async with provider_client() as client:
        result = await call(client, "execute_python", code="print('plain')")
        assert "figures" not in data(result)
        assert "figure" not in text_of(result)


@needs_matplotlib
async def test_a_50_megabyte_figure_is_downscaled_to_the_budget(connect: Connect) -> None:
    code = (
        "import matplotlib.pyplot as plt, numpy\n"
        "fig = plt.figure(figsize=(40, 40), dpi=100)\n"
        "fig.figimage(numpy.random.default_rng(1).integers(0, 256, (4000, 4000, 3), dtype=numpy.uint8))\n"
    )
    async with connect() as client:
        await warm_matplotlib(client)
        result = await call(client, "execute_python", code=code, timeout=120)
        images = [block for block in result.content if isinstance(block, ImageContent)]
        assert len(images) == 1
        assert len(base64.b64decode(images[0].data)) <= 256 * 1024
        figure = data(result)["figures"][0]
        assert "(4000x4000)" in text_of(result)
        full = await call(client, "execute", command=f"wc -c < {figure}")
        assert int(data(full)["stdout"]) > 40 * 1024 * 1024


@needs_matplotlib
async def test_hundreds_of_figures_end_bounded(connect: Connect) -> None:
    code = "import matplotlib.pyplot as plt\nfor i in range(300):\n    plt.figure(figsize=(1, 1), dpi=50)\n"
    async with connect() as client:
        await warm_matplotlib(client)
        result = await call(client, "execute_python", code=code, timeout=120)
        images = [block for block in result.content if isinstance(block, ImageContent)]
        assert len(images) == 8
        assert len(data(result)["figures"]) == 50
        assert "250 more figures were closed without being saved" in text_of(result)
        assert data(await call(client, "execute_python", code="len(plt.get_fignums())"))["value"] == "0"


async def test_a_cells_large_output_keeps_head_and_tail_and_points_to_the_whole(provider_client: Open) -> None:
    async with provider_client(max_output_bytes=2048) as client:
        result = data(await call(client, "execute_python", code="for i in range(20000):\n    print(i)\n'end'"))
        assert result["value"] == "'end'"
        assert result["dropped_bytes"] == len("".join(f"{i}\n" for i in range(20000))) - 2048
        assert result["stdout"].startswith("0\n1\n")
        assert result["stdout"].endswith("19998\n19999\n")
        whole = data(await call(client, "download_file", path=f"/tmp/.kas/jobs/{result['job_id']}/stdout"))
        assert whole["content"] == "".join(f"{i}\n" for i in range(20000))


async def test_a_value_larger_than_a_small_output_cap_still_comes_back(provider_client: Open) -> None:
    """The cell's value and figure list travel beside its output; when they do not fit a small cap they are
    read on their own instead of silently missing."""
    async with provider_client(max_output_bytes=2048) as client:
        result = data(await call(client, "execute_python", code="print('out')\n'v' * 3000"))
        assert (result["stdout"], result["value"]) == ("out\n", repr("v" * 3000))


async def test_a_cell_too_large_to_travel_inside_the_command_runs_the_same(provider_client: Open) -> None:
    """Small cells are sent inside the command that runs them; one that, quoted for the shell, would pass Linux's
    128 KiB limit on an argument is written as a file first. The agent sees no difference."""
    code = 'data = "' + "'\u00e9" * 20_000 + '"\nlen(data)'  # 40,000 characters, 140,000 bytes quoted
    async with provider_client() as client:
        large = data(await call(client, "execute_python", code=code))
        assert (large["value"], large["exit_code"], large["kernel"]) == ("40000", 0, "started")
        assert data(await call(client, "execute_python", code="data[:3]"))["value"] == repr("'\u00e9'")


async def test_a_kernel_program_replaced_in_the_sandbox_is_not_the_next_kernel(provider_client: Open) -> None:
    forged = "print('forged kernel')"
    replace = (
        f'for f in /tmp/.kas/kernel/program.py /tmp/.kas/agent/pykernel.py; do [ -e $f ] && echo "{forged}" > $f; done'
    )
    async with provider_client() as client:
        await call(client, "execute_python", code="x = 1")
        await call(client, "execute", command=replace)
        await call(client, "execute_python", code="import os, signal\nos.kill(os.getpid(), signal.SIGKILL)")
        after = data(await call(client, "execute_python", code="6 * 7"))
        assert (after["kernel"], after["value"]) == ("restarted", "42")
        assert "forged" not in after["stdout"]
