//! Client pipelines in flight at the moment of a switch: every reply is the one meant for
//! its own request (unique values per request), or an error for that request.

mod fault_support;
mod support;

use fault_support::*;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use support::*;

const GROUP: &str = "mymaster";
const DEPTH: usize = 60;

/// Outcome counts of one pipelining client.
#[derive(Default, Debug)]
struct Tally {
    ok: usize,
    errors: usize,
    last_incr: i64,
}

/// Sends pipelines of `SET k v` / `INCR counter` / `GET k` until `stop`, checking every
/// reply against its own request.
/// `strict`: INCR replies must always grow. After a kill -9, INCRs the old master
/// acknowledged may be missing on the promoted replica (asynchronous replication), so the
/// counter may restart lower after an error.
fn pipeline_client(addr: String, client: usize, stop: Arc<AtomicBool>, strict: bool) -> Tally {
    let mut c = Conn::connect(&addr).expect("connect");
    let mut t = Tally::default();
    let counter = format!("cnt:{client}");
    let mut n = 0u64;
    let deadline = Instant::now() + Duration::from_secs(30);
    while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
        let mut cmds: Vec<Vec<String>> = Vec::new();
        for _ in 0..DEPTH / 3 {
            n += 1;
            let key = format!("pl:{client}:{n}");
            let val = format!("val-{client}-{n}");
            cmds.push(vec!["SET".into(), key.clone(), val]);
            cmds.push(vec!["INCR".into(), counter.clone()]);
            cmds.push(vec!["GET".into(), key]);
        }
        let refs: Vec<Vec<&str>> = cmds
            .iter()
            .map(|c| c.iter().map(String::as_str).collect())
            .collect();
        let slices: Vec<&[&str]> = refs.iter().map(Vec::as_slice).collect();
        let replies = c.pipeline(&slices).expect("pipeline replies");
        for (i, (cmd, reply)) in cmds.iter().zip(&replies).enumerate() {
            if let Reply::Error(_) = reply {
                t.errors += 1;
                if !strict {
                    t.last_incr = i64::MIN;
                }
                continue;
            }
            t.ok += 1;
            match cmd[0].as_str() {
                "SET" => assert_eq!(reply, &Reply::ok(), "SET {} got {reply}", cmd[1]),
                "INCR" => {
                    let v = reply.as_int().unwrap_or_else(|| panic!("INCR got {reply}"));
                    assert!(v > t.last_incr, "INCR went from {} to {v}", t.last_incr);
                    t.last_incr = v;
                }
                _ => {
                    // The GET of a key whose SET (two requests before) succeeded.
                    let set_ok = !replies[i - 2].is_error();
                    let want = format!("val-{client}-{}", cmd[1].rsplit(':').next().unwrap());
                    if set_ok {
                        assert_eq!(reply, &Reply::bulk(&want), "GET {} got {reply}", cmd[1]);
                    } else {
                        assert!(
                            reply.is_nil() || reply == &Reply::bulk(&want),
                            "GET {} got {reply}",
                            cmd[1]
                        );
                    }
                }
            }
        }
    }
    t
}

fn run(kill: bool) {
    let mut t = MasterReplica::start_with(GROUP, 2, 3, 2);
    t.wait_replica_known();
    t.wait_sentinels_known();
    // Reads from the master only, so a GET sees its own SET.
    let proxy = start_proxy(
        &t.sentinel_addrs(),
        GROUP,
        "dynamic_replica_read_priority = 0",
    );
    let stop = Arc::new(AtomicBool::new(false));
    let clients: Vec<_> = (0..8)
        .map(|i| {
            let (a, s) = (proxy.addr(), stop.clone());
            std::thread::spawn(move || pipeline_client(a, i, s, !kill))
        })
        .collect();
    std::thread::sleep(Duration::from_millis(700));
    let events = EventLog::start(&t.sentinel().addr(), None);
    if kill {
        t.master.stop();
        events.wait("+switch-master", Duration::from_secs(20));
    } else {
        t.failover(Duration::from_secs(15));
    }
    let new_port = t.sentinel().master_addr(GROUP).expect("master").1;
    wait_proxy_master(
        &proxy,
        GROUP,
        &format!("127.0.0.1:{new_port}"),
        RESUME_BOUND,
    );
    std::thread::sleep(Duration::from_secs(1));
    stop.store(true, Ordering::Relaxed);
    let tallies: Vec<Tally> = clients
        .into_iter()
        .map(|h| h.join().expect("a pipeline client saw a misplaced reply"))
        .collect();
    let ok: usize = tallies.iter().map(|t| t.ok).sum();
    let errors: usize = tallies.iter().map(|t| t.errors).sum();
    let label = if kill { "kill -9" } else { "SENTINEL FAILOVER" };
    println!("[pipeline, {label}] {ok} replies matched their requests, {errors} errors");
    assert!(ok > 1000, "too little traffic");
    if !kill {
        assert_eq!(errors, 0, "a planned failover failed pipelined requests");
    }
}

#[test]
fn pipelines_across_a_planned_failover_get_their_own_replies() {
    run(false);
}

#[test]
fn pipelines_across_a_kill_9_get_their_own_replies_or_errors() {
    run(true);
}
