//! Backend faults without a failover: a server that stops answering (SIGSTOP: no FIN, no
//! RST), and a backend that closes idle connections (`CONFIG SET timeout 1`).
//!
//! Sentinel's down-after is raised to 60 s here so that the proxy's own failure handling
//! (`server_timeout`, `server_failure_limit`, `server_retry_timeout`) is what is tested.

mod fault_support;
mod support;

use fault_support::*;
use std::time::{Duration, Instant};
use support::*;

const GROUP: &str = "mymaster";

fn slow_sentinel(t: &MasterReplica) {
    for s in &t.sentinels {
        let r = s.cmd(&["SENTINEL", "SET", GROUP, "down-after-milliseconds", "60000"]);
        assert_eq!(r, Reply::ok(), "SENTINEL SET down-after: {r}");
    }
}

#[test]
fn silent_master_fails_pending_requests_after_server_timeout() {
    let t = MasterReplica::start_with(GROUP, 1, 1, 1);
    slow_sentinel(&t);
    let proxy = start_proxy(
        &t.sentinel_addrs(),
        GROUP,
        "dynamic_replica_read_priority = 0",
    );
    let mut c = proxy.conn();
    assert_eq!(c.query(&["SET", "k", "before"]).unwrap(), Reply::ok());

    t.master.pause();
    let paused = Instant::now();
    let mut outcomes = Vec::new();
    // Each request must get an error, bounded by server_timeout (1 s) plus the reconnect's
    // handshake bound (1 s), never a hang.
    for i in 0..8 {
        let start = Instant::now();
        let r = c
            .query(&["SET", "k", &format!("during-{i}")])
            .expect("the proxy must answer, not hang");
        let took = start.elapsed();
        println!("[SIGSTOP master] request {i}: {took:?} {r}");
        assert!(r.is_error(), "a stopped master answered {r}");
        assert!(
            took < Duration::from_millis(2500),
            "request {i} took {took:?}"
        );
        outcomes.push((took, r.to_string()));
    }
    assert!(
        outcomes[0].1.contains("timed out"),
        "first error should name the timeout: {}",
        outcomes[0].1
    );
    assert!(
        outcomes.iter().any(|(_, e)| e.contains("is down")),
        "the master was never marked down after server_failure_limit (3) failures: {outcomes:?}"
    );
    let fast = outcomes
        .iter()
        .filter(|(d, _)| *d < Duration::from_millis(100));
    println!(
        "[SIGSTOP master] {} of 8 requests failed at once (marked down); first error after {:?}",
        fast.count(),
        outcomes[0].0
    );

    t.master.resume();
    let resumed = Instant::now();
    must_wait(Duration::from_secs(5), "writes to work again", || {
        c.query(&["SET", "k", "after"])
            .is_ok_and(|r| r == Reply::ok())
    });
    println!(
        "[SIGSTOP master] writes failed for {:.3} s (paused {:.3} s); back {:.3} s after SIGCONT",
        paused.elapsed().as_secs_f64(),
        (resumed - paused).as_secs_f64(),
        resumed.elapsed().as_secs_f64()
    );
    assert_eq!(t.master.cmd(&["GET", "k"]), Reply::bulk("after"));
}

