//! Sentinel faults: one of three Sentinels killed and restarted while a failover happens,
//! a stale Sentinel (paused, or monitoring another master under the same name) that must
//! never move traffic, and a replica removed followed by `SENTINEL RESET`.

mod fault_support;
mod support;

use fault_support::*;
use std::time::{Duration, Instant};
use support::*;

const GROUP: &str = "mymaster";

fn group() -> MasterReplica {
    let t = MasterReplica::start_with(GROUP, 2, 3, 2);
    t.wait_replica_known();
    t.wait_sentinels_known();
    t
}

/// A failover under a small write load: zero lost, resumed within the bound.
fn failover_under_load(t: &MasterReplica, proxy: &Redmux, label: &str) -> u16 {
    let events = EventLog::start(&t.sentinel().addr(), None);
    let load = WriteLoad::start(
        &proxy.addr(),
        label,
        5,
        Duration::from_millis(5),
        Duration::from_secs(20),
    );
    std::thread::sleep(Duration::from_millis(500));
    let new_port = t.failover(Duration::from_secs(15));
    let switched = events.wait("+switch-master", Duration::from_secs(10));
    let new_master = format!("127.0.0.1:{new_port}");
    wait_proxy_master(proxy, GROUP, &new_master, RESUME_BOUND);
    std::thread::sleep(Duration::from_secs(1));
    let report = load.finish();
    println!("{}", report.summary(label, Some(switched)));
    let lost = report.lost_on(&new_master);
    assert!(
        lost.is_empty(),
        "[{label}] {} acknowledged writes lost",
        lost.len()
    );
    let resumed = report
        .resumed_after(switched)
        .expect("no write after the switch");
    assert!(
        resumed < RESUME_BOUND,
        "[{label}] writes resumed after {resumed:?}"
    );
    new_port
}

#[test]
fn one_sentinel_killed_and_restarted_while_failing_over() {
    let mut t = group();
    let proxy = start_proxy(&t.sentinel_addrs(), GROUP, "");
    t.sentinels[2].stop();
    assert_eq!(proxy.cmd(&["SET", "a", "1"]), Reply::ok());
    let first = failover_under_load(&t, &proxy, "failover with a Sentinel dead");
    t.sentinels[2].restart();
    must_wait(
        Duration::from_secs(15),
        "the restarted Sentinel to learn the new master",
        || t.sentinels[2].master_addr(GROUP).map(|a| a.1) == Some(first),
    );
    // The replica that was not promoted is the candidate for the second failover.
    let other = t
        .replicas
        .iter()
        .find(|r| r.port() != first)
        .expect("a second replica")
        .port();
    for s in &t.sentinels {
        s.wait_replica_known(GROUP, other, Duration::from_secs(15));
    }
    let second = failover_under_load(&t, &proxy, "failover after the restart");
    assert_ne!(first, second);
    assert_eq!(proxy.cmd(&["GET", "a"]), Reply::bulk("1"));
}

#[test]
fn stale_sentinels_never_move_traffic() {
    let t = group();
    // A decoy group under the same name, watched by a fourth Sentinel the proxy also asks.
    let decoy = MasterReplica::start_with(GROUP, 1, 1, 1);
    decoy.wait_replica_known();
    let mut sentinels = t.sentinel_addrs();
    sentinels.push(decoy.sentinel().addr());
    let proxy = start_proxy(&sentinels, GROUP, "");
    let real = t.master.addr();
    assert_eq!(proxy_master(&proxy, GROUP).as_deref(), Some(real.as_str()));

    // The decoy fails over: its Sentinel announces +try-failover, +promoted-slave and
    // +switch-master for "mymaster" with the decoy's addresses.
    let decoy_events = EventLog::start(&decoy.sentinel().addr(), None);
    let load = WriteLoad::start(
        &proxy.addr(),
        "decoy",
        5,
        Duration::from_millis(5),
        Duration::from_secs(20),
    );
    std::thread::sleep(Duration::from_millis(300));
    decoy.failover(Duration::from_secs(15));
    decoy_events.wait("+switch-master", Duration::from_secs(10));
    std::thread::sleep(Duration::from_secs(2));
    let report = load.finish();
    println!("{}", report.summary("decoy failover", None));
    assert_eq!(
        proxy_master(&proxy, GROUP).as_deref(),
        Some(real.as_str()),
        "one Sentinel's events moved traffic:\n{}",
        proxy.logs()
    );
    assert_eq!(
        report.failed_count(),
        0,
        "writes failed during the decoy's failover"
    );
    assert!(
        report.max_ack_latency() < Duration::from_millis(500),
        "writes were held for the decoy's failover: slowest {:?}",
        report.max_ack_latency()
    );
    assert!(report.lost_on(&real).is_empty(), "writes went elsewhere");

    // A real Sentinel paused through a real failover reports the old master when it
    // wakes up; the majority disagrees, so traffic stays on the new master.
    t.sentinels[2].pause();
    let new_port = t.failover(Duration::from_secs(15));
    let new_master = format!("127.0.0.1:{new_port}");
    wait_proxy_master(&proxy, GROUP, &new_master, RESUME_BOUND);
    t.sentinels[2].resume();
    let woke = Instant::now();
    while woke.elapsed() < Duration::from_secs(3) {
        assert_eq!(
            proxy_master(&proxy, GROUP).as_deref(),
            Some(new_master.as_str()),
            "a stale Sentinel moved traffic back"
        );
        assert_eq!(proxy.cmd(&["SET", "after", "1"]), Reply::ok());
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn removed_replica_disappears_after_sentinel_reset() {
    let mut t = MasterReplica::start_with(GROUP, 2, 1, 1);
    t.wait_replica_known();
    let proxy = start_proxy(
        &t.sentinel_addrs(),
        GROUP,
        "master_read_priority = 10\ndynamic_replica_read_priority = 50",
    );
    let gone = t.replicas[1].addr();
    let kept = t.replicas[0].addr();
    must_wait(Duration::from_secs(5), "both replicas in INFO", || {
        let info = proxy_servers(&proxy);
        info.contains(&format!("addr={gone},")) && info.contains(&format!("addr={kept},"))
    });
    assert_eq!(proxy.cmd(&["SET", "rk", "v"]), Reply::ok());
    t.replicas[1].stop();
    let stopped = Instant::now();
    // Sentinel flags it s_down after down-after (1 s); then SENTINEL RESET forgets it.
    must_wait(
        Duration::from_secs(5),
        "the replica to leave the proxy's view",
        || !proxy_servers(&proxy).contains(&format!("addr={gone},")),
    );
    println!(
        "[replica removed] left the proxy's view {:.3} s after shutdown",
        stopped.elapsed().as_secs_f64()
    );
    let r = t.sentinel().cmd(&["SENTINEL", "RESET", GROUP]);
    assert_eq!(r, Reply::Int(1));
    must_wait(
        Duration::from_secs(10),
        "the Sentinel to find the kept replica again",
        || t.sentinel().knows_replica(GROUP, t.replicas[0].port()),
    );
    let info = proxy_servers(&proxy);
    println!("{info}");
    assert!(!info.contains(&gone), "INFO still lists {gone}:\n{info}");
    must_wait(Duration::from_secs(5), "the kept replica in INFO", || {
        proxy_servers(&proxy).contains(&format!("addr={kept},"))
    });
    let mut c = proxy.conn();
    for _ in 0..50 {
        let r = c.query(&["GET", "rk"]).unwrap();
        assert!(
            !r.is_error(),
            "a read failed (sent to the removed replica?): {r}"
        );
    }
}
