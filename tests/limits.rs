//! Limits against hostile or broken clients, on real processes: HTTP and TLS on the
//! Redis port, AUTH failures per address (and no password in the log), output buffer
//! limits, max_clients, client_timeout, and config reload (SIGHUP and
//! `CONFIG SET redmux.reload yes`).

mod support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};
use support::*;

/// A TOML config for one group behind `t`'s Sentinel, with `extra` top-level keys and
/// `auth` tables.
fn config(t: &MasterReplica, port: u16, extra: &str, auth: &str) -> String {
    format!(
        "bind = \"127.0.0.1:{port}\"\nworker_threads = 2\n{extra}\n{auth}\n[sentinel_pool]\nrefresh_interval = \"200ms\"\nsentinels = [\"{}\"]\n[[sentinel_pool.group]]\nname = \"{}\"\n",
        t.sentinel().addr(),
        t.name
    )
}

/// redmux with debug logging, so a password printed at any level would show.
fn start(text: &str) -> Redmux {
    std::env::set_var("REDMUX_TEST_RUST_LOG", "debug");
    Redmux::start(text, "toml")
}

/// Waits until redmux routes to the master (discovery done).
fn wait_routed(r: &Redmux, password: Option<&str>) {
    must_wait(Duration::from_secs(10), "redmux routes a GET", || {
        let reply = match password {
            Some(pw) => query_auth(&r.addr(), pw, &["GET", "routed?"]),
            None => query(&r.addr(), &["GET", "routed?"]),
        };
        reply.is_ok_and(|x| !x.is_error())
    });
}

/// Reads until EOF (or reset); returns what came, or panics after `limit`.
fn read_to_close(s: &mut TcpStream, limit: Duration) -> Vec<u8> {
    s.set_read_timeout(Some(limit)).expect("timeout");
    let mut out = Vec::new();
    let mut buf = [0u8; 65536];
    let started = Instant::now();
    loop {
        match s.read(&mut buf) {
            Ok(0) | Err(_) if started.elapsed() < limit => return out,
            Ok(0) => return out,
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) => panic!("connection not closed within {limit:?}: {e}"),
        }
    }
}

fn raw(addr: &str, bytes: &[u8]) -> TcpStream {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.write_all(bytes).expect("send");
    s
}

