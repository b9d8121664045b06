//! Counters the proxy keeps, read by INFO and the Prometheus endpoint.
//!
//! # Cost on the request path
//! The request path never touches the `metrics` registry. Each worker owns a
//! [`WorkerStats`]: plain relaxed atomics written only by that worker's thread (a load
//! and a store, no locked instruction), indexed by command-table slot × result, plus
//! fixed latency buckets per command. A scrape ([`Metrics::render`]) sums every worker's
//! atomics, sets absolute counter and gauge values in the `metrics` registry
//! (metrics-exporter-prometheus renders them), and writes the histograms itself from the
//! fixed buckets (the exporter cannot take pre-bucketed data). `REDMUX_STATS=off` in the
//! environment turns per-request recording off; it exists to measure what recording costs.
//!
//! # Metrics
//! All names start with `redmux_`; counters end in `_total`, durations are `_seconds`;
//! labels only take bounded values (command names from the command table or `unknown`,
//! configured group names, server addresses of the topology, fixed classes and states).
//!
//! | name | type | labels |
//! | --- | --- | --- |
//! | `redmux_client_connections` | gauge | |
//! | `redmux_client_connections_accepted_total` | counter | |
//! | `redmux_clients_refused_total` | counter | (allow-list) |
//! | `redmux_auth_failures_total`, `redmux_auth_blocked_total` | counter | |
//! | `redmux_foreign_refused_total`, `redmux_output_limit_closed_total` | counter | |
//! | `redmux_config_reloads_total` | counter | |
//! | `redmux_commands_total` | counter | `command`, `result` (ok, error, proxy-refused, backend-failure) |
//! | `redmux_command_duration_seconds` | histogram | `class` |
//! | `redmux_pipeline_depth` | histogram | (requests parsed per client read) |
//! | `redmux_client_read_bytes_total`, `redmux_client_written_bytes_total` | counter | |
//! | `redmux_backend_requests_total`, `redmux_backend_errors_total` | counter | `server` |
//! | `redmux_backend_request_duration_seconds` | histogram | `server` |
//! | `redmux_backend_servers` | gauge | `group`, `role`, `state` (up, down, failed) |
//! | `redmux_group_master_known` | gauge | `group` |
//! | `redmux_failovers_total` | counter | `group` |
//! | `redmux_writes_held_total`, `redmux_writes_held`, `redmux_write_hold_longest_seconds` | counter, gauges | |
//! | `redmux_sentinel_refreshes_total`, `redmux_sentinel_refresh_failures_total` | counter | |
//! | `redmux_sentinels_connected` | gauge | |
//! | `redmux_uptime_seconds`, `redmux_build_info` | gauge | `version` (build_info) |

use crate::command::{self, CommandClass, CommandSpec};
use crate::topology::{ServerAddr, Topology};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle, PrometheusRecorder};
use parking_lot::Mutex;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::fmt::Write;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering::Relaxed};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

/// Proxy-wide counters (relaxed atomics; touched per connection or per event, not per
/// request).
#[derive(Debug, Default)]
pub struct Stats {
    pub accepted: AtomicU64,
    pub refused: AtomicU64,
    pub auth_failures: AtomicU64,
    /// AUTHs refused without a check because their address failed too often.
    pub auth_blocked: AtomicU64,
    /// Connections closed because they spoke HTTP or TLS to the plain Redis port.
    pub foreign_refused: AtomicU64,
    /// Clients dropped for going over their output buffer limit.
    pub output_limit_closed: AtomicU64,
    /// Config reloads applied.
    pub reloads: AtomicU64,
}

/// The `result` label values, indexed by [`outcome`].
pub const RESULTS: [&str; 4] = ["ok", "error", "proxy-refused", "backend-failure"];
const OK: usize = 0;
const ERROR: usize = 1;
const REFUSED: usize = 2;
const BACKEND_FAILURE: usize = 3;

/// Upper bounds of the latency buckets, in microseconds (a last `+Inf` bucket follows).
pub const LATENCY_BOUNDS_US: [u64; 16] = [
    100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000,
    1_000_000, 2_500_000, 5_000_000, 10_000_000,
];
/// Latency buckets including `+Inf`.
pub const LATENCY_SLOTS: usize = LATENCY_BOUNDS_US.len() + 1;
/// Upper bounds of the pipeline-depth buckets (requests per read); `+Inf` follows.
pub const PIPELINE_BOUNDS: [u64; 9] = [1, 2, 4, 8, 16, 32, 64, 128, 256];
const PIPELINE_SLOTS: usize = PIPELINE_BOUNDS.len() + 1;

/// Command classes of the latency histogram.
pub const CLASSES: [&str; 9] = [
    "read",
    "write",
    "blocking",
    "transaction",
    "pubsub",
    "admin",
    "local",
    "unsupported",
    "unknown",
];

/// One more than a single writer's last store: the one thread that owns a counter adds
/// without a locked instruction; other threads only read.
#[inline]
fn bump(c: &AtomicU64, n: u64) {
    c.store(c.load(Relaxed).wrapping_add(n), Relaxed);
}

