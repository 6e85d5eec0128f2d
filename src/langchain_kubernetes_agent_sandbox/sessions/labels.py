"""How a session is written onto its sandbox's labels, so any replica (or the same one after a restart) reads it back.

Label keys and values follow Kubernetes' label syntax, because on Kubernetes they become SandboxClaim labels.
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

PREFIX = "kubernetes-agent-sandbox"
ROLE = f"{PREFIX}/role"
ROLE_SESSION = "session"
SESSION_ID = f"{PREFIX}/session"
OWNER = f"{PREFIX}/owner"
DEFAULT = f"{PREFIX}/default"
IDLE_SECONDS = f"{PREFIX}/idle-seconds"
USER_PREFIX = f"user.{PREFIX}/"
"""User labels are stored under their own prefix so they can never overwrite the keys above."""

MAX_USER_LABELS = 16
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
        if not isinstance(key, str) or not _NAME.match(key):
            raise InvalidArgumentError(
                f"Label key {key!r} is not valid: use 1-63 letters, digits, '-', '_' or '.', "
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
