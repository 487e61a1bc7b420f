#!/usr/bin/env bash
# Create the virtual environment; on a fresh Debian, install python3-venv first when we may.
set -euo pipefail
venv=${1:-.venv}
python=${PYTHON:-python3}
if [ -x "$venv/bin/python" ]; then exit 0; fi
if ! "$python" -m venv "$venv" 2>/dev/null; then
  rm -rf "$venv"
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "bootstrap: installing python3-venv (Debian's python lacks venv/ensurepip)" >&2
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv python3-pip >/dev/null
    "$python" -m venv "$venv"
  else
    echo "bootstrap: '$python -m venv' failed; install python3-venv (apt-get install python3-venv)" >&2
    exit 1
  fi
fi
"$venv/bin/python" -m pip install --disable-pip-version-check -q --upgrade pip
