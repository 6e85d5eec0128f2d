"""Attacks on the host's loopback from inside a local sandbox: its TCP listeners, its abstract unix sockets (which
belong to a network namespace, not to the filesystem), its socket table. A sandbox without network reaches none
of them, in either way of running commands, and neither does a sandbox with egress: it has a network namespace of
its own too, whose only way out is the proxy, which refuses loopback. Only names the operator lets resolve to
private addresses could lead back to the host, so that configuration is refused for an unauthenticated server."""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from langchain_kubernetes_agent_sandbox.network.settings import operator_policy
from langchain_kubernetes_agent_sandbox.providers.local import LocalProvider, LocalSandbox
from langchain_kubernetes_agent_sandbox.server.config import ServerConfig

PROBE = """
import json, socket, sys
port, name = int(sys.argv[1]), sys.argv[2]
answers = {}
for family, address in ((socket.AF_INET, ("127.0.0.1", port)), (socket.AF_UNIX, "\\0" + name)):
    probe = socket.socket(family)
    probe.settimeout(3)
    try:
        probe.connect(address)
        answers[family.name] = "connected"
    except OSError as error:
        answers[family.name] = type(error).__name__
    finally:
        probe.close()
answers["tcp_table"] = f":{port:04X} " in open("/proc/net/tcp").read()
print(json.dumps(answers))
"""


@contextlib.contextmanager
def host_listeners() -> Iterator[tuple[int, str]]:
    """A TCP listener on the host's 127.0.0.1 and a listening abstract unix socket: their port and name."""
    name = f"kas-test-{os.getpid()}-{secrets.token_hex(4)}"
    with socket.socket() as tcp, socket.socket(socket.AF_UNIX) as unix:
        tcp.bind(("127.0.0.1", 0))
        tcp.listen(8)
        unix.bind("\0" + name)
        unix.listen(8)
        yield tcp.getsockname()[1], name


async def reach_host(sandbox: LocalSandbox) -> dict[str, object]:
    await sandbox.write_file("/tmp/reach.py", PROBE.encode())
    with host_listeners() as (port, name):
        result = await sandbox.run(f"python3 /tmp/reach.py {port} {name}", timeout=30)
    assert result.exit_code == 0, result.stderr
    answers: dict[str, object] = json.loads(result.stdout)
    return answers


@pytest.mark.parametrize("keep_background", [True, False], ids=["holder", "own-namespaces"])
async def test_a_sandbox_without_network_reaches_no_host_loopback_service(
    local_state_dir: Path, keep_background: bool
) -> None:
    sandbox = await LocalProvider(local_state_dir, keep_background=keep_background).create()
    try:
        answers = await reach_host(sandbox)
    finally:
        await sandbox.terminate()
    assert answers == {"AF_INET": "ConnectionRefusedError", "AF_UNIX": "ConnectionRefusedError", "tcp_table": False}


async def test_a_sandbox_with_egress_reaches_no_host_loopback_service_either(local_state_dir: Path) -> None:
    provider = LocalProvider(local_state_dir, egress=operator_policy(["*"]))
    sandbox = await provider.create(network=True)
    try:
        answers = await reach_host(sandbox)
    finally:
        await sandbox.terminate()
        await provider.aclose()
    assert answers == {"AF_INET": "ConnectionRefusedError", "AF_UNIX": "ConnectionRefusedError", "tcp_table": False}


def test_unauthenticated_serving_is_refused_only_with_names_allowed_to_resolve_to_private_addresses() -> None:
    with pytest.raises(ValueError, match="--allow-unauthenticated together with egress_private") as refused:
        ServerConfig(
            transport="http",
            allow_unauthenticated=True,
            allow_network=True,
            egress_allow=("pkgs.test",),
            egress_private=("pkgs.test",),
        )
    assert "--token-file" in str(refused.value)
    ServerConfig(transport="http", allow_unauthenticated=True, allow_network=True, egress_allow=("*",))
    ServerConfig(
        transport="http",
        tokens="a-token-of-sixteen-chars alice",
        allow_network=True,
        egress_allow=("pkgs.test",),
        egress_private=("pkgs.test",),
    )