#[inline]
fn latency_bucket(us: u64) -> usize {
    LATENCY_BOUNDS_US
        .iter()
        .position(|&b| us <= b)
        .unwrap_or(LATENCY_BOUNDS_US.len())
}

/// Slots of per-command counters: every command-table entry plus `unknown`.
pub fn command_slots() -> usize {
    command::all().len() + 1
}

/// The slot of a command (its table index), or the `unknown` slot.
pub fn command_slot(spec: Option<&'static CommandSpec>) -> u16 {
    let table = command::all();
    let unknown = table.len() as u16;
    let Some(spec) = spec else {
        return unknown;
    };
    let range = table.as_ptr_range();
    let ptr = spec as *const CommandSpec;
    if !range.contains(&ptr) {
        return unknown;
    }
    let offset = ptr as usize - range.start as usize;
    (offset / std::mem::size_of::<CommandSpec>()) as u16
}

/// The label of a command slot.
pub fn slot_name(slot: usize) -> &'static str {
    command::all().get(slot).map_or("unknown", |s| s.name)
}

/// The class label (index into [`CLASSES`]) of a command slot.
pub fn slot_class(slot: usize) -> usize {
    let Some(spec) = command::all().get(slot) else {
        return 8;
    };
    use crate::command::flags;
    if spec.has(flags::BLOCKING) {
        return 2;
    }
    if spec.has(flags::TRANSACTION) {
        return 3;
    }
    if spec.has(flags::PUBSUB) {
        return 4;
    }
    match spec.class {
        CommandClass::Read => 0,
        CommandClass::Write => 1,
        CommandClass::Admin => 5,
        CommandClass::Local => 6,
        CommandClass::Unsupported => 7,
    }
}

/// The result (index into [`RESULTS`]) a reply stands for. Errors the proxy makes when
/// it refuses a request count as `proxy-refused`; errors for a backend that failed or is
/// unavailable as `backend-failure`; any other error reply as `error`.
pub fn outcome(reply: &[u8]) -> usize {
    if !matches!(reply.first(), Some(b'-' | b'!')) {
        return OK;
    }
    let t = &reply[1..];
    const BACKEND: [&[u8]; 5] = [
        b"ERR redmux: server ",
        b"ERR redmux: master ",
        b"ERR redmux: no server available",
        b"ERR redmux: no master known",
        b"TRYAGAIN redmux:",
    ];
    const REFUSALS: [&[u8]; 4] = [b"NOPERM", b"NOAUTH", b"CROSSSLOT redmux", b"ERR redmux:"];
    if BACKEND.iter().any(|p| t.starts_with(p)) {
        BACKEND_FAILURE
    } else if REFUSALS.iter().any(|p| t.starts_with(p)) {
        REFUSED
    } else {
        ERROR
    }
}

thread_local! {
    /// The time of the backend read whose replies are being handed out now.
    static BATCH_TIME: std::cell::Cell<Option<Instant>> = const { std::cell::Cell::new(None) };
}

/// Now, as far as latency counting needs: the time of the current backend read while its
/// replies are handed out (one clock read per read, not per reply), else the clock.
#[inline]
pub fn now() -> Instant {
    BATCH_TIME.with(|t| t.get()).unwrap_or_else(Instant::now)
}

/// Sets [`now`] for the replies of one backend read; cleared when dropped. Hold it only
/// across code that does not await.
pub struct BatchClock(());

impl BatchClock {
    pub fn start() -> BatchClock {
        BATCH_TIME.with(|t| t.set(Some(Instant::now())));
        BatchClock(())
    }
}

impl Drop for BatchClock {
    fn drop(&mut self) {
        BATCH_TIME.with(|t| t.set(None));
    }
}

/// A request being timed: its command slot and when it was read.
#[derive(Clone, Copy, Debug)]
pub struct Meter {
    slot: u16,
    start: Instant,
}

/// One worker's counters. Written only by the worker's thread; read by scrapes and INFO.
#[derive(Debug)]
pub struct WorkerStats {
    enabled: bool,
    /// slot × result.
    commands: Box<[AtomicU64]>,
    /// slot × latency bucket.
    latency: Box<[AtomicU64]>,
    /// slot: summed latency in nanoseconds.
    latency_ns: Box<[AtomicU64]>,
    pipeline: [AtomicU64; PIPELINE_SLOTS],
    pipeline_sum: AtomicU64,
    bytes_in: AtomicU64,
    bytes_out: AtomicU64,
    /// Copied from the worker's hold queue once a second.
    pub held_total: AtomicU64,
    pub held_now: AtomicU64,
    pub longest_hold_us: AtomicU64,
    servers: Mutex<Vec<(ServerAddr, Arc<ServerStats>)>>,
}

fn zeroed(n: usize) -> Box<[AtomicU64]> {
    (0..n).map(|_| AtomicU64::new(0)).collect()
}

