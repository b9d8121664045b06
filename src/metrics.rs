//! Counters the proxy keeps, read by INFO and the Prometheus endpoint.

use std::sync::atomic::AtomicU64;

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

/// The Prometheus text exposition of the proxy's metrics.
pub fn render(proxy: &crate::worker::Proxy) -> String {
    use std::sync::atomic::Ordering;
    let s = &proxy.stats;
    let mut out = format!(
        "# HELP redmux_client_connections Client connections open now.\n# TYPE redmux_client_connections gauge\nredmux_client_connections {}\n# HELP redmux_client_connections_accepted_total Client connections accepted.\n# TYPE redmux_client_connections_accepted_total counter\nredmux_client_connections_accepted_total {}\n",
        proxy.clients.load(Ordering::Relaxed),
        proxy.stats.accepted.load(Ordering::Relaxed),
    );
    let counters = [
        (
            "redmux_auth_failures_total",
            "Failed AUTH attempts.",
            &s.auth_failures,
        ),
        (
            "redmux_auth_blocked_total",
            "AUTHs refused for too many failures from the address.",
            &s.auth_blocked,
        ),
        (
            "redmux_foreign_refused_total",
            "Connections that spoke HTTP or TLS to the Redis port.",
            &s.foreign_refused,
        ),
        (
            "redmux_output_limit_closed_total",
            "Clients dropped over their output buffer limit.",
            &s.output_limit_closed,
        ),
        (
            "redmux_config_reloads_total",
            "Config reloads applied.",
            &s.reloads,
        ),
        (
            "redmux_clients_refused_total",
            "Connections refused by the allow-list.",
            &s.refused,
        ),
    ];
    for (name, help, value) in counters {
        out.push_str(&format!(
            "# HELP {name} {help}\n# TYPE {name} counter\n{name} {}\n",
            value.load(Ordering::Relaxed)
        ));
    }
    out
}
