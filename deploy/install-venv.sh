#!/bin/sh
# Build the proxy's virtual environment at $1 from the source tree in the current directory.
# The Dockerfile's build stage runs exactly this, and tests/deploy/test_image.py runs it in a fresh
# directory, so the image's install steps are proven to work without a container engine.
# Every dependency ships wheels for CPython 3.11 on Linux: no compiler is needed, even here.
set -eu
venv=${1:?usage: install-venv.sh VENV_DIR}
python3 -m venv "$venv"
"$venv/bin/pip" install --disable-pip-version-check --upgrade pip
"$venv/bin/pip" install --disable-pip-version-check --no-warn-script-location .
