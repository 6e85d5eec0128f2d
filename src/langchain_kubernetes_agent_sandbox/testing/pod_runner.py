"""A kubelet stand-in for the real control plane: runs Pods as processes in network namespaces of their own.

There is no container runtime on a test machine, so this watches Pods through the real API server, binds each
new one to its node (there is no scheduler either), starts for each container the process that its image stands
for (`RuntimeTable`) in the pod's own network namespace with the pod's own address, probes it as the container's
readiness probe says, and reports the Pod Running and Ready with its `podIP` as a kubelet would. A process that
exits is restarted as the pod's `restartPolicy` says; a Pod being deleted has its processes ended and is then
removed with a grace period of 0, which is how a kubelet confirms a deletion.

A container that mounts a PersistentVolumeClaim at /app keeps its files in a folder of that claim's (`volumes/`),
not of the pod's: its command gets `{keep_files}` as `--keep-files` and `{state_dir}` as that folder, so the next
pod on the claim (a suspended Sandbox resumed) finds them. A claim's folder goes once the claim is deleted.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import shutil
import signal
import ssl
import sys
import time
from collections.abc import AsyncIterator, Coroutine, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from ..providers.local.state import discard_state
from .pod_network import PodAddress, PodNetwork

log = logging.getLogger(__name__)

NODE_NAME = "test-node"
NETNS_RECORDS = "netns"
"""The runner's folder that says which network namespace holds which pod (a file `NAMESPACE_POD` each, holding its
name): the kubelet's port-forward endpoint (`tests/controlplane/kubelet.go`) connects there."""
FREEZER = Path("/sys/fs/cgroup/freezer")
READY_TIMEOUT = 60.0
RETRY_FOR = 120.0
"""How long a status report is retried while the API server is away."""
STOP_GRACE = 5.0

RuntimeTable = Mapping[str, Sequence[str]]
"""Image name fragment -> the command that stands for it; `{ip}`, `{port}` (the container's first port),
`{state_dir}` (a folder of the pod's own, or of the claim it mounts at /app) and `{keep_files}` (an argument of its
own: `--keep-files` for a container with /app on a claim, else dropped) are filled in, and a part `{args}` stands for
the container's `args` (with `$(NAME)` references to its env expanded, as a kubelet does). The first fragment found
in a container's image wins."""
KEEP_FILES = "{keep_files}"


class ApiAccess:
    """How the runner reaches the API server: its URL, a bearer token and the CA that signed its certificate."""

    def __init__(self, url: str, token: str, ca_file: str) -> None:
        self.url, self.token, self.ca_file = url, token, ca_file

    def client(self, timeout: float | None = 30.0) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            base_url=self.url,
            headers={"Authorization": f"Bearer {self.token}"},
            verify=ssl.create_default_context(cafile=self.ca_file),
            timeout=timeout,
        )


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _condition(kind: str, status: bool) -> dict[str, Any]:
    return {"type": kind, "status": "True" if status else "False", "lastTransitionTime": _now()}


class PodCgroup:
    """A cgroup v1 freezer group holding every process of one pod, so that ending the pod ends them all.

    The runtimes fork sandboxes into sessions of their own (out of reach of a process group kill) and move them
    into memory and pids cgroups of their own, but not out of this hierarchy, which nothing else here uses.
    Where there is no v1 freezer (pure cgroup v2 hosts), `path` is None and ending falls back to the processes'
    groups.
    """

    def __init__(self, name: str) -> None:
        self.path: Path | None = FREEZER / name if FREEZER.is_dir() else None
        if self.path is not None:
            self.path.mkdir(exist_ok=True)

    def wrap(self, argv: list[str]) -> list[str]:
        """`argv`, started inside the group before it can fork."""
        if self.path is None:
            return argv
        return ["sh", "-c", 'echo $$ > "$0" && exec "$@"', str(self.path / "cgroup.procs"), *argv]

    async def kill_all(self) -> None:
        if self.path is None:
            return
        for _ in range(100):
            pids = (self.path / "cgroup.procs").read_text().split()
            if not pids:
                break
            for pid in pids:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(int(pid), signal.SIGKILL)
            await asyncio.sleep(0.05)
        with contextlib.suppress(OSError):
            self.path.rmdir()