#[test]
fn http_and_tls_are_refused_and_never_reach_a_backend() {
    let t = MasterReplica::start_with("foreign", 0, 1, 1);
    let r = start(&config(&t, free_port(), "", ""));
    wait_routed(&r, None);
    let mut monitor = t.master.conn();
    monitor.send(&["MONITOR"]).expect("monitor");
    assert_eq!(monitor.read_reply().expect("+OK"), Reply::ok());
    let http: [&[u8]; 7] = [
        b"POST / HTTP/1.1\r\nHost: evil\r\nContent-Length: 20\r\n\r\nSET pwned 1\r\n",
        b"GET / HTTP/1.1\r\nHost: evil\r\n\r\n",
        b"PUT /x HTTP/1.1\r\n\r\n",
        b"HEAD / HTTP/1.0\r\n\r\n",
        b"OPTIONS * HTTP/1.1\r\n\r\n",
        b"CONNECT 127.0.0.1:1 HTTP/1.1\r\n\r\n",
        b"*2\r\n$4\r\nPOST\r\n$1\r\n/\r\n*3\r\n$3\r\nSET\r\n$5\r\npwned\r\n$1\r\n1\r\n",
    ];
    for req in http {
        let started = Instant::now();
        let mut s = raw(&r.addr(), req);
        let got = read_to_close(&mut s, Duration::from_secs(3));
        let text = String::from_utf8_lossy(&got);
        assert!(
            text.starts_with("-ERR") && text.contains("SECURITY ATTACK") && text.ends_with("\r\n"),
            "{:?} got {text:?}",
            String::from_utf8_lossy(req)
        );
        assert!(started.elapsed() < Duration::from_secs(2));
    }
    // A TLS ClientHello start: closed without a byte.
    let mut s = raw(&r.addr(), b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03");
    assert!(read_to_close(&mut s, Duration::from_secs(3)).is_empty());
    // An inline `Host:` line later in a connection closes it too.
    let mut s = raw(&r.addr(), b"PING\r\nHost: evil\r\nSET pwned 1\r\n");
    let text = String::from_utf8_lossy(&read_to_close(&mut s, Duration::from_secs(3))).to_string();
    assert!(text.starts_with("+PONG\r\n-ERR"), "{text}");
    // The marker passes; nothing foreign reached the master before it.
    assert_eq!(r.cmd(&["GET", "marker-after-attacks"]), Reply::Nil);
    monitor
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    loop {
        let line = monitor.read_reply().expect("monitor line");
        let line = line.as_str().unwrap_or_default().to_string();
        assert!(
            !line.contains("pwned") && !line.contains("HTTP") && !line.contains("\"POST\""),
            "foreign bytes reached the master: {line}"
        );
        if line.contains("marker-after-attacks") {
            break;
        }
    }
    assert_eq!(r.cmd(&["EXISTS", "pwned"]), Reply::Int(0));
    assert!(r.logs().contains("foreign protocol on the Redis port"));
}

#[test]
fn auth_failures_are_limited_per_address_and_passwords_never_logged() {
    const GOOD: &str = "Good-Secret-pw-4711";
    let t = MasterReplica::start_with("authlimit", 0, 1, 1);
    let auth = format!("[[auth]]\npassword = \"{GOOD}\"\nmode = \"admin\"\n");
    let r = start(&config(&t, free_port(), "auth_failure_limit = 3", &auth));
    wait_routed(&r, Some(GOOD));
    // From 127.0.0.2: three wrong passwords, then AUTH is refused and the link closed.
    let mut attacker = raw_from([127, 0, 0, 2], &r.addr());
    for i in 0..3 {
        let reply = attacker
            .query(&["AUTH", &format!("Leaked-Wrong-pw-{i}")])
            .expect("auth reply");
        assert!(
            reply
                .error_message()
                .unwrap_or_default()
                .starts_with("WRONGPASS"),
            "{reply}"
        );
    }
    let reply = attacker.query(&["AUTH", GOOD]).expect("refusal");
    assert!(
        reply
            .error_message()
            .unwrap_or_default()
            .contains("too many failed AUTH"),
        "{reply}"
    );
    assert!(
        attacker.read_reply().is_err(),
        "connection closed after refusal"
    );
    // Still refused on a new connection from that address, even with the right password.
    let mut again = raw_from([127, 0, 0, 2], &r.addr());
    let hello = again
        .query(&["HELLO", "3", "AUTH", "default", GOOD])
        .expect("reply");
    assert!(hello.is_error(), "{hello}");
    // 127.0.0.1 is not affected.
    assert_eq!(r.cmd_auth(GOOD, &["PING"]), Reply::Status("PONG".into()));
    let info = r.cmd_auth(GOOD, &["INFO"]);
    let info = info.as_str().unwrap_or_default();
    assert!(!info.contains(GOOD));
    let logs = r.logs();
    assert!(logs.contains("authentication failed"), "{logs}");
    assert!(logs.contains("too many failures"), "{logs}");
    assert!(
        !logs.contains("Leaked-Wrong-pw"),
        "a password reached the log:\n{logs}"
    );
    assert!(!logs.contains(GOOD), "a password reached the log:\n{logs}");
}

/// A blocking RESP connection whose socket is bound to `ip` first (limits per address
/// are seen apart from 127.0.0.1).
struct BoundConn {
    reader: std::io::BufReader<TcpStream>,
    writer: TcpStream,
}

impl BoundConn {
    fn query(&mut self, args: &[&str]) -> std::io::Result<Reply> {
        self.writer.write_all(&encode_command(args))?;
        self.read_reply()
    }

    fn read_reply(&mut self) -> std::io::Result<Reply> {
        read_reply(&mut self.reader)
    }
}

fn raw_from(ip: [u8; 4], addr: &str) -> BoundConn {
    use socket2::{Domain, Socket, Type};
    let sock = Socket::new(Domain::IPV4, Type::STREAM, None).expect("socket");
    sock.bind(&SocketAddr::from((ip, 0)).into()).expect("bind");
    let to: SocketAddr = addr.parse().expect("addr");
    sock.connect(&to.into()).expect("connect");
    let writer: TcpStream = sock.into();
    writer
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    BoundConn {
        reader: std::io::BufReader::new(writer.try_clone().expect("clone")),
        writer,
    }
}

#[test]
fn a_client_that_stops_reading_is_dropped_at_its_output_limit_others_unaffected() {
    let t = MasterReplica::start_with("outlimit", 0, 1, 1);
    let r = start(&config(
        &t,
        free_port(),
        "client_output_buffer_limit_normal = \"2mb\"",
        "",
    ));
    wait_routed(&r, None);
    let big = "x".repeat(256 * 1024);
    assert_eq!(r.cmd(&["SET", "big", &big]), Reply::ok());
    // The slow client asks for 400 × 256 KB (100 MB) and reads nothing.
    let mut slow = TcpStream::connect(r.addr()).expect("connect");
    let mut pipeline = Vec::new();
    for _ in 0..400 {
        pipeline.extend_from_slice(&encode_command(&["GET", "big"]));
    }
    slow.write_all(&pipeline).expect("send");
    let mut good = r.conn();
    let started = Instant::now();
    let mut dropped = false;
    while started.elapsed() < Duration::from_secs(10) {
        assert_eq!(
            good.query(&["PING"]).expect("ping"),
            Reply::Status("PONG".into())
        );
        let n = good.query(&["STRLEN", "big"]).expect("strlen");
        assert_eq!(n, Reply::Int(256 * 1024));
        if r.logs().contains("output buffer limit reached") {
            dropped = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(dropped, "slow client not dropped\n{}", r.logs());
    // What the slow client can still read ends well short of 100 MB, then EOF.
    let got = read_to_close(&mut slow, Duration::from_secs(10));
    assert!(got.len() < 40 * 1024 * 1024, "read {} bytes", got.len());
    assert_eq!(good.query(&["GET", "nope"]).expect("get"), Reply::Nil);
    // The proxy holds no more of its replies: the client count drops back.
    must_wait(Duration::from_secs(5), "dropped client gone", || {
        let info = r.cmd(&["INFO", "clients"]);
        info_field(info.as_str().unwrap_or_default(), "connected_clients").as_deref() == Some("2")
    });
}

#[test]
fn max_clients_and_client_timeout() {
    let t = MasterReplica::start_with("maxclients", 0, 1, 1);
    let r = start(&config(
        &t,
        free_port(),
        "max_clients = 4\nclient_timeout = 1",
        "",
    ));
    wait_routed(&r, None);
    // Earlier probes' connections are counted until their sessions end: wait for that
    // on a connection that stays open and is one of the four.
    let mut first = r.conn();
    must_wait(Duration::from_secs(5), "only this client connected", || {
        first
            .query(&["INFO", "clients"])
            .map(|i| i.to_string().contains("connected_clients:1\r\n"))
            .unwrap_or(false)
    });
    let mut held: Vec<Conn> = std::iter::once(first)
        .chain((0..3).map(|_| r.conn()))
        .collect();
    for c in &mut held {
        assert_eq!(
            c.query(&["PING"]).expect("ping"),
            Reply::Status("PONG".into())
        );
    }
    let mut over = TcpStream::connect(r.addr()).expect("connect");
    let text =
        String::from_utf8_lossy(&read_to_close(&mut over, Duration::from_secs(3))).to_string();
    assert_eq!(text, "-ERR max number of clients reached\r\n");
    // Idle clients are closed after client_timeout (1 s); a busy one stays.
    let mut busy = held.pop().expect("one");
    let started = Instant::now();
    while started.elapsed() < Duration::from_millis(2500) {
        assert_eq!(
            busy.query(&["PING"]).expect("busy ping"),
            Reply::Status("PONG".into())
        );
        std::thread::sleep(Duration::from_millis(300));
    }
    for mut c in held {
        assert!(c.read_reply().is_err(), "idle client still open");
    }
    // Room again under max_clients.
    assert_eq!(r.cmd(&["PING"]), Reply::Status("PONG".into()));
}

fn sighup(r: &Redmux) {
    let pid = r.pid().expect("redmux pid");
    let st = std::process::Command::new("kill")
        .args(["-HUP", &pid.to_string()])
        .status()
        .expect("kill -HUP");
    assert!(st.success());
}

#[test]
fn config_reload_keeps_clients_and_rejects_a_bad_file() {
    let t = MasterReplica::start_with("reload", 0, 1, 1);
    let port = free_port();
    let auth = |pw: &str| format!("[[auth]]\npassword = \"{pw}\"\nmode = \"admin\"\n");
    let r = start(&config(&t, port, "", &auth("old-pw")));
    wait_routed(&r, Some("old-pw"));
    let mut kept = r.conn_auth("old-pw");
    std::fs::write(r.config_path(), config(&t, port, "", &auth("new-pw"))).expect("write");
    sighup(&r);
    must_wait(Duration::from_secs(5), "new password accepted", || {
        query_auth(&r.addr(), "new-pw", &["PING"]).is_ok()
    });
    assert!(query_auth(&r.addr(), "old-pw", &["PING"]).is_err());
    assert_eq!(
        kept.query(&["PING"]).expect("kept"),
        Reply::Status("PONG".into())
    );
    // A bad file is rejected; the running config stays.
    std::fs::write(r.config_path(), "bind = \"127.0.0.1:1\"\nbogus = 1\n").expect("write");
    sighup(&r);
    must_wait(Duration::from_secs(5), "rejection logged", || {
        r.logs().contains("config reload rejected")
    });
    assert_eq!(
        r.cmd_auth("new-pw", &["PING"]),
        Reply::Status("PONG".into())
    );
    // The admin command reloads too, and reports a bad file as an error.
    let mut admin = r.conn_auth("new-pw");
    let bad = admin
        .query(&["CONFIG", "SET", "redmux.reload", "yes"])
        .expect("reply");
    assert!(
        bad.error_message().unwrap_or_default().contains("bogus"),
        "{bad}"
    );
    std::fs::write(
        r.config_path(),
        config(&t, port, "allow = [\"10.9.9.9\"]", &auth("new-pw")),
    )
    .expect("write");
    assert_eq!(
        admin
            .query(&["CONFIG", "SET", "redmux.reload", "yes"])
            .expect("reply"),
        Reply::ok()
    );
    // The allow-list now refuses new connections from 127.0.0.1; open ones stay.
    assert!(query_auth(&r.addr(), "new-pw", &["PING"]).is_err());
    assert_eq!(
        kept.query(&["PING"]).expect("kept"),
        Reply::Status("PONG".into())
    );
    assert_eq!(
        admin.query(&["PING"]).expect("admin"),
        Reply::Status("PONG".into())
    );
}
