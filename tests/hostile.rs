//! Hostile clients: ~300 concurrent connections for 15 s sending oversized headers,
//! byte-at-a-time requests, garbage, HTTP, TLS, half-open requests, huge multibulk counts,
//! unbounded bulks, and pipelines they never read, while one well-behaved client keeps
//! getting correct replies. The proxy's peak RSS (VmHWM from /proc) stays under
//! [`RSS_BOUND_MB`] and it is alive at the end.

mod support;

use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use support::*;

/// How long the attack lasts.
const ATTACK: Duration = Duration::from_secs(15);
/// Attacker threads; each keeps [`SOCKETS_PER_THREAD`] connections open at a time.
const THREADS: usize = 60;
const SOCKETS_PER_THREAD: usize = 5;
/// Peak resident memory the proxy may reach. The limits below (1 MB query buffer, 2 MB
/// output buffer per client) bound it in theory; measured VmHWM is about 17 MB (debug
/// build, 2 workers, ~3000 hostile connections over 15 s).
const RSS_BOUND_MB: u64 = 128;

/// A `VmXXX:` field of /proc/PID/status, in kB.
fn proc_status_kb(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or_else(|| panic!("{field} not in /proc/{pid}/status"))
}

#[derive(Clone, Copy, Debug)]
enum Kind {
    OversizedHeader,
    ByteAtATime,
    Garbage,
    Http,
    Tls,
    HalfOpen,
    NeverReads,
    HugeCount,
    UnboundedBulk,
}

const KINDS: [Kind; 9] = [
    Kind::OversizedHeader,
    Kind::ByteAtATime,
    Kind::Garbage,
    Kind::Http,
    Kind::Tls,
    Kind::HalfOpen,
    Kind::NeverReads,
    Kind::HugeCount,
    Kind::UnboundedBulk,
];

