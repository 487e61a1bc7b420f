#!/usr/bin/env bash
# Make `redis-server` available for the tests (Debian's `redis-server` package).
#
# Installs the package when it is missing and we are root. If it is still missing afterwards: with
# CI=true this fails (exit 1), because the shared-state tests must not silently lose their checks in
# CI; otherwise it warns and exits 0, and the tests that need it fail with a message.
set -u

if command -v redis-server >/dev/null 2>&1; then
    exit 0
fi

if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
    echo "ensure-redis: installing Debian package 'redis-server'" >&2
    export DEBIAN_FRONTEND=noninteractive
    if ! { apt-get update -qq && apt-get install -y -qq --no-install-recommends redis-server; } >/dev/null; then
        echo "ensure-redis: apt-get install redis-server failed" >&2
    fi
fi

if command -v redis-server >/dev/null 2>&1; then
    exit 0
fi

msg="ensure-redis: redis-server is missing; install Debian's 'redis-server' package"
msg="$msg (apt-get install --no-install-recommends redis-server) to run the shared-state tests"
if [ "${CI:-}" = "true" ]; then
    echo "ERROR: $msg" >&2
    exit 1
fi
echo "WARNING: $msg; those tests will fail" >&2
exit 0
