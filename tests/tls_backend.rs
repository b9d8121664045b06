//! TLS from redmux to the Redis servers and the Sentinels: a CA and a server certificate
//! are made at test time with rcgen; a redis-server master and replica and a
//! redis-sentinel listen on TLS ports (Debian's Redis 7 is built with TLS; if it is not,
//! these tests fail saying so); redmux reaches all of them over TLS. With a CA that did
//! not sign the servers' certificate, clients get an error that names TLS.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use support::pki::{make_pki, Pki};
use support::*;

/// The redis-server/sentinel TLS settings for `pki` (clients need no certificate).
fn tls_args(pki: &Pki) -> Vec<String> {
    let mut args = Vec::new();
    for (k, v) in [
        ("--tls-cert-file", &pki.cert),
        ("--tls-key-file", &pki.key),
        ("--tls-ca-cert-file", &pki.ca),
    ] {
        args.push(k.to_string());
        args.push(v.display().to_string());
    }
    for a in ["--tls-auth-clients", "no", "--tls-replication", "yes"] {
        args.push(a.to_string());
    }
    args
}

/// A redis-server with a plain port (the harness' readiness probe) and a TLS port.
fn tls_server(pki: &Pki, tls_port: u16, extra: &[String]) -> RedisServer {
    let mut args = vec!["--tls-port".to_string(), tls_port.to_string()];
    args.extend(tls_args(pki));
    args.extend(extra.iter().cloned());
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let s = RedisServer::start_with(&refs);
    let pong = redis_cli_tls(&pki.ca, tls_port, &with_client_cert(pki, &["PING"]));
    assert_eq!(
        pong.trim(),
        "PONG",
        "redis-server does not answer on its TLS port {tls_port} (is it built with TLS?): \
         {pong}\n--- log ---\n{}",
        s.logs()
    );
    s
}

