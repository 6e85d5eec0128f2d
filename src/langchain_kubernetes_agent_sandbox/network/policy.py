"""Where a sandbox's code may connect: the operator's allow-list of names and ports, a session's narrower
request, and the addresses no name may lead to unless the operator says so.

A rule is `pattern` or `pattern:port`: `*` (every name), `*.example.test` (every name below example.test, not
example.test itself), `example.test`, or an IP literal (`192.0.2.7`, `[2001:db8::1]`). A rule without a port
allows the operator's default ports. A session's rules only narrow: a connection must pass the operator's rules
and the session's, and a session rule no operator rule covers is refused when the session is created.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..errors import InvalidArgumentError

DEFAULT_PORTS = (80, 443)
MAX_RULES = 64
_LABEL = r"[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?"
_NAME = re.compile(rf"^(\*|(\*\.)?{_LABEL}(\.{_LABEL})*)$")
METADATA_ADDRESSES = frozenset(
    ipaddress.ip_address(text) for text in ("169.254.169.254", "169.254.170.2", "100.100.100.200", "fd00:ec2::254")
)
"""Cloud metadata services (AWS, ECS, Alibaba, AWS over IPv6): reached only through an explicit exception."""

IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


def normal_host(host: str) -> str:
    """A host as rules compare it: lower case, no trailing dot, IPv6 literals without brackets."""
    host = host.strip().lower().rstrip(".")
    return host[1:-1] if host.startswith("[") and host.endswith("]") else host


def literal(host: str) -> IpAddress | None:
    """The address `host` spells, or None for a name."""
    try:
        address = ipaddress.ip_address(normal_host(host))
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def is_public(address: IpAddress) -> bool:
    """Whether `address` is on the public internet: not loopback, link-local, private, shared, metadata,
    multicast, reserved or unspecified (an IPv4-mapped IPv6 address counts as its IPv4 address)."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_global and not address.is_multicast and address not in METADATA_ADDRESSES


@dataclass(frozen=True)
class Rule:
    """One allow-list entry: a name pattern and the ports it opens."""

    pattern: str
    ports: frozenset[int]

    @classmethod
    def parse(cls, text: str, default_ports: Iterable[int]) -> Rule:
        raw = text.strip().lower()
        host, port = raw, ""
        if raw.startswith("["):
            host, bracket, rest = raw.partition("]")
            host += bracket
            if rest:
                host, port = (host, rest[1:]) if rest.startswith(":") else (raw, "")
        elif raw.count(":") == 1:
            host, port = raw.split(":")
        pattern = normal_host(host)
        if not (_NAME.match(pattern) or literal(pattern) is not None) or (port and not port.isdigit()):
            raise InvalidArgumentError(
                f"The network rule {text!r} is not a name pattern: write `*`, `*.example.test`, `example.test`, "
                "an IP address, or one of these followed by `:port`."
            )
        if port:
            if not 1 <= int(port) <= 65535:
                raise InvalidArgumentError(f"The network rule {text!r} has no valid port (1 to 65535).")
            return cls(pattern, frozenset({int(port)}))
        return cls(pattern, frozenset(default_ports))

    def matches_name(self, host: str) -> bool:
        if self.pattern == "*":
            return True
        if self.pattern.startswith("*."):
            return host.endswith(self.pattern[1:]) and literal(host) is None
        return host == self.pattern

    def covers(self, other: Rule) -> bool:
        """Whether every connection `other` allows, this allows too."""
        return other.ports <= self.ports and self.covers_name(other)

    def covers_name(self, other: Rule) -> bool:
        """Whether every name `other` matches, this matches too."""
        if self.pattern == "*" or self.pattern == other.pattern:
            return True
        if self.pattern.startswith("*."):
            suffix = self.pattern[1:]
            if other.pattern.startswith("*."):
                return other.pattern[1:].endswith(suffix)
            return other.pattern.endswith(suffix) and literal(other.pattern) is None
        return False

    def __str__(self) -> str:
        shown = f"[{self.pattern}]" if ":" in self.pattern else self.pattern
        return f"{shown}:{','.join(str(port) for port in sorted(self.ports))}"


def parse_rules(texts: Sequence[str], default_ports: Iterable[int] = DEFAULT_PORTS) -> tuple[Rule, ...]:
    if len(texts) > MAX_RULES:
        raise InvalidArgumentError(f"At most {MAX_RULES} network rules are allowed, got {len(texts)}.")
    ports = tuple(default_ports)
    return tuple(Rule.parse(text, ports) for text in texts)


@dataclass(frozen=True)
class EgressPolicy:
    """What one sandbox may reach: the operator's rules, the session's narrower ones, and the names the operator
    lets resolve to loopback, link-local, private or metadata addresses."""

    allow: tuple[Rule, ...]
    session: tuple[Rule, ...] | None = None
    private: tuple[Rule, ...] = field(default=())

    def narrowed(self, requested: Sequence[str]) -> EgressPolicy:
        """This policy limited to `requested`; a rule the operator's do not cover is refused, by name."""
        if not requested:
            raise InvalidArgumentError(
                "An empty list of network rules allows nothing: pass network=false for a sandbox without egress."
            )
        within = self.session if self.session is not None else self.allow
        rules = []
        for asked in parse_rules(requested, ()):
            # A rule without a port takes the ports the rules covering its name allow.
            ports = asked.ports or frozenset().union(*(mine.ports for mine in within if mine.covers_name(asked)))
            rule = Rule(asked.pattern, ports)
            if not ports or not any(mine.covers(rule) for mine in within):
                raise InvalidArgumentError(
                    f"The network rule {asked.pattern if not asked.ports else rule} asks for more than this server "
                    f"allows ({describe(within)}): ask only for names and ports within those, or ask the operator "
                    "to widen the allow-list."
                )
            rules.append(rule)
        return EgressPolicy(self.allow, tuple(rules), self.private)

    def refusal(self, host: str, port: int) -> str | None:
        """Why a connection to `host:port` is refused by the rules (before resolving), or None when allowed."""
        host = normal_host(host)
        for rules in (self.allow, self.session):
            if rules is None:
                continue
            named = [rule for rule in rules if rule.matches_name(host)]
            if not named:
                return "name not allowed"
            if not any(port in rule.ports for rule in named):
                return "port not allowed"
        return None

    def may_reach_private(self, host: str, port: int) -> bool:
        host = normal_host(host)
        return any(rule.matches_name(host) and port in rule.ports for rule in self.private)

    @property
    def reachable(self) -> tuple[str, ...]:
        """The rules in force, as text: the session's where it narrowed the operator's."""
        return tuple(str(rule) for rule in (self.session if self.session is not None else self.allow))

    def to_json(self) -> dict[str, Any]:
        def rules(chosen: Sequence[Rule]) -> list[dict[str, Any]]:
            return [{"pattern": rule.pattern, "ports": sorted(rule.ports)} for rule in chosen]

        return {
            "allow": rules(self.allow),
            "session": None if self.session is None else rules(self.session),
            "private": rules(self.private),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> EgressPolicy:
        def rules(chosen: list[dict[str, Any]]) -> tuple[Rule, ...]:
            return tuple(Rule(str(rule["pattern"]), frozenset(int(port) for port in rule["ports"])) for rule in chosen)

        session = data.get("session")
        return cls(rules(data["allow"]), None if session is None else rules(session), rules(data.get("private", [])))


def describe(rules: Sequence[Rule]) -> str:
    return ", ".join(str(rule) for rule in rules) or "nothing"
