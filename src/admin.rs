//! INFO, the proxy's own admin commands, and the HTTP endpoints for Prometheus and
//! Kubernetes probes.
//!
//! # INFO
//! `INFO [section ...]` answers a Redis-shaped text. Sections (case-insensitive):
//! `server`, `proxy`, `clients`, `persistence` (`loading:0`, for ioredis' ready check),
//! `stats`, `replication` (`role:master`), `servers` (every group and server with its
//! role, state, requests, errors and latency), `keyspace` (each group master's
//! `INFO keyspace`, summed per db), `commandstats` and `latency` (per-command latency
//! buckets, like predixy's LatencyMonitor). `default` (no argument) is every section but
//! `commandstats` and `latency`; `all` and `everything` are every section.
//!
//! # CONFIG (admin mode only)
//! `CONFIG GET pattern [pattern ...]`, `CONFIG SET name value [name value ...]`,
//! `CONFIG RESETSTAT` are answered by the proxy, about the proxy (never forwarded);
//! `CONFIG REWRITE` is refused. Names are the TOML config keys (a `-` may stand for a
//! `_`); pool keys carry no `sentinel_pool.` prefix:
//!
//! | name | CONFIG SET |
//! | --- | --- |
//! | `master_read_priority`, `static_replica_read_priority`, `dynamic_replica_read_priority` | yes (integer) |
//! | `log_level` | yes (a tracing filter: `info`, `redmux=debug,warn`, ...) |
//! | `bind`, `worker_threads`, `log_format`, `allow`, `max_clients`, `client_timeout`, `client_output_buffer_limit_normal`, `client_output_buffer_limit_pubsub`, `auth_failure_limit`, `proxy_protocol`, `tls_cert`, `tls`, `sentinel_tls`, `proto_max_bulk_len`, `client_query_buffer_limit`, `metrics_bind`, `databases`, `hash`, `hash_tag`, `distribution`, `refresh_interval`, `server_timeout`, `server_failure_limit`, `server_retry_timeout`, `keep_alive`, `user`, `sentinel_user`, `sentinels`, `groups` | no (read-only) |
//! | `password`, `sentinel_password` | no; shown as `(hidden)` when set |
//!
//! `CONFIG RESETSTAT` zeroes what INFO counts (commands, latency, bytes, connections);
//! the Prometheus counters stay monotonic, as Prometheus expects.

use crate::backend::Waiter;
use crate::session::{ClientShared, Drained};
use crate::worker::{Proxy, WorkerCtx};
use std::collections::BTreeMap;
use std::fmt::Write;
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

/// How long INFO waits for one group master's `INFO keyspace`.
const KEYSPACE_TIMEOUT: Duration = Duration::from_secs(1);

const DEFAULT_SECTIONS: [&str; 8] = [
    "server",
    "proxy",
    "clients",
    "persistence",
    "stats",
    "replication",
    "servers",
    "keyspace",
];
const EXTRA_SECTIONS: [&str; 2] = ["commandstats", "latency"];

/// The sections `INFO args...` asks for, in output order.
fn wanted_sections(args: &[String]) -> Vec<&'static str> {
    let all = DEFAULT_SECTIONS.iter().chain(&EXTRA_SECTIONS);
    if args.is_empty() {
        return DEFAULT_SECTIONS.to_vec();
    }
    let lower: Vec<String> = args.iter().map(|a| a.to_ascii_lowercase()).collect();
    let has = |s: &str| lower.iter().any(|a| a == s);
    if has("all") || has("everything") {
        return all.copied().collect();
    }
    all.copied()
        .filter(|s| has(s) || (has("default") && DEFAULT_SECTIONS.contains(s)))
        .collect()
}

/// The INFO text for the sections `args` names (none: the default ones).
pub async fn info(ctx: &WorkerCtx, args: &[String]) -> String {
    let proxy = &ctx.proxy;
    let t = proxy.metrics.info_totals(&proxy.stats);
    let mut out = String::new();
    for section in wanted_sections(args) {
        match section {
            "server" => server_section(&mut out, proxy),
            "proxy" => proxy_section(&mut out, proxy, &t),
            "clients" => clients_section(&mut out, proxy),
            "persistence" => out.push_str(
                "# Persistence\r\nloading:0\r\nasync_loading:0\r\nrdb_bgsave_in_progress:0\r\naof_enabled:0\r\n",
            ),
            "stats" => stats_section(&mut out, proxy, &t),
            "replication" => replication_section(&mut out, proxy),
            "servers" => servers_section(&mut out, proxy, &t),
            "keyspace" => keyspace_section(&mut out, ctx).await,
            "commandstats" => commandstats_section(&mut out, &t),
            _ => latency_section(&mut out, &t),
        }
        out.push_str("\r\n");
    }
    if out.ends_with("\r\n\r\n") {
        out.truncate(out.len() - 2);
    }
    out
}

