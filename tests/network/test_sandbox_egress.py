"""A local sandbox with egress, from inside: the tools people use get through the proxy to allowed names (pip from
a simple index, git over HTTP, curl, urllib, SOCKS5), and every other way out fails. The test servers are on the
host's loopback under `.test` names; the resolver override points those names there, and only the names
`conftest.SERVED` may resolve to loopback."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from langchain_kubernetes_agent_sandbox import BackendUnavailableError, InvalidArgumentError
from langchain_kubernetes_agent_sandbox.network.policy import EgressPolicy
from langchain_kubernetes_agent_sandbox.providers.local import LocalProvider, LocalSandbox
from langchain_kubernetes_agent_sandbox.results import CommandResult

from ..local.test_programs_under_the_filter import tiny_wheel
from .conftest import WebServer, resolve_test_names


@pytest.fixture
async def sandbox(local_state_dir: Path, policy: EgressPolicy) -> AsyncIterator[LocalSandbox]:
    provider = LocalProvider(local_state_dir, egress=policy, egress_resolver=resolve_test_names)
    sandbox = await provider.create(network=True)
    try:
        yield sandbox
    finally:
        await sandbox.terminate()
        await provider.aclose()


async def run(sandbox: LocalSandbox, command: str) -> CommandResult:
    return await sandbox.run(command, timeout=60)


# ---- the ways through the proxy ----


async def test_curl_reaches_an_allowed_name_by_plain_http_and_by_connect(sandbox: LocalSandbox, web: WebServer) -> None:
    (web.root / "hello.txt").write_text("hello from the host")
    plain = await run(sandbox, f"curl -sSf {web.url('files.test', 'hello.txt')}")
    tunnel = await run(sandbox, f"curl -sSf --proxytunnel {web.url('files.test', 'hello.txt')}")
    assert (plain.stdout, tunnel.stdout) == ("hello from the host", "hello from the host"), plain.stderr + tunnel.stderr


async def test_socks5_and_pythons_urllib_get_through(sandbox: LocalSandbox, web: WebServer) -> None:
    (web.root / "hello.txt").write_text("hello")
    socks = await run(sandbox, f"curl -sSf --socks5-hostname 127.0.0.1:3128 {web.url('files.test', 'hello.txt')}")
    urllib = await run(
        sandbox,
        f"python3 -c \"import urllib.request as u; print(u.urlopen('{web.url('files.test', 'hello.txt')}').read())\"",
    )
    assert socks.stdout == "hello", socks.stderr
    assert urllib.stdout.strip() == "b'hello'", urllib.stderr


def bare_repository(folder: Path, served: Path) -> None:
    """A repository with one commit, cloned bare into `served` with the index the dumb HTTP protocol reads."""
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t.test", "-c", "init.defaultBranch=main"]
    subprocess.run([*git, "init", "-q", str(folder)], check=True)
    (folder / "README").write_text("cloned through the proxy\n")
    subprocess.run([*git, "-C", str(folder), "add", "README"], check=True)
    subprocess.run([*git, "-C", str(folder), "commit", "-qm", "one"], check=True)
    subprocess.run(["git", "clone", "-q", "--bare", str(folder), str(served)], check=True)
    subprocess.run(["git", "-C", str(served), "update-server-info"], check=True)


async def test_git_clones_a_repository_over_http(sandbox: LocalSandbox, web: WebServer, tmp_path: Path) -> None:
    await asyncio.to_thread(bare_repository, tmp_path / "work", web.root / "repo.git")
    cloned = await run(sandbox, f"git clone -q {web.url('git.test', 'repo.git')} /tmp/repo && cat /tmp/repo/README")
    assert cloned.stdout == "cloned through the proxy\n", cloned.stderr


async def test_pip_installs_a_package_from_a_simple_index_served_from_a_folder(
    sandbox: LocalSandbox, web: WebServer
) -> None:
    filename = "tiny-0.1-py3-none-any.whl"
    (web.root / filename).write_bytes(tiny_wheel())
    (web.root / "simple" / "tiny").mkdir(parents=True)
    (web.root / "simple" / "tiny" / "index.html").write_text(f'<a href="../../{filename}">{filename}</a>')
    pip = "python3 -m pip install -q --no-cache-dir --disable-pip-version-check --target /tmp/site"
    installed = await run(
        sandbox,
        f"{pip} --trusted-host pkgs.test --index-url {web.url('pkgs.test', 'simple/')} tiny && "
        "PYTHONPATH=/tmp/site python3 -c 'import tiny; print(tiny.VALUE)'",
    )
    assert installed.stdout.strip() == "installed", installed.stderr


@pytest.mark.skipif(shutil.which("npm") is None, reason="needs npm (Debian: npm)")
async def test_npm_talks_to_a_registry_through_the_proxy(sandbox: LocalSandbox, web: WebServer) -> None:
    (web.root / "-").mkdir()
    (web.root / "-" / "ping").write_text("{}")
    pinged = await run(sandbox, f"npm ping --registry {web.url('pkgs.test')} 2>&1")
    assert "PONG" in pinged.stdout, pinged.stdout


# ---- the ways out that must fail ----


async def test_a_raw_tcp_connection_to_an_address_goes_nowhere(sandbox: LocalSandbox, web: WebServer) -> None:
    probe = (
        "import socket\n"
        f"for address in [('127.0.0.1', {web.port}), ('192.0.2.7', 80), ('::1', {web.port})]:\n"
        "    try:\n"
        "        socket.create_connection(address, timeout=3); print('connected')\n"
        "    except OSError as error:\n"
        "        print(type(error).__name__)\n"
    )
    await sandbox.write_file("/tmp/probe.py", probe.encode())
    result = await run(sandbox, "python3 /tmp/probe.py")
    assert result.stdout.split() == ["ConnectionRefusedError", "OSError", "ConnectionRefusedError"], result.stderr


async def test_a_dns_lookup_from_inside_resolves_nothing_outside(sandbox: LocalSandbox) -> None:
    looked = await run(sandbox, "getent hosts files.test; echo rc=$?; getent hosts elsewhere.test; echo rc=$?")
    assert looked.stdout.split() == ["rc=2", "rc=2"]
    assert looked.duration < 10


async def test_a_refused_port_a_refused_name_and_loopback_or_metadata_answers_are_refused_by_the_proxy(
    sandbox: LocalSandbox, web: WebServer
) -> None:
    urls = [
        "http://files.test:22/",
        web.url("elsewhere.test"),
        web.url("loop.test"),
        web.url("metadata.test"),
        web.url("inner.test"),
    ]
    codes = await run(sandbox, "; ".join(f"curl -s -o /dev/null -w '%{{http_code}} ' {url}" for url in urls))
    connects = await run(sandbox, f"curl -sS --proxytunnel {web.url('metadata.test')} 2>&1")
    assert codes.stdout.split() == ["403"] * 5
    assert "403" in connects.stdout


async def test_ipv6_literals_reach_neither_the_host_nor_anything_else(sandbox: LocalSandbox, web: WebServer) -> None:
    direct = await run(sandbox, f"curl -sS http://[::1]:{web.port}/ 2>&1; echo rc=$?")
    proxied = await run(sandbox, f"curl -s -o /dev/null -w '%{{http_code}}' --noproxy '' http://[::1]:{web.port}/")
    mapped = await run(sandbox, "curl -s -o /dev/null -w '%{http_code}' --noproxy '' http://[::ffff:127.0.0.1]:80/")
    assert "rc=7" in direct.stdout  # NO_PROXY keeps ::1 inside: the sandbox's own loopback, where nothing listens
    assert (proxied.stdout, mapped.stdout) == ("403", "403")


async def test_a_host_header_that_differs_from_the_target_is_refused(sandbox: LocalSandbox, web: WebServer) -> None:
    (web.root / "hello.txt").write_text("hello")
    plain = (
        f"curl -s -o /dev/null -w '%{{http_code}}' -H 'Host: loop.test:{web.port}' {web.url('files.test', 'hello.txt')}"
    )
    result = await run(sandbox, plain)
    assert result.stdout == "403"


async def test_a_sandbox_that_unsets_the_proxy_variables_cannot_get_out(sandbox: LocalSandbox, web: WebServer) -> None:
    unset = "unset http_proxy https_proxy all_proxy HTTP_PROXY HTTPS_PROXY ALL_PROXY"
    names = await run(sandbox, f"{unset}; curl -sS {web.url('files.test')} 2>&1; echo rc=$?")
    address = await run(sandbox, f"{unset}; curl -sS http://127.0.0.1:{web.port}/ 2>&1; echo rc=$?")
    assert "rc=6" in names.stdout  # could not resolve: no name server answers inside
    assert "rc=7" in address.stdout  # connection refused: the sandbox's own loopback


async def test_the_sandbox_sees_where_it_may_connect(sandbox: LocalSandbox, web: WebServer) -> None:
    assert f"files.test:{web.port}" in sandbox.info.reachable
    assert sandbox.info.network


async def test_egress_works_again_after_a_restart_of_the_server(
    local_state_dir: Path, policy: EgressPolicy, web: WebServer
) -> None:
    (web.root / "hello.txt").write_text("again")
    first = LocalProvider(local_state_dir, egress=policy, egress_resolver=resolve_test_names)
    sandbox = await first.create(network=True)
    before = await run(sandbox, f"curl -sSf {web.url('files.test', 'hello.txt')}")
    await first.aclose()
    second = LocalProvider(local_state_dir, egress=policy, egress_resolver=resolve_test_names)
    try:
        again = await second.get(sandbox.id)
        after = await run(again, f"curl -sSf {web.url('files.test', 'hello.txt')}")
    finally:
        await again.terminate()
        await second.aclose()
    assert (before.stdout, after.stdout) == ("again", "again"), after.stderr


async def test_egress_is_refused_where_the_provider_cannot_give_it_without_the_hosts_network(
    local_state_dir: Path, policy: EgressPolicy
) -> None:
    without_holder = LocalProvider(local_state_dir, keep_background=False, egress=policy)
    with pytest.raises(BackendUnavailableError, match="keep_background=True"):
        await without_holder.create(network=True)
    with pytest.raises(InvalidArgumentError, match="no egress allow-list"):
        await LocalProvider(local_state_dir).create(network=True)
    assert await LocalProvider(local_state_dir).list() == []


async def test_commands_starting_at_once_share_one_proxy(
    sandbox: LocalSandbox, web: WebServer, caplog: pytest.LogCaptureFixture
) -> None:
    (web.root / "hello.txt").write_text("hello")
    fetch = f"curl -sSf {web.url('files.test', 'hello.txt')}"
    results = await asyncio.gather(*(run(sandbox, fetch) for _ in range(4)))
    assert [result.stdout for result in results] == ["hello"] * 4, [result.stderr for result in results]
    assert "cannot listen" not in caplog.text