def _environment(container: Mapping[str, Any], pod_ip: str) -> dict[str, str]:
    """A container's env by name: plain values, and the downward API's `status.podIP` (what templates use to bind
    the pod's address); other sources are left out, so references to them stay as written, as a kubelet leaves an
    unknown one."""
    variables: dict[str, str] = {}
    for entry in container.get("env", []):
        field_path = ((entry.get("valueFrom") or {}).get("fieldRef") or {}).get("fieldPath")
        if "value" in entry:
            variables[entry["name"]] = str(entry["value"])
        elif field_path == "status.podIP":
            variables[entry["name"]] = pod_ip
    return variables


def _expand(part: str, variables: Mapping[str, str]) -> str:
    for name, value in variables.items():
        part = part.replace(f"$({name})", value)
    return part


@dataclass
class Container:
    name: str
    argv: list[str]
    probe: tuple[str, int] | None
    """(path, port) of an httpGet readiness probe; None: ready once started."""
    process: asyncio.subprocess.Process | None = None
    restarts: int = 0
    volume: str | None = None
    """The claim (`namespace_name`) whose folder holds its /app, or None when its files are the pod's own."""


def app_claim(pod: dict[str, Any], container: dict[str, Any]) -> str | None:
    """The PersistentVolumeClaim `container` mounts at /app, as `namespace_claim`, or None."""
    claims = {
        volume["name"]: volume["persistentVolumeClaim"]["claimName"]
        for volume in pod["spec"].get("volumes") or []
        if volume.get("persistentVolumeClaim")
    }
    for mount in container.get("volumeMounts") or []:
        if mount.get("mountPath", "").rstrip("/") == "/app" and mount.get("name") in claims:
            return f"{pod['metadata']['namespace']}_{claims[mount['name']]}"
    return None


@dataclass
class RunningPod:
    namespace: str
    name: str
    uid: str
    address: PodAddress
    state_dir: Path
    containers: list[Container]
    restart_policy: str
    cgroup: PodCgroup
    task: asyncio.Task[None] | None = None
    stopping: bool = False
    started_at: str = field(default_factory=_now)

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"


