//! The typed configuration every other module reads.
//!
//! Two file formats load into the same [`Config`]: redmux's own TOML (`*.toml`, see
//! `conf/redmux.toml`) and the predixy-style format users already have (anything else, see
//! `conf/predixy.conf`). Both loaders report every problem they find with the file and line,
//! what was wrong and what was expected; nothing in a file can panic the process.

mod cidr;
mod predixy;
mod toml_format;
mod value;

pub use cidr::Cidr;

use std::collections::HashMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// What an authenticated client may do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum AuthMode {
    /// Read commands only.
    Read,
    /// Read and write commands.
    Write,
    /// Everything, including admin commands (CONFIG, FLUSHALL, proxy commands).
    Admin,
}

/// One `[[auth]]` entry (predixy: `Auth "password" { ... }` inside `Authority`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuthEntry {
    /// The password; empty means "what unauthenticated clients may do".
    pub password: String,
    pub mode: AuthMode,
    /// Key prefixes a read may touch; empty = any key.
    pub read_key_prefix: Vec<Vec<u8>>,
    /// Key prefixes a write may touch; empty = any key.
    pub write_key_prefix: Vec<Vec<u8>>,
}

/// Key hash over which keys are spread across groups (predixy's `Hash`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HashKind {
    /// CRC16/XMODEM, the one Redis Cluster uses.
    Crc16,
    /// predixy's `atol`: the decimal number the key starts with.
    Atol,
}

/// How a hash is turned into a group index (predixy's `Distribution`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Distribution {
    /// `hash % groups`.
    Modula,
    /// Fixed ranges of the 16384 hash slots, in group order.
    Random,
}

/// One Sentinel-monitored master group (predixy: `Group name { static servers }`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupConfig {
    /// The master name Sentinel knows (`mymaster`).
    pub name: String,
    /// Static replicas (`+ host:port` lines inside the group); read at
    /// `static_replica_read_priority`.
    pub servers: Vec<String>,
}

/// The `[sentinel_pool]` section (predixy: `SentinelServerPool`).
#[derive(Clone, Debug, PartialEq)]
pub struct SentinelPoolConfig {
    pub databases: u32,
    pub hash: HashKind,
    /// Two characters, opening and closing; `None` disables tags.
    pub hash_tag: Option<(u8, u8)>,
    pub distribution: Distribution,
    pub master_read_priority: u32,
    pub static_replica_read_priority: u32,
    pub dynamic_replica_read_priority: u32,
    pub refresh_interval: Duration,
    pub server_timeout: Duration,
    pub server_failure_limit: u32,
    pub server_retry_timeout: Duration,
    /// TCP keepalive idle time for backend connections; zero disables it.
    pub keep_alive: Duration,
    /// Password (and optional ACL user) sent to every backend server.
    pub user: Option<String>,
    pub password: Option<String>,
    /// Password (and optional ACL user) sent to every Sentinel.
    pub sentinel_user: Option<String>,
    pub sentinel_password: Option<String>,
    /// `host:port` of every Sentinel; hostnames are resolved at each connect.
    pub sentinels: Vec<String>,
    pub groups: Vec<GroupConfig>,
    /// TLS to the Redis servers and the Sentinels.
    pub tls: BackendTlsConfig,
}

/// TLS from redmux to the servers and Sentinels (`[sentinel_pool]` `tls`, `sentinel_tls`,
/// `tls_ca`, ...; predixy-style `Tls`, `SentinelTls`, `TlsCa`, ... in the pool).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BackendTlsConfig {
    /// Connect to the Redis servers over TLS.
    pub servers: bool,
    /// Connect to the Sentinels over TLS.
    pub sentinels: bool,
    /// PEM CA certificates that sign the servers' certificates.
    pub ca: Option<PathBuf>,
    /// PEM client certificate chain, for servers that require one.
    pub cert: Option<PathBuf>,
    /// PEM private key of the client certificate.
    pub key: Option<PathBuf>,
    /// Name to send (SNI) and verify instead of each address' host part.
    pub server_name: Option<String>,
    /// Accept any server certificate (testing only).
    pub insecure_skip_verify: bool,
}

impl BackendTlsConfig {
    /// True when any connection uses TLS.
    pub fn enabled(&self) -> bool {
        self.servers || self.sentinels
    }
}

