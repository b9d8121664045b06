//! predixy-style config files, as users already write them.
//!
//! The syntax lives in [`syntax`]; this module gives the directives their meaning.
//! Directive names are predixy's (matched in any case, as predixy does), plus a few of
//! redmux's own:
//! `MetricsBind`, `Allow`, `LogLevel`, `LogFormat`, `ProtoMaxBulkLen`,
//! `ClientQueryBufferLimit`, `ClientOutputBufferLimitNormal`,
//! `ClientOutputBufferLimitPubsub`, `AuthFailureLimit`, `TlsCert`, `TlsKey`, `TlsClientCa`,
//! and in the pool `User`, `SentinelUser`, `SentinelPassword`, `Tls`, `SentinelTls`,
//! `TlsCa`, `TlsCert`, `TlsKey`, `TlsServerName`, `TlsInsecureSkipVerify`.
//! Every problem is recorded with its line and parsing goes on, so one run shows them all.

mod syntax;

use std::collections::HashMap;

use super::{
    validate, value, AuthEntry, Config, ConfigProblem, GroupConfig, SourceLines, MAX_SHOWN,
    WORKER_THREADS_TEXT,
};
use syntax::{Directive, Node};

const TOP: &[&str] = &[
    "Name",
    "Bind",
    "WorkerThreads",
    "ClientTimeout",
    "MaxClients",
    "ProxyProtocol",
    "LogLevel",
    "LogFormat",
    "MetricsBind",
    "Allow",
    "ProtoMaxBulkLen",
    "ClientQueryBufferLimit",
    "ClientOutputBufferLimitNormal",
    "ClientOutputBufferLimitPubsub",
    "AuthFailureLimit",
    "TlsCert",
    "TlsKey",
    "TlsClientCa",
    "Authority",
    "SentinelServerPool",
];

const AUTHORITY: &[&str] = &["Auth"];

const AUTH: &[&str] = &["Mode", "KeyPrefix", "ReadKeyPrefix", "WriteKeyPrefix"];

const POOL: &[&str] = &[
    "RefreshMethod",
    "Databases",
    "Hash",
    "HashTag",
    "Distribution",
    "MasterReadPriority",
    "StaticSlaveReadPriority",
    "DynamicSlaveReadPriority",
    "RefreshInterval",
    "ServerTimeout",
    "ServerFailureLimit",
    "ServerRetryTimeout",
    "KeepAlive",
    "User",
    "Password",
    "SentinelUser",
    "SentinelPassword",
    "Sentinels",
    "Group",
    "Tls",
    "SentinelTls",
    "TlsCa",
    "TlsCert",
    "TlsKey",
    "TlsServerName",
    "TlsInsecureSkipVerify",
];

/// predixy directives that only tune what redmux does its own way (logging, buffers,
/// statistics): accepted with a warning, so a predixy.conf loads as it is.
const IGNORED: &[(&str, &str)] = &[
    ("Log", "logs go to stderr (set LogLevel and LogFormat)"),
    ("LogRotate", "logs go to stderr, rotate them outside"),
    ("LogVerbSample", "use LogLevel"),
    ("LogDebugSample", "use LogLevel"),
    ("LogInfoSample", "use LogLevel"),
    ("LogNoticeSample", "use LogLevel"),
    ("LogWarnSample", "use LogLevel"),
    ("LogErrorSample", "use LogLevel"),
    ("BufSize", "buffers grow as needed"),
    ("AllowMissLog", "logs go to stderr (set LogLevel)"),
    (
        "LatencyMonitor",
        "latency is in the Prometheus metrics (MetricsBind) and INFO",
    ),
    ("SlowlogLogSlowerThan", "redmux keeps no slow log"),
    ("SlowlogMaxLen", "redmux keeps no slow log"),
];

/// predixy directives redmux knows but does not implement, and why: loading them would
/// change what the proxy does, so they are refused.
const UNSUPPORTED: &[(&str, &str)] = &[
    (
        "ClusterServerPool",
        "not supported by redmux: only SentinelServerPool",
    ),
    (
        "StandaloneServerPool",
        "not supported by redmux: only SentinelServerPool",
    ),
    (
        "Include",
        "Include is not supported: put the whole configuration in one file",
    ),
    (
        "MaxMemory",
        "not supported by redmux (only `MaxMemory 0`, no limit, is accepted): use \
         ClientQueryBufferLimit and ClientOutputBufferLimitNormal",
    ),
    ("DataCenter", "not supported by redmux"),
    ("CustomCommand", "not supported by redmux"),
];

/// True when a pool block says `RefreshMethod sentinel`.
fn has_sentinel_refresh(d: &Directive) -> bool {
    d.block.as_deref().unwrap_or_default().iter().any(|n| {
        matches!(n, Node::Directive(r) if r.name == "RefreshMethod"
            && r.args.len() == 1 && r.args[0].eq_ignore_ascii_case("sentinel"))
    })
}

/// Every directive name this format knows, in its documented spelling.
fn known_names() -> impl Iterator<Item = &'static str> {
    TOP.iter()
        .chain(AUTHORITY)
        .chain(AUTH)
        .chain(POOL)
        .copied()
        .chain(IGNORED.iter().map(|(n, _)| *n))
        .chain(UNSUPPORTED.iter().map(|(n, _)| *n))
        .chain(["MaxMemory", "RefreshMethod"])
}

/// predixy compares directive names without regard to case (`bufsize`, `MASTERREADPRIORITY`):
/// every name that matches a known one that way is given its documented spelling.
fn canonical_names(nodes: &mut [Node]) {
    for node in nodes {
        if let Node::Directive(d) = node {
            if let Some(known) = known_names().find(|k| k.eq_ignore_ascii_case(&d.name)) {
                if d.name != known {
                    d.name = known.to_string();
                }
            }
            if let Some(block) = d.block.as_mut() {
                canonical_names(block);
            }
        }
    }
}

/// Parses a predixy-style file into a [`Config`], or every problem found in it.
pub(super) fn parse(text: &str) -> Result<Config, Vec<ConfigProblem>> {
    // A file saved by an editor that writes a byte-order mark.
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut problems = Vec::new();
    let mut tree = syntax::parse_tree(text, &mut problems);
    canonical_names(&mut tree);
    let mut loader = Loader::new();
    loader.top(&tree);
    if !loader.saw_pool {
        loader.lines.missing_pool = true;
        if !loader.saw_other_pool {
            loader.problem(
                0,
                "missing SentinelServerPool { ... } (redmux needs one Sentinel pool with \
                 Sentinels and at least one Group)",
            );
        }
    }
    problems.append(&mut loader.problems);
    problems.extend(validate(&loader.cfg, &loader.lines));
    problems.sort_by_key(|p| p.line);
    let more = problems.len().saturating_sub(MAX_SHOWN) + loader.dropped;
    if more > 0 {
        problems.truncate(MAX_SHOWN);
        let last = problems.last().map_or(0, |p| p.line);
        problems.push(ConfigProblem::new(
            last,
            format!("... and {more} more problems after this line"),
        ));
    }
    let warnings = loader.warnings_seen;
    if warnings > MAX_SHOWN {
        let last = loader.cfg.warnings.last().map_or(0, |p| p.line);
        loader.cfg.warnings.push(ConfigProblem::new(
            last,
            format!("... and {} more warnings", warnings - MAX_SHOWN),
        ));
    }
    if problems.is_empty() {
        Ok(loader.cfg)
    } else {
        Err(problems)
    }
}

