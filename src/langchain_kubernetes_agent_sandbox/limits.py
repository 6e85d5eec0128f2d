"""Limits every sandbox enforces, whatever the provider."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from .errors import InvalidArgumentError
from .output import OutputLimit


@dataclass(frozen=True)
class ExecutionLimits:
    """Timeouts, output caps and file sizes; the server and adapters pass these down unchanged."""

    default_timeout: float = 300.0
    max_timeout: float = 3600.0
    output: OutputLimit = field(default_factory=OutputLimit)
    max_file_bytes: int = 100 * 1024 * 1024
    max_list_entries: int = 10_000
    """The most entries one listing reads; a folder that holds more is listed in part, and says so."""

    def timeout_for(self, requested: float | None) -> float:
        """The wall-clock limit for one run: the default when none is asked for, a clear error when absurd."""
        if requested is None:
            return self.default_timeout
        if isinstance(requested, bool) or not isinstance(requested, int | float) or math.isnan(requested):
            raise InvalidArgumentError(f"timeout must be a number of seconds, got {requested!r}.")
        if requested <= 0:
            raise InvalidArgumentError(
                f"timeout must be positive, got {requested}: give the seconds the command may run "
                f"(at most {self.max_timeout:g})."
            )
        if requested > self.max_timeout:
            raise InvalidArgumentError(
                f"timeout {requested:g} s exceeds the maximum of {self.max_timeout:g} s: ask for less, "
                "or split the work into shorter commands."
            )
        return float(requested)