impl Default for SentinelPoolConfig {
    fn default() -> Self {
        SentinelPoolConfig {
            databases: 16,
            hash: HashKind::Crc16,
            hash_tag: Some((b'{', b'}')),
            distribution: Distribution::Modula,
            master_read_priority: 100,
            static_replica_read_priority: 0,
            dynamic_replica_read_priority: 0,
            refresh_interval: Duration::from_secs(1),
            server_timeout: Duration::ZERO,
            server_failure_limit: 10,
            server_retry_timeout: Duration::from_secs(1),
            keep_alive: Duration::ZERO,
            user: None,
            password: None,
            sentinel_user: None,
            sentinel_password: None,
            sentinels: Vec::new(),
            groups: Vec::new(),
            tls: BackendTlsConfig::default(),
        }
    }
}

/// Client TLS (`[tls]`; predixy-style `TlsCert`, `TlsKey`, `TlsClientCa`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsConfig {
    /// PEM certificate chain; reloaded when the file changes.
    pub cert: PathBuf,
    /// PEM private key; reloaded when the file changes.
    pub key: PathBuf,
    /// PEM CA certificates; when set, clients must present a certificate it signed.
    pub client_ca: Option<PathBuf>,
}

/// Log output format.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    Plain,
    Json,
}

/// The whole proxy configuration.
#[derive(Clone, Debug, PartialEq)]
pub struct Config {
    /// Where clients connect (`Bind`).
    pub bind: SocketAddr,
    pub worker_threads: usize,
    /// `None` = no Authority section: no password needed, full (admin) rights.
    pub auth: Option<Vec<AuthEntry>>,
    pub sentinel_pool: SentinelPoolConfig,
    /// Prometheus `/metrics`, `/healthz`, `/readyz`; off when `None`.
    pub metrics_bind: Option<SocketAddr>,
    /// tracing filter (`info`, `redmux=debug`, ...); `RUST_LOG` wins when set.
    pub log_level: String,
    pub log_format: LogFormat,
    /// Clients allowed to connect (CIDRs); empty = everyone.
    pub allow: Vec<String>,
    /// Connections over this many get `-ERR max number of clients reached`; 0 = no limit.
    pub max_clients: usize,
    /// Idle clients are closed after this long; zero = never.
    pub client_timeout: Duration,
    /// Expect a PROXY protocol (v1 or v2) header on every client connection, so the real
    /// client address survives a TCP forwarder; the allow-list checks that address.
    pub proxy_protocol: bool,
    /// Largest bulk string a client may send (Redis' proto-max-bulk-len).
    pub proto_max_bulk_len: usize,
    /// Largest unparsed request buffer per client (Redis' client-query-buffer-limit).
    pub client_query_buffer_limit: usize,
    /// Unwritten reply bytes after which a normal client is dropped; 0 = no limit
    /// (Redis' client-output-buffer-limit normal hard limit).
    pub client_output_buffer_limit_normal: usize,
    /// The same for a subscribed (pub/sub) client.
    pub client_output_buffer_limit_pubsub: usize,
    /// Failed AUTHs per minute from one source address before AUTH is refused from it
    /// (the connection is closed); 0 = no limit.
    pub auth_failure_limit: u32,
    /// TLS on the client port; plain TCP when `None`.
    pub tls: Option<TlsConfig>,
    /// What loads but deserves the operator's eye (predixy directives without effect here,
    /// a duration in predixy's `m`): line and text, shown by `--check` and at start.
    pub warnings: Vec<ConfigProblem>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            bind: SocketAddr::from(([127, 0, 0, 1], 7617)),
            worker_threads: 1,
            auth: None,
            sentinel_pool: SentinelPoolConfig::default(),
            metrics_bind: None,
            log_level: "info".to_string(),
            log_format: LogFormat::Plain,
            allow: Vec::new(),
            max_clients: 0,
            client_timeout: Duration::ZERO,
            proxy_protocol: false,
            proto_max_bulk_len: 512 * 1024 * 1024,
            client_query_buffer_limit: 1024 * 1024 * 1024,
            client_output_buffer_limit_normal: 1024 * 1024 * 1024,
            client_output_buffer_limit_pubsub: 32 * 1024 * 1024,
            auth_failure_limit: 60,
            tls: None,
            warnings: Vec::new(),
        }
    }
}

/// One problem found in a config file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigProblem {
    /// 1-based line; 0 when the problem is about the file as a whole.
    pub line: usize,
    pub message: String,
}

