"""Hypothesis profiles for the property tests: `default` keeps the default run bounded; `long` (select it with
HYPOTHESIS_PROFILE=long) is the thorough form."""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

# The sandbox is a function-scoped fixture shared by every example of a test, on purpose: a sandbox per example
# would test sandbox creation a thousand times and nothing else.
_SHARED = {"deadline": None, "suppress_health_check": [HealthCheck.function_scoped_fixture], "derandomize": False}
settings.register_profile("default", max_examples=30, **_SHARED)
settings.register_profile("long", max_examples=500, **_SHARED)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))

from tests.security.mcp_backend import mcp  # noqa: E402, F401
