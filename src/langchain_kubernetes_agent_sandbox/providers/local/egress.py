"""How a local sandbox with egress reaches the host's proxy: a relay on the sandbox's own loopback, started by its
holder, carries connections to the proxy's unix socket (mounted read-only at `EGRESS_MOUNT`), and the proxy
variables in every command's environment point pip, npm, git, curl and urllib at the relay."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

from ...errors import BackendUnavailableError, InvalidArgumentError
from ...network import relay
from ...network.policy import EgressPolicy
from .bubblewrap import EGRESS_MOUNT

RELAY_PORT = 3128
SOCKET_NAME = "proxy.sock"
_RELAY_NAME = "relay.py"
_RELAY_START_TIMEOUT = 5.0
_LISTEN = "0A"
"""The state of a listening socket in /proc/net/tcp."""


def proxy_environment() -> dict[str, str]:
    """The variables that send proxy-aware programs through the relay; loopback stays direct."""
    url = f"http://127.0.0.1:{RELAY_PORT}"
    direct = "localhost,127.0.0.1,::1"
    names = {
        "http_proxy": url,
        "https_proxy": url,
        "no_proxy": direct,
        "all_proxy": f"socks5h://127.0.0.1:{RELAY_PORT}",
    }
    chosen = {**names, **{name.upper(): value for name, value in names.items()}}
    # npm reads its own settings before the standard variables on some versions
    return {**chosen, "npm_config_proxy": url, "npm_config_https_proxy": url, "npm_config_noproxy": direct}


def policy_for(network: bool | EgressPolicy, operator: EgressPolicy | None) -> EgressPolicy | None:
    """The sandbox's policy: none, the operator's (`True`), or one narrowed from it."""
    if network is False:
        return None
    if network is True:
        if operator is None:
            raise InvalidArgumentError(
                "This server has no egress allow-list, so its sandboxes cannot reach the network: create the "
                "sandbox without network, or ask the operator to configure egress_allow."
            )
        return operator
    return network


def check_supported(*, as_root: bool, keep_background: bool) -> None:
    """Refuse egress where this provider cannot give it without sharing the host's network."""
    if not as_root:
        raise BackendUnavailableError(
            "Egress for local sandboxes needs the server to run as root: commands enter their sandbox's network "
            "namespace, where the relay to the proxy listens, before dropping to the sandbox user. Run the "
            "server as root, or create the sandbox without network."
        )
    if not keep_background:
        raise BackendUnavailableError(
            "Egress for local sandboxes needs a sandbox that keeps background processes (the relay to the proxy "
            "is one): create this provider with keep_background=True, or the sandbox without network."
        )


def prepare(folder: Path) -> None:
    """The egress folder of a new sandbox: the relay program, and room for the proxy's socket."""
    folder.mkdir(mode=0o755, exist_ok=True)
    target = folder / _RELAY_NAME
    shutil.copyfile(relay.__file__, target)
    target.chmod(0o644)


def socket_path(folder: Path) -> Path:
    return folder / SOCKET_NAME


def relay_start() -> str:
    """The shell command that starts the relay; it returns once the relay listens."""
    return f"/usr/bin/python3 -I {EGRESS_MOUNT}/{_RELAY_NAME} {RELAY_PORT} {EGRESS_MOUNT}/{SOCKET_NAME}"


def wait_for_relay(namespace_pid: int) -> None:
    """Wait until the relay listens in the network namespace of process `namespace_pid`."""
    wanted = f"0100007F:{RELAY_PORT:04X}"
    deadline = time.monotonic() + _RELAY_START_TIMEOUT
    while time.monotonic() < deadline:
        try:
            table = Path(f"/proc/{namespace_pid}/net/tcp").read_text()
        except OSError:
            break
        if any(fields[1] == wanted and fields[3] == _LISTEN for fields in map(str.split, table.splitlines()[1:])):
            return
        time.sleep(0.01)
    raise BackendUnavailableError(
        f"The sandbox's egress relay did not start within {_RELAY_START_TIMEOUT:g} s: its Python "
        "(/usr/bin/python3) may be missing. Create the sandbox without network, or install python3."
    )