/// Everything wrong with one config file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    pub path: PathBuf,
    pub problems: Vec<ConfigProblem>,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, p) in self.problems.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            if p.line == 0 {
                write!(f, "{}: {}", self.path.display(), p.message)?;
            } else {
                write!(f, "{}:{}: {}", self.path.display(), p.line, p.message)?;
            }
        }
        Ok(())
    }
}

impl std::error::Error for ConfigError {}

/// Problems (and warnings) shown for one file at most: a file that is not a config at all
/// (a log given by mistake) gets a short answer, not one line per line of it.
const MAX_SHOWN: usize = 100;

/// A config file's bytes as text. Bytes that are not UTF-8 are a problem on their line,
/// except in comment lines (`#` first), where they are replaced: predixy reads such files.
fn config_text(bytes: Vec<u8>, toml: bool) -> Result<String, Vec<ConfigProblem>> {
    let bytes = match String::from_utf8(bytes) {
        Ok(text) => return Ok(text),
        Err(e) => e.into_bytes(),
    };
    // In TOML a line starting with `#` may be inside a multi-line string: no exemption.
    let bad: Vec<usize> = bytes
        .split(|b| *b == b'\n')
        .enumerate()
        .filter(|(_, line)| std::str::from_utf8(line).is_err())
        .filter(|(_, line)| toml || !line.trim_ascii_start().starts_with(b"#"))
        .map(|(i, _)| i + 1)
        .collect();
    let mut problems: Vec<ConfigProblem> = bad
        .iter()
        .take(MAX_SHOWN)
        .map(|&line| ConfigProblem::new(line, "this line is not UTF-8 text"))
        .collect();
    if bad.len() > MAX_SHOWN {
        problems.push(ConfigProblem::new(
            bad[MAX_SHOWN - 1],
            format!(
                "... and {} more lines that are not UTF-8 text",
                bad.len() - MAX_SHOWN
            ),
        ));
    }
    if problems.is_empty() {
        Ok(String::from_utf8_lossy(&bytes).into_owned())
    } else {
        Err(problems)
    }
}

impl Config {
    /// What this configuration makes the proxy do, in a few lines for `--check` (defaults
    /// included, no password shown): what someone moving from predixy wants to compare.
    pub fn summary(&self) -> Vec<String> {
        let pool = &self.sentinel_pool;
        let none_if_zero = |d: Duration| {
            if d.is_zero() {
                "none".to_string()
            } else {
                format!("{d:?}")
            }
        };
        let mut out = vec![format!(
            "listen {}, {} worker thread(s), metrics {}",
            self.bind,
            self.worker_threads,
            self.metrics_bind
                .map_or("off".to_string(), |a| format!("on {a}"))
        )];
        let tls = |on: bool| if on { " over TLS" } else { "" };
        out.push(format!(
            "Sentinels{}: {}",
            tls(pool.tls.sentinels),
            pool.sentinels.join(", ")
        ));
        let names: Vec<&str> = pool.groups.iter().map(|g| g.name.as_str()).collect();
        let tag = pool.hash_tag.map_or("none".to_string(), |(a, b)| {
            format!("{}{}", a as char, b as char)
        });
        out.push(format!(
            "groups{}: {} ({} hash, {} distribution, hash tag {tag}, {} database(s))",
            tls(pool.tls.servers),
            names.join(", "),
            format!("{:?}", pool.hash).to_lowercase(),
            format!("{:?}", pool.distribution).to_lowercase(),
            pool.databases
        ));
        out.push(format!(
            "read priority: master {}, static replicas {}, dynamic replicas {}",
            pool.master_read_priority,
            pool.static_replica_read_priority,
            pool.dynamic_replica_read_priority
        ));
        out.push(format!(
            "timeouts: server {}, retry a failed server after {:?} ({} failures), client idle \
             {}, Sentinel refresh {:?}",
            none_if_zero(pool.server_timeout),
            pool.server_retry_timeout,
            pool.server_failure_limit,
            none_if_zero(self.client_timeout),
            pool.refresh_interval
        ));
        out.push(match &self.auth {
            None => "auth: none (every client may run every command)".to_string(),
            Some(entries) => {
                let count = |m: AuthMode| entries.iter().filter(|e| e.mode == m).count();
                let open = entries.iter().any(|e| e.password.is_empty());
                format!(
                    "auth: {} password(s): {} admin, {} write, {} read{}",
                    entries.len(),
                    count(AuthMode::Admin),
                    count(AuthMode::Write),
                    count(AuthMode::Read),
                    if open {
                        " (one of them empty: what clients that never AUTH may do)"
                    } else {
                        ""
                    }
                )
            }
        });
        out
    }

