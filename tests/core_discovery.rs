//! Issue 2, discovery and routing: starting while no Sentinel answers, reads by read
//! priority (master or replicas), and a `SENTINEL FAILOVER` during a stream of writes.
//! Real redis-server, redis-sentinel and redmux processes.

mod core_support;
mod support;

use core_support::*;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};
use support::*;

#[test]
fn starts_without_sentinel_and_works_once_it_answers() {
    let mut t = MasterReplica::start(GROUP);
    t.sentinels[0].stop();
    let p = Redmux::start_predixy(&t.sentinel_addrs());
    let mut c = p.conn_auth(WRITE_PW);
    assert_eq!(c.query(&["PING"]).unwrap(), Reply::Status("PONG".into()));
    for cmd in [&["GET", "k"][..], &["SET", "k", "v"]] {
        match c.query(cmd).unwrap() {
            Reply::Error(e) if e.starts_with("ERR ") && e.contains("master") => {}
            other => panic!("{cmd:?} with no Sentinel: expected a clear -ERR, got {other:?}"),
        }
    }
    assert_eq!(t.master.cmd(&["EXISTS", "k"]), Reply::Int(0));
    // The operator reads it once, not once per refresh.
    std::thread::sleep(Duration::from_secs(2));
    let silent = |p: &Redmux| {
        p.logs()
            .lines()
            .filter(|l| l.contains("no Sentinel answered"))
            .count()
    };
    assert_eq!(silent(&p), 1, "logged once:\n{}", p.logs());
    t.sentinels[0].restart();
    let t0 = Instant::now();
    must_wait(Duration::from_secs(10), "a write through redmux", || {
        c.query(&["SET", "k", "v"]).unwrap() == Reply::ok()
    });
    eprintln!(
        "master known {:?} after the Sentinel came back",
        t0.elapsed()
    );
    assert_eq!(t.master.cmd(&["GET", "k"]), Reply::bulk("v"));
    assert!(
        p.logs().contains("Sentinels answer again"),
        "the recovery is logged:\n{}",
        p.logs()
    );
}

/// A group name no Sentinel monitors (a typo) is an error line naming the group, once;
/// clients get a clear error. The other group of the same pool works.
#[test]
fn a_group_no_sentinel_monitors_is_logged_once() {
    let t = MasterReplica::start(GROUP);
    let port = free_port();
    let toml = format!(
        "bind = \"127.0.0.1:{port}\"\n[sentinel_pool]\nrefresh_interval = \"200ms\"\n\
         sentinels = [\"{}\"]\nhash = \"crc16\"\ndistribution = \"modula\"\n\
         [[sentinel_pool.group]]\nname = \"{GROUP}\"\n\
         [[sentinel_pool.group]]\nname = \"{GROUP}-typo\"\n",
        t.sentinel().addr()
    );
    let p = Redmux::start(&toml, "toml");
    must_wait(Duration::from_secs(10), "the error line", || {
        p.logs().contains("no Sentinel that answered monitors")
    });
    std::thread::sleep(Duration::from_secs(1)); // five more refreshes
    let lines: Vec<String> = p
        .logs()
        .lines()
        .filter(|l| l.contains("no Sentinel that answered monitors"))
        .map(str::to_string)
        .collect();
    assert_eq!(lines.len(), 1, "logged once:\n{}", p.logs());
    assert!(
        lines[0].contains(&format!("group={GROUP}-typo")),
        "names the group: {}",
        lines[0]
    );
    // Keys of the known group work; keys of the unknown one get a clear error.
    let (mut ok, mut refused) = (0, 0);
    for i in 0..20 {
        match p.cmd(&["SET", &format!("k{i}"), "v"]) {
            r if r == Reply::ok() => ok += 1,
            Reply::Error(e) if e.contains("no master known") && e.contains("typo") => refused += 1,
            other => panic!("SET k{i}: {other}"),
        }
    }
    assert!(ok > 0 && refused > 0, "{ok} written, {refused} refused");
}

/// Makes `key` exist on the (first) replica only (`replica-read-only no`), so a read shows which
/// server answered it.
fn key_only_on_replica(t: &MasterReplica, key: &str) {
    let r = t.replica();
    assert_eq!(
        r.cmd(&["CONFIG", "SET", "replica-read-only", "no"]),
        Reply::ok()
    );
    assert_eq!(r.cmd(&["SET", key, "from-replica"]), Reply::ok());
    assert_eq!(t.master.cmd(&["EXISTS", key]), Reply::Int(0));
}

fn calls(server: &RedisServer, cmd: &str) -> i64 {
    let stats = server.info("commandstats");
    info_field(&stats, &format!("cmdstat_{cmd}"))
        .and_then(|v| v.split(',').next()?.strip_prefix("calls=")?.parse().ok())
        .unwrap_or(0)
}

