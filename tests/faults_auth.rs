//! Backend and Sentinel passwords: the right one works; a wrong one gives clients a clear
//! error (never a raw backend NOAUTH/WRONGPASS) and the operator one log line per server.

mod fault_support;
mod support;

use fault_support::*;
use std::time::Duration;
use support::*;

const GROUP: &str = "mymaster";

/// A password-protected master watched by one Sentinel that knows the password.
fn protected() -> (RedisServer, Sentinel) {
    let master = RedisServer::start_with(&["--requirepass", "s3cret"]);
    let sentinel = Sentinel::start(GROUP, master.port(), 1);
    let r = sentinel.cmd(&["SENTINEL", "SET", GROUP, "auth-pass", "s3cret"]);
    assert_eq!(r, Reply::ok());
    (master, sentinel)
}

/// redmux that knows the master but is not expected to reach it.
fn proxy_without_probe(sentinels: &[String], pool_extra: &str) -> Redmux {
    let port = free_port();
    let proxy = Redmux::start(&redmux_toml(port, sentinels, GROUP, pool_extra), "toml");
    must_wait(Duration::from_secs(10), "redmux to know the master", || {
        proxy_master(&proxy, GROUP).is_some_and(|m| m != "unknown")
    });
    proxy
}

fn log_lines(proxy: &Redmux, needle: &str) -> usize {
    proxy.logs().lines().filter(|l| l.contains(needle)).count()
}

#[test]
fn backend_password_right_and_wrong() {
    let (master, sentinel) = protected();
    let good = start_proxy(&[sentinel.addr()], GROUP, "password = \"s3cret\"");
    assert_eq!(good.cmd(&["SET", "k", "v"]), Reply::ok());
    assert_eq!(good.cmd(&["GET", "k"]), Reply::bulk("v"));
    assert_eq!(
        master.cmd(&["AUTH", "s3cret"]),
        Reply::ok(),
        "sanity: the master takes the password"
    );

    for (label, extra, needle) in [
        (
            "wrong",
            "password = \"nope\"",
            "rejected the configured password",
        ),
        ("missing", "", "requires a password"),
    ] {
        let bad = proxy_without_probe(&[sentinel.addr()], extra);
        let mut c = bad.conn();
        let mut errors = Vec::new();
        for i in 0..40 {
            let r = c.query(&["SET", "k", &i.to_string()]).unwrap();
            let e = r
                .error_message()
                .unwrap_or_else(|| panic!("{label}: got {r}"))
                .to_string();
            errors.push(e);
        }
        println!(
            "[{label} password] first error: {}\n  last error: {}",
            errors[0], errors[39]
        );
        for e in &errors {
            assert!(
                !e.starts_with("NOAUTH") && !e.starts_with("WRONGPASS"),
                "{label}: a backend auth error leaked through: {e}"
            );
            assert!(e.contains(needle), "{label}: unclear error: {e}");
        }
        // One error line per server; the "marked down" warning (once per worker while the
        // outage lasts) repeats the reason.
        let errors_logged = log_lines(&bad, "backend refused the connection handshake");
        let lines = log_lines(&bad, needle);
        println!(
            "[{label} password] {lines} log line(s) mention it, {errors_logged} at error level"
        );
        assert_eq!(
            errors_logged,
            1,
            "{label}: logged {errors_logged} times:\n{}",
            bad.logs()
        );
        assert!(lines <= 3, "{label}: logged {lines} times:\n{}", bad.logs());
    }
}

#[test]
fn sentinel_password_right_and_wrong() {
    let master = RedisServer::start();
    let sentinel = AuthSentinel::start(GROUP, master.port(), "sentpw");
    let good = start_proxy(&[sentinel.addr()], GROUP, "sentinel_password = \"sentpw\"");
    assert_eq!(good.cmd(&["SET", "k", "v"]), Reply::ok());
    assert_eq!(master.cmd(&["GET", "k"]), Reply::bulk("v"));

    let port = free_port();
    let bad = Redmux::start(
        &redmux_toml(
            port,
            &[sentinel.addr()],
            GROUP,
            "sentinel_password = \"nope\"",
        ),
        "toml",
    );
    std::thread::sleep(Duration::from_secs(3)); // three refresh rounds
    let r = bad.cmd(&["SET", "k", "x"]);
    println!("[wrong sentinel password] client sees: {r}");
    assert!(r.is_error(), "no master can be known: {r}");
    let lines = log_lines(&bad, "sentinel refused the password");
    println!("[wrong sentinel password] {lines} log line(s) say so");
    assert_eq!(lines, 1, "logged {lines} times:\n{}", bad.logs());

    // No password configured for a Sentinel that wants one: said once, with what to set.
    let port = free_port();
    let none = Redmux::start(&redmux_toml(port, &[sentinel.addr()], GROUP, ""), "toml");
    std::thread::sleep(Duration::from_secs(3)); // three refresh rounds
    let r = none.cmd(&["SET", "k", "x"]);
    assert!(r.is_error(), "no master can be known: {r}");
    let lines = log_lines(&none, "sentinel requires a password");
    println!("[no sentinel password] {lines} log line(s) say so");
    assert_eq!(lines, 1, "logged {lines} times:\n{}", none.logs());
    assert_eq!(
        log_lines(&none, "sentinel_password"),
        1,
        "the line names the setting:\n{}",
        none.logs()
    );
}

/// A Sentinel ACL user that may poll but not subscribe (Redis 7 gives a new user no pub/sub
/// channels): redmux finds the master by polling and says once that failover events are lost.
#[test]
fn sentinel_user_without_pubsub_rights_is_logged() {
    let master = RedisServer::start();
    let sentinel = AuthSentinel::start_with(
        GROUP,
        master.port(),
        "sentpw",
        "user redmux on >userpw +@all resetchannels\n",
    );
    let proxy = start_proxy(
        &[sentinel.addr()],
        GROUP,
        "sentinel_user = \"redmux\"\nsentinel_password = \"userpw\"",
    );
    assert_eq!(proxy.cmd(&["SET", "k", "v"]), Reply::ok());
    assert_eq!(master.cmd(&["GET", "k"]), Reply::bulk("v"));
    let needle = "cannot subscribe to this Sentinel's events";
    must_wait(
        Duration::from_secs(5),
        "the subscription refusal logged",
        || log_lines(&proxy, needle) > 0,
    );
    std::thread::sleep(Duration::from_secs(2)); // several refresh rounds
    let lines = log_lines(&proxy, needle);
    println!("[sentinel user without channels] {lines} log line(s)");
    assert_eq!(lines, 1, "logged {lines} times:\n{}", proxy.logs());
    assert!(proxy.logs().contains("NOPERM"), "{}", proxy.logs());
}
