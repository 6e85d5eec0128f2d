"""`FakeCluster`: start the imitation cluster as a child process and drive it from tests.

    with FakeCluster(pools={"python-pool": 2}) as cluster:
        cluster.kubeconfig, cluster.api_url, cluster.router_url
        cluster.set_faults(router_status=504)
        cluster.claims()            # what is left in the namespace

The cluster is only ever a peer on the wire: everything here is HTTP to the child process.
"""

from __future__ import annotations

import json
import selectors
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from types import TracebackType
from typing import Any, Self

import httpx

CLAIMS_PATH = "/apis/extensions.agents.x-k8s.io/v1beta1/namespaces/{namespace}/sandboxclaims"


class FakeCluster:
    """An imitation agent-sandbox cluster in a child process; stops with the `with` block (or `stop()`)."""

    def __init__(
        self,
        pools: Mapping[str, int] | None = None,
        *,
        namespace: str = "default",
        runtime_command: Sequence[str] | None = None,
        unisolated: bool = False,
        proxy_timeout: float | None = None,
        work_dir: str | None = None,
        start_timeout: float = 60.0,
    ) -> None:
        self.namespace = namespace
        self.pools = dict(pools or {"python-pool": 2})
        argv = [sys.executable, "-m", "langchain_kubernetes_agent_sandbox.cli.fake_cluster", "--json"]
        argv += ["--exit-on-stdin-eof", "--namespace", namespace]
        for name, size in self.pools.items():
            argv += ["--pool", f"{name}={size}"]
        if runtime_command is not None:
            argv += ["--runtime-command", " ".join(runtime_command)]
        if unisolated:
            argv.append("--unisolated")
        if proxy_timeout is not None:
            argv += ["--proxy-timeout", str(proxy_timeout)]
        if work_dir is not None:
            argv += ["--work-dir", work_dir]
        self._argv = argv
        self._start_timeout = start_timeout
        self._process: subprocess.Popen[bytes] | None = None
        self.info: dict[str, Any] = {}
        self._http: httpx.Client | None = None

    @property
    def api_url(self) -> str:
        return str(self.info["api_url"])

    @property
    def router_url(self) -> str:
        return str(self.info["router_url"])

    @property
    def kubeconfig(self) -> str:
        return str(self.info["kubeconfig"])

    @property
    def pool(self) -> str:
        """The first declared warm pool."""
        return next(iter(self.pools))

    def start(self) -> Self:
        self._process = subprocess.Popen(self._argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        assert self._process.stdout is not None
        line = self._read_line(self._process.stdout)
        if not line:
            self.stop()
            raise RuntimeError(f"the fake cluster exited before it was ready: {' '.join(self._argv)}")
        self.info = json.loads(line)
        self._http = httpx.Client(base_url=self.api_url, timeout=10.0)
        return self

    def _read_line(self, stream: Any) -> bytes:
        with selectors.DefaultSelector() as selector:
            selector.register(stream, selectors.EVENT_READ)
            if not selector.select(self._start_timeout):
                raise TimeoutError(f"the fake cluster was not ready within {self._start_timeout:g} s")
        return bytes(stream.readline())

    def stop(self) -> None:
        if self._http is not None:
            self._http.close()
            self._http = None
        if self._process is None:
            return
        process, self._process = self._process, None
        if process.stdin is not None:
            process.stdin.close()
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.terminate()
            process.wait(5)
        if process.stdout is not None:
            process.stdout.close()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    @property
    def http(self) -> httpx.Client:
        if self._http is None:
            raise RuntimeError("the fake cluster is not running: use it inside `with FakeCluster() as cluster:`")
        return self._http

    def set_faults(self, **switches: Any) -> dict[str, Any]:
        """Flip fault switches (see `Faults`); returns all of them."""
        response = self.http.put("/fake/v1/faults", json=switches)
        response.raise_for_status()
        return dict(response.json())

    def clear_faults(self) -> None:
        from .faults import Faults

        self.set_faults(**Faults().to_json())

    def wait_for_pool(self, pool: str | None = None, timeout: float = 60.0) -> None:
        """Return once the warm pool holds as many ready sandboxes as it was declared with (after a fault or a
        burst of claims drained it); `TimeoutError` if it does not within `timeout` seconds."""
        name = pool or self.pool
        path = f"/apis/extensions.agents.x-k8s.io/v1beta1/namespaces/{self.namespace}/sandboxwarmpools/{name}"
        give_up_at = time.monotonic() + timeout
        while True:
            status = self.http.get(path).raise_for_status().json().get("status") or {}
            if status.get("readyReplicas", 0) >= self.pools[name]:
                return
            if time.monotonic() > give_up_at:
                raise TimeoutError(f"warm pool {name!r} was not refilled within {timeout:g} s: {status}")
            time.sleep(0.1)

    def claims(self, label_selector: str | None = None) -> list[dict[str, Any]]:
        """The SandboxClaims in the namespace, as the API serves them."""
        params = {"labelSelector": label_selector} if label_selector else {}
        response = self.http.get(CLAIMS_PATH.format(namespace=self.namespace), params=params)
        response.raise_for_status()
        return list(response.json()["items"])

    def pods(self) -> list[dict[str, Any]]:
        """Pods bound to claims: namespace, name (= Sandbox name), url, ip, pid."""
        response = self.http.get("/fake/v1/pods")
        response.raise_for_status()
        return list(response.json())

    def kill_runtime(self, sandbox_name: str) -> None:
        """SIGKILL the runtime process of the pod behind `sandbox_name`, as a node failure would."""
        response = self.http.post(f"/fake/v1/pods/{self.namespace}/{sandbox_name}/kill")
        response.raise_for_status()