/// The config being filled, the lines its values came from, and the problems so far.
#[derive(Default)]
struct Loader {
    cfg: Config,
    lines: SourceLines,
    problems: Vec<ConfigProblem>,
    /// `scope/name` of every single-valued directive seen, with its line.
    seen: HashMap<String, usize>,
    saw_pool: bool,
    saw_other_pool: bool,
    /// Problems past [`MAX_SHOWN`], counted only.
    dropped: usize,
    /// Warnings given (those past [`MAX_SHOWN`] are counted only).
    warnings_seen: usize,
    /// The first `Sentinels` block's line and password (empty for none).
    sentinels_password: Option<(usize, String)>,
    /// `KeyPrefix` of each Auth entry being read: predixy uses it only for the side
    /// (read or write) that has no prefix of its own.
    key_prefix: Vec<Vec<u8>>,
}

impl Loader {
    /// A loader whose defaults are predixy's where they differ from redmux TOML's: no hash
    /// tag, master read priority 50, one database, `Bind 0.0.0.0:7617`.
    fn new() -> Loader {
        let mut loader = Loader::default();
        let pool = &mut loader.cfg.sentinel_pool;
        pool.hash_tag = None;
        pool.master_read_priority = 50;
        pool.databases = 1;
        loader.cfg.bind = std::net::SocketAddr::from(([0, 0, 0, 0], 7617));
        loader
    }

    /// A warning for the operator; counted past [`MAX_SHOWN`], kept up to it.
    fn warn(&mut self, line: usize, message: String) {
        self.warnings_seen += 1;
        if self.cfg.warnings.len() < MAX_SHOWN {
            self.cfg.warnings.push(ConfigProblem::new(line, message));
        }
    }

    fn problem(&mut self, line: usize, message: impl Into<String>) {
        if self.problems.len() >= MAX_SHOWN {
            self.dropped += 1;
            return;
        }
        self.problems.push(ConfigProblem::new(line, message));
    }

    /// Records a directive that may appear once in `scope`; false (with a problem) if it
    /// appeared before.
    fn once(&mut self, scope: &str, d: &Directive) -> bool {
        let key = format!("{scope}/{}", d.name);
        if let Some(first) = self.seen.get(&key).copied() {
            let msg = format!(
                "`{}` given twice in {scope} (first on line {first}; expected it once)",
                d.name
            );
            self.problem(d.line, msg);
            return false;
        }
        self.seen.insert(key, d.line);
        true
    }

    /// The one value of a directive that takes exactly one and no block.
    fn one_value<'a>(&mut self, d: &'a Directive) -> Option<&'a str> {
        self.no_block(d);
        match d.args.as_slice() {
            [value] => Some(value.as_str()),
            args => {
                let msg = format!(
                    "`{}` expects exactly one value, got {} (expected `{} value`)",
                    d.name,
                    args.len(),
                    d.name
                );
                self.problem(d.line, msg);
                None
            }
        }
    }

    /// Parses the one value of a once-only directive with `parse`.
    fn value<T>(
        &mut self,
        scope: &str,
        d: &Directive,
        parse: impl FnOnce(&str) -> Result<T, String>,
    ) -> Option<T> {
        if !self.once(scope, d) {
            return None;
        }
        let text = self.one_value(d)?;
        match parse(text) {
            Ok(v) => Some(v),
            Err(e) => {
                self.problem(d.line, format!("`{}`: {e}", d.name));
                None
            }
        }
    }

    fn no_block(&mut self, d: &Directive) {
        if d.block.is_some() {
            let msg = format!(
                "`{}` does not take a {{ }} block (expected `{} value`)",
                d.name, d.name
            );
            self.problem(d.line, msg);
        }
    }

    /// The block of a directive that needs one; `None` (with a problem) when it has none.
    fn block<'a>(&mut self, d: &'a Directive) -> Option<&'a [Node]> {
        if d.block.is_none() {
            self.problem(d.line, format!("`{}` needs a {{ ... }} block", d.name));
        }
        d.block.as_deref()
    }

    fn no_args(&mut self, d: &Directive) {
        if !d.args.is_empty() {
            let msg = format!(
                "`{}` takes no value before its block (expected `{} {{`)",
                d.name, d.name
            );
            self.problem(d.line, msg);
        }
    }

    /// The `+ value` items of a list block, with their lines.
    fn items(&mut self, d: &Directive, what: &str) -> Vec<(usize, String)> {
        let mut out = Vec::new();
        for node in d.block.as_deref().unwrap_or_default() {
            match node {
                Node::Item { line, values } if values.len() == 1 => {
                    out.push((*line, values[0].clone()));
                }
                Node::Item { line, values } => {
                    let msg = format!(
                        "`+` item in `{}` has {} values (expected `+ {what}`)",
                        d.name,
                        values.len()
                    );
                    self.problem(*line, msg);
                }
                Node::Directive(inner) => {
                    let msg = format!(
                        "`{}` is not allowed inside `{}` (expected `+ {what}` lines)",
                        inner.name, d.name
                    );
                    self.problem(inner.line, msg);
                }
            }
        }
        out
    }

    /// Reports a directive that is not valid in `scope`, and an item where only directives go.
    fn unknown(&mut self, scope: &str, expected: &[&str], node: &Node) {
        let d = match node {
            Node::Directive(d) => d,
            Node::Item { line, .. } => {
                let msg = format!(
                    "unexpected `+` item in {scope} (expected one of: {})",
                    expected.join(", ")
                );
                self.problem(*line, msg);
                return;
            }
        };
        let top = scope == "the top level";
        let ignored = IGNORED.iter().find(|(name, _)| *name == d.name);
        if !top && (ignored.is_some() || d.name == "MaxMemory") {
            let msg = format!("`{}` belongs at the top level, not in {scope}", d.name);
            self.problem(d.line, msg);
            return;
        }
        if d.name == "MaxMemory" && d.block.is_none() && d.args.len() != 1 {
            // Counted like every one-value directive.
            self.one_value(d);
            return;
        }
        let unlimited = d.name == "MaxMemory"
            && d.args.len() == 1
            && !d.args[0].is_empty()
            && d.args[0].bytes().all(|b| b == b'0');
        if let Some((_, why)) = ignored.or(unlimited.then_some(&("", "no limit is the default"))) {
            // Their form is checked (a value, or a block), so a line run together with the
            // next one is not waved through; the values themselves have no use here.
            if d.name == "LatencyMonitor" {
                self.block(d);
            } else if d.name == "LogRotate" && d.block.is_none() && d.args.len() == 2 {
                // predixy's `LogRotate 1d 2G`: a period and a size.
            } else {
                self.one_value(d);
            }
            self.warn(d.line, format!("`{}` ignored: {why}", d.name));
            return;
        }
        if let Some((_, why)) = UNSUPPORTED.iter().find(|(name, _)| *name == d.name) {
            self.problem(d.line, format!("`{}`: {why}", d.name));
            return;
        }
        let hint = expected
            .iter()
            .find(|e| e.eq_ignore_ascii_case(&d.name))
            .map(|e| format!("did you mean `{e}`? "))
            .unwrap_or_default();
        let msg = format!(
            "unknown directive `{}` in {scope} ({hint}expected one of: {})",
            d.name,
            expected.join(", ")
        );
        self.problem(d.line, msg);
    }
}