/// Opens one hostile connection of `kind`; returns it (to be held a while) or `None`.
fn attack(addr: &str, kind: Kind, rng: &mut XorShift) -> Option<TcpStream> {
    let mut s = TcpStream::connect(addr).ok()?;
    s.set_write_timeout(Some(Duration::from_secs(2))).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    let _ = match kind {
        Kind::OversizedHeader => {
            let mut h = b"*1\r\n$".to_vec();
            h.extend_from_slice(&[b'9'; 200]);
            h.extend_from_slice(b"\r\n*1\r\n$536870913\r\n");
            s.write_all(&h)
        }
        Kind::ByteAtATime => {
            let req = encode_command(&["SET", "hostile:slow", "value"]);
            for b in req {
                if s.write_all(&[b]).is_err() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(2));
            }
            let mut buf = [0u8; 5];
            let _ = s.read_exact(&mut buf);
            Ok(())
        }
        Kind::Garbage => {
            let junk: Vec<u8> = (0..4096).map(|_| rng.next() as u8).collect();
            s.write_all(&junk)
        }
        Kind::Http => s.write_all(b"POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello"),
        Kind::Tls => s.write_all(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03"),
        Kind::HalfOpen => {
            let _ = s.write_all(b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$100\r\nabc");
            s.shutdown(Shutdown::Write)
        }
        Kind::NeverReads => {
            let mut p = Vec::new();
            for _ in 0..64 {
                p.extend_from_slice(&encode_command(&["GET", "hostile:big"]));
            }
            s.write_all(&p)
        }
        Kind::HugeCount => s.write_all(b"*2000000000\r\n$3\r\nGET\r\n"),
        Kind::UnboundedBulk => {
            let _ = s.write_all(b"*2\r\n$4\r\nECHO\r\n$400000000\r\n");
            let chunk = vec![b'z'; 256 * 1024];
            for _ in 0..8 {
                if s.write_all(&chunk).is_err() {
                    break;
                }
            }
            Ok(())
        }
    };
    Some(s)
}

fn attacker(addr: String, index: usize, stop: Arc<AtomicBool>, opened: Arc<AtomicU64>) {
    let mut rng = XorShift(0x9e37_79b9_7f4a_7c15 ^ (index as u64 + 1));
    let kind = KINDS[index % KINDS.len()];
    while !stop.load(Ordering::Relaxed) {
        let held: Vec<TcpStream> = (0..SOCKETS_PER_THREAD)
            .filter_map(|_| attack(&addr, kind, &mut rng))
            .collect();
        opened.fetch_add(held.len() as u64, Ordering::Relaxed);
        // Hold them a while (the never-reading ones fill their output buffer).
        let until = Instant::now() + Duration::from_millis(1500);
        while Instant::now() < until && !stop.load(Ordering::Relaxed) {
            std::thread::sleep(Duration::from_millis(50));
        }
        drop(held);
    }
}

#[test]
fn hostile_clients_do_not_hurt_a_good_one_and_memory_stays_bounded() {
    let t = MasterReplica::start_with("hostile", 0, 1, 1);
    let port = free_port();
    let conf = format!(
        "bind = \"127.0.0.1:{port}\"\nworker_threads = 2\nclient_timeout = 5\n\
         client_query_buffer_limit = \"1mb\"\nclient_output_buffer_limit_normal = \"2mb\"\n\
         [sentinel_pool]\nrefresh_interval = \"200ms\"\nsentinels = [\"{}\"]\n\
         [[sentinel_pool.group]]\nname = \"hostile\"\n",
        t.sentinel().addr()
    );
    let mut r = Redmux::start(&conf, "toml");
    must_wait(Duration::from_secs(10), "routing", || {
        query(&r.addr(), &["SET", "hostile:big", &"b".repeat(128 * 1024)])
            .is_ok_and(|x| x == Reply::ok())
    });
    let pid = r.pid().expect("pid");
    let rss_before = proc_status_kb(pid, "VmRSS:");
    let stop = Arc::new(AtomicBool::new(false));
    let opened = Arc::new(AtomicU64::new(0));
    let threads: Vec<_> = (0..THREADS)
        .map(|i| {
            let (addr, stop, opened) = (r.addr(), stop.clone(), opened.clone());
            std::thread::spawn(move || attacker(addr, i, stop, opened))
        })
        .collect();
    let mut good = r.conn();
    let started = Instant::now();
    let (mut ops, mut worst) = (0u64, Duration::ZERO);
    let mut rss_peak_seen = 0;
    while started.elapsed() < ATTACK {
        let t0 = Instant::now();
        let v = format!("v{ops}");
        assert_eq!(
            good.query(&["SET", "hostile:good", &v]).expect("set"),
            Reply::ok()
        );
        assert_eq!(
            good.query(&["GET", "hostile:good"]).expect("get"),
            Reply::bulk(&v)
        );
        assert_eq!(
            good.query(&["PING"]).expect("ping"),
            Reply::Status("PONG".into())
        );
        worst = worst.max(t0.elapsed());
        ops += 1;
        if ops % 50 == 0 {
            rss_peak_seen = rss_peak_seen.max(proc_status_kb(pid, "VmRSS:"));
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    stop.store(true, Ordering::Relaxed);
    for th in threads {
        th.join().expect("attacker thread");
    }
    let hwm = proc_status_kb(pid, "VmHWM:");
    eprintln!(
        "hostile: {} hostile connections, good client {ops} rounds (worst {worst:?}), \
         RSS before {} MB, peak seen {} MB, VmHWM {} MB (bound {RSS_BOUND_MB} MB)",
        opened.load(Ordering::Relaxed),
        rss_before / 1024,
        rss_peak_seen / 1024,
        hwm / 1024
    );
    assert!(r.is_running(), "redmux died\n{}", r.logs());
    assert!(
        opened.load(Ordering::Relaxed) >= 300,
        "too few hostile connections"
    );
    assert!(ops > 100, "the good client was starved: {ops} rounds");
    assert!(
        worst < Duration::from_secs(2),
        "good client stalled {worst:?}"
    );
    assert!(hwm / 1024 < RSS_BOUND_MB, "VmHWM {} MB", hwm / 1024);
    // Alive and serving; every hostile connection is gone again.
    assert_eq!(r.cmd(&["PING"]), Reply::Status("PONG".into()));
    must_wait(Duration::from_secs(10), "hostile clients gone", || {
        let info = r.cmd(&["INFO", "clients"]);
        info_field(info.as_str().unwrap_or_default(), "connected_clients")
            .and_then(|n| n.parse::<u64>().ok())
            .is_some_and(|n| n <= 2)
    });
}