impl WorkerStats {
    /// Empty counters; `enabled` false records nothing per request.
    pub fn new(enabled: bool) -> WorkerStats {
        let slots = command_slots();
        WorkerStats {
            enabled,
            commands: zeroed(slots * RESULTS.len()),
            latency: zeroed(slots * LATENCY_SLOTS),
            latency_ns: zeroed(slots),
            pipeline: Default::default(),
            pipeline_sum: AtomicU64::new(0),
            bytes_in: AtomicU64::new(0),
            bytes_out: AtomicU64::new(0),
            held_total: AtomicU64::new(0),
            held_now: AtomicU64::new(0),
            longest_hold_us: AtomicU64::new(0),
            servers: Mutex::new(Vec::new()),
        }
    }

    /// Starts timing a request of command `slot` read at `start`; `None` when recording
    /// is off.
    #[inline]
    pub fn begin(&self, slot: u16, start: Instant) -> Option<Meter> {
        self.enabled.then_some(Meter { slot, start })
    }

    /// Counts a request's reply and its latency since [`WorkerStats::begin`].
    #[inline]
    pub fn finish(&self, meter: Meter, reply: &[u8]) {
        let slot = meter.slot as usize;
        let result = outcome(reply);
        bump(&self.commands[slot * RESULTS.len() + result], 1);
        let ns = now().saturating_duration_since(meter.start).as_nanos() as u64;
        bump(
            &self.latency[slot * LATENCY_SLOTS + latency_bucket(ns / 1000)],
            1,
        );
        bump(&self.latency_ns[slot], ns);
    }

    /// Counts a request that got no reply slot of its own (commands while subscribed).
    pub fn finish_unanswered(&self, meter: Meter) {
        bump(&self.commands[meter.slot as usize * RESULTS.len() + OK], 1);
    }

    /// Requests parsed from one client read.
    #[inline]
    pub fn observe_pipeline(&self, depth: u64) {
        if !self.enabled || depth == 0 {
            return;
        }
        let i = PIPELINE_BOUNDS
            .iter()
            .position(|&b| depth <= b)
            .unwrap_or(PIPELINE_BOUNDS.len());
        bump(&self.pipeline[i], 1);
        bump(&self.pipeline_sum, depth);
    }

    #[inline]
    pub fn add_bytes_in(&self, n: usize) {
        bump(&self.bytes_in, n as u64);
    }

    #[inline]
    pub fn add_bytes_out(&self, n: usize) {
        bump(&self.bytes_out, n as u64);
    }

    /// This worker's counters for one server (made and registered on first use).
    pub fn server(&self, addr: &ServerAddr) -> Arc<ServerStats> {
        let mut servers = self.servers.lock();
        if let Some((_, s)) = servers.iter().find(|(a, _)| a == addr) {
            return s.clone();
        }
        let s = Arc::new(ServerStats::default());
        servers.push((addr.clone(), s.clone()));
        s
    }
}

/// Server states of `redmux_backend_servers`.
pub const STATES: [&str; 3] = ["up", "down", "failed"];
const STATE_UP: u8 = 0;
const STATE_FAILED: u8 = 2;

/// One worker's counters for one backend server.
#[derive(Debug, Default)]
pub struct ServerStats {
    requests: AtomicU64,
    errors: AtomicU64,
    latency: [AtomicU64; LATENCY_SLOTS],
    latency_ns: AtomicU64,
    /// [`STATES`] index of what the last exchange showed.
    state: AtomicU8,
    /// Marked down until this many milliseconds after [`process_epoch`].
    down_until_ms: AtomicU64,
    contacted: AtomicBool,
}

/// The instant the process' metrics clock counts from.
pub fn process_epoch() -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

fn now_ms() -> u64 {
    process_epoch().elapsed().as_millis() as u64
}

impl ServerStats {
    /// A reply came back for a request queued at `sent`.
    #[inline]
    pub fn observe(&self, sent: Instant) {
        let ns = now().saturating_duration_since(sent).as_nanos() as u64;
        bump(&self.requests, 1);
        bump(&self.latency[latency_bucket(ns / 1000)], 1);
        bump(&self.latency_ns, ns);
    }

    /// `n` requests failed with their connection.
    pub fn add_errors(&self, n: usize) {
        bump(&self.errors, n as u64);
    }

    /// The server answered again after failures.
    pub fn set_up(&self) {
        self.contacted.store(true, Relaxed);
        self.state.store(STATE_UP, Relaxed);
        self.down_until_ms.store(0, Relaxed);
    }

    /// A connection or request failed; `down_for` is set when the server was marked down.
    pub fn set_failed(&self, down_for: Option<Duration>) {
        self.contacted.store(true, Relaxed);
        self.state.store(STATE_FAILED, Relaxed);
        if let Some(d) = down_for {
            self.down_until_ms
                .store(now_ms() + d.as_millis() as u64, Relaxed);
        }
    }

