//! The typed configuration every other module reads.
//!
//! Two file formats load into the same [`Config`]: redmux's own TOML (`*.toml`, see
//! `conf/redmux.toml`) and the predixy-style format users already have (anything else, see
//! `conf/predixy.conf`). Both loaders report every problem they find with the file and line,
//! what was wrong and what was expected; nothing in a file can panic the process.

mod predixy;
mod toml_format;

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
        }
    }
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
    /// Largest bulk string a client may send (Redis' proto-max-bulk-len).
    pub proto_max_bulk_len: usize,
    /// Largest unparsed request buffer per client (Redis' client-query-buffer-limit).
    pub client_query_buffer_limit: usize,
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
            proto_max_bulk_len: 512 * 1024 * 1024,
            client_query_buffer_limit: 1024 * 1024 * 1024,
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

impl Config {
    /// Bytes of unwritten replies after which a normal client is dropped: twice the
    /// largest value, so any single reply fits.
    pub fn client_output_limit(&self) -> usize {
        self.proto_max_bulk_len
            .saturating_mul(2)
            .max(64 * 1024 * 1024)
    }

    /// Loads a config file: `*.toml` as redmux TOML, anything else as predixy-style.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            path: path.to_path_buf(),
            problems: vec![ConfigProblem {
                line: 0,
                message: format!("cannot read the file: {e}"),
            }],
        })?;
        let is_toml = path.extension().is_some_and(|ext| ext == "toml");
        let parsed = if is_toml {
            toml_format::parse(&text)
        } else {
            predixy::parse(&text)
        };
        parsed.map_err(|problems| ConfigError {
            path: path.to_path_buf(),
            problems,
        })
    }
}