    /// Bytes of unwritten replies after which a normal client is dropped (0 = never).
    pub fn client_output_limit(&self) -> usize {
        self.client_output_buffer_limit_normal
    }

    /// Bytes of unwritten replies after which a subscribed client is dropped (0 = never).
    pub fn pubsub_output_limit(&self) -> usize {
        self.client_output_buffer_limit_pubsub
    }

    /// Parses config text: redmux TOML when `toml`, else predixy-style (no `${VAR}`
    /// expansion; [`Config::load`] adds that).
    pub fn parse_str(text: &str, toml: bool) -> Result<Config, Vec<ConfigProblem>> {
        if toml {
            toml_format::parse(text)
        } else {
            predixy::parse(text)
        }
    }

    /// Loads a config file: `*.toml` as redmux TOML, anything else as predixy-style.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let fail = |problems| ConfigError {
            path: path.to_path_buf(),
            problems,
        };
        let bytes = std::fs::read(path).map_err(|e| {
            fail(vec![ConfigProblem::new(
                0,
                format!("cannot read the file: {e}"),
            )])
        })?;
        let is_toml = path.extension().is_some_and(|ext| ext == "toml");
        let text = config_text(bytes, is_toml).map_err(fail)?;
        let parsed = if is_toml {
            toml_format::parse(&text)
        } else {
            predixy::parse(&text)
        };
        let mut config = parsed.map_err(|problems| ConfigError {
            path: path.to_path_buf(),
            problems: problems.clone(),
        })?;
        let problems = config.expand_env(|name| std::env::var(name).ok());
        if !problems.is_empty() {
            return Err(ConfigError {
                path: path.to_path_buf(),
                problems,
            });
        }
        Ok(config)
    }

    /// Replaces `${NAME}` in passwords and user names with the environment variable's
    /// value, so secrets can come from the environment (Kubernetes Secrets) rather than
    /// the file; `$${` is a literal `${`. An unset variable is a problem naming it.
    pub fn expand_env(&mut self, lookup: impl Fn(&str) -> Option<String>) -> Vec<ConfigProblem> {
        let mut problems = Vec::new();
        let mut fields: Vec<&mut String> = Vec::new();
        if let Some(auth) = &mut self.auth {
            fields.extend(auth.iter_mut().map(|a| &mut a.password));
        }
        let pool = &mut self.sentinel_pool;
        for f in [
            &mut pool.user,
            &mut pool.password,
            &mut pool.sentinel_user,
            &mut pool.sentinel_password,
        ]
        .into_iter()
        .flatten()
        {
            fields.push(f);
        }
        for field in fields {
            match expand_vars(field, &lookup) {
                Ok(v) => *field = v,
                Err(name) => problems.push(ConfigProblem::new(
                    0,
                    format!("environment variable `{name}` is not set (expected it to hold a secret named by `${{{name}}}`)"),
                )),
            }
        }
        problems
    }

    /// Checks the rules both file formats share; the problems carry line 0. The loaders
    /// run the same checks with the lines each value came from.
    pub fn validate(&self) -> Vec<ConfigProblem> {
        validate(self, &SourceLines::default())
    }

    /// The `allow` list as parsed blocks; entries that do not parse are skipped
    /// (a loaded config has none).
    pub fn allow_cidrs(&self) -> Vec<Cidr> {
        self.allow.iter().filter_map(|a| a.parse().ok()).collect()
    }
}

