#!/usr/bin/env bash
# Offline chart tests: installs the pinned Python packages into a venv, then runs pytest.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
venv="${CHART_TEST_VENV:-$root/.dev/chart-venv}"
if [ ! -x "$venv/bin/python" ]; then
    python3 -m venv "$venv"
fi
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$here/requirements.txt"
cd "$root"
exec "$venv/bin/python" -m pytest -q -p no:cacheprovider "$here" "$@"
