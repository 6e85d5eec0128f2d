"""Ordinary programs still work under the sandbox's system-call filter: threads (glibc tries clone3 first and
falls back to clone), child processes, compilers, package installs, version control, Node's event loop (libuv
probes io_uring and falls back), and debuggers on the programs they start."""

from __future__ import annotations

import base64
import hashlib
import io
import shutil
import zipfile
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from langchain_kubernetes_agent_sandbox.providers.local import LocalProvider, LocalSandbox


@pytest.fixture
async def sandbox(local_state_dir: Path) -> AsyncIterator[LocalSandbox]:
    made = await LocalProvider(local_state_dir).create()
    yield made
    await made.terminate()


def needs(program: str, package: str) -> pytest.MarkDecorator:
    return pytest.mark.skipif(shutil.which(program) is None, reason=f"needs {program} (Debian: {package})")


def tiny_wheel() -> bytes:
    """A pure-Python wheel of one module, for an offline `pip install`."""
    files = {
        "tiny/__init__.py": b"VALUE = 'installed'\n",
        "tiny-0.1.dist-info/METADATA": b"Metadata-Version: 2.1\nName: tiny\nVersion: 0.1\n",
        "tiny-0.1.dist-info/WHEEL": (
            b"Wheel-Version: 1.0\nGenerator: kas-tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
        ),
    }
    record = "".join(
        f"{name},sha256={base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b'=').decode()},{len(data)}\n"
        for name, data in files.items()
    )
    files["tiny-0.1.dist-info/RECORD"] = f"{record}tiny-0.1.dist-info/RECORD,,\n".encode()
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    return buffer.getvalue()


async def test_python_threads_and_child_processes(sandbox: LocalSandbox) -> None:
    script = (
        "import concurrent.futures, subprocess\n"
        "with concurrent.futures.ThreadPoolExecutor(4) as pool:\n"
        "    squares = list(pool.map(lambda n: n * n, range(8)))\n"
        "child = subprocess.run(['sh', '-c', 'echo child'], capture_output=True, text=True, check=True)\n"
        "print(sum(squares), child.stdout.strip())\n"
    )
    await sandbox.write_file("threads.py", script.encode())
    result = await sandbox.run("python3 threads.py", timeout=60)
    assert (result.stdout, result.exit_code) == ("140 child\n", 0), result.stderr


async def test_pip_installs_a_package_into_a_new_virtualenv(sandbox: LocalSandbox) -> None:
    await sandbox.write_file("/tmp/tiny-0.1-py3-none-any.whl", tiny_wheel())
    result = await sandbox.run(
        "python3 -m venv /tmp/venv && /tmp/venv/bin/python -m pip --version >/dev/null "
        "&& /tmp/venv/bin/python -m pip install -q --no-index /tmp/tiny-0.1-py3-none-any.whl "
        "&& /tmp/venv/bin/python -c 'import tiny; print(tiny.VALUE)'",
        timeout=180,
    )
    assert (result.stdout, result.exit_code) == ("installed\n", 0), result.stderr


@needs("git", "git")
async def test_git_init_and_commit(sandbox: LocalSandbox) -> None:
    result = await sandbox.run(
        "git init -q repo && cd repo && echo hello > file && git add file "
        "&& git -c user.name=agent -c user.email=agent@localhost commit -q -m first && git log --format=%s",
        timeout=60,
    )
    assert (result.stdout, result.exit_code) == ("first\n", 0), result.stderr


@needs("gcc", "gcc")
async def test_gcc_compiles_and_runs_a_threaded_program(sandbox: LocalSandbox) -> None:
    source = (
        "#include <pthread.h>\n#include <stdio.h>\n"
        "static void *work(void *arg) { *(int *)arg = 42; return NULL; }\n"
        "int main(void) { pthread_t t; int v = 0; pthread_create(&t, NULL, work, &v); pthread_join(t, NULL); "
        'printf("%d\\n", v); return 0; }\n'
    )
    await sandbox.write_file("threads.c", source.encode())
    result = await sandbox.run("gcc -O1 -pthread -o threads threads.c && ./threads", timeout=120)
    assert (result.stdout, result.exit_code) == ("42\n", 0), result.stderr


@needs("node", "nodejs")
async def test_node_runs_files_timers_and_children(sandbox: LocalSandbox) -> None:
    script = (
        "const fs = require('fs'); const { execFileSync } = require('child_process');"
        "fs.promises.writeFile('/tmp/n.txt', 'written').then(() => fs.promises.readFile('/tmp/n.txt', 'utf8'))"
        ".then((text) => setTimeout(() => console.log(text, execFileSync('echo', ['child']).toString().trim()), 10));"
    )
    result = await sandbox.run(f'node -e "{script}"', timeout=60)
    assert (result.stdout, result.exit_code) == ("written child\n", 0), result.stderr


@needs("strace", "strace")
async def test_strace_traces_the_program_it_starts(sandbox: LocalSandbox) -> None:
    result = await sandbox.run("strace -f -o /tmp/trace sh -c 'echo traced' && grep -c execve /tmp/trace", timeout=60)
    assert (result.stdout, result.exit_code) == ("traced\n1\n", 0), result.stderr


@needs("gdb", "gdb")
async def test_gdb_runs_the_program_it_starts(sandbox: LocalSandbox) -> None:
    result = await sandbox.run("gdb -q -batch -ex run --args /bin/echo debugged", timeout=60)
    assert "debugged" in result.stdout
    assert "exited normally" in result.stdout, result.stdout + result.stderr
