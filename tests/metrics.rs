//! Observability end to end: `/metrics` parsed by a strict Prometheus text parser and
//! scraped by a real Prometheus (Debian's `prometheus` package), INFO sections against
//! the commands sent, CONFIG for admins, and `/readyz` before and after the master goes.
//!
//! `metrics_cost` (ignored; run with `cargo test --release --test metrics -- --ignored
//! --nocapture metrics_cost`) measures what recording costs: the same redis-benchmark
//! load through a redmux with metrics on (endpoint scraped every second) and one with
//! recording off (`REDMUX_STATS=off`, no endpoint), alternating, in one run: throughput
//! and CPU time per request. `metrics_cost_instructions` counts the instructions of the
//! same comparison under valgrind's callgrind, which the machine's other load cannot move.

mod support;

use std::collections::{BTreeMap, HashMap};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use support::*;

// ---------------------------------------------------------------------------------------
// A strict Prometheus text-format (0.0.4) parser
// ---------------------------------------------------------------------------------------

#[derive(Debug, Clone)]
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

#[derive(Debug, Default)]
struct Exposition {
    /// family → (type, help)
    families: HashMap<String, (String, String)>,
    samples: Vec<Sample>,
}

fn valid_metric_name(n: &str) -> bool {
    let mut c = n.chars();
    c.next()
        .is_some_and(|f| f.is_ascii_alphabetic() || f == '_' || f == ':')
        && c.all(|x| x.is_ascii_alphanumeric() || x == '_' || x == ':')
}

fn valid_label_name(n: &str) -> bool {
    let mut c = n.chars();
    c.next()
        .is_some_and(|f| f.is_ascii_alphabetic() || f == '_')
        && c.all(|x| x.is_ascii_alphanumeric() || x == '_')
}

fn parse_value(v: &str) -> Result<f64, String> {
    match v {
        "+Inf" => Ok(f64::INFINITY),
        "-Inf" => Ok(f64::NEG_INFINITY),
        "NaN" => Ok(f64::NAN),
        _ => v.parse().map_err(|_| format!("bad value {v:?}")),
    }
}

fn parse_labels(s: &str) -> Result<(BTreeMap<String, String>, &str), String> {
    let mut labels = BTreeMap::new();
    let mut rest = s;
    loop {
        rest = rest.trim_start();
        if let Some(r) = rest.strip_prefix('}') {
            return Ok((labels, r));
        }
        let eq = rest.find('=').ok_or("label without =")?;
        let name = rest[..eq].trim();
        if !valid_label_name(name) {
            return Err(format!("bad label name {name:?}"));
        }
        rest = rest[eq + 1..]
            .strip_prefix('"')
            .ok_or("label value not quoted")?;
        let mut value = String::new();
        let mut chars = rest.char_indices();
        let end = loop {
            match chars.next() {
                None => return Err("unterminated label value".into()),
                Some((i, '"')) => break i,
                Some((_, '\\')) => match chars.next() {
                    Some((_, 'n')) => value.push('\n'),
                    Some((_, c @ ('\\' | '"'))) => value.push(c),
                    other => return Err(format!("bad escape {other:?}")),
                },
                Some((_, c)) => value.push(c),
            }
        };
        if labels.insert(name.to_string(), value).is_some() {
            return Err(format!("duplicate label {name}"));
        }
        rest = &rest[end + 1..];
        rest = rest.strip_prefix(',').unwrap_or(rest);
    }
}

/// The family a sample belongs to (histogram and summary suffixes stripped when the
/// base name has such a TYPE).
fn family_of<'a>(name: &'a str, families: &HashMap<String, (String, String)>) -> &'a str {
    for suffix in ["_bucket", "_sum", "_count"] {
        if let Some(base) = name.strip_suffix(suffix) {
            if families
                .get(base)
                .is_some_and(|(t, _)| t == "histogram" || t == "summary")
            {
                return base;
            }
        }
    }
    name
}