    /// 0 up, 1 down (marked down and not yet retried), 2 failed (last exchange failed).
    fn state(&self) -> u8 {
        if self.down_until_ms.load(Relaxed) > now_ms() {
            1
        } else {
            self.state.load(Relaxed)
        }
    }
}

/// What discovery counts (written by the discovery thread).
#[derive(Debug)]
pub struct DiscoveryStats {
    pub refreshes: AtomicU64,
    pub refresh_failures: AtomicU64,
    pub sentinels_connected: AtomicU64,
    /// Per configured group: master changes from one known master to another.
    failovers: Box<[AtomicU64]>,
}

impl DiscoveryStats {
    pub fn new(groups: usize) -> DiscoveryStats {
        DiscoveryStats {
            refreshes: AtomicU64::new(0),
            refresh_failures: AtomicU64::new(0),
            sentinels_connected: AtomicU64::new(0),
            failovers: zeroed(groups),
        }
    }

    /// Counts a refresh (`answered`: at least one Sentinel answered).
    pub fn refreshed(&self, answered: bool) {
        self.refreshes.fetch_add(1, Relaxed);
        if !answered {
            self.refresh_failures.fetch_add(1, Relaxed);
        }
    }

    /// Counts the failovers between two snapshots: a known master replaced by another.
    pub fn observe(&self, old: &Topology, new: &Topology) {
        for (i, (o, n)) in old.groups.iter().zip(&new.groups).enumerate() {
            if o.master.is_some() && n.master.is_some() && o.master != n.master {
                if let Some(c) = self.failovers.get(i) {
                    c.fetch_add(1, Relaxed);
                }
            }
        }
    }

    pub fn sentinel_up(&self) {
        self.sentinels_connected.fetch_add(1, Relaxed);
    }

    pub fn sentinel_lost(&self) {
        let _ = self
            .sentinels_connected
            .fetch_update(Relaxed, Relaxed, |v| Some(v.saturating_sub(1)));
    }

    /// Failovers seen for group `index`.
    pub fn failovers(&self, index: usize) -> u64 {
        self.failovers.get(index).map_or(0, |c| c.load(Relaxed))
    }
}

/// Summed counters of one server over all workers.
#[derive(Clone, Debug, Default)]
pub struct ServerTotals {
    pub requests: u64,
    pub errors: u64,
    pub latency: [u64; LATENCY_SLOTS],
    pub latency_ns: u64,
    /// Index into [`STATES`]: down or failed if any worker saw it so.
    pub state: usize,
    pub contacted: bool,
}

/// Every worker's counters summed: what INFO and a scrape show.
#[derive(Clone, Debug, Default)]
pub struct Totals {
    pub commands: Vec<u64>,
    pub latency: Vec<u64>,
    pub latency_ns: Vec<u64>,
    pub pipeline: [u64; PIPELINE_SLOTS],
    pub pipeline_sum: u64,
    pub bytes_in: u64,
    pub bytes_out: u64,
    pub held_total: u64,
    pub held_now: u64,
    pub longest_hold_us: u64,
    pub accepted: u64,
    pub refused: u64,
    pub auth_failures: u64,
    pub servers: BTreeMap<String, ServerTotals>,
}

fn add_into(dst: &mut Vec<u64>, src: &[AtomicU64]) {
    dst.resize(src.len(), 0);
    for (d, s) in dst.iter_mut().zip(src) {
        *d += s.load(Relaxed);
    }
}

fn sub_vec(a: &mut [u64], b: &[u64]) {
    for (x, y) in a.iter_mut().zip(b) {
        *x = x.saturating_sub(*y);
    }
}

impl Totals {
    /// Commands of `slot` with `result`.
    pub fn command(&self, slot: usize, result: usize) -> u64 {
        self.commands
            .get(slot * RESULTS.len() + result)
            .copied()
            .unwrap_or(0)
    }

    /// Every command counted, any result.
    pub fn commands_processed(&self) -> u64 {
        self.commands.iter().sum()
    }

    /// Latency buckets of one slot (non-cumulative).
    pub fn slot_latency(&self, slot: usize) -> &[u64] {
        let start = slot * LATENCY_SLOTS;
        self.latency
            .get(start..start + LATENCY_SLOTS)
            .unwrap_or(&[])
    }

    /// The counters minus a baseline taken earlier (`CONFIG RESETSTAT`).
    pub fn since(mut self, base: &Totals) -> Totals {
        sub_vec(&mut self.commands, &base.commands);
        sub_vec(&mut self.latency, &base.latency);
        sub_vec(&mut self.latency_ns, &base.latency_ns);
        sub_vec(&mut self.pipeline, &base.pipeline);
        let sub = |a: &mut u64, b: u64| *a = a.saturating_sub(b);
        sub(&mut self.pipeline_sum, base.pipeline_sum);
        sub(&mut self.bytes_in, base.bytes_in);
        sub(&mut self.bytes_out, base.bytes_out);
        sub(&mut self.held_total, base.held_total);
        sub(&mut self.accepted, base.accepted);
        sub(&mut self.refused, base.refused);
        sub(&mut self.auth_failures, base.auth_failures);
        if base.longest_hold_us > 0 {
            self.longest_hold_us = 0;
        }
        for (addr, s) in self.servers.iter_mut() {
            if let Some(b) = base.servers.get(addr) {
                s.requests = s.requests.saturating_sub(b.requests);
                s.errors = s.errors.saturating_sub(b.errors);
                s.latency_ns = s.latency_ns.saturating_sub(b.latency_ns);
                sub_vec(&mut s.latency, &b.latency);
            }
        }
        self
    }
}

