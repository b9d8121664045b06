//! Load benchmark: `redis-benchmark` (and a small Rust load generator for PUBLISH) run
//! directly against Redis and through redmux, alternating targets round by round
//! (A B A B) so the ratio holds on a noisy machine. Prints a Markdown table to stdout.
//!
//! Run: `cargo bench --bench load` (builds redmux in release). It starts its own
//! redis-server, redis-sentinel and redmux processes on loopback ports, and needs
//! `redis-benchmark` (redis-tools) on PATH.
//!
//! Knobs (environment):
//! - `REDMUX_BENCH_SECONDS` (default 3): target length of one run of one scenario.
//! - `REDMUX_BENCH_ROUNDS` (default 2): A B A B rounds per scenario.
//! - `REDMUX_BENCH_WORKERS` (default 1): redmux `worker_threads` (the extra "2 workers"
//!   scenario always uses 2).
//! - `REDMUX_BENCH_ONLY`: comma-separated scenario ids to run (`get_set_50`, `pipeline_16`,
//!   `clients_500`, `value_16k`, `mget_3_groups`, `publish_100`, `workers_2`).
//! - `REDMUX_BENCH_OTHER=/path/to/proxy`: a second proxy (e.g. predixy) measured as a
//!   third target, run as `PROXY CONFIG_FILE`. Its config is predixy-style, written from
//!   `REDMUX_BENCH_OTHER_CONF` (a template file) or a built-in predixy template. The
//!   template placeholders: `{BIND}` (127.0.0.1:port), `{WORKERS}`, `{SENTINEL}`
//!   (host:port) and `{GROUPS}` (one `Group NAME {}` block per group).
//! - `REDMUX_BENCH_PROFILE=1`: only start the single-group pool and redmux, print their
//!   addresses and the redmux pid, and wait for Enter (for callgrind/perf/strace runs).

#[path = "../tests/support/mod.rs"]
mod support;

use std::fs;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use support::*;

/// A place requests can be sent: direct Redis or a proxy (with its pid for /proc), and
/// the Redis servers that answer through it (their CPU time is measured too).
struct Target {
    label: String,
    addr: String,
    pid: Option<u32>,
    servers: Vec<u32>,
}

/// One measured run against one target.
#[derive(Clone, Default)]
struct Sample {
    requests: u64,
    seconds: f64,
    p50_us: f64,
    p99_us: f64,
    /// utime and stime of the proxy during the run.
    cpu_ticks: (u64, u64),
    /// utime + stime of the Redis servers behind the target during the run.
    server_ticks: u64,
    /// utime + stime of the load generator during the run: this process (the Rust load
    /// generator's threads) and its waited-for children (redis-benchmark).
    loadgen_ticks: u64,
    peak_rss_kb: u64,
}

/// What a scenario runs against a target, returning the sample (CPU/RSS filled later).
type Runner<'a> = Box<dyn Fn(&Target, u64) -> Sample + 'a>;

struct Settings {
    seconds: f64,
    rounds: usize,
    workers: usize,
    only: Option<Vec<String>>,
    other: Option<PathBuf>,
    other_conf: Option<String>,
}

impl Settings {
    /// Under `cargo test` (no `--bench` argument) a one-round, one-second smoke of the
    /// 50-client scenario checks the harness still works without a benchmark's cost.
    fn from_env() -> Settings {
        let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        let full = std::env::args().any(|a| a == "--bench");
        Settings {
            seconds: var("REDMUX_BENCH_SECONDS")
                .and_then(|v| v.parse().ok())
                .unwrap_or(if full { 3.0 } else { 1.0 }),
            rounds: var("REDMUX_BENCH_ROUNDS")
                .and_then(|v| v.parse().ok())
                .unwrap_or(if full { 2 } else { 1 }),
            workers: var("REDMUX_BENCH_WORKERS")
                .and_then(|v| v.parse().ok())
                .unwrap_or(1),
            only: var("REDMUX_BENCH_ONLY")
                .or_else(|| (!full).then(|| "get_set_50".to_string()))
                .map(|v| v.split(',').map(String::from).collect()),
            other: var("REDMUX_BENCH_OTHER").map(PathBuf::from),
            other_conf: var("REDMUX_BENCH_OTHER_CONF")
                .map(|p| fs::read_to_string(&p).unwrap_or_else(|e| panic!("cannot read {p}: {e}"))),
        }
    }
    fn wants(&self, id: &str) -> bool {
        self.only.as_ref().is_none_or(|o| o.iter().any(|s| s == id))
    }
}

