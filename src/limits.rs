//! Defences against hostile or broken clients: foreign protocols on the Redis port, AUTH
//! brute force, and the limits that a config reload may change while clients stay
//! connected.

use crate::config::Config;
use parking_lot::Mutex;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// What the first bytes of a connection look like.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sniff {
    /// RESP (multibulk or an inline command): serve it.
    Redis,
    /// Not enough bytes to tell yet.
    NeedMore,
    /// An HTTP request line: answer an error and close.
    Http,
    /// A TLS ClientHello on a plain port: close at once.
    Tls,
}

/// Longest first line looked at for an HTTP request line.
const SNIFF_LINE_MAX: usize = 8 * 1024;

/// Classifies the first bytes a client sent. A multibulk request (`*`) is decided by its
/// first byte; an inline first line is foreign when it ends like an HTTP request line
/// (`... HTTP/1.1`), whatever its method.
pub fn sniff(buf: &[u8]) -> Sniff {
    match buf.first() {
        None => Sniff::NeedMore,
        Some(b'*') => Sniff::Redis,
        // TLS record type 22 (handshake); no Redis inline command starts with it.
        Some(0x16) => Sniff::Tls,
        Some(_) => {
            let window = &buf[..buf.len().min(SNIFF_LINE_MAX)];
            let Some(end) = window.iter().position(|&b| b == b'\n') else {
                return if buf.len() >= SNIFF_LINE_MAX {
                    Sniff::Redis
                } else {
                    Sniff::NeedMore
                };
            };
            let line = window[..end].strip_suffix(b"\r").unwrap_or(&window[..end]);
            if is_http_request_line(line) {
                Sniff::Http
            } else {
                Sniff::Redis
            }
        }
    }
}

/// `METHOD SP target SP HTTP/x.y`.
fn is_http_request_line(line: &[u8]) -> bool {
    let mut words = line.split(|&b| b == b' ').filter(|w| !w.is_empty());
    let (Some(method), Some(_target), Some(version), None) =
        (words.next(), words.next(), words.next(), words.next())
    else {
        return false;
    };
    method.iter().all(|b| b.is_ascii_uppercase()) && version.starts_with(b"HTTP/")
}

/// Command names Redis treats as a cross-protocol attack (an HTTP request's `POST` line or
/// `Host:` header reaching the Redis port).
pub fn is_attack_command(name: &[u8]) -> bool {
    name.eq_ignore_ascii_case(b"post") || name.eq_ignore_ascii_case(b"host:")
}

/// The error a client gets before an HTTP-looking connection is closed.
pub const SECURITY_ATTACK: &str = "ERR redmux: Possible SECURITY ATTACK detected. It looks like somebody is sending HTTP to the Redis port. Connection aborted.";

/// Most source addresses the AUTH failure table tracks at once.
const AUTH_TABLE_MAX: usize = 65_536;
/// The window over which AUTH failures are counted.
const AUTH_WINDOW: Duration = Duration::from_secs(60);

/// Failed AUTHs per source address in the current minute. Touched only by AUTH, never on
/// the request path.
#[derive(Debug, Default)]
pub struct AuthLimiter {
    table: Mutex<HashMap<IpAddr, (Instant, u32)>>,
}

impl AuthLimiter {
    /// True when `ip` has used up its `limit` failures for this minute (0 = no limit).
    pub fn is_blocked(&self, ip: IpAddr, limit: u32) -> bool {
        if limit == 0 {
            return false;
        }
        let table = self.table.lock();
        table
            .get(&ip)
            .is_some_and(|(since, n)| since.elapsed() < AUTH_WINDOW && *n >= limit)
    }

    /// Counts one failure from `ip`; returns the failures in its current window.
    pub fn failed(&self, ip: IpAddr) -> u32 {
        let mut table = self.table.lock();
        if table.len() >= AUTH_TABLE_MAX {
            table.retain(|_, (since, _)| since.elapsed() < AUTH_WINDOW);
            if table.len() >= AUTH_TABLE_MAX {
                table.clear();
            }
        }
        let entry = table.entry(ip).or_insert((Instant::now(), 0));
        if entry.0.elapsed() >= AUTH_WINDOW {
            *entry = (Instant::now(), 0);
        }
        entry.1 = entry.1.saturating_add(1);
        entry.1
    }
}

/// The limits a config reload may change while clients stay connected.
#[derive(Debug)]
pub struct Live {
    client_timeout_ms: AtomicU64,
    max_clients: AtomicUsize,
    auth_failure_limit: AtomicU32,
    output_normal: AtomicUsize,
    output_pubsub: AtomicUsize,
}

