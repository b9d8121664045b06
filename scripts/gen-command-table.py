#!/usr/bin/env python3
"""Generate src/command/table.rs from a live Redis 7 `COMMAND` reply.

Usage: scripts/gen-command-table.py [--redis-server PATH] [--out PATH]

The script starts its own throw-away redis-server (unix socket in a temporary
directory, no persistence), reads `COMMAND` and `INFO server` over a raw socket
with a minimal RESP2 reader, classifies every command and subcommand with the
rules below, and writes the Rust table: the `@generated` header, the sorted
`static COMMANDS` (one line per spec) and the hand-maintained lookup code kept in
`src/command/lookup.rs`. It kills the server it started (by PID) at the end.

Python 3 standard library only.

Class rules (first match wins; names are Redis' lowercase names, subcommands as
`container|sub`):

1. Unsupported (`UNSUPPORTED`, plus every `cluster|*`): commands that cannot work
   through a proxy that multiplexes many clients over shared backend links:
   replication and cluster plumbing, MONITOR, DEBUG, connection-state changes the
   proxy cannot mirror (CLIENT TRACKING/CACHING/REPLY/PAUSE/..., READONLY/READWRITE,
   ASKING), SCRIPT DEBUG (turns the connection into a debugger session).
2. Local (`LOCAL`, plus every `command|*`, plus every `client|*` not caught by 1 or 3):
   answered by the proxy itself.
3. Admin:
   * `ADMIN_EXPLICIT` (FLUSHALL, FLUSHDB, SWAPDB, MIGRATE, SCRIPT FLUSH/KILL, FUNCTION
     FLUSH/DELETE/KILL/RESTORE), and
   * anything with the `admin` command flag or the `@admin` ACL category (CONFIG *,
     SHUTDOWN, SAVE, BGSAVE, BGREWRITEAOF, LASTSAVE, ROLE, ACL *, LATENCY *, MODULE *,
     SLOWLOG *, CLIENT KILL/UNBLOCK, PFDEBUG, PFSELFTEST, ...).
   The `@dangerous` category alone does NOT make a command Admin: KEYS, SORT,
   SORT_RO and RESTORE are data commands; the dangerous ones that are not flagged
   `admin` are listed in `ADMIN_EXPLICIT` instead.
4. Write: `WRITE_EXPLICIT` (PUBLISH/SPUBLISH change what subscribers see; EVAL,
   EVALSHA, FCALL may write) or the `write` command flag.
5. Read: everything else (the `readonly` flag, pub/sub, transactions, TIME, ...).

Container commands (those with subcommands) that are not Local/Unsupported by name
get the strictest class of their subcommands (Admin > Write > Read), so that an
unknown subcommand never reaches a backend in a weaker mode than a known one.

Flags:
* BLOCKING: the `blocking` command flag or the `@blocking` category, plus WAIT.
* PUBSUB: the `pubsub` flag or the `@pubsub` category.
* TRANSACTION: the `@transaction` category (MULTI, EXEC, DISCARD, WATCH, UNWATCH).
* SCRIPT: the `@scripting` category.
* CONTAINER: the command has subcommands (containers also get the PUBSUB/SCRIPT bits
  of their subcommands).
* MOVABLE_KEYS / READONLY: the `movablekeys` / `readonly` command flags.
* CUSTOM_KEYS: some key spec is `unknown`, `incomplete` or `variable_flags`, so Redis
  itself falls back to a command-specific key procedure (SORT, SORT_RO, MIGRATE, SET,
  BITFIELD); `key_indices` handles those by name where the specs are not enough.

Key specs are copied exactly; specs flagged `not_key` (the channels of SSUBSCRIBE,
SUNSUBSCRIBE, SPUBLISH) and specs of `unknown` type are left out (they name no key
positions). A spec is `write` when it has any of the RW, OW, RM, insert, delete,
update flags.
"""

import argparse
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

UNSUPPORTED = {
    "monitor", "sync", "psync", "replconf", "replicaof", "slaveof", "cluster",
    "debug", "failover", "readonly", "readwrite", "asking", "restore-asking",
    "client|tracking", "client|caching", "client|getredir", "client|trackinginfo",
    "client|pause", "client|unpause", "client|reply", "client|no-evict",
    "client|no-touch", "script|debug",
}
UNSUPPORTED_CONTAINERS = {"cluster"}  # every subcommand too

LOCAL = {
    "auth", "hello", "select", "ping", "echo", "quit", "reset", "info", "command",
    "client", "client|setname", "client|getname", "client|id", "client|info",
    "client|list", "client|setinfo", "client|help",
}
LOCAL_CONTAINERS = {"command"}  # every subcommand too

ADMIN_EXPLICIT = {
    "flushall", "flushdb", "swapdb", "migrate",
    "config|get", "config|set", "config|resetstat",
    "script|flush", "script|kill",
    "function|flush", "function|delete", "function|kill", "function|restore",
}
# CLIENT subcommands that stay Admin (not Local): they act on other clients.
CLIENT_ADMIN = {"client|kill", "client|unblock"}