// ---------------------------------------------------------------------------------------------
// /proc
// ---------------------------------------------------------------------------------------------

/// (utime, stime) of a process (all threads), in clock ticks.
fn cpu_ticks(pid: u32) -> (u64, u64) {
    let Ok(stat) = fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return (0, 0);
    };
    let Some(close) = stat.rfind(')') else {
        return (0, 0);
    };
    let fields: Vec<&str> = stat[close + 1..].split_whitespace().collect();
    let get = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<u64>().ok())
            .unwrap_or(0)
    };
    (get(11), get(12))
}

/// utime + stime of this process plus its waited-for children, in clock ticks.
fn own_and_children_ticks() -> u64 {
    let Ok(stat) = fs::read_to_string("/proc/self/stat") else {
        return 0;
    };
    let Some(close) = stat.rfind(')') else {
        return 0;
    };
    stat[close + 1..]
        .split_whitespace()
        .skip(11)
        .take(4)
        .filter_map(|f| f.parse::<u64>().ok())
        .sum()
}

/// VmHWM (peak RSS) in kB.
fn peak_rss_kb(pid: u32) -> u64 {
    fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.split_whitespace().next()?.parse().ok())
        })
        .unwrap_or(0)
}

/// Resets VmHWM to the current RSS (`echo 5 > clear_refs`), so each run sees its own peak.
fn reset_peak_rss(pid: u32) {
    let _ = fs::write(format!("/proc/{pid}/clear_refs"), "5");
}

extern "C" {
    fn sysconf(name: i32) -> i64;
}

fn ticks_per_second() -> f64 {
    const SC_CLK_TCK: i32 = 2;
    // SAFETY: sysconf has no preconditions.
    let t = unsafe { sysconf(SC_CLK_TCK) };
    if t > 0 {
        t as f64
    } else {
        100.0
    }
}

fn load_average() -> String {
    fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

// ---------------------------------------------------------------------------------------------
// redis-benchmark
// ---------------------------------------------------------------------------------------------

/// One `redis-benchmark --csv` run; returns the combined sample of its tests.
fn redis_benchmark(addr: &str, args: &[String]) -> Sample {
    let bin = require_binary("redis-benchmark", "apt-get install -y redis-tools");
    let (host, port) = addr.rsplit_once(':').expect("host:port");
    let t = Instant::now();
    let out = Command::new(bin)
        .args(["-h", host, "-p", port, "--csv"])
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run redis-benchmark");
    let wall = t.elapsed().as_secs_f64();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "redis-benchmark {args:?} against {addr} failed: {}\n{text}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let rows = parse_csv(&text);
    assert!(
        !rows.is_empty(),
        "redis-benchmark {args:?} against {addr} printed no results:\n{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let n = arg_value(args, "-n").unwrap_or(100_000);
    let mut s = Sample::default();
    for r in &rows {
        s.requests += n;
        s.seconds += n as f64 / r.rps.max(1.0);
        s.p50_us += r.p50_ms * 1000.0 / rows.len() as f64;
        s.p99_us += r.p99_ms * 1000.0 / rows.len() as f64;
    }
    if s.seconds <= 0.0 {
        s.seconds = wall;
    }
    s
}

struct CsvRow {
    rps: f64,
    p50_ms: f64,
    p99_ms: f64,
}

/// `"test","rps","avg_latency_ms","min_latency_ms","p50_latency_ms","p95_latency_ms",
/// "p99_latency_ms","max_latency_ms"` rows.
fn parse_csv(text: &str) -> Vec<CsvRow> {
    let mut header: Vec<String> = Vec::new();
    let mut rows = Vec::new();
    for line in text.lines() {
        let cells: Vec<String> = line
            .split(',')
            .map(|c| c.trim_matches('"').to_string())
            .collect();
        if cells.first().is_some_and(|c| c == "test") {
            header = cells;
            continue;
        }
        let col = |name: &str| -> f64 {
            header
                .iter()
                .position(|h| h == name)
                .and_then(|i| cells.get(i))
                .and_then(|v| v.parse().ok())
                .unwrap_or(0.0)
        };
        if header.is_empty() || cells.len() < 2 {
            continue;
        }
        rows.push(CsvRow {
            rps: col("rps"),
            p50_ms: col("p50_latency_ms"),
            p99_ms: col("p99_latency_ms"),
        });
    }
    rows
}

fn arg_value(args: &[String], flag: &str) -> Option<u64> {
    let i = args.iter().position(|a| a == flag)?;
    args.get(i + 1)?.parse().ok()
}

/// A redis-benchmark scenario: `args(n)` are the arguments for `n` requests per test.
fn rb_runner<'a>(args: impl Fn(u64) -> Vec<String> + 'a) -> Runner<'a> {
    Box::new(move |t: &Target, n: u64| redis_benchmark(&t.addr, &args(n)))
}

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