fn server_section(out: &mut String, proxy: &Proxy) {
    let up = proxy.started.elapsed().as_secs();
    let _ = write!(
        out,
        "# Server\r\nredis_version:{}\r\nredmux_version:{}\r\nredis_mode:standalone\r\nos:{} {}\r\narch_bits:{}\r\nprocess_id:{}\r\ntcp_port:{}\r\nuptime_in_seconds:{up}\r\nuptime_in_days:{}\r\nworker_threads:{}\r\n",
        crate::command::REDIS_VERSION,
        env!("CARGO_PKG_VERSION"),
        std::env::consts::OS,
        std::env::consts::ARCH,
        usize::BITS,
        std::process::id(),
        proxy.config.bind.port(),
        up / 86400,
        proxy.config.worker_threads,
    );
}

fn proxy_section(out: &mut String, proxy: &Proxy, t: &crate::metrics::Totals) {
    let topo = proxy.topology.load();
    let _ = write!(
        out,
        "# Proxy\r\nproxy_name:redmux\r\nproxy_version:{}\r\nproxy_uptime_in_seconds:{}\r\nproxy_threads:{}\r\nproxy_clients:{}\r\nproxy_commands_processed:{}\r\nproxy_ops_per_sec:{}\r\nproxy_groups:{}\r\nproxy_groups_with_master:{}\r\n",
        env!("CARGO_PKG_VERSION"),
        proxy.started.elapsed().as_secs(),
        proxy.config.worker_threads,
        proxy.clients.load(Ordering::Relaxed),
        t.commands_processed(),
        proxy.metrics.ops_per_sec(),
        topo.groups.len(),
        topo.groups.iter().filter(|g| g.master.is_some()).count(),
    );
}

fn clients_section(out: &mut String, proxy: &Proxy) {
    let _ = write!(
        out,
        "# Clients\r\nconnected_clients:{}\r\nmaxclients:{}\r\nblocked_clients:0\r\n",
        proxy.clients.load(Ordering::Relaxed),
        proxy.config.max_clients,
    );
}

fn stats_section(out: &mut String, proxy: &Proxy, t: &crate::metrics::Totals) {
    use crate::metrics::command_slots;
    let by_result = |r: usize| (0..command_slots()).map(|s| t.command(s, r)).sum::<u64>();
    let d = &proxy.metrics.discovery;
    let failovers: u64 = (0..proxy.config.sentinel_pool.groups.len())
        .map(|g| d.failovers(g))
        .sum();
    let reads = t.pipeline.iter().sum::<u64>().max(1);
    let _ = write!(
        out,
        "# Stats\r\ntotal_connections_received:{}\r\ntotal_commands_processed:{}\r\ninstantaneous_ops_per_sec:{}\r\ntotal_net_input_bytes:{}\r\ntotal_net_output_bytes:{}\r\nrejected_connections:{}\r\nacl_access_denied_auth:{}\r\ntotal_error_replies:{}\r\nproxy_refused_commands:{}\r\nbackend_failures:{}\r\nwrites_held:{}\r\nwrites_held_now:{}\r\nlongest_hold_ms:{}\r\nsentinel_refreshes:{}\r\nsentinel_refresh_failures:{}\r\nsentinels_connected:{}\r\nfailovers:{}\r\npipeline_avg_depth:{:.2}\r\n",
        t.accepted,
        t.commands_processed(),
        proxy.metrics.ops_per_sec(),
        t.bytes_in,
        t.bytes_out,
        t.refused,
        t.auth_failures,
        by_result(1) + by_result(2) + by_result(3),
        by_result(2),
        by_result(3),
        t.held_total,
        t.held_now,
        t.longest_hold_us / 1000,
        d.refreshes.load(Ordering::Relaxed),
        d.refresh_failures.load(Ordering::Relaxed),
        d.sentinels_connected.load(Ordering::Relaxed),
        failovers,
        t.pipeline_sum as f64 / reads as f64,
    );
}

