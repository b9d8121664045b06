//! The steady-state forwarding path of GET and SET does not allocate per request.
//!
//! A counting global allocator counts allocations:
//! - on this thread only, while the library pieces of the hot path (parse, look up,
//!   route, frame the reply) handle 10,000 requests after a warm-up;
//! - in the whole process, while a real redmux worker (started in-process with
//!   `discovery::spawn` and `worker::start_workers`, as `main` does) forwards 20,000
//!   pipelined GET/SET requests from an allocation-free client thread to a real
//!   redis-server found through a real Sentinel.

mod support;

use redmux::command::{lookup_request, ArgList};
use redmux::config::{Config, GroupConfig, SentinelPoolConfig};
use redmux::protocol::{Parsed, ReplyScanner, RequestParser};
use redmux::routing::Sharding;
use redmux::topology::{Topology, TopologyCell};
use redmux::worker::{start_workers, Proxy};
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use support::*;

/// Counts every allocation (and reallocation) in the process, and per thread.
struct Counting;

static ALL: AtomicU64 = AtomicU64::new(0);
/// Of those, allocations of 8 KB or more (read buffers renewed, not per request).
static BIG: AtomicU64 = AtomicU64::new(0);
static COUNT_ALL: AtomicBool = AtomicBool::new(false);
thread_local! {
    static MINE: Cell<u64> = const { Cell::new(0) };
}

fn note(size: usize) {
    if COUNT_ALL.load(Ordering::Relaxed) {
        ALL.fetch_add(1, Ordering::Relaxed);
        if size >= 8192 {
            BIG.fetch_add(1, Ordering::Relaxed);
        }
    }
    // `try_with`: no panic during thread teardown.
    let _ = MINE.try_with(|c| c.set(c.get() + 1));
}

// SAFETY: forwards to the system allocator; counting has no effect on the memory.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        System.alloc(layout)
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout)
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        System.alloc_zeroed(layout)
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note(new_size);
        System.realloc(ptr, layout, new_size)
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// The two tests count differently; run them one at a time.
static SERIAL: Mutex<()> = Mutex::new(());

fn mine() -> u64 {
    MINE.with(Cell::get)
}

/// `count` pipelined requests, alternating `SET key:N <32 bytes>` and `GET key:N`.
fn get_set_batch(count: usize) -> Vec<u8> {
    let value = [b'x'; 32];
    let mut out = Vec::new();
    for i in 0..count {
        let key = format!("key:{:06}", i % 1000);
        if i % 2 == 0 {
            out.extend(encode_command(&[b"SET".as_slice(), key.as_bytes(), &value]));
        } else {
            out.extend(encode_command(&[b"GET".as_slice(), key.as_bytes()]));
        }
    }
    out
}

fn three_groups() -> SentinelPoolConfig {
    SentinelPoolConfig {
        groups: (0..3)
            .map(|i| GroupConfig {
                name: format!("g{i}"),
                servers: Vec::new(),
            })
            .collect(),
        ..SentinelPoolConfig::default()
    }
}

struct Spans<'a> {
    frame: &'a [u8],
    spans: &'a [redmux::protocol::ArgSpan],
}

impl ArgList for Spans<'_> {
    fn len(&self) -> usize {
        self.spans.len()
    }
    fn arg(&self, i: usize) -> &[u8] {
        let s = self.spans[i];
        &self.frame[s.start as usize..s.end as usize]
    }
}

/// Parses, looks up and routes every request of `input`, then frames as many replies
/// from `replies`; returns (requests, replies, sum of group indices).
fn hot_path(
    parser: &mut RequestParser,
    scanner: &mut ReplyScanner,
    sharding: &Sharding,
    input: &[u8],
    replies: &[u8],
) -> (usize, usize, usize) {
    let (mut at, mut requests, mut groups) = (0, 0, 0);
    while at < input.len() {
        let Ok(Parsed::Multibulk { len }) = parser.parse(&input[at..]) else {
            panic!("request did not parse");
        };
        let args = Spans {
            frame: &input[at..at + len],
            spans: parser.spans(),
        };
        let spec = lookup_request(&args).expect("known command");
        assert!(spec.arity_ok(args.len()));
        groups += sharding.group_of(args.arg(1));
        requests += 1;
        at += len;
    }
    let (mut at, mut framed) = (0, 0);
    while at < replies.len() {
        let Ok(Some(len)) = scanner.scan(&replies[at..]) else {
            panic!("reply did not frame");
        };
        framed += 1;
        at += len;
    }
    (requests, framed, groups)
}