// ---------------------------------------------------------------------------------------------
// PUBLISH to 100 subscribers (redis-benchmark cannot subscribe)
// ---------------------------------------------------------------------------------------------

const CHANNEL: &str = "bench-channel";
const PAYLOAD: [u8; 32] = [b'm'; 32];
const PUBLISH_PIPELINE: usize = 8;

/// Bytes of one `message` push as a subscriber receives it.
fn message_frame_len() -> usize {
    encode_command(&[b"message".as_slice(), CHANNEL.as_bytes(), &PAYLOAD]).len()
}

/// `subscribers` connections SUBSCRIBEd through `t`, one publisher sending PUBLISH in
/// pipelines of 8 for `seconds`. Requests = messages received; latency = PUBLISH batch
/// round trip.
fn publish_run(t: &Target, subscribers: usize, seconds: f64, direct: &str) -> Sample {
    let stop = Arc::new(AtomicBool::new(false));
    let received = Arc::new(AtomicU64::new(0));
    let mut threads = Vec::new();
    for _ in 0..subscribers {
        let mut c = Conn::connect(&t.addr).expect("subscriber connect");
        c.send(&["SUBSCRIBE", CHANNEL]).expect("SUBSCRIBE");
        let r = c.read_reply().expect("SUBSCRIBE reply");
        assert!(r.as_array().is_some(), "SUBSCRIBE answered {r}");
        let stream = c.stream().try_clone().expect("clone");
        let (stop, received) = (stop.clone(), received.clone());
        threads.push(std::thread::spawn(move || {
            subscriber(stream, stop, received)
        }));
    }
    must_wait(
        Duration::from_secs(10),
        "all subscribers registered",
        || {
            query(direct, &["PUBSUB", "NUMSUB", CHANNEL])
                .ok()
                .and_then(|r| r.as_array()?.get(1)?.as_int())
                == Some(subscribers as i64)
        },
    );
    let mut publisher = Conn::connect(&t.addr).expect("publisher connect");
    let batch: Vec<u8> = (0..PUBLISH_PIPELINE)
        .flat_map(|_| encode_command(&[b"PUBLISH".as_slice(), CHANNEL.as_bytes(), &PAYLOAD]))
        .collect();
    let mut rtts = Vec::new();
    let start = Instant::now();
    let limit = Duration::from_secs_f64(seconds);
    while start.elapsed() < limit && rtts.len() < 2_000_000 {
        let t0 = Instant::now();
        publisher.send_raw(&batch).expect("PUBLISH");
        for _ in 0..PUBLISH_PIPELINE {
            publisher.read_reply().expect("PUBLISH reply");
        }
        rtts.push(t0.elapsed().as_secs_f64() * 1e6);
    }
    let expected = (rtts.len() * PUBLISH_PIPELINE * subscribers) as u64;
    let frame = message_frame_len() as u64;
    wait_until(Duration::from_secs(5), || {
        received.load(Ordering::Relaxed) / frame >= expected
    });
    let elapsed = start.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    for th in threads {
        let _ = th.join();
    }
    rtts.sort_by(|a, b| a.total_cmp(b));
    let pct = |p: f64| rtts.get(((rtts.len() as f64 - 1.0) * p) as usize).copied();
    Sample {
        requests: received.load(Ordering::Relaxed) / frame,
        seconds: elapsed,
        p50_us: pct(0.5).unwrap_or(0.0),
        p99_us: pct(0.99).unwrap_or(0.0),
        ..Sample::default()
    }
}

