#!/usr/bin/env bash
# Install the Debian packages that the integration tests need, when missing.
#
# Idempotent: does nothing (no apt-get update) when every package is already
# installed. Must run as root (or with sudo available).
#
# Packages:
#   kamailio                    - kamailio, kamcmd and the core modules used by
#                                 tests/kamailio/kamailio.cfg (tm, sl, rr,
#                                 registrar, usrloc, auth, auth_db, db_text,
#                                 nathelper, xhttp, ctl, ...)
#   kamailio-websocket-modules  - websocket.so (SIP over WebSocket, RFC 7118)
#   kamailio-tls-modules        - tls.so: the wss:// listener of the TLS Kamailio
#                                 in tests/test_wss_kamailio.py
#   sip-tester                  - the sipp binary: an independent SIP peer for the
#                                 interop tests (tests/test_sipp.py, tests/sipp/)
#                                 and the call benchmark (benchmarks/calls.py)
#   graphviz                    - the dot program: `sipfsm diagrams --format svg`
#                                 and tests/test_diagrams.py (the mermaid and dot
#                                 formats need nothing)
#
# The tests start their own Kamailio on 127.0.0.1 with a private config in a
# temporary directory. The packaged system service is not wanted: it is kept
# from starting during the install and is stopped/disabled afterwards, so no
# Kamailio daemon is left listening on non-loopback addresses.
set -euo pipefail

PACKAGES=(
    kamailio
    kamailio-websocket-modules
    kamailio-tls-modules
    sip-tester
    graphviz
)

SUDO=()
if [[ $(id -u) -ne 0 ]]; then
    if command -v sudo >/dev/null 2>&1; then
        SUDO=(sudo)
    else
        echo "install-system-deps: must run as root (or with sudo available)" >&2
        exit 1
    fi
fi

is_installed() {
    dpkg-query -W -f='${db:Status-Status}' "$1" 2>/dev/null | grep -qx installed
}

missing=()
for pkg in "${PACKAGES[@]}"; do
    if ! is_installed "$pkg"; then
        missing+=("$pkg")
    fi
done

if [[ ${#missing[@]} -eq 0 ]]; then
    echo "install-system-deps: all packages present (${PACKAGES[*]})"
    exit 0
fi

echo "install-system-deps: installing ${missing[*]}"

# Keep maintainer scripts from starting services while installing, unless the
# machine already has a policy (Debian container images ship one that denies).
policy=/usr/sbin/policy-rc.d
temp_policy=0
if [[ ! -e $policy ]]; then
    printf '#!/bin/sh\n# temporary, written by install-system-deps.sh\nexit 101\n' \
        | "${SUDO[@]}" tee "$policy" >/dev/null
    "${SUDO[@]}" chmod 0755 "$policy"
    temp_policy=1
fi
remove_temp_policy() {
    if [[ $temp_policy -eq 1 ]]; then
        "${SUDO[@]}" rm -f "$policy"
    fi
}
trap remove_temp_policy EXIT

export DEBIAN_FRONTEND=noninteractive
"${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update
"${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive \
    apt-get install -y --no-install-recommends "${missing[@]}"

# Make sure the packaged service is neither running nor enabled.
if [[ -d /run/systemd/system ]] && command -v systemctl >/dev/null 2>&1; then
    "${SUDO[@]}" systemctl disable --now kamailio.service >/dev/null 2>&1 || true
elif command -v deb-systemd-helper >/dev/null 2>&1; then
    # No running systemd (container): the postinst still enables the unit by
    # symlink for a later boot; undo that.
    "${SUDO[@]}" deb-systemd-helper disable kamailio.service >/dev/null 2>&1 || true
fi
if [[ -x /etc/init.d/kamailio ]]; then
    "${SUDO[@]}" /etc/init.d/kamailio stop >/dev/null 2>&1 || true
    if command -v update-rc.d >/dev/null 2>&1; then
        "${SUDO[@]}" update-rc.d kamailio disable >/dev/null 2>&1 || true
    fi
fi
for pidfile in /run/kamailio/kamailio.pid /var/run/kamailio/kamailio.pid; do
    if [[ -s $pidfile ]]; then
        pid=$(cat "$pidfile")
        if [[ $pid =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null; then
            "${SUDO[@]}" kill -TERM "$pid" 2>/dev/null || true
        fi
    fi
done

for pkg in "${PACKAGES[@]}"; do
    if ! is_installed "$pkg"; then
        echo "install-system-deps: $pkg failed to install" >&2
        exit 1
    fi
done
echo "install-system-deps: done ($(kamailio -v 2>/dev/null | head -n 1 || true);" \
    "$(sipp -v 2>/dev/null | grep -m 1 -i 'sipp v' | sed 's/^[[:space:]]*//' || true))"