/// Expands `${NAME}` in `text`; `$${` stays a literal `${`. Err(name) for an unset one.
fn expand_vars(text: &str, lookup: &impl Fn(&str) -> Option<String>) -> Result<String, String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let tail = &rest[at..];
        if let Some(after) = tail.strip_prefix("$${") {
            out.push_str("${");
            rest = after;
        } else if let Some(after) = tail.strip_prefix("${") {
            let Some(end) = after.find('}') else {
                out.push_str(tail);
                return Ok(out);
            };
            let name = &after[..end];
            let valid = !name.is_empty()
                && !name.starts_with(|c: char| c.is_ascii_digit())
                && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
            if valid {
                out.push_str(&lookup(name).ok_or_else(|| name.to_string())?);
            } else {
                out.push_str(&tail[..end + 3]);
            }
            rest = &after[end + 1..];
        } else {
            out.push('$');
            rest = &tail[1..];
        }
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod env_tests {
    use super::*;

    #[test]
    fn env_placeholders_expand_in_secrets_only() {
        let lookup = |n: &str| (n == "PW").then(|| "s\"e$cret".to_string());
        assert_eq!(expand_vars("${PW}", &lookup).unwrap(), "s\"e$cret");
        assert_eq!(expand_vars("a${PW}b", &lookup).unwrap(), "as\"e$cretb");
        assert_eq!(expand_vars("$${PW}", &lookup).unwrap(), "${PW}");
        assert_eq!(
            expand_vars("plain $ text", &lookup).unwrap(),
            "plain $ text"
        );
        assert_eq!(expand_vars("${1X}", &lookup).unwrap(), "${1X}");
        assert_eq!(
            expand_vars("${MISSING}", &lookup),
            Err("MISSING".to_string())
        );
        let mut c = Config::default();
        c.sentinel_pool.password = Some("${PW}".into());
        c.auth = Some(vec![AuthEntry {
            password: "${NOPE}".into(),
            mode: AuthMode::Read,
            read_key_prefix: vec![],
            write_key_prefix: vec![],
        }]);
        let problems = c.expand_env(lookup);
        assert_eq!(c.sentinel_pool.password.as_deref(), Some("s\"e$cret"));
        assert_eq!(problems.len(), 1);
        assert!(problems[0].message.contains("NOPE"));
    }
}

impl ConfigProblem {
    /// A problem on `line` (0 = the file as a whole).
    pub fn new(line: usize, message: impl Into<String>) -> ConfigProblem {
        ConfigProblem {
            line,
            message: message.into(),
        }
    }
}

/// The line each checked value came from, so shared checks can point at it; 0 = unknown
/// or not in the file. Vectors run parallel to the lists in [`Config`].
#[derive(Clone, Debug, Default)]
pub(crate) struct SourceLines {
    pub worker_threads: usize,
    pub log_level: usize,
    pub proto_max_bulk_len: usize,
    pub client_query_buffer_limit: usize,
    pub tls: usize,
    pub allow: Vec<usize>,
    pub authority: usize,
    pub auth: Vec<usize>,
    pub pool: usize,
    /// The file has no sentinel pool at all (the loader reports that itself), so the
    /// "no sentinels" and "no groups" checks are skipped.
    pub missing_pool: bool,
    pub databases: usize,
    pub refresh_interval: usize,
    /// The pool's first TLS setting.
    pub backend_tls: usize,
    pub sentinels: Vec<usize>,
    pub groups: Vec<usize>,
    pub group_servers: Vec<Vec<usize>>,
}

/// `lines[i]`, or 0 when the value did not come from a file.
fn line_of(lines: &[usize], i: usize) -> usize {
    lines.get(i).copied().unwrap_or(0)
}

/// The checks both formats share: ranges, required parts, duplicates and addresses.
pub(crate) fn validate(cfg: &Config, lines: &SourceLines) -> Vec<ConfigProblem> {
    let mut problems = Vec::new();
    check_top(cfg, lines, &mut problems);
    check_auth(cfg, lines, &mut problems);
    check_pool(&cfg.sentinel_pool, lines, &mut problems);
    problems.sort_by_key(|p| p.line);
    problems
}

/// The worker threads a config may ask for, and how errors say so.
const WORKER_THREADS: std::ops::RangeInclusive<usize> = 1..=256;
const WORKER_THREADS_TEXT: &str = "1 to 256";