fn subscriber(mut stream: TcpStream, stop: Arc<AtomicBool>, received: Arc<AtomicU64>) {
    let _ = stream.set_read_timeout(Some(Duration::from_millis(100)));
    let mut buf = vec![0u8; 64 * 1024];
    while !stop.load(Ordering::Relaxed) {
        match stream.read(&mut buf) {
            Ok(0) => return,
            Ok(n) => {
                received.fetch_add(n as u64, Ordering::Relaxed);
            }
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => return,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Processes: the pools, redmux, the other proxy
// ---------------------------------------------------------------------------------------------

/// A Sentinel-monitored pool of `groups` masters (no replicas: reads go to the master).
struct Pool {
    names: Vec<String>,
    sentinel: Sentinel,
    masters: Vec<RedisServer>,
}

impl Pool {
    fn start(prefix: &str, groups: usize) -> Pool {
        let masters: Vec<RedisServer> = (0..groups).map(|_| RedisServer::start()).collect();
        let names: Vec<String> = (0..groups).map(|i| format!("{prefix}{i}")).collect();
        let monitored: Vec<(&str, u16)> = names
            .iter()
            .map(String::as_str)
            .zip(masters.iter().map(RedisServer::port))
            .collect();
        let sentinel = Sentinel::start_multi(&monitored, 1);
        Pool {
            names,
            sentinel,
            masters,
        }
    }

    fn redmux(&self, workers: usize) -> Redmux {
        let port = free_port();
        let mut config = format!(
            "bind = \"127.0.0.1:{port}\"\nworker_threads = {workers}\nlog_level = \"warn\"\n[sentinel_pool]\nsentinels = [\"{}\"]\n",
            self.sentinel.addr()
        );
        for g in &self.names {
            config.push_str(&format!("[[sentinel_pool.group]]\nname = \"{g}\"\n"));
        }
        let proxy = Redmux::start_on(&config, "toml", port);
        self.wait_routable(&proxy.addr());
        proxy
    }

    /// Waits until `addr` answers SETs for keys of every group.
    fn wait_routable(&self, addr: &str) {
        must_wait(
            Duration::from_secs(15),
            "proxy routes to every master",
            || {
                (0..30).all(|i| {
                    query(addr, &["SET", &format!("warm{i}"), "1"]).is_ok_and(|r| r == Reply::ok())
                })
            },
        );
    }
}

/// A predixy-style config for the other proxy.
const OTHER_TEMPLATE: &str = "Name redmux-bench\nBind {BIND}\nWorkerThreads {WORKERS}\nClientTimeout 0\nLogVerbSample 0\nLogDebugSample 0\nLogInfoSample 0\nLogNoticeSample 1\nLogWarnSample 1\nLogErrorSample 1\nSentinelServerPool {\n    Databases 16\n    Hash crc16\n    HashTag \"{}\"\n    Distribution modula\n    MasterReadPriority 60\n    StaticSlaveReadPriority 50\n    DynamicSlaveReadPriority 50\n    RefreshInterval 1\n    ServerTimeout 1\n    ServerFailureLimit 10\n    ServerRetryTimeout 1\n    KeepAlive 120\n    Sentinels {\n        + {SENTINEL}\n    }\n{GROUPS}}\n";

/// The other proxy (`REDMUX_BENCH_OTHER`), killed by pid on drop.
struct Other {
    child: Child,
    addr: String,
    dir: PathBuf,
}

impl Other {
    fn start(bin: &PathBuf, template: &str, pool: &Pool, workers: usize) -> Other {
        let port = free_port();
        let groups: String = pool
            .names
            .iter()
            .map(|n| format!("    Group {n} {{\n    }}\n"))
            .collect();
        let text = template
            .replace("{BIND}", &format!("127.0.0.1:{port}"))
            .replace("{WORKERS}", &workers.to_string())
            .replace("{SENTINEL}", &pool.sentinel.addr())
            .replace("{GROUPS}", &groups);
        let dir = unique_temp_dir("other-proxy");
        let conf = dir.join("other.conf");
        fs::write(&conf, text).expect("write other config");
        let log = fs::File::create(dir.join("other.log")).expect("other log");
        let child = Command::new(bin)
            .arg(&conf)
            .current_dir(&dir)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("clone log"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", bin.display()));
        let other = Other {
            child,
            addr: format!("127.0.0.1:{port}"),
            dir,
        };
        pool.wait_routable(&other.addr);
        other
    }
}

impl Drop for Other {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = fs::remove_dir_all(&self.dir);
    }
}

// ---------------------------------------------------------------------------------------------
// Running scenarios
// ---------------------------------------------------------------------------------------------

/// Measured results of one scenario: per target, the summed samples.
struct Outcome {
    title: String,
    load: String,
    /// The load generator is one thread (redis-benchmark): it can never do more than one
    /// core's worth of work, which bounds the rate too.
    single_thread_loadgen: bool,
    per_target: Vec<(String, Option<u32>, Vec<Sample>)>,
}

/// Calibrates a request count on the first target, then runs every target in turn,
/// `rounds` times (A B A B).
fn run_scenario(
    settings: &Settings,
    title: &str,
    targets: &[&Target],
    calibrate_n: u64,
    min_n: u64,
    run: &Runner<'_>,
) -> Outcome {
    let load = load_average();
    eprintln!("== {title} (load average {load})");
    let n = if calibrate_n == 0 {
        0
    } else {
        let probe = run(targets[0], calibrate_n);
        let rate = probe.requests as f64 / probe.seconds.max(1e-6);
        ((rate * settings.seconds / 2.0) as u64).clamp(min_n, 20_000_000)
    };
    let mut per_target: Vec<(String, Option<u32>, Vec<Sample>)> = targets
        .iter()
        .map(|t| (t.label.clone(), t.pid, Vec::new()))
        .collect();
    for round in 0..settings.rounds {
        for (i, t) in targets.iter().enumerate() {
            if let Some(pid) = t.pid {
                reset_peak_rss(pid);
            }
            let before = t.pid.map(cpu_ticks).unwrap_or((0, 0));
            let servers_before = servers_ticks(&t.servers);
            let loadgen_before = own_and_children_ticks();
            let wall = Instant::now();
            let mut s = run(t, n);
            let wall = wall.elapsed().as_secs_f64();
            s.server_ticks = servers_ticks(&t.servers).saturating_sub(servers_before);
            s.loadgen_ticks = own_and_children_ticks().saturating_sub(loadgen_before);
            if let Some(pid) = t.pid {
                let after = cpu_ticks(pid);
                s.cpu_ticks = (
                    after.0.saturating_sub(before.0),
                    after.1.saturating_sub(before.1),
                );
                s.peak_rss_kb = peak_rss_kb(pid);
            }
            eprintln!(
                "   round {round} {:<22} {:>10.0} ops/s  p50 {:>7.0} us  p99 {:>7.0} us  ({wall:.1} s)",
                t.label,
                s.requests as f64 / s.seconds.max(1e-9),
                s.p50_us,
                s.p99_us
            );
            per_target[i].2.push(s);
        }
    }
    Outcome {
        title: title.to_string(),
        load,
        single_thread_loadgen: true,
        per_target,
    }
}

/// The table. Besides each target's own figures it gives the load generator's CPU per
/// request, how many of the machine's cores the three (load generator, Redis, proxy) kept
/// busy together and how many the load generator alone did, and for a proxy a bound: the
/// ratio to direct Redis that a proxy spending no user-space CPU at all (only the kernel
/// time it was measured to spend) would reach with every core busy, i.e. cores / (load
/// generator + Redis + proxy system time per request) / direct rate, or, when the load
/// generator is one thread, 1 s / (its CPU per request) / direct rate if that is lower. A
/// ratio above the bound cannot be reached by any change to the proxy's own code that keeps
/// its system calls.
fn print_table(outcomes: &[Outcome]) {
    let tps = ticks_per_second();
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
    println!("| scenario | target | ops/s | vs direct | p50 us | p99 us | proxy CPU us/req (user + sys) | Redis CPU us/req | load generator CPU us/req | cores busy (load generator) | bound | proxy peak RSS MB |");
    println!("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
    for o in outcomes {
        let mut direct_rate = None;
        for (label, pid, samples) in &o.per_target {
            let k = samples.len().max(1) as f64;
            let rate = samples
                .iter()
                .map(|s| s.requests as f64 / s.seconds.max(1e-9))
                .sum::<f64>()
                / k;
            let p50 = samples.iter().map(|s| s.p50_us).sum::<f64>() / k;
            let p99 = samples.iter().map(|s| s.p99_us).sum::<f64>() / k;
            let reqs = samples.iter().map(|s| s.requests).sum::<u64>().max(1) as f64;
            let us = |ticks: u64| ticks as f64 / tps * 1e6 / reqs;
            let server = us(samples.iter().map(|s| s.server_ticks).sum());
            let loadgen = us(samples.iter().map(|s| s.loadgen_ticks).sum());
            let user = us(samples.iter().map(|s| s.cpu_ticks.0).sum());
            let sys = us(samples.iter().map(|s| s.cpu_ticks.1).sum());
            // CPU seconds per second of the run: requests/s x CPU microseconds/request.
            let busy = rate * (loadgen + server + user + sys) / 1e6;
            let loadgen_busy = rate * loadgen / 1e6;
            let (ratio, bound) = match direct_rate {
                None => {
                    direct_rate = Some(rate);
                    ("1.00".to_string(), "-".to_string())
                }
                Some(d) => {
                    let mut best = cores * 1e6 / (loadgen + server + sys).max(1e-9);
                    if o.single_thread_loadgen {
                        best = best.min(1e6 / loadgen.max(1e-9));
                    }
                    (format!("{:.2}", rate / d), format!("{:.2}", best / d))
                }
            };
            let (cpu, rss) = if pid.is_some() {
                let rss = samples.iter().map(|s| s.peak_rss_kb).max().unwrap_or(0);
                (
                    format!("{:.2} ({user:.2} + {sys:.2})", user + sys),
                    format!("{:.1}", rss as f64 / 1024.0),
                )
            } else {
                ("-".into(), "-".into())
            };
            println!(
                "| {} (load {}) | {label} | {rate:.0} | {ratio} | {p50:.0} | {p99:.0} | {cpu} | {server:.2} | {loadgen:.2} | {busy:.2} of {cores:.0} ({loadgen_busy:.2}) | {bound} | {rss} |",
                o.title, o.load
            );
        }
    }
}

fn target(label: &str, addr: String, pid: Option<u32>, servers: &[&RedisServer]) -> Target {
    Target {
        label: label.to_string(),
        addr,
        pid,
        servers: servers.iter().filter_map(|s| s.pid()).collect(),
    }
}

/// utime + stime of the Redis servers `pids`, summed.
fn servers_ticks(pids: &[u32]) -> u64 {
    pids.iter()
        .map(|&p| {
            let (u, s) = cpu_ticks(p);
            u + s
        })
        .sum()
}

/// Ten keys `mget:0`..`mget:9` (they fall in all three groups under crc16 modula).
fn mget_keys() -> Vec<String> {
    (0..10).map(|i| format!("mget:{i}")).collect()
}

fn profile_mode(workers: usize) {
    let pool = Pool::start("g", 1);
    let proxy = pool.redmux(workers);
    println!(
        "redis {}  sentinel {}  redmux {} (pid {})",
        pool.masters[0].addr(),
        pool.sentinel.addr(),
        proxy.addr(),
        proxy.pid().unwrap_or(0)
    );
    println!("press Enter to stop");
    let _ = std::io::stdout().flush();
    let mut line = String::new();
    let _ = std::io::stdin().read_line(&mut line);
}

fn main() {
    if std::env::var_os("REDMUX_TEST_RUST_LOG").is_none() {
        std::env::set_var("REDMUX_TEST_RUST_LOG", "warn");
    }
    let settings = Settings::from_env();
    if std::env::var("REDMUX_BENCH_PROFILE").is_ok_and(|v| v == "1") {
        profile_mode(settings.workers);
        return;
    }
    require_binary("redis-benchmark", "apt-get install -y redis-tools");
    let template = settings
        .other_conf
        .clone()
        .unwrap_or_else(|| OTHER_TEMPLATE.to_string());

    // One group: direct Redis vs redmux (vs the other proxy). Fresh proxies for every
    // scenario, so each peak RSS is that scenario's own.
    let started = Instant::now();
    let single = Pool::start("g", 1);
    let direct = target(
        "redis direct",
        single.masters[0].addr(),
        None,
        &[&single.masters[0]],
    );
    let mut outcomes = Vec::new();
    let get_set = |clients: u64, pipeline: u64, size: u64| {
        rb_runner(move |n| {
            let mut a = strings(&["-t", "set,get", "-r", "100000"]);
            a.extend(["-c".into(), clients.to_string(), "-n".into(), n.to_string()]);
            a.extend([
                "-P".into(),
                pipeline.to_string(),
                "-d".into(),
                size.to_string(),
            ]);
            a
        })
    };
    let basic: [(&str, &str, u64, u64, u64, u64); 4] = [
        ("get_set_50", "GET/SET 32 B, 50 clients", 50, 1, 32, 20_000),
        (
            "pipeline_16",
            "GET/SET 32 B, 50 clients, pipeline 16",
            50,
            16,
            32,
            200_000,
        ),
        (
            "clients_500",
            "GET/SET 32 B, 500 clients",
            500,
            1,
            32,
            20_000,
        ),
        (
            "value_16k",
            "GET/SET 16 KB, 50 clients",
            50,
            1,
            16384,
            5_000,
        ),
    ];
    for (id, title, clients, pipeline, size, calib) in basic {
        if settings.wants(id) {
            let procs = Proxies::start(&settings, &template, &single, settings.workers);
            let run = get_set(clients, pipeline, size);
            let targets = procs.targets(&direct);
            outcomes.push(run_scenario(
                &settings,
                title,
                &targets,
                calib,
                clients * 20,
                &run,
            ));
        }
    }
    if settings.wants("publish_100") {
        let procs = Proxies::start(&settings, &template, &single, settings.workers);
        let direct_addr = single.masters[0].addr();
        let secs = settings.seconds;
        let run: Runner<'_> =
            Box::new(move |t: &Target, _n: u64| publish_run(t, 100, secs / 2.0, &direct_addr));
        let targets = procs.targets(&direct);
        let title = "PUBLISH 32 B to 100 subscribers";
        let mut outcome = run_scenario(&settings, title, &targets, 0, 0, &run);
        // One publisher thread and 100 subscriber threads.
        outcome.single_thread_loadgen = false;
        outcomes.push(outcome);
    }
    if settings.wants("workers_2") {
        let one = Proxies::start(&settings, &template, &single, 1);
        let two = Proxies::start(&settings, &template, &single, 2);
        let (a, b) = (one.targets(&direct), two.targets(&direct));
        // direct, redmux 1w, redmux 2w, other 1w, other 2w
        let mut t2: Vec<&Target> = vec![a[0], a[1], b[1]];
        t2.extend(a.get(2));
        t2.extend(b.get(2));
        let run = get_set(50, 1, 32);
        let title = "GET/SET 32 B, 50 clients, 1 vs 2 workers";
        outcomes.push(run_scenario(&settings, title, &t2, 20_000, 1000, &run));
    }
    if settings.wants("mget_3_groups") {
        outcomes.push(mget_scenario(&settings, &template, &single.masters[0]));
    }
    print_table(&outcomes);
    eprintln!("total {:.0} s", started.elapsed().as_secs_f64());
}

/// redmux and (when configured) the other proxy in front of one pool, with their targets.
struct Proxies {
    _redmux: Redmux,
    _other: Option<Other>,
    targets: Vec<Target>,
}

impl Proxies {
    fn start(settings: &Settings, template: &str, pool: &Pool, workers: usize) -> Proxies {
        let redmux = pool.redmux(workers);
        let other = settings
            .other
            .as_ref()
            .map(|b| Other::start(b, template, pool, workers));
        let servers: Vec<&RedisServer> = pool.masters.iter().collect();
        let mut targets = vec![target(
            &format!("redmux {workers}w"),
            redmux.addr(),
            redmux.pid(),
            &servers,
        )];
        targets.extend(other.as_ref().map(|o| {
            target(
                &format!("other proxy {workers}w"),
                o.addr.clone(),
                Some(o.child.id()),
                &servers,
            )
        }));
        Proxies {
            _redmux: redmux,
            _other: other,
            targets,
        }
    }

    /// `direct`, then redmux, then the other proxy.
    fn targets<'a>(&'a self, direct: &'a Target) -> Vec<&'a Target> {
        std::iter::once(direct).chain(self.targets.iter()).collect()
    }
}

/// MGET of 10 keys: one Redis holding them all vs redmux over three groups.
fn mget_scenario(settings: &Settings, template: &str, direct_server: &RedisServer) -> Outcome {
    let pool = Pool::start("m", 3);
    let proxy = pool.redmux(settings.workers);
    let other = settings
        .other
        .as_ref()
        .map(|b| Other::start(b, template, &pool, settings.workers));
    for m in &pool.masters {
        m.cmd(&["FLUSHALL"]);
    }
    let keys = mget_keys();
    let value = "v".repeat(32);
    let mut addrs = vec![direct_server.addr(), proxy.addr()];
    addrs.extend(other.as_ref().map(|o| o.addr.clone()));
    for k in &keys {
        for a in &addrs {
            assert_eq!(query(a, &["SET", k, &value]).expect("SET"), Reply::ok());
        }
    }
    let filled = pool
        .masters
        .iter()
        .filter(|m| m.cmd(&["DBSIZE"]).as_int().unwrap_or(0) > 0)
        .count();
    assert_eq!(filled, 3, "the MGET keys must span all three groups");
    let direct = target(
        "redis direct (1 server)",
        direct_server.addr(),
        None,
        &[direct_server],
    );
    let servers: Vec<&RedisServer> = pool.masters.iter().collect();
    let rm = target(
        &format!("redmux {}w", settings.workers),
        proxy.addr(),
        proxy.pid(),
        &servers,
    );
    let ot = other.as_ref().map(|o| {
        let label = format!("other proxy {}w", settings.workers);
        target(&label, o.addr.clone(), Some(o.child.id()), &servers)
    });
    let mut targets: Vec<&Target> = vec![&direct, &rm];
    targets.extend(ot.as_ref());
    let run = rb_runner(move |n| {
        let mut a = strings(&["-c", "50", "-n"]);
        a.push(n.to_string());
        a.push("MGET".into());
        a.extend(mget_keys());
        a
    });
    run_scenario(
        settings,
        "MGET 10 keys over 3 groups, 50 clients",
        &targets,
        20_000,
        1000,
        &run,
    )
}