/// Parses an exposition, failing on anything the format does not allow: unknown
/// comment kinds, a TYPE after the family's samples or twice, samples of one family
/// split apart, bad names, bad label syntax, bad values.
fn parse_exposition(text: &str) -> Result<Exposition, String> {
    let mut exp = Exposition::default();
    let mut helps: HashMap<String, String> = HashMap::new();
    let mut seen_samples: Vec<String> = Vec::new();
    for (no, line) in text.lines().enumerate() {
        let err = |e: String| format!("line {}: {e}: {line:?}", no + 1);
        if line.trim().is_empty() {
            continue;
        }
        if let Some(rest) = line.strip_prefix("# ") {
            let mut parts = rest.splitn(3, ' ');
            let kind = parts.next().unwrap_or("");
            let name = parts
                .next()
                .ok_or_else(|| err("comment without name".into()))?;
            let arg = parts.next().unwrap_or("").to_string();
            if !valid_metric_name(name) {
                return Err(err("bad metric name".into()));
            }
            match kind {
                "HELP" => {
                    if helps.insert(name.into(), arg).is_some() {
                        return Err(err("second HELP".into()));
                    }
                }
                "TYPE" => {
                    if !["counter", "gauge", "histogram", "summary", "untyped"]
                        .contains(&arg.as_str())
                    {
                        return Err(err("bad type".into()));
                    }
                    if seen_samples.iter().any(|s| s == name) {
                        return Err(err("TYPE after samples".into()));
                    }
                    if exp.families.contains_key(name) {
                        return Err(err("second TYPE".into()));
                    }
                    exp.families.insert(name.into(), (arg, String::new()));
                }
                _ => return Err(err("unknown comment".into())),
            }
            continue;
        }
        if line.starts_with('#') {
            return Err(err("malformed comment".into()));
        }
        let name_end = line
            .find(['{', ' '])
            .ok_or_else(|| err("sample without value".into()))?;
        let name = &line[..name_end];
        if !valid_metric_name(name) {
            return Err(err("bad sample name".into()));
        }
        let (labels, rest) = if line[name_end..].starts_with('{') {
            parse_labels(&line[name_end + 1..]).map_err(err)?
        } else {
            (BTreeMap::new(), &line[name_end..])
        };
        let mut fields = rest.split_whitespace();
        let value =
            parse_value(fields.next().ok_or_else(|| err("no value".into()))?).map_err(err)?;
        if let Some(ts) = fields.next() {
            ts.parse::<i64>().map_err(|_| err("bad timestamp".into()))?;
        }
        if fields.next().is_some() {
            return Err(err("trailing fields".into()));
        }
        let family = family_of(name, &exp.families).to_string();
        if seen_samples.last() != Some(&family) {
            if seen_samples.contains(&family) {
                return Err(err(format!("family {family} split apart")));
            }
            seen_samples.push(family);
        }
        exp.samples.push(Sample {
            name: name.into(),
            labels,
            value,
        });
    }
    for (name, (_, help)) in exp.families.iter_mut() {
        *help = helps.get(name).cloned().unwrap_or_default();
    }
    Ok(exp)
}

impl Exposition {
    fn value(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.samples
            .iter()
            .filter(|s| {
                s.name == name
                    && labels
                        .iter()
                        .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
            })
            .map(|s| s.value)
            .sum()
    }
}

/// The naming rules of issue 6: prefix, `_total` counters, `_seconds` durations, help
/// and type on every family, bounded label names.
fn check_rules(exp: &Exposition) {
    const LABELS: [&str; 9] = [
        "command", "result", "class", "server", "group", "role", "state", "version", "le",
    ];
    for s in &exp.samples {
        let family = family_of(&s.name, &exp.families);
        let (kind, help) = exp
            .families
            .get(family)
            .unwrap_or_else(|| panic!("{} has no TYPE line", s.name));
        assert!(!help.is_empty(), "{family} has no HELP text");
        assert!(family.starts_with("redmux_"), "{family}: no redmux_ prefix");
        match kind.as_str() {
            "counter" => assert!(
                family.ends_with("_total"),
                "counter {family} must end in _total"
            ),
            _ => assert!(
                !family.ends_with("_total"),
                "{kind} {family} ends in _total"
            ),
        }
        if ["duration", "latency", "hold"]
            .iter()
            .any(|w| family.contains(w))
        {
            assert!(
                family.ends_with("_seconds"),
                "{family}: durations are _seconds"
            );
        }
        for (k, v) in &s.labels {
            assert!(
                LABELS.contains(&k.as_str()),
                "{}: unexpected label {k}",
                s.name
            );
            if k == "command" {
                assert!(
                    v == "unknown"
                        || v.chars()
                            .all(|c| c.is_ascii_lowercase() || c == '|' || c == '_' || c == '-'),
                    "{}: command label {v:?}",
                    s.name
                );
            }
        }
    }
    for (name, (kind, _)) in &exp.families {
        if kind == "histogram" {
            check_histogram(exp, name);
        }
    }
}

