//! redmux's own TOML format (documented key by key in `conf/redmux.toml`).
//!
//! Keys are predixy's directives in snake_case, with "replica" for "slave". Unknown keys
//! are errors. Values that need checking keep their position ([`Spanned`]) so every
//! problem names its line.

use std::fmt;
use std::ops::Range;
use std::time::Duration;

use serde::de::{self, Deserializer, Visitor};
use serde::Deserialize;
use toml::Spanned;

use super::{
    validate, value, AuthEntry, AuthMode, Config, ConfigProblem, GroupConfig, SourceLines,
    WORKER_THREADS_TEXT,
};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    bind: Option<Spanned<String>>,
    worker_threads: Option<Spanned<usize>>,
    metrics: Option<Metrics>,
    log_level: Option<Spanned<String>>,
    log_format: Option<Spanned<String>>,
    allow: Option<Vec<Spanned<String>>>,
    max_clients: Option<usize>,
    client_timeout: Option<Dur>,
    proxy_protocol: Option<bool>,
    proto_max_bulk_len: Option<Spanned<Size>>,
    client_query_buffer_limit: Option<Spanned<Size>>,
    client_output_buffer_limit_normal: Option<Size>,
    client_output_buffer_limit_pubsub: Option<Size>,
    auth_failure_limit: Option<u32>,
    tls: Option<Tls>,
    auth: Option<Spanned<Vec<Auth>>>,
    sentinel_pool: Option<Spanned<Pool>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Metrics {
    bind: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Tls {
    cert: String,
    key: String,
    client_ca: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Auth {
    password: Spanned<String>,
    mode: Option<Spanned<String>>,
    read_key_prefix: Option<Vec<String>>,
    write_key_prefix: Option<Vec<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Pool {
    databases: Option<Spanned<u32>>,
    hash: Option<Spanned<String>>,
    hash_tag: Option<Spanned<String>>,
    distribution: Option<Spanned<String>>,
    master_read_priority: Option<u32>,
    static_replica_read_priority: Option<u32>,
    dynamic_replica_read_priority: Option<u32>,
    refresh_interval: Option<Spanned<Dur>>,
    server_timeout: Option<Dur>,
    server_failure_limit: Option<u32>,
    server_retry_timeout: Option<Dur>,
    keep_alive: Option<Dur>,
    user: Option<String>,
    password: Option<String>,
    sentinel_user: Option<String>,
    sentinel_password: Option<String>,
    sentinels: Option<Vec<Spanned<String>>>,
    group: Option<Vec<Group>>,
    tls: Option<Spanned<bool>>,
    sentinel_tls: Option<Spanned<bool>>,
    tls_ca: Option<String>,
    tls_cert: Option<String>,
    tls_key: Option<String>,
    tls_server_name: Option<String>,
    tls_insecure_skip_verify: Option<bool>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Group {
    name: Spanned<String>,
    servers: Option<Vec<Spanned<String>>>,
}

/// The keys of [`File`] (kept equal by a test), for the hint on one written in a table.
const TOP_LEVEL_KEYS: &[&str] = &[
    "bind",
    "worker_threads",
    "metrics",
    "log_level",
    "log_format",
    "allow",
    "max_clients",
    "client_timeout",
    "proxy_protocol",
    "proto_max_bulk_len",
    "client_query_buffer_limit",
    "client_output_buffer_limit_normal",
    "client_output_buffer_limit_pubsub",
    "auth_failure_limit",
    "tls",
    "auth",
    "sentinel_pool",
];

/// The keys of [`Pool`] (kept equal by a test), for the hint on one written in a group.
const POOL_KEYS: &[&str] = &[
    "databases",
    "hash",
    "hash_tag",
    "distribution",
    "master_read_priority",
    "static_replica_read_priority",
    "dynamic_replica_read_priority",
    "refresh_interval",
    "server_timeout",
    "server_failure_limit",
    "server_retry_timeout",
    "keep_alive",
    "user",
    "password",
    "sentinel_user",
    "sentinel_password",
    "sentinels",
    "group",
    "tls",
    "sentinel_tls",
    "tls_ca",
    "tls_cert",
    "tls_key",
    "tls_server_name",
    "tls_insecure_skip_verify",
];

/// Parses a redmux TOML file into a [`Config`], or every problem found in it.
pub(super) fn parse(text: &str) -> Result<Config, Vec<ConfigProblem>> {
    let file: File = toml::from_str(text).map_err(|e| {
        let line = e.span().map_or(0, |span| line_at(text, span.start));
        vec![ConfigProblem::new(
            line,
            decode_error(text, line, e.message()),
        )]
    })?;
    let mut loader = Loader {
        text,
        cfg: Config::default(),
        lines: SourceLines::default(),
        problems: Vec::new(),
    };
    loader.file(file);
    let mut problems = loader.problems;
    problems.extend(validate(&loader.cfg, &loader.lines));
    problems.sort_by_key(|p| p.line);
    if problems.is_empty() {
        Ok(loader.cfg)
    } else {
        Err(problems)
    }
}

/// The 1-based line holding byte `offset` of `text`.
/// A TOML decoding error in the operator's words: the key it is about (when its line is a
/// `key = value` line) and the expected type named as TOML names it, not as Rust does
/// (`usize` becomes "a whole number").
fn decode_error(text: &str, line: usize, message: &str) -> String {
    const WORDS: &[(&str, &str)] = &[
        ("expected usize", "expected a whole number (0 or more)"),
        ("expected u64", "expected a whole number (0 or more)"),
        ("expected u32", "expected a whole number (0 or more)"),
        ("expected u16", "expected a whole number (0 or more)"),
        ("expected u8", "expected a whole number (0 or more)"),
        ("expected i64", "expected a whole number"),
        ("expected i32", "expected a whole number"),
        ("expected f64", "expected a number"),
        ("expected a sequence", "expected a list ([...])"),
        ("expected a map", "expected a table"),
        ("invalid type: sequence", "invalid type: list"),
        ("invalid type: map", "invalid type: table"),
        ("missing field", "missing key"),
    ];
    let mut message = message.trim_end().to_string();
    for (rust, toml) in WORDS {
        if let Some(at) = message.find(rust) {
            let end = at + rust.len();
            // Whole words only: "expected u8" must not match inside "expected u80".
            if !message[end..].starts_with(|c: char| c.is_ascii_alphanumeric()) {
                message.replace_range(at..end, toml);
            }
        }
    }
    // serde names a table by its Rust type: "expected struct Metrics".
    if let Some(at) = message.find("expected struct ") {
        let name_end = message[at + 16..]
            .find(|c: char| !c.is_ascii_alphanumeric())
            .map_or(message.len(), |n| at + 16 + n);
        message.replace_range(at..name_end, "expected a table");
    }
    let line_text = text.lines().nth(line.wrapping_sub(1)).unwrap_or("").trim();
    // A table header: `[[name]]` where one table is meant, or `[name]` where a list is.
    if let Some(name) = line_text
        .strip_prefix("[[")
        .and_then(|l| l.strip_suffix("]]"))
    {
        if message.contains("invalid type: table") || message.contains("invalid type: list") {
            return format!("{message} (`[[{name}]]` starts a list of tables; `{name}` is one table: write `[{name}]`)");
        }
    } else if let Some(name) = line_text
        .strip_prefix('[')
        .and_then(|l| l.strip_suffix(']'))
    {
        if message.contains("expected a list") {
            return format!(
                "{message} (`{name}` is a list of tables: write `[[{name}]]` before each entry)"
            );
        }
    }
    // A top-level key written below a `[table]` header belongs to that table in TOML.
    if let Some(name) = message
        .strip_prefix("unknown field `")
        .and_then(|m| m.split_once('`'))
        .map(|(name, _)| name)
    {
        // In a group, a pool key is the likelier meaning (`tls` is both).
        let in_group = text
            .lines()
            .take(line)
            .filter(|l| l.trim_start().starts_with('['))
            .last()
            .is_some_and(|h| h.contains("sentinel_pool.group"));
        if in_group && POOL_KEYS.contains(&name) {
            return format!(
                "{message} (`{name}` is a `[sentinel_pool]` key: write it above the first \
                 `[[sentinel_pool.group]]`, or TOML puts it in the group above it)"
            );
        }
        if TOP_LEVEL_KEYS.contains(&name) {
            return format!(
                "{message} (`{name}` is a top-level key: write it above the first `[table]` \
                 header, or TOML puts it in the table above it)"
            );
        }
    }
    let key = text
        .lines()
        .nth(line.wrapping_sub(1))
        .and_then(|l| l.split_once('='))
        .map(|(k, _)| k.trim())
        .filter(|k| !k.is_empty() && !k.starts_with('[') && !k.starts_with('#'));
    // The one whole-number key whose range does not start at 0.
    if key == Some("worker_threads") {
        message = message.replace("(0 or more)", &format!("({WORKER_THREADS_TEXT})"));
    }
    match key {
        Some(k) if !message.contains(&format!("`{k}`")) => format!("{k}: {message}"),
        _ => message,
    }
}

fn line_at(text: &str, offset: usize) -> usize {
    let end = offset.min(text.len());
    1 + text.as_bytes()[..end]
        .iter()
        .filter(|b| **b == b'\n')
        .count()
}

struct Loader<'a> {
    text: &'a str,
    cfg: Config,
    lines: SourceLines,
    problems: Vec<ConfigProblem>,
}

impl Loader<'_> {
    fn line(&self, span: Range<usize>) -> usize {
        line_at(self.text, span.start)
    }

    /// Converts a positioned string with `parse`; a failure becomes a problem on its line.
    fn convert<T>(
        &mut self,
        key: &str,
        v: &Spanned<String>,
        parse: impl FnOnce(&str) -> Result<T, String>,
    ) -> Option<T> {
        match parse(v.get_ref()) {
            Ok(t) => Some(t),
            Err(e) => {
                let line = self.line(v.span());
                self.problems
                    .push(ConfigProblem::new(line, format!("{key}: {e}")));
                None
            }
        }
    }

    fn file(&mut self, f: File) {
        if let Some(v) = f
            .bind
            .and_then(|b| self.convert("bind", &b, value::parse_bind))
        {
            self.cfg.bind = v;
        }
        if let Some(v) = f.worker_threads {
            self.lines.worker_threads = self.line(v.span());
            self.cfg.worker_threads = v.into_inner();
        }
        let metrics_bind = f.metrics.and_then(|m| m.bind);
        if let Some(b) = metrics_bind {
            self.cfg.metrics_bind = self.convert("metrics.bind", &b, value::parse_bind);
        }
        self.logging(f.log_level, f.log_format);
        for entry in f.allow.unwrap_or_default() {
            self.lines.allow.push(self.line(entry.span()));
            self.cfg.allow.push(entry.into_inner());
        }
        self.limits(f.max_clients, f.client_timeout);
        if let Some(v) = f.proxy_protocol {
            self.cfg.proxy_protocol = v;
        }
        self.sizes(f.proto_max_bulk_len, f.client_query_buffer_limit);
        if let Some(v) = f.client_output_buffer_limit_normal {
            self.cfg.client_output_buffer_limit_normal = v.0;
        }
        if let Some(v) = f.client_output_buffer_limit_pubsub {
            self.cfg.client_output_buffer_limit_pubsub = v.0;
        }
        if let Some(v) = f.auth_failure_limit {
            self.cfg.auth_failure_limit = v;
        }
        self.cfg.tls = f.tls.map(|t| super::TlsConfig {
            cert: t.cert.into(),
            key: t.key.into(),
            client_ca: t.client_ca.filter(|c| !c.is_empty()).map(Into::into),
        });
        if let Some(auth) = f.auth {
            self.auth(auth);
        }
        match f.sentinel_pool {
            Some(pool) => self.pool(pool),
            None => {
                self.lines.missing_pool = true;
                self.problems.push(ConfigProblem::new(
                    0,
                    "missing [sentinel_pool] table (expected sentinels = [...] and at least \
                     one [[sentinel_pool.group]])",
                ));
            }
        }
    }

    fn logging(&mut self, level: Option<Spanned<String>>, format: Option<Spanned<String>>) {
        if let Some(level) = level {
            self.lines.log_level = self.line(level.span());
            self.cfg.log_level = level.into_inner();
        }
        if let Some(v) =
            format.and_then(|f| self.convert("log_format", &f, value::parse_log_format))
        {
            self.cfg.log_format = v;
        }
    }

    fn limits(&mut self, max_clients: Option<usize>, client_timeout: Option<Dur>) {
        if let Some(v) = max_clients {
            self.cfg.max_clients = v;
        }
        if let Some(v) = client_timeout {
            self.cfg.client_timeout = v.0;
        }
    }

    fn sizes(&mut self, bulk: Option<Spanned<Size>>, query: Option<Spanned<Size>>) {
        if let Some(v) = bulk {
            self.lines.proto_max_bulk_len = self.line(v.span());
            self.cfg.proto_max_bulk_len = v.into_inner().0;
        }
        if let Some(v) = query {
            self.lines.client_query_buffer_limit = self.line(v.span());
            self.cfg.client_query_buffer_limit = v.into_inner().0;
        }
    }

    fn auth(&mut self, auth: Spanned<Vec<Auth>>) {
        self.lines.authority = self.line(auth.span());
        let mut entries = Vec::new();
        for a in auth.into_inner() {
            self.lines.auth.push(self.line(a.password.span()));
            let mode = match &a.mode {
                Some(m) => self.convert("mode", m, value::parse_mode),
                None => Some(AuthMode::Write),
            };
            let to_bytes = |v: Option<Vec<String>>| -> Vec<Vec<u8>> {
                v.unwrap_or_default()
                    .into_iter()
                    .map(String::into_bytes)
                    .collect()
            };
            entries.push(AuthEntry {
                password: a.password.into_inner(),
                mode: mode.unwrap_or(AuthMode::Write),
                read_key_prefix: to_bytes(a.read_key_prefix),
                write_key_prefix: to_bytes(a.write_key_prefix),
            });
        }
        self.cfg.auth = Some(entries);
    }

    fn pool(&mut self, pool: Spanned<Pool>) {
        self.lines.pool = self.line(pool.span());
        let p = pool.into_inner();
        self.pool_names(&p);
        self.pool_tls(&p);
        let out = &mut self.cfg.sentinel_pool;
        let numbers = [
            (p.master_read_priority, &mut out.master_read_priority),
            (
                p.static_replica_read_priority,
                &mut out.static_replica_read_priority,
            ),
            (
                p.dynamic_replica_read_priority,
                &mut out.dynamic_replica_read_priority,
            ),
            (p.server_failure_limit, &mut out.server_failure_limit),
        ];
        for (given, field) in numbers {
            if let Some(v) = given {
                *field = v;
            }
        }
        let durations = [
            (p.server_timeout, &mut out.server_timeout),
            (p.server_retry_timeout, &mut out.server_retry_timeout),
            (p.keep_alive, &mut out.keep_alive),
        ];
        for (given, field) in durations {
            if let Some(v) = given {
                *field = v.0;
            }
        }
        let non_empty = |v: Option<String>| v.filter(|s| !s.is_empty());
        out.user = non_empty(p.user);
        out.password = non_empty(p.password);
        out.sentinel_user = non_empty(p.sentinel_user);
        out.sentinel_password = non_empty(p.sentinel_password);
        if let Some(v) = p.refresh_interval {
            self.lines.refresh_interval = line_at(self.text, v.span().start);
            self.cfg.sentinel_pool.refresh_interval = v.into_inner().0;
        }
        self.pool_lists(p.sentinels, p.group);
    }

    /// `tls`, `sentinel_tls`, `tls_ca`, `tls_cert`, `tls_key`, `tls_server_name`,
    /// `tls_insecure_skip_verify`.
    fn pool_tls(&mut self, p: &Pool) {
        let switch = p.tls.as_ref().or(p.sentinel_tls.as_ref());
        if let Some(v) = switch {
            self.lines.backend_tls = self.line(v.span());
        }
        let path = |v: &Option<String>| v.clone().filter(|s| !s.is_empty()).map(Into::into);
        let out = &mut self.cfg.sentinel_pool.tls;
        out.servers = p.tls.as_ref().is_some_and(|v| *v.get_ref());
        out.sentinels = p.sentinel_tls.as_ref().is_some_and(|v| *v.get_ref());
        out.ca = path(&p.tls_ca);
        out.cert = path(&p.tls_cert);
        out.key = path(&p.tls_key);
        out.server_name = p.tls_server_name.clone().filter(|s| !s.is_empty());
        out.insecure_skip_verify = p.tls_insecure_skip_verify.unwrap_or(false);
    }

    /// The pool values given by name or count: databases, hash, hash_tag, distribution.
    fn pool_names(&mut self, p: &Pool) {
        if let Some(v) = &p.databases {
            self.lines.databases = self.line(v.span());
            self.cfg.sentinel_pool.databases = *v.get_ref();
        }
        if let Some(v) = p
            .hash
            .as_ref()
            .and_then(|h| self.convert("hash", h, value::parse_hash))
        {
            self.cfg.sentinel_pool.hash = v;
        }
        if let Some(tag) = &p.hash_tag {
            if let Some(v) = self.convert("hash_tag", tag, value::parse_hash_tag) {
                self.cfg.sentinel_pool.hash_tag = v;
            }
        }
        let distribution = p.distribution.as_ref();
        if let Some(v) =
            distribution.and_then(|d| self.convert("distribution", d, value::parse_distribution))
        {
            self.cfg.sentinel_pool.distribution = v;
        }
    }

    fn pool_lists(&mut self, sentinels: Option<Vec<Spanned<String>>>, groups: Option<Vec<Group>>) {
        for s in sentinels.unwrap_or_default() {
            self.lines.sentinels.push(self.line(s.span()));
            self.cfg.sentinel_pool.sentinels.push(s.into_inner());
        }
        for g in groups.unwrap_or_default() {
            self.lines.groups.push(self.line(g.name.span()));
            let servers = g.servers.unwrap_or_default();
            let lines = servers.iter().map(|s| self.line(s.span())).collect();
            self.lines.group_servers.push(lines);
            self.cfg.sentinel_pool.groups.push(GroupConfig {
                name: g.name.into_inner(),
                servers: servers.into_iter().map(Spanned::into_inner).collect(),
            });
        }
    }
}

/// A duration: a number of seconds (`1`, `0.5`) or a string (`"500ms"`, `"2s"`, `"1m"`).
struct Dur(Duration);

impl<'de> Deserialize<'de> for Dur {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Dur, D::Error> {
        d.deserialize_any(DurVisitor)
    }
}

struct DurVisitor;

impl Visitor<'_> for DurVisitor {
    type Value = Dur;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a duration: seconds like 1 or 0.5, or a string like \"500ms\", \"2s\", \"1m\"")
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Dur, E> {
        value::duration_from_i64(v).map(Dur).map_err(E::custom)
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Dur, E> {
        Ok(Dur(Duration::from_secs(v)))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Dur, E> {
        value::duration_from_f64(v).map(Dur).map_err(E::custom)
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Dur, E> {
        value::parse_duration(v).map(Dur).map_err(E::custom)
    }
}

/// A byte size: a whole number or a string like `"512mb"`.
struct Size(usize);

impl<'de> Deserialize<'de> for Size {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Size, D::Error> {
        d.deserialize_any(SizeVisitor)
    }
}

struct SizeVisitor;

impl Visitor<'_> for SizeVisitor {
    type Value = Size;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a size in bytes: a whole number or a string like \"512mb\"")
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Size, E> {
        usize::try_from(v)
            .map(Size)
            .map_err(|_| E::custom(format!("bad size `{v}` (expected 0 or more bytes)")))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Size, E> {
        usize::try_from(v)
            .map(Size)
            .map_err(|_| E::custom(format!("size `{v}` is too large")))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Size, E> {
        value::parse_size(v).map(Size).map_err(E::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Distribution, HashKind, LogFormat};

    const POOL_OK: &str =
        "[sentinel_pool]\nsentinels = [\"s1:26379\"]\n[[sentinel_pool.group]]\nname = \"g1\"\n";

    fn problems(text: &str) -> Vec<(usize, String)> {
        match parse(text) {
            Ok(cfg) => panic!("expected problems, loaded {cfg:?}"),
            Err(p) => p.into_iter().map(|p| (p.line, p.message)).collect(),
        }
    }

    fn one_problem(text: &str, line: usize, needle: &str) {
        let p = problems(text);
        assert_eq!(p.len(), 1, "{text}\n{p:#?}");
        assert_eq!(p[0].0, line, "{text}\n{p:#?}");
        assert!(p[0].1.contains(needle), "{:?} lacks {needle:?}", p[0].1);
    }

    #[test]
    fn hint_key_lists_are_the_structs_fields() {
        fn fields<T: serde::de::DeserializeOwned>() -> Vec<String> {
            let err = toml::from_str::<T>("not_a_key = 1").err().expect("refused");
            let listed = err
                .message()
                .split_once("expected one of ")
                .expect("the list")
                .1;
            listed
                .split(", ")
                .map(|f| f.trim().trim_matches('`').to_string())
                .collect()
        }
        assert_eq!(fields::<File>(), TOP_LEVEL_KEYS);
        assert_eq!(fields::<Pool>(), POOL_KEYS);
    }

    #[test]
    fn type_errors_name_the_key_and_toml_types() {
        one_problem(
            &format!("worker_threads = \"two\"\n{POOL_OK}"),
            1,
            "worker_threads: invalid type: string \"two\", expected a whole number (1 to 256)",
        );
        one_problem(
            &format!("\nallow = \"10.0.0.0/8\"\n{POOL_OK}"),
            2,
            "allow: invalid type: string \"10.0.0.0/8\", expected a list ([...])",
        );
        one_problem(
            &format!("metrics = 3\n{POOL_OK}"),
            1,
            "metrics: invalid type: integer `3`, expected a table",
        );
        one_problem(
            &format!("allow = [[1]]\n{POOL_OK}"),
            1,
            "invalid type: list",
        );
        let p = problems("[[sentinel_pool]]\nsentinels = [\"a:1\"]\n");
        assert!(p[0].1.contains("write `[sentinel_pool]`"), "{p:?}");
        let p = problems(&format!("[auth]\npassword = \"x\"\n{POOL_OK}"));
        assert!(
            p[0].1.contains("write `[[auth]]` before each entry"),
            "{p:?}"
        );
        let p = problems(&format!("max_clients = -1\n{POOL_OK}"));
        assert!(!p[0].1.contains("usize"), "{p:?}");
        assert!(p[0].1.starts_with("max_clients: "), "{p:?}");
    }

    #[test]
    fn full_featured_file() {
        let text = r#"
bind = "127.0.0.1:7000"
worker_threads = 2
log_level = "debug"
log_format = "json"
allow = ["10.0.0.0/8", "::1"]
max_clients = 10
client_timeout = 0.5
proto_max_bulk_len = 1024
client_query_buffer_limit = "2kb"
client_output_buffer_limit_normal = "64mb"
client_output_buffer_limit_pubsub = 0
auth_failure_limit = 0

[tls]
cert = "/etc/redmux/tls.crt"
key = "/etc/redmux/tls.key"
client_ca = "/etc/redmux/ca.crt"

[metrics]
bind = "127.0.0.1:9000"

[[auth]]
password = ""
mode = "read"
read_key_prefix = ["a:"]

[[auth]]
password = "pw"

[sentinel_pool]
databases = 2
hash = "atol"
hash_tag = ""
distribution = "random"
master_read_priority = 0
static_replica_read_priority = 7
dynamic_replica_read_priority = 8
refresh_interval = "250ms"
server_timeout = "2s"
server_failure_limit = 4
server_retry_timeout = "1m"
keep_alive = 30
user = "u"
password = "p"
sentinel_user = ""
sentinel_password = "sp"
sentinels = ["a:1", "b:2"]

[[sentinel_pool.group]]
name = "g1"
servers = ["10.0.0.5:6379"]

[[sentinel_pool.group]]
name = "g2"
"#;
        let cfg = parse(text).expect("loads");
        assert_eq!(cfg.worker_threads, 2);
        assert_eq!(cfg.log_format, LogFormat::Json);
        assert_eq!(cfg.client_timeout, Duration::from_millis(500));
        assert_eq!(cfg.client_query_buffer_limit, 2048);
        assert_eq!(cfg.client_output_buffer_limit_normal, 64 << 20);
        assert_eq!(cfg.client_output_buffer_limit_pubsub, 0);
        assert_eq!(cfg.auth_failure_limit, 0);
        let tls = cfg.tls.clone().expect("tls");
        assert_eq!(tls.cert, std::path::Path::new("/etc/redmux/tls.crt"));
        assert_eq!(tls.key, std::path::Path::new("/etc/redmux/tls.key"));
        assert_eq!(
            tls.client_ca.as_deref(),
            Some(std::path::Path::new("/etc/redmux/ca.crt"))
        );
        assert_eq!(cfg.metrics_bind.map(|a| a.port()), Some(9000));
        let auth = cfg.auth.expect("auth");
        assert_eq!(
            (auth[0].mode, auth[1].mode),
            (AuthMode::Read, AuthMode::Write)
        );
        assert_eq!(auth[0].read_key_prefix, vec![b"a:".to_vec()]);
        let pool = cfg.sentinel_pool;
        assert_eq!((pool.hash, pool.hash_tag), (HashKind::Atol, None));
        assert_eq!(pool.distribution, Distribution::Random);
        assert_eq!(pool.refresh_interval, Duration::from_millis(250));
        assert_eq!(pool.server_retry_timeout, Duration::from_secs(60));
        assert_eq!(pool.keep_alive, Duration::from_secs(30));
        assert_eq!(
            (pool.user.as_deref(), pool.sentinel_user),
            (Some("u"), None)
        );
        assert_eq!(pool.groups.len(), 2);
        assert_eq!(pool.groups[0].servers, vec!["10.0.0.5:6379"]);
    }

    #[test]
    fn backend_tls_keys() {
        let text = POOL_OK.replace(
            "sentinels =",
            "tls = true\nsentinel_tls = true\ntls_ca = \"/ca.pem\"\ntls_cert = \"/c.pem\"\n\
             tls_key = \"/k.pem\"\ntls_server_name = \"redis.local\"\nsentinels =",
        );
        let tls = parse(&text).expect("loads").sentinel_pool.tls;
        assert!(tls.servers && tls.sentinels && !tls.insecure_skip_verify);
        assert_eq!(tls.ca.as_deref(), Some(std::path::Path::new("/ca.pem")));
        assert_eq!(tls.key.as_deref(), Some(std::path::Path::new("/k.pem")));
        assert_eq!(tls.server_name.as_deref(), Some("redis.local"));
        let no_ca = POOL_OK.replace("sentinels =", "sentinel_tls = true\nsentinels =");
        one_problem(&no_ca, 2, "tls_insecure_skip_verify");
        let half = POOL_OK.replace(
            "sentinels =",
            "tls = true\ntls_insecure_skip_verify = true\ntls_cert = \"/c.pem\"\nsentinels =",
        );
        one_problem(&half, 2, "tls_key");
    }

    #[test]
    fn minimal_file_uses_defaults() {
        let cfg = parse(POOL_OK).expect("loads");
        let mut expected = Config::default();
        expected.sentinel_pool.sentinels = vec!["s1:26379".to_string()];
        expected.sentinel_pool.groups = vec![GroupConfig {
            name: "g1".to_string(),
            servers: Vec::new(),
        }];
        assert_eq!(cfg, expected);
    }

    #[test]
    fn each_problem_has_its_line() {
        let cases: &[(&str, usize, &str)] = &[
            ("\nbogus = 1\n", 2, "unknown field `bogus`"),
            ("bind = \"x\"\n", 1, "bad listen address"),
            ("\nworker_threads = 0\n", 2, "worker threads 0 out of range"),
            ("worker_threads = -1\n", 1, "invalid value"),
            ("worker_threads = \"4\"\n", 1, "invalid type"),
            ("log_level = \"loud\"\n", 1, "bad log level"),
            ("log_format = \"xml\"\n", 1, "bad log format"),
            ("allow = [\n\"10.0.0.0/8\",\n\"nope\"]\n", 3, "`nope`"),
            ("client_timeout = -0.5\n", 1, "bad duration"),
            ("client_timeout = \"5x\"\n", 1, "bad duration"),
            ("client_timeout = true\n", 1, "a duration"),
            ("proto_max_bulk_len = 0\n", 1, "is 0"),
            ("proto_max_bulk_len = \"1tb\"\n", 1, "bad size"),
            (
                "[metrics]\nbind = \"nowhere\"\n",
                2,
                "metrics.bind: bad listen address",
            ),
            ("[metrics]\nport = 1\n", 2, "unknown field `port`"),
            (
                "[[auth]]\npassword = \"a\"\nmode = \"root\"\n",
                3,
                "bad mode `root`",
            ),
            ("[[auth]]\nmode = \"read\"\n", 1, "missing key `password`"),
            (
                "[[auth]]\npassword = \"a\"\n[[auth]]\npassword = \"a\"\n",
                4,
                "duplicate auth password (first on line 2)",
            ),
            (
                "[[auth]]\npassword = \"a\"\nkey_prefix = [\"x\"]\n",
                3,
                "unknown field `key_prefix`",
            ),
            ("auth = []\n", 1, "no auth entries"),
            ("x = 1\nx = 2\n", 2, "duplicate key"),
            ("bind = \n", 1, ""),
        ];
        for (text, line, needle) in cases {
            one_problem(&format!("{text}{POOL_OK}"), *line, needle);
        }
    }

    #[test]
    fn pool_problems_have_their_lines() {
        let pool = |body: &str| {
            format!("[sentinel_pool]\n{body}sentinels = [\"s:1\"]\n[[sentinel_pool.group]]\nname = \"g\"\n")
        };
        let cases: &[(&str, usize, &str)] = &[
            ("databases = 0\n", 2, "databases 0 out of range"),
            ("hash = \"md5\"\n", 2, "hash: bad hash `md5`"),
            ("hash_tag = \"{\"\n", 2, "exactly two characters"),
            (
                "distribution = \"ketama\"\n",
                2,
                "expected modula or random",
            ),
            ("master_read_priority = -1\n", 2, "invalid value"),
            ("refresh_interval = 0\n", 2, "refresh interval is 0"),
            ("keep_alive = \"1.2.3\"\n", 2, "bad duration"),
            (
                "static_slave_read_priority = 1\n",
                2,
                "unknown field `static_slave_read_priority`",
            ),
            ("servers = []\n", 2, "unknown field `servers`"),
            ("max_clients = 5\n", 2, "`max_clients` is a top-level key"),
        ];
        for (body, line, needle) in cases {
            one_problem(&pool(body), *line, needle);
        }
        let groups =
            "[sentinel_pool]\nsentinels = [\"s:1\"]\n[[sentinel_pool.group]]\nname = \"g\"\n\
                      [[sentinel_pool.group]]\nname = \"g\"\nservers = [\"bad\"]\n";
        let p = problems(groups);
        let lines: Vec<usize> = p.iter().map(|p| p.0).collect();
        assert_eq!(lines, vec![6, 7], "{p:#?}");
        // `tls` in a group: meant for the pool (a top-level `tls` is another thing).
        one_problem(
            "[sentinel_pool]\nsentinels = [\"s:1\"]\n[[sentinel_pool.group]]\nname = \"g\"\n\
             tls = true\n",
            5,
            "`tls` is a `[sentinel_pool]` key",
        );
        assert!(
            p[0].1.contains("duplicate group `g` (first on line 4)"),
            "{p:#?}"
        );
        one_problem("bind = \"0.0.0.0:1\"\n", 0, "missing [sentinel_pool]");
        one_problem("\n[sentinel_pool]\nsentinels = [\"a:1\"]\n", 2, "no groups");
        one_problem(
            "\n\n[sentinel_pool]\n[[sentinel_pool.group]]\nname = \"g\"\n",
            3,
            "no sentinels",
        );
        one_problem(
            "[sentinel_pool]\nsentinels = [\"a:1\"]\n[[sentinel_pool.group]]\nservers = []\n",
            3,
            "missing key `name`",
        );
    }

    #[test]
    fn durations_in_every_form() {
        for (given, ms) in [
            ("0.5", 500),
            ("1", 1000),
            ("\"500ms\"", 500),
            ("\"2s\"", 2000),
            ("\"1m\"", 60_000),
        ] {
            let cfg = parse(&format!("client_timeout = {given}\n{POOL_OK}")).expect("loads");
            assert_eq!(cfg.client_timeout, Duration::from_millis(ms), "{given}");
        }
    }
}
