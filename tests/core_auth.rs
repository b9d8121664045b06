//! Issue 2, authentication and rights: NOAUTH before AUTH, wrong passwords, `AUTH user pw`,
//! read/write/admin modes, key prefixes on every key, the anonymous entry, and no
//! Authority section at all. Real redis-server, redis-sentinel and redmux processes.

mod core_support;
mod support;

use core_support::*;
use std::io::ErrorKind;
use support::*;

#[test]
fn noauth_until_auth_and_only_auth_hello_quit_allowed() {
    let t = MasterReplica::start(GROUP);
    let p = start_predixy_ready(&t);
    let mut c = p.conn();
    for cmd in [
        &["GET", "k"][..],
        &["SET", "k", "v"],
        &["PING"],
        &["SELECT", "1"],
        &["CLIENT", "ID"],
        &["ECHO", "x"],
        &["INFO"],
        &["FLUSHALL"],
    ] {
        let r = c.query(cmd).unwrap();
        assert_eq!(
            r,
            Reply::Error("NOAUTH Authentication required.".into()),
            "{cmd:?} before AUTH"
        );
    }
    // HELLO without AUTH is refused the way Redis refuses it; with AUTH it logs in.
    assert_err(&c.query(&["HELLO", "3"]).unwrap(), "NOAUTH");
    let hello = c
        .query(&["HELLO", "2", "AUTH", "default", WRITE_PW])
        .unwrap();
    assert!(
        hello
            .as_pairs()
            .iter()
            .any(|(k, v)| k == "proto" && v == "2"),
        "HELLO 2 AUTH gave {hello:?}"
    );
    assert_eq!(c.query(&["SET", "k", "v"]).unwrap(), Reply::ok());
    assert_eq!(c.query(&["GET", "k"]).unwrap(), Reply::bulk("v"));

    // QUIT before AUTH: +OK and the connection is closed.
    let mut q = p.conn();
    assert_eq!(q.query(&["QUIT"]).unwrap(), Reply::ok());
    let eof = q.read_reply().unwrap_err();
    assert_eq!(eof.kind(), ErrorKind::UnexpectedEof, "after QUIT: {eof}");
}

#[test]
fn wrong_password_gives_wrongpass_and_no_access() {
    let t = MasterReplica::start(GROUP);
    let p = start_predixy_ready(&t);
    let mut c = p.conn();
    assert_err(&c.query(&["AUTH", "12345"]).unwrap(), "WRONGPASS");
    assert_err(&c.query(&["AUTH", ""]).unwrap(), "WRONGPASS");
    assert_err(&c.query(&["AUTH", "default", "nope"]).unwrap(), "WRONGPASS");
    assert_err(
        &c.query(&["HELLO", "3", "AUTH", "default", "nope"]).unwrap(),
        "WRONGPASS",
    );
    assert_err(&c.query(&["GET", "k"]).unwrap(), "NOAUTH");
    assert_err(&c.query(&["SET", "k", "v"]).unwrap(), "NOAUTH");
    // The master saw nothing.
    assert_eq!(t.master.cmd(&["EXISTS", "k"]), Reply::Int(0));
}

#[test]
fn failed_auth_keeps_earlier_rights() {
    let t = MasterReplica::start(GROUP);
    let p = start_predixy_ready(&t);
    let mut c = p.conn_auth(WRITE_PW);
    assert_err(&c.query(&["AUTH", "wrong"]).unwrap(), "WRONGPASS");
    assert_eq!(c.query(&["SET", "still", "1"]).unwrap(), Reply::ok());

    let mut a = p.conn_auth(ADMIN_PW);
    assert_err(&a.query(&["AUTH", "wrong"]).unwrap(), "WRONGPASS");
    let cfg = a.query(&["CONFIG", "GET", "maxmemory"]).unwrap();
    assert!(!cfg.is_error(), "admin lost its rights: {cfg:?}");
    // A successful AUTH with another password does change the rights (admin → write).
    assert_eq!(a.query(&["AUTH", WRITE_PW]).unwrap(), Reply::ok());
    assert_err(&a.query(&["CONFIG", "GET", "maxmemory"]).unwrap(), "NOPERM");
}

