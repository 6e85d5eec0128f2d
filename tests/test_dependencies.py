"""Every third-party module the package imports is declared in pyproject.toml, with a compatible range, so an
install never depends on what another dependency happens to bring along."""

from __future__ import annotations

import ast
import importlib.metadata
import re
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "src" / "langchain_kubernetes_agent_sandbox"
EXEMPT = {"testing/pytest_plugin.py": "only pytest loads it (-p), so pytest is there whenever it is imported"}


def _name(requirement: str) -> str:
    """A requirement's distribution name, normalised as PEP 503 does."""
    match = re.match(r"[A-Za-z0-9][A-Za-z0-9._-]*", requirement)
    assert match, requirement
    return re.sub(r"[-_.]+", "-", match.group()).lower()


def _declared() -> list[str]:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]


def _optional(tree: ast.Module) -> set[int]:
    """Lines of imports inside `try: ... except ImportError`: the code works without them."""
    lines: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Try) and any(
            isinstance(handler.type, ast.Name) and handler.type.id in ("ImportError", "ModuleNotFoundError")
            for handler in node.handlers
        ):
            lines |= {
                inner.lineno for statement in node.body for inner in ast.walk(statement) if hasattr(inner, "lineno")
            }
    return lines


def imported_modules() -> dict[str, list[str]]:
    """Top-level third-party modules the package imports, with the files that import each."""
    found: dict[str, list[str]] = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        relative = path.relative_to(PACKAGE).as_posix()
        if relative in EXEMPT:
            continue
        tree = ast.parse(path.read_text())
        optional = _optional(tree)
        for node in ast.walk(tree):
            if getattr(node, "lineno", None) in optional:
                continue
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            for name in names:
                top = name.split(".")[0]
                # the agent's files run inside the sandbox beside their copies of each other (`import wire`)
                sibling = (path.parent / f"{top}.py").exists()
                if top not in sys.stdlib_module_names and top not in ("__future__", PACKAGE.name) and not sibling:
                    found.setdefault(top, []).append(relative)
    return found


def test_every_imported_distribution_is_declared() -> None:
    declared = {_name(requirement) for requirement in _declared()}
    distributions = importlib.metadata.packages_distributions()
    missing = {
        module: files
        for module, files in imported_modules().items()
        if not {_name(dist) for dist in distributions.get(module, [module])} & declared
    }
    assert not missing, f"imported but not declared in pyproject.toml's dependencies: {missing}"


def test_every_dependency_has_a_compatible_range() -> None:
    for requirement in _declared():
        assert ">=" in requirement, f"{requirement}: give the lowest version that works"
        assert "<" in requirement.replace("<=", ""), f"{requirement}: give an upper bound (the next major version)"
