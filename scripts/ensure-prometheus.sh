#!/usr/bin/env bash
# Make `promtool` and `prometheus` available for the tests (Debian's `prometheus` package).
#
# Installs the package when a tool is missing and we are root. If they are still missing afterwards:
# with CI=true this fails (exit 1), because the observability tests must not silently lose their
# checks in CI; otherwise it warns and exits 0, and the tests that need the tools fail with a message.
set -u

have_tools() { command -v promtool >/dev/null 2>&1 && command -v prometheus >/dev/null 2>&1; }

if have_tools; then
    exit 0
fi

if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
    echo "ensure-prometheus: installing Debian package 'prometheus' (promtool + prometheus)" >&2
    export DEBIAN_FRONTEND=noninteractive
    if ! { apt-get update -qq && apt-get install -y -qq --no-install-recommends prometheus; } >/dev/null; then
        echo "ensure-prometheus: apt-get install prometheus failed" >&2
    fi
fi

if have_tools; then
    exit 0
fi

msg="ensure-prometheus: promtool and/or prometheus are missing; install Debian's 'prometheus' package"
msg="$msg (apt-get install --no-install-recommends prometheus) to run the observability tests"
. "$(dirname "$0")/ensure-common.sh"
still_missing "$msg"
