//! Replies reach the right request, in request order, under load: many clients pipelining
//! a seeded random mix (GET/SET of 10 B to 300 KB values, per-client counters, replies the
//! proxy makes itself, multi-key commands split over three groups, transactions and
//! blocking commands on dedicated links) while some read slowly through a small receive
//! buffer or pause; clients that disconnect or half-close with replies pending; a slow
//! reader cut off at its output buffer limit. Every reply is checked against what that
//! client must get: a reply given to another request or another client shows as a wrong
//! counter, value or echo.
//!
//! Real `redis-server` and `redis-sentinel` processes, redmux with 4 worker threads.

mod support;

use std::collections::HashMap;
use std::io::{BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::mpsc;
use std::time::{Duration, Instant};
use support::*;

const GROUPS: [&str; 3] = ["r0", "r1", "r2"];

/// Bytes a 300 KB value takes, the largest the workload writes.
const BIG: usize = 300 * 1024;

struct Pool {
    _masters: Vec<RedisServer>,
    _sentinel: Sentinel,
    proxy: Redmux,
}

/// Three groups (a master each, no replica: reads see the client's own writes), one
/// Sentinel, redmux with 4 workers and `extra` top-level config lines.
fn start_pool(extra: &str) -> Pool {
    let (masters, sentinel) = start_monitored_masters(&GROUPS);
    let proxy = start_redmux_for_groups(
        &sentinel,
        &GROUPS,
        &format!("worker_threads = 4\n{extra}"),
        "refresh_interval = 1",
    );
    Pool {
        _masters: masters,
        _sentinel: sentinel,
        proxy,
    }
}

/// predixy's mapping of a key to one of [`GROUPS`].
fn group_of(key: &str) -> usize {
    predixy_group_of(key, GROUPS.len())
}

/// A value of `len` bytes that names its client and operation, so a value handed to the
/// wrong request is recognised.
fn value(client: usize, op: usize, len: usize) -> Vec<u8> {
    let mut v = format!("{client}.{op}.").into_bytes();
    let start = v.len();
    v.extend((start..len.max(start)).map(|j| b'a' + ((j * 7 + op * 13 + client) % 26) as u8));
    v.truncate(len.max(1));
    v
}

/// A short description of a reply (values can be 300 KB).
fn short(r: &Reply) -> String {
    match r {
        Reply::Bulk(b) => format!(
            "Bulk(len {}, {:?}..)",
            b.len(),
            String::from_utf8_lossy(&b[..b.len().min(24)])
        ),
        Reply::Array(items) => format!(
            "[{}]",
            items.iter().map(short).collect::<Vec<_>>().join(", ")
        ),
        other => format!("{other:?}"),
    }
}

/// What one request must get.
enum Want {
    Is(Reply),
    /// An error whose text starts with this.
    Error(&'static str),
}

fn check(got: &Reply, want: &Want) -> Result<(), String> {
    match want {
        Want::Is(w) if got == w => Ok(()),
        Want::Is(w) => Err(format!("got {}, want {}", short(got), short(w))),
        Want::Error(prefix) => match got {
            Reply::Error(e) if e.starts_with(prefix) => Ok(()),
            other => Err(format!("got {}, want an error {prefix:?}", short(other))),
        },
    }
}

/// A client's behaviour.
#[derive(Clone, Copy)]
struct Profile {
    /// Requests to send (fewer if `send_for` runs out).
    ops: usize,
    /// Percent of written values that are 100..300 KB (the rest are 10..200 B or 1..16 KB).
    big_percent: u64,
    /// Sleeps while reading (every few replies, and a long pause now and then).
    slow_reader: bool,
    /// Pauses between pipelines.
    pauses: bool,
    /// SO_RCVBUF of the client socket (small: the proxy's writes stop short at once).
    rcvbuf: Option<usize>,
}

const NORMAL: Profile = Profile {
    ops: 500,
    big_percent: 3,
    slow_reader: false,
    pauses: false,
    rcvbuf: None,
};

/// Connects, with SO_RCVBUF set first when asked.
fn connect(addr: &str, rcvbuf: Option<usize>) -> std::io::Result<TcpStream> {
    use socket2::{Domain, Socket, Type};
    let to: SocketAddr = addr.parse().map_err(std::io::Error::other)?;
    let sock = Socket::new(Domain::IPV4, Type::STREAM, None)?;
    if let Some(n) = rcvbuf {
        sock.set_recv_buffer_size(n)?;
    }
    sock.connect_timeout(&to.into(), Duration::from_secs(5))?;
    let s: TcpStream = sock.into();
    s.set_nodelay(true)?;
    s.set_read_timeout(Some(Duration::from_secs(15)))?;
    s.set_write_timeout(Some(Duration::from_secs(15)))?;
    Ok(s)
}

/// The requests of one client and the replies they must get, from a model of its own
/// keys (no other client touches them).
struct Workload {
    client: usize,
    rng: XorShift,
    keys: Vec<String>,
    values: HashMap<usize, Vec<u8>>,
    counter: i64,
    counter_key: String,
    list_key: String,
    profile: Profile,
}

impl Workload {
    fn new(client: usize, seed: u64, profile: Profile) -> Workload {
        Workload {
            client,
            rng: XorShift::new(seed),
            keys: (0..6).map(|j| format!("ro:{client}:{j}")).collect(),
            values: HashMap::new(),
            counter: 0,
            counter_key: format!("ro:{client}:ctr"),
            list_key: format!("ro:{client}:list"),
            profile,
        }
    }

    fn size(&mut self) -> usize {
        let r = self.rng.below(100);
        if r < self.profile.big_percent {
            self.rng.range(100 * 1024, BIG)
        } else if r < 75 {
            self.rng.range(10, 200)
        } else {
            self.rng.range(1024, 16 * 1024)
        }
    }

    fn key(&mut self) -> usize {
        self.rng.below(self.keys.len() as u64) as usize
    }

    fn stored(&self, k: usize) -> Reply {
        match self.values.get(&k) {
            Some(v) => Reply::Bulk(v.clone()),
            None => Reply::Nil,
        }
    }

    /// The next request(s) (a transaction is three): their wire bytes, what they are
    /// (for messages) and the replies they must get.
    fn next(&mut self, op: usize, out: &mut Vec<u8>, wants: &mut Vec<(String, Want)>) {
        let c = self.client;
        match self.rng.below(100) {
            0..=24 => {
                let k = self.key();
                let len = self.size();
                let v = value(c, op, len);
                out.extend(encode_command(&[
                    b"SET".as_ref(),
                    self.keys[k].as_bytes(),
                    &v,
                ]));
                self.values.insert(k, v);
                wants.push((
                    format!("SET {} ({len} B)", self.keys[k]),
                    Want::Is(Reply::ok()),
                ));
            }
            25..=47 => {
                let k = self.key();
                out.extend(encode_command(&["GET", &self.keys[k]]));
                wants.push((format!("GET {}", self.keys[k]), Want::Is(self.stored(k))));
            }
            48..=59 => {
                self.counter += 1;
                out.extend(encode_command(&["INCR", &self.counter_key]));
                wants.push(("INCR".into(), Want::Is(Reply::Int(self.counter))));
            }
            60..=67 => {
                let tok = format!("echo.{c}.{op}");
                out.extend(encode_command(&["ECHO", &tok]));
                wants.push((format!("ECHO {tok}"), Want::Is(Reply::bulk(&tok))));
            }
            68..=72 => {
                out.extend(encode_command(&["PING"]));
                wants.push(("PING".into(), Want::Is(Reply::Status("PONG".into()))));
            }
            73..=82 => {
                let ks: Vec<usize> = (0..3).map(|_| self.key()).collect();
                let mut args = vec!["MGET"];
                args.extend(ks.iter().map(|&k| self.keys[k].as_str()));
                out.extend(encode_command(&args));
                let want = Reply::Array(ks.iter().map(|&k| self.stored(k)).collect());
                wants.push((args.join(" "), Want::Is(want)));
            }
            83..=86 => {
                let (a, b) = (self.key(), self.key());
                let (va, vb) = (value(c, op, 40), value(c, op + 1_000_000, 60));
                out.extend(encode_command(&[
                    b"MSET".as_ref(),
                    self.keys[a].as_bytes(),
                    &va,
                    self.keys[b].as_bytes(),
                    &vb,
                ]));
                self.values.insert(a, va);
                self.values.insert(b, vb);
                wants.push((
                    format!("MSET {} {}", self.keys[a], self.keys[b]),
                    Want::Is(Reply::ok()),
                ));
            }
            87..=88 => {
                let ks: Vec<usize> = (0..3).map(|_| self.key()).collect();
                let mut args = vec!["EXISTS"];
                args.extend(ks.iter().map(|&k| self.keys[k].as_str()));
                out.extend(encode_command(&args));
                let n = ks.iter().filter(|k| self.values.contains_key(k)).count();
                wants.push((args.join(" "), Want::Is(Reply::Int(n as i64))));
            }
            89..=90 => {
                out.extend(encode_command(&["NOSUCHCOMMAND", "x"]));
                wants.push(("NOSUCHCOMMAND".into(), Want::Error("ERR unknown command")));
            }
            91..=95 => {
                // A transaction on a dedicated link; later requests wait for it.
                let k = self.key();
                let v = value(c, op, 30);
                out.extend(encode_command(&["MULTI"]));
                out.extend(encode_command(&[
                    b"SET".as_ref(),
                    self.keys[k].as_bytes(),
                    &v,
                ]));
                out.extend(encode_command(&["EXEC"]));
                self.values.insert(k, v);
                wants.push(("MULTI".into(), Want::Is(Reply::ok())));
                wants.push((
                    format!("SET {} in MULTI", self.keys[k]),
                    Want::Is(Reply::Status("QUEUED".into())),
                ));
                wants.push(("EXEC".into(), Want::Is(Reply::Array(vec![Reply::ok()]))));
            }
            _ => {
                // A blocking command that does not block, on a dedicated link.
                let tok = format!("item.{c}.{op}");
                out.extend(encode_command(&["RPUSH", &self.list_key, &tok]));
                out.extend(encode_command(&["BLPOP", &self.list_key, "2"]));
                wants.push(("RPUSH".into(), Want::Is(Reply::Int(1))));
                wants.push((
                    "BLPOP".into(),
                    Want::Is(Reply::Array(vec![
                        Reply::bulk(&self.list_key),
                        Reply::bulk(&tok),
                    ])),
                ));
            }
        }
    }
}

/// Runs one client: a writer sending pipelines of 1..40 requests, a reader checking each
/// reply in order. Stops sending after `send_for`. Returns the replies checked.
fn run_client(
    addr: &str,
    client: usize,
    seed: u64,
    profile: Profile,
    send_for: Duration,
) -> Result<usize, String> {
    let started = Instant::now();
    let mut stream =
        connect(addr, profile.rcvbuf).map_err(|e| format!("client {client}: connect: {e}"))?;
    let read_half = stream
        .try_clone()
        .map_err(|e| format!("client {client}: {e}"))?;
    let (tx, rx) = mpsc::channel::<(usize, String, Want)>();
    let slow = profile.slow_reader;
    let reader = std::thread::spawn(move || -> Result<usize, String> {
        let mut r = BufReader::with_capacity(16 * 1024, read_half);
        let mut n = 0;
        for (i, what, want) in rx {
            if slow {
                if i % 8 == 0 {
                    std::thread::sleep(Duration::from_millis(5));
                }
                if i % 100 == 50 {
                    std::thread::sleep(Duration::from_millis(300));
                }
            }
            let got = read_reply(&mut r)
                .map_err(|e| format!("client {client}: reply {i} ({what}): {e}"))?;
            check(&got, &want).map_err(|e| format!("client {client}: reply {i} ({what}): {e}"))?;
            n += 1;
        }
        Ok(n)
    });
    let mut w = Workload::new(client, seed, profile);
    let mut rng = XorShift::new(seed ^ 0xABCD);
    let mut op = 0;
    let mut sent = 0;
    let mut send_error = None;
    while op < profile.ops && started.elapsed() < send_for {
        let burst = rng.range(1, 40);
        let mut wire = Vec::new();
        let mut wants = Vec::new();
        for _ in 0..burst {
            w.next(op, &mut wire, &mut wants);
            op += 1;
        }
        let mut gone = false;
        for (what, want) in wants {
            if tx.send((sent, what, want)).is_err() {
                gone = true;
                break;
            }
            sent += 1;
        }
        if gone {
            break;
        }
        if let Err(e) = stream.write_all(&wire) {
            send_error = Some(format!("client {client}: write: {e}"));
            break;
        }
        if profile.pauses && rng.below(10) == 0 {
            std::thread::sleep(Duration::from_millis(rng.range(20, 200) as u64));
        }
    }
    drop(tx);
    let read = reader
        .join()
        .map_err(|_| format!("client {client}: reader panicked"))??;
    if let Some(e) = send_error {
        return Err(e);
    }
    if read != sent {
        return Err(format!(
            "client {client}: {read} replies for {sent} requests"
        ));
    }
    Ok(read)
}

/// Runs `clients` workload clients at once (client `c` with `profile(c)`).
fn run_clients(
    addr: &str,
    clients: std::ops::Range<usize>,
    seed: u64,
    profile: impl Fn(usize) -> Profile,
    send_for: Duration,
) -> Vec<std::thread::JoinHandle<Result<usize, String>>> {
    clients
        .map(|c| {
            let addr = addr.to_string();
            let p = profile(c);
            std::thread::spawn(move || run_client(&addr, c, seed + c as u64, p, send_for))
        })
        .collect()
}

/// Joins the workload clients; panics with every failure and the proxy's log.
fn join_clients(
    handles: Vec<std::thread::JoinHandle<Result<usize, String>>>,
    proxy: &Redmux,
) -> usize {
    let mut failures = Vec::new();
    let mut total = 0;
    for h in handles {
        match h.join() {
            Ok(Ok(n)) => total += n,
            Ok(Err(e)) => failures.push(e),
            Err(_) => failures.push("a client thread panicked".into()),
        }
    }
    assert!(
        failures.is_empty(),
        "{} client(s) failed:\n{}\n--- redmux log ---\n{}",
        failures.len(),
        failures.join("\n"),
        tail(&proxy.logs(), 60)
    );
    total
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// Waits until redmux counts only the connection asking.
fn wait_one_client(proxy: &Redmux) {
    let mut last = String::new();
    let ok = wait_until(Duration::from_secs(10), || {
        let info = proxy.cmd(&["INFO", "clients"]);
        last =
            info_field(info.as_str().unwrap_or_default(), "connected_clients").unwrap_or_default();
        last == "1"
    });
    assert!(ok, "sessions left behind: connected_clients {last}");
}

/// Sets `big:{i}` (i < n) to distinct 300 KB values and returns them.
fn set_big_values(proxy: &Redmux, n: usize) -> Vec<Vec<u8>> {
    let mut c = proxy.conn();
    (0..n)
        .map(|i| {
            let v = value(9999, i, BIG);
            let key = format!("big:{i}");
            assert_eq!(
                c.query(&[b"SET".as_ref(), key.as_bytes(), &v]).unwrap(),
                Reply::ok()
            );
            v
        })
        .collect()
}

#[test]
fn thirty_clients_pipelining_a_random_mix_get_their_own_replies_in_order() {
    let pool = start_pool("");
    let started = Instant::now();
    // Every fifth client reads slowly through a 32 KB receive buffer with a large share
    // of 100..300 KB values; every fifth other one pauses between pipelines.
    let handles = run_clients(
        &pool.proxy.addr(),
        0..30,
        1000,
        |c| match c % 5 {
            0 => Profile {
                ops: 400,
                big_percent: 20,
                slow_reader: true,
                rcvbuf: Some(32 * 1024),
                ..NORMAL
            },
            1 => Profile {
                pauses: true,
                ..NORMAL
            },
            2 => Profile {
                rcvbuf: Some(16 * 1024),
                ..NORMAL
            },
            _ => NORMAL,
        },
        Duration::from_secs(30),
    );
    let total = join_clients(handles, &pool.proxy);
    eprintln!("{total} replies checked in {:?}", started.elapsed());
    assert!(total > 3000, "only {total} replies checked");
    wait_one_client(&pool.proxy);
}

#[test]
fn clients_that_disconnect_or_half_close_with_replies_pending_leave_the_others_intact() {
    let pool = start_pool("");
    let big = set_big_values(&pool.proxy, 5);
    let addr = pool.proxy.addr();
    let started = Instant::now();
    let handles = run_clients(
        &addr,
        0..15,
        2000,
        |c| Profile {
            ops: 400,
            rcvbuf: (c % 3 == 0).then_some(32 * 1024),
            slow_reader: c % 4 == 0,
            ..NORMAL
        },
        Duration::from_secs(25),
    );
    let mut halfclosed = 0;
    for round in 0..40 {
        if started.elapsed() > Duration::from_secs(25) {
            break;
        }
        let mut s = connect(&addr, (round % 2 == 0).then_some(16 * 1024)).expect("connect");
        let mut wire = Vec::new();
        let mut wants = Vec::new();
        let counter = format!("dis:{round}");
        for j in 0..30 {
            wire.extend(encode_command(&["GET", &format!("big:{}", j % 5)]));
            wants.push(Reply::Bulk(big[j % 5].clone()));
            wire.extend(encode_command(&["ECHO", &format!("d{round}.{j}")]));
            wants.push(Reply::bulk(format!("d{round}.{j}")));
            wire.extend(encode_command(&["INCR", &counter]));
            wants.push(Reply::Int(j as i64 + 1));
        }
        match round % 4 {
            // Gone at once, every reply pending.
            0 => {
                s.write_all(&wire).expect("send");
            }
            // Gone after reading part of a large reply.
            1 => {
                s.write_all(&wire).expect("send");
                let mut buf = vec![0u8; 50_000];
                let _ = s.read_exact(&mut buf);
            }
            // Half-closed: every reply, in order, then the end of the stream.
            2 => {
                s.write_all(&wire).expect("send");
                s.shutdown(std::net::Shutdown::Write).expect("shutdown");
                let mut r = BufReader::new(s.try_clone().expect("clone"));
                for (i, want) in wants.iter().enumerate() {
                    let got = read_reply(&mut r)
                        .unwrap_or_else(|e| panic!("half-closed round {round}: reply {i}: {e}"));
                    assert!(
                        &got == want,
                        "half-closed round {round}: reply {i}: got {}, want {}",
                        short(&got),
                        short(want)
                    );
                }
                let mut rest = Vec::new();
                r.read_to_end(&mut rest)
                    .unwrap_or_else(|e| panic!("half-closed round {round}: no end: {e}"));
                assert!(rest.is_empty(), "half-closed round {round}: extra bytes");
                halfclosed += 1;
            }
            // QUIT behind the pipeline: every reply, +OK, then the end.
            _ => {
                wire.extend(encode_command(&["QUIT"]));
                wants.push(Reply::ok());
                s.write_all(&wire).expect("send");
                let mut r = BufReader::new(s.try_clone().expect("clone"));
                for (i, want) in wants.iter().enumerate() {
                    let got = read_reply(&mut r)
                        .unwrap_or_else(|e| panic!("QUIT round {round}: reply {i}: {e}"));
                    assert!(
                        &got == want,
                        "QUIT round {round}: reply {i}: got {}, want {}",
                        short(&got),
                        short(want)
                    );
                }
                let mut rest = Vec::new();
                r.read_to_end(&mut rest)
                    .unwrap_or_else(|e| panic!("QUIT round {round}: no end: {e}"));
                assert!(rest.is_empty(), "QUIT round {round}: extra bytes");
            }
        }
        drop(s);
    }
    assert!(halfclosed >= 3, "only {halfclosed} half-closed rounds ran");
    let total = join_clients(handles, &pool.proxy);
    eprintln!(
        "{total} replies checked, {halfclosed} half-closed rounds, in {:?}",
        started.elapsed()
    );
    wait_one_client(&pool.proxy);
}

#[test]
fn a_slow_reader_over_its_output_limit_is_closed_and_the_others_are_not() {
    let pool = start_pool("client_output_buffer_limit_normal = \"4mb\"");
    let big = set_big_values(&pool.proxy, 10);
    let addr = pool.proxy.addr();
    let started = Instant::now();
    // The others' replies stay far below 4 MB (values up to 16 KB, 40 per pipeline).
    let handles = run_clients(
        &addr,
        0..10,
        3000,
        |c| Profile {
            ops: 400,
            big_percent: 0,
            rcvbuf: (c % 2 == 0).then_some(16 * 1024),
            ..NORMAL
        },
        Duration::from_secs(20),
    );
    // Up to 100 × 300 KB asked for, a few at a time (so the socket is full and the
    // proxy holds part of a reply when the limit is reached), interleaved with a
    // counter, and nothing read.
    let mut slow = connect(&addr, Some(32 * 1024)).expect("connect");
    let mut wants = Vec::new();
    let limit_reached = || {
        pool.proxy
            .logs()
            .contains("client closed: output buffer limit reached")
    };
    for i in 0..100 {
        let mut wire = encode_command(&["GET", &format!("big:{}", i % 10)]);
        wants.push(Reply::Bulk(big[i % 10].clone()));
        wire.extend(encode_command(&["INCR", "slow:counter"]));
        wants.push(Reply::Int(i as i64 + 1));
        if slow.write_all(&wire).is_err() || (i % 4 == 3 && limit_reached()) {
            break;
        }
        if i % 4 == 3 {
            std::thread::sleep(Duration::from_millis(30));
        }
    }
    must_wait(
        Duration::from_secs(15),
        "the slow reader closed at its output limit",
        limit_reached,
    );
    // What it can still read: complete replies in order (the last may be cut), then EOF.
    slow.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let mut got = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match slow.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            // Requests it sent after the close make the end a reset.
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break,
            Err(e) => panic!("the slow reader's connection did not end: {e}"),
        }
    }
    assert!(got.len() < 20 * 1024 * 1024, "read {} bytes", got.len());
    let mut cursor = std::io::Cursor::new(&got[..]);
    let mut complete = 0;
    while let Ok(reply) = read_reply(&mut cursor) {
        assert!(
            complete < wants.len(),
            "the slow reader got more replies than it asked for"
        );
        assert!(
            reply == wants[complete],
            "slow reader reply {complete}: got {}, want {}",
            short(&reply),
            short(&wants[complete])
        );
        complete += 1;
    }
    assert!(complete < wants.len(), "the slow reader got every reply");
    let total = join_clients(handles, &pool.proxy);
    eprintln!(
        "slow reader cut after {complete} replies ({} bytes); {total} replies of the others checked in {:?}",
        got.len(),
        started.elapsed()
    );
    wait_one_client(&pool.proxy);
}

/// A multi-key command split over several groups, sent after a transaction or a blocking
/// command (dedicated links), must run after it, as every other request does; and a
/// transaction after WATCH must run after the requests sent before it on shared links;
/// requests after SELECT or HELLO (other backend connections) after the earlier ones:
/// Redis runs one client's requests in order.
#[test]
fn requests_on_shared_and_dedicated_links_run_in_the_clients_order() {
    let pool = start_pool("");
    let mut c = pool.proxy.conn();
    let x = "tx:x";
    let y = (0..)
        .map(|i| format!("tx:y{i}"))
        .find(|k| group_of(k) != group_of(x))
        .unwrap();
    for round in 0..5 {
        // Keyless commands held in a transaction until its group is known.
        let replies = c
            .pipeline(&[&["MULTI"][..], &["PING"], &["SET", x, "k"], &["EXEC"]])
            .unwrap();
        let queued = Reply::Status("QUEUED".into());
        let pong = Reply::Status("PONG".into());
        assert_eq!(
            replies,
            vec![
                Reply::ok(),
                queued.clone(),
                queued.clone(),
                Reply::Array(vec![pong.clone(), Reply::ok()]),
            ],
            "round {round}: MULTI PING SET EXEC"
        );
        let replies = c.pipeline(&[&["MULTI"][..], &["PING"], &["EXEC"]]).unwrap();
        assert_eq!(
            replies,
            vec![Reply::ok(), queued.clone(), Reply::Array(vec![pong])],
            "round {round}: MULTI PING EXEC"
        );
        // A blocking command, then a transaction on another group's dedicated link: the
        // first link is not closed under the blocking command.
        let l = format!("tx:l{round}");
        let k2 = (0..)
            .map(|i| format!("tx:k{round}.{i}"))
            .find(|k| group_of(k) != group_of(&l))
            .unwrap();
        let replies = c
            .pipeline(&[
                &["RPUSH", l.as_str(), "item"][..],
                &["BLPOP", l.as_str(), "2"],
                &["MULTI"],
                &["SET", k2.as_str(), "v"],
                &["EXEC"],
            ])
            .unwrap();
        assert_eq!(
            replies,
            vec![
                Reply::Int(1),
                Reply::Array(vec![Reply::bulk(&l), Reply::bulk("item")]),
                Reply::ok(),
                queued.clone(),
                Reply::Array(vec![Reply::ok()]),
            ],
            "round {round}: BLPOP then a transaction on another group"
        );
        // EXEC sets x to 1; the MSET after it sets x to 2.
        let one = format!("one{round}");
        let two = format!("two{round}");
        let replies = c
            .pipeline(&[
                &["MULTI"][..],
                &["SET", x, one.as_str()],
                &["EXEC"],
                &["MSET", x, two.as_str(), y.as_str(), two.as_str()],
                &["GET", x],
            ])
            .unwrap();
        assert_eq!(
            replies,
            vec![
                Reply::ok(),
                Reply::Status("QUEUED".into()),
                Reply::Array(vec![Reply::ok()]),
                Reply::ok(),
                Reply::bulk(&two),
            ],
            "round {round}: the MSET after EXEC ran before it"
        );
        // BLPOP finds the element pushed before it; the DEL after it comes later.
        let q = format!("tx:q{round}");
        let z = (0..)
            .map(|i| format!("tx:z{round}.{i}"))
            .find(|k| group_of(k) != group_of(&q))
            .unwrap();
        let replies = c
            .pipeline(&[
                &["RPUSH", q.as_str(), "item"][..],
                &["BLPOP", q.as_str(), "2"],
                &["DEL", q.as_str(), z.as_str()],
            ])
            .unwrap();
        assert_eq!(
            replies,
            vec![
                Reply::Int(1),
                Reply::Array(vec![Reply::bulk(&q), Reply::bulk("item")]),
                Reply::Int(0),
            ],
            "round {round}: the DEL after BLPOP ran before it"
        );
        // WATCH, a read held up on a shared link behind an 8 MB write, then the
        // transaction on the WATCH link: the read still sees the value before EXEC.
        let w = format!("{{w{round}}}key");
        let filler = format!("{{w{round}}}filler");
        assert_eq!(c.query(&["SET", w.as_str(), "old"]).unwrap(), Reply::ok());
        let mut wire = encode_command(&["WATCH", w.as_str()]);
        wire.extend(encode_command(&[
            b"SET".as_ref(),
            filler.as_bytes(),
            &vec![b'f'; 8 * 1024 * 1024],
        ]));
        wire.extend(encode_command(&["GET", w.as_str()]));
        wire.extend(encode_command(&["MULTI"]));
        wire.extend(encode_command(&["SET", w.as_str(), "new"]));
        wire.extend(encode_command(&["EXEC"]));
        c.send_raw(&wire).unwrap();
        let replies: Vec<Reply> = (0..6).map(|_| c.read_reply().unwrap()).collect();
        assert_eq!(
            replies,
            vec![
                Reply::ok(),
                Reply::ok(),
                Reply::bulk("old"),
                Reply::ok(),
                Reply::Status("QUEUED".into()),
                Reply::Array(vec![Reply::ok()]),
            ],
            "round {round}: the transaction after WATCH ran before the GET"
        );
        // SELECT and HELLO move later requests to other connections: they still run
        // after the 8 MB write sent before.
        let m = format!("sel:{round}");
        assert_eq!(c.query(&["SET", m.as_str(), "db0"]).unwrap(), Reply::ok());
        let mut wire = encode_command(&["SELECT", "1"]);
        wire.extend(encode_command(&[
            b"SET".as_ref(),
            m.as_bytes(),
            &vec![b'm'; 8 * 1024 * 1024],
        ]));
        wire.extend(encode_command(&["SELECT", "0"]));
        wire.extend(encode_command(&["MOVE", m.as_str(), "1"]));
        wire.extend(encode_command(&["HELLO", "3"]));
        wire.extend(encode_command(&["SELECT", "1"]));
        wire.extend(encode_command(&["STRLEN", m.as_str()]));
        wire.extend(encode_command(&["DEL", m.as_str()]));
        wire.extend(encode_command(&["HELLO", "2"]));
        wire.extend(encode_command(&["SELECT", "0"]));
        c.send_raw(&wire).unwrap();
        let replies: Vec<Reply> = (0..10).map(|_| c.read_reply().unwrap()).collect();
        assert_eq!(
            [&replies[..4], &replies[5..8], &replies[9..]].concat(),
            vec![
                Reply::ok(),
                Reply::ok(),
                Reply::ok(),
                Reply::Int(0),
                Reply::ok(),
                Reply::Int(8 * 1024 * 1024),
                Reply::Int(1),
                Reply::ok(),
            ],
            "round {round}: a request after SELECT or HELLO ran before an earlier one"
        );
        assert!(
            matches!(replies[4], Reply::Map(_)) && matches!(replies[8], Reply::Array(_)),
            "round {round}: HELLO replies {} and {}",
            short(&replies[4]),
            short(&replies[8])
        );
    }
}

/// RESET pipelined behind a blocking command: the command finishes first (as on a plain
/// Redis connection), rather than failing when RESET drops its dedicated connection.
#[test]
fn reset_waits_for_a_blocking_command_in_flight() {
    let pool = start_pool("");
    let mut c = pool.proxy.conn();
    let replies = c
        .pipeline(&[&["BLPOP", "reset:empty", "1"][..], &["RESET"], &["PING"]])
        .unwrap();
    assert_eq!(
        replies,
        vec![
            Reply::Nil,
            Reply::Status("RESET".into()),
            Reply::Status("PONG".into())
        ],
        "BLPOP times out with nil, then RESET, then PING"
    );
}
