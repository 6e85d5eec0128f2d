"""Egress for sandboxes: the allow-list policy, and the host-side proxy that enforces it, listening inside each
sandbox's own network namespace."""

from .policy import EgressPolicy, Rule, parse_rules

__all__ = ["EgressPolicy", "Rule", "parse_rules"]