#[test]
fn reads_go_to_the_master_when_its_priority_is_highest() {
    // The user's predixy.conf: MasterReadPriority 60 > DynamicSlaveReadPriority 50.
    let t = MasterReplica::start(GROUP);
    t.wait_replica_known();
    let p = start_predixy_ready(&t);
    key_only_on_replica(&t, "where");
    // Give discovery time to learn the replica, so a wrong choice would show.
    std::thread::sleep(Duration::from_millis(2500));
    let before = calls(t.replica(), "get");
    let mut c = p.conn_auth(WRITE_PW);
    for _ in 0..50 {
        assert_eq!(c.query(&["GET", "where"]).unwrap(), Reply::Nil);
    }
    assert_eq!(
        calls(t.replica(), "get"),
        before,
        "the replica served reads"
    );
    assert!(calls(&t.master, "get") >= 50);
}

#[test]
fn reads_go_to_replicas_when_their_priority_is_higher() {
    // Two replicas of equal priority above the master's: reads are spread over both.
    let t = MasterReplica::start_with(GROUP, 2, 1, 1);
    t.wait_replica_known();
    let p = start_toml(
        &t.sentinel_addrs(),
        "",
        "master_read_priority = 10\ndynamic_replica_read_priority = 100",
    );
    wait_master(&p, None);
    for (i, r) in t.replicas.iter().enumerate() {
        assert_eq!(
            r.cmd(&["CONFIG", "SET", "replica-read-only", "no"]),
            Reply::ok()
        );
        assert_eq!(
            r.cmd(&["SET", "where", &format!("replica-{i}")]),
            Reply::ok()
        );
    }
    let mut c = p.conn();
    must_wait(
        Duration::from_secs(10),
        "reads served by both replicas",
        || {
            let mut seen = std::collections::HashSet::new();
            for _ in 0..20 {
                seen.insert(c.query(&["GET", "where"]).unwrap().to_string());
            }
            seen.len() == 2
        },
    );
    let master_gets = calls(&t.master, "get");
    let mut counts = [0usize; 2];
    for _ in 0..100 {
        match c.query(&["GET", "where"]).unwrap().to_string().as_str() {
            "replica-0" => counts[0] += 1,
            "replica-1" => counts[1] += 1,
            other => panic!("a read answered {other:?}"),
        }
    }
    eprintln!("reads per replica: {counts:?}");
    assert!(
        counts.iter().all(|&n| n >= 20),
        "unbalanced reads {counts:?}"
    );
    assert_eq!(
        calls(&t.master, "get"),
        master_gets,
        "the master served reads"
    );
    // Writes still go to the master.
    assert_eq!(c.query(&["SET", "w", "1"]).unwrap(), Reply::ok());
    assert_eq!(t.master.cmd(&["GET", "w"]), Reply::bulk("1"));
}

/// One write of the stream: when it was sent and acknowledged, and its reply.
struct Write {
    index: usize,
    sent: Instant,
    done: Instant,
    ok: bool,
    reply: String,
}

/// Writes `SET fo:i i` one after another until `stop` (at most 20,000 writes or 60 s),
/// reconnecting after I/O errors.
fn write_stream(addr: String, stop: Arc<AtomicBool>) -> Vec<Write> {
    let mut out = Vec::new();
    let mut conn = None;
    let t0 = Instant::now();
    for i in 0..20_000 {
        if stop.load(Ordering::Relaxed) || t0.elapsed() > Duration::from_secs(60) {
            break;
        }
        let sent = Instant::now();
        if conn.is_none() {
            conn = Conn::connect_auth(&addr, WRITE_PW).ok();
        }
        let r = match conn.as_mut() {
            Some(c) => c.query(&["SET", &format!("fo:{i}"), &i.to_string()]),
            None => Err(std::io::Error::other("connect failed")),
        };
        let (ok, reply) = match r {
            Ok(r) => (r == Reply::ok(), r.to_string()),
            Err(e) => {
                conn = None;
                (false, format!("io: {e}"))
            }
        };
        out.push(Write {
            index: i,
            sent,
            done: Instant::now(),
            ok,
            reply,
        });
        std::thread::sleep(Duration::from_millis(2));
    }
    out
}

