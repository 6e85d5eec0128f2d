"""The image definition passes hadolint and keeps its promises (pinned base, non-root, health check)."""

from __future__ import annotations

import re
import subprocess

from tests.deploy.tools import ROOT, tool

DOCKERFILE = ROOT / "Dockerfile"


def test_hadolint_finds_nothing() -> None:
    done = subprocess.run(
        [tool("hadolint"), "--no-color", str(DOCKERFILE)], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.strip() == ""


def test_base_image_is_pinned_by_version_tag() -> None:
    text = DOCKERFILE.read_text()
    base = re.search(r"^ARG PYTHON_IMAGE=(\S+)$", text, re.MULTILINE)
    assert base is not None
    assert re.fullmatch(r"python:3\.\d+\.\d+-slim-\w+", base.group(1)), base.group(1)
    assert text.count("FROM ${PYTHON_IMAGE}") == 2


def test_final_stage_runs_the_console_script_as_a_non_root_user_with_a_health_check() -> None:
    final = DOCKERFILE.read_text().split("\nFROM ")[-1]
    assert "USER 10001:10001" in final
    assert 'ENTRYPOINT ["kubernetes-agent-sandbox"]' in final
    assert "EXPOSE 8000" in final
    assert "/healthz" in final.split("HEALTHCHECK", 1)[1]
    assert "apt-get" not in final
    assert "pip install" not in final
    assert "COPY --from=build /opt/venv /opt/venv" in final


def test_build_context_is_only_the_package_sources() -> None:
    ignored = (ROOT / ".dockerignore").read_text().splitlines()
    assert ignored[ignored.index("*")] == "*"
    assert {"!pyproject.toml", "!README.md", "!src/"} <= set(ignored)


def test_image_environment_names_only_real_settings() -> None:
    from langchain_kubernetes_agent_sandbox.server.config import BY_NAME, ENV_PREFIX

    names = re.findall(r"\b" + ENV_PREFIX + r"([A-Z_]+)=", DOCKERFILE.read_text())
    assert names
    assert {name.lower() for name in names} <= set(BY_NAME)