/// Buckets are cumulative, end in `+Inf`, and `+Inf` equals `_count`.
fn check_histogram(exp: &Exposition, name: &str) {
    let bucket = format!("{name}_bucket");
    let mut series: BTreeMap<String, Vec<(f64, f64)>> = BTreeMap::new();
    for s in exp.samples.iter().filter(|s| s.name == bucket) {
        let mut key = s.labels.clone();
        let le = parse_value(&key.remove("le").expect("bucket without le")).unwrap();
        series
            .entry(format!("{key:?}"))
            .or_default()
            .push((le, s.value));
    }
    for (key, buckets) in series {
        assert!(
            buckets
                .windows(2)
                .all(|w| w[0].0 < w[1].0 && w[0].1 <= w[1].1),
            "{name}{key}: buckets not cumulative"
        );
        let (le, inf) = *buckets.last().unwrap();
        assert!(le.is_infinite(), "{name}{key}: no +Inf bucket");
        let count: f64 = exp
            .samples
            .iter()
            .filter(|s| s.name == format!("{name}_count") && format!("{:?}", s.labels) == key)
            .map(|s| s.value)
            .sum();
        assert_eq!(inf, count, "{name}{key}: +Inf bucket != _count");
    }
}

// ---------------------------------------------------------------------------------------
// HTTP, processes
// ---------------------------------------------------------------------------------------

/// GET `http://addr/path`: (status, body).
fn http_get(addr: &str, path: &str) -> std::io::Result<(u16, String)> {
    let mut s = TcpStream::connect(addr)?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)?;
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        dechunk(body)
    } else {
        body.to_string()
    };
    Ok((status, body))
}

fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        body = rest[n..].trim_start_matches("\r\n");
    }
    out
}

fn scrape(metrics_addr: &str) -> Exposition {
    let (status, body) = http_get(metrics_addr, "/metrics").expect("GET /metrics");
    assert_eq!(status, 200, "/metrics answered {status}: {body}");
    parse_exposition(&body).unwrap_or_else(|e| panic!("bad exposition: {e}\n{body}"))
}

/// A process started by a test, killed by PID on drop.
struct Spawned {
    child: Child,
    log: PathBuf,
}

impl Spawned {
    fn start(mut cmd: Command, log: &Path) -> Spawned {
        let file = std::fs::File::create(log).expect("log file");
        let err = file.try_clone().expect("log file");
        cmd.stdin(Stdio::null()).stdout(file).stderr(err);
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {cmd:?}: {e}"));
        Spawned {
            child,
            log: log.to_path_buf(),
        }
    }