fn replication_section(out: &mut String, proxy: &Proxy) {
    let topo = proxy.topology.load();
    let state = if topo.groups.iter().any(|g| g.hold.is_some()) {
        "failover-in-progress"
    } else {
        "no-failover"
    };
    let _ = write!(
        out,
        "# Replication\r\nrole:master\r\nconnected_slaves:0\r\nmaster_failover_state:{state}\r\n"
    );
}

fn servers_section(out: &mut String, proxy: &Proxy, t: &crate::metrics::Totals) {
    let topo = proxy.topology.load();
    out.push_str("# Servers\r\n");
    let mut n = 0;
    for (gi, g) in topo.groups.iter().enumerate() {
        let _ = write!(
            out,
            "group{gi}:name={},master={},replicas={},failovers={},failover_in_progress={}\r\n",
            g.name,
            g.master.as_deref().unwrap_or("unknown"),
            g.replicas.len(),
            proxy.metrics.discovery.failovers(gi),
            u8::from(g.hold.is_some()),
        );
        let servers = g
            .master
            .iter()
            .map(|m| (m, "master"))
            .chain(g.replicas.iter().map(|r| (&r.addr, r.role.as_str())));
        for (addr, role) in servers {
            let s = t.servers.get(&**addr).cloned().unwrap_or_default();
            let avg = s.latency_ns / s.requests.max(1) / 1000;
            let _ = write!(
                out,
                "server{n}:addr={addr},group={},role={role},state={},requests={},errors={},avg_latency_usec={avg}\r\n",
                g.name,
                crate::metrics::STATES[s.state],
                s.requests,
                s.errors,
            );
            n += 1;
        }
    }
}

fn commandstats_section(out: &mut String, t: &crate::metrics::Totals) {
    out.push_str("# Commandstats\r\n");
    for slot in 0..crate::metrics::command_slots() {
        let r: Vec<u64> = (0..4).map(|i| t.command(slot, i)).collect();
        if r.iter().all(|&v| v == 0) {
            continue;
        }
        let calls = r[0] + r[1] + r[3];
        let usec = t.latency_ns.get(slot).copied().unwrap_or(0) / 1000;
        let _ = write!(
            out,
            "cmdstat_{}:calls={calls},usec={usec},usec_per_call={:.2},rejected_calls={},failed_calls={}\r\n",
            crate::metrics::slot_name(slot),
            usec as f64 / (calls + r[2]).max(1) as f64,
            r[2],
            r[1] + r[3],
        );
    }
}

/// A bucket bound as text: `100us`, `2.5ms`, `1s`.
fn bound_name(us: u64) -> String {
    if us < 1000 {
        format!("{us}us")
    } else if us < 1_000_000 {
        format!("{}ms", us as f64 / 1000.0)
    } else {
        format!("{}s", us as f64 / 1e6)
    }
}

/// One latency line: calls, mean, and cumulative `le_<bound>` counts up to the first
/// bucket that holds every call.
fn latency_line(out: &mut String, name: &str, buckets: &[u64], ns: u64) {
    let calls: u64 = buckets.iter().sum();
    if calls == 0 {
        return;
    }
    let _ = write!(
        out,
        "latency_{name}:calls={calls},usec_per_call={:.2}",
        ns as f64 / 1000.0 / calls as f64
    );
    let mut cumulative = 0;
    for (i, n) in buckets.iter().enumerate() {
        cumulative += n;
        let le = crate::metrics::LATENCY_BOUNDS_US
            .get(i)
            .map_or_else(|| "inf".to_string(), |&b| bound_name(b));
        let _ = write!(out, ",le_{le}={cumulative}");
        if cumulative == calls {
            break;
        }
    }
    out.push_str("\r\n");
}

fn latency_section(out: &mut String, t: &crate::metrics::Totals) {
    use crate::metrics::{command_slots, slot_class, slot_name, CLASSES, LATENCY_SLOTS};
    out.push_str("# Latency\r\n");
    let mut all = vec![0u64; LATENCY_SLOTS];
    let mut classes = vec![(vec![0u64; LATENCY_SLOTS], 0u64); CLASSES.len()];
    let mut all_ns = 0;
    for slot in 0..command_slots() {
        let ns = t.latency_ns.get(slot).copied().unwrap_or(0);
        let (c, c_ns) = &mut classes[slot_class(slot)];
        for ((a, c), b) in all.iter_mut().zip(c.iter_mut()).zip(t.slot_latency(slot)) {
            *a += b;
            *c += b;
        }
        *c_ns += ns;
        all_ns += ns;
    }
    latency_line(out, "all", &all, all_ns);
    for (i, (b, ns)) in classes.iter().enumerate() {
        latency_line(out, &format!("class_{}", CLASSES[i]), b, *ns);
    }
    for slot in 0..command_slots() {
        let ns = t.latency_ns.get(slot).copied().unwrap_or(0);
        latency_line(out, slot_name(slot), t.slot_latency(slot), ns);
    }
}

