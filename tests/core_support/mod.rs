//! Helpers shared by the core integration tests (tests/core_*.rs and tests/client_matrix.rs):
//! a Sentinel-managed group named like the user's predixy.conf group, redmux configs in
//! TOML, and waiting until redmux knows the master.
#![allow(dead_code)]

use crate::support::*;
use std::time::Duration;

/// The group name of the user's predixy.conf.
pub const GROUP: &str = "mymaster";
/// The write-mode password of the user's predixy.conf.
pub const WRITE_PW: &str = "123456";
/// The admin-mode password of the user's predixy.conf.
pub const ADMIN_PW: &str = "#a complex password#";

/// A redmux TOML config on `port` for one group [`GROUP`] behind `sentinels`, with the
/// `[[auth]]` tables given in `auth` (may be empty) and extra `[sentinel_pool]` keys.
pub fn toml_conf(port: u16, sentinels: &[String], auth: &str, pool_extra: &str) -> String {
    let list: Vec<String> = sentinels.iter().map(|s| format!("\"{s}\"")).collect();
    format!(
        "bind = \"127.0.0.1:{port}\"\nworker_threads = 2\n\n{auth}\n[sentinel_pool]\n\
         refresh_interval = 1\nserver_timeout = 1\n{pool_extra}\nsentinels = [{}]\n\n\
         [[sentinel_pool.group]]\nname = \"{GROUP}\"\n",
        list.join(", ")
    )
}

/// Starts redmux with [`toml_conf`] on a fresh port.
pub fn start_toml(sentinels: &[String], auth: &str, pool_extra: &str) -> Redmux {
    Redmux::start(&toml_conf(free_port(), sentinels, auth, pool_extra), "toml")
}

/// Starts the user's predixy.conf and waits until a write goes through.
pub fn start_predixy_ready(t: &MasterReplica) -> Redmux {
    let p = Redmux::start_predixy(&t.sentinel_addrs());
    wait_master(&p, Some(WRITE_PW));
    p
}

/// Waits (10 s) until a `SET` through redmux (after `AUTH pw` when given) answers `+OK`.
pub fn wait_master(p: &Redmux, pw: Option<&str>) {
    let mut last = None;
    let ok = wait_until(Duration::from_secs(10), || {
        let r = match pw {
            Some(pw) => query_auth(&p.addr(), pw, &["SET", "redmux:ready", "1"]),
            None => query(&p.addr(), &["SET", "redmux:ready", "1"]),
        };
        let ok = matches!(&r, Ok(Reply::Status(s)) if s == "OK");
        last = Some(r);
        ok
    });
    assert!(
        ok,
        "redmux never accepted a write: last reply {last:?}\n--- log ---\n{}",
        p.logs()
    );
}

/// Asserts `r` is an error whose text starts with `prefix`.
#[track_caller]
pub fn assert_err(r: &Reply, prefix: &str) {
    match r {
        Reply::Error(e) if e.starts_with(prefix) => {}
        other => panic!("expected an error starting with {prefix:?}, got {other:?}"),
    }
}
