"""Sessions: sandboxes owned by principals, with sliding idle timeouts, lifetimes and quotas."""

from .policy import SessionPolicy
from .registry import Session, SessionRegistry

__all__ = ["Session", "SessionPolicy", "SessionRegistry"]