impl Live {
    /// The limits of `config`.
    pub fn new(config: &Config) -> Live {
        let live = Live {
            client_timeout_ms: AtomicU64::new(0),
            max_clients: AtomicUsize::new(0),
            auth_failure_limit: AtomicU32::new(0),
            output_normal: AtomicUsize::new(0),
            output_pubsub: AtomicUsize::new(0),
        };
        live.store(config);
        live
    }

    /// Takes `config`'s limits.
    pub fn store(&self, config: &Config) {
        let ms = u64::try_from(config.client_timeout.as_millis()).unwrap_or(u64::MAX);
        self.client_timeout_ms.store(ms, Ordering::Relaxed);
        self.max_clients
            .store(config.max_clients, Ordering::Relaxed);
        self.auth_failure_limit
            .store(config.auth_failure_limit, Ordering::Relaxed);
        self.output_normal
            .store(config.client_output_limit(), Ordering::Relaxed);
        self.output_pubsub
            .store(config.pubsub_output_limit(), Ordering::Relaxed);
    }

    /// Idle time after which a client is closed; zero = never.
    pub fn client_timeout(&self) -> Duration {
        Duration::from_millis(self.client_timeout_ms.load(Ordering::Relaxed))
    }

    /// Most clients at once; 0 = no limit.
    pub fn max_clients(&self) -> usize {
        self.max_clients.load(Ordering::Relaxed)
    }

    /// Failed AUTHs per minute per source address; 0 = no limit.
    pub fn auth_failure_limit(&self) -> u32 {
        self.auth_failure_limit.load(Ordering::Relaxed)
    }

    /// Output buffer limit of a normal client; 0 = none.
    pub fn output_limit_normal(&self) -> usize {
        self.output_normal.load(Ordering::Relaxed)
    }

    /// Output buffer limit of a subscribed client; 0 = none.
    pub fn output_limit_pubsub(&self) -> usize {
        self.output_pubsub.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sniff_tells_http_and_tls_from_redis() {
        assert_eq!(sniff(b""), Sniff::NeedMore);
        assert_eq!(sniff(b"*1\r\n$4\r\nPING\r\n"), Sniff::Redis);
        assert_eq!(sniff(b"\x16\x03\x01\x02\x00"), Sniff::Tls);
        for http in [
            &b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"[..],
            b"POST /api HTTP/1.0\r\n",
            b"PUT /x HTTP/1.1\n",
            b"HEAD / HTTP/1.1\r\n",
            b"OPTIONS * HTTP/1.1\r\n",
            b"CONNECT 10.0.0.1:6379 HTTP/1.1\r\n",
            b"PRI * HTTP/2.0\r\n",
        ] {
            assert_eq!(
                sniff(http),
                Sniff::Http,
                "{}",
                String::from_utf8_lossy(http)
            );
        }
        assert_eq!(sniff(b"GET / HTTP/1.1"), Sniff::NeedMore);
        assert_eq!(sniff(b"GET key\r\n"), Sniff::Redis);
        assert_eq!(sniff(b"GET a b\r\n"), Sniff::Redis);
        assert_eq!(sniff(b"set k HTTP/1.1\r\n"), Sniff::Redis);
        assert_eq!(sniff(b"PING\r\n"), Sniff::Redis);
        assert_eq!(sniff(&[b'a'; SNIFF_LINE_MAX]), Sniff::Redis);
        assert!(is_attack_command(b"POST"));
        assert!(is_attack_command(b"Host:"));
        assert!(!is_attack_command(b"host"));
    }

    #[test]
    fn auth_limiter_blocks_after_the_limit_per_address() {
        let l = AuthLimiter::default();
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        for i in 1..=3 {
            assert!(!l.is_blocked(a, 3));
            assert_eq!(l.failed(a), i);
        }
        assert!(l.is_blocked(a, 3));
        assert!(!l.is_blocked(a, 0));
        assert!(!l.is_blocked(a, 4));
        assert!(!l.is_blocked(b, 3));
    }

    #[test]
    fn live_limits_follow_the_config() {
        let mut c = Config {
            client_timeout: Duration::from_millis(1500),
            max_clients: 7,
            ..Config::default()
        };
        let live = Live::new(&c);
        assert_eq!(live.client_timeout(), Duration::from_millis(1500));
        assert_eq!(live.max_clients(), 7);
        assert_eq!(live.output_limit_pubsub(), 32 << 20);
        c.max_clients = 0;
        c.auth_failure_limit = 2;
        live.store(&c);
        assert_eq!(live.max_clients(), 0);
        assert_eq!(live.auth_failure_limit(), 2);
    }
}
