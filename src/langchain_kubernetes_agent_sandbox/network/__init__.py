"""Egress for sandboxes: the allow-list policy, the host-side proxy that enforces it, and the relay that brings
the proxy into a sandbox that has no network of its own."""

from .policy import EgressPolicy, Rule, parse_rules

__all__ = ["EgressPolicy", "Rule", "parse_rules"]