WRITE_EXPLICIT = {"publish", "spublish", "eval", "evalsha", "fcall"}
READ_EXPLICIT = {"eval_ro", "evalsha_ro", "fcall_ro"}
BLOCKING_EXPLICIT = {"wait"}

# Commands whose key procedure needs code beyond the key specs (see key_indices).
CUSTOM_KEY_PROCS = {"sort", "sort_ro", "migrate"}

WRITE_KEY_FLAGS = {"RW", "OW", "RM", "insert", "delete", "update"}

CLASS_ORDER = {"Read": 0, "Write": 1, "Admin": 2}


# --------------------------------------------------------------------------- RESP


class RespError(Exception):
    pass


class Resp:
    def __init__(self, sock):
        self.sock = sock
        self.buf = b""

    def _fill(self):
        chunk = self.sock.recv(1 << 16)
        if not chunk:
            raise ConnectionError("redis-server closed the connection")
        self.buf += chunk

    def _line(self):
        while True:
            i = self.buf.find(b"\r\n")
            if i >= 0:
                line, self.buf = self.buf[:i], self.buf[i + 2:]
                return line
            self._fill()

    def _exact(self, n):
        while len(self.buf) < n + 2:
            self._fill()
        data, self.buf = self.buf[:n], self.buf[n + 2:]
        return data

    def read(self):
        line = self._line()
        kind, rest = line[:1], line[1:]
        if kind == b"+":
            return rest.decode()
        if kind == b"-":
            return RespError(rest.decode())
        if kind == b":":
            return int(rest)
        if kind == b"$":
            n = int(rest)
            return None if n < 0 else self._exact(n).decode()
        if kind == b"*":
            n = int(rest)
            return None if n < 0 else [self.read() for _ in range(n)]
        raise ValueError("unexpected RESP type %r" % line)

    def call(self, *args):
        out = b"*%d\r\n" % len(args)
        for a in args:
            a = a.encode() if isinstance(a, str) else a
            out += b"$%d\r\n%s\r\n" % (len(a), a)
        self.sock.sendall(out)
        reply = self.read()
        if isinstance(reply, RespError):
            raise reply
        return reply


# ------------------------------------------------------------------------ server


