"""The server's end of an agent's channel trusts nothing the agent says: oversized, malformed or unasked-for
frames end the channel with a typed error at once, and the server never buffers more than it asked for."""

from __future__ import annotations

import asyncio
import socket
import struct
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from langchain_kubernetes_agent_sandbox.engine import budget, processes, wire
from langchain_kubernetes_agent_sandbox.engine.channel import AgentChannel, AgentLost, AgentMismatch
from langchain_kubernetes_agent_sandbox.output import OutputLimit

Agent = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


async def opened(agent: Agent) -> tuple[AgentChannel, asyncio.Task[None]]:
    ours, theirs = socket.socketpair()
    reader, writer = await asyncio.open_unix_connection(sock=ours)
    their_reader, their_writer = await asyncio.open_unix_connection(sock=theirs)
    return AgentChannel(reader, writer, name="test"), asyncio.create_task(agent(their_reader, their_writer))


@pytest.fixture
async def stop() -> AsyncIterator[list[asyncio.Task[None]]]:
    tasks: list[asyncio.Task[None]] = []
    yield tasks
    for task in tasks:
        task.cancel()


async def answering(reply: Callable[[wire.Header], list[bytes]]) -> Agent:
    async def agent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            header, _ = await wire.read_frame(reader)
            for frame in reply(header):
                writer.write(frame)
            await writer.drain()

    return agent


async def test_an_oversized_frame_ends_the_channel_before_anything_is_buffered(stop: list[asyncio.Task[None]]) -> None:
    huge = struct.pack(">II", wire.MAX_HEADER_BYTES + 1, 0)
    channel, task = await opened(await answering(lambda _header: [huge]))
    stop.append(task)
    with pytest.raises(AgentLost, match="too large"):
        await channel.request({"op": "ping"}, timeout=5)
    assert channel.misbehaved


async def test_a_header_that_is_not_a_json_object_ends_the_channel(stop: list[asyncio.Task[None]]) -> None:
    garbage = struct.pack(">II", 5, 0) + b"[1,2]"
    channel, task = await opened(await answering(lambda _header: [garbage]))
    stop.append(task)
    with pytest.raises(AgentLost, match="broke the protocol"):
        await channel.request({"op": "ping"}, timeout=5)


async def test_answers_to_requests_never_made_are_ignored(stop: list[asyncio.Task[None]]) -> None:
    def reply(header: wire.Header) -> list[bytes]:
        return [wire.encode({"op": "pong", "r": 999}), wire.encode({"op": "pong", "r": header["r"]})]

    channel, task = await opened(await answering(reply))
    stop.append(task)
    answer, _ = await channel.request({"op": "ping"}, timeout=5)
    assert answer == {"op": "pong", "r": 1}


async def test_an_agent_that_runs_another_program_is_refused(stop: list[asyncio.Task[None]]) -> None:
    ours, theirs = socket.socketpair()
    reader, writer = await asyncio.open_unix_connection(sock=ours)
    their_reader, their_writer = await asyncio.open_unix_connection(sock=theirs)
    hello = await answering(lambda header: [wire.encode({"op": "hello", "r": header["r"], "v": 1, "program": "x"})])
    stop.append(asyncio.create_task(hello(their_reader, their_writer)))
    with pytest.raises(AgentMismatch):
        await AgentChannel.open(reader, writer, name="test", program="the package's", timeout=5)


async def test_more_output_than_was_asked_for_ends_the_follow(stop: list[asyncio.Task[None]]) -> None:
    limit = OutputLimit(max_bytes=1024)

    def reply(header: wire.Header) -> list[bytes]:
        if header["op"] != "attach":
            return []
        out = {"op": "out", "p": header["p"], "a": header["a"], "s": 0}
        flood = [wire.encode({**out, "o": n * 4096}, b"x" * 4096) for n in range(64)]
        return [wire.encode({"op": "attached", "r": header["r"]}), *flood]

    channel, task = await opened(await answering(reply))
    stop.append(task)
    again = [channel]  # an agent that misbehaved is not followed again over a new connection

    async def channel_of() -> AgentChannel:
        return again.pop()

    with pytest.raises(AgentLost, match="than was asked for"):
        await processes.follow(channel_of, "j-000000000000", wait=5, cursor=(0, 0), limit=limit)
    assert channel.closed


async def test_a_follow_goes_on_over_a_new_connection_from_where_a_silent_one_stopped(
    stop: list[asyncio.Task[None]], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(budget, "AGENT_QUIET", 0.2)
    monkeypatch.setattr(budget, "AGENT_REQUEST", 0.5)
    attached: list[wire.Header] = []

    def frames(*written: tuple[int, bytes], ended: bool) -> Callable[[wire.Header], list[bytes]]:
        def reply(header: wire.Header) -> list[bytes]:
            if header["op"] != "attach":
                return []  # pings go unanswered: the connection stalled
            attached.append(header)
            about = {"p": header["p"], "a": header["a"]}
            sent = [wire.encode({"op": "out", **about, "s": 0, "o": at}, data) for at, data in written]
            if ended:
                sent.append(wire.encode({"op": "exit", **about, "state": "exited", "code": 0, "n": [13, 0]}))
            return [wire.encode({"op": "attached", "r": header["r"]}), *sent]

        return reply

    stalling, stalls = await opened(await answering(frames((0, b"first\n"), ended=False)))
    working, works = await opened(await answering(frames((6, b"second\n"), ended=True)))
    stop += [stalls, works]
    channels = [working, stalling]

    async def channel_of() -> AgentChannel:
        return channels.pop()

    report = await processes.follow(channel_of, "j-000000000000", wait=10, cursor=(0, 0), limit=OutputLimit())
    assert (report.result.stdout, report.exit) == ("first\nsecond\n", processes.Exit("exited", 0))
    assert [header["o"] for header in attached] == [[0, 0], [6, 0]]
    assert (stalling.closed, stalling.misbehaved) == (True, False)


async def test_a_broken_connection_wakes_every_waiter_at_once(stop: list[asyncio.Task[None]]) -> None:
    async def hang_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await wire.read_frame(reader)
        writer.close()

    channel, task = await opened(hang_up)
    stop.append(task)
    started = asyncio.get_running_loop().time()
    with pytest.raises(AgentLost):
        await channel.request({"op": "ping"}, timeout=30)
    assert asyncio.get_running_loop().time() - started < 5
