//! Micro-benchmarks of the per-request pieces of the forwarding path:
//! request parsing (against the `redis-protocol` crate's decoder on the same bytes),
//! command table lookup, key hashing and routing, and reply framing.
//!
//! Run: `cargo bench --bench micro`. A hand-rolled timing loop (best of several rounds,
//! `std::hint::black_box` around inputs and outputs) keeps the dependency list short.
//! Knob: `REDMUX_MICRO_ROUNDS` (default 7): rounds per case; the best round is reported.

use redmux::command::lookup_request;
use redmux::config::{GroupConfig, SentinelPoolConfig};
use redmux::protocol::{Parsed, ReplyScanner, RequestParser};
use redmux::routing::Sharding;
use std::hint::black_box;
use std::time::{Duration, Instant};

/// Requests in the pipelined parser input.
const REQUESTS: usize = 1000;

fn rounds() -> usize {
    std::env::var("REDMUX_MICRO_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(7)
}

/// Times `f` (which handles `per_call` items) for about 200 ms per round and prints the
/// best round's nanoseconds per item. Returns that figure.
fn bench(name: &str, per_call: usize, mut f: impl FnMut()) -> f64 {
    // Calibrate: how many calls fit in ~20 ms.
    let mut calls = 1usize;
    loop {
        let t = Instant::now();
        for _ in 0..calls {
            f();
        }
        if t.elapsed() > Duration::from_millis(20) || calls > 1 << 30 {
            break;
        }
        calls *= 2;
    }
    let calls = calls * 10;
    let mut best = f64::MAX;
    for _ in 0..rounds() {
        let t = Instant::now();
        for _ in 0..calls {
            f();
        }
        let ns = t.elapsed().as_nanos() as f64 / (calls * per_call) as f64;
        best = best.min(ns);
    }
    println!("| {name} | {best:.1} |");
    best
}

fn encode(args: &[&[u8]], out: &mut Vec<u8>) {
    out.extend_from_slice(format!("*{}\r\n", args.len()).as_bytes());
    for a in args {
        out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
        out.extend_from_slice(a);
        out.extend_from_slice(b"\r\n");
    }
}

/// `REQUESTS` pipelined requests, half `SET key:N <32 bytes>`, half `GET key:N`.
fn get_set_pipeline() -> Vec<u8> {
    let value = [b'x'; 32];
    let mut out = Vec::new();
    for i in 0..REQUESTS {
        let key = format!("key:{i:012}");
        if i % 2 == 0 {
            encode(&[b"SET", key.as_bytes(), &value], &mut out);
        } else {
            encode(&[b"GET", key.as_bytes()], &mut out);
        }
    }
    out
}

/// `REQUESTS / 10` MGETs of 10 keys each.
fn mget_pipeline() -> Vec<u8> {
    let mut out = Vec::new();
    for i in 0..REQUESTS / 10 {
        let keys: Vec<String> = (0..10).map(|k| format!("key:{i}:{k}")).collect();
        let mut args: Vec<&[u8]> = vec![b"MGET"];
        args.extend(keys.iter().map(|k| k.as_bytes()));
        encode(&args, &mut out);
    }
    out
}

/// Parses every request in `buf` with redmux's parser; returns the number of arguments.
fn redmux_parse_all(parser: &mut RequestParser, buf: &[u8]) -> usize {
    let mut at = 0;
    let mut args = 0;
    while at < buf.len() {
        match parser.parse(&buf[at..]) {
            Ok(Parsed::Multibulk { len }) => {
                args += parser.spans().len();
                at += len;
            }
            other => panic!("unexpected parse result {other:?}"),
        }
    }
    args
}

/// The same with `redis_protocol::resp2::decode::decode_range` (no copy, like redmux).
fn crate_parse_range(buf: &[u8]) -> usize {
    use redis_protocol::resp2::{decode::decode_range, types::RangeFrame};
    let mut at = 0;
    let mut args = 0;
    while at < buf.len() {
        match decode_range(&buf[at..]) {
            Ok(Some((RangeFrame::Array(items), len))) => {
                args += items.len();
                at += len;
            }
            other => panic!("unexpected decode result {other:?}"),
        }
    }
    args
}

/// The same with `redis_protocol::resp2::decode::decode` (owned frames).
fn crate_parse_owned(buf: &[u8]) -> usize {
    use redis_protocol::resp2::{decode::decode, types::OwnedFrame};
    let mut at = 0;
    let mut args = 0;
    while at < buf.len() {
        match decode(&buf[at..]) {
            Ok(Some((OwnedFrame::Array(items), len))) => {
                args += items.len();
                at += len;
            }
            other => panic!("unexpected decode result {other:?}"),
        }
    }
    args
}

fn parser_benches() {
    println!("\n| request parser (ns per request) | ns |\n| --- | --- |");
    for (label, input, per) in [
        ("GET/SET 32 B", get_set_pipeline(), REQUESTS),
        ("MGET 10 keys", mget_pipeline(), REQUESTS / 10),
    ] {
        let mut parser = RequestParser::new(512 * 1024 * 1024);
        let ours = bench(&format!("redmux RequestParser, {label}"), per, || {
            black_box(redmux_parse_all(&mut parser, black_box(&input)));
        });
        let range = bench(
            &format!("redis-protocol decode_range, {label}"),
            per,
            || {
                black_box(crate_parse_range(black_box(&input)));
            },
        );
        let owned = bench(&format!("redis-protocol decode, {label}"), per, || {
            black_box(crate_parse_owned(black_box(&input)));
        });
        println!(
            "| speed-up over redis-protocol, {label} | {:.1}x (range), {:.1}x (owned) |",
            range / ours,
            owned / ours
        );
    }
}

fn lookup_benches() {
    println!("\n| command table lookup | ns |\n| --- | --- |");
    let cases: [&[&[u8]]; 5] = [
        &[b"GET", b"k"],
        &[b"set", b"k", b"v"],
        &[b"MGET", b"a", b"b"],
        &[b"ZRANGEBYSCORE", b"z", b"0", b"1"],
        &[b"CLIENT", b"SETNAME", b"x"],
    ];
    for args in cases {
        let name = String::from_utf8_lossy(args[0]);
        bench(&format!("lookup_request {name}"), 1, || {
            black_box(lookup_request(black_box(args)).map(|s| s.arity));
        });
    }
    let args: &[&[u8]] = &[b"NOSUCHCOMMAND", b"x"];
    bench("lookup_request unknown", 1, || {
        black_box(lookup_request(black_box(args)).is_some());
    });
}

fn sharding(groups: usize) -> Sharding {
    let pool = SentinelPoolConfig {
        groups: (0..groups)
            .map(|i| GroupConfig {
                name: format!("g{i}"),
                servers: Vec::new(),
            })
            .collect(),
        ..SentinelPoolConfig::default()
    };
    Sharding::new(&pool)
}

fn routing_benches() {
    println!("\n| key hashing and routing | ns |\n| --- | --- |");
    let keys: Vec<String> = (0..1000).map(|i| format!("user:{i:08}:profile")).collect();
    let tagged: Vec<String> = (0..1000).map(|i| format!("{{user{i}}}:cart")).collect();
    let three = sharding(3);
    let one = sharding(1);
    bench("crc16 hash, 21-byte key", keys.len(), || {
        for k in &keys {
            black_box(three.hash(black_box(k.as_bytes())));
        }
    });
    bench("group_of, 3 groups", keys.len(), || {
        for k in &keys {
            black_box(three.group_of(black_box(k.as_bytes())));
        }
    });
    bench("group_of, 3 groups, {hash tag}", tagged.len(), || {
        for k in &tagged {
            black_box(three.group_of(black_box(k.as_bytes())));
        }
    });
    bench("group_of, 1 group", keys.len(), || {
        for k in &keys {
            black_box(one.group_of(black_box(k.as_bytes())));
        }
    });
}

fn reply_benches() {
    println!("\n| reply framing (ReplyScanner) | ns per reply |\n| --- | --- |");
    let mut bulk = Vec::new();
    let mut status = Vec::new();
    let mut array = Vec::new();
    let mut big = Vec::new();
    for _ in 0..REQUESTS {
        bulk.extend_from_slice(b"$32\r\nxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\r\n");
        status.extend_from_slice(b"+OK\r\n");
    }
    for _ in 0..REQUESTS / 10 {
        array.extend_from_slice(b"*10\r\n");
        for _ in 0..10 {
            array.extend_from_slice(b"$32\r\nxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\r\n");
        }
        big.extend_from_slice(format!("${}\r\n", 16 * 1024).as_bytes());
        big.extend_from_slice(&[b'v'; 16 * 1024]);
        big.extend_from_slice(b"\r\n");
    }
    for (label, buf, per) in [
        ("+OK", &status, REQUESTS),
        ("$32 bulk", &bulk, REQUESTS),
        ("*10 of $32 (MGET)", &array, REQUESTS / 10),
        ("$16384 bulk", &big, REQUESTS / 10),
    ] {
        let mut scanner = ReplyScanner::new();
        bench(&format!("scan {label}"), per, || {
            let mut at = 0;
            while at < buf.len() {
                match scanner.scan(&buf[at..]) {
                    Ok(Some(len)) => at += len,
                    other => panic!("unexpected scan result {other:?}"),
                }
            }
            black_box(at);
        });
    }
}

fn main() {
    // `cargo bench` passes `--bench`; a filter word picks sections.
    let filter: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let want = |s: &str| filter.is_empty() || filter.iter().any(|f| s.contains(f.as_str()));
    if want("parser") {
        parser_benches();
    }
    if want("lookup") {
        lookup_benches();
    }
    if want("routing") {
        routing_benches();
    }
    if want("reply") {
        reply_benches();
    }
}