/// `# Keyspace`: every group master's `INFO keyspace`, summed per db.
async fn keyspace_section(out: &mut String, ctx: &WorkerCtx) {
    let topo = ctx.proxy.topology.load();
    let mut dbs: BTreeMap<u32, (u64, u64)> = BTreeMap::new();
    for g in &topo.groups {
        let Some(master) = &g.master else { continue };
        let Some(text) = ask_server(ctx, master, b"*2\r\n$4\r\nINFO\r\n$8\r\nkeyspace\r\n").await
        else {
            continue;
        };
        for (db, keys, expires) in parse_keyspace(&text) {
            let e = dbs.entry(db).or_default();
            e.0 += keys;
            e.1 += expires;
        }
    }
    out.push_str("# Keyspace\r\n");
    for (db, (keys, expires)) in dbs {
        let _ = write!(out, "db{db}:keys={keys},expires={expires},avg_ttl=0\r\n");
    }
}

/// `(db, keys, expires)` of every `dbN:keys=..,expires=..` line.
fn parse_keyspace(text: &str) -> Vec<(u32, u64, u64)> {
    let mut out = Vec::new();
    for line in text.lines() {
        let Some((db, fields)) = line.trim().split_once(':') else {
            continue;
        };
        let Some(Ok(db)) = db.strip_prefix("db").map(str::parse::<u32>) else {
            continue;
        };
        let field = |name: &str| {
            fields
                .split(',')
                .find_map(|kv| kv.strip_prefix(name)?.strip_prefix('=')?.parse().ok())
                .unwrap_or(0)
        };
        out.push((db, field("keys"), field("expires")));
    }
    out
}

/// Sends one request to `addr` on the worker's shared link (db 0, RESP2) and returns the
/// reply as text; `None` on an error reply or after [`KEYSPACE_TIMEOUT`].
async fn ask_server(
    ctx: &WorkerCtx,
    addr: &crate::topology::ServerAddr,
    req: &[u8],
) -> Option<String> {
    let shared = Rc::new(ClientShared::new(0));
    let seq = shared.reserve();
    let waiter = Waiter {
        client: shared.clone(),
        seq,
        part: 0,
        sent: tokio::time::Instant::now(),
        retry: None,
    };
    ctx.links.shared(addr, 0, false).send(req, waiter);
    let reply = tokio::time::timeout(KEYSPACE_TIMEOUT, async {
        let mut out = Vec::new();
        loop {
            match shared.drain_ready(&mut out, usize::MAX) {
                Drained::Wait => shared.writer_wait().await,
                _ => return out.pop(),
            }
        }
    })
    .await
    .ok()??;
    shared.close();
    match crate::protocol::Value::parse(&reply).ok()? {
        crate::protocol::Value::Error(_) => None,
        v => v.as_text(),
    }
}

/// Why the proxy is not ready: a group without a known master, or whose master does not
/// accept TCP connections (checked with a short timeout, cached for a second).
pub async fn readiness(proxy: &Proxy) -> Result<(), String> {
    let topo = proxy.topology.load();
    let mut problems = Vec::new();
    for g in &topo.groups {
        match &g.master {
            None => problems.push(format!("group {}: no master known", g.name)),
            Some(m) if !proxy.metrics.reachable(m).await => {
                problems.push(format!("group {}: master {m} unreachable", g.name))
            }
            Some(_) => {}
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("\n"))
    }
}

/// Admin commands the proxy answers itself instead of forwarding.
pub fn is_proxy_command(name: &str) -> bool {
    matches!(
        name,
        "config|get" | "config|set" | "config|resetstat" | "config|rewrite"
    )
}

/// What a proxy admin command answers.
#[derive(Debug, PartialEq)]
pub enum AdminReply {
    Ok,
    Error(String),
    /// Name/value pairs (a map in RESP3, a flat array in RESP2).
    Pairs(Vec<(String, String)>),
}