/// The proxy's metrics: every worker's counters, the registry a scrape publishes into,
/// and what INFO needs besides (baseline, ops/sec samples, readiness cache).
pub struct Metrics {
    enabled: bool,
    recorder: PrometheusRecorder,
    handle: PrometheusHandle,
    workers: Mutex<Vec<Arc<WorkerStats>>>,
    pub discovery: Arc<DiscoveryStats>,
    baseline: Mutex<Option<Totals>>,
    /// (when, commands processed) once a second, newest last.
    samples: Mutex<VecDeque<(Instant, u64)>>,
    reachable: Mutex<HashMap<String, (Instant, bool)>>,
    /// Serializes scrapes (publish then render must not interleave).
    scrape: Mutex<()>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics")
            .field("enabled", &self.enabled)
            .finish()
    }
}

impl Metrics {
    /// Metrics for `groups` configured groups. Recording is on unless the environment
    /// has `REDMUX_STATS=off`.
    pub fn new(groups: usize) -> Metrics {
        let enabled = std::env::var("REDMUX_STATS").map_or(true, |v| v != "off");
        let recorder = PrometheusBuilder::new().build_recorder();
        let handle = recorder.handle();
        metrics::with_local_recorder(&recorder, describe);
        process_epoch();
        Metrics {
            enabled,
            recorder,
            handle,
            workers: Mutex::new(Vec::new()),
            discovery: Arc::new(DiscoveryStats::new(groups)),
            baseline: Mutex::new(None),
            samples: Mutex::new(VecDeque::new()),
            reachable: Mutex::new(HashMap::new()),
            scrape: Mutex::new(()),
        }
    }

    /// A new worker's counters, registered for scrapes.
    pub fn register_worker(&self) -> Arc<WorkerStats> {
        let stats = Arc::new(WorkerStats::new(self.enabled));
        self.workers.lock().push(stats.clone());
        stats
    }

    /// Every worker's counters summed (not counting `CONFIG RESETSTAT`).
    pub fn totals(&self, stats: &Stats) -> Totals {
        let mut t = Totals {
            accepted: stats.accepted.load(Relaxed),
            refused: stats.refused.load(Relaxed),
            auth_failures: stats.auth_failures.load(Relaxed),
            ..Totals::default()
        };
        for w in self.workers.lock().iter() {
            add_into(&mut t.commands, &w.commands);
            add_into(&mut t.latency, &w.latency);
            add_into(&mut t.latency_ns, &w.latency_ns);
            for (d, s) in t.pipeline.iter_mut().zip(&w.pipeline) {
                *d += s.load(Relaxed);
            }
            t.pipeline_sum += w.pipeline_sum.load(Relaxed);
            t.bytes_in += w.bytes_in.load(Relaxed);
            t.bytes_out += w.bytes_out.load(Relaxed);
            t.held_total += w.held_total.load(Relaxed);
            t.held_now += w.held_now.load(Relaxed);
            t.longest_hold_us = t.longest_hold_us.max(w.longest_hold_us.load(Relaxed));
            for (addr, s) in w.servers.lock().iter() {
                let e = t.servers.entry(addr.to_string()).or_default();
                e.requests += s.requests.load(Relaxed);
                e.errors += s.errors.load(Relaxed);
                e.latency_ns += s.latency_ns.load(Relaxed);
                for (d, b) in e.latency.iter_mut().zip(&s.latency) {
                    *d += b.load(Relaxed);
                }
                let contacted = s.contacted.load(Relaxed);
                e.contacted |= contacted;
                let state = s.state() as usize;
                if contacted && (state == 1 || (state == 2 && e.state != 1)) {
                    e.state = state;
                }
            }
        }
        t
    }

    /// The counters as INFO shows them: since the last `CONFIG RESETSTAT`.
    pub fn info_totals(&self, stats: &Stats) -> Totals {
        let t = self.totals(stats);
        match &*self.baseline.lock() {
            Some(base) => t.since(base),
            None => t,
        }
    }

    /// `CONFIG RESETSTAT`: INFO counts from now on. Prometheus counters stay monotonic.
    pub fn reset_stats(&self, stats: &Stats) {
        let t = self.totals(stats);
        *self.baseline.lock() = Some(t);
        self.samples.lock().clear();
    }