#[test]
fn auth_with_user_name_form() {
    let t = MasterReplica::start(GROUP);
    let p = start_predixy_ready(&t);
    // The user name is ignored: only the password selects the rights.
    for user in ["default", "someone"] {
        let mut c = p.conn();
        assert_eq!(c.query(&["AUTH", user, WRITE_PW]).unwrap(), Reply::ok());
        assert_eq!(c.query(&["SET", "u", user]).unwrap(), Reply::ok());
    }
    let mut c = p.conn();
    assert_eq!(c.query(&["AUTH", "admin", ADMIN_PW]).unwrap(), Reply::ok());
    assert!(!c.query(&["CONFIG", "GET", "port"]).unwrap().is_error());
    assert_err(&c.query(&["AUTH", "a", "b", "c"]).unwrap(), "ERR");
}

#[test]
fn admin_commands_refused_for_write_users() {
    let t = MasterReplica::start(GROUP);
    let p = start_predixy_ready(&t);
    t.master.cmd(&["SET", "keep", "1"]);
    let mut c = p.conn_auth(WRITE_PW);
    for cmd in [
        &["FLUSHALL"][..],
        &["FLUSHDB"],
        &["CONFIG", "SET", "maxmemory", "1"],
        &["CONFIG", "GET", "maxmemory"],
        &["SHUTDOWN", "NOSAVE"],
        &["SAVE"],
        &["BGSAVE"],
        &["SCRIPT", "FLUSH"],
        &["SWAPDB", "0", "1"],
        &["CLIENT", "KILL", "ID", "1"],
        &["ACL", "SETUSER", "x"],
    ] {
        let r = c.query(cmd).unwrap();
        let name = cmd[0].to_lowercase();
        match &r {
            Reply::Error(e) if e.starts_with("NOPERM") && e.contains(&name) => {}
            other => panic!("{cmd:?} as a write user: expected NOPERM naming it, got {other:?}"),
        }
    }
    // Nothing reached the master, and the connection is still usable.
    assert_eq!(t.master.cmd(&["GET", "keep"]), Reply::bulk("1"));
    assert_eq!(
        t.master.cmd(&["CONFIG", "GET", "maxmemory"]).to_string(),
        "[maxmemory, 0]"
    );
    assert_eq!(c.query(&["GET", "keep"]).unwrap(), Reply::bulk("1"));

    // The admin password may run them.
    let mut a = p.conn_auth(ADMIN_PW);
    assert_eq!(a.query(&["FLUSHDB"]).unwrap(), Reply::ok());
    assert_eq!(t.master.cmd(&["EXISTS", "keep"]), Reply::Int(0));
    // CONFIG is about the proxy itself (never forwarded to a Redis server).
    assert_eq!(
        a.query(&["CONFIG", "SET", "master_read_priority", "60"])
            .unwrap(),
        Reply::ok()
    );
    assert!(a
        .query(&["CONFIG", "SET", "maxmemory-policy", "noeviction"])
        .unwrap()
        .is_error());
}

/// Auth tables for the mode/prefix tests: a read-only user limited to `pub:`, a write
/// user that reads `app:` and `pub:` and writes `app:` only, and anonymous read access
/// to `pub:`.
const PREFIX_AUTH: &str = r#"
[[auth]]
password = "ro"
mode = "read"
read_key_prefix = ["pub:"]

[[auth]]
password = "rw"
mode = "write"
read_key_prefix = ["app:", "pub:"]
write_key_prefix = ["app:"]

[[auth]]
password = "root"
mode = "admin"

[[auth]]
password = ""
mode = "read"
read_key_prefix = ["pub:"]
"#;

