"""`ControlPlane`: a real Kubernetes control plane with agent-sandbox on it, as processes on this machine.

    binaries = build_control_plane(Path("tests/controlplane"))
    with ControlPlane(binaries) as cluster:
        cluster.kubeconfig, cluster.api_url, cluster.router_url
        cluster.restart("kube-apiserver")

etcd, kube-apiserver, kube-controller-manager (garbage collector, service accounts, namespaces), the agent-sandbox
controller with its extensions, the Go sandbox-router and a pod runner in the kubelet's place, each a process of
its own so that a test can stop or restart one. Everything listens on 127.0.0.1 only; pods have addresses of their
own (`pod_network`). The API server authorises with RBAC: the kubeconfig here is an administrator's (group
`system:masters`), and `token_for()` issues a service account's token, limited to what its roles grant.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import httpx

from .go_build import ControlPlaneBinaries
from .pod_network import PodNetwork
from .pod_runner import NETNS_RECORDS, NODE_NAME
from .pods import FORWARDED_PORTS

COMPONENTS = (
    "etcd",
    "kube-apiserver",
    "kube-controller-manager",
    "agent-sandbox-controller",
    "sandbox-router",
    "kubelet",
    "pod-runner",
)
"""In the order they start; they stop in the reverse one."""

CONTROLLERS = "garbagecollector,serviceaccount,namespace,resourcequota"
"""kube-controller-manager's controllers the tests need: deleting a claim deletes its Sandbox and Pod (garbage
collector); a namespace gets its `default` service account, without which no Pod is admitted; deleting a
namespace empties it; a ResourceQuota's usage is counted, without which the API server admits nothing it limits."""

START_TIMEOUT = 120.0


def reference_runtime_command() -> list[str]:
    """The project's reference-compatible runtime, serving the legacy protocol on the pod's address, and the pod's
    agent port and preview ports (relayed into its sandbox) as a pod network would reach them; its files outlive the
    pod where the pod mounts a claim at /app."""
    return [
        sys.executable,
        "-m",
        "langchain_kubernetes_agent_sandbox.testing.runtime",
        "--host",
        "{ip}",
        "--port",
        "{port}",
        "--state-dir",
        "{state_dir}",
        "{keep_files}",
        "--forward",
        ",".join(f"{port}={port}" for port in FORWARDED_PORTS),
    ]


SANDBOX_USER = 65534
"""The unprivileged user a sandboxd pod's processes run as (the upstream image runs sandboxd as a non-root user)."""


def sandboxd_command(binary: Path) -> list[str]:
    """The real sandboxd with its container's args, in a filesystem of its own as its image would give it: the
    machine's system folders read-only, an empty environment, a private `/tmp`, and writable `/workspace` (the
    image's root directory) and `/app` (where the project's template mounts its workspace volume), as an
    unprivileged user. Its network is the pod's."""
    folders = "{state_dir}/workspace {state_dir}/app"
    prepare = f'mkdir -p {folders} && chown {SANDBOX_USER}:{SANDBOX_USER} {folders} && exec "$@"'
    system = [part for folder in ("/usr", "/etc") for part in ("--ro-bind", folder, folder)]
    merged = [part for link in ("bin", "lib", "lib64", "sbin") for part in ("--symlink", f"usr/{link}", f"/{link}")]
    return [
        "sh",
        "-c",
        prepare,
        "sandboxd-container",
        "bwrap",
        "--tmpfs", "/",
        *system,
        *merged,
        "--dev", "/dev",
        "--proc", "/proc",
        "--perms", "1777", "--tmpfs", "/tmp",
        "--bind", "{state_dir}/workspace", "/workspace",
        "--bind", "{state_dir}/app", "/app",
        "--ro-bind", str(binary), "/sandboxd",
        # as python images have it
        "--dir", "/opt/python/bin", "--symlink", "/usr/bin/python3", "/opt/python/bin/python",
        "--unshare-pid", "--unshare-ipc", "--unshare-uts", "--die-with-parent",
        "--clearenv", "--setenv", "PATH", "/opt/python/bin:/usr/local/bin:/usr/bin:/bin", "--setenv", "HOME", "/tmp",
        "--chdir", "/workspace",
        "--",
        "setpriv", f"--reuid={SANDBOX_USER}", f"--regid={SANDBOX_USER}", "--clear-groups", "--",
        "/sandboxd",
        "{args}",
    ]  # fmt: skip


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class ControlPlaneError(RuntimeError):
    """A component did not start; the message ends with the tail of its log."""