/// Top level.
impl Loader {
    fn top(&mut self, nodes: &[Node]) {
        for node in nodes {
            match node {
                Node::Directive(d) if TOP.contains(&d.name.as_str()) => self.top_directive(d),
                // predixy's other way to write a Sentinel pool.
                Node::Directive(d)
                    if d.name == "StandaloneServerPool" && has_sentinel_refresh(d) =>
                {
                    self.pool(d)
                }
                Node::Directive(d) if d.name.ends_with("ServerPool") => {
                    self.saw_other_pool = true;
                    self.unknown("the top level", TOP, node);
                }
                _ => self.unknown("the top level", TOP, node),
            }
        }
    }

    fn top_directive(&mut self, d: &Directive) {
        const S: &str = "the top level";
        match d.name.as_str() {
            "Name" => {
                // predixy shows it in INFO; redmux has no use for it, whatever it says.
                let _ = self.once(S, d);
                self.no_block(d);
            }
            "Bind" => {
                if let Some(v) = self.value(S, d, value::parse_bind) {
                    self.cfg.bind = v;
                }
            }
            "WorkerThreads" => {
                self.lines.worker_threads = d.line;
                let threads = |t: &str| {
                    value::parse_number(t)
                        .map_err(|_| format!("bad number `{t}` (expected {WORKER_THREADS_TEXT})"))
                };
                if let Some(v) = self.value(S, d, threads) {
                    self.cfg.worker_threads = v;
                }
            }
            "ClientTimeout" => {
                if let Some(v) = self.value(S, d, value::parse_whole_seconds) {
                    self.cfg.client_timeout = v;
                }
            }
            "MaxClients" => {
                if let Some(v) = self.value(S, d, value::parse_number) {
                    self.cfg.max_clients = v;
                }
            }
            _ => self.top_directive_more(d),
        }
    }

    fn top_directive_more(&mut self, d: &Directive) {
        const S: &str = "the top level";
        match d.name.as_str() {
            "ProxyProtocol" => {
                if let Some(v) = self.value(S, d, value::parse_bool) {
                    self.cfg.proxy_protocol = v;
                }
            }
            "LogLevel" => {
                self.lines.log_level = d.line;
                if let Some(v) = self.value(S, d, |v| Ok::<_, String>(v.to_string())) {
                    self.cfg.log_level = v;
                }
            }
            "LogFormat" => {
                if let Some(v) = self.value(S, d, value::parse_log_format) {
                    self.cfg.log_format = v;
                }
            }
            "MetricsBind" => {
                if let Some(v) = self.value(S, d, value::parse_bind) {
                    self.cfg.metrics_bind = Some(v);
                }
            }
            "ProtoMaxBulkLen" => {
                self.lines.proto_max_bulk_len = d.line;
                if let Some(v) = self.value(S, d, value::parse_size) {
                    self.cfg.proto_max_bulk_len = v;
                }
            }
            "ClientQueryBufferLimit" => {
                self.lines.client_query_buffer_limit = d.line;
                if let Some(v) = self.value(S, d, value::parse_size) {
                    self.cfg.client_query_buffer_limit = v;
                }
            }
            "ClientOutputBufferLimitNormal" => {
                if let Some(v) = self.value(S, d, value::parse_size) {
                    self.cfg.client_output_buffer_limit_normal = v;
                }
            }
            "ClientOutputBufferLimitPubsub" => {
                if let Some(v) = self.value(S, d, value::parse_size) {
                    self.cfg.client_output_buffer_limit_pubsub = v;
                }
            }
            "AuthFailureLimit" => {
                if let Some(v) = self.value(S, d, value::parse_number) {
                    self.cfg.auth_failure_limit = v;
                }
            }
            "TlsCert" | "TlsKey" | "TlsClientCa" => self.tls(d),
            "Allow" => self.allow(d),
            "Authority" => self.authority(d),
            _ => self.pool(d),
        }
    }

    /// `TlsCert FILE`, `TlsKey FILE`, `TlsClientCa FILE`: the first two turn TLS on
    /// together.
    fn tls(&mut self, d: &Directive) {
        let Some(path) = self.value("the top level", d, |v| Ok::<_, String>(v.to_string())) else {
            return;
        };
        let tls = self.cfg.tls.get_or_insert_with(|| super::TlsConfig {
            cert: Default::default(),
            key: Default::default(),
            client_ca: None,
        });
        match d.name.as_str() {
            "TlsCert" => tls.cert = path.into(),
            "TlsKey" => tls.key = path.into(),
            _ => tls.client_ca = Some(path.into()),
        }
        self.lines.tls = d.line;
    }

    /// `Allow 10.0.0.0/8 ...` and/or `Allow { + 10.0.0.0/8 }`; may repeat.
    fn allow(&mut self, d: &Directive) {
        let mut entries: Vec<(usize, String)> =
            d.args.iter().map(|a| (d.line, a.clone())).collect();
        entries.extend(self.items(d, "ip/prefix"));
        if entries.is_empty() {
            self.problem(
                d.line,
                "`Allow` lists no addresses (expected `Allow 10.0.0.0/8` or `Allow { + 10.0.0.0/8 }`)",
            );
        }
        for (line, entry) in entries {
            self.lines.allow.push(line);
            self.cfg.allow.push(entry);
        }
    }
}

/// `Authority { Auth "password" { ... } ... }`.
impl Loader {
    fn authority(&mut self, d: &Directive) {
        if !self.once("the top level", d) {
            return;
        }
        self.no_args(d);
        self.lines.authority = d.line;
        let mut entries = Vec::new();
        let Some(block) = self.block(d) else {
            return;
        };
        for node in block {
            match node {
                Node::Directive(a) if a.name == "Auth" => {
                    if let Some(entry) = self.auth(a, entries.len()) {
                        self.lines.auth.push(a.line);
                        entries.push(entry);
                    }
                }
                _ => self.unknown("Authority", AUTHORITY, node),
            }
        }
        self.cfg.auth = Some(entries);
    }