#[test]
fn read_mode_and_key_prefixes_on_every_key() {
    let t = MasterReplica::start(GROUP);
    let p = start_toml(&t.sentinel_addrs(), PREFIX_AUTH, "");
    wait_master(&p, Some("root"));
    t.master.cmd(&[
        "MSET", "pub:a", "1", "pub:b", "2", "app:a", "3", "other", "4",
    ]);

    // read mode: reads of pub: only, no writes at all.
    let mut ro = p.conn_auth("ro");
    assert_eq!(ro.query(&["GET", "pub:a"]).unwrap(), Reply::bulk("1"));
    assert_err(&ro.query(&["GET", "other"]).unwrap(), "NOPERM");
    assert_err(
        &ro.query(&["MGET", "pub:a", "pub:b", "other"]).unwrap(),
        "NOPERM",
    );
    assert_err(&ro.query(&["EXISTS", "pub:a", "app:a"]).unwrap(), "NOPERM");
    assert_err(&ro.query(&["SET", "pub:a", "x"]).unwrap(), "NOPERM");
    assert_err(&ro.query(&["DEL", "pub:a"]).unwrap(), "NOPERM");
    assert_err(&ro.query(&["FLUSHDB"]).unwrap(), "NOPERM");
    assert_eq!(
        ro.query(&["MGET", "pub:a", "pub:b"]).unwrap(),
        Reply::Array(vec![Reply::bulk("1"), Reply::bulk("2")])
    );

    // write mode with prefixes: every key of MSET/DEL/RENAME is checked.
    let mut rw = p.conn_auth("rw");
    assert_eq!(
        rw.query(&["MSET", "app:x", "1", "app:y", "2"]).unwrap(),
        Reply::ok()
    );
    assert_err(
        &rw.query(&["MSET", "app:z", "1", "other", "2"]).unwrap(),
        "NOPERM",
    );
    assert_err(
        &rw.query(&["MSET", "other", "1", "app:z", "2"]).unwrap(),
        "NOPERM",
    );
    assert_err(&rw.query(&["DEL", "app:x", "other"]).unwrap(), "NOPERM");
    assert_err(&rw.query(&["DEL", "app:x", "pub:a"]).unwrap(), "NOPERM");
    assert_err(&rw.query(&["RENAME", "app:x", "pub:c"]).unwrap(), "NOPERM");
    // Reading pub: is allowed, copying from it into app: too (source read, destination written).
    assert_eq!(rw.query(&["GET", "pub:a"]).unwrap(), Reply::bulk("1"));
    assert_eq!(
        rw.query(&["COPY", "pub:a", "app:copy"]).unwrap(),
        Reply::Int(1)
    );
    assert_err(&rw.query(&["COPY", "app:x", "pub:copy"]).unwrap(), "NOPERM");
    assert_err(&rw.query(&["GET", "other"]).unwrap(), "NOPERM");
    assert_err(&rw.query(&["CONFIG", "GET", "port"]).unwrap(), "NOPERM");
    // The refused commands changed nothing.
    for key in ["app:z", "pub:c", "pub:copy"] {
        assert_eq!(t.master.cmd(&["EXISTS", key]), Reply::Int(0), "{key}");
    }
    assert_eq!(t.master.cmd(&["GET", "app:x"]), Reply::bulk("1"));
    assert_eq!(t.master.cmd(&["GET", "other"]), Reply::bulk("4"));

    // The empty-password entry: what clients that never AUTH may do.
    let mut anon = p.conn();
    assert_eq!(anon.query(&["PING"]).unwrap(), Reply::Status("PONG".into()));
    assert_eq!(anon.query(&["GET", "pub:b"]).unwrap(), Reply::bulk("2"));
    assert_err(&anon.query(&["GET", "app:a"]).unwrap(), "NOPERM");
    assert_err(&anon.query(&["SET", "pub:b", "x"]).unwrap(), "NOPERM");
    // ...and after AUTH the client gets the password's rights instead.
    assert_eq!(anon.query(&["AUTH", "rw"]).unwrap(), Reply::ok());
    assert_eq!(anon.query(&["SET", "app:anon", "1"]).unwrap(), Reply::ok());
}

#[test]
fn no_authority_section_needs_no_password() {
    let t = MasterReplica::start(GROUP);
    let p = start_toml(&t.sentinel_addrs(), "", "");
    wait_master(&p, None);
    let mut c = p.conn();
    assert_eq!(c.query(&["SET", "open", "1"]).unwrap(), Reply::ok());
    assert_eq!(c.query(&["GET", "open"]).unwrap(), Reply::bulk("1"));
    assert!(!c.query(&["CONFIG", "GET", "port"]).unwrap().is_error());
    // AUTH answers as Redis does without requirepass, and the connection keeps working.
    assert_err(&c.query(&["AUTH", "x"]).unwrap(), "ERR");
    assert_eq!(c.query(&["GET", "open"]).unwrap(), Reply::bulk("1"));
    let hello = c.query(&["HELLO", "3"]).unwrap();
    assert!(matches!(hello, Reply::Map(_)), "HELLO 3 gave {hello:?}");
}
