#!/usr/bin/env bash
# Make the system programs the tests run available: ensure-tools.sh DEBIAN_PACKAGE PROGRAM [PROGRAM...]
#
# Installs the Debian package when a program is missing and we are root. If one is still missing
# afterwards: with CI=true this fails (exit 1), because the tests that need it must not silently
# lose their checks in CI; otherwise it warns and exits 0, and those tests fail with a message.
set -u
package=$1
shift

have_tools() {
    for tool in "$@"; do
        command -v "$tool" >/dev/null 2>&1 || [ -x "/usr/sbin/$tool" ] || return 1
    done
}

if have_tools "$@"; then
    exit 0
fi

if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
    echo "ensure-tools: installing Debian package '$package' ($*)" >&2
    export DEBIAN_FRONTEND=noninteractive
    # The tests start each server themselves on a free port: no init script may start a packaged
    # service (nginx on port 80, redis on 6379) behind their back.
    policy=/usr/sbin/policy-rc.d
    created_policy=""
    if [ ! -e "$policy" ]; then
        printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod +x "$policy" && created_policy=1
    fi
    if ! { apt-get update -qq && apt-get install -y -qq --no-install-recommends "$package"; } >/dev/null; then
        echo "ensure-tools: apt-get install $package failed" >&2
    fi
    [ -n "$created_policy" ] && rm -f "$policy"
fi

if have_tools "$@"; then
    exit 0
fi

msg="ensure-tools: $* missing; install Debian's '$package' package (apt-get install --no-install-recommends $package)"
if [ "${CI:-}" = "true" ]; then
    echo "ERROR: $msg" >&2
    exit 1
fi
echo "WARNING: $msg; the tests that need it will fail" >&2
exit 0
