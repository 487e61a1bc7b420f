#!/usr/bin/env bash
# Make Debian's `chromium` available for the playground's browser tests (playwright drives it through
# `executable_path`: playwright's own browser download is not used).
exec "$(dirname "$0")/ensure-debian.sh" chromium chromium
