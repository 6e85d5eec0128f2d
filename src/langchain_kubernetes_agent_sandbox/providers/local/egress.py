"""How a local sandbox with egress reaches the host's proxy: the server listens on `127.0.0.1:PROXY_PORT` inside
the sandbox's own network namespace (the holder's, which every command joins), and the proxy variables in every
command's environment point pip, npm, git, curl and urllib there."""

from __future__ import annotations

from ...errors import BackendUnavailableError, InvalidArgumentError
from ...network.policy import EgressPolicy

PROXY_PORT = 3128


def proxy_environment() -> dict[str, str]:
    """The variables that send proxy-aware programs to the proxy; loopback stays direct."""
    url = f"http://127.0.0.1:{PROXY_PORT}"
    direct = "localhost,127.0.0.1,::1"
    names = {
        "http_proxy": url,
        "https_proxy": url,
        "no_proxy": direct,
        "all_proxy": f"socks5h://127.0.0.1:{PROXY_PORT}",
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
            "Egress for local sandboxes needs the server to run as root: the proxy listens inside the sandbox's "
            "network namespace, which every command enters before dropping to the sandbox user. Run the server "
            "as root, or create the sandbox without network."
        )
    if not keep_background:
        raise BackendUnavailableError(
            "Egress for local sandboxes needs a sandbox that keeps background processes (its holder owns the "
            "network namespace the proxy listens in): create this provider with keep_background=True, or the "
            "sandbox without network."
        )
