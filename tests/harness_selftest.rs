//! Exercises the test harness itself (tests/support): real redis-server and redis-sentinel
//! processes, the RESP client, pause/resume, restart, and that drop kills every process.
//! redmux is not started here.

mod support;

use std::path::Path;
use std::time::{Duration, Instant};

use support::*;

fn proc_gone(pid: u32) -> bool {
    !Path::new(&format!("/proc/{pid}")).exists()
}

#[test]
fn resp_client_round_trips() {
    let s = RedisServer::start();
    assert_eq!(s.cmd(&["PING"]), Reply::Status("PONG".into()));
    assert_eq!(s.cmd(&["SET", "k", "v"]), Reply::ok());
    assert_eq!(s.cmd(&["GET", "k"]), Reply::bulk("v"));
    assert_eq!(s.cmd(&["GET", "missing"]), Reply::Nil);
    assert_eq!(s.cmd(&["INCR", "n"]), Reply::Int(1));
    assert!(s.cmd(&["NOSUCHCOMMAND"]).is_error());
    assert_eq!(
        s.cmd(&["RPUSH", "l", "a", "b"]),
        Reply::Int(2),
        "rpush on {}",
        s.addr()
    );
    assert_eq!(
        s.cmd(&["LRANGE", "l", "0", "-1"]),
        Reply::Array(vec![Reply::bulk("a"), Reply::bulk("b")])
    );

    // Binary-safe values, pipelining, RESP3 map.
    let mut c = s.conn();
    let bin: &[u8] = b"a\r\nb\0c";
    assert_eq!(
        c.query(&[b"SET".as_ref(), b"bin", bin]).unwrap(),
        Reply::ok()
    );
    assert_eq!(c.query(&["GET", "bin"]).unwrap(), Reply::bulk(bin));
    let replies = c
        .pipeline(&[&["SET", "p", "1"][..], &["INCR", "p"], &["GET", "p"]])
        .unwrap();
    assert_eq!(replies, vec![Reply::ok(), Reply::Int(2), Reply::bulk("2")]);
    c.send_raw(b"PING\r\n").unwrap(); // inline command
    assert_eq!(c.read_reply().unwrap(), Reply::Status("PONG".into()));
    let hello = c.query(&["HELLO", "3"]).unwrap();
    assert!(matches!(hello, Reply::Map(_)), "HELLO 3 gave {hello:?}");
    assert!(hello
        .as_pairs()
        .iter()
        .any(|(k, v)| k == "proto" && v == "3"));
}

#[test]
fn master_replica_sentinel_topology() {
    let t = MasterReplica::start("selftest");
    assert_eq!(t.master.role().as_deref(), Some("master"));
    assert_eq!(t.replica().role().as_deref(), Some("slave"));
    assert_eq!(
        t.sentinel().master_addr("selftest"),
        Some(("127.0.0.1".to_string(), t.master.port()))
    );
    let r = t
        .sentinel()
        .cmd(&["SENTINEL", "get-master-addr-by-name", "selftest"]);
    assert_eq!(
        r,
        Reply::Array(vec![
            Reply::bulk("127.0.0.1"),
            Reply::bulk(t.master.port().to_string())
        ])
    );
    t.wait_replica_known();
    assert!(t.sentinel().knows_replica("selftest", t.replica().port()));

    // Replication works.
    assert_eq!(t.master.cmd(&["SET", "rk", "rv"]), Reply::ok());
    must_wait(Duration::from_secs(5), "key replicated", || {
        t.replica().cmd(&["GET", "rk"]) == Reply::bulk("rv")
    });
    assert_eq!(t.sentinel_addrs(), vec![t.sentinel().addr()]);
}

#[test]
fn one_sentinel_several_masters_and_several_sentinels() {
    let a = RedisServer::start();
    let b = RedisServer::start();
    let s1 = Sentinel::start_multi(&[("ga", a.port()), ("gb", b.port())], 2);
    let s2 = Sentinel::start_multi(&[("ga", a.port()), ("gb", b.port())], 2);
    for s in [&s1, &s2] {
        assert_eq!(s.master_addr("ga").unwrap().1, a.port());
        assert_eq!(s.master_addr("gb").unwrap().1, b.port());
        assert_eq!(s.master_addr("nope"), None);
    }
    must_wait(
        Duration::from_secs(15),
        "sentinels to see each other",
        || s1.other_sentinels("ga").len() == 1 && s2.other_sentinels("gb").len() == 1,
    );
}

