//! Helpers shared by the fault tests (tests/faults_*.rs) and benches/failover.rs: a
//! redmux config for one Sentinel-managed group, a recorder of Sentinel events, a
//! bounded write load from many clients, and the checks and figures drawn from it.
//!
//! Include after the harness: `mod support; mod fault_support;`.
#![allow(dead_code)]

use crate::support::*;
use std::collections::HashMap;
use std::io;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Writes must resume this soon after Sentinel announces the new master.
pub const RESUME_BOUND: Duration = Duration::from_secs(5);

/// A redmux TOML config for one group `name` behind `sentinels`, on 127.0.0.1:`port`.
/// `pool_extra` lines go into `[sentinel_pool]` and replace the defaults set here
/// (server_timeout 1 s, failure limit 3, retry 1 s, refresh 1 s, reads from the master).
pub fn redmux_toml(port: u16, sentinels: &[String], name: &str, pool_extra: &str) -> String {
    let list: Vec<String> = sentinels.iter().map(|s| format!("\"{s}\"")).collect();
    let mut pool: Vec<(String, String)> = [
        ("refresh_interval", "1"),
        ("server_timeout", "1"),
        ("server_failure_limit", "3"),
        ("server_retry_timeout", "1"),
        ("master_read_priority", "60"),
        ("dynamic_replica_read_priority", "50"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    for line in pool_extra.lines().map(str::trim).filter(|l| !l.is_empty()) {
        if let Some((k, v)) = line.split_once('=') {
            let (k, v) = (k.trim().to_string(), v.trim().to_string());
            match pool.iter_mut().find(|(pk, _)| *pk == k) {
                Some(slot) => slot.1 = v,
                None => pool.push((k, v)),
            }
        }
    }
    let mut text = format!("bind = \"127.0.0.1:{port}\"\nworker_threads = 2\n[sentinel_pool]\n");
    for (k, v) in pool {
        text.push_str(&format!("{k} = {v}\n"));
    }
    text.push_str(&format!(
        "sentinels = [{}]\n[[sentinel_pool.group]]\nname = \"{name}\"\n",
        list.join(", ")
    ));
    text
}

/// Starts redmux in front of `sentinels` and waits until it routes writes for `name`.
pub fn start_proxy(sentinels: &[String], name: &str, pool_extra: &str) -> Redmux {
    let port = free_port();
    let proxy = Redmux::start(&redmux_toml(port, sentinels, name, pool_extra), "toml");
    must_wait(Duration::from_secs(10), "redmux to know the master", || {
        proxy
            .try_cmd(&["SET", "redmux:probe", "1"])
            .is_ok_and(|r| r == Reply::ok())
    });
    proxy
}

/// The proxy's INFO `servers` section.
pub fn proxy_servers(proxy: &Redmux) -> String {
    proxy.cmd(&["INFO", "servers"]).to_string()
}

/// The master the proxy's INFO servers section names for `name`.
pub fn proxy_master(proxy: &Redmux, name: &str) -> Option<String> {
    // Lines look like `group0:name=mymaster,master=127.0.0.1:6380,replicas=1,...`.
    let info = proxy.try_cmd(&["INFO", "servers"]).ok()?.to_string();
    let wanted = format!("name={name}");
    info.lines()
        .filter(|l| l.starts_with("group"))
        .filter_map(|l| l.split_once(':').map(|(_, v)| v))
        .find(|v| v.split(',').any(|kv| kv == wanted))?
        .split(',')
        .find_map(|kv| kv.strip_prefix("master="))
        .map(str::to_string)
}

/// Waits until the proxy names `addr` as the master of `name`.
pub fn wait_proxy_master(proxy: &Redmux, name: &str, addr: &str, timeout: Duration) {
    must_wait(
        timeout,
        &format!("redmux to route {name} to {addr}"),
        || proxy_master(proxy, name).as_deref() == Some(addr),
    );
}

/// Waits (20 s) until every Sentinel of `t` names the same master and the proxy routes to
/// it too, then returns it. Under CPU starvation Sentinel (down-after 1 s) can fail a
/// freshly promoted master over again, so acknowledged writes are checked on this one.
pub fn settled_master(t: &MasterReplica, proxy: &Redmux) -> String {
    let mut settled = String::new();
    must_wait(
        Duration::from_secs(20),
        "Sentinels and redmux to agree on the master",
        || {
            let masters: Vec<Option<(String, u16)>> =
                t.sentinels.iter().map(|s| s.master_addr(&t.name)).collect();
            let Some(Some((ip, port))) = masters.first().cloned() else {
                return false;
            };
            let addr = format!("{ip}:{port}");
            let agree = masters
                .iter()
                .all(|m| m.as_ref() == Some(&(ip.clone(), port)))
                && proxy_master(proxy, &t.name).as_deref() == Some(addr.as_str());
            settled = addr;
            agree
        },
    );
    settled
}

// ---------------------------------------------------------------------------------------------
// Sentinel events
// ---------------------------------------------------------------------------------------------

/// Records every event one Sentinel publishes (`PSUBSCRIBE *`), with when it arrived.
pub struct EventLog {
    events: Arc<Mutex<Vec<(Instant, String, String)>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl EventLog {
    /// Subscribes to the Sentinel at `addr` (with `password` when given).
    pub fn start(addr: &str, password: Option<&str>) -> EventLog {
        let mut conn = match password {
            Some(pw) => Conn::connect_auth(addr, pw),
            None => Conn::connect(addr),
        }
        .unwrap_or_else(|e| panic!("subscribe to sentinel {addr}: {e}"));
        conn.query(&["PSUBSCRIBE", "*"])
            .unwrap_or_else(|e| panic!("PSUBSCRIBE on {addr}: {e}"));
        conn.set_read_timeout(Some(Duration::from_millis(200)))
            .expect("read timeout");
        let events = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (ev, st) = (events.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            while !st.load(Ordering::Relaxed) {
                match conn.read_reply() {
                    Ok(Reply::Array(a)) if a.len() == 4 => {
                        let item = (Instant::now(), a[2].to_string(), a[3].to_string());
                        ev.lock().unwrap().push(item);
                    }
                    Ok(_) => {}
                    Err(e) if is_timeout(&e) => {}
                    Err(_) => return,
                }
            }
        });
        EventLog {
            events,
            stop,
            thread: Some(thread),
        }
    }

    /// When `channel` was first published (optionally only events whose payload contains
    /// `needle`).
    pub fn first(&self, channel: &str, needle: &str) -> Option<Instant> {
        self.events
            .lock()
            .unwrap()
            .iter()
            .find(|(_, c, p)| c == channel && p.contains(needle))
            .map(|(t, _, _)| *t)
    }

    /// How many times `channel` was published.
    pub fn count(&self, channel: &str) -> usize {
        self.events
            .lock()
            .unwrap()
            .iter()
            .filter(|(_, c, _)| c == channel)
            .count()
    }

    /// When `channel` was last published.
    pub fn last(&self, channel: &str) -> Option<Instant> {
        self.events
            .lock()
            .unwrap()
            .iter()
            .rev()
            .find(|(_, c, _)| c == channel)
            .map(|(t, _, _)| *t)
    }

    /// Waits for `channel` and returns when it came.
    pub fn wait(&self, channel: &str, timeout: Duration) -> Instant {
        let mut at = None;
        must_wait(timeout, &format!("sentinel event {channel}"), || {
            at = self.first(channel, "");
            at.is_some()
        });
        at.unwrap()
    }

    /// Every event so far as `+chan payload` lines, with ms since `t0`.
    pub fn dump(&self, t0: Instant) -> String {
        self.events
            .lock()
            .unwrap()
            .iter()
            .map(|(t, c, p)| format!("{:>7.3}s {c} {p}\n", secs(*t, t0)))
            .collect()
    }
}

impl Drop for EventLog {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn is_timeout(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}

/// Seconds from `t0` to `t` (negative when `t` is earlier).
pub fn secs(t: Instant, t0: Instant) -> f64 {
    if t >= t0 {
        (t - t0).as_secs_f64()
    } else {
        -(t0 - t).as_secs_f64()
    }
}

// ---------------------------------------------------------------------------------------------
// Write load
// ---------------------------------------------------------------------------------------------

/// One write's outcome.
#[derive(Clone, Debug)]
pub struct WriteOutcome {
    pub key: String,
    pub value: String,
    pub sent: Instant,
    pub done: Instant,
    /// `None` when acknowledged (`+OK`), else the error text.
    pub error: Option<String>,
}

/// A bounded write load: `clients` threads, each on its own proxy connection, each
/// `SET`ting unique keys (`prefix:client:n`) until stopped or `max_time` passed.
pub struct WriteLoad {
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<Vec<WriteOutcome>>>,
    pub started: Instant,
}

impl WriteLoad {
    /// Starts the load; `pause` is slept between two writes of one client.
    pub fn start(
        proxy_addr: &str,
        prefix: &str,
        clients: usize,
        pause: Duration,
        max_time: Duration,
    ) -> WriteLoad {
        let stop = Arc::new(AtomicBool::new(false));
        let started = Instant::now();
        let threads = (0..clients)
            .map(|c| {
                let (addr, stop) = (proxy_addr.to_string(), stop.clone());
                let prefix = format!("{prefix}:{c}");
                std::thread::spawn(move || client_loop(&addr, &prefix, &stop, pause, max_time))
            })
            .collect();
        WriteLoad {
            stop,
            threads,
            started,
        }
    }

    /// Stops the load and gathers every outcome, ordered by send time.
    pub fn finish(self) -> LoadReport {
        self.stop.store(true, Ordering::Relaxed);
        let mut all: Vec<WriteOutcome> = self
            .threads
            .into_iter()
            .flat_map(|t| t.join().expect("load thread panicked"))
            .collect();
        all.sort_by_key(|o| o.sent);
        LoadReport {
            outcomes: all,
            started: self.started,
        }
    }
}

fn client_loop(
    addr: &str,
    prefix: &str,
    stop: &AtomicBool,
    pause: Duration,
    max_time: Duration,
) -> Vec<WriteOutcome> {
    let deadline = Instant::now() + max_time;
    let mut out = Vec::new();
    let mut conn: Option<Conn> = None;
    let mut n = 0u64;
    while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
        n += 1;
        let key = format!("{prefix}:{n}");
        let value = format!("v{n}-{}", prefix.len() as u64 * 7919 + n);
        let sent = Instant::now();
        let result = match conn.as_mut() {
            Some(c) => c.query(&["SET", &key, &value]),
            None => Conn::connect_timeout(addr, Duration::from_secs(1)).and_then(|mut c| {
                let r = c.query(&["SET", &key, &value]);
                conn = Some(c);
                r
            }),
        };
        let error = match result {
            Ok(Reply::Status(s)) if s == "OK" => None,
            Ok(other) => Some(other.to_string()),
            Err(e) => {
                conn = None;
                Some(format!("io: {e}"))
            }
        };
        out.push(WriteOutcome {
            key,
            value,
            sent,
            done: Instant::now(),
            error,
        });
        if !pause.is_zero() {
            std::thread::sleep(pause);
        }
    }
    out
}

/// What a write load saw.
pub struct LoadReport {
    pub outcomes: Vec<WriteOutcome>,
    pub started: Instant,
}

impl LoadReport {
    pub fn acked(&self) -> impl Iterator<Item = &WriteOutcome> {
        self.outcomes.iter().filter(|o| o.error.is_none())
    }
    pub fn failed(&self) -> impl Iterator<Item = &WriteOutcome> {
        self.outcomes.iter().filter(|o| o.error.is_some())
    }
    pub fn acked_count(&self) -> usize {
        self.acked().count()
    }
    pub fn failed_count(&self) -> usize {
        self.failed().count()
    }

    /// From the first failed write's send to the last failed write's reply; zero when
    /// none failed.
    pub fn failure_window(&self) -> Duration {
        let first = self.failed().map(|o| o.sent).min();
        let last = self.failed().map(|o| o.done).max();
        match (first, last) {
            (Some(a), Some(b)) => b.saturating_duration_since(a),
            _ => Duration::ZERO,
        }
    }

    /// The slowest acknowledged write (a held write shows here, not as a failure).
    pub fn max_ack_latency(&self) -> Duration {
        self.acked()
            .map(|o| o.done - o.sent)
            .max()
            .unwrap_or_default()
    }

    /// How long after `at` the first write sent at or after `at` was acknowledged; or,
    /// when writes held before `at` were acknowledged at once, zero.
    pub fn resumed_after(&self, at: Instant) -> Option<Duration> {
        self.acked()
            .filter(|o| o.done >= at)
            .map(|o| o.done - at)
            .min()
    }

    /// The distinct error texts and how often each came.
    pub fn error_kinds(&self) -> Vec<(String, usize)> {
        let mut m: HashMap<String, usize> = HashMap::new();
        for o in self.failed() {
            let text = o.error.clone().unwrap_or_default();
            let short: String = text.chars().take(90).collect();
            *m.entry(short).or_default() += 1;
        }
        let mut v: Vec<_> = m.into_iter().collect();
        v.sort_by_key(|e| std::cmp::Reverse(e.1));
        v
    }

    /// Acknowledged writes missing (or with another value) on `server`.
    pub fn lost_on(&self, server: &str) -> Vec<&WriteOutcome> {
        let acked: Vec<&WriteOutcome> = self.acked().collect();
        let mut lost = Vec::new();
        let mut conn = Conn::connect(server).unwrap_or_else(|e| panic!("connect {server}: {e}"));
        for chunk in acked.chunks(500) {
            let mut args: Vec<&str> = vec!["MGET"];
            args.extend(chunk.iter().map(|o| o.key.as_str()));
            let reply = conn.query(&args).expect("MGET on the new master");
            let values = reply.as_array().expect("MGET array").to_vec();
            for (o, v) in chunk.iter().zip(values) {
                if v.as_str() != Some(o.value.as_str()) {
                    lost.push(*o);
                }
            }
        }
        lost
    }

    /// One line for the test log: counts, the failure window, the errors.
    pub fn summary(&self, label: &str, announce: Option<Instant>) -> String {
        let mut s = format!(
            "[{label}] writes: {} acknowledged, {} failed; failure window {:.3} s; slowest ack {:.3} s",
            self.acked_count(),
            self.failed_count(),
            self.failure_window().as_secs_f64(),
            self.max_ack_latency().as_secs_f64(),
        );
        if let (Some(first), Some(last)) = (
            self.failed().map(|o| o.sent).min(),
            self.failed().map(|o| o.done).max(),
        ) {
            if let Some(a) = announce {
                s.push_str(&format!(
                    "; failures from {:+.3} s to {:+.3} s around the new master's announcement",
                    secs(first, a),
                    secs(last, a)
                ));
            }
        }
        for (text, n) in self.error_kinds().iter().take(5) {
            s.push_str(&format!("\n    {n} x {text}"));
        }
        s
    }
}

// ---------------------------------------------------------------------------------------------
// A Sentinel with requirepass (the harness' Sentinel probes without AUTH)
// ---------------------------------------------------------------------------------------------

/// A `redis-sentinel` with `requirepass`, killed on drop.
pub struct AuthSentinel {
    pub port: u16,
    child: Child,
    dir: std::path::PathBuf,
}

impl AuthSentinel {
    pub fn start(name: &str, master_port: u16, password: &str) -> AuthSentinel {
        AuthSentinel::start_with(name, master_port, password, "")
    }

    /// With `extra` appended to its config file (e.g. ACL `user` lines).
    pub fn start_with(name: &str, master_port: u16, password: &str, extra: &str) -> AuthSentinel {
        let bin = require_binary("redis-sentinel", "apt-get install -y redis-sentinel");
        let dir = unique_temp_dir("sentinel-auth");
        let port = free_port();
        let conf = dir.join("sentinel.conf");
        std::fs::write(
            &conf,
            format!(
                "port {port}\nbind 127.0.0.1\ndaemonize no\ndir \"{}\"\nrequirepass \"{password}\"\n\
                 sentinel monitor {name} 127.0.0.1 {master_port} 1\n\
                 sentinel down-after-milliseconds {name} 1000\n{extra}",
                dir.display()
            ),
        )
        .expect("write sentinel.conf");
        let log = std::fs::File::create(dir.join("sentinel.log")).expect("log");
        let child = Command::new(bin)
            .arg(&conf)
            .current_dir(&dir)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("start redis-sentinel");
        let s = AuthSentinel { port, child, dir };
        let addr = s.addr();
        must_wait(START_TIMEOUT, "sentinel with requirepass to answer", || {
            matches!(
                query_auth(&addr, password, &["SENTINEL", "get-master-addr-by-name", name]),
                Ok(Reply::Array(a)) if a.len() == 2
            )
        });
        s
    }
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
}

impl Drop for AuthSentinel {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}
