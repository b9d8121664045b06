#!/usr/bin/env bash
# tests/clients/run.sh: the client compatibility matrix's scripts (redis-py, ioredis,
# node-redis), driven by tests/client_matrix.rs, which starts Redis, Sentinel and redmux.
#
#   tests/clients/run.sh install              install the pinned clients, nothing else
#   tests/clients/run.sh HOST PORT PASSWORD   install if needed, then run every client
#                                             script against HOST:PORT; each prints
#                                             "OK <client> <version> <protocol>"
#
# Starts no server. Installs into git-ignored dirs: .dev/clients-venv (pip, pinned in
# requirements.txt) and tests/clients/node_modules (npm ci, pinned in package-lock.json).
# Fails loudly when python3, node or npm is missing. Extra env for the scripts is passed on
# (MATRIX_SETINFO=1: also check the CLIENT SETINFO library name).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
VENV="$ROOT/.dev/clients-venv"

die() { echo "tests/clients/run.sh: $*" >&2; exit 1; }

for bin in python3 node npm; do
    command -v "$bin" >/dev/null 2>&1 ||
        die "$bin not found on PATH (install: apt-get install -y python3 python3-venv nodejs npm)"
done

install_python() {
    local stamp="$VENV/.requirements.txt"
    if [[ -x "$VENV/bin/python" ]] && cmp -s "$HERE/requirements.txt" "$stamp"; then
        return
    fi
    echo "run.sh: installing Python clients into $VENV" >&2
    python3 -m venv "$VENV" || die "python3 -m venv failed (apt-get install -y python3-venv)"
    timeout 300 "$VENV/bin/pip" install --quiet --disable-pip-version-check \
        -r "$HERE/requirements.txt" || die "pip install failed"
    cp "$HERE/requirements.txt" "$stamp"
}

install_node() {
    local stamp="$HERE/node_modules/.package-lock.json.installed"
    if [[ -d "$HERE/node_modules" ]] && cmp -s "$HERE/package-lock.json" "$stamp"; then
        return
    fi
    echo "run.sh: installing Node clients into $HERE/node_modules" >&2
    (cd "$HERE" && timeout 300 npm ci --no-audit --no-fund --loglevel=error) || die "npm ci failed"
    cp "$HERE/package-lock.json" "$stamp"
}

install_python
install_node
[[ "${1:-}" == "install" ]] && exit 0
[[ $# -eq 3 ]] || die "usage: run.sh install | run.sh HOST PORT PASSWORD"

rc=0
cd "$HERE"
timeout 60 "$VENV/bin/python" redis_py.py "$@" || { echo "FAIL redis-py (exit $?)"; rc=1; }
timeout 60 node ioredis.js "$@" || { echo "FAIL ioredis (exit $?)"; rc=1; }
timeout 60 node node_redis.js "$@" || { echo "FAIL node-redis (exit $?)"; rc=1; }
exit "$rc"
