//! Counters the proxy keeps, read by INFO and the Prometheus endpoint.

use std::sync::atomic::AtomicU64;

/// Proxy-wide counters (relaxed atomics; touched per connection or per event, not per
/// request).
#[derive(Debug, Default)]
pub struct Stats {
    pub accepted: AtomicU64,
    pub refused: AtomicU64,
    pub auth_failures: AtomicU64,
}

/// The Prometheus text exposition of the proxy's metrics.
pub fn render(proxy: &crate::worker::Proxy) -> String {
    use std::sync::atomic::Ordering;
    format!(
        "# HELP redmux_client_connections Client connections open now.\n# TYPE redmux_client_connections gauge\nredmux_client_connections {}\n# HELP redmux_client_connections_accepted_total Client connections accepted.\n# TYPE redmux_client_connections_accepted_total counter\nredmux_client_connections_accepted_total {}\n",
        proxy.clients.load(Ordering::Relaxed),
        proxy.stats.accepted.load(Ordering::Relaxed),
    )
}