/// Runs a proxy admin command (`name` from the command table, `args` the whole request).
pub fn run_command(proxy: &Proxy, name: &str, args: &[&[u8]]) -> AdminReply {
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    match name {
        "config|get" => {
            let patterns: Vec<String> = args[2..].iter().map(|a| text(a)).collect();
            let pairs = settings(proxy)
                .into_iter()
                .filter(|(k, _)| patterns.iter().any(|p| glob_match(p, k)))
                .map(|(k, v)| (k.to_string(), v))
                .collect();
            AdminReply::Pairs(pairs)
        }
        "config|set" => {
            if args.len() % 2 != 0 {
                return AdminReply::Error(
                    "ERR wrong number of arguments for 'config|set' command".into(),
                );
            }
            for pair in args[2..].chunks(2) {
                if let Err(e) = set_one(proxy, &text(pair[0]), &text(pair[1])) {
                    return AdminReply::Error(e);
                }
            }
            AdminReply::Ok
        }
        "config|resetstat" => {
            proxy.metrics.reset_stats(&proxy.stats);
            AdminReply::Ok
        }
        _ => AdminReply::Error(
            "ERR redmux: CONFIG REWRITE is not supported; edit the config file".into(),
        ),
    }
}

fn secs(d: Duration) -> String {
    format!("{}", d.as_secs_f64())
}

fn hidden(v: &Option<String>) -> String {
    match v {
        Some(_) => "(hidden)".into(),
        None => String::new(),
    }
}

fn yes_no(on: bool) -> String {
    if on { "yes" } else { "no" }.to_string()
}

/// Every proxy setting CONFIG GET shows, passwords hidden.
fn settings(proxy: &Proxy) -> Vec<(&'static str, String)> {
    let c = &proxy.config;
    let p = &c.sentinel_pool;
    let prio = proxy.priorities();
    let opt = |v: &Option<String>| v.clone().unwrap_or_default();
    vec![
        ("bind", c.bind.to_string()),
        ("worker_threads", c.worker_threads.to_string()),
        ("log_level", current_log_level(&c.log_level)),
        ("log_format", format!("{:?}", c.log_format).to_lowercase()),
        ("allow", c.allow.join(" ")),
        ("max_clients", proxy.live.max_clients().to_string()),
        ("client_timeout", secs(proxy.live.client_timeout())),
        (
            "client_output_buffer_limit_normal",
            proxy.live.output_limit_normal().to_string(),
        ),
        (
            "client_output_buffer_limit_pubsub",
            proxy.live.output_limit_pubsub().to_string(),
        ),
        (
            "auth_failure_limit",
            proxy.live.auth_failure_limit().to_string(),
        ),
        ("proxy_protocol", yes_no(c.proxy_protocol)),
        (
            "tls_cert",
            c.tls
                .as_ref()
                .map(|t| t.cert.display().to_string())
                .unwrap_or_default(),
        ),
        ("proto_max_bulk_len", c.proto_max_bulk_len.to_string()),
        (
            "client_query_buffer_limit",
            c.client_query_buffer_limit.to_string(),
        ),
        (
            "metrics_bind",
            c.metrics_bind.map(|a| a.to_string()).unwrap_or_default(),
        ),
        ("databases", p.databases.to_string()),
        ("hash", format!("{:?}", p.hash).to_lowercase()),
        (
            "hash_tag",
            p.hash_tag
                .map(|(a, b)| format!("{}{}", a as char, b as char))
                .unwrap_or_default(),
        ),
        (
            "distribution",
            format!("{:?}", p.distribution).to_lowercase(),
        ),
        ("master_read_priority", prio.master.to_string()),
        (
            "static_replica_read_priority",
            prio.static_replica.to_string(),
        ),
        (
            "dynamic_replica_read_priority",
            prio.dynamic_replica.to_string(),
        ),
        ("refresh_interval", secs(p.refresh_interval)),
        ("server_timeout", secs(p.server_timeout)),
        ("server_failure_limit", p.server_failure_limit.to_string()),
        ("server_retry_timeout", secs(p.server_retry_timeout)),
        ("keep_alive", secs(p.keep_alive)),
        ("user", opt(&p.user)),
        ("password", hidden(&p.password)),
        ("sentinel_user", opt(&p.sentinel_user)),
        ("sentinel_password", hidden(&p.sentinel_password)),
        ("sentinels", p.sentinels.join(" ")),
        ("tls", yes_no(p.tls.servers)),
        ("sentinel_tls", yes_no(p.tls.sentinels)),
        (
            "groups",
            p.groups
                .iter()
                .map(|g| g.name.as_str())
                .collect::<Vec<_>>()
                .join(" "),
        ),
    ]
}