    /// One `Auth "password" { Mode ...; KeyPrefix ... }`; the block may be left out.
    fn auth(&mut self, d: &Directive, index: usize) -> Option<AuthEntry> {
        let scope = format!("Auth #{}", index + 1);
        let password = match d.args.as_slice() {
            [p] => p.clone(),
            // As in predixy: the entry for clients that never send AUTH.
            [] => String::new(),
            args => {
                let msg = format!(
                    "`Auth` expects one password, got {} (expected `Auth \"password\" {{`, \
                     or `Auth {{` for clients that send no password)",
                    args.len()
                );
                self.problem(d.line, msg);
                return None;
            }
        };
        let mut entry = AuthEntry {
            password,
            mode: super::AuthMode::Write,
            read_key_prefix: Vec::new(),
            write_key_prefix: Vec::new(),
        };
        self.key_prefix.clear();
        let block = self.block(d)?;
        for node in block {
            self.auth_directive(&scope, node, &mut entry);
        }
        let has_mode = block
            .iter()
            .any(|n| matches!(n, Node::Directive(m) if m.name == "Mode"));
        if !has_mode {
            // predixy gives such an entry no rights at all; redmux has no such mode.
            let msg = "`Auth` has no `Mode` (predixy allows such a client no command): add \
                       `Mode read`, `Mode write` or `Mode admin`";
            self.problem(d.line, msg);
        }
        // predixy's rule: `KeyPrefix` applies to a side only when that side has no
        // `ReadKeyPrefix` / `WriteKeyPrefix` of its own.
        let key_prefix = std::mem::take(&mut self.key_prefix);
        if entry.read_key_prefix.is_empty() {
            entry.read_key_prefix = key_prefix.clone();
        }
        if entry.write_key_prefix.is_empty() {
            entry.write_key_prefix = key_prefix;
        }
        Some(entry)
    }

    fn auth_directive(&mut self, scope: &str, node: &Node, entry: &mut AuthEntry) {
        let d = match node {
            Node::Directive(d) if AUTH.contains(&d.name.as_str()) => d,
            _ => return self.unknown(scope, AUTH, node),
        };
        if d.name == "Mode" {
            if let Some(mode) = self.value(scope, d, value::parse_mode) {
                entry.mode = mode;
            }
            return;
        }
        self.no_block(d);
        if d.args.is_empty() {
            let msg = format!(
                "`{}` lists no prefixes (expected `{} prefix ...`)",
                d.name, d.name
            );
            self.problem(d.line, msg);
        }
        // As predixy: each value is split at spaces and tabs (`KeyPrefix "a: b:"` is two
        // prefixes) and empty pieces are dropped (`""` is no prefix, not "every key").
        let prefixes = d
            .args
            .iter()
            .flat_map(|a| a.split([' ', '\t']))
            .filter(|p| !p.is_empty())
            .map(|p| p.as_bytes().to_vec());
        match d.name.as_str() {
            "ReadKeyPrefix" => entry.read_key_prefix.extend(prefixes),
            "WriteKeyPrefix" => entry.write_key_prefix.extend(prefixes),
            _ => self.key_prefix.extend(prefixes),
        }
    }
}

/// `SentinelServerPool { ... }`.
impl Loader {
    fn pool(&mut self, d: &Directive) {
        if self.saw_pool {
            let msg = format!("`{}`: a second server pool (redmux serves one)", d.name);
            self.problem(d.line, msg);
            return;
        }
        self.saw_pool = true;
        self.no_args(d);
        self.lines.pool = d.line;
        for node in self.block(d).unwrap_or_default() {
            match node {
                Node::Directive(p) if POOL.contains(&p.name.as_str()) => self.pool_directive(p),
                _ => self.unknown("SentinelServerPool", POOL, node),
            }
        }
    }

    fn pool_directive(&mut self, d: &Directive) {
        const S: &str = "SentinelServerPool";
        match d.name.as_str() {
            "RefreshMethod" => {
                // predixy's way of saying what a SentinelServerPool is anyway.
                let sentinel = |v: &str| {
                    if v.eq_ignore_ascii_case("sentinel") {
                        Ok(())
                    } else {
                        Err(format!(
                            "`{v}`: a SentinelServerPool is refreshed from Sentinel \
                             (expected `RefreshMethod sentinel`, or no line)"
                        ))
                    }
                };
                let _ = self.value(S, d, sentinel);
            }
            "Databases" => {
                self.lines.databases = d.line;
                if let Some(v) = self.value(S, d, value::parse_number) {
                    self.cfg.sentinel_pool.databases = v;
                }
            }
            "Hash" => {
                if let Some(v) = self.value(S, d, value::parse_hash) {
                    self.cfg.sentinel_pool.hash = v;
                }
            }
            "HashTag" if d.args.is_empty() => {
                // `HashTag {}` unquoted reads as an empty block; `HashTag` alone turns tags
                // off. predixy takes both that way.
                if self.once(S, d) {
                    self.cfg.sentinel_pool.hash_tag = match d.block.as_deref() {
                        Some([]) => Some((b'{', b'}')),
                        Some(_) => {
                            self.problem(d.line, "bad hash tag (expected `HashTag \"{}\"`)");
                            None
                        }
                        None => None,
                    };
                }
            }
            "HashTag" => {
                if let Some(v) = self.value(S, d, value::parse_hash_tag) {
                    self.cfg.sentinel_pool.hash_tag = v;
                }
            }
            "Distribution" => {
                if let Some(v) = self.value(S, d, value::parse_distribution) {
                    self.cfg.sentinel_pool.distribution = v;
                }
            }
            "Sentinels" => self.sentinels(d),
            "Group" => self.group(d),
            "Tls"
            | "SentinelTls"
            | "TlsCa"
            | "TlsCert"
            | "TlsKey"
            | "TlsServerName"
            | "TlsInsecureSkipVerify" => self.pool_tls(d),
            "MasterReadPriority"
            | "StaticSlaveReadPriority"
            | "DynamicSlaveReadPriority"
            | "ServerFailureLimit" => self.pool_number(d),
            "RefreshInterval" | "ServerTimeout" | "ServerRetryTimeout" | "KeepAlive" => {
                self.pool_duration(d)
            }
            _ => self.credential(d),
        }
    }

    /// Priorities and counts of the pool.
    fn pool_number(&mut self, d: &Directive) {
        let Some(v) = self.value("SentinelServerPool", d, value::parse_number::<u32>) else {
            return;
        };
        let pool = &mut self.cfg.sentinel_pool;
        match d.name.as_str() {
            "MasterReadPriority" => pool.master_read_priority = v,
            "StaticSlaveReadPriority" => pool.static_replica_read_priority = v,
            "DynamicSlaveReadPriority" => pool.dynamic_replica_read_priority = v,
            _ => pool.server_failure_limit = v,
        }
    }

