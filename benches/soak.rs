//! Soak: a bounded mixed load through redmux (one Sentinel-managed master behind it) with
//! clients that connect, run a burst of SET/GET/INCR/pipelines, and disconnect, over and
//! over. Every interval it prints throughput, p99 latency and the proxy's RSS; at the end
//! it checks RSS did not keep growing once the load was steady.
//!
//! `cargo bench --bench soak` runs 180 s (`SOAK_SECS` changes it, `SOAK_CLIENTS` the
//! number of client threads, default 16). Under `cargo test` (no `--bench` argument) it
//! runs a 6 s smoke of the same code.

#[path = "../tests/support/mod.rs"]
mod support;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use support::*;

/// Latency histogram: 10 µs buckets up to 200 ms, then one overflow bucket.
const BUCKET_US: u64 = 10;
const BUCKETS: usize = 20_000;

struct Histogram(Vec<AtomicU64>);

impl Histogram {
    fn new() -> Histogram {
        Histogram((0..=BUCKETS).map(|_| AtomicU64::new(0)).collect())
    }

    fn record(&self, d: Duration) {
        let i = usize::try_from(d.as_micros() as u64 / BUCKET_US).unwrap_or(BUCKETS);
        self.0[i.min(BUCKETS)].fetch_add(1, Ordering::Relaxed);
    }

    /// Takes the counts (resetting them): (operations, p99 in µs).
    fn take(&self) -> (u64, u64) {
        let counts: Vec<u64> = self
            .0
            .iter()
            .map(|c| c.swap(0, Ordering::Relaxed))
            .collect();
        let total: u64 = counts.iter().sum();
        let target = total - total / 100;
        let mut seen = 0;
        for (i, c) in counts.iter().enumerate() {
            seen += c;
            if seen >= target && total > 0 {
                return (total, (i as u64 + 1) * BUCKET_US);
            }
        }
        (total, 0)
    }
}

fn rss_kb(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.split_whitespace().next()?.parse().ok())
        })
        .unwrap_or(0)
}

/// One client's life: connect, a burst of mixed commands, disconnect.
fn session(addr: &str, id: usize, round: u64, hist: &Histogram) -> Result<(), String> {
    let mut c = Conn::connect(addr).map_err(|e| format!("connect: {e}"))?;
    let key = format!("soak:{id}:{}", round % 64);
    let value = "v".repeat(16 + (round % 8) as usize * 64);
    for i in 0..100u64 {
        let t0 = Instant::now();
        let ok = match i % 4 {
            0 => c.query(&["SET", &key, &value]).map(|r| r == Reply::ok()),
            1 => c.query(&["GET", &key]).map(|r| r == Reply::bulk(&value)),
            2 => c
                .query(&["INCR", &format!("soak:n:{id}")])
                .map(|r| r.as_int().is_some()),
            _ => {
                let cmds: Vec<[&str; 2]> = (0..10).map(|_| ["GET", key.as_str()]).collect();
                let refs: Vec<&[&str]> = cmds.iter().map(|a| &a[..]).collect();
                c.pipeline(&refs).map(|r| r.len() == 10)
            }
        };
        match ok {
            Ok(true) => hist.record(t0.elapsed()),
            Ok(false) => return Err(format!("wrong reply on {key}")),
            Err(e) => return Err(format!("io: {e}")),
        }
    }
    Ok(())
}

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let secs: u64 = std::env::var("SOAK_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(if full { 180 } else { 6 });
    let clients: usize = std::env::var("SOAK_CLIENTS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(16);
    let interval = Duration::from_secs(if secs >= 60 { 10 } else { 1 });
    let t = MasterReplica::start_with("soak", 0, 1, 1);
    let port = free_port();
    let conf = format!(
        "bind = \"127.0.0.1:{port}\"\nworker_threads = 2\n[sentinel_pool]\n\
         refresh_interval = \"500ms\"\nsentinels = [\"{}\"]\n[[sentinel_pool.group]]\nname = \"soak\"\n",
        t.sentinel().addr()
    );
    let mut r = Redmux::start(&conf, "toml");
    must_wait(Duration::from_secs(10), "routing", || {
        query(&r.addr(), &["SET", "soak:ready", "1"]).is_ok_and(|x| x == Reply::ok())
    });
    let pid = r.pid().expect("pid");
    let hist = Arc::new(Histogram::new());
    let stop = Arc::new(AtomicBool::new(false));
    let sessions = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let threads: Vec<_> = (0..clients)
        .map(|id| {
            let (addr, hist, stop) = (r.addr(), hist.clone(), stop.clone());
            let (sessions, errors) = (sessions.clone(), errors.clone());
            std::thread::spawn(move || {
                let mut round = 0;
                while !stop.load(Ordering::Relaxed) {
                    if let Err(e) = session(&addr, id, round, &hist) {
                        if errors.fetch_add(1, Ordering::Relaxed) < 5 {
                            eprintln!("soak client {id}: {e}");
                        }
                    }
                    sessions.fetch_add(1, Ordering::Relaxed);
                    round += 1;
                }
            })
        })
        .collect();
    println!("soak: {secs} s, {clients} client threads, report every {interval:?}");
    println!(
        "{:>6} {:>10} {:>9} {:>8} {:>9}",
        "t(s)", "ops/s", "p99(us)", "RSS(MB)", "sessions"
    );
    let started = Instant::now();
    let mut rss_series = Vec::new();
    let (mut total_ops, mut worst_p99) = (0, 0);
    while started.elapsed() < Duration::from_secs(secs) {
        std::thread::sleep(interval);
        let (ops, p99) = hist.take();
        let rss = rss_kb(pid);
        total_ops += ops;
        worst_p99 = worst_p99.max(p99);
        rss_series.push(rss);
        println!(
            "{:>6} {:>10.0} {:>9} {:>8.1} {:>9}",
            started.elapsed().as_secs(),
            ops as f64 / interval.as_secs_f64(),
            p99,
            rss as f64 / 1024.0,
            sessions.load(Ordering::Relaxed)
        );
    }
    stop.store(true, Ordering::Relaxed);
    for th in threads {
        th.join().expect("client thread");
    }
    let elapsed = started.elapsed().as_secs_f64();
    let errors = errors.load(Ordering::Relaxed);
    println!(
        "soak: {total_ops} ops in {elapsed:.0} s = {:.0} ops/s, worst interval p99 {worst_p99} us, \
         {} sessions, {errors} errors",
        total_ops as f64 / elapsed,
        sessions.load(Ordering::Relaxed)
    );
    assert!(r.is_running(), "redmux died\n{}", r.logs());
    assert_eq!(errors, 0, "client errors during the soak");
    // Steady state: after the first third, RSS may not keep growing.
    let third = rss_series.len() / 3;
    if third >= 1 {
        let steady = rss_series[third];
        let last = *rss_series.last().unwrap_or(&steady);
        println!("soak: RSS steady {} kB -> end {last} kB", steady);
        assert!(
            last <= steady + steady / 10 + 2 * 1024,
            "RSS grew from {steady} kB to {last} kB under a steady load"
        );
    }
}