/// CONFIG SET of one run-time setting.
fn set_one(proxy: &Proxy, name: &str, value: &str) -> Result<(), String> {
    let name = name.to_ascii_lowercase().replace('-', "_");
    let priority = || {
        value
            .parse::<u32>()
            .map_err(|_| format!("ERR redmux: CONFIG SET '{name}': not an integer: '{value}'"))
    };
    let mut prio = proxy.priorities();
    match name.as_str() {
        "master_read_priority" => prio.master = priority()?,
        "static_replica_read_priority" => prio.static_replica = priority()?,
        "dynamic_replica_read_priority" => prio.dynamic_replica = priority()?,
        "log_level" => return set_log_level(value),
        other if settings(proxy).iter().any(|(k, _)| *k == other) => {
            return Err(format!(
            "ERR redmux: '{other}' cannot be changed at run time; edit the config file and restart"
        ))
        }
        other => {
            return Err(format!(
                "ERR Unknown option or number of arguments for CONFIG SET - '{other}'"
            ))
        }
    }
    proxy.set_priorities(prio);
    tracing::info!(setting = %name, value, "read priority changed by CONFIG SET");
    Ok(())
}

/// Redis-style glob match (`*`, `?`, `[abc]`, `\x`), case-insensitive.
pub fn glob_match(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.to_lowercase().chars().collect();
    let t: Vec<char> = text.to_lowercase().chars().collect();
    glob_at(&p, &t)
}

fn glob_at(p: &[char], t: &[char]) -> bool {
    match p.first() {
        None => t.is_empty(),
        Some('*') => (0..=t.len()).any(|i| glob_at(&p[1..], &t[i..])),
        Some('?') => !t.is_empty() && glob_at(&p[1..], &t[1..]),
        Some('[') => {
            let Some(end) = p.iter().position(|&c| c == ']') else {
                return !t.is_empty() && t[0] == '[' && glob_at(&p[1..], &t[1..]);
            };
            let set = &p[1..end];
            let (negate, set) = match set.first() {
                Some('^') => (true, &set[1..]),
                _ => (false, set),
            };
            let Some(&c) = t.first() else { return false };
            (set.contains(&c) != negate) && glob_at(&p[end + 1..], &t[1..])
        }
        Some('\\') if p.len() > 1 => !t.is_empty() && t[0] == p[1] && glob_at(&p[2..], &t[1..]),
        Some(&c) => !t.is_empty() && t[0] == c && glob_at(&p[1..], &t[1..]),
    }
}

/// Installs a new log filter.
type ApplyFilter = Box<dyn Fn(&str) -> Result<(), String> + Send + Sync>;

/// The process' log filter control, set by `main` once logging is up.
struct LogControl {
    current: Mutex<String>,
    apply: ApplyFilter,
}

static LOG_CONTROL: OnceLock<LogControl> = OnceLock::new();

/// Makes `CONFIG SET log_level` work: `apply` installs a new filter.
pub fn set_log_control(
    current: String,
    apply: impl Fn(&str) -> Result<(), String> + Send + Sync + 'static,
) {
    let _ = LOG_CONTROL.set(LogControl {
        current: Mutex::new(current),
        apply: Box::new(apply),
    });
}

fn current_log_level(configured: &str) -> String {
    match LOG_CONTROL.get() {
        Some(c) => c.current.lock().map(|s| s.clone()).unwrap_or_default(),
        None => configured.to_string(),
    }
}

fn set_log_level(value: &str) -> Result<(), String> {
    apply_log_level(value).map_err(|e| format!("ERR redmux: invalid log_level '{value}': {e}"))?;
    tracing::info!(log_level = value, "log level changed by CONFIG SET");
    Ok(())
}

/// Installs a new log filter (CONFIG SET log_level, config reload).
pub fn apply_log_level(value: &str) -> Result<(), String> {
    let Some(control) = LOG_CONTROL.get() else {
        return Err("log level cannot be changed in this process".into());
    };
    (control.apply)(value)?;
    if let Ok(mut cur) = control.current.lock() {
        *cur = value.to_string();
    }
    Ok(())
}