    /// Durations of the pool.
    fn pool_duration(&mut self, d: &Directive) {
        if d.name == "RefreshInterval" {
            self.lines.refresh_interval = d.line;
        }
        let parse = if d.name == "KeepAlive" {
            value::parse_whole_seconds
        } else {
            value::parse_predixy_duration
        };
        let Some(v) = self.value("SentinelServerPool", d, parse) else {
            return;
        };
        // `1m` is a millisecond to predixy (and so here), which is rarely what was meant.
        if let [text] = d.args.as_slice() {
            let (number, unit) = value::number_and_unit(text);
            if unit.eq_ignore_ascii_case("m") {
                let msg = format!(
                    "`{} {text}` is {v:?}: predixy reads `m` as milliseconds (write \
                     `{number}ms` to say so; there is no minutes unit)",
                    d.name
                );
                self.warn(d.line, msg);
            }
        }
        let pool = &mut self.cfg.sentinel_pool;
        match d.name.as_str() {
            "RefreshInterval" => pool.refresh_interval = v,
            "ServerTimeout" => pool.server_timeout = v,
            "ServerRetryTimeout" => pool.server_retry_timeout = v,
            _ => pool.keep_alive = v,
        }
    }

    /// `User`, `Password`, `SentinelUser`, `SentinelPassword`; an empty value means none.
    fn credential(&mut self, d: &Directive) {
        let v = if d.args.is_empty() && d.block.is_none() {
            // `Password` with no value: none, as in predixy.
            self.once("SentinelServerPool", d).then(String::new)
        } else {
            self.value("SentinelServerPool", d, |v| Ok::<_, String>(v.to_string()))
        };
        let Some(v) = v else {
            return;
        };
        let v = Some(v).filter(|v| !v.is_empty());
        let pool = &mut self.cfg.sentinel_pool;
        match d.name.as_str() {
            "User" => pool.user = v,
            "Password" => pool.password = v,
            "SentinelUser" => pool.sentinel_user = v,
            _ if pool.sentinel_password.is_some() => {
                let msg = "the Sentinel password is given twice: before the `Sentinels` block \
                           and by `SentinelPassword` (keep one)";
                self.problem(d.line, msg);
            }
            _ => pool.sentinel_password = v,
        }
    }

    /// `Tls yes`, `SentinelTls yes`, `TlsCa FILE`, `TlsCert FILE`, `TlsKey FILE`,
    /// `TlsServerName NAME`, `TlsInsecureSkipVerify yes`: TLS to servers and Sentinels.
    fn pool_tls(&mut self, d: &Directive) {
        const S: &str = "SentinelServerPool";
        if self.lines.backend_tls == 0 {
            self.lines.backend_tls = d.line;
        }
        let name = d.name.as_str();
        if matches!(name, "Tls" | "SentinelTls" | "TlsInsecureSkipVerify") {
            let Some(v) = self.value(S, d, value::parse_bool) else {
                return;
            };
            let tls = &mut self.cfg.sentinel_pool.tls;
            match name {
                "Tls" => tls.servers = v,
                "SentinelTls" => tls.sentinels = v,
                _ => tls.insecure_skip_verify = v,
            }
            return;
        }
        let Some(v) = self.value(S, d, |v| Ok::<_, String>(v.to_string())) else {
            return;
        };
        let v = Some(v).filter(|v| !v.is_empty());
        let tls = &mut self.cfg.sentinel_pool.tls;
        match name {
            "TlsCa" => tls.ca = v.map(Into::into),
            "TlsCert" => tls.cert = v.map(Into::into),
            "TlsKey" => tls.key = v.map(Into::into),
            _ => tls.server_name = v,
        }
    }

    /// `Sentinels { + host:port ... }`; may repeat, the lists add up.
    fn sentinels(&mut self, d: &Directive) {
        if d.args.len() <= 1 {
            // predixy takes the password of the last `Sentinels` block, even an empty one.
            let password = d.args.first().cloned().unwrap_or_default();
            match &self.sentinels_password {
                Some((first, p)) if *p != password => {
                    let msg = format!(
                        "this `Sentinels` block's password differs from the one on line \
                         {first} (predixy would use only the last): give it once"
                    );
                    self.problem(d.line, msg);
                    return;
                }
                Some(_) => {}
                None => self.sentinels_password = Some((d.line, password)),
            }
        }
        match d.args.as_slice() {
            [] => {}
            // The same password as an earlier block: already taken.
            [_] if self
                .sentinels_password
                .as_ref()
                .is_some_and(|(l, _)| *l != d.line) => {}
            // predixy's `Sentinels password {`.
            [password] => {
                if self.cfg.sentinel_pool.sentinel_password.is_some() {
                    let msg = "the Sentinel password is given twice: before the `Sentinels` \
                               block and by `SentinelPassword` (keep one)";
                    self.problem(d.line, msg);
                } else if !password.is_empty() {
                    self.cfg.sentinel_pool.sentinel_password = Some(password.clone());
                }
            }
            _ => self.no_args(d),
        }
        if self.block(d).is_none() {
            return;
        }
        for (line, addr) in self.items(d, "host:port") {
            self.lines.sentinels.push(line);
            self.cfg.sentinel_pool.sentinels.push(addr);
        }
    }

