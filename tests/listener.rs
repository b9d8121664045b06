//! The accept path against the real binary: the client allow-list, the PROXY protocol,
//! and draining on SIGTERM.

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};
use support::*;

fn config(port: u16, sentinel: &str, extra: &str) -> String {
    format!(
        "bind = \"127.0.0.1:{port}\"\n{extra}\n[sentinel_pool]\nsentinels = [\"{sentinel}\"]\n[[sentinel_pool.group]]\nname = \"mymaster\"\n"
    )
}

/// Sends `bytes` and returns what comes back before the proxy closes or 2 s pass.
fn exchange(addr: &str, bytes: &[u8]) -> Vec<u8> {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    let _ = s.write_all(bytes);
    let mut out = Vec::new();
    let mut buf = [0u8; 256];
    while let Ok(n) = s.read(&mut buf) {
        if n == 0 {
            break;
        }
        out.extend_from_slice(&buf[..n]);
        if out.ends_with(b"\r\n") {
            break;
        }
    }
    out
}

fn wait_master(proxy: &Redmux) {
    must_wait(Duration::from_secs(10), "proxy knows the master", || {
        proxy
            .try_cmd(&["SET", "warm", "1"])
            .is_ok_and(|r| r == Reply::ok())
    });
}

#[test]
fn allow_list_refuses_clients_outside_it() {
    let topo = MasterReplica::start("mymaster");
    let sentinel = topo.sentinel_addrs()[0].clone();
    let port = free_port();
    let refused = Redmux::start_on(
        &config(port, &sentinel, "allow = [\"10.0.0.0/8\"]"),
        "toml",
        port,
    );
    assert_eq!(exchange(&refused.addr(), b"PING\r\n"), b"");
    assert!(refused.logs().contains("not in the allow list"));
    let port = free_port();
    let allowed = Redmux::start_on(
        &config(port, &sentinel, "allow = [\"10.0.0.0/8\", \"127.0.0.0/8\"]"),
        "toml",
        port,
    );
    assert_eq!(exchange(&allowed.addr(), b"PING\r\n"), b"+PONG\r\n");
}

#[test]
fn proxy_protocol_passes_the_real_client_to_the_allow_list() {
    let topo = MasterReplica::start("mymaster");
    let sentinel = topo.sentinel_addrs()[0].clone();
    let port = free_port();
    let proxy = Redmux::start_on(
        &config(
            port,
            &sentinel,
            "proxy_protocol = true\nallow = [\"192.168.22.0/24\"]",
        ),
        "toml",
        port,
    );
    let addr = proxy.addr();
    let v1_ok = b"PROXY TCP4 192.168.22.7 10.0.0.1 51234 7617\r\n*1\r\n$4\r\nPING\r\n";
    assert_eq!(exchange(&addr, v1_ok), b"+PONG\r\n");
    let v1_refused = b"PROXY TCP4 10.9.9.9 10.0.0.1 51234 7617\r\n*1\r\n$4\r\nPING\r\n";
    assert_eq!(exchange(&addr, v1_refused), b"");
    let mut v2 = b"\r\n\r\n\0\r\nQUIT\n".to_vec();
    v2.extend_from_slice(&[
        0x21, 0x11, 0, 12, 192, 168, 22, 9, 10, 0, 0, 1, 0x1f, 0x90, 0x1d, 0xc1,
    ]);
    v2.extend_from_slice(b"PING\r\n");
    assert_eq!(exchange(&addr, &v2), b"+PONG\r\n");
    // No header: closed without a reply, never forwarded.
    assert_eq!(exchange(&addr, b"*1\r\n$4\r\nPING\r\n"), b"");
    // The header arriving in pieces still works.
    let mut s = TcpStream::connect(&addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    for chunk in v1_ok.chunks(5) {
        s.write_all(chunk).unwrap();
        std::thread::sleep(Duration::from_millis(5));
    }
    let mut buf = [0u8; 7];
    s.read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"+PONG\r\n");
}

#[test]
fn sigterm_lets_requests_in_flight_finish_then_exits_zero() {
    let topo = MasterReplica::start("mymaster");
    let sentinel = topo.sentinel_addrs()[0].clone();
    let port = free_port();
    let mut proxy = Redmux::start_on(&config(port, &sentinel, ""), "toml", port);
    wait_master(&proxy);
    let mut client = proxy.conn();
    client.query(&["SET", "k", "v"]).unwrap();
    // The master goes silent: the next request stays in flight.
    topo.master.pause();
    client.send(&["GET", "k"]).unwrap();
    std::thread::sleep(Duration::from_millis(200));
    let pid = proxy.pid().unwrap();
    let started = Instant::now();
    let resume = std::thread::spawn({
        let master_pid = topo.master.pid().unwrap();
        move || {
            std::thread::sleep(Duration::from_millis(800));
            let _ = std::process::Command::new("kill")
                .args(["-CONT", &master_pid.to_string()])
                .status();
        }
    });
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status();
    std::thread::sleep(Duration::from_millis(200));
    // No new clients once draining.
    assert!(
        TcpStream::connect(proxy.addr()).is_err()
            || exchange(&proxy.addr(), b"PING\r\n").is_empty(),
        "a new client was accepted while draining"
    );
    assert_eq!(client.read_reply().unwrap(), Reply::bulk("v"));
    let status = proxy
        .terminate(Duration::from_secs(15))
        .expect("redmux did not exit");
    assert!(status.success(), "exit status {status:?}");
    assert!(
        started.elapsed() >= Duration::from_millis(700),
        "exited before the reply came"
    );
    resume.join().unwrap();
    topo.master.resume();
}
