"""A mixed MCP workload in which every call checks its own result.

Each worker is one MCP client over streamable HTTP with its own token (principal) and its own sessions. It runs
`execute`, `execute_python`, `upload_file` and `download_file` with markers unique to the call, so an output that
went to the wrong call, the wrong session or nowhere shows up as `wrong`, not as a pass. A call that fails as a
typed tool error (`code: message`, one of the sandbox error codes) is `refused`; anything else (an untyped error,
a transport failure, a call that outlives its limit) is `broken`.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import random
import secrets
import time
from collections import Counter
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from mcp import ClientSession
from mcp.client.streamable_http import streamable_http_client
from mcp.types import CallToolResult, TextContent

from langchain_kubernetes_agent_sandbox import errors

TYPED_CODES = frozenset(
    value.code
    for value in vars(errors).values()
    if isinstance(value, type) and issubclass(value, errors.SandboxError) and value is not errors.SandboxError
)
"""The codes a tool error may start with: the sandbox error taxonomy."""

KINDS = ("execute", "execute_python", "upload_file", "download_file")


class ToolFailed(Exception):
    """The call came back as an MCP tool error; its text is the message."""


class Wrong(Exception):
    """The call succeeded but its result is not what this call asked for."""


@dataclass
class Tally:
    ok: int = 0
    refused: Counter[str] = field(default_factory=Counter)
    refusals: list[str] = field(default_factory=list)
    """What the refused calls said (the first few), for the message of a test that expected none."""
    wrong: list[str] = field(default_factory=list)
    broken: list[str] = field(default_factory=list)
    latencies: list[float] = field(default_factory=list)

    @property
    def calls(self) -> int:
        return self.ok + sum(self.refused.values()) + len(self.wrong) + len(self.broken)

    def summary(self) -> str:
        return (
            f"{self.calls} calls: {self.ok} ok, refused {dict(self.refused)} {self.refusals[:3]}, "
            f"{len(self.wrong)} wrong {self.wrong[:3]}, {len(self.broken)} broken {self.broken[:3]}"
        )


def text_of(result: CallToolResult) -> str:
    return "\n".join(block.text for block in result.content if isinstance(block, TextContent))


async def tool(client: ClientSession, name: str, **arguments: Any) -> dict[str, Any]:
    result = await client.call_tool(name, arguments)
    if result.isError:
        raise ToolFailed(text_of(result))
    assert result.structuredContent is not None
    return result.structuredContent


def expect(actual: dict[str, Any], **wanted: Any) -> None:
    """The result is what the call asked for; a command cut at its limit counts as a typed `timed_out` failure."""
    if actual.get("state") == "timed_out":
        raise ToolFailed(f"timed_out: {actual.get('stderr', '')}")
    differing = {key: (actual.get(key), value) for key, value in wanted.items() if actual.get(key) != value}
    if differing:
        raise Wrong(f"(got, wanted): {differing}")


@contextlib.asynccontextmanager
async def connect(mcp_url: str, token: str) -> AsyncIterator[ClientSession]:
    async with (
        httpx.AsyncClient(headers={"Authorization": f"Bearer {token}"}, timeout=httpx.Timeout(30, read=120)) as http,
        streamable_http_client(mcp_url, http_client=http) as (read, write, _),
        ClientSession(read, write) as client,
    ):
        await client.initialize()
        yield client


@dataclass
class Worker:
    """One principal's client: its sessions and the files it wrote in each (path -> content)."""

    token: str
    seed: int
    sessions: dict[str, dict[str, str]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)

    async def create_sessions(self, client: ClientSession, count: int) -> None:
        for _ in range(count):
            created = await tool(client, "create_session", labels={"load": "reliability"})
            self.sessions[created["session_id"]] = {}

    async def forget_lost_sessions(self, client: ClientSession) -> None:
        """Drop the sessions the server no longer lists (a sandbox that died is discarded with its session)."""
        listed = {entry["session_id"] for entry in (await tool(client, "list_sessions"))["sessions"]}
        for session_id in set(self.sessions) - listed:
            del self.sessions[session_id]

    async def close_sessions(self, client: ClientSession) -> None:
        for session_id in list(self.sessions):
            expect(await tool(client, "close_session", session_id=session_id), closed=True)
            del self.sessions[session_id]

    async def one_call(self, client: ClientSession, kind: str, session_id: str) -> None:
        """One call of `kind` in the session (`create_session` makes and closes a session of its own)."""
        marker = f"m{secrets.token_hex(8)}"
        written = self.sessions[session_id]
        if kind == "execute":
            command = f"echo {marker}; echo {marker}-err >&2; exit 3"
            result = await tool(client, "execute", command=command, session_id=session_id)
            expect(result, stdout=f"{marker}\n", stderr=f"{marker}-err\n", exit_code=3, session_id=session_id)
        elif kind == "execute_python":
            code = f"import sys\nprint({marker!r}[::-1])\nsys.exit(5)"
            result = await tool(client, "execute_python", code=code, session_id=session_id)
            expect(result, stdout=f"{marker[::-1]}\n", exit_code=5, session_id=session_id)
        elif kind == "create_session":
            created = await tool(client, "create_session", labels={"load": "short-lived"})
            expect(await tool(client, "close_session", session_id=created["session_id"]), closed=True)
        elif kind == "upload_file" or not written:
            path, content = f"/app/load/{marker}.txt", f"{marker}\n" * self.rng.randint(1, 200)
            result = await tool(client, "upload_file", path=path, content=content, session_id=session_id)
            digest = hashlib.sha256(content.encode()).hexdigest()
            expect(result, path=path, size=len(content), sha256=digest, session_id=session_id)
            written[path] = content
        else:
            path = self.rng.choice(sorted(written))
            result = await tool(client, "download_file", path=path, session_id=session_id)
            expect(result, path=path, content=written[path], session_id=session_id)

    async def run_calls(
        self,
        client: ClientSession,
        calls: int,
        tally: Tally,
        *,
        call_limit: float = 60.0,
        kinds: Sequence[str] = KINDS,
        until: float | None = None,
    ) -> None:
        """`calls` calls (or until the monotonic time `until`), each on a random session of this worker."""
        done = 0
        while done < calls and (until is None or time.monotonic() < until):
            done += 1
            await self.checked_call(client, self.rng.choice(kinds), tally, call_limit=call_limit)

    async def checked_call(self, client: ClientSession, kind: str, tally: Tally, *, call_limit: float) -> None:
        session_id = self.rng.choice(sorted(self.sessions))
        started = time.monotonic()
        try:
            await asyncio.wait_for(self.one_call(client, kind, session_id), call_limit)
            tally.ok += 1
        except ToolFailed as failed:
            code = str(failed).split(":", 1)[0]
            if code in TYPED_CODES:
                tally.refused[code] += 1
                if len(tally.refusals) < 5:
                    tally.refusals.append(f"{kind}: {str(failed)[:300]}")
            else:
                tally.broken.append(f"{kind}: untyped error {str(failed)[:200]}")
        except Wrong as wrong:
            tally.wrong.append(f"{kind} on {session_id}: {wrong}")
        except TimeoutError:
            tally.broken.append(f"{kind}: no answer within {call_limit} s")
        except Exception as error:  # a transport failure: the server went away, or the stream broke
            tally.broken.append(f"{kind}: {type(error).__name__}: {error}"[:300])
        tally.latencies.append(time.monotonic() - started)


