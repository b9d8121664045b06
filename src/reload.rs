//! Config reload (SIGHUP or `CONFIG SET redmux.reload yes`): passwords, the allow-list,
//! read priorities, client limits and timeouts and the log level change in place, with
//! every client staying connected. A config that does not load is rejected as a whole and
//! the running one stays.

use crate::auth::AuthTable;
use crate::config::Config;
use crate::routing::ReadPriorities;
use crate::worker::Proxy;
use std::path::PathBuf;

/// Changes the log filter (a `tracing_subscriber` reload handle, set up by `main`).
pub type SetLogLevel = Box<dyn Fn(&str) -> Result<(), String> + Send + Sync>;

/// Where the config came from and how to change the log level.
pub struct Reloader {
    pub path: PathBuf,
    pub set_log_level: Option<SetLogLevel>,
}

/// Loads the config file again and applies what can change at run time. Err: the
/// reason it was rejected (the running config stays).
pub fn reload(proxy: &Proxy) -> Result<(), String> {
    let Some(reloader) = proxy.reloader.get() else {
        return Err("no config file to reload from".into());
    };
    let new = match Config::load(&reloader.path) {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(config = %reloader.path.display(), problems = %e, "config reload rejected: the running config stays");
            return Err(format!("config reload rejected: {e}"));
        }
    };
    if let Some(set) = &reloader.set_log_level {
        if let Err(e) = set(&new.log_level) {
            tracing::error!(error = %e, "config reload rejected: bad log level");
            return Err(format!("config reload rejected: bad log level: {e}"));
        }
    }
    apply(proxy, &new);
    for what in needs_restart(&proxy.config, &new) {
        tracing::warn!(
            setting = what,
            "config reload: this setting changes only after a restart"
        );
    }
    proxy
        .stats
        .reloads
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    tracing::info!(config = %reloader.path.display(), "config reloaded");
    Ok(())
}

/// Swaps in the parts of `new` that take effect at once.
pub fn apply(proxy: &Proxy, new: &Config) {
    proxy.auth.store(AuthTable::new(new.auth.as_deref()));
    proxy.allow.store(new.allow_cidrs());
    proxy.set_priorities(ReadPriorities::new(&new.sentinel_pool));
    proxy.live.store(new);
}

/// Settings that differ between the running and the new config but are only read at
/// start (listeners, threads, discovery, backend links).
fn needs_restart(old: &Config, new: &Config) -> Vec<&'static str> {
    let mut out = Vec::new();
    if old.bind != new.bind {
        out.push("bind");
    }
    if old.worker_threads != new.worker_threads {
        out.push("worker_threads");
    }
    if old.metrics_bind != new.metrics_bind {
        out.push("metrics.bind");
    }
    if old.tls != new.tls {
        out.push("tls (the certificate files themselves reload when they change)");
    }
    if old.log_format != new.log_format {
        out.push("log_format");
    }
    if old.proto_max_bulk_len != new.proto_max_bulk_len {
        out.push("proto_max_bulk_len");
    }
    if old.client_query_buffer_limit != new.client_query_buffer_limit {
        out.push("client_query_buffer_limit");
    }
    let (a, b) = (&old.sentinel_pool, &new.sentinel_pool);
    if a.tls != b.tls {
        out.push("sentinel_pool TLS settings");
    }
    if a.sentinels != b.sentinels || a.groups != b.groups {
        out.push("sentinel_pool sentinels/groups");
    }
    if a.server_timeout != b.server_timeout
        || a.server_retry_timeout != b.server_retry_timeout
        || a.server_failure_limit != b.server_failure_limit
        || a.keep_alive != b.keep_alive
        || a.user != b.user
        || a.password != b.password
    {
        out.push("sentinel_pool backend link settings");
    }
    out
}