fn commands_processed(s: &RedisServer) -> u64 {
    s.info_field("stats", "total_commands_processed")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

#[test]
fn silent_replica_fails_only_its_own_reads_and_is_retried() {
    let t = MasterReplica::start_with(GROUP, 2, 1, 1);
    t.wait_replica_known();
    slow_sentinel(&t);
    let proxy = start_proxy(
        &t.sentinel_addrs(),
        GROUP,
        "master_read_priority = 10\ndynamic_replica_read_priority = 50",
    );
    must_wait(Duration::from_secs(5), "both replicas in INFO", || {
        let info = proxy_servers(&proxy);
        t.replicas
            .iter()
            .all(|r| info.contains(&format!("addr={},", r.addr())))
    });
    assert_eq!(proxy.cmd(&["SET", "rk", "value"]), Reply::ok());
    for r in &t.replicas {
        must_wait(Duration::from_secs(5), "replicated", || {
            r.cmd(&["GET", "rk"]) == Reply::bulk("value")
        });
    }
    let stopped = &t.replicas[0];
    let mut reader = proxy.conn();
    let mut writer = proxy.conn();
    stopped.pause();
    let paused = Instant::now();
    let mut failed = Vec::new();
    let mut ok_reads = 0;
    while paused.elapsed() < Duration::from_secs(6) {
        let start = Instant::now();
        let r = reader.query(&["GET", "rk"]).expect("proxy must answer");
        let took = start.elapsed();
        assert!(took < Duration::from_millis(2500), "a read took {took:?}");
        match r {
            Reply::Bulk(ref b) if b == b"value" => ok_reads += 1,
            other => failed.push((secs(start, paused), other.to_string())),
        }
        let w = writer
            .query(&["SET", "wk", "x"])
            .expect("proxy must answer");
        assert_eq!(w, Reply::ok(), "a write failed while a replica was stopped");
    }
    println!(
        "[SIGSTOP replica] {ok_reads} reads served, {} failed at {:?}",
        failed.len(),
        failed
    );
    assert!(!failed.is_empty(), "no read reached the stopped replica");
    for (_, e) in &failed {
        assert!(
            e.contains(&stopped.addr()),
            "a failed read was not one sent to the stopped replica: {e}"
        );
    }
    // Marked down after server_failure_limit (3) failures, then one retry per
    // server_retry_timeout (1 s) + server_timeout (1 s): at most 3 + 3 in 6 s.
    assert!(
        failed.len() <= 6,
        "the stopped replica kept getting reads: {failed:?}"
    );
    for pair in failed[2..].windows(2) {
        assert!(
            pair[1].0 - pair[0].0 > 1.5,
            "retried before server_retry_timeout: {failed:?}"
        );
    }
    let marked = proxy
        .logs()
        .lines()
        .filter(|l| l.contains("marked down") && l.contains(&stopped.addr()))
        .count();
    assert!(marked >= 1, "the stopped replica was never marked down");

    stopped.resume();
    std::thread::sleep(Duration::from_millis(1500)); // > server_retry_timeout
    let before = commands_processed(stopped);
    for _ in 0..20 {
        assert_eq!(reader.query(&["GET", "rk"]).unwrap(), Reply::bulk("value"));
    }
    let after = commands_processed(stopped);
    println!(
        "[SIGSTOP replica] after SIGCONT the replica processed {} commands",
        after - before
    );
    assert!(
        after > before + 3,
        "the resumed replica is never read from again"
    );
}

#[test]
fn backend_idle_timeout_close_is_invisible_to_clients() {
    let t = MasterReplica::start_with(GROUP, 1, 1, 1);
    t.wait_replica_known();
    let proxy = start_proxy(
        &t.sentinel_addrs(),
        GROUP,
        "master_read_priority = 50\ndynamic_replica_read_priority = 50",
    );
    for s in [&t.master, t.replica()] {
        assert_eq!(s.cmd(&["CONFIG", "SET", "timeout", "1"]), Reply::ok());
    }
    let mut c = proxy.conn();
    for round in 0..3 {
        assert_eq!(
            c.query(&["SET", "idle", &round.to_string()]).unwrap(),
            Reply::ok()
        );
        let replies = c
            .pipeline(&[&["GET", "idle"][..], &["GET", "idle"], &["INCR", "n"]])
            .unwrap();
        assert!(
            replies.iter().all(|r| !r.is_error()),
            "round {round}: {replies:?}"
        );
        // Redis closes links idle for more than 1 s (checked about every 100 ms).
        std::thread::sleep(Duration::from_millis(2500));
        let clients = t.master.info_field("clients", "connected_clients");
        println!("[idle close] round {round}: master has {clients:?} clients after idling");
        let r = c.query(&["SET", "idle", "after"]).unwrap();
        assert_eq!(
            r,
            Reply::ok(),
            "round {round}: write after an idle close: {r}"
        );
        let r = c.query(&["GET", "idle"]).unwrap();
        assert!(
            !r.is_error(),
            "round {round}: read after an idle close: {r}"
        );
    }
    assert!(
        !proxy.logs().contains("marked down"),
        "an idle close counted as a failure:\n{}",
        proxy.logs()
    );
}

/// INFO waits for every group's master in turn; a request pipelined after it is timed
/// from when it goes out, not from the client's read (it was failed as "timed out" and its
/// healthy server marked down when the INFO took longer than `server_timeout`).
#[test]
fn a_request_after_a_slow_info_is_not_timed_out() {
    let (masters, sentinel) = start_monitored_masters(&["ga", "gb"]);
    let p = start_redmux_for_groups(
        &sentinel,
        &["ga", "gb"],
        "",
        "server_timeout = 1\nserver_failure_limit = 1\nserver_retry_timeout = 5",
    );
    let key = (0..)
        .map(|i| format!("k{i}"))
        .find(|k| predixy_group_of(k, 2) == 0)
        .expect("a key of the first group");
    assert_eq!(masters[0].cmd(&["SET", &key, "v"]), Reply::ok());
    // The pauses run at once: the first master answers INFO after 0.6 s, the second 0.6 s
    // after it is asked (well inside its 1 s, so a loaded machine does not time it out),
    // 1.2 s after the read (past 1 s: a GET timed from the read would fail).
    for (m, ms) in masters.iter().zip(["600", "1200"]) {
        assert_eq!(m.cmd(&["CLIENT", "PAUSE", ms, "ALL"]), Reply::ok());
    }
    let mut c = p.conn();
    c.send_raw(
        format!(
            "*2\r\n$4\r\nINFO\r\n$8\r\nkeyspace\r\n*2\r\n$3\r\nGET\r\n${}\r\n{key}\r\n",
            key.len()
        )
        .as_bytes(),
    )
    .expect("send");
    let started = Instant::now();
    let info = c.read_reply().expect("INFO reply");
    assert!(info.to_string().contains("Keyspace"), "{info}");
    eprintln!("INFO took {:?}", started.elapsed());
    let got = c.read_reply().expect("GET reply");
    assert_eq!(got, Reply::Bulk(b"v".to_vec()), "{}", p.logs());
    assert!(!p.logs().contains("marked down"), "{}", p.logs());
}

/// A master Sentinel names but redmux cannot reach (nothing listens there, as with a wrong
/// announce address): the first failed request is explained in the log at once, not only
/// after `server_failure_limit` failures, and the client's error names the server.
#[test]
fn an_unreachable_master_is_logged_at_the_first_failure() {
    let dead_port = free_port();
    let sentinel = Sentinel::start(GROUP, dead_port, 1);
    let port = free_port();
    let proxy = Redmux::start(
        &redmux_toml(port, &[sentinel.addr()], GROUP, "server_failure_limit = 10"),
        "toml",
    );
    let dead = format!("127.0.0.1:{dead_port}");
    must_wait(Duration::from_secs(10), "redmux to know the master", || {
        proxy_master(&proxy, GROUP).is_some_and(|m| m == dead)
    });
    let r = proxy.cmd(&["SET", "k", "v"]);
    println!("[unreachable master] client sees: {r}");
    assert!(
        r.error_message().is_some_and(|e| e.contains(&dead)),
        "the error names the server: {r}"
    );
    must_wait(Duration::from_secs(5), "the failure logged", || {
        proxy.logs().lines().any(|l| {
            l.contains("WARN") && l.contains("backend connection failed") && l.contains(&dead)
        })
    });
}