    /// `Group name { + host:port ... }`: a master name and its static replicas.
    fn group(&mut self, d: &Directive) {
        let name = match d.args.as_slice() {
            [name] => name.clone(),
            args => {
                let msg = format!(
                    "`Group` expects exactly one master name, got {} (expected `Group name {{`)",
                    args.len()
                );
                self.problem(d.line, msg);
                return;
            }
        };
        let (lines, servers): (Vec<usize>, Vec<String>) =
            self.items(d, "host:port").into_iter().unzip();
        self.lines.groups.push(d.line);
        self.lines.group_servers.push(lines);
        self.cfg
            .sentinel_pool
            .groups
            .push(GroupConfig { name, servers });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{AuthMode, Distribution, HashKind};
    use std::time::Duration;

    const POOL_OK: &str =
        "SentinelServerPool {\n Sentinels {\n + s1:26379\n }\n Group g1 {\n }\n}\n";

    /// The problems of `text` as (line, message) pairs; panics if it loads.
    fn problems(text: &str) -> Vec<(usize, String)> {
        match parse(text) {
            Ok(cfg) => panic!("expected problems, loaded {cfg:?}"),
            Err(p) => p.into_iter().map(|p| (p.line, p.message)).collect(),
        }
    }

    /// Asserts `text` has exactly one problem, on `line`, whose message contains `needle`.
    fn one_problem(text: &str, line: usize, needle: &str) {
        let p = problems(text);
        assert_eq!(p.len(), 1, "{p:#?}");
        assert_eq!(p[0].0, line, "{p:#?}");
        assert!(p[0].1.contains(needle), "{:?} lacks {needle:?}", p[0].1);
    }

    #[test]
    fn full_featured_file() {
        let text = r#"
Name redmux-test
Bind 127.0.0.1:7000
WorkerThreads 2
ClientTimeout 30
MaxClients 1000
LogLevel redmux=debug,info
LogFormat json
MetricsBind 127.0.0.1:9000
Allow { + 192.168.22.0/24 }
Allow 10.0.0.0/8 ::1
ProtoMaxBulkLen 1mb
ClientQueryBufferLimit 2048
ClientOutputBufferLimitNormal 64mb
ClientOutputBufferLimitPubsub 8mb
AuthFailureLimit 5
TlsCert /tls/crt.pem
TlsKey /tls/key.pem
Authority {
    Auth "" { Mode read }
    Auth ro {
        Mode read
        KeyPrefix a: b:
        ReadKeyPrefix c:
        WriteKeyPrefix d:
    }
}
SentinelServerPool {
    Databases 4
    Hash atol
    HashTag ""
    Distribution random
    MasterReadPriority 0
    StaticSlaveReadPriority 200
    DynamicSlaveReadPriority 100
    RefreshInterval 500ms
    ServerTimeout 2s
    ServerFailureLimit 3
    ServerRetryTimeout 60
    KeepAlive 0
    User app
    Password "p w"
    SentinelUser sen
    SentinelPassword ""
    Sentinels {
        + 10.0.0.1:26379
        + [::1]:26379
    }
    Group g1 {
        + 10.0.0.5:6379
    }
    Group g2
}
"#;
        let cfg = parse(text).expect("loads");
        assert_eq!(cfg.bind.port(), 7000);
        assert_eq!(cfg.worker_threads, 2);
        assert_eq!(cfg.client_timeout, Duration::from_secs(30));
        assert_eq!(cfg.max_clients, 1000);
        assert_eq!(cfg.log_level, "redmux=debug,info");
        assert_eq!(cfg.log_format, crate::config::LogFormat::Json);
        assert_eq!(cfg.metrics_bind.map(|a| a.port()), Some(9000));
        assert_eq!(cfg.allow, vec!["192.168.22.0/24", "10.0.0.0/8", "::1"]);
        assert_eq!(cfg.proto_max_bulk_len, 1 << 20);
        assert_eq!(cfg.client_query_buffer_limit, 2048);
        assert_eq!(cfg.client_output_buffer_limit_normal, 64 << 20);
        assert_eq!(cfg.client_output_buffer_limit_pubsub, 8 << 20);
        assert_eq!(cfg.auth_failure_limit, 5);
        let tls = cfg.tls.clone().expect("tls");
        assert_eq!(tls.cert, std::path::Path::new("/tls/crt.pem"));
        assert_eq!(tls.key, std::path::Path::new("/tls/key.pem"));
        assert_eq!(tls.client_ca, None);
        let auth = cfg.auth.expect("auth");
        assert_eq!(
            (auth[0].password.as_str(), auth[0].mode),
            ("", AuthMode::Read)
        );
        // predixy's rule: KeyPrefix only where a side has no prefix of its own.
        assert_eq!(auth[1].read_key_prefix, vec![b"c:".to_vec()]);
        assert_eq!(auth[1].write_key_prefix, vec![b"d:".to_vec()]);
        let pool = cfg.sentinel_pool;
        assert_eq!(pool.databases, 4);
        assert_eq!(pool.hash, HashKind::Atol);
        assert_eq!(pool.hash_tag, None);
        assert_eq!(pool.distribution, Distribution::Random);
        assert_eq!(pool.master_read_priority, 0);
        assert_eq!(pool.static_replica_read_priority, 200);
        assert_eq!(pool.refresh_interval, Duration::from_millis(500));
        assert_eq!(pool.server_timeout, Duration::from_secs(2));
        assert_eq!(pool.server_retry_timeout, Duration::from_secs(60));
        assert_eq!(pool.server_failure_limit, 3);
        assert_eq!(pool.user.as_deref(), Some("app"));
        assert_eq!(pool.password.as_deref(), Some("p w"));
        assert_eq!(pool.sentinel_user.as_deref(), Some("sen"));
        assert_eq!(pool.sentinel_password, None);
        assert_eq!(pool.sentinels.len(), 2);
        assert_eq!(pool.groups[0].servers, vec!["10.0.0.5:6379"]);
        assert_eq!(pool.groups[1].name, "g2");
    }

    #[test]
    fn backend_tls_directives() {
        let text = POOL_OK.replace(
            " Group g1",
            " Tls yes\n SentinelTls yes\n TlsInsecureSkipVerify yes\n TlsServerName r.local\n Group g1",
        );
        let tls = parse(&text).expect("loads").sentinel_pool.tls;
        assert!(tls.servers && tls.sentinels && tls.insecure_skip_verify);
        assert_eq!(tls.server_name.as_deref(), Some("r.local"));
        let no_ca = POOL_OK.replace(" Group g1", " Tls yes\n Group g1");
        let p = problems(&no_ca);
        assert_eq!(p.len(), 1, "{p:?}");
        assert_eq!(p[0].0, 5);
        assert!(p[0].1.contains("TlsCa"), "{p:?}");
    }

    #[test]
    fn a_duration_in_m_loads_as_milliseconds_with_a_warning() {
        let text = POOL_OK.replace(
            "SentinelServerPool {",
            "SentinelServerPool {\n    ServerTimeout 1m\n    RefreshInterval 500ms",
        );
        let cfg = parse(&text).expect("loads");
        assert_eq!(cfg.sentinel_pool.server_timeout, Duration::from_millis(1));
        assert_eq!(cfg.warnings.len(), 1, "{:#?}", cfg.warnings);
        let w = &cfg.warnings[0];
        assert!(
            w.message.starts_with("`ServerTimeout 1m` is 1ms:") && w.message.contains("`1ms`"),
            "{w:?}"
        );
    }

    #[test]
    fn logging_and_buffer_tuning_are_ignored_with_a_warning() {
        let text = format!(
            "Log ./predixy.log\nLogRotate 1d 2G\nLogVerbSample 0\nLogErrorSample 1\n\
             BufSize 4096\nMaxMemory 0\nSlowlogLogSlowerThan 10000\nSlowlogMaxLen 128\n\
             LatencyMonitor all {{\n Commands {{\n + all\n }}\n TimeSpan {{\n + 100\n }}\n}}\n\
             {POOL_OK}"
        );
        let cfg = parse(&text).expect("loads");
        let lines: Vec<usize> = cfg.warnings.iter().map(|w| w.line).collect();
        assert_eq!(lines, [1, 2, 3, 4, 5, 6, 7, 8, 9], "{:#?}", cfg.warnings);
        assert!(cfg.warnings[0]
            .message
            .starts_with("`Log` ignored: logs go to stderr"));
        assert!(cfg.warnings[4].message.contains("`BufSize` ignored"));
        // Only at the top level, where predixy has them.
        let inside = "SentinelServerPool {\n BufSize 4096\n Sentinels {\n + s1:26379\n }\n \
                      Group g1 {\n }\n}\n";
        one_problem(inside, 2, "`BufSize` belongs at the top level");
        assert!(parse(POOL_OK).expect("loads").warnings.is_empty());
    }

    #[test]
    fn no_authority_means_no_auth() {
        let cfg = parse(POOL_OK).expect("loads");
        assert_eq!(cfg.auth, None);
        assert_eq!(cfg.worker_threads, 1);
    }

    #[test]
    fn each_problem_has_its_line() {
        let cases: &[(&str, usize, &str)] = &[
            ("Bogus 1\n", 1, "unknown directive `Bogus` in the top level"),
            ("\nbufsize\n", 2, "`BufSize` expects exactly one value"),
            ("Log ./x.log {\n}\n", 1, "`Log` does not take a { } block"),
            (
                "LatencyMonitor all\n",
                1,
                "`LatencyMonitor` needs a { ... } block",
            ),
            ("MaxMemory\n", 1, "`MaxMemory` expects exactly one value"),
            (
                "ClientTimeout 1m\n",
                1,
                "expected a whole number of seconds",
            ),
            (
                "ClientTimeout 0.5\n",
                1,
                "expected a whole number of seconds",
            ),
            ("Authority {\n Auth a {\n }\n}\n", 2, "`Auth` has no `Mode`"),
            (
                "Authority {\n Auth a\n Auth b {\n Mode read\n }\n}\n",
                2,
                "`Auth` needs a { ... } block",
            ),
            ("\n\nBind nowhere\n", 3, "bad listen address"),
            ("Bind\n", 1, "expects exactly one value, got 0"),
            ("Bind 1.2.3.4:1 2\n", 1, "got 2"),
            ("Bind 1.2.3.4:1 {\n}\n", 1, "does not take a { } block"),
            ("WorkerThreads 4x\n", 1, "bad number `4x`"),
            ("WorkerThreads 0\n", 1, "worker threads 0 out of range"),
            ("\nWorkerThreads 257\n", 2, "out of range"),
            ("ClientTimeout -1\n", 1, "bad duration"),
            ("MaxClients many\n", 1, "bad number"),
            ("LogLevel loud\n", 1, "bad log level"),
            ("LogFormat xml\n", 1, "bad log format"),
            ("MetricsBind x\n", 1, "bad listen address"),
            ("Allow\n", 1, "lists no addresses"),
            ("\nAllow {\n + 10.0.0.0/33\n}\n", 3, "bad prefix length"),
            ("Allow 300.0.0.1\n", 1, "not an IP address"),
            ("ProtoMaxBulkLen 0\n", 1, "proto max bulk len is 0"),
            ("ClientQueryBufferLimit 1tb\n", 1, "bad size"),
            ("Include other.conf\n", 1, "Include is not supported"),
            ("MaxMemory 1G\n", 1, "only `MaxMemory 0`"),
            ("DataCenter {\n}\n", 1, "not supported by redmux"),
            ("Authority\n", 1, "needs a { ... } block"),
            ("Authority {\n}\n", 1, "no auth entries"),
            (
                "Authority {\n Auth a {\n Mode root\n }\n}\n",
                3,
                "bad mode `root`",
            ),
            (
                "Authority {\n Auth a {\n Mode\n }\n}\n",
                3,
                "expects exactly one value",
            ),
            (
                "Authority {\n Auth a b {\n Mode read\n }\n Auth c {\n Mode read\n }\n}\n",
                2,
                "expects one password, got 2",
            ),
            (
                "Authority {\n Auth a {\n Mode read\n Colour red\n }\n}\n",
                4,
                "expected one of: Mode",
            ),
            (
                "Authority {\n Auth a {\n Mode read\n KeyPrefix\n }\n}\n",
                4,
                "lists no prefixes",
            ),
            (
                "Authority {\n Auth a {\n Mode read\n }\n Auth a {\n Mode read\n }\n}\n",
                5,
                "duplicate auth password (first on line 2)",
            ),
            (
                "Authority {\n Auth a {\n Mode read\n Mode write\n }\n}\n",
                4,
                "given twice",
            ),
            (
                "Authority {\n Auth ok {\n Mode read\n }\n Mode read\n}\n",
                5,
                "expected one of: Auth",
            ),
            (
                "Authority {\n Auth ok {\n Mode read\n }\n + x\n}\n",
                5,
                "unexpected `+` item",
            ),
            ("Bind 1.2.3.4:1\nBind 1.2.3.4:2\n", 2, "first on line 1"),
        ];
        for (text, line, needle) in cases {
            let text = format!("{text}{POOL_OK}");
            one_problem(&text, *line, needle);
        }
    }

    #[test]
    fn pool_problems_have_their_lines() {
        let pool = |body: &str| {
            format!("SentinelServerPool {{\n{body}Sentinels {{\n+ s:1\n}}\nGroup g {{\n}}\n}}\n")
        };
        let cases: &[(&str, usize, &str)] = &[
            ("Databases 0\n", 2, "databases 0 out of range"),
            ("Databases 1000001\n", 2, "out of range"),
            ("Databases -1\n", 2, "bad number"),
            ("Hash md5\n", 2, "bad hash `md5` (expected crc16 or atol)"),
            ("HashTag \"{\"\n", 2, "exactly two characters"),
            ("HashTag a b\n", 2, "expects exactly one value"),
            ("Distribution ketama\n", 2, "expected modula or random"),
            ("MasterReadPriority high\n", 2, "bad number"),
            ("StaticSlaveReadPriority 99999999999\n", 2, "bad number"),
            ("RefreshInterval 0\n", 2, "refresh interval is 0"),
            ("ServerTimeout 1x\n", 2, "bad duration"),
            ("KeepAlive 1.2.3\n", 2, "bad duration"),
            ("ServerFailureLimit\n", 2, "expects exactly one value"),
            (
                "Servers {\n}\n",
                2,
                "unknown directive `Servers` in SentinelServerPool",
            ),
            ("Group g {\n}\n", 7, "duplicate group `g` (first on line 2)"),
            ("Group {\n}\n", 2, "exactly one master name"),
            (
                "Group h {\n + nowhere\n}\n",
                3,
                "bad server address `nowhere`",
            ),
            ("Group h {\n + a:1 b:2\n}\n", 3, "has 2 values"),
            ("Sentinels {\n + bad\n}\n", 3, "bad server address"),
            (
                "Sentinels {\n + s3cret@10.0.0.1:26379\n}\n",
                3,
                "use `Password`",
            ),
            (
                "Sentinels {\n Foo 1\n}\n",
                3,
                "not allowed inside `Sentinels`",
            ),
            ("Password a b\n", 2, "got 2"),
        ];
        for (body, line, needle) in cases {
            one_problem(&pool(body), *line, needle);
        }
    }

    #[test]
    fn pool_level_problems() {
        one_problem("Bind 0.0.0.0:1\n", 0, "missing SentinelServerPool");
        one_problem(
            "ClusterServerPool {\n Servers {\n + a:1\n }\n}\n",
            1,
            "not supported by redmux: only SentinelServerPool",
        );
        one_problem("StandaloneServerPool {\n}\n", 1, "only SentinelServerPool");
        one_problem("SentinelServerPool {\n Group g\n}\n", 1, "no sentinels");
        one_problem(
            "SentinelServerPool {\n Sentinels {\n + a:1\n }\n}\n",
            1,
            "no groups",
        );
        one_problem(&format!("{POOL_OK}\n{POOL_OK}"), 9, "a second server pool");
    }

    #[test]
    fn all_problems_are_reported_in_line_order() {
        let text =
            "WorkerThreads x\nBind y\nSentinelServerPool {\n Hash md5\n Bogus 1\n}\nAuthority {\n";
        let lines: Vec<usize> = problems(text).iter().map(|p| p.0).collect();
        assert_eq!(lines, vec![1, 2, 3, 3, 4, 5, 7, 7], "{:#?}", problems(text));
    }

    #[test]
    fn syntax_errors_keep_going() {
        let text = format!("Bind \"x\n}}\nWorkerThreads 0\n{POOL_OK}");
        let p = problems(&text);
        let lines: Vec<usize> = p.iter().map(|p| p.0).collect();
        assert_eq!(lines, vec![1, 1, 2, 3], "{p:#?}");
    }

    #[test]
    fn durations_read_as_predixy_reads_them() {
        let pool = |body: &str| {
            let text = format!(
                "ClientTimeout 30s\nSentinelServerPool {{\n{body}Sentinels {{\n+ s:1\n}}\n\
                 Group g {{\n}}\n}}\n"
            );
            let cfg = parse(&text).expect("loads");
            assert_eq!(cfg.client_timeout, Duration::from_secs(30));
            cfg.sentinel_pool
        };
        // In predixy `m` is milliseconds and `u` microseconds, in any case.
        let p = pool("ServerTimeout 500m\nRefreshInterval 200MS\nServerRetryTimeout 1500us\n");
        assert_eq!(p.server_timeout, Duration::from_millis(500));
        assert_eq!(p.refresh_interval, Duration::from_millis(200));
        assert_eq!(p.server_retry_timeout, Duration::from_micros(1500));
        let p = pool("ServerTimeout 2\nRefreshInterval 1s\nKeepAlive 120\n");
        assert_eq!(p.server_timeout, Duration::from_secs(2));
        assert_eq!(p.refresh_interval, Duration::from_secs(1));
        assert_eq!(p.keep_alive, Duration::from_secs(120));
        // Half a second, which predixy itself would refuse, is kept as redmux reads it.
        let p = pool("ServerTimeout 0.5\n");
        assert_eq!(p.server_timeout, Duration::from_millis(500));
    }

    #[test]
    fn predixy_defaults_and_spellings() {
        // predixy's defaults where redmux TOML's differ: no hash tag, master read
        // priority 50, one database.
        let cfg = parse(POOL_OK).expect("loads");
        let p = &cfg.sentinel_pool;
        assert_eq!(
            (p.hash_tag, p.master_read_priority, p.databases),
            (None, 50, 1)
        );
        // Names in any case, a byte-order mark, `Auth {` for clients without a password,
        // `Sentinels password {`, `RefreshMethod sentinel`.
        let text = "\u{feff}bind 127.0.0.1:7000\nAUTHORITY {\n auth {\n mode READ\n }\n}\n\
                    sentinelserverpool {\n refreshmethod Sentinel\n SENTINELS s3cret {\n \
                    + s1:26379\n }\n group g1 {\n }\n}\n";
        let cfg = parse(text).expect("loads");
        assert_eq!(cfg.bind.port(), 7000);
        let auth = cfg.auth.expect("auth");
        assert_eq!(
            (auth[0].password.as_str(), auth[0].mode),
            ("", AuthMode::Read)
        );
        assert_eq!(
            cfg.sentinel_pool.sentinel_password.as_deref(),
            Some("s3cret")
        );
        let both = POOL_OK.replace("Sentinels {", "SentinelPassword a\n Sentinels b {");
        one_problem(&both, 3, "Sentinel password is given twice");
        let standalone = POOL_OK.replace(
            "SentinelServerPool {",
            "StandaloneServerPool {\n RefreshMethod sentinel",
        );
        let cfg = parse(&standalone).expect("a Sentinel pool by another name");
        assert_eq!(cfg.sentinel_pool.groups.len(), 1);
        one_problem(&format!("{POOL_OK}{standalone}"), 8, "a second server pool");
        // Two `Sentinels` blocks with different passwords (predixy keeps only the last).
        let twice = POOL_OK.replace("Sentinels {", "Sentinels a {\n + s2:1\n }\n Sentinels {");
        one_problem(&twice, 5, "password differs from the one on line 2");
        // predixy's defaults for a file without Bind, and its key prefix splitting.
        assert_eq!(cfg.bind.to_string(), "0.0.0.0:7617");
        let text = format!(
            "Authority {{\n Auth a {{\n Mode write\n KeyPrefix \"a: b:\"\n ReadKeyPrefix \"\"\n \
             }}\n}}\n{POOL_OK}"
        );
        let auth = parse(&text).expect("loads").auth.expect("auth");
        let ab = vec![b"a:".to_vec(), b"b:".to_vec()];
        assert_eq!(
            (&auth[0].read_key_prefix, &auth[0].write_key_prefix),
            (&ab, &ab)
        );
        // `HashTag {}` unquoted, `HashTag` alone, `Password` alone.
        let pool_with = |line: &str| {
            let text = POOL_OK.replace(
                "SentinelServerPool {",
                &format!("SentinelServerPool {{\n{line}"),
            );
            parse(&text).expect("loads").sentinel_pool
        };
        assert_eq!(pool_with("HashTag {}").hash_tag, Some((b'{', b'}')));
        assert_eq!(pool_with("HashTag").hash_tag, None);
        assert_eq!(pool_with("Password").password, None);
    }

    #[test]
    fn a_file_that_is_not_a_config_gets_a_short_answer() {
        let text = "Bogus 1\n".repeat(100_000);
        let p = problems(&text);
        assert_eq!(p.len(), 101, "{:?}", &p[..3]);
        assert!(p[100].1.contains("and 99901 more problems"), "{:?}", p[100]);
        let text = format!("{}{POOL_OK}", "BufSize 1\n".repeat(1000));
        let cfg = parse(&text).expect("loads");
        assert_eq!(cfg.warnings.len(), 101);
        assert!(
            cfg.warnings[100].message.contains("and 900 more"),
            "{:?}",
            cfg.warnings[100]
        );
    }
}
