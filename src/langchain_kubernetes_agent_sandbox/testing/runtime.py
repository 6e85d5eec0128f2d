"""One imitation pod: the legacy python-runtime HTTP protocol, quirks included, served by its own process.

Like the reference server: commands are split with `shlex` and run without a shell in `/app`; command failures
are 200 with `exit_code` 1 and `Failed to execute command: ...`; file paths are percent-decoded a second time,
confined to `/app` (403 `Access denied` on escape); `download` answers 404 for directories; `exists` is never
404. Unlike the pinned reference, it honours `timeout_seconds` (answering `timed_out`, exit code 124) unless
started with `--ignore-timeout-field`, which imitates runtimes that predate the field.

With `--forward POD_PORT=LOCAL_PORT,...` it also relays connections to loopback port LOCAL_PORT to port POD_PORT
inside the pod's sandbox, as a pod network reaches any port of a pod: that is how the sandbox's agent is reached.

Run: `python -m langchain_kubernetes_agent_sandbox.testing.runtime --port 8888 --state-dir DIR`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import math
import os
import shlex
import signal
import sys
import urllib.parse
from collections.abc import Sequence
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from .serving import Server
from .workspace import PodWorkspace

DEFAULT_EXEC_CEILING = 300.0
RELAY_CHUNK = 256 * 1024


def _denied() -> JSONResponse:
    return JSONResponse({"message": "Access denied"}, status_code=403)


class Runtime:
    def __init__(self, workspace: PodWorkspace, *, exec_ceiling: float, honour_timeout: bool) -> None:
        self.workspace = workspace
        self.exec_ceiling = exec_ceiling
        self.honour_timeout = honour_timeout

    @staticmethod
    def _rel(request: Request) -> str:
        return urllib.parse.unquote(request.path_params.get("path", "")).lstrip("/")

    async def health(self, _: Request) -> Response:
        return JSONResponse({"status": "ok", "message": "Sandbox Runtime is active."})

    async def execute(self, request: Request) -> Response:
        try:
            body = await request.json()
        except ValueError:
            body = None
        command = body.get("command") if isinstance(body, dict) else None
        if not isinstance(command, str):
            detail = [{"type": "missing", "loc": ["body", "command"], "msg": "Field required"}]
            return JSONResponse({"detail": detail}, status_code=422)
        limit = self.exec_ceiling
        requested = body.get("timeout_seconds") if isinstance(body, dict) else None
        if self.honour_timeout and isinstance(requested, int | float) and math.isfinite(requested) and requested > 0:
            limit = float(requested)
        try:
            argv = shlex.split(command)
            if not argv:
                raise ValueError("empty command")
        except ValueError as error:
            return JSONResponse({"stdout": "", "stderr": f"Failed to execute command: {error}", "exit_code": 1})
        result = await self.workspace.execute(argv, limit)
        answer: dict[str, Any] = {"stdout": result.stdout, "stderr": result.stderr, "exit_code": result.exit_code}
        if self.honour_timeout:
            answer["timed_out"] = result.timed_out
        elif result.timed_out:
            answer = {
                "stdout": "",
                "stderr": f"Failed to execute command: Command '{argv}' timed out after {limit} seconds",
                "exit_code": 1,
            }
        return JSONResponse(answer)

    async def upload(self, request: Request) -> Response:
        async with request.form(max_part_size=1024 * 1024) as form:
            upload = form.get("file")
            if not isinstance(upload, UploadFile) or not upload.filename:
                detail = [{"type": "missing", "loc": ["body", "file"], "msg": "Field required"}]
                return JSONResponse({"detail": detail}, status_code=422)
            rel = upload.filename.lstrip("/")
            if self.workspace.escapes(rel):
                return _denied()
            try:
                await self.workspace.write(rel, await upload.read())
            except Exception as error:
                return JSONResponse({"message": f"File upload failed: {error}"}, status_code=500)
        return JSONResponse({"message": f"File '{upload.filename}' uploaded successfully."})

    async def download(self, request: Request) -> Response:
        rel = self._rel(request)
        if self.workspace.escapes(rel):
            return _denied()
        data = await self.workspace.read(rel)
        if data is None:
            return JSONResponse({"message": "File not found"}, status_code=404)
        name = os.path.basename(rel)
        return Response(
            data,
            media_type="application/octet-stream",
            headers={"Content-Disposition": f"attachment; filename*=utf-8''{urllib.parse.quote(name)}"},
        )

    async def listing(self, request: Request) -> Response:
        rel = self._rel(request)
        if self.workspace.escapes(rel):
            return _denied()
        entries = await self.workspace.listing(rel)
        if entries is None:
            return JSONResponse({"message": "Path is not a directory"}, status_code=404)
        return JSONResponse(entries)

    async def exists(self, request: Request) -> Response:
        rel = self._rel(request)
        if self.workspace.escapes(rel):
            return _denied()
        return JSONResponse({"path": rel, "exists": await self.workspace.exists(rel)})

    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/", self.health),
                Route("/execute", self.execute, methods=["POST"]),
                Route("/upload", self.upload, methods=["POST"]),
                Route("/download/{path:path}", self.download),
                Route("/list/{path:path}", self.listing),
                Route("/exists/{path:path}", self.exists),
            ]
        )


async def relay(
    workspace: PodWorkspace, pod_port: int, client: asyncio.StreamReader, to_client: asyncio.StreamWriter
) -> None:
    """Carry one connection to `pod_port` inside the sandbox, both ways, until either side ends."""
    try:
        inside = await workspace.connect_port(pod_port)
    except Exception:
        to_client.close()
        return
    from_pod, to_pod = await asyncio.open_connection(sock=inside)

    async def pump(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError):
            while data := await source.read(RELAY_CHUNK):
                sink.write(data)
                await sink.drain()
        with contextlib.suppress(OSError):
            sink.write_eof()

    try:
        await asyncio.gather(pump(client, to_pod), pump(from_pod, to_client))
    finally:
        to_pod.close()
        to_client.close()


def forwards_of(text: str) -> dict[int, int]:
    """`POD_PORT=LOCAL_PORT,...` as a mapping; empty text forwards nothing."""
    pairs = [item.split("=") for item in text.split(",") if item]
    return {int(pod_port): int(local) for pod_port, local in pairs}


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="An imitation agent-sandbox pod serving the legacy runtime protocol.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8888)
    parser.add_argument("--state-dir", required=True, help="folder for the pod's local-provider sandbox")
    parser.add_argument("--unisolated", action="store_true", help="run commands without bubblewrap (trusted CI)")
    parser.add_argument(
        "--keep-files",
        action="store_true",
        help="/app lies on a volume that outlives the pod: take up the sandbox in --state-dir again, stop it on exit",
    )
    parser.add_argument(
        "--forward", type=forwards_of, default={}, help="POD_PORT=LOCAL_PORT,...: other pod ports, relayed inside"
    )
    parser.add_argument("--ignore-timeout-field", action="store_true", help="behave like runtimes before 1.0.8")
    parser.add_argument(
        "--no-background",
        action="store_true",
        help="end every process a request started when it returns, as runtimes that allow no background processes do",
    )
    parser.add_argument(
        "--exec-timeout",
        type=float,
        default=float(os.environ.get("SANDBOX_EXEC_TIMEOUT_SECONDS") or DEFAULT_EXEC_CEILING),
        help="server-side limit for commands that name none (reference: SANDBOX_EXEC_TIMEOUT_SECONDS)",
    )
    return parser.parse_args(argv)


async def serve(args: argparse.Namespace) -> None:
    workspace = await PodWorkspace.open(
        args.state_dir,
        isolated=not args.unisolated,
        exec_ceiling=args.exec_timeout,
        keep_background=not args.no_background,
        keep_files=args.keep_files,
    )
    runtime = Runtime(workspace, exec_ceiling=args.exec_timeout, honour_timeout=not args.ignore_timeout_field)
    config = uvicorn.Config(
        runtime.app(), host=args.host, port=args.port, log_level="warning", backlog=2048, lifespan="off"
    )
    relays = [
        await asyncio.start_server(functools.partial(relay, workspace, pod_port), args.host, local)
        for pod_port, local in args.forward.items()
    ]
    # uvicorn's own handlers would raise SIGTERM again once it stopped, killing this process before its sandbox
    # is terminated (leaving the sandbox's disk mounted): the signals end the server here instead.
    server = Server(config)
    for number in (signal.SIGTERM, signal.SIGINT):
        asyncio.get_running_loop().add_signal_handler(number, setattr, server, "should_exit", True)
    try:
        await server.serve()
    finally:
        for listener in relays:
            listener.close()
        await workspace.close()


def main(argv: Sequence[str] | None = None) -> int:
    asyncio.run(serve(parse_args(argv)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