    /// Takes an ops/sec sample (called once a second).
    pub fn sample(&self, stats: &Stats) {
        let total = self.info_totals(stats).commands_processed();
        let mut s = self.samples.lock();
        s.push_back((Instant::now(), total));
        while s.len() > 6 {
            s.pop_front();
        }
    }

    /// Commands per second over the last few samples.
    pub fn ops_per_sec(&self) -> u64 {
        let s = self.samples.lock();
        match (s.front(), s.back()) {
            (Some(a), Some(b)) if b.0 > a.0 => {
                let secs = (b.0 - a.0).as_secs_f64();
                (b.1.saturating_sub(a.1) as f64 / secs).round() as u64
            }
            _ => 0,
        }
    }

    /// Is `addr` reachable? A TCP connect with a short timeout, cached for a second.
    pub async fn reachable(&self, addr: &str) -> bool {
        if let Some((at, ok)) = self.reachable.lock().get(addr) {
            if at.elapsed() < Duration::from_secs(1) {
                return *ok;
            }
        }
        let ok = tokio::time::timeout(
            Duration::from_millis(300),
            tokio::net::TcpStream::connect(addr),
        )
        .await
        .is_ok_and(|r| r.is_ok());
        self.reachable
            .lock()
            .insert(addr.to_string(), (Instant::now(), ok));
        ok
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self, proxy: &crate::worker::Proxy) -> String {
        let _one = self.scrape.lock();
        let t = self.totals(&proxy.stats);
        let topo = proxy.topology.load();
        metrics::with_local_recorder(&self.recorder, || self.publish(proxy, &t, &topo));
        let mut out = self.handle.render();
        write_histograms(&mut out, &t);
        out
    }

    fn publish(&self, proxy: &crate::worker::Proxy, t: &Totals, topo: &Topology) {
        use metrics::{counter, gauge};
        gauge!("redmux_client_connections").set(proxy.clients.load(Relaxed) as f64);
        counter!("redmux_client_connections_accepted_total").absolute(t.accepted);
        counter!("redmux_clients_refused_total").absolute(t.refused);
        counter!("redmux_auth_failures_total").absolute(t.auth_failures);
        let events = &proxy.stats;
        counter!("redmux_auth_blocked_total").absolute(events.auth_blocked.load(Relaxed));
        counter!("redmux_foreign_refused_total").absolute(events.foreign_refused.load(Relaxed));
        counter!("redmux_output_limit_closed_total")
            .absolute(events.output_limit_closed.load(Relaxed));
        counter!("redmux_config_reloads_total").absolute(events.reloads.load(Relaxed));
        counter!("redmux_client_read_bytes_total").absolute(t.bytes_in);
        counter!("redmux_client_written_bytes_total").absolute(t.bytes_out);
        for slot in 0..command_slots() {
            for (r, result) in RESULTS.iter().enumerate() {
                let v = t.command(slot, r);
                if v > 0 {
                    let labels = [("command", slot_name(slot)), ("result", *result)];
                    counter!("redmux_commands_total", &labels).absolute(v);
                }
            }
        }
        for (addr, s) in &t.servers {
            let labels = [("server", addr.clone())];
            counter!("redmux_backend_requests_total", &labels).absolute(s.requests);
            counter!("redmux_backend_errors_total", &labels).absolute(s.errors);
        }
        self.publish_topology(t, topo);
        let d = &self.discovery;
        counter!("redmux_sentinel_refreshes_total").absolute(d.refreshes.load(Relaxed));
        counter!("redmux_sentinel_refresh_failures_total")
            .absolute(d.refresh_failures.load(Relaxed));
        gauge!("redmux_sentinels_connected").set(d.sentinels_connected.load(Relaxed) as f64);
        counter!("redmux_writes_held_total").absolute(t.held_total);
        gauge!("redmux_writes_held").set(t.held_now as f64);
        gauge!("redmux_write_hold_longest_seconds").set(t.longest_hold_us as f64 / 1e6);
        gauge!("redmux_uptime_seconds").set(proxy.started.elapsed().as_secs_f64());
        gauge!("redmux_build_info", "version" => env!("CARGO_PKG_VERSION")).set(1.0);
    }

    /// Per group: master known, failovers, and servers by role and state (every
    /// combination is set, so a server that changes state leaves no stale series).
    fn publish_topology(&self, t: &Totals, topo: &Topology) {
        use metrics::{counter, gauge};
        for (gi, g) in topo.groups.iter().enumerate() {
            let group = g.name.clone();
            gauge!("redmux_group_master_known", "group" => group.clone())
                .set(if g.master.is_some() { 1.0 } else { 0.0 });
            counter!("redmux_failovers_total", "group" => group.clone())
                .absolute(self.discovery.failovers(gi));
            let mut counts = [[0u32; 3]; 3];
            let servers = g
                .master
                .iter()
                .map(|m| (m, 0usize))
                .chain(g.replicas.iter().map(|r| {
                    let role = match r.role {
                        crate::topology::Role::StaticReplica => 1,
                        _ => 2,
                    };
                    (&r.addr, role)
                }));
            for (addr, role) in servers {
                let state = t.servers.get(&**addr).map_or(0, |s| s.state);
                counts[role][state] += 1;
            }
            for (role, per_state) in ["master", "static_replica", "dynamic_replica"]
                .iter()
                .zip(counts)
            {
                for (state, n) in STATES.iter().zip(per_state) {
                    let labels = [
                        ("group", group.clone()),
                        ("role", role.to_string()),
                        ("state", state.to_string()),
                    ];
                    gauge!("redmux_backend_servers", &labels).set(n as f64);
                }
            }
        }
    }
}