/// Serves `/metrics`, `/healthz` and `/readyz` over plain HTTP/1.1 on `addr`.
pub async fn serve_http(
    proxy: std::sync::Arc<crate::worker::Proxy>,
    addr: std::net::SocketAddr,
) -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    tracing::info!(%addr, "metrics listening");
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            };
            let proxy = proxy.clone();
            tokio::spawn(async move {
                let _ = tokio::time::timeout(
                    std::time::Duration::from_secs(5),
                    http_exchange(proxy, stream),
                )
                .await;
            });
        }
    });
    Ok(())
}

async fn http_exchange(
    proxy: std::sync::Arc<crate::worker::Proxy>,
    mut stream: tokio::net::TcpStream,
) -> std::io::Result<()> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = stream.read(&mut chunk).await?;
        if n == 0 || buf.len() > 16 * 1024 {
            return Ok(());
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    let line = buf.split(|&b| b == b'\n').next().unwrap_or_default();
    let line = String::from_utf8_lossy(line);
    let path = line.split_whitespace().nth(1).unwrap_or("/");
    let path = path.split('?').next().unwrap_or(path);
    let text = "text/plain; charset=utf-8";
    let (status, ctype, body) = match path {
        "/healthz" => ("200 OK", text, "ok\n".to_string()),
        "/readyz" => match readiness(&proxy).await {
            Ok(()) => ("200 OK", text, "ready\n".to_string()),
            Err(why) => ("503 Service Unavailable", text, format!("{why}\n")),
        },
        "/metrics" => {
            let body = proxy.metrics.render(&proxy);
            ("200 OK", "text/plain; version=0.0.4; charset=utf-8", body)
        }
        _ => ("404 Not Found", text, "not found\n".to_string()),
    };
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await?;
    stream.write_all(body.as_bytes()).await?;
    stream.shutdown().await
}

/// `redmux --health-check ADDR`: exit 0 when `http://ADDR/healthz` answers 200.
pub fn health_check(addr: &str) -> std::process::ExitCode {
    use std::io::{Read, Write};
    use std::net::ToSocketAddrs;
    let timeout = std::time::Duration::from_secs(2);
    let ok = (|| -> Option<bool> {
        let sock = addr.to_socket_addrs().ok()?.next()?;
        let mut s = std::net::TcpStream::connect_timeout(&sock, timeout).ok()?;
        s.set_read_timeout(Some(timeout)).ok()?;
        s.write_all(
            format!("GET /healthz HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n")
                .as_bytes(),
        )
        .ok()?;
        let mut resp = Vec::new();
        let _ = s.read_to_end(&mut resp);
        Some(resp.starts_with(b"HTTP/1.1 200"))
    })()
    .unwrap_or(false);
    if ok {
        std::process::ExitCode::SUCCESS
    } else {
        std::process::ExitCode::FAILURE
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sections() {
        assert_eq!(wanted_sections(&[]), DEFAULT_SECTIONS.to_vec());
        assert_eq!(wanted_sections(&["ALL".into()]).len(), 10);
        assert_eq!(wanted_sections(&["everything".into()]).len(), 10);
        assert_eq!(
            wanted_sections(&["Default".into()]),
            DEFAULT_SECTIONS.to_vec()
        );
        assert_eq!(
            wanted_sections(&["latency".into(), "Stats".into()]),
            vec!["stats", "latency"]
        );
        assert!(wanted_sections(&["nosuch".into()]).is_empty());
    }

    #[test]
    fn globs() {
        assert!(glob_match("*", "bind"));
        assert!(glob_match("*read_priority", "master_read_priority"));
        assert!(glob_match("LOG_?EVEL", "log_level"));
        assert!(glob_match("[lm]*", "log_level"));
        assert!(!glob_match("[^lm]*", "log_level"));
        assert!(!glob_match("bin", "bind"));
    }

    #[test]
    fn keyspace_lines() {
        let text =
            "# Keyspace\r\ndb0:keys=3,expires=1,avg_ttl=5\r\ndb2:keys=7,expires=0,avg_ttl=0\r\n";
        assert_eq!(parse_keyspace(text), vec![(0, 3, 1), (2, 7, 0)]);
        assert_eq!(bound_name(250), "250us");
        assert_eq!(bound_name(2500), "2.5ms");
        assert_eq!(bound_name(1_000_000), "1s");
    }
}
