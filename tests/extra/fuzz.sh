#!/usr/bin/env bash
# Hook of scripts/test: a bounded cargo-fuzz run (10 s per target) of the parsers.
# Installs cargo-fuzz from crates.io when missing.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
if ! cargo fuzz --version >/dev/null 2>&1; then
    cargo install --locked cargo-fuzz
fi
exec "$ROOT/scripts/fuzz-smoke" "${FUZZ_SECONDS:-10}"