class ControlPlane:
    """The control plane's processes; stops with the `with` block (or `stop()`), leaving nothing behind."""

    def __init__(
        self,
        binaries: ControlPlaneBinaries,
        *,
        work_dir: str | None = None,
        runtimes: Mapping[str, Sequence[str]] | None = None,
        proxy_timeout: float = 180.0,
    ) -> None:
        self.binaries = binaries
        self._own_dir = work_dir is None
        self.work_dir = Path(work_dir or tempfile.mkdtemp(prefix="controlplane-"))
        self.runtimes = dict(
            runtimes
            or {
                "python-runtime-sandbox": reference_runtime_command(),
                "sandboxd": sandboxd_command(binaries.upstream("sandboxd")),
                "socat": ["socat", "{args}"],
            }
        )
        self.proxy_timeout = proxy_timeout
        self.admin_token = secrets.token_hex(16)
        self.etcd_url = f"http://127.0.0.1:{_free_port()}"
        self.api_url = f"https://127.0.0.1:{_free_port()}"
        self.router_url = f"http://127.0.0.1:{_free_port()}"
        self.kubelet_address = f"127.0.0.1:{_free_port()}"
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        self._http: httpx.Client | None = None

    # Paths

    @property
    def pki(self) -> Path:
        return self.work_dir / "pki"

    @property
    def ca_file(self) -> str:
        return str(self.pki / "ca.crt")

    @property
    def kubeconfig(self) -> str:
        """An administrator's kubeconfig (group system:masters)."""
        return str(self.work_dir / "kubeconfig")

    def log(self, component: str) -> Path:
        return self.work_dir / "logs" / f"{component}.log"

    @property
    def http(self) -> httpx.Client:
        """An administrator's client of the API server."""
        if self._http is None:
            self._http = httpx.Client(
                base_url=self.api_url,
                headers={"Authorization": f"Bearer {self.admin_token}"},
                verify=ssl.create_default_context(cafile=self.ca_file),
                timeout=30.0,
            )
        return self._http

    # Lifecycle

    def start(self) -> Self:
        PodNetwork()  # fails now, with what is missing, rather than in the pod runner later
        # The pods' sandboxes run as an unprivileged user that must reach their folders in here.
        self.work_dir.mkdir(parents=True, exist_ok=True)
        self.work_dir.chmod(0o755)
        try:
            (self.work_dir / "logs").mkdir(parents=True, exist_ok=True)
            subprocess.run([str(self.binaries.controlplane), "pki", str(self.pki)], check=True)
            (self.pki / "tokens.csv").write_text(f'{self.admin_token},admin,admin,"system:masters"\n')
            Path(self.kubeconfig).write_text(kubeconfig_text(self.api_url, self.ca_file, self.admin_token))
            for component in COMPONENTS:
                self._start(component)
                if component == "kube-apiserver":
                    self._apply_crds()
                if component == "kubelet":
                    self._register_node()
        except BaseException:
            self.stop()
            raise
        return self

    def _argv(self, component: str) -> list[str]:
        plane, kubeconfig = str(self.binaries.controlplane), self.kubeconfig
        if component == "etcd":
            return [plane, "etcd", str(self.work_dir / "etcd"), self.etcd_url]
        if component == "kube-apiserver":
            return [plane, "kube-apiserver", *self._apiserver_flags()]
        if component == "kube-controller-manager":
            return [
                plane,
                "kube-controller-manager",
                f"--kubeconfig={kubeconfig}",
                f"--controllers={CONTROLLERS}",
                "--leader-elect=false",
                "--secure-port=0",
                "--concurrent-gc-syncs=5",
                "--v=1",
            ]
        if component == "agent-sandbox-controller":
            return [
                str(self.binaries.upstream("agent-sandbox-controller")),
                f"--kubeconfig={kubeconfig}",
                "--extensions=true",
                "--leader-elect=false",
                # CRD conversion webhooks need a Service the API server can reach; the tests speak v1beta1 only.
                "--enable-webhook=false",
                "--metrics-bind-address=0",
                "--health-probe-bind-address=0",
            ]
        if component == "sandbox-router":
            return [
                str(self.binaries.upstream("sandbox-router")),
                f"--kubeconfig={kubeconfig}",
                f"--http-bind-address={self.router_url.removeprefix('http://')}",
                f"--metrics-bind-address=127.0.0.1:{_free_port()}",
                f"--health-probe-bind-address=127.0.0.1:{_free_port()}",
                f"--proxy-timeout={self.proxy_timeout:g}s",
                "--access-log=false",
            ]
        if component == "kubelet":
            # The API server's serving pair serves here too: it is for 127.0.0.1, signed by the CA the API server
            # checks kubelets against.
            return [
                plane,
                "kubelet",
                self.kubelet_address,
                str(self.pki / "apiserver.crt"),
                str(self.pki / "apiserver.key"),
                str(self.work_dir / "node" / NETNS_RECORDS),
            ]
        if component == "pod-runner":
            return [
                sys.executable,
                "-m",
                "langchain_kubernetes_agent_sandbox.testing.pod_runner",
                "--api-url",
                self.api_url,
                "--token-file",
                str(self.pki / "runner-token"),
                "--ca-file",
                self.ca_file,
                "--work-dir",
                str(self.work_dir / "node"),
                "--runtimes",
                json.dumps(self.runtimes),
            ]
        raise ValueError(f"unknown component {component!r}; one of {', '.join(COMPONENTS)}")

    def _apiserver_flags(self) -> list[str]:
        port = self.api_url.rsplit(":", 1)[1]
        return [
            f"--etcd-servers={self.etcd_url}",
            "--bind-address=127.0.0.1",
            f"--secure-port={port}",
            f"--cert-dir={self.pki}",
            f"--tls-cert-file={self.pki / 'apiserver.crt'}",
            f"--tls-private-key-file={self.pki / 'apiserver.key'}",
            f"--client-ca-file={self.pki / 'ca.crt'}",
            f"--token-auth-file={self.pki / 'tokens.csv'}",
            f"--service-account-key-file={self.pki / 'sa.pub'}",
            f"--service-account-signing-key-file={self.pki / 'sa.key'}",
            "--service-account-issuer=https://kubernetes.default.svc",
            "--api-audiences=https://kubernetes.default.svc",
            "--authorization-mode=RBAC",
            "--service-cluster-ip-range=10.96.0.0/16",
            # The API server's own address is a loopback one, which no Endpoints may hold.
            "--endpoint-reconciler-type=none",
            f"--kubelet-certificate-authority={self.pki / 'ca.crt'}",
            "--kubelet-preferred-address-types=InternalIP",
            "--enable-priority-and-fairness=false",
            "--profiling=false",
            "--v=0",
        ]

    def _start(self, component: str) -> None:
        if component in self.processes:
            raise ControlPlaneError(f"{component} is already running: stop it first")
        if component == "pod-runner":
            (self.pki / "runner-token").write_text(self.admin_token)
        with open(self.log(component), "ab") as log:
            self.processes[component] = subprocess.Popen(
                self._argv(component),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                start_new_session=True,
            )
        self._wait_ready(component)

    def _wait_ready(self, component: str) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        while not self._ready(component):
            process = self.processes[component]
            if process.poll() is not None:
                raise ControlPlaneError(f"{component} exited with {process.returncode}:\n{self._tail(component)}")
            if time.monotonic() > deadline:
                late = f"{component} was not ready within {START_TIMEOUT:g} s"
                raise ControlPlaneError(f"{late}:\n{self._tail(component)}")
            time.sleep(0.1)

    def _ready(self, component: str) -> bool:
        try:
            if component == "etcd":
                return httpx.get(self.etcd_url + "/health", timeout=2).status_code == 200
            if component == "kube-apiserver":
                return self.http.get("/readyz", timeout=2).status_code == 200
            if component == "kube-controller-manager":
                # Ready when the service account controller has done its first work.
                return self.http.get("/api/v1/namespaces/default/serviceaccounts/default").status_code == 200
            if component == "sandbox-router":
                return httpx.get(self.router_url + "/healthz", timeout=2).status_code == 200
            if component == "kubelet":
                tls = ssl.create_default_context(cafile=self.ca_file)
                kubelet = httpx.get(f"https://{self.kubelet_address}/healthz", verify=tls, timeout=2)
                return kubelet.status_code == 404  # it serves port-forwards only
        except (httpx.HTTPError, OSError):
            return False
        # The controller and the pod runner show that they work by what they do; a second after start they
        # have either failed (exited) or are watching.
        return time.monotonic() - self._started_at(component) > 1.0

    def _started_at(self, component: str) -> float:
        stamp = self.log(component).with_suffix(".started")
        if not stamp.exists():
            stamp.write_text(str(time.monotonic()))
        return float(stamp.read_text())

    def diagnostics(self) -> str:
        """The end of every component's and every pod's log, for a failure message."""
        logs = sorted((self.work_dir / "logs").glob("*.log")) + sorted((self.work_dir / "node" / "logs").glob("*.log"))
        return "\n".join(f"--- {log.name}:\n{log.read_text(errors='replace')[-1500:]}" for log in logs)

    def _tail(self, component: str) -> str:
        with contextlib.suppress(OSError):
            return self.log(component).read_text(errors="replace")[-3000:]
        return ""

    def _register_node(self) -> None:
        """The Node the pod runner binds pods to, with the kubelet endpoint the API server proxies
        `pods/portforward` to."""
        host, port = self.kubelet_address.rsplit(":", 1)
        node = {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {"name": NODE_NAME},
            "status": {
                "addresses": [{"type": "InternalIP", "address": host}],
                "daemonEndpoints": {"kubeletEndpoint": {"Port": int(port)}},
            },
        }
        answer = self.http.post("/api/v1/nodes", json=node)
        if answer.status_code != 409:
            answer.raise_for_status()

    def _apply_crds(self) -> None:
        path = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions"
        for crd_file in self.binaries.crds:
            crd = json.loads(crd_file.read_text())
            answer = self.http.post(path, json=crd)
            if answer.status_code != 409:
                answer.raise_for_status()
        deadline = time.monotonic() + START_TIMEOUT
        for crd_file in self.binaries.crds:
            name = json.loads(crd_file.read_text())["metadata"]["name"]
            while not _established(self.http.get(f"{path}/{name}").json()):
                if time.monotonic() > deadline:
                    raise ControlPlaneError(f"CRD {name} was not established within {START_TIMEOUT:g} s")
                time.sleep(0.05)

    def stop_component(self, component: str) -> None:
        """SIGTERM one component (SIGKILL after a grace) and wait for it."""
        process = self.processes.pop(component, None)
        if process is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        # The pod runner ends every pod (processes, network namespace, files) before it exits: give it the time.
        grace = 60 if component == "pod-runner" else 10
        try:
            process.wait(grace)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        self.log(component).with_suffix(".started").unlink(missing_ok=True)

    def start_component(self, component: str) -> None:
        self._start(component)

    def restart(self, component: str) -> None:
        self.stop_component(component)
        self._start(component)

    def stop(self) -> None:
        for component in reversed(COMPONENTS):
            self.stop_component(component)
        if self._http is not None:
            self._http.close()
            self._http = None
        if self._own_dir:
            shutil.rmtree(self.work_dir, ignore_errors=True)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # Reading and writing the cluster

    def apply(self, manifest: dict[str, Any]) -> dict[str, Any]:
        """Server-side apply of one object as the administrator."""
        answer = self.http.patch(
            object_path(manifest),
            params={"fieldManager": "tests", "force": "true"},
            content=json.dumps(manifest),
            headers={"Content-Type": "application/apply-patch+yaml"},
        )
        answer.raise_for_status()
        return dict(answer.json())

    def token_for(self, namespace: str, service_account: str, seconds: int = 3600) -> str:
        """A bound token of a service account (TokenRequest), with exactly the rights its roles grant."""
        request = {
            "apiVersion": "authentication.k8s.io/v1",
            "kind": "TokenRequest",
            "spec": {"expirationSeconds": seconds},
        }
        path = f"/api/v1/namespaces/{namespace}/serviceaccounts/{service_account}/token"
        return str(self.http.post(path, json=request).raise_for_status().json()["status"]["token"])

    def kubeconfig_for(self, namespace: str, service_account: str) -> str:
        """A kubeconfig file that authenticates as the service account; its path."""
        path = self.work_dir / f"kubeconfig-{namespace}-{service_account}"
        token = self.token_for(namespace, service_account)
        path.write_text(kubeconfig_text(self.api_url, self.ca_file, token, namespace))
        path.chmod(0o600)
        return str(path)

    def pod_netns(self, namespace: str, name: str) -> str:
        """The network namespace the pod runner gave the pod (run a command in it with `ip netns exec`)."""
        pod = self.http.get(f"/api/v1/namespaces/{namespace}/pods/{name}").raise_for_status().json()
        pod_ip = pod["status"]["podIP"]
        listing = subprocess.run(
            ["ip", "-all", "netns", "exec", "ip", "-o", "-4", "addr", "show", "dev", "eth0"],
            capture_output=True,
            text=True,
            check=False,
        ).stdout
        netns = ""
        for line in listing.splitlines():
            if line.startswith("netns: "):
                netns = line.removeprefix("netns: ").strip()
            elif f" {pod_ip}/" in line:
                return netns
        raise LookupError(f"no network namespace holds pod {namespace}/{name}'s address {pod_ip}")

    def pod_pids(self, namespace: str, name: str) -> list[int]:
        """The processes in the pod's network namespace (its containers' runtimes and what they started)."""
        netns = self.pod_netns(namespace, name)
        listed = subprocess.run(["ip", "netns", "pids", netns], capture_output=True, text=True, check=True).stdout
        return [int(pid) for pid in listed.split()]

    def kill_pod(self, namespace: str, name: str) -> int:
        """SIGKILL every process in the pod's network namespace (its containers' runtimes), as a crash would;
        the pod runner then restarts them as the pod's restartPolicy says. Returns how many were killed."""
        pids = self.pod_pids(namespace, name)
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        return len(pids)

    def memory_bytes(self) -> dict[str, int]:
        """Resident memory of each component, with its children (the pod runner's pods)."""
        return {name: _tree_rss(process.pid) for name, process in self.processes.items()}