#[test]
fn sentinel_failover_during_writes() {
    let t = MasterReplica::start(GROUP);
    t.wait_replica_known();
    let p = start_predixy_ready(&t);
    let old_port = t.master.port();

    // The test's own subscription to Sentinel's announcement.
    let mut sub = Conn::connect(&t.sentinel().addr()).unwrap();
    sub.query(&["SUBSCRIBE", "+switch-master"]).unwrap();
    sub.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let (tx, rx) = mpsc::channel::<(Instant, std::io::Result<Reply>)>();
    std::thread::spawn(move || {
        let msg = sub.read_reply();
        let _ = tx.send((Instant::now(), msg));
    });

    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (addr, stop) = (p.addr(), stop.clone());
        std::thread::spawn(move || write_stream(addr, stop))
    };
    std::thread::sleep(Duration::from_millis(500));
    let new_port = t.failover(Duration::from_secs(20));
    let (announced, msg) = rx
        .recv_timeout(Duration::from_secs(20))
        .expect("no +switch-master message");
    let msg = msg.expect("reading +switch-master");
    assert!(
        msg.to_string().contains(&format!("{old_port}"))
            && msg.to_string().contains(&format!("{new_port}")),
        "unexpected announcement {msg}"
    );
    while announced.elapsed() < Duration::from_secs(2) {
        std::thread::sleep(Duration::from_millis(50));
    }
    stop.store(true, Ordering::Relaxed);
    let writes = writer.join().expect("writer thread");
    let new_master = t.server_on(new_port).expect("new master is one of ours");

    // Every acknowledged write is on the new master.
    let acked: Vec<&Write> = writes.iter().filter(|w| w.ok).collect();
    let mut missing = Vec::new();
    for chunk in acked.chunks(500) {
        let mut args = vec!["MGET".to_string()];
        args.extend(chunk.iter().map(|w| format!("fo:{}", w.index)));
        let r = new_master.conn().query(&args).unwrap();
        let values = r.as_array().expect("MGET array").to_vec();
        for (w, v) in chunk.iter().zip(values) {
            if v != Reply::bulk(w.index.to_string()) {
                missing.push(w.index);
            }
        }
    }
    // Writes reach the new master within 1 s of the announcement: the first write
    // acknowledged after it is there, and nothing sent 1 s after it failed.
    let first_after = acked
        .iter()
        .find(|w| w.done >= announced)
        .expect("no write acknowledged after the announcement");
    let reach: Duration = first_after.done.duration_since(announced);
    let late_failures: Vec<String> = writes
        .iter()
        .filter(|w| !w.ok && w.sent >= announced + Duration::from_secs(1))
        .map(|w| format!("#{}: {}", w.index, w.reply))
        .collect();
    let failed: Vec<String> = writes
        .iter()
        .filter(|w| !w.ok)
        .map(|w| format!("#{}: {}", w.index, w.reply))
        .collect();
    let longest = writes
        .iter()
        .map(|w| w.done - w.sent)
        .max()
        .unwrap_or_default();
    eprintln!(
        "failover: {} writes, {} acknowledged, {} failed, first ack after +switch-master in {reach:?}, longest write {longest:?}",
        writes.len(),
        acked.len(),
        failed.len(),
    );
    assert!(
        missing.is_empty(),
        "{} acknowledged writes are not on the new master: {:?}\n--- redmux ---\n{}",
        missing.len(),
        &missing[..missing.len().min(20)],
        p.logs()
    );
    assert!(
        reach <= Duration::from_secs(1),
        "first write after the announcement took {reach:?}"
    );
    assert!(
        late_failures.is_empty(),
        "writes failed more than 1 s after the announcement: {late_failures:?}"
    );
    assert!(acked.len() > 100, "too few writes to mean anything");
    // The old master no longer takes writes; the proxy writes to the new one.
    assert_eq!(p.cmd_auth(WRITE_PW, &["SET", "after", "1"]), Reply::ok());
    assert_eq!(new_master.cmd(&["GET", "after"]), Reply::bulk("1"));
    let _ = failed;
}

/// A server listed in the group's `servers` that Sentinel does not report as one of its
/// replicas serves nothing (predixy's rule: the list only marks servers); a listed real
/// replica gets the static read priority.
#[test]
fn listed_servers_serve_reads_only_as_sentinel_replicas() {
    let t = MasterReplica::start_with(GROUP, 1, 1, 1);
    t.wait_replica_known();
    let stranger = RedisServer::start();
    assert_eq!(stranger.cmd(&["SET", "where", "stranger"]), Reply::ok());
    let replica = &t.replicas[0];
    assert_eq!(
        replica.cmd(&["CONFIG", "SET", "replica-read-only", "no"]),
        Reply::ok()
    );
    assert_eq!(replica.cmd(&["SET", "where", "replica"]), Reply::ok());
    let text = format!(
        "{}servers = [\"{}\", \"{}\"]\n",
        toml_conf(
            free_port(),
            &t.sentinel_addrs(),
            "",
            "master_read_priority = 10\nstatic_replica_read_priority = 100\n\
             dynamic_replica_read_priority = 50",
        ),
        stranger.addr(),
        replica.addr()
    );
    let p = Redmux::start(&text, "toml");
    wait_master(&p, None);
    let mut c = p.conn();
    must_wait(
        Duration::from_secs(10),
        "reads served by the listed replica",
        || c.query(&["GET", "where"]).unwrap().to_string() == "replica",
    );
    for _ in 0..50 {
        let got = c.query(&["GET", "where"]).unwrap().to_string();
        assert_eq!(got, "replica", "a read went elsewhere\n{}", p.logs());
    }
}
