"""The operator's egress settings, from the server's configuration to an `EgressPolicy`."""

from __future__ import annotations

from collections.abc import Sequence

from ..errors import InvalidArgumentError
from .policy import DEFAULT_PORTS, EgressPolicy, parse_rules


def operator_policy(
    allow: Sequence[str], ports: Sequence[int] = DEFAULT_PORTS, private: Sequence[str] = ()
) -> EgressPolicy | None:
    """The allow-list `allow` (ports `ports` where a rule names none) with the names in `private` allowed to
    resolve to private addresses; None when `allow` is empty. A bad rule raises `ValueError` naming it."""
    if not allow:
        if private:
            raise ValueError("egress_private lists exceptions to an allow-list, but egress_allow is empty")
        return None
    if not ports or not all(1 <= port <= 65535 for port in ports):
        raise ValueError(f"egress_ports must list ports from 1 to 65535, got {list(ports)}")
    try:
        return EgressPolicy(parse_rules(allow, ports), private=parse_rules(private, ports))
    except InvalidArgumentError as error:
        raise ValueError(str(error)) from None
