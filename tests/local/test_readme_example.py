"""The README's local-provider example runs as written and prints what the README says it prints."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "local_provider.py"


def test_the_example_prints_the_sum_and_finds_its_sandbox_again(local_state_dir: Path) -> None:
    result = subprocess.run(
        [sys.executable, str(EXAMPLE)],
        env={**os.environ, "KUBERNETES_AGENT_SANDBOX_STATE_DIR": str(local_state_dir)},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["3 0", "True"]
    assert list((local_state_dir / "sandboxes").iterdir()) == []


def test_the_readme_shows_the_example_as_it_is_tested() -> None:
    readme = (ROOT / "README.md").read_text()
    code = EXAMPLE.read_text().split('"""\n\n', 1)[1]
    assert f"```python\n{code}```" in readme
