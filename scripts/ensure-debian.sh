#!/usr/bin/env bash
# Make the commands the tests need available from Debian packages:
#   scripts/ensure-debian.sh "PACKAGE..." COMMAND...
#
# Installs the packages when a command is missing and we are root. If one is still missing afterwards:
# with CI=true this fails (exit 1), because tests must not silently lose their checks in CI; otherwise
# it warns and exits 0, and the tests that need the command skip or fail with a message.
set -u

packages=$1
shift
have_all() {
    for cmd in "$@"; do command -v "$cmd" >/dev/null 2>&1 || return 1; done
}

if have_all "$@"; then
    exit 0
fi

if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
    echo "ensure-debian: installing Debian package(s) '$packages' for: $*" >&2
    export DEBIAN_FRONTEND=noninteractive
    # shellcheck disable=SC2086  # the package list is split on purpose
    if ! { apt-get update -qq && apt-get install -y -qq --no-install-recommends $packages; } >/dev/null; then
        echo "ensure-debian: apt-get install $packages failed" >&2
    fi
fi

if have_all "$@"; then
    exit 0
fi

msg="ensure-debian: $* missing; install Debian's '$packages' (apt-get install --no-install-recommends $packages)"
if [ "${CI:-}" = "true" ]; then
    echo "ERROR: $msg" >&2
    exit 1
fi
echo "WARNING: $msg; the tests that need them will skip or fail" >&2
exit 0
