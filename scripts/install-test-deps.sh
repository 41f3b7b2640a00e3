#!/usr/bin/env bash
# Installs the system programs the test suite starts on loopback (see docs/contributing/testing.md):
#   redis-server        Redis, for the Redis session store, lock and limiter tests
#   chromium            headless browser for the web widget / staff console tests (playwright drives it)
#   fonts-wqy-microhei  a CJK font (1.6 MB), so Chinese text renders in screenshots instead of boxes
# PostgreSQL comes from the `pgserver` wheel (the `dev` extra), not from here.
#
# Idempotent: when everything is already installed it only checks and exits (well under a second).
# Quiet: prints nothing on success. Fails loudly: apt's own output is shown when a step fails.
# Needs root (or passwordless sudo) and a Debian/Ubuntu machine with apt-get.
set -euo pipefail

PACKAGES=(redis-server chromium fonts-wqy-microhei)
# Programs the tests look for; a package counts as installed only when dpkg says so.
PROGRAMS=(redis-server chromium)

missing=()
for pkg in "${PACKAGES[@]}"; do
    status=$(dpkg-query -W -f='${db:Status-Status}' "$pkg" 2>/dev/null || true)
    [[ "$status" == "installed" ]] || missing+=("$pkg")
done

if ((${#missing[@]})); then
    if ! command -v apt-get >/dev/null 2>&1; then
        echo "install-test-deps: apt-get not found; install these packages by hand: ${missing[*]}" >&2
        exit 1
    fi
    SUDO=()
    if [[ $(id -u) -ne 0 ]]; then
        if command -v sudo >/dev/null 2>&1; then
            SUDO=(sudo -n)
        else
            echo "install-test-deps: need root to install: ${missing[*]}" >&2
            exit 1
        fi
    fi
    export DEBIAN_FRONTEND=noninteractive
    log=$(mktemp)
    trap 'rm -f "$log"' EXIT
    apt_get() {
        # Wait for another apt/dpkg run (a parallel session) instead of failing on its lock.
        "${SUDO[@]}" apt-get -q -y -o DPkg::Lock::Timeout=600 -o APT::Install-Recommends=false "$@" \
            >>"$log" 2>&1
    }
    # The package lists can be old enough that the mirror no longer has the versions they name
    # (a 404 on download), so refresh them before installing; that is the only time we need to.
    if ! apt_get update || ! apt_get install "${missing[@]}"; then
        echo "install-test-deps: apt-get failed installing ${missing[*]}:" >&2
        cat "$log" >&2
        exit 1
    fi
fi

for prog in "${PROGRAMS[@]}"; do
    if ! command -v "$prog" >/dev/null 2>&1; then
        echo "install-test-deps: '$prog' is still not on PATH after installing ${PACKAGES[*]}" >&2
        exit 1
    fi
done
