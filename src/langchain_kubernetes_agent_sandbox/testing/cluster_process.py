"""The imitation cluster as one process: Kubernetes API, controller and router on one loop, pods as children.

When ready it prints one JSON line (`api_url`, `router_url`, `kubeconfig`, `namespace`, `pools`) on stdout;
`FakeCluster` and the `fake-cluster` command start it this way. Test-only endpoints live under `/fake/v1/` on
the API server: fault switches (`GET/PUT /fake/v1/faults`), pods (`GET /fake/v1/pods`) and killing a pod's
runtime (`POST /fake/v1/pods/{namespace}/{name}/kill`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from .controller import Controller, PoolSpec
from .faults import Faults
from .kube_api import KubeApi, kube_api_app
from .pods import DEFAULT_RUNTIME_COMMAND, PodLauncher
from .router import DEFAULT_PROXY_TIMEOUT, Router
from .serving import listen, server_for, url_of
from .store import Store


@dataclass
class ClusterSettings:
    namespace: str = "default"
    pools: list[PoolSpec] = field(default_factory=lambda: [PoolSpec("python-pool", 2)])
    runtime_command: tuple[str, ...] = DEFAULT_RUNTIME_COMMAND
    proxy_timeout: float = DEFAULT_PROXY_TIMEOUT
    api_port: int = 0
    router_port: int = 0
    work_dir: str | None = None
    kubeconfig: str | None = None
    exit_on_stdin_eof: bool = False


def kubeconfig_text(api_url: str, namespace: str) -> str:
    """A kubeconfig naming the imitation API server; JSON is valid YAML, which is what kubeconfig loaders read."""
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "fake-agent-sandbox", "cluster": {"server": api_url}}],
        "users": [{"name": "fake-user", "user": {"token": "fake-token"}}],
        "contexts": [
            {
                "name": "fake-agent-sandbox",
                "context": {"cluster": "fake-agent-sandbox", "user": "fake-user", "namespace": namespace},
            }
        ],
        "current-context": "fake-agent-sandbox",
    }
    return json.dumps(config, indent=2) + "\n"


def admin_routes(faults: Faults, controller: Controller) -> list[Route]:
    async def get_faults(request: Request) -> Response:
        if request.method == "PUT":
            try:
                faults.update(await request.json())
            except (ValueError, TypeError) as error:
                return JSONResponse({"message": str(error)}, status_code=400)
        return JSONResponse(faults.to_json())

    async def pods(_: Request) -> Response:
        listing = [
            {"namespace": namespace, "name": name, "url": pod.url, "ip": pod.ip, "pid": pod.process.pid}
            for (namespace, name), pod in controller.bound.items()
        ]
        return JSONResponse(listing)

    async def kill(request: Request) -> Response:
        pod = controller.pod_for(request.path_params["namespace"], request.path_params["name"])
        if pod is None:
            return JSONResponse({"message": "no such pod"}, status_code=404)
        pod.kill()
        return JSONResponse({"killed": pod.name})

    return [
        Route("/fake/v1/faults", get_faults, methods=["GET", "PUT"]),
        Route("/fake/v1/pods", pods),
        Route("/fake/v1/pods/{namespace}/{name}/kill", kill, methods=["POST"]),
    ]


async def run_cluster(settings: ClusterSettings, announce: Callable[[dict[str, Any]], None]) -> None:
    """Serve until SIGTERM/SIGINT (or stdin closing, when asked); `announce` receives the URLs once ready."""
    with contextlib.ExitStack() as cleanup:
        work_dir = settings.work_dir or cleanup.enter_context(tempfile.TemporaryDirectory(prefix="fake-cluster-"))
        os.chmod(work_dir, 0o755)  # the pods' sandboxes run as an unprivileged user that must reach their folders
        store, faults = Store(), Faults()
        launcher = PodLauncher(settings.runtime_command, os.path.join(work_dir, "pods"), work_dir)
        controller = Controller(store, faults, launcher, settings.namespace, settings.pools)

        def resolve(namespace: str, name: str, port: int) -> str | None:
            pod = controller.pod_for(namespace, name)
            return pod.url_for(port) if pod is not None else None

        router = Router(resolve, faults, settings.proxy_timeout)
        api_sock, router_sock = listen(port=settings.api_port), listen(port=settings.router_port)
        api_url, router_url = url_of(api_sock), url_of(router_sock)
        kubeconfig = settings.kubeconfig or os.path.join(work_dir, "kubeconfig")
        await asyncio.to_thread(Path(kubeconfig).write_text, kubeconfig_text(api_url, settings.namespace))
        servers = [
            server_for(kube_api_app(KubeApi(store, faults), admin_routes(faults, controller))),
            server_for(router.app()),
        ]
        serving = [
            asyncio.ensure_future(server.serve(sockets=[sock]))
            for server, sock in zip(servers, (api_sock, router_sock), strict=True)
        ]
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        if settings.exit_on_stdin_eof:
            loop.add_reader(sys.stdin.fileno(), lambda: stop.set() if not os.read(sys.stdin.fileno(), 4096) else None)
        try:
            await controller.start()
            info = {
                "api_url": api_url,
                "router_url": router_url,
                "kubeconfig": kubeconfig,
                "namespace": settings.namespace,
                "pools": [pool.name for pool in settings.pools],
                "work_dir": work_dir,
            }
            announce(info)
            await stop.wait()
        finally:
            for server in servers:
                server.should_exit = True
            await asyncio.gather(*serving, return_exceptions=True)
            await controller.stop()
            await router.aclose()