fn check_top(cfg: &Config, lines: &SourceLines, out: &mut Vec<ConfigProblem>) {
    if !WORKER_THREADS.contains(&cfg.worker_threads) {
        out.push(ConfigProblem::new(
            lines.worker_threads,
            format!(
                "worker threads {} out of range (expected {WORKER_THREADS_TEXT})",
                cfg.worker_threads
            ),
        ));
    }
    if let Err(e) = value::check_log_level(&cfg.log_level) {
        out.push(ConfigProblem::new(lines.log_level, e));
    }
    for (i, entry) in cfg.allow.iter().enumerate() {
        if let Err(e) = entry.parse::<Cidr>() {
            out.push(ConfigProblem::new(line_of(&lines.allow, i), e));
        }
    }
    let sizes = [
        (
            cfg.proto_max_bulk_len,
            lines.proto_max_bulk_len,
            "proto max bulk len",
        ),
        (
            cfg.client_query_buffer_limit,
            lines.client_query_buffer_limit,
            "client query buffer limit",
        ),
    ];
    if let Some(tls) = &cfg.tls {
        if tls.cert.as_os_str().is_empty() || tls.key.as_os_str().is_empty() {
            out.push(ConfigProblem::new(
                lines.tls,
                "TLS needs both a certificate and a key (expected TlsCert FILE and TlsKey FILE)",
            ));
        }
    }
    for (size, line, what) in sizes {
        if size == 0 {
            out.push(ConfigProblem::new(
                line,
                format!("{what} is 0 (expected at least 1 byte)"),
            ));
        }
    }
}

fn check_auth(cfg: &Config, lines: &SourceLines, out: &mut Vec<ConfigProblem>) {
    let Some(entries) = &cfg.auth else { return };
    if entries.is_empty() {
        out.push(ConfigProblem::new(
            lines.authority,
            "authority has no auth entries, so no client could ever log in \
             (expected at least one; drop the whole section to need no password)",
        ));
    }
    let mut seen: HashMap<&str, usize> = HashMap::new();
    for (i, entry) in entries.iter().enumerate() {
        let line = line_of(&lines.auth, i);
        if let Some(first) = first_line(&mut seen, &entry.password, line) {
            out.push(ConfigProblem::new(
                line,
                format!(
                    "duplicate auth password{} (expected each password once)",
                    first_seen(first)
                ),
            ));
        }
    }
}

/// Records `key` at `line`; returns the line it was first seen on if it was seen before.
fn first_line<'a>(seen: &mut HashMap<&'a str, usize>, key: &'a str, line: usize) -> Option<usize> {
    match seen.get(key) {
        Some(first) => Some(*first),
        None => {
            seen.insert(key, line);
            None
        }
    }
}

/// ` (first on line N)`, or nothing when the first one has no line.
fn first_seen(line: usize) -> String {
    if line == 0 {
        String::new()
    } else {
        format!(" (first on line {line})")
    }
}

fn check_pool(pool: &SentinelPoolConfig, lines: &SourceLines, out: &mut Vec<ConfigProblem>) {
    if !(1..=1_000_000).contains(&pool.databases) {
        out.push(ConfigProblem::new(
            lines.databases,
            format!(
                "databases {} out of range (expected 1 to 1000000)",
                pool.databases
            ),
        ));
    }
    if pool.refresh_interval.is_zero() {
        out.push(ConfigProblem::new(
            lines.refresh_interval,
            "refresh interval is 0 (expected a positive duration like 1)",
        ));
    }
    check_sentinels(pool, lines, out);
    check_groups(pool, lines, out);
    check_backend_tls(&pool.tls, lines, out);
}

fn check_backend_tls(tls: &BackendTlsConfig, lines: &SourceLines, out: &mut Vec<ConfigProblem>) {
    if !tls.enabled() {
        return;
    }
    if tls.ca.is_none() && !tls.insecure_skip_verify {
        out.push(ConfigProblem::new(
            lines.backend_tls,
            "backend TLS needs a CA to verify the servers (expected tls_ca = \"FILE\" / TlsCa FILE, \
             or tls_insecure_skip_verify = true / TlsInsecureSkipVerify yes to accept any certificate)",
        ));
    }
    if tls.cert.is_some() != tls.key.is_some() {
        out.push(ConfigProblem::new(
            lines.backend_tls,
            "a backend TLS client certificate needs both tls_cert and tls_key (TlsCert and TlsKey)",
        ));
    }
    if tls
        .server_name
        .as_deref()
        .is_some_and(|n| rustls::pki_types::ServerName::try_from(n).is_err())
    {
        out.push(ConfigProblem::new(
            lines.backend_tls,
            "bad tls_server_name (expected a DNS name or an IP address)",
        ));
    }
}

fn check_sentinels(pool: &SentinelPoolConfig, lines: &SourceLines, out: &mut Vec<ConfigProblem>) {
    if pool.sentinels.is_empty() && !lines.missing_pool {
        out.push(ConfigProblem::new(
            lines.pool,
            "the sentinel pool has no sentinels (expected at least one host:port)",
        ));
    }
    for (i, addr) in pool.sentinels.iter().enumerate() {
        if let Err(e) = value::check_host_port(addr) {
            out.push(ConfigProblem::new(line_of(&lines.sentinels, i), e));
        }
    }
}

