#!/usr/bin/env bash
# Helm chart, deploy/ manifests and rendered-config tests (see tests/chart/).
set -euo pipefail
exec "$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/chart/run.sh" "$@"