/// `redis-cli --tls --cacert CA -p PORT ARGS...` (ARGS may start with more options);
/// its output (stdout and stderr).
fn redis_cli_tls(ca: &Path, port: u16, args: &[&str]) -> String {
    let bin = require_binary("redis-cli", "apt-get install -y redis-tools");
    let out = Command::new(bin)
        .args(["--tls", "--cacert"])
        .arg(ca)
        .args(["-h", "127.0.0.1", "-p", &port.to_string()])
        .args(args)
        .output()
        .expect("run redis-cli");
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// A redis-sentinel with a plain port and a TLS port, monitoring `mymaster` over TLS,
/// demanding a client certificate on its TLS port when `demand_cert`; killed by PID on
/// drop. `dir` is its own (it rewrites its config file there).
struct TlsSentinel {
    port: u16,
    tls_port: u16,
    child: Child,
    log: PathBuf,
}

impl TlsSentinel {
    fn start(pki: &Pki, dir: &Path, master_tls_port: u16, demand_cert: bool) -> TlsSentinel {
        let bin = require_binary("redis-sentinel", "apt-get install -y redis-sentinel");
        let (port, tls_port) = (free_port(), free_port());
        let mut text = format!(
            "port {port}\ntls-port {tls_port}\nbind 127.0.0.1\ndaemonize no\ndir \"{}\"\n",
            dir.display()
        );
        let args = tls_args(pki);
        for kv in args.chunks(2) {
            text.push_str(&format!("{} \"{}\"\n", &kv[0][2..], kv[1]));
        }
        if demand_cert {
            text.push_str("tls-auth-clients yes\n");
        }
        text.push_str(&format!(
            "sentinel monitor mymaster 127.0.0.1 {master_tls_port} 1\n\
             sentinel down-after-milliseconds mymaster 2000\n"
        ));
        let conf = dir.join("sentinel.conf");
        std::fs::write(&conf, text).expect("write sentinel.conf");
        let log = dir.join("sentinel.log");
        let file = std::fs::File::create(&log).expect("sentinel log");
        let child = Command::new(bin)
            .arg(&conf)
            .current_dir(dir)
            .stdin(Stdio::null())
            .stdout(file.try_clone().expect("log handle"))
            .stderr(file)
            .spawn()
            .expect("start redis-sentinel");
        let s = TlsSentinel {
            port,
            tls_port,
            child,
            log,
        };
        let want = master_tls_port.to_string();
        let ready = wait_until(Duration::from_secs(10), || {
            redis_cli_tls(
                &pki.ca,
                tls_port,
                &with_client_cert(pki, &["SENTINEL", "get-master-addr-by-name", "mymaster"]),
            )
            .contains(&want)
        });
        assert!(
            ready,
            "redis-sentinel did not answer on its TLS port {tls_port} (is it built with TLS?)\n\
             --- log ---\n{}",
            std::fs::read_to_string(&s.log).unwrap_or_default()
        );
        s
    }
}

impl Drop for TlsSentinel {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// redis-cli arguments `args` after the options that present `pki`'s client certificate
/// (for servers that demand one; harmless for the others).
fn with_client_cert<'a>(pki: &'a Pki, args: &[&'a str]) -> Vec<&'a str> {
    let path = |p: &'a Path| p.to_str().expect("temp paths are UTF-8");
    let mut out = vec![
        "--cert",
        path(&pki.client_cert),
        "--key",
        path(&pki.client_key),
    ];
    out.extend_from_slice(args);
    out
}

/// A redmux TOML config with the backend TLS lines `tls`.
fn conf(port: u16, sentinel: &str, tls: &str) -> String {
    format!(
        "bind = \"127.0.0.1:{port}\"\n[sentinel_pool]\nrefresh_interval = \"200ms\"\n\
         server_timeout = 2\nserver_retry_timeout = \"200ms\"\n{tls}\n\
         sentinels = [\"{sentinel}\"]\n[[sentinel_pool.group]]\nname = \"mymaster\"\n"
    )
}

#[test]
fn servers_and_sentinels_over_tls() {
    let dir = unique_temp_dir("tls-backend");
    let pki = make_pki(&dir, "good");
    let wrong = make_pki(&dir, "wrong");
    let master_tls = free_port();
    let master = tls_server(&pki, master_tls, &[]);
    let replica_tls = free_port();
    let replica_of = [
        "--replicaof".to_string(),
        "127.0.0.1".to_string(),
        master_tls.to_string(),
    ];
    let replica = tls_server(&pki, replica_tls, &replica_of);
    replica.wait_link_up(Duration::from_secs(10));
    let sentinel = TlsSentinel::start(&pki, &dir, master_tls, false);

    // Everything over TLS, verified with the right CA.
    let tls = format!(
        "tls = true\nsentinel_tls = true\ntls_ca = \"{}\"",
        pki.ca.display()
    );
    let sentinel_addr = format!("127.0.0.1:{}", sentinel.tls_port);
    let r = Redmux::start(&conf(free_port(), &sentinel_addr, &tls), "toml");
    let started = Instant::now();
    let mut last = Reply::Nil;
    let ok = wait_until(Duration::from_secs(10), || {
        last = r.cmd(&["SET", "tls:key", "over-tls"]);
        last == Reply::ok()
    });
    assert!(ok, "SET through redmux over TLS: {last}\n{}", r.logs());
    assert_eq!(r.cmd(&["GET", "tls:key"]), Reply::bulk("over-tls"));
    // The write really reached the master (and, over TLS replication, the replica).
    assert_eq!(
        redis_cli_tls(&pki.ca, master_tls, &["GET", "tls:key"]).trim(),
        "over-tls"
    );
    must_wait(Duration::from_secs(5), "replica has the key", || {
        redis_cli_tls(&pki.ca, replica_tls, &["GET", "tls:key"]).trim() == "over-tls"
    });
    eprintln!("TLS path ready in {:?}", started.elapsed());
    drop(r);

    // The servers' certificate is not signed by this CA: a clear TLS error. The
    // Sentinel is reached on its plain port so the topology is known.
    let tls = format!("tls = true\ntls_ca = \"{}\"", wrong.ca.display());
    let plain_sentinel = format!("127.0.0.1:{}", sentinel.port);
    let r = Redmux::start(&conf(free_port(), &plain_sentinel, &tls), "toml");
    let mut last = Reply::Nil;
    let refused = wait_until(Duration::from_secs(10), || {
        last = r.cmd(&["SET", "tls:key", "wrong-ca"]);
        last.error_message().is_some_and(|e| e.contains("TLS"))
    });
    assert!(
        refused,
        "expected a TLS error with the wrong CA, got {last}"
    );
    eprintln!("wrong CA: {last}");
    let logs = r.logs();
    assert!(
        logs.contains("TLS handshake failed"),
        "the handshake failure is logged:\n{logs}"
    );
    assert_eq!(
        redis_cli_tls(&pki.ca, master_tls, &["GET", "tls:key"]).trim(),
        "over-tls",
        "nothing was written with the wrong CA"
    );
    drop((master, replica));
}

#[test]
fn backend_tls_without_a_ca_is_a_config_error() {
    let text = conf(free_port(), "127.0.0.1:1", "tls = true");
    let (status, out) = Redmux::check(&text, "toml");
    assert!(!status.success(), "accepted: {out}");
    assert!(out.contains("tls_ca"), "message names tls_ca: {out}");
    let ok = conf(
        free_port(),
        "127.0.0.1:1",
        "tls = true\ntls_insecure_skip_verify = true",
    );
    let (status, out) = Redmux::check(&ok, "toml");
    assert!(status.success(), "insecure skip verify is accepted: {out}");
    let predixy = "Bind 127.0.0.1:7777\nSentinelServerPool {\n    Sentinels {\n        + 127.0.0.1:1\n    }\n    \
                   Group mymaster {\n    }\n    SentinelTls yes\n}\n";
    let (status, out) = Redmux::check(predixy, "conf");
    assert!(!status.success(), "accepted: {out}");
    assert!(out.contains("TlsCa"), "message names TlsCa: {out}");
}

/// The backend TLS settings that only matter against a live server: a client certificate
/// for a master that demands one (`tls-auth-clients yes`), a server name verified instead
/// of the address, and `tls_insecure_skip_verify` with a CA that did not sign the server.
#[test]
fn client_certificate_server_name_and_skip_verify_against_a_live_server() {
    let dir = unique_temp_dir("tls-backend-client-cert");
    let pki = make_pki(&dir, "good");
    let wrong = make_pki(&dir, "wrong");
    let master_tls = free_port();
    // The last --tls-auth-clients wins: this master refuses clients without a certificate.
    let demand = ["--tls-auth-clients".to_string(), "yes".to_string()];
    let master = tls_server(&pki, master_tls, &demand);
    // redis-cli without a certificate is refused: the master really demands one.
    let bare = redis_cli_tls(&pki.ca, master_tls, &["PING"]);
    assert!(!bare.contains("PONG"), "no client certificate, yet: {bare}");
    // The Sentinel (plain port for redmux) reaches the master over TLS with its own
    // certificate, signed by the same CA.
    let sentinel = TlsSentinel::start(&pki, &dir, master_tls, false);
    let plain_sentinel = format!("127.0.0.1:{}", sentinel.port);
    // Read back on the master's plain port (no certificate needed there).
    let stored = || master.cmd(&["GET", "tls:cert"]);
    // SET `value` through a redmux with the backend TLS lines `tls` until `done` holds for
    // the reply (or 10 s passed); the last reply.
    let set_through = |tls: String, value: &str, done: &dyn Fn(&Reply) -> bool| -> Reply {
        let r = Redmux::start(&conf(free_port(), &plain_sentinel, &tls), "toml");
        let mut last = Reply::Nil;
        wait_until(Duration::from_secs(10), || {
            last = r.cmd(&["SET", "tls:cert", value]);
            done(&last)
        });
        if !done(&last) {
            eprintln!("--- redmux log ---\n{}", r.logs());
        }
        last
    };
    let written = |tls: String, value: &str, what: &str| {
        let last = set_through(tls, value, &|l| *l == Reply::ok());
        assert_eq!(last, Reply::ok(), "SET {what}");
        assert_eq!(stored(), Reply::bulk(value), "{what}: on the master");
    };
    let refused = |tls: String, want: &str, what: &str| {
        let before = stored();
        let is_it = |l: &Reply| l.error_message().is_some_and(|e| e.contains(want));
        let last = set_through(tls, "refused", &is_it);
        assert!(
            is_it(&last),
            "{what}: expected an error naming {want:?}, got {last}"
        );
        eprintln!("{what}: {last}");
        assert_eq!(stored(), before, "{what}: nothing written");
    };
    let client = format!(
        "tls_cert = \"{}\"\ntls_key = \"{}\"",
        pki.client_cert.display(),
        pki.client_key.display()
    );
    let ca = |pki: &Pki| format!("tls = true\ntls_ca = \"{}\"", pki.ca.display());

    refused(
        ca(&pki),
        "wants a client certificate",
        "no client certificate",
    );
    written(
        format!("{}\n{client}", ca(&pki)),
        "with-cert",
        "with a client certificate",
    );
    // The certificate names localhost and 127.0.0.1: a server name it does not carry is a
    // TLS error, one it carries works although the address is 127.0.0.1.
    refused(
        format!(
            "{}\n{client}\ntls_server_name = \"cache.example\"",
            ca(&pki)
        ),
        "TLS",
        "a server name the certificate does not carry",
    );
    written(
        format!("{}\n{client}\ntls_server_name = \"localhost\"", ca(&pki)),
        "by-name",
        "verifying the name localhost",
    );
    // A CA that did not sign the server, but verification off: works.
    written(
        format!("{}\n{client}\ntls_insecure_skip_verify = true", ca(&wrong)),
        "skip-verify",
        "with verification off",
    );

    // A Sentinel that demands a client certificate on its TLS port: without one, the
    // operator reads what to set; with one, the master is found through it.
    let strict_dir = dir.join("strict-sentinel");
    std::fs::create_dir_all(&strict_dir).expect("sentinel dir");
    let strict = TlsSentinel::start(&pki, &strict_dir, master_tls, true);
    let strict_addr = format!("127.0.0.1:{}", strict.tls_port);
    let over_tls = |client: &str| {
        let tls = format!("{}\nsentinel_tls = true\n{client}", ca(&pki));
        Redmux::start(&conf(free_port(), &strict_addr, &tls), "toml")
    };
    let r = over_tls("");
    let logged = wait_until(Duration::from_secs(10), || {
        r.logs().contains("wants a client certificate")
    });
    assert!(
        logged,
        "a Sentinel refusing redmux for want of a client certificate is logged:\n{}",
        r.logs()
    );
    assert!(r.cmd(&["SET", "tls:cert", "no-sentinel"]).is_error());
    drop(r);
    let r = over_tls(&client);
    let mut last = Reply::Nil;
    let ok = wait_until(Duration::from_secs(10), || {
        last = r.cmd(&["SET", "tls:cert", "via-strict-sentinel"]);
        last == Reply::ok()
    });
    assert!(
        ok,
        "SET with the master found through a strict Sentinel: {last}\n{}",
        r.logs()
    );
    assert_eq!(stored(), Reply::bulk("via-strict-sentinel"));
    drop((r, strict, sentinel, master));
}