def _established(crd: dict[str, Any]) -> bool:
    conditions = crd.get("status", {}).get("conditions") or []
    return any(c["type"] == "Established" and c["status"] == "True" for c in conditions)


PLURALS = {
    "Namespace": "namespaces",
    "ConfigMap": "configmaps",
    "ResourceQuota": "resourcequotas",
    "ServiceAccount": "serviceaccounts",
    "Role": "roles",
    "RoleBinding": "rolebindings",
    "ClusterRole": "clusterroles",
    "ClusterRoleBinding": "clusterrolebindings",
    "SandboxTemplate": "sandboxtemplates",
    "SandboxWarmPool": "sandboxwarmpools",
    "SandboxClaim": "sandboxclaims",
    "Sandbox": "sandboxes",
}


def object_path(manifest: dict[str, Any]) -> str:
    """The API path of one object (kinds the tests apply only)."""
    api_version, kind, meta = manifest["apiVersion"], manifest["kind"], manifest["metadata"]
    base = f"/api/{api_version}" if "/" not in api_version else f"/apis/{api_version}"
    namespace = meta.get("namespace")
    scope = f"/namespaces/{namespace}" if namespace and kind != "Namespace" else ""
    return f"{base}{scope}/{PLURALS[kind]}/{meta['name']}"


def kubeconfig_text(api_url: str, ca_file: str, token: str, namespace: str = "default") -> str:
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "controlplane", "cluster": {"server": api_url, "certificate-authority": ca_file}}],
        "users": [{"name": "user", "user": {"token": token}}],
        "contexts": [
            {"name": "controlplane", "context": {"cluster": "controlplane", "user": "user", "namespace": namespace}}
        ],
        "current-context": "controlplane",
    }
    return json.dumps(config, indent=2) + "\n"


def _tree_rss(pid: int) -> int:
    total = 0
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                total += int(line.split()[1]) * 1024
        for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split():
            total += _tree_rss(int(child))
    return total