/// Help text of every metric the registry renders.
fn describe() {
    use metrics::{describe_counter, describe_gauge};
    describe_gauge!("redmux_client_connections", "Client connections open now.");
    describe_counter!(
        "redmux_client_connections_accepted_total",
        "Client connections accepted."
    );
    describe_counter!(
        "redmux_clients_refused_total",
        "Client connections refused by the allow list."
    );
    describe_counter!(
        "redmux_auth_failures_total",
        "AUTH/HELLO attempts with a wrong password."
    );
    describe_counter!(
        "redmux_auth_blocked_total",
        "AUTHs refused unchecked because their address failed too often."
    );
    describe_counter!(
        "redmux_foreign_refused_total",
        "Connections closed for speaking HTTP or TLS to the plain Redis port."
    );
    describe_counter!(
        "redmux_output_limit_closed_total",
        "Clients dropped for going over their output buffer limit."
    );
    describe_counter!("redmux_config_reloads_total", "Config reloads applied.");
    describe_counter!("redmux_client_read_bytes_total", "Bytes read from clients.");
    describe_counter!(
        "redmux_client_written_bytes_total",
        "Bytes of replies written to clients."
    );
    describe_counter!(
        "redmux_commands_total",
        "Commands by command and result (ok, error, proxy-refused, backend-failure); unknown commands count as command=\"unknown\"."
    );
    describe_counter!(
        "redmux_backend_requests_total",
        "Requests answered by a backend server."
    );
    describe_counter!(
        "redmux_backend_errors_total",
        "Requests that failed with their backend connection (timeout, reset, refused)."
    );
    describe_gauge!(
        "redmux_backend_servers",
        "Backend servers by group, role and state (up, down = marked down after server_failure_limit failures, failed = last exchange failed)."
    );
    describe_gauge!(
        "redmux_group_master_known",
        "1 when discovery knows the group's master."
    );
    describe_counter!(
        "redmux_failovers_total",
        "Master changes observed per group."
    );
    describe_counter!(
        "redmux_sentinel_refreshes_total",
        "Topology refreshes from the Sentinels."
    );
    describe_counter!(
        "redmux_sentinel_refresh_failures_total",
        "Topology refreshes no Sentinel answered."
    );
    describe_gauge!(
        "redmux_sentinels_connected",
        "Sentinels whose event subscription is connected."
    );
    describe_counter!(
        "redmux_writes_held_total",
        "Writes held during failovers or re-sent after -READONLY/-LOADING."
    );
    describe_gauge!("redmux_writes_held", "Writes held now.");
    describe_gauge!(
        "redmux_write_hold_longest_seconds",
        "Longest time a held write waited."
    );
    describe_gauge!("redmux_uptime_seconds", "Seconds since the proxy started.");
    describe_gauge!(
        "redmux_build_info",
        "Always 1; the version label tells the redmux version."
    );
}

fn escape_label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// One histogram series: its labels (`name="value"` pairs, already escaped), its
/// non-cumulative bucket counts, and its sum.
struct Series<'a> {
    labels: String,
    buckets: &'a [u64],
    sum: f64,
}

fn write_histogram(out: &mut String, name: &str, help: &str, bounds: &[f64], series: &[Series]) {
    let _ = write!(out, "# HELP {name} {help}\n# TYPE {name} histogram\n");
    for s in series {
        let sep = if s.labels.is_empty() { "" } else { "," };
        let mut cumulative = 0;
        for (i, n) in s.buckets.iter().enumerate() {
            cumulative += n;
            let le = bounds
                .get(i)
                .map_or_else(|| "+Inf".to_string(), |b| format!("{b}"));
            let _ = writeln!(
                out,
                "{name}_bucket{{{}{sep}le=\"{le}\"}} {cumulative}",
                s.labels
            );
        }
        let braces = if s.labels.is_empty() {
            String::new()
        } else {
            format!("{{{}}}", s.labels)
        };
        let _ = writeln!(out, "{name}_sum{braces} {}", s.sum);
        let _ = writeln!(out, "{name}_count{braces} {cumulative}");
    }
    out.push('\n');
}

