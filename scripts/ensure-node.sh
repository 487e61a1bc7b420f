#!/usr/bin/env bash
# Make Node and npm available, then install the JavaScript clients the tests run (`tests/js/`:
# the Vercel AI SDK with its OpenAI provider, AG-UI's client, Claude Code and Codex CLI, pinned by
# its package-lock.json).
set -eu
root="$(cd "$(dirname "$0")/.." && pwd)"
"$root/scripts/ensure-tools.sh" nodejs node
"$root/scripts/ensure-tools.sh" npm npm
if command -v npm >/dev/null 2>&1; then
    cd "$root/tests/js" && npm ci --no-audit --no-fund --loglevel=error
fi