def start_server(binary, tmpdir):
    sock_path = os.path.join(tmpdir, "r.sock")
    proc = subprocess.Popen(
        [binary, "--port", "0", "--unixsocket", sock_path, "--save", "",
         "--appendonly", "no", "--dir", tmpdir],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    deadline = time.time() + 10
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError("redis-server exited with status %s" % proc.returncode)
        try:
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.connect(sock_path)
            return proc, s
        except OSError:
            s.close()
            time.sleep(0.05)
    stop_server(proc)
    raise RuntimeError("redis-server did not open %s within 10 s" % sock_path)


def stop_server(proc):
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()


# ------------------------------------------------------------------- conversion


def pairs(flat):
    """RESP2 maps arrive as flat [k1, v1, k2, v2, ...] lists."""
    return dict(zip(flat[::2], flat[1::2])) if isinstance(flat, list) else {}


def flatten(commands):
    for c in commands:
        yield c
        if len(c) > 9 and c[9]:
            yield from flatten(c[9])


def classify(name, cmd_flags, cats, sub_classes):
    container = name.split("|")[0]
    if name in UNSUPPORTED or container in UNSUPPORTED_CONTAINERS:
        return "Unsupported"
    if name in CLIENT_ADMIN:
        return "Admin"
    if name in LOCAL or container in LOCAL_CONTAINERS or container == "client":
        return "Local"
    if sub_classes:
        return max(sub_classes, key=lambda c: CLASS_ORDER.get(c, -1))
    if name in ADMIN_EXPLICIT or "admin" in cmd_flags or "@admin" in cats:
        return "Admin"
    if name in WRITE_EXPLICIT:
        return "Write"
    if name in READ_EXPLICIT:
        return "Read"
    if "write" in cmd_flags:
        return "Write"
    return "Read"


def rust_key_spec(spec):
    """Returns (rust expression or None, custom) for one Redis key spec."""
    spec = pairs(spec)
    kflags = set(spec.get("flags", []))
    custom = bool(kflags & {"incomplete", "variable_flags"})
    if "not_key" in kflags:
        return None, custom
    bs, fk = pairs(spec["begin_search"]), pairs(spec["find_keys"])
    bss, fks = pairs(bs.get("spec")), pairs(fk.get("spec"))
    if bs.get("type") == "index":
        begin = "ix(%d)" % bss["index"]
    elif bs.get("type") == "keyword":
        kw = bss["keyword"]
        assert kw.isascii() and '"' not in kw and "\\" not in kw, kw
        begin = 'kw("%s", %d)' % (kw, bss["startfrom"])
    else:
        return None, True
    if fk.get("type") == "range":
        find = "rg(%d, %d, %d)" % (fks["lastkey"], fks["keystep"], fks["limit"])
    elif fk.get("type") == "keynum":
        find = "kn(%d, %d, %d)" % (fks["keynumidx"], fks["firstkey"], fks["keystep"])
    else:
        return None, True
    write = "true" if kflags & WRITE_KEY_FLAGS else "false"
    return "k(%s, %s, %s)" % (begin, find, write), custom


def build(commands):
    by_name = {c[0].lower(): c for c in flatten(commands)}
    subs = {}
    for name in by_name:
        if "|" in name:
            subs.setdefault(name.split("|")[0], []).append(name)

    classes, rows = {}, []

    def class_of(name):
        if name not in classes:
            c = by_name[name]
            sub_classes = [class_of(s) for s in subs.get(name, [])]
            classes[name] = classify(name, set(c[2]), set(c[6]), sub_classes)
        return classes[name]

    for name in sorted(by_name):
        c = by_name[name]
        cmd_flags, cats = set(c[2]), set(c[6])
        fl = []
        if "blocking" in cmd_flags or "@blocking" in cats or name in BLOCKING_EXPLICIT:
            fl.append("BLOCKING")
        if "pubsub" in cmd_flags or "@pubsub" in cats:
            fl.append("PUBSUB")
        if "@transaction" in cats:
            fl.append("TRANSACTION")
        if "@scripting" in cats:
            fl.append("SCRIPT")
        if name in subs:
            fl.append("CONTAINER")
            for s in subs[name]:
                sc = set(by_name[s][2]) | set(by_name[s][6])
                if ("pubsub" in sc or "@pubsub" in sc) and "PUBSUB" not in fl:
                    fl.append("PUBSUB")
                if "@scripting" in sc and "SCRIPT" not in fl:
                    fl.append("SCRIPT")
        if "movablekeys" in cmd_flags:
            fl.append("MOVABLE_KEYS")
        if "readonly" in cmd_flags:
            fl.append("READONLY")
        keys, custom = [], name in CUSTOM_KEY_PROCS
        for spec in c[8] if len(c) > 8 else []:
            expr, cust = rust_key_spec(spec)
            custom = custom or cust
            if expr:
                keys.append(expr)
        if custom:
            fl.append("CUSTOM_KEYS")
        rows.append((name, c[1], class_of(name), " | ".join(fl) or "0", keys))
    return rows


def render(rows, version):
    out = [
        "// @generated by scripts/gen-command-table.py from Redis %s COMMAND; do not edit" % version,
        "//! The command table (data only; lookups live in `lookup.rs`). Regenerate with",
        "//! `python3 scripts/gen-command-table.py`; the class rules are documented there.",
        "",
        "use super::flags::*;",
        "use super::lookup::{c, ix, k, kn, kw, rg};",
        "use super::CommandClass::{Admin, Local, Read, Unsupported, Write};",
        "use super::CommandSpec;",
        "",
        "/// The Redis version the table was generated from.",
        'pub const REDIS_VERSION: &str = "%s";' % version,
        "",
        "/// Every Redis command and `container|subcommand`, sorted by name (byte order).",
        "#[rustfmt::skip]",
        "pub(super) static COMMANDS: &[CommandSpec] = &[",
    ]
    for name, arity, cls, fl, keys in rows:
        assert name.isascii() and '"' not in name
        out.append('    c("%s", %d, %s, %s, &[%s]),' % (name, arity, cls, fl, ", ".join(keys)))
    out.append("];")
    return "\n".join(out) + "\n"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--redis-server", default=shutil.which("redis-server") or "redis-server")
    ap.add_argument("--out", default=os.path.join(ROOT, "src", "command", "table.rs"))
    args = ap.parse_args()

    tmpdir = tempfile.mkdtemp(prefix="redmux-gen-")
    proc = None
    try:
        proc, sock = start_server(args.redis_server, tmpdir)
        with sock:
            r = Resp(sock)
            info = r.call("INFO", "server")
            version = next(
                (l.split(":", 1)[1].strip() for l in info.splitlines()
                 if l.startswith("redis_version:")), "unknown")
            commands = r.call("COMMAND")
    finally:
        if proc is not None:
            stop_server(proc)
        shutil.rmtree(tmpdir, ignore_errors=True)

    if not version.startswith("7."):
        print("warning: generating from Redis %s, not 7.x" % version, file=sys.stderr)
    rows = build(commands)
    text = render(rows, version)
    with open(args.out, "w") as f:
        f.write(text)

    counts = {}
    for row in rows:
        counts[row[2]] = counts.get(row[2], 0) + 1
    print("wrote %s: %d specs (%s)" % (
        os.path.relpath(args.out, ROOT), len(rows),
        ", ".join("%s %d" % kv for kv in sorted(counts.items()))))
    print("unsupported: " + " ".join(r[0] for r in rows if r[2] == "Unsupported"))


if __name__ == "__main__":
    main()