class PodRunner:
    """Runs every Pod the API server has, until `stop()`. Start with `await runner.start()`."""

    def __init__(self, api: ApiAccess, runtimes: RuntimeTable, work_dir: Path) -> None:
        self.api = api
        self.runtimes = dict(runtimes)
        self.work_dir = work_dir
        self.network = PodNetwork()
        self.pods: dict[str, RunningPod] = {}
        self._http: httpx.AsyncClient | None = None
        self._watch: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    def _spawn(self, work: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        """A task the runner keeps until it ends (the loop holds tasks only weakly)."""
        task = asyncio.ensure_future(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    @property
    def http(self) -> httpx.AsyncClient:
        if self._http is None:
            raise RuntimeError("the pod runner is not started")
        return self._http

    async def start(self) -> None:
        await asyncio.to_thread(self.network.open)
        for folder in (
            self.work_dir,
            self.work_dir / "pods",
            self.work_dir / "logs",
            self.work_dir / NETNS_RECORDS,
            self.work_dir / "volumes",
        ):
            folder.mkdir(parents=True, exist_ok=True)
            folder.chmod(0o755)  # the pods' sandboxes run as an unprivileged user that must reach their folders
        self._http = self.api.client()
        self._watch = asyncio.ensure_future(self._watch_pods())

    async def stop(self) -> None:
        if self._watch is not None:
            self._watch.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watch
        await asyncio.gather(*(self._end(pod) for pod in list(self.pods.values())), return_exceptions=True)
        for volume in list((self.work_dir / "volumes").iterdir()):
            await asyncio.to_thread(discard_state, volume)
        if self._http is not None:
            await self._http.aclose()
        await asyncio.to_thread(self.network.close)

    def kill(self, namespace: str, name: str) -> None:
        """SIGKILL the processes of one pod, as an OOM kill or a crash would; the pod's restart policy follows."""
        pod = self.pods[f"{namespace}/{name}"]
        for container in pod.containers:
            if container.process is not None and container.process.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(container.process.pid, signal.SIGKILL)

    # Watching

    async def _events(self) -> AsyncIterator[tuple[str, dict[str, Any]]]:
        """Every pod as ADDED, then changes; relists when the watch has expired (410), as informers do."""
        version = ""
        while True:
            if not version:
                listing = (await self.http.get("/api/v1/pods")).raise_for_status().json()
                version = listing["metadata"]["resourceVersion"]
                listed = {f"{i['metadata']['namespace']}/{i['metadata']['name']}" for i in listing["items"]}
                for key, pod in list(self.pods.items()):
                    if key not in listed:  # deleted while the watch was down: no event will say so
                        self._stop_soon(pod)
                for item in listing["items"]:
                    yield "ADDED", item
            params = {"watch": "1", "resourceVersion": version, "allowWatchBookmarks": "true", "timeoutSeconds": "300"}
            try:
                async with self.http.stream("GET", "/api/v1/pods", params=params, timeout=None) as response:
                    response.raise_for_status()
                    async for line in response.aiter_lines():
                        if not line:
                            continue
                        event = json.loads(line)
                        kind, item = event["type"], event["object"]
                        if kind == "ERROR":
                            version = ""  # expired: list again
                            break
                        version = item["metadata"]["resourceVersion"]
                        if kind != "BOOKMARK":
                            yield kind, item
            except (httpx.TransportError, httpx.HTTPStatusError) as error:
                # The API server is restarting (a test may do that): wait for it, then go on from where we were.
                log.info("pod watch interrupted (%s); reconnecting", error)
                await asyncio.sleep(0.5)

    async def _watch_pods(self) -> None:
        while True:
            try:
                async for kind, item in self._events():
                    self._on_event(kind, item)
            except (httpx.TransportError, httpx.HTTPStatusError) as error:
                log.info("pod list failed (%s); retrying", error)
                await asyncio.sleep(0.5)

    def _on_event(self, kind: str, item: dict[str, Any]) -> None:
        meta = item["metadata"]
        key = f"{meta['namespace']}/{meta['name']}"
        running = self.pods.get(key)
        if running is not None and running.uid != meta["uid"]:
            self._stop_soon(running)  # a new pod with the old one's name
            running = None
        if kind == "DELETED" or meta.get("deletionTimestamp"):
            if running is not None:
                self._stop_soon(running, confirm=kind != "DELETED")
            elif kind != "DELETED":
                self._spawn(self._confirm_deletion(meta["namespace"], meta["name"], meta["uid"]))
            return
        if running is None and item.get("status", {}).get("phase") not in ("Succeeded", "Failed"):
            pod = self._admit(item)
            if pod is not None:
                self.pods[key] = pod
                pod.task = self._spawn(self._run(pod, item))

    def _admit(self, item: dict[str, Any]) -> RunningPod | None:
        meta, spec = item["metadata"], item["spec"]
        containers: list[Container] = []
        for container in spec.get("containers", []):
            command = next((argv for part, argv in self.runtimes.items() if part in container.get("image", "")), None)
            if command is None:
                message = f"the test pod runner has no runtime for image {container.get('image')!r}"
                self._spawn(self._fail(meta["namespace"], meta["name"], message))
                return None
            ports = [port["containerPort"] for port in container.get("ports", [])]
            port = str(ports[0] if ports else 8888)
            probe = (container.get("readinessProbe") or {}).get("httpGet")
            volume = app_claim(item, container)
            argv: list[str] = []
            for part in command:
                if part == "{args}":
                    argv += container.get("args", [])
                elif part == KEEP_FILES:
                    argv += ["--keep-files"] if volume else []
                else:
                    argv.append(part.replace("{port}", port))
            containers.append(
                Container(
                    container["name"],
                    argv,
                    (probe.get("path", "/"), int(probe["port"])) if probe else None,
                    volume=volume,
                )
            )
        state_dir = self.work_dir / "pods" / f"{meta['namespace']}_{meta['name']}_{meta['uid'][:8]}"
        address = self.network.add()
        for container, declared in zip(containers, spec.get("containers", []), strict=True):
            variables = _environment(declared, address.ip)
            folder = str(self._folder(state_dir, container))
            container.argv = [
                _expand(part, variables).replace("{ip}", address.ip).replace("{state_dir}", folder)
                for part in container.argv
            ]
        cgroup = PodCgroup(address.netns)
        (self.work_dir / NETNS_RECORDS / f"{meta['namespace']}_{meta['name']}").write_text(address.netns)
        return RunningPod(
            meta["namespace"], meta["name"], meta["uid"], address, state_dir, containers, spec["restartPolicy"], cgroup
        )

    # Running

    async def _run(self, pod: RunningPod, item: dict[str, Any]) -> None:
        try:
            if not item["spec"].get("nodeName"):
                await self._bind(pod)
            for container in pod.containers:
                await self._start_container(pod, container)
            await self._report(pod, ready=False)
            await self._until_ready(pod)
            await self._report(pod, ready=True)
            await self._supervise(pod)
        except asyncio.CancelledError:
            raise
        except Exception as error:  # a pod that cannot start fails; the runner goes on with the others
            log.warning("pod %s failed: %s", pod.key, error)
            with contextlib.suppress(httpx.HTTPError):
                await self._fail(pod.namespace, pod.name, str(error))

    async def _bind(self, pod: RunningPod) -> None:
        binding = {
            "apiVersion": "v1",
            "kind": "Binding",
            "metadata": {"name": pod.name, "uid": pod.uid},
            "target": {"apiVersion": "v1", "kind": "Node", "name": NODE_NAME},
        }
        path = f"/api/v1/namespaces/{pod.namespace}/pods/{pod.name}/binding"
        (await self._persist("POST", path, json=binding)).raise_for_status()

    def _folder(self, state_dir: Path, container: Container) -> Path:
        """Where the container keeps its files: its claim's folder, or one of the pod's."""
        return state_dir / container.name if container.volume is None else self.work_dir / "volumes" / container.volume

    async def _start_container(self, pod: RunningPod, container: Container) -> None:
        (pod.state_dir / container.name).mkdir(parents=True, exist_ok=True)
        self._folder(pod.state_dir, container).mkdir(parents=True, exist_ok=True)
        pod.state_dir.chmod(0o755)
        log_path = self.work_dir / "logs" / f"{pod.namespace}_{pod.name}_{container.name}.log"
        with open(log_path, "ab") as output:  # noqa: ASYNC230 - opening a log file does not block for long
            container.process = await asyncio.create_subprocess_exec(
                # nsenter, not `ip netns exec`: that one also mounts a sysfs of the namespace over /sys, which hides
                # /sys/fs/cgroup, and the runtime's sandboxes would lose their cgroups (falling back to rlimits).
                *pod.cgroup.wrap(["nsenter", f"--net=/run/netns/{pod.address.netns}", "--", *container.argv]),
                stdin=asyncio.subprocess.DEVNULL,
                stdout=output,
                stderr=output,
                start_new_session=True,
            )

    async def _until_ready(self, pod: RunningPod, *, restarting: bool = False) -> None:
        """Wait for every container's readiness probe. While `restarting` (after a crash), a container found ended
        is restarted too: several can end at once (a pod's processes killed together), and one's probe may need
        another (a sidecar that publishes its port)."""
        deadline = time.monotonic() + READY_TIMEOUT
        async with httpx.AsyncClient(timeout=2.0) as probe_client:
            for container in pod.containers:
                while container.probe is not None:
                    if container.process is None or container.process.returncode is not None:
                        if not restarting:
                            raise RuntimeError(f"container {container.name} exited before it was ready")
                        await self._restart_ended(pod)
                    path, port = container.probe
                    with contextlib.suppress(httpx.HTTPError):
                        answer = await probe_client.get(f"http://{pod.address.ip}:{port}{path}")
                        if 200 <= answer.status_code < 400:
                            break
                    if time.monotonic() > deadline:
                        raise RuntimeError(f"container {container.name} was not ready within {READY_TIMEOUT:g} s")
                    await asyncio.sleep(0.05)

    async def _supervise(self, pod: RunningPod) -> None:
        """Wait for a container to exit; restart it as the restart policy says, or end the pod."""
        while not pod.stopping:
            waits = {asyncio.ensure_future(c.process.wait()): c for c in pod.containers if c.process is not None}
            done, pending = await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
            for future in pending:
                future.cancel()
            if pod.stopping:
                return
            exited = waits[next(iter(done))]
            code = exited.process.returncode if exited.process is not None else None
            if pod.restart_policy == "Never" or (pod.restart_policy == "OnFailure" and code == 0):
                await self._finish(pod, succeeded=code == 0)
                return
            await self._report(pod, ready=False)
            await self._restart_ended(pod)
            await self._until_ready(pod, restarting=True)
            await self._report(pod, ready=True)

    async def _restart_ended(self, pod: RunningPod) -> None:
        for container in pod.containers:
            if container.process is not None and container.process.returncode is None:
                continue
            container.restarts += 1
            await self._start_container(pod, container)

    # Status

    def _container_statuses(self, pod: RunningPod, ready: bool) -> list[dict[str, Any]]:
        return [
            {
                "name": c.name,
                "ready": ready,
                "started": True,
                "restartCount": c.restarts,
                "image": c.name,
                "imageID": "",
                "state": {"running": {"startedAt": pod.started_at}},
            }
            for c in pod.containers
        ]

    async def _patch_status(self, namespace: str, name: str, status: dict[str, Any]) -> None:
        path = f"/api/v1/namespaces/{namespace}/pods/{name}/status"
        headers = {"Content-Type": "application/merge-patch+json"}
        answer = await self._persist("PATCH", path, content=json.dumps({"status": status}), headers=headers)
        if answer.status_code != 404:  # deleted meanwhile: nothing to report
            answer.raise_for_status()

    async def _persist(self, method: str, path: str, **request: Any) -> httpx.Response:
        """One API call, retried while the API server is away (restarting) or overloaded, as a kubelet's status
        manager does: a report lost to a restart would leave the pod unready for good."""
        deadline = time.monotonic() + RETRY_FOR
        while True:
            try:
                answer = await self.http.request(method, path, **request)
                if answer.status_code < 500 and answer.status_code != 429:
                    return answer
            except httpx.TransportError:
                if time.monotonic() > deadline:
                    raise
            else:
                if time.monotonic() > deadline:
                    return answer
            await asyncio.sleep(0.5)

    async def _report(self, pod: RunningPod, *, ready: bool) -> None:
        status = {
            "phase": "Running",
            "hostIP": self.network.gateway,
            "hostIPs": [{"ip": self.network.gateway}],
            "podIP": pod.address.ip,
            "podIPs": [{"ip": pod.address.ip}],
            "startTime": pod.started_at,
            "conditions": [
                _condition("PodScheduled", True),
                _condition("Initialized", True),
                _condition("ContainersReady", ready),
                _condition("Ready", ready),
            ],
            "containerStatuses": self._container_statuses(pod, ready),
        }
        await self._patch_status(pod.namespace, pod.name, status)

    async def _finish(self, pod: RunningPod, *, succeeded: bool) -> None:
        status = {
            "phase": "Succeeded" if succeeded else "Failed",
            "conditions": [_condition("PodScheduled", True), _condition("Ready", False)],
        }
        await self._patch_status(pod.namespace, pod.name, status)

    async def _fail(self, namespace: str, name: str, message: str) -> None:
        status = {"phase": "Failed", "reason": "RunnerError", "message": message}
        await self._patch_status(namespace, name, status)

    # Ending

    def _stop_soon(self, pod: RunningPod, *, confirm: bool = False) -> None:
        if pod.stopping:
            return
        pod.stopping = True

        async def stop_and_confirm() -> None:
            await self._end(pod)
            if confirm:
                await self._confirm_deletion(pod.namespace, pod.name, pod.uid)

        self._spawn(stop_and_confirm())

    async def _end(self, pod: RunningPod) -> None:
        """End the pod's processes (SIGTERM, SIGKILL after a grace), then its namespace and files."""
        pod.stopping = True
        if self.pods.get(pod.key) is pod:
            del self.pods[pod.key]
        if pod.task is not None and pod.task is not asyncio.current_task():
            pod.task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await pod.task
        processes = [c.process for c in pod.containers if c.process is not None and c.process.returncode is None]
        for process in processes:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
        for process in processes:
            try:
                await asyncio.wait_for(process.wait(), STOP_GRACE)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                await process.wait()
        await pod.cgroup.kill_all()  # what the runtimes left: their sandboxes' processes
        record = self.work_dir / NETNS_RECORDS / f"{pod.namespace}_{pod.name}"
        if record.exists() and record.read_text() == pod.address.netns:  # not yet a new pod's of the same name
            record.unlink()
        await asyncio.to_thread(self.network.remove, pod.address.netns)
        # Each container's runtime keeps a state folder of the local provider, whose sandboxes' holders end
        # when their folders go.
        for container in pod.containers:
            await asyncio.to_thread(discard_state, pod.state_dir / container.name)
        await asyncio.to_thread(shutil.rmtree, pod.state_dir, True)
        await self._sweep_volumes()

    async def _sweep_volumes(self) -> None:
        """Discard the folders of claims that are gone (deleted with their Sandbox) and that no pod uses."""
        used = {c.volume for running in self.pods.values() for c in running.containers}
        for folder in list((self.work_dir / "volumes").iterdir()):
            if folder.name in used:
                continue
            namespace, _, claim = folder.name.partition("_")
            with contextlib.suppress(httpx.HTTPError):
                answer = await self.http.get(f"/api/v1/namespaces/{namespace}/persistentvolumeclaims/{claim}")
                # Deleting, too: nothing here removes the pvc-protection finalizer of a claim (no such controller runs).
                if answer.status_code == 404 or (
                    answer.is_success and answer.json()["metadata"].get("deletionTimestamp")
                ):
                    await asyncio.to_thread(discard_state, folder)

    async def _confirm_deletion(self, namespace: str, name: str, uid: str) -> None:
        body = {"apiVersion": "v1", "kind": "DeleteOptions", "gracePeriodSeconds": 0, "preconditions": {"uid": uid}}
        with contextlib.suppress(httpx.HTTPError):
            await self.http.request("DELETE", f"/api/v1/namespaces/{namespace}/pods/{name}", json=body)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Run the Pods of a Kubernetes API server as local processes.")
    parser.add_argument("--api-url", required=True)
    parser.add_argument("--token-file", required=True, help="a file holding a bearer token that may bind pods")
    parser.add_argument("--ca-file", required=True, help="the CA that signed the API server's certificate")
    parser.add_argument("--work-dir", required=True, help="where pods keep their files and logs")
    parser.add_argument("--runtimes", required=True, help="JSON object: image name fragment -> command")
    return parser.parse_args(argv)


async def serve(args: argparse.Namespace, token: str) -> None:
    runtimes = json.loads(args.runtimes)
    runner = PodRunner(ApiAccess(args.api_url, token, args.ca_file), runtimes, Path(args.work_dir))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await runner.start()
    try:
        await stop.wait()
    finally:
        await runner.stop()


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    args = parse_args(argv)
    asyncio.run(serve(args, Path(args.token_file).read_text().strip()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
