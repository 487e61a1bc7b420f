#!/usr/bin/env bash
# Make the programs the deploy tests need available: `nginx` (Debian's package; the tests run it in
# front of real proxy processes) and `kubectl` (its built-in kustomize builds deploy/kubernetes).
#
# As with ensure-prometheus.sh: a missing tool is installed with apt-get when we are root; if one is
# still missing, CI=true fails (exit 1), because the deploy checks must not silently disappear in CI;
# otherwise it warns, and the tests that need the tool fail with a message.
set -u

missing() {
    local tool out=""
    for tool in nginx kubectl; do
        command -v "$tool" >/dev/null 2>&1 || [ -x "/usr/sbin/$tool" ] || out="$out $tool"
    done
    echo "${out# }"
}

todo=$(missing)
if [ -z "$todo" ]; then
    exit 0
fi

if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
    # Debian's `nginx` is `nginx`; `kubectl` is a package only where a Kubernetes or Google Cloud apt
    # repository is configured (this machine image has the latter).
    echo "ensure-deploy-tools: installing with apt-get: $todo" >&2
    export DEBIAN_FRONTEND=noninteractive
    # No init system starts a packaged nginx on port 80 behind the tests' back.
    policy=/usr/sbin/policy-rc.d
    created_policy=""
    if [ ! -e "$policy" ]; then
        printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod +x "$policy" && created_policy=1
    fi
    if ! { apt-get update -qq && apt-get install -y -qq --no-install-recommends $todo; } >/dev/null; then
        echo "ensure-deploy-tools: apt-get install $todo failed" >&2
    fi
    [ -n "$created_policy" ] && rm -f "$policy"
fi

todo=$(missing)
if [ -z "$todo" ]; then
    exit 0
fi

msg="ensure-deploy-tools: missing: $todo. Install Debian's 'nginx' package, and kubectl (the"
msg="$msg 'kubectl' package of a Kubernetes apt repository, or any kubectl >= 1.27 on PATH)"
. "$(dirname "$0")/ensure-common.sh"
still_missing "$msg"