fn write_histograms(out: &mut String, t: &Totals) {
    let secs: Vec<f64> = LATENCY_BOUNDS_US
        .iter()
        .map(|&us| us as f64 / 1e6)
        .collect();
    let mut by_class = vec![[0u64; LATENCY_SLOTS]; CLASSES.len()];
    let mut class_ns = vec![0u64; CLASSES.len()];
    for slot in 0..command_slots() {
        let c = slot_class(slot);
        for (d, s) in by_class[c].iter_mut().zip(t.slot_latency(slot)) {
            *d += s;
        }
        class_ns[c] += t.latency_ns.get(slot).copied().unwrap_or(0);
    }
    let series: Vec<Series> = CLASSES
        .iter()
        .enumerate()
        .map(|(i, c)| Series {
            labels: format!("class=\"{c}\""),
            buckets: &by_class[i],
            sum: class_ns[i] as f64 / 1e9,
        })
        .collect();
    write_histogram(
        out,
        "redmux_command_duration_seconds",
        "Time from parsing a request to its reply being ready, by command class, as the client sees it.",
        &secs,
        &series,
    );
    let series: Vec<Series> = t
        .servers
        .iter()
        .map(|(addr, s)| Series {
            labels: format!("server=\"{}\"", escape_label(addr)),
            buckets: &s.latency,
            sum: s.latency_ns as f64 / 1e9,
        })
        .collect();
    write_histogram(
        out,
        "redmux_backend_request_duration_seconds",
        "Time from queueing a request on a backend link to its reply, per server.",
        &secs,
        &series,
    );
    let depth: Vec<f64> = PIPELINE_BOUNDS.iter().map(|&b| b as f64).collect();
    write_histogram(
        out,
        "redmux_pipeline_depth",
        "Requests parsed from one read of a client connection.",
        &depth,
        &[Series {
            labels: String::new(),
            buckets: &t.pipeline,
            sum: t.pipeline_sum as f64,
        }],
    );
}

/// Copies a worker's hold-queue figures into its counters once a second (they live in
/// `Cell`s the worker alone can read).
pub async fn publish_worker(ctx: std::rc::Rc<crate::worker::WorkerCtx>) {
    loop {
        let h = &ctx.hold;
        ctx.stats.held_total.store(h.held_total.get(), Relaxed);
        ctx.stats.held_now.store(h.len() as u64, Relaxed);
        ctx.stats
            .longest_hold_us
            .store(h.longest_hold.get().as_micros() as u64, Relaxed);
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// Samples ops/sec once a second for INFO; runs for the process' lifetime.
pub async fn sampler(proxy: Arc<crate::worker::Proxy>) {
    loop {
        proxy.metrics.sample(&proxy.stats);
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcomes() {
        assert_eq!(outcome(b"+OK\r\n"), OK);
        assert_eq!(outcome(b"$1\r\nx\r\n"), OK);
        assert_eq!(outcome(b"-ERR unknown command 'x'\r\n"), ERROR);
        assert_eq!(outcome(b"-WRONGTYPE x\r\n"), ERROR);
        assert_eq!(outcome(b"-NOPERM x\r\n"), REFUSED);
        assert_eq!(outcome(b"-ERR redmux: 'x' is not supported\r\n"), REFUSED);
        assert_eq!(
            outcome(b"-ERR redmux: server 1:2 timed out\r\n"),
            BACKEND_FAILURE
        );
        assert_eq!(outcome(b"-TRYAGAIN redmux: retry\r\n"), BACKEND_FAILURE);
    }

    #[test]
    fn slots_and_buckets() {
        let get = command::lookup(b"get");
        let slot = command_slot(get) as usize;
        assert_eq!(slot_name(slot), "get");
        assert_eq!(CLASSES[slot_class(slot)], "read");
        assert_eq!(slot_name(command_slot(None) as usize), "unknown");
        let copy: CommandSpec = *get.unwrap();
        assert_eq!(
            slot_name(command_slot(Some(Box::leak(Box::new(copy)))) as usize),
            "unknown"
        );
        assert_eq!(latency_bucket(0), 0);
        assert_eq!(latency_bucket(100), 0);
        assert_eq!(latency_bucket(101), 1);
        assert_eq!(latency_bucket(u64::MAX), LATENCY_SLOTS - 1);
    }

    #[test]
    fn worker_counts_and_resets() {
        let m = Metrics::new(1);
        let w = m.register_worker();
        let slot = command_slot(command::lookup(b"set"));
        for _ in 0..3 {
            let meter = w.begin(slot, Instant::now()).unwrap();
            w.finish(meter, b"+OK\r\n");
        }
        w.finish(w.begin(slot, Instant::now()).unwrap(), b"-ERR x\r\n");
        let stats = Stats::default();
        let t = m.totals(&stats);
        assert_eq!(t.command(slot as usize, OK), 3);
        assert_eq!(t.command(slot as usize, ERROR), 1);
        assert_eq!(t.slot_latency(slot as usize).iter().sum::<u64>(), 4);
        m.reset_stats(&stats);
        assert_eq!(m.info_totals(&stats).commands_processed(), 0);
        assert_eq!(m.totals(&stats).commands_processed(), 4);
    }
}