fn check_groups(pool: &SentinelPoolConfig, lines: &SourceLines, out: &mut Vec<ConfigProblem>) {
    if pool.groups.is_empty() && !lines.missing_pool {
        out.push(ConfigProblem::new(
            lines.pool,
            "the sentinel pool has no groups (expected at least one master name)",
        ));
    }
    let mut seen: HashMap<&str, usize> = HashMap::new();
    for (i, group) in pool.groups.iter().enumerate() {
        let line = line_of(&lines.groups, i);
        if group.name.is_empty() || group.name.chars().any(|c| c.is_whitespace()) {
            out.push(ConfigProblem::new(
                line,
                format!(
                    "bad group name `{}` (expected the master name Sentinel monitors, no spaces)",
                    group.name
                ),
            ));
        }
        if let Some(first) = first_line(&mut seen, &group.name, line) {
            out.push(ConfigProblem::new(
                line,
                format!(
                    "duplicate group `{}`{} (expected each master name once)",
                    group.name,
                    first_seen(first)
                ),
            ));
        }
        let server_lines = lines.group_servers.get(i).map_or(&[][..], |v| &v[..]);
        for (j, server) in group.servers.iter().enumerate() {
            if let Err(e) = value::check_host_port(server) {
                out.push(ConfigProblem::new(line_of(server_lines, j), e));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PREDIXY_CONF: &str = include_str!("../conf/predixy.conf");
    const REDMUX_TOML: &str = include_str!("../conf/redmux.toml");

    #[test]
    fn shipped_files_load_into_the_same_config() {
        let from_predixy = predixy::parse(PREDIXY_CONF).expect("conf/predixy.conf loads");
        let mut from_toml = toml_format::parse(REDMUX_TOML).expect("conf/redmux.toml loads");
        // The TOML turns metrics on (predixy.conf has no MetricsBind); all else is equal.
        assert_eq!(
            from_toml.metrics_bind,
            Some(SocketAddr::from(([127, 0, 0, 1], 9617)))
        );
        from_toml.metrics_bind = None;
        assert_eq!(from_predixy, from_toml);
        assert!(from_predixy.validate().is_empty());
    }

    #[test]
    fn shipped_predixy_conf_values() {
        let cfg = predixy::parse(PREDIXY_CONF).expect("conf/predixy.conf loads");
        assert_eq!(cfg.bind, SocketAddr::from(([0, 0, 0, 0], 7617)));
        assert_eq!(cfg.worker_threads, 4);
        let auth = cfg.auth.expect("authority");
        assert_eq!(auth.len(), 2);
        assert_eq!(
            (auth[0].password.as_str(), auth[0].mode),
            ("123456", AuthMode::Write)
        );
        assert_eq!(
            (auth[1].password.as_str(), auth[1].mode),
            ("#a complex password#", AuthMode::Admin)
        );
        let pool = cfg.sentinel_pool;
        assert_eq!(pool.master_read_priority, 60);
        assert_eq!(pool.static_replica_read_priority, 50);
        assert_eq!(pool.keep_alive, Duration::from_secs(120));
        assert_eq!(
            pool.sentinels,
            vec!["instance01-redis-ha:26379".to_string()]
        );
        assert_eq!(
            pool.groups,
            vec![GroupConfig {
                name: "mymaster".to_string(),
                servers: Vec::new()
            }]
        );
    }

    #[test]
    fn load_picks_the_format_and_display_names_file_and_line() {
        let dir = std::env::temp_dir().join(format!("redmux-config-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let path = dir.join("bad.toml");
        std::fs::write(&path, "worker_threads = 4\nbogus = 1\n").expect("write");
        let err = Config::load(&path).expect_err("unknown key");
        let shown = err.to_string();
        assert!(
            shown.starts_with(&format!("{}:2: unknown field `bogus`", path.display())),
            "{shown}"
        );
        assert!(shown.contains("expected"), "{shown}");
        let path = dir.join("bad.conf");
        std::fs::write(&path, "Bind 0.0.0.0:7617\nWorkerThreads x\n").expect("write");
        let shown = Config::load(&path).expect_err("bad number").to_string();
        let line2 = format!(
            "\n{}:2: `WorkerThreads`: bad number `x` (expected",
            path.display()
        );
        assert!(shown.contains(&line2), "{shown}");
        assert!(shown.contains("missing SentinelServerPool"), "{shown}");
        let missing = Config::load(&dir.join("absent.conf")).expect_err("no file");
        assert_eq!(missing.problems[0].line, 0);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn bytes_that_are_not_utf8_are_named_by_line_outside_comments() {
        let text = config_text(b"# caf\xe9\nBind 127.0.0.1:1\n".to_vec(), false).expect("comment");
        assert!(text.ends_with("Bind 127.0.0.1:1\n"), "{text}");
        let p = config_text(b"Bind 127.0.0.1:1\n\nName caf\xe9\n".to_vec(), false);
        assert_eq!(
            p,
            Err(vec![ConfigProblem::new(3, "this line is not UTF-8 text")])
        );
        // TOML: a `#` line may be inside a multi-line string, so it is not exempt.
        assert!(config_text(b"pw = \"\"\"\n# caf\xe9\n\"\"\"\n".to_vec(), true).is_err());
        let p = config_text(b"Name caf\xe9\n".repeat(150), false).expect_err("many");
        assert_eq!(p.len(), 101);
        assert!(p[100].message.contains("and 50 more"), "{:?}", p[100]);
    }

    #[test]
    fn shared_validation() {
        let mut cfg = Config {
            worker_threads: 0,
            allow: vec!["10.0.0.0/8".to_string(), "nope".to_string()],
            auth: Some(vec![]),
            ..Config::default()
        };
        cfg.sentinel_pool.databases = 0;
        let problems = cfg.validate();
        let text: Vec<&str> = problems.iter().map(|p| p.message.as_str()).collect();
        assert_eq!(problems.len(), 6, "{text:#?}");
        assert!(text.iter().any(|m| m.contains("worker threads 0")));
        assert!(text.iter().any(|m| m.contains("databases 0")));
        assert!(text.iter().any(|m| m.contains("`nope`")));
        assert!(text.iter().any(|m| m.contains("no sentinels")));
        assert!(text.iter().any(|m| m.contains("no groups")));
        assert!(text.iter().any(|m| m.contains("no auth entries")));
        assert_eq!(cfg.allow_cidrs().len(), 1);
    }

    /// A small deterministic generator so the garbage test needs no extra crate.
    struct XorShift(u64);

    impl XorShift {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }

        fn below(&mut self, n: usize) -> usize {
            usize::try_from(self.next() % n as u64).unwrap_or(0)
        }
    }

    /// Both parsers, on one input; they must return, never panic.
    fn parse_both(text: &str) {
        let _ = predixy::parse(text);
        let _ = toml_format::parse(text);
    }

    #[test]
    fn truncated_files_never_panic() {
        for file in [PREDIXY_CONF, REDMUX_TOML] {
            for end in (0..=file.len()).filter(|i| file.is_char_boundary(*i)) {
                parse_both(&file[..end]);
            }
        }
    }

    #[test]
    fn garbage_never_panics() {
        const ALPHABET: &[u8] = b" \t\n\r{}[]\"'#+=.,:/\\-_0123456789abcdefxyzABCSG";
        let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
        let started = std::time::Instant::now();
        for round in 0..3000 {
            if started.elapsed() > Duration::from_secs(20) {
                break;
            }
            let base = if round % 2 == 0 {
                PREDIXY_CONF
            } else {
                REDMUX_TOML
            };
            let mut bytes = base.as_bytes().to_vec();
            for _ in 0..1 + rng.below(8) {
                let at = rng.below(bytes.len());
                bytes[at] = ALPHABET[rng.below(ALPHABET.len())];
            }
            parse_both(&String::from_utf8_lossy(&bytes));
            let len = rng.below(200);
            let junk: Vec<u8> = (0..len)
                .map(|_| ALPHABET[rng.below(ALPHABET.len())])
                .collect();
            parse_both(&String::from_utf8_lossy(&junk));
            let raw: Vec<u8> = (0..len).map(|_| (rng.next() & 0xff) as u8).collect();
            parse_both(&String::from_utf8_lossy(&raw));
        }
        parse_both(&"{".repeat(100_000));
        parse_both(&"}".repeat(100_000));
        parse_both(&"[".repeat(100_000));
        parse_both(&"a = [".repeat(10_000));
        parse_both("\u{feff}Bind \"\u{0}\"\n\u{2028}+ \u{10ffff}");
    }
}
