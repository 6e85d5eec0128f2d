"""A pod network on one machine: a bridge on the host and a network namespace per pod, joined by a veth pair.

Each pod gets an address of its own in one /24 of 198.18.0.0/15, the range set aside for network tests (RFC 2544),
so it meets no real network; the host reaches the pods through the bridge (the router proxies to them there), and
the pods reach nothing but each other and the bridge's address. Everything made here is removed by `close()`.
Needs root and `ip` (iproute2).
"""

from __future__ import annotations

import contextlib
import fcntl
import ipaddress
import os
import secrets
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass

SUBNETS = ipaddress.ip_network("198.18.0.0/15")
LOCK = "/run/lkas-pod-network.lock"
IP_HINT = "the pod network needs root and `ip` from iproute2 (scripts/setup.sh installs it)"


class PodNetworkError(RuntimeError):
    """An `ip` command failed; the message names it and what it said."""


def _ip(*args: str, netns: str | None = None) -> str:
    argv = ["ip", *(["-n", netns] if netns else []), *args]
    result = subprocess.run(argv, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise PodNetworkError(f"`{' '.join(argv)}` failed: {result.stderr.strip()}")
    return result.stdout


@contextlib.contextmanager
def _machine_lock() -> Iterator[None]:
    """Sessions on one machine choose their subnets one at a time, so no two take the same."""
    with open(LOCK, "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


@dataclass(frozen=True)
class PodAddress:
    netns: str
    """The network namespace's name under /run/netns (run a pod's process in it with `ip netns exec`)."""
    ip: str


class PodNetwork:
    """One bridge and its /24; `add()` gives a pod its namespace and address, `remove()` takes them away."""

    def __init__(self) -> None:
        if shutil.which("ip") is None or os.geteuid() != 0:
            raise PodNetworkError(IP_HINT)
        self.bridge = ""
        self.subnet = ipaddress.ip_network("198.18.0.0/24")
        self._free: list[str] = []
        self._pods: dict[str, PodAddress] = {}

    @property
    def gateway(self) -> str:
        """The bridge's (the host's) address in the pod network."""
        return str(self.subnet[1])

    def open(self) -> PodNetwork:
        with _machine_lock():
            taken = _ip("-4", "-o", "addr", "show")
            for subnet in SUBNETS.subnets(new_prefix=24):
                if f" {subnet[1]}/" not in taken:
                    break
            else:
                raise PodNetworkError(f"every /24 of {SUBNETS} is in use on this machine")
            self.subnet = subnet
            self.bridge = f"lkbr{int(subnet[0]) >> 8 & 0x1FF}"
            _ip("link", "add", self.bridge, "type", "bridge")
            _ip("addr", "add", f"{self.gateway}/24", "dev", self.bridge)
            _ip("link", "set", self.bridge, "up")
        self._free = [str(host) for host in list(self.subnet.hosts())[1:]]
        return self

    def add(self) -> PodAddress:
        if not self._free:
            raise PodNetworkError(f"no address left in {self.subnet}")
        suffix = secrets.token_hex(5)
        netns, host_side, pod_side = f"lkpod-{suffix}", f"lkh{suffix}", f"lkp{suffix}"
        address = PodAddress(netns, self._free.pop(0))
        _ip("netns", "add", netns)
        self._pods[netns] = address
        try:
            _ip("link", "add", host_side, "type", "veth", "peer", "name", pod_side, "netns", netns)
            _ip("link", "set", host_side, "master", self.bridge, "up")
            _ip("addr", "add", f"{address.ip}/24", "dev", pod_side, netns=netns)
            _ip("link", "set", pod_side, "name", "eth0", netns=netns)
            _ip("link", "set", "eth0", "up", netns=netns)
            _ip("link", "set", "lo", "up", netns=netns)
        except PodNetworkError:
            self.remove(netns)
            raise
        return address

    def remove(self, netns: str) -> None:
        """Delete the namespace (its veth goes with it) and free the address."""
        address = self._pods.pop(netns, None)
        with contextlib.suppress(PodNetworkError):
            _ip("netns", "delete", netns)
        if address is not None:
            self._free.append(address.ip)

    def close(self) -> None:
        for netns in list(self._pods):
            self.remove(netns)
        if self.bridge:
            with contextlib.suppress(PodNetworkError):
                _ip("link", "delete", self.bridge)
            self.bridge = ""

    def __enter__(self) -> PodNetwork:
        return self.open()

    def __exit__(self, *_: object) -> None:
        self.close()