    fn logs(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Spawned {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("--- {} ---\n{}", self.log.display(), self.logs());
        }
    }
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Every `"value":[ts,"v"]` of a Prometheus instant-query answer, with the series'
/// labels text before it.
fn query_values(prom: &str, query: &str) -> Vec<(String, f64)> {
    let path = format!("/api/v1/query?query={}", urlencode(query));
    let Ok((200, body)) = http_get(prom, &path) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    let mut rest = body.as_str();
    while let Some(i) = rest.find("\"metric\":{") {
        rest = &rest[i + 10..];
        let labels_end = rest.find('}').unwrap_or(0);
        let labels = rest[..labels_end].to_string();
        let Some(v) = rest.find("\"value\":[") else {
            break;
        };
        rest = &rest[v + 9..];
        let value = rest
            .split_once(",\"")
            .and_then(|(_, r)| r.split_once('"'))
            .and_then(|(v, _)| parse_value(v).ok());
        if let Some(value) = value {
            out.push((labels, value));
        }
    }
    out
}

// ---------------------------------------------------------------------------------------
// Setup
// ---------------------------------------------------------------------------------------

fn redmux_toml(port: u16, metrics: Option<u16>, t: &MasterReplica, extra: &str) -> String {
    let metrics = metrics
        .map(|m| format!("[metrics]\nbind = \"127.0.0.1:{m}\"\n"))
        .unwrap_or_default();
    let sentinels: Vec<String> = t
        .sentinel_addrs()
        .iter()
        .map(|a| format!("\"{a}\""))
        .collect();
    format!(
        "bind = \"127.0.0.1:{port}\"\nworker_threads = 2\n{metrics}{extra}\n[sentinel_pool]\nrefresh_interval = 1\nserver_timeout = 2\nserver_failure_limit = 2\nserver_retry_timeout = 1\nmaster_read_priority = 50\nstatic_replica_read_priority = 50\ndynamic_replica_read_priority = 50\nsentinels = [{}]\n[[sentinel_pool.group]]\nname = \"{}\"\nservers = []\n",
        sentinels.join(", "),
        t.name
    )
}

fn wait_serving(c: &mut Conn) {
    must_wait(
        Duration::from_secs(15),
        "redmux to reach the master",
        || {
            c.query(&["SET", "warm", "1"])
                .is_ok_and(|r| r == Reply::ok())
        },
    );
}

const SETS: usize = 300;
const GETS: usize = 200;
const KEYS: usize = 100;

/// The known load: SETS SETs over KEYS keys, GETS GETs, 3 INCR errors, 2 unknown
/// commands, 2 MONITORs (refused by the proxy), 1 GET with a wrong arity.
fn send_load(c: &mut Conn) {
    let sets: Vec<Vec<String>> = (0..SETS)
        .map(|i| vec!["SET".into(), format!("k{}", i % KEYS), format!("v{i}")])
        .collect();
    let refs: Vec<&[String]> = sets.iter().map(|v| v.as_slice()).collect();
    assert!(c.pipeline(&refs).unwrap().iter().all(|r| *r == Reply::ok()));
    let gets: Vec<Vec<String>> = (0..GETS)
        .map(|i| vec!["GET".into(), format!("k{}", i % KEYS)])
        .collect();
    let refs: Vec<&[String]> = gets.iter().map(|v| v.as_slice()).collect();
    assert!(c.pipeline(&refs).unwrap().iter().all(|r| !r.is_error()));
    for _ in 0..3 {
        assert!(c.query(&["INCR", "k0"]).unwrap().is_error());
    }
    for _ in 0..2 {
        assert!(c.query(&["NOSUCHCMD", "x"]).unwrap().is_error());
        assert!(c.query(&["MONITOR"]).unwrap().is_error());
    }
    assert!(c.query(&["GET"]).unwrap().is_error());
}

fn field(info: &str, name: &str) -> String {
    info_field(info, name).unwrap_or_else(|| panic!("INFO has no {name}:\n{info}"))
}

/// `k=v` fields of an INFO value like `calls=3,usec=10`.
fn subfield(value: &str, key: &str) -> u64 {
    value
        .split(',')
        .find_map(|kv| kv.strip_prefix(key)?.strip_prefix('=')?.parse::<f64>().ok())
        .unwrap_or_else(|| panic!("no {key} in {value}")) as u64
}

// ---------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------

#[test]
fn metrics_count_a_known_load_and_prometheus_scrapes_them() {
    let prometheus = require_binary(
        "prometheus",
        "apt-get install -y prometheus (.ci/run installs it)",
    );
    let t = MasterReplica::start("obs");
    let mport = free_port();
    let redmux = Redmux::start(&redmux_toml(free_port(), Some(mport), &t, ""), "toml");
    let maddr = format!("127.0.0.1:{mport}");
    let mut c = redmux.conn();
    wait_serving(&mut c);

    let before = scrape(&maddr);
    check_rules(&before);
    send_load(&mut c);
    let after = scrape(&maddr);
    check_rules(&after);

    let delta = |cmd: &str, result: &str| {
        let l = [("command", cmd), ("result", result)];
        after.value("redmux_commands_total", &l) - before.value("redmux_commands_total", &l)
    };
    assert_eq!(delta("set", "ok"), SETS as f64);
    assert_eq!(delta("get", "ok"), GETS as f64);
    assert_eq!(delta("get", "error"), 1.0);
    assert_eq!(delta("incr", "error"), 3.0);
    assert_eq!(delta("unknown", "error"), 2.0);
    assert_eq!(delta("monitor", "proxy-refused"), 2.0);
    assert!(
        !after
            .samples
            .iter()
            .any(|s| s.labels.values().any(|v| v.contains("nosuchcmd"))),
        "an unknown command name became a label value"
    );
    let count = |e: &Exposition, class: &str| {
        e.value("redmux_command_duration_seconds_count", &[("class", class)])
    };
    assert_eq!(
        count(&after, "write") - count(&before, "write"),
        SETS as f64 + 3.0
    );
    assert_eq!(
        count(&after, "read") - count(&before, "read"),
        GETS as f64 + 1.0
    );
    let master = t.master.addr();
    assert!(
        after.value("redmux_backend_requests_total", &[("server", &master)]) >= (SETS + 3) as f64
    );
    assert!(
        after.value(
            "redmux_backend_request_duration_seconds_count",
            &[("server", &master)]
        ) >= (SETS + 3) as f64
    );
    assert_eq!(
        after.value(
            "redmux_backend_servers",
            &[("group", "obs"), ("role", "master"), ("state", "up")]
        ),
        1.0
    );
    assert!(
        after.value("redmux_client_read_bytes_total", &[])
            > before.value("redmux_client_read_bytes_total", &[])
    );
    assert!(after.value("redmux_client_written_bytes_total", &[]) > 0.0);
    assert!(after.value("redmux_pipeline_depth_count", &[]) > 0.0);
    assert!(after.value("redmux_sentinel_refreshes_total", &[]) >= 1.0);
    assert_eq!(after.value("redmux_client_connections", &[]), 1.0);
    assert_eq!(
        after.value("redmux_group_master_known", &[("group", "obs")]),
        1.0
    );

    // A real Prometheus scrapes the endpoint and answers queries about it.
    let dir = unique_temp_dir("prometheus");
    let pport = free_port();
    let conf = dir.join("prometheus.yml");
    std::fs::write(
        &conf,
        format!("global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\nscrape_configs:\n  - job_name: redmux\n    static_configs:\n      - targets: ['{maddr}']\n"),
    )
    .unwrap();
    let mut cmd = Command::new(prometheus);
    cmd.arg(format!("--config.file={}", conf.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.join("data").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{pport}"))
        .current_dir(&dir);
    let prom = Spawned::start(cmd, &dir.join("prometheus.log"));
    let paddr = format!("127.0.0.1:{pport}");
    let set_ok = after.value(
        "redmux_commands_total",
        &[("command", "set"), ("result", "ok")],
    );
    let q = "redmux_commands_total{command=\"set\",result=\"ok\"}";
    must_wait(
        Duration::from_secs(30),
        "prometheus to scrape redmux_commands_total",
        || query_values(&paddr, q).iter().any(|(_, v)| *v == set_ok),
    );
    let up = query_values(&paddr, "up{job=\"redmux\"}");
    assert_eq!(up.len(), 1, "{up:?}\n{}", prom.logs());
    assert_eq!(up[0].1, 1.0);
    let buckets = query_values(
        &paddr,
        "redmux_command_duration_seconds_bucket{class=\"write\"}",
    );
    assert_eq!(buckets.len(), 17, "write latency buckets: {buckets:?}");
    assert!(buckets
        .iter()
        .any(|(l, v)| l.contains("+Inf") && *v >= SETS as f64));
    let q99 = query_values(
        &paddr,
        "histogram_quantile(0.99, sum by (le) (redmux_command_duration_seconds_bucket{class=\"write\"}))",
    );
    assert!(
        q99.first().is_some_and(|(_, v)| v.is_finite() && *v > 0.0),
        "{q99:?}"
    );
    drop(prom);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn info_sections_match_the_commands_sent() {
    let t = MasterReplica::start("infos");
    let redmux = Redmux::start(&redmux_toml(free_port(), None, &t, ""), "toml");
    let mut c = redmux.conn();
    wait_serving(&mut c);
    assert_eq!(c.query(&["CONFIG", "RESETSTAT"]).unwrap(), Reply::ok());
    send_load(&mut c);

    let all = c.query(&["INFO", "all"]).unwrap();
    let all = all.as_str().expect("INFO text");
    for section in [
        "# Server",
        "# Proxy",
        "# Clients",
        "# Persistence",
        "# Stats",
        "# Replication",
        "# Servers",
        "# Keyspace",
        "# Commandstats",
        "# Latency",
    ] {
        assert!(all.contains(section), "INFO all lacks {section}:\n{all}");
    }
    assert_eq!(field(all, "loading"), "0");
    assert_eq!(field(all, "role"), "master");
    assert_eq!(field(all, "redis_version"), "7.0.15");
    assert_eq!(field(all, "connected_clients"), "1");
    assert_eq!(field(all, "proxy_threads"), "2");
    let set = field(all, "cmdstat_set");
    assert_eq!(subfield(&set, "calls"), SETS as u64, "{set}");
    assert_eq!(subfield(&set, "failed_calls"), 0);
    let get = field(all, "cmdstat_get");
    assert_eq!(subfield(&get, "calls"), GETS as u64 + 1, "{get}");
    assert_eq!(subfield(&get, "failed_calls"), 1);
    let incr = field(all, "cmdstat_incr");
    assert_eq!(
        (subfield(&incr, "calls"), subfield(&incr, "failed_calls")),
        (3, 3)
    );
    assert_eq!(subfield(&field(all, "cmdstat_unknown"), "failed_calls"), 2);
    assert_eq!(
        subfield(&field(all, "cmdstat_monitor"), "rejected_calls"),
        2
    );
    let processed: u64 = field(all, "total_commands_processed").parse().unwrap();
    // The load, CONFIG RESETSTAT's own reply; INFO itself is counted once answered.
    assert_eq!(processed, (SETS + GETS + 3 + 2 + 2 + 1 + 1) as u64);
    assert_eq!(field(all, "proxy_refused_commands"), "2");
    assert_eq!(subfield(&field(all, "latency_set"), "calls"), SETS as u64);
    let lat = field(all, "latency_set");
    assert!(lat.contains("le_"), "{lat}");
    assert_eq!(
        subfield(&field(all, "db0"), "keys"),
        KEYS as u64 + 1,
        "warm + k0..k99"
    );
    let server0 = field(all, "server0");
    assert!(
        server0.contains(&format!("addr={}", t.master.addr()))
            && server0.contains("role=master")
            && server0.contains("state=up"),
        "{server0}"
    );
    assert!(subfield(&server0, "requests") >= SETS as u64);
    assert!(field(all, "group0").contains(&format!("master={}", t.master.addr())));

    // Filters: one section, case-insensitive; default has no commandstats.
    let server = c.query(&["INFO", "SERVER"]).unwrap();
    let server = server.as_str().unwrap().to_string();
    assert!(
        server.starts_with("# Server") && !server.contains("# Clients"),
        "{server}"
    );
    let default = c.query(&["INFO"]).unwrap();
    let default = default.as_str().unwrap().to_string();
    assert!(
        default.contains("# Keyspace")
            && default.contains("loading:0")
            && !default.contains("# Commandstats")
    );
    let two = c.query(&["INFO", "latency", "Stats"]).unwrap();
    let two = two.as_str().unwrap().to_string();
    assert!(
        two.starts_with("# Stats") && two.contains("# Latency") && !two.contains("# Server"),
        "{two}"
    );
    assert_eq!(c.query(&["INFO", "nosuch"]).unwrap(), Reply::bulk(""));
}

#[test]
fn config_commands_for_admins_only() {
    let t = MasterReplica::start("cfg");
    let auth = "[[auth]]\npassword = \"writer\"\nmode = \"write\"\n[[auth]]\npassword = \"boss\"\nmode = \"admin\"\n";
    let redmux = Redmux::start(&redmux_toml(free_port(), None, &t, auth), "toml");
    let mut w = redmux.conn_auth("writer");
    let r = w.query(&["CONFIG", "GET", "*"]).unwrap();
    assert!(
        r.error_message().is_some_and(|m| m.starts_with("NOPERM")),
        "{r:?}"
    );
    let r = w.query(&["CONFIG", "RESETSTAT"]).unwrap();
    assert!(
        r.error_message().is_some_and(|m| m.starts_with("NOPERM")),
        "{r:?}"
    );

    let mut a = redmux.conn_auth("boss");
    let pairs = a
        .query(&["CONFIG", "GET", "*read_priority"])
        .unwrap()
        .as_pairs();
    assert_eq!(pairs.len(), 3, "{pairs:?}");
    assert!(pairs.contains(&("master_read_priority".into(), "50".into())));
    assert_eq!(
        a.query(&[
            "CONFIG",
            "SET",
            "master_read_priority",
            "10",
            "dynamic-replica-read-priority",
            "0"
        ])
        .unwrap(),
        Reply::ok()
    );
    let pairs = a
        .query(&[
            "CONFIG",
            "GET",
            "master_read_priority",
            "dynamic_replica_read_priority",
        ])
        .unwrap()
        .as_pairs();
    assert!(
        pairs.contains(&("master_read_priority".into(), "10".into())),
        "{pairs:?}"
    );
    assert!(
        pairs.contains(&("dynamic_replica_read_priority".into(), "0".into())),
        "{pairs:?}"
    );
    assert_eq!(
        a.query(&["CONFIG", "SET", "log_level", "debug"]).unwrap(),
        Reply::ok()
    );
    assert_eq!(
        a.query(&["CONFIG", "GET", "log_level"]).unwrap().as_pairs(),
        vec![("log_level".to_string(), "debug".to_string())]
    );
    assert!(a
        .query(&["CONFIG", "SET", "log_level", "[["])
        .unwrap()
        .is_error());
    assert_eq!(
        a.query(&["CONFIG", "SET", "log_level", "info"]).unwrap(),
        Reply::ok()
    );
    assert!(a
        .query(&["CONFIG", "SET", "bind", "1.2.3.4:5"])
        .unwrap()
        .is_error());
    assert!(a
        .query(&["CONFIG", "SET", "nosuch", "1"])
        .unwrap()
        .is_error());
    assert!(a.query(&["CONFIG", "REWRITE"]).unwrap().is_error());
    let all = a.query(&["CONFIG", "GET", "*"]).unwrap().as_pairs();
    assert!(all.len() > 20);
    for (k, v) in &all {
        assert!(
            !v.contains("boss") && !v.contains("writer"),
            "{k} shows a password"
        );
    }
    assert_eq!(a.query(&["CONFIG", "RESETSTAT"]).unwrap(), Reply::ok());
    let stats = a.query(&["INFO", "stats"]).unwrap();
    let processed: u64 = field(stats.as_str().unwrap(), "total_commands_processed")
        .parse()
        .unwrap();
    assert_eq!(
        processed, 1,
        "only CONFIG RESETSTAT's reply since the reset"
    );
    assert!(
        redmux.logs().contains("log level changed"),
        "{}",
        redmux.logs()
    );
}

#[test]
fn readyz_fails_when_the_master_is_gone() {
    // No replica: Sentinel has nothing to promote.
    let mut t = MasterReplica::start_with("ready", 0, 1, 1);
    let mport = free_port();
    let redmux = Redmux::start(&redmux_toml(free_port(), Some(mport), &t, ""), "toml");
    let maddr = format!("127.0.0.1:{mport}");
    let mut c = redmux.conn();
    wait_serving(&mut c);
    assert_eq!(http_get(&maddr, "/readyz").unwrap().0, 200);
    assert_eq!(http_get(&maddr, "/healthz").unwrap().0, 200);
    assert_eq!(http_get(&maddr, "/nosuch").unwrap().0, 404);
    t.master.stop();
    let mut last = (0, String::new());
    must_wait(Duration::from_secs(10), "/readyz to answer 503", || {
        last = http_get(&maddr, "/readyz").unwrap();
        last.0 == 503
    });
    assert!(last.1.contains("unreachable"), "{}", last.1);
    assert_eq!(http_get(&maddr, "/healthz").unwrap().0, 200);
}

/// A redmux for the cost measurements: one worker; metrics on (endpoint at the returned
/// address) or recording off (`REDMUX_STATS=off`, no endpoint). `wrapper` runs it under
/// another program (callgrind).
fn start_cost_proxy(
    t: &MasterReplica,
    metrics: bool,
    wrapper: &[String],
) -> (Spawned, u16, String) {
    let port = free_port();
    let mport = free_port();
    let dir = unique_temp_dir("redmux-cost");
    let conf = dir.join("redmux.toml");
    let text = redmux_toml(port, metrics.then_some(mport), t, "")
        .replace("worker_threads = 2", "worker_threads = 1");
    std::fs::write(&conf, text).unwrap();
    let mut cmd = match wrapper.split_first() {
        Some((program, args)) => {
            let mut c = Command::new(program);
            c.args(args).arg(redmux_bin());
            c
        }
        None => Command::new(redmux_bin()),
    };
    cmd.arg("--config").arg(&conf).env("RUST_LOG", "warn");
    if !metrics {
        cmd.env("REDMUX_STATS", "off");
    }
    let p = Spawned::start(cmd, &dir.join("redmux.log"));
    let addr = format!("127.0.0.1:{port}");
    must_wait(Duration::from_secs(60), "redmux to serve", || {
        query(&addr, &["SET", "warm", "1"]).is_ok_and(|r| r == Reply::ok())
    });
    (p, port, format!("127.0.0.1:{mport}"))
}

/// redis-benchmark SET+GET through `port`; the summed requests per second.
fn cost_load(bench: &Path, port: u16, requests: u64, clients: u64, pipeline: u64) -> f64 {
    let out = Command::new(bench)
        .args(["-h", "127.0.0.1", "-p", &port.to_string(), "-t", "set,get"])
        .args(["-n", &requests.to_string(), "-c", &clients.to_string()])
        .args(["-P", &pipeline.to_string(), "-r", "100000", "-q", "--csv"])
        .output()
        .expect("redis-benchmark");
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines()
        .filter_map(|l| l.split(',').nth(1)?.trim_matches('"').parse::<f64>().ok())
        .sum()
}

/// Same load through redmux with metrics on (scraped every second) and with recording
/// off; prints the paired throughput ratio and the CPU time per request of each.
/// Ignored: it is a measurement, not a check.
#[test]
#[ignore]
fn metrics_cost() {
    let bench = require_binary("redis-benchmark", "apt-get install -y redis-tools");
    let t = MasterReplica::start("cost");
    // REDMUX_COST_PIPELINE (default 16): 1 measures the unpipelined case.
    let pipeline: u64 = std::env::var("REDMUX_COST_PIPELINE")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(16);
    let requests = if pipeline > 1 { 500_000 } else { 100_000 };
    let (on_proc, on_port, maddr) = start_cost_proxy(&t, true, &[]);
    let (off_proc, off_port, _) = start_cost_proxy(&t, false, &[]);
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let scraper = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let _ = http_get(&maddr, "/metrics");
                std::thread::sleep(Duration::from_secs(1));
            }
        })
    };
    let run = |proc: &Spawned, port: u16| -> (f64, u64) {
        let before = cpu_ticks(proc);
        let rate = cost_load(&bench, port, requests, 16, pipeline);
        (rate, cpu_ticks(proc) - before)
    };
    // Pairs in alternating order; the median of the pairs' ratios resists the noise of
    // a shared machine better than comparing two medians.
    let deadline = Instant::now() + Duration::from_secs(300);
    let (mut on, mut off, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
    let (mut cpu_on, mut cpu_off, mut cpu_ratios) = (0, 0, Vec::new());
    for round in 0..15 {
        if Instant::now() > deadline {
            break;
        }
        let ((a, ca), (b, cb)) = if round % 2 == 0 {
            let b = run(&off_proc, off_port);
            (run(&on_proc, on_port), b)
        } else {
            (run(&on_proc, on_port), run(&off_proc, off_port))
        };
        on.push(a);
        off.push(b);
        ratios.push(a / b);
        cpu_on += ca;
        cpu_off += cb;
        cpu_ratios.push(ca.max(1) as f64 / cb.max(1) as f64);
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let _ = scraper.join();
    let median = |v: &mut Vec<f64>| {
        v.sort_by(|a, b| a.partial_cmp(b).unwrap());
        v[v.len() / 2]
    };
    println!("pipeline {pipeline}, 16 clients, {requests} requests per run");
    println!("metrics on:  {on:.0?} req/s (set+get)");
    println!("metrics off: {off:.0?} req/s (set+get)");
    let r = median(&mut ratios);
    println!(
        "median paired throughput ratio on/off = {r:.3} (cost {:.1} %); medians on {:.0} off {:.0}",
        (1.0 - r) * 100.0,
        median(&mut on),
        median(&mut off)
    );
    println!(
        "CPU time of redmux for the same requests: on {cpu_on} ticks, off {cpu_off} ticks: on/off = {:.3} (cost {:.1} %); median paired CPU ratio {:.3}",
        cpu_on as f64 / cpu_off as f64,
        (cpu_on as f64 / cpu_off as f64 - 1.0) * 100.0,
        median(&mut cpu_ratios)
    );
}

/// The instructions redmux runs for the same requests with metrics on and off, counted
/// by valgrind's callgrind from just before the load (`callgrind_control -z`) to exit:
/// unlike time, the count does not move with the machine's other load. Ignored: a
/// measurement (about a minute). Needs valgrind.
#[test]
#[ignore]
fn metrics_cost_instructions() {
    let bench = require_binary("redis-benchmark", "apt-get install -y redis-tools");
    require_binary("valgrind", "apt-get install -y valgrind");
    let control = require_binary("callgrind_control", "apt-get install -y valgrind");
    let t = MasterReplica::start("cost-ir");
    const REQUESTS: u64 = 100_000;
    let count = |metrics: bool| -> u64 {
        let dir = unique_temp_dir("redmux-callgrind");
        let out = dir.join("callgrind.out");
        let wrapper = vec![
            "valgrind".to_string(),
            "--tool=callgrind".to_string(),
            format!("--callgrind-out-file={}", out.display()),
        ];
        let (mut proc, port, maddr) = start_cost_proxy(&t, metrics, &wrapper);
        let pid = proc.child.id().to_string();
        let zeroed = Command::new(&control).args(["-z", &pid]).output();
        assert!(
            zeroed.as_ref().is_ok_and(|o| o.status.success()),
            "callgrind_control -z failed: {zeroed:?}"
        );
        cost_load(&bench, port, REQUESTS, 50, 1);
        if metrics {
            // One scrape, as Prometheus would make during the load.
            let _ = http_get(&maddr, "/metrics");
        }
        // SIGTERM: redmux drains and exits, and callgrind writes its counts.
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        let _ = proc.child.wait();
        let text = std::fs::read_to_string(&out).expect("callgrind output");
        text.lines()
            .find_map(|l| l.strip_prefix("summary: "))
            .and_then(|v| v.trim().parse().ok())
            .expect("callgrind summary line")
    };
    let requests = (2 * REQUESTS) as f64;
    let mut rows = Vec::new();
    for _ in 0..3 {
        let on = count(true) as f64 / requests;
        let off = count(false) as f64 / requests;
        println!(
            "instructions per request (SET+GET, 50 clients): on {on:.0}, off {off:.0}: recording costs {:.0} ({:.1} % of redmux's user-space instructions)",
            on - off,
            (on / off - 1.0) * 100.0
        );
        rows.push(on / off - 1.0);
    }
    rows.sort_by(|a, b| a.partial_cmp(b).unwrap());
    println!("median: {:.1} %", rows[1] * 100.0);
}

/// utime + stime of a process, in clock ticks (/proc/PID/stat fields 14 and 15).
fn cpu_ticks(p: &Spawned) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{}/stat", p.child.id())).expect("/proc stat");
    let rest = &stat[stat.rfind(')').expect("stat comm") + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()
}
