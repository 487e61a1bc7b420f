#!/usr/bin/env bash
# Make `promtool` and `prometheus` available for the observability tests (Debian's `prometheus`).
exec "$(dirname "$0")/ensure-debian.sh" prometheus promtool prometheus