def make_workers(count: int, seed: int = 0) -> list[Worker]:
    return [Worker(token=f"load-{index}-{secrets.token_hex(12)}", seed=seed + index) for index in range(count)]


def write_token_file(folder: Path, workers: Sequence[Worker]) -> Path:
    """Tokens for the workers, each its own principal (`client<i>`)."""
    path = folder / "tokens.txt"
    path.write_text("".join(f"{worker.token} client{index}\n" for index, worker in enumerate(workers)))
    return path


def spread(sessions: int, workers: int) -> list[int]:
    """How many of `sessions` each of `workers` owns (every worker at least one)."""
    return [max(1, sessions // workers + (index < sessions % workers)) for index in range(workers)]


async def run_load(
    mcp_url: str, workers: Sequence[Worker], sessions: int, calls: int, *, call_limit: float = 60.0
) -> Tally:
    """Every worker makes its sessions, shares `calls` calls with the others, and closes its sessions."""
    tally = Tally()
    per_worker = spread(calls, len(workers))

    async def work(worker: Worker, own_sessions: int, own_calls: int) -> None:
        async with connect(mcp_url, worker.token) as client:
            await worker.create_sessions(client, own_sessions)
            await worker.run_calls(client, own_calls, tally, call_limit=call_limit)
            await worker.close_sessions(client)

    await asyncio.gather(*map(work, workers, spread(sessions, len(workers)), per_worker))
    return tally


def processes_mentioning(text: str) -> list[int]:
    """Pids of processes whose command line contains `text` (sandboxes left running)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                if text.encode() in (entry / "cmdline").read_bytes():
                    found.append(int(entry.name))
    return found


def process_usage(pid: int) -> tuple[float, int]:
    """Resident memory (MiB) and open file descriptors of a process."""
    status = Path(f"/proc/{pid}/status").read_text()
    rss = next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS:"))
    return rss / 1024, len(list(Path(f"/proc/{pid}/fd").iterdir()))
