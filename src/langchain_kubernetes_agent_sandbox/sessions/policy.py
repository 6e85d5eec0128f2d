"""The rules sessions live by: how long they may idle and live, and how much one principal may hold."""

from __future__ import annotations

from dataclasses import dataclass

from ..network.policy import EgressPolicy


@dataclass(frozen=True)
class SessionPolicy:
    """Server-wide session limits; every number is per principal or per session, never global."""

    idle_timeout: float = 1800.0
    """Seconds a session may go unused before it is reaped; each use pushes the deadline back."""
    max_idle_timeout: float = 24 * 3600.0
    """The largest idle timeout a caller may ask for when creating a session."""
    max_lifetime: float = 24 * 3600.0
    """Seconds after creation when a session ends however busy it is."""
    max_sessions: int = 8
    """Live sessions one principal may hold, the default session included."""
    max_concurrent_runs: int = 8
    """Sandbox calls one principal may have in flight at once (on this server process)."""
    allow_network: bool = False
    """Whether callers may create sessions whose sandbox can reach the network."""
    egress: EgressPolicy | None = None
    """The operator's allow-list, which a session's own network rules may only narrow."""
    reap_interval: float = 60.0
    """Seconds between sweeps that terminate expired sessions (and suspend idle ones)."""
    suspend_idle: bool = True
    """Whether an idle session is suspended (processes stop, files stay) where the provider can keep its files,
    rather than terminated; its maximum lifetime ends it either way."""
    resume_timeout: float = 180.0
    """Longest wait of a call on a suspended session for its sandbox to start again."""
    max_fork_bytes: int = 1024 * 1024 * 1024
    """The largest workspace (/app) a fork copies."""

    def __post_init__(self) -> None:
        for name in ("idle_timeout", "max_idle_timeout", "max_lifetime", "reap_interval", "resume_timeout"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}.")
        if self.idle_timeout > self.max_idle_timeout:
            raise ValueError(
                f"idle_timeout ({self.idle_timeout:g} s) exceeds max_idle_timeout ({self.max_idle_timeout:g} s)."
            )
        for name in ("max_sessions", "max_concurrent_runs", "max_fork_bytes"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}.")
