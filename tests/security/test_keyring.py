"""The attack on a server's session keyring: a server started by systemd (`KeyringMode=private`) or from a
pam_keyinit login holds a session keyring that its children inherit, and bubblewrap and setpriv pass it on. A
sandbox must neither read the server's keys nor add or clear any, nor list their names: the filter refuses every
keyring call, the kernel's lists of keys are masked, and each command starts in an empty session keyring of its
own, which alone would stop the theft."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.skipif(
    shutil.which("keyctl") is None, reason="needs keyctl (Debian: keyutils, which scripts/setup.sh installs)"
)

SECRET_NAME = "kas-server-secret"
SECRET = "the-servers-secret-payload"
STEAL = f"keyctl print %user:{SECRET_NAME}; keyctl add user kas-planted planted @s; keyctl clear @s"
LIST = "cat /proc/keys /proc/key-users"
SERVER = f"""
import asyncio, json, os, subprocess, sys
from langchain_kubernetes_agent_sandbox.providers.local import LocalProvider, UserDrop
from langchain_kubernetes_agent_sandbox.providers.local.bubblewrap import find_keyctl, launcher_argv

def keyctl(*args):
    return subprocess.run(["keyctl", *args], capture_output=True, text=True, check=False).stdout.strip()

async def in_sandboxes():
    answers = []
    for keep_background in (True, False):
        sandbox = await LocalProvider(sys.argv[1], keep_background=keep_background).create()
        try:
            result = await sandbox.run({STEAL!r} + "; " + {LIST!r}, timeout=60)
        finally:
            await sandbox.terminate()
        answers.append(result.stdout + result.stderr)
    return answers

def in_launcher():
    steal = ["/bin/sh", "-c", {STEAL!r}]
    user = UserDrop(65534, 65534) if os.geteuid() == 0 else None
    argv = launcher_argv(steal, procs_files=[], ulimits=[], user=user, keyctl=find_keyctl())
    launched = subprocess.run(argv, capture_output=True, text=True, timeout=30)
    return [launched.stdout + launched.stderr]

key = keyctl("add", "user", {SECRET_NAME!r}, {SECRET!r}, "@s")
answers = asyncio.run(in_sandboxes()) if sys.argv[2] == "sandbox" else in_launcher()
keys = keyctl("rlist", "@s").split()
print(json.dumps({{"key": key, "keys": keys, "payload": keyctl("pipe", key), "answers": answers}}))
"""
"""A server with a secret in its session keyring, attacked from inside its sandboxes (whose commands join the
sandbox's holder, or have namespaces of their own), or from a command its launcher starts without bubblewrap."""


def attack(state_dir: Path, where: str) -> dict[str, object]:
    """Run the attacked server; `keyctl session -` gives it a session keyring of its own, so the test runner's
    keyring is never touched."""
    server = subprocess.run(
        ["keyctl", "session", "-", sys.executable, "-c", SERVER, str(state_dir), where],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
        check=True,
    )
    report: dict[str, object] = json.loads(server.stdout)
    assert report["keys"] == [report["key"]], "a key was planted in the server's keyring, or the keyring cleared"
    assert report["payload"] == SECRET
    return report


def test_a_sandbox_cannot_read_add_to_or_clear_the_servers_session_keyring(local_state_dir: Path) -> None:
    answers = attack(local_state_dir, "sandbox")["answers"]
    assert isinstance(answers, list)
    for answer in answers:
        assert SECRET not in answer
        assert answer.count("Operation not permitted") == 2, "add_key and keyctl_clear are refused"
        for listing in ("/proc/keys", "/proc/key-users"):
            assert f"cat: {listing}: Permission denied" in answer, "the kernel's lists of keys are unreadable"


def test_without_the_filter_a_fresh_session_keyring_alone_stops_the_theft(local_state_dir: Path) -> None:
    (answer,) = attack(local_state_dir, "launcher")["answers"]  # type: ignore[misc]
    assert SECRET not in answer
    assert f"Can't find 'user:{SECRET_NAME}'" in answer
    assert "Operation not permitted" not in answer, "its add and clear succeed, on its own keyring"
