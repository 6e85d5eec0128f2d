"""Fixtures shared by the adapter tests: sandboxes need a state folder the sandbox user can traverse."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator

import pytest


@pytest.fixture(scope="session")
def state_dir() -> Iterator[str]:
    """Under /tmp, not pytest's tmp_path: as root the sandbox user (65534) must traverse its parents."""
    path = tempfile.mkdtemp(prefix="kas-adapter-", dir="/tmp")
    yield path
    shutil.rmtree(path, ignore_errors=True)