#[test]
fn pause_resume_stop_restart() {
    let mut s = RedisServer::start();
    let pid = s.pid().unwrap();
    s.cmd(&["SET", "k", "v"]);

    s.pause();
    let mut c = s.conn();
    c.set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    let t0 = Instant::now();
    let res = c.query(&["PING"]);
    assert!(res.is_err(), "paused server answered: {res:?}");
    assert!(t0.elapsed() >= Duration::from_millis(250));
    s.resume();
    // The PING sent while paused is answered after SIGCONT.
    c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    assert_eq!(c.read_reply().unwrap(), Reply::Status("PONG".into()));
    assert_eq!(s.cmd(&["GET", "k"]), Reply::bulk("v"));

    s.stop();
    assert!(proc_gone(pid), "stop() left /proc/{pid}");
    assert!(s.try_cmd(&["PING"]).is_err());
    let port = s.port();
    s.restart();
    assert_eq!(s.port(), port);
    assert_ne!(s.pid(), Some(pid));
    assert_eq!(s.cmd(&["PING"]), Reply::Status("PONG".into()));
    assert_eq!(s.cmd(&["GET", "k"]), Reply::Nil, "no persistence expected");
    assert!(s.logs().contains("harness: restart"));

    // Restart as a replica of another server.
    let m = RedisServer::start();
    s.restart_with(&["--replicaof", "127.0.0.1", &m.port().to_string()]);
    s.wait_link_up(Duration::from_secs(10));
}

#[test]
fn drop_kills_every_process_and_cleans_up() {
    let (pids, dirs) = {
        let t = MasterReplica::start_with("dropme", 1, 2, 2);
        let mut pids = vec![t.master.pid().unwrap(), t.replica().pid().unwrap()];
        pids.extend(t.sentinels.iter().map(|s| s.pid().unwrap()));
        let mut dirs = vec![
            t.master.dir().to_path_buf(),
            t.replica().dir().to_path_buf(),
        ];
        dirs.extend(t.sentinels.iter().map(|s| s.dir().to_path_buf()));
        for &pid in &pids {
            assert!(!proc_gone(pid), "process {pid} not running");
        }
        // A paused process must die too.
        t.replica().pause();
        (pids, dirs)
    };
    for pid in pids {
        assert!(proc_gone(pid), "/proc/{pid} still exists after drop");
    }
    if std::env::var_os("REDMUX_KEEP_TEST_DIRS").is_none() {
        for d in dirs {
            assert!(!d.exists(), "{} not removed", d.display());
        }
    }
}

#[test]
fn failover_moves_the_master() {
    let t = MasterReplica::start("fo");
    t.wait_replica_known();
    let old = t.master.port();
    let new = t.failover(Duration::from_secs(20));
    assert_eq!(new, t.replica().port());
    assert_ne!(new, old);
    must_wait(
        Duration::from_secs(10),
        "promoted replica to be master",
        || t.replica().role().as_deref() == Some("master"),
    );
}

#[test]
fn wait_until_times_out_and_succeeds() {
    let t0 = Instant::now();
    assert!(!wait_until(Duration::from_millis(100), || false));
    assert!(t0.elapsed() >= Duration::from_millis(100));
    let mut n = 0;
    assert!(wait_until(Duration::from_secs(1), || {
        n += 1;
        n == 3
    }));
}

#[test]
fn free_ports_are_distinct() {
    let ports: std::collections::HashSet<u16> = (0..20).map(|_| free_port()).collect();
    assert_eq!(ports.len(), 20);
}

#[test]
fn predixy_conf_substitution() {
    let text = Redmux::predixy_conf(&["127.0.0.1:1111".into(), "127.0.0.1:2222".into()], 4444);
    assert!(text.contains("Bind 127.0.0.1:4444"));
    assert!(text.contains("+ 127.0.0.1:1111\n"));
    assert!(text.contains("+ 127.0.0.1:2222\n"));
    assert!(!text.contains("instance01-redis-ha"));
    assert!(!text.contains("0.0.0.0"));
    assert!(text.contains("Auth \"123456\""));
    assert!(text.contains("Group mymaster"));
    assert_eq!(config_bind_port(&text), Some(4444));
    assert_eq!(
        config_bind_port("# x\nmetrics_bind = \"127.0.0.1:9\"\nbind = \"127.0.0.1:5555\"\n"),
        Some(5555)
    );
    // The redmux binary path is known at compile time (not run here).
    assert!(redmux_bin().ends_with("redmux"));
}

#[test]
#[should_panic(expected = "not found on PATH")]
fn missing_binary_fails_loudly() {
    require_binary(
        "redis-server-that-does-not-exist",
        "apt-get install nothing",
    );
}