#[test]
fn library_hot_path_does_not_allocate_per_request() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    const N: usize = 10_000;
    let input = get_set_batch(N);
    let mut replies = Vec::new();
    for i in 0..N {
        if i % 2 == 0 {
            replies.extend_from_slice(b"+OK\r\n");
        } else {
            replies.extend_from_slice(b"$32\r\nxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\r\n");
        }
    }
    let sharding = Sharding::new(&three_groups());
    let mut parser = RequestParser::new(512 * 1024 * 1024);
    let mut scanner = ReplyScanner::new();
    // Warm-up: the parser's span vector reaches its steady size.
    let warm = get_set_batch(100);
    hot_path(&mut parser, &mut scanner, &sharding, &warm, b"+OK\r\n");
    let before = mine();
    let (requests, framed, groups) =
        hot_path(&mut parser, &mut scanner, &sharding, &input, &replies);
    let allocations = mine() - before;
    assert_eq!((requests, framed), (N, N));
    assert!(
        groups > 0,
        "keys all routed to group 0: routing not exercised"
    );
    eprintln!("library hot path: {allocations} allocations for {N} requests");
    assert!(
        allocations * 100 < N as u64,
        "{allocations} allocations for {N} requests (limit: fewer than 1 per 100)"
    );
}

/// Sends `batch` (holding `count` requests) and reads `count` replies without allocating;
/// returns how many replies were errors.
fn round_trip(
    stream: &mut TcpStream,
    batch: &[u8],
    count: usize,
    buf: &mut [u8],
    scanner: &mut ReplyScanner,
) -> usize {
    stream.write_all(batch).expect("write requests");
    let (mut filled, mut done, mut errors) = (0, 0, 0);
    while done < count {
        let n = stream.read(&mut buf[filled..]).expect("read replies");
        assert!(n > 0, "redmux closed the connection");
        filled += n;
        let mut at = 0;
        while let Some(len) = scanner.scan(&buf[at..filled]).expect("bad reply") {
            if buf[at] == b'-' {
                errors += 1;
            }
            at += len;
            done += 1;
        }
        buf.copy_within(at..filled, 0);
        filled -= at;
    }
    errors
}

/// Starts redmux's discovery and one worker in this process, against `sentinel`.
fn start_in_process(sentinel: &Sentinel) -> (Arc<Proxy>, String) {
    let port = free_port();
    let config = Config {
        bind: format!("127.0.0.1:{port}").parse().expect("bind address"),
        worker_threads: 1,
        sentinel_pool: SentinelPoolConfig {
            sentinels: vec![sentinel.addr()],
            groups: vec![GroupConfig {
                name: "g0".into(),
                servers: Vec::new(),
            }],
            // No periodic Sentinel polls while allocations are counted.
            refresh_interval: Duration::from_secs(3600),
            ..SentinelPoolConfig::default()
        },
        ..Config::default()
    };
    let cell = Arc::new(TopologyCell::new(Topology::unknown(&["g0".to_string()])));
    let proxy = Arc::new(Proxy::new(config, cell.clone()));
    redmux::discovery::spawn(
        proxy.config.sentinel_pool.clone(),
        cell.clone(),
        proxy.metrics.discovery.clone(),
    )
    .expect("discovery");
    must_wait(
        Duration::from_secs(10),
        "discovery finds the master",
        || cell.load().groups[0].master.is_some(),
    );
    let handles = start_workers(proxy.clone()).expect("start worker");
    // The worker threads run until the test process exits.
    std::mem::forget(handles);
    (proxy, format!("127.0.0.1:{port}"))
}

#[test]
fn worker_forwards_get_set_without_allocating_per_request() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let group = MasterReplica::start_with("g0", 0, 1, 1);
    let (_proxy, addr) = start_in_process(group.sentinel());
    const BATCH: usize = 100;
    const BATCHES: usize = 200;
    let batch = get_set_batch(BATCH);
    let mut stream = TcpStream::connect(&addr).expect("connect to the in-process redmux");
    stream.set_nodelay(true).expect("nodelay");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let mut buf = vec![0u8; 256 * 1024];
    let mut scanner = ReplyScanner::new();
    // Warm-up: links connected, buffers and queues at their steady sizes.
    for _ in 0..20 {
        let errors = round_trip(&mut stream, &batch, BATCH, &mut buf, &mut scanner);
        assert_eq!(errors, 0, "redmux answered errors during the warm-up");
    }
    ALL.store(0, Ordering::Relaxed);
    BIG.store(0, Ordering::Relaxed);
    COUNT_ALL.store(true, Ordering::Relaxed);
    let mut errors = 0;
    for _ in 0..BATCHES {
        errors += round_trip(&mut stream, &batch, BATCH, &mut buf, &mut scanner);
    }
    COUNT_ALL.store(false, Ordering::Relaxed);
    let allocations = ALL.load(Ordering::Relaxed);
    let requests = (BATCH * BATCHES) as u64;
    assert_eq!(errors, 0);
    eprintln!(
        "in-process worker: {allocations} allocations ({} of 8 KB or more) for {requests} pipelined GET/SET ({:.4} per request)",
        BIG.load(Ordering::Relaxed),
        allocations as f64 / requests as f64
    );
    assert!(
        allocations * 100 < requests,
        "{allocations} allocations for {requests} requests (limit: fewer than 1 per 100)"
    );
}
