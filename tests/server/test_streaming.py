"""Output streamed to the MCP client while a command or a cell runs: progress notifications carry the text as it
is written, bounded; the final result is the same as without them."""

from __future__ import annotations

import time

from tests.server.mcp_calls import Connect, call, data, text_of
from tests.server.providers import Open

LONG_COMMAND = "echo first; echo warn >&2; sleep 2; echo second"


class Notes:
    """What a client's progress callback saw, and when."""

    def __init__(self) -> None:
        self.messages: list[tuple[float, float, str]] = []

    async def __call__(self, progress: float, _total: float | None, message: str | None) -> None:
        self.messages.append((time.monotonic(), progress, message or ""))

    def first_with(self, text: str) -> float:
        return next(at for at, _, message in self.messages if text in message)


async def test_a_commands_output_reaches_the_client_while_it_runs(provider_client: Open) -> None:
    async with provider_client() as client:
        notes = Notes()
        result = await client.call_tool("execute", {"command": LONG_COMMAND}, progress_callback=notes)
        ended = time.monotonic()
        assert (data(result)["stdout"], data(result)["stderr"]) == ("first\nsecond\n", "warn\n")
        assert ended - notes.first_with("first") > 1.5, "the first line came only with the result"
        assert notes.first_with("[stderr] warn") < ended - 1.5
        assert "second" in "".join(message for _, _, message in notes.messages)
        progress = [value for _, value, _ in notes.messages]
        assert progress == sorted(progress), "progress only grows"


async def test_a_cells_output_reaches_the_client_while_it_runs(provider_client: Open) -> None:
    async with provider_client() as client:
        notes = Notes()
        code = "import time\nprint('first', flush=True)\ntime.sleep(2)\nprint('second')\n40 + 2"
        result = await client.call_tool("execute_python", {"code": code}, progress_callback=notes)
        ended = time.monotonic()
        assert (data(result)["stdout"], data(result)["value"]) == ("first\nsecond\n", "42")
        assert ended - notes.first_with("first") > 1.5


async def test_streamed_output_is_bounded_and_the_result_unchanged(connect: Connect) -> None:
    async with connect() as client:
        notes = Notes()
        result = await client.call_tool(
            "execute", {"command": "head -c 30000000 /dev/zero | tr '\\0' x"}, progress_callback=notes
        )
        streamed = sum(len(message) for _, _, message in notes.messages)
        assert streamed <= 1024 * 1024 + 8 * 1024
        assert "of 30000000 bytes dropped" in text_of(result)
        assert len(notes.messages) < 400, "notifications are rate-limited"
        without = data(await call(client, "execute", command="head -c 30000000 /dev/zero | tr '\\0' x"))
        assert without["stdout"] == data(result)["stdout"]
