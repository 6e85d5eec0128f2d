"""How a session is written onto its sandbox's labels, so any replica (or the same one after a restart) reads it back.

Keys and values follow Kubernetes' label-name syntax, without a prefix (on Kubernetes they become SandboxClaim
labels, under the provider's own prefix).
The owner is stored as a hash of the principal: principals (emails, JWT subjects) may hold characters a label
value cannot, and the hash keeps who-owns-what out of cluster listings.
"""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
from collections.abc import Mapping

from ..errors import InvalidArgumentError

ROLE = "mcp-role"
ROLE_SESSION = "session"
SESSION_ID = "mcp-session"
OWNER = "mcp-owner"
DEFAULT = "mcp-default"
IDLE_SECONDS = "mcp-idle-seconds"
USER_PREFIX = "mcp-user."
"""User labels are stored under their own prefix so they can never overwrite the keys above."""

MAX_USER_LABELS = 16
MAX_USER_KEY = 63 - len(USER_PREFIX)
_NAME = re.compile(r"^[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$")
_SESSION_ID = re.compile(r"^s[a-z2-7]{26}$")


def new_session_id() -> str:
    """128 random bits in lowercase base32 behind an 's': unguessable, and a valid label value."""
    return "s" + base64.b32encode(secrets.token_bytes(16)).decode("ascii").rstrip("=").lower()


def looks_like_session_id(value: str) -> bool:
    return bool(_SESSION_ID.match(value))


def owner_of(principal: str) -> str:
    """The label value that stands for `principal`."""
    return hashlib.sha256(principal.encode("utf-8")).hexdigest()[:40]


def validate_user_labels(labels: Mapping[str, str] | None) -> dict[str, str]:
    """Check labels a caller attaches to a session; the message names the offending key or value."""
    labels = dict(labels or {})
    if len(labels) > MAX_USER_LABELS:
        raise InvalidArgumentError(f"{len(labels)} labels given; a session holds at most {MAX_USER_LABELS}.")
    for key, value in labels.items():
        if not isinstance(key, str) or len(key) > MAX_USER_KEY or not _NAME.match(key):
            raise InvalidArgumentError(
                f"Label key {key!r} is not valid: use 1-{MAX_USER_KEY} letters, digits, '-', '_' or '.', "
                "starting and ending with a letter or digit."
            )
        if not isinstance(value, str) or (value and not _NAME.match(value)):
            raise InvalidArgumentError(
                f"Label value {value!r} (key {key!r}) is not valid: use up to 63 letters, digits, '-', '_' or '.', "
                "starting and ending with a letter or digit."
            )
    return labels


def user_labels_of(labels: Mapping[str, str]) -> dict[str, str]:
    return {key[len(USER_PREFIX) :]: value for key, value in labels.items() if key.startswith(USER_PREFIX)}
