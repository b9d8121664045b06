//! Client TLS: certificates made at test time with rcgen (no key is committed); a rustls
//! client and Debian's `redis-cli --tls` talk to redmux; the certificate is reloaded when
//! its files change; with `client_ca` a client without a certificate is refused.

mod support;

use rustls::pki_types::ServerName;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;
use support::pki::make_pki;
use support::*;

fn conf(t: &MasterReplica, port: u16, tls: &str) -> String {
    format!(
        "bind = \"127.0.0.1:{port}\"\n[tls]\n{tls}\n[sentinel_pool]\nrefresh_interval = \"200ms\"\n\
         sentinels = [\"{}\"]\n[[sentinel_pool.group]]\nname = \"{}\"\n",
        t.sentinel().addr(),
        t.name
    )
}

/// One command over TLS with a rustls client trusting `ca`; the raw reply bytes.
fn tls_query(
    addr: &str,
    ca: &Path,
    client: Option<(&Path, &Path)>,
    req: &[u8],
) -> std::io::Result<Vec<u8>> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let roots = redmux::tls::read_roots(ca).map_err(std::io::Error::other)?;
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(std::io::Error::other)?
        .with_root_certificates(roots);
    let config = match client {
        None => builder.with_no_client_auth(),
        Some((cert, key)) => {
            let certs = redmux::tls::read_certs(cert).map_err(std::io::Error::other)?;
            let pem = std::fs::read(key)?;
            let key = rustls_pemfile::private_key(&mut &pem[..])?
                .ok_or_else(|| std::io::Error::other("no key"))?;
            builder
                .with_client_auth_cert(certs, key)
                .map_err(std::io::Error::other)?
        }
    };
    let name = ServerName::try_from("localhost").expect("name");
    let conn =
        rustls::ClientConnection::new(Arc::new(config), name).map_err(std::io::Error::other)?;
    let tcp = TcpStream::connect(addr)?;
    tcp.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut s = rustls::StreamOwned::new(conn, tcp);
    s.write_all(req)?;
    s.flush()?;
    let mut buf = vec![0u8; 4096];
    let n = s.read(&mut buf)?;
    buf.truncate(n);
    Ok(buf)
}

#[test]
fn rustls_and_redis_cli_talk_tls_and_the_certificate_reloads() {
    let dir = unique_temp_dir("redmux-tls");
    let first = make_pki(&dir, "a");
    let t = MasterReplica::start_with("tlsgroup", 0, 1, 1);
    let cert = dir.join("server-cert.pem");
    let key = dir.join("server-key.pem");
    std::fs::copy(&first.cert, &cert).expect("copy");
    std::fs::copy(&first.key, &key).expect("copy");
    let tls = format!("cert = \"{}\"\nkey = \"{}\"", cert.display(), key.display());
    let r = Redmux::start(&conf(&t, free_port(), &tls), "toml");
    must_wait(Duration::from_secs(10), "TLS SET through redmux", || {
        tls_query(
            &r.addr(),
            &first.ca,
            None,
            &encode_command(&["SET", "tls:k", "v"]),
        )
        .is_ok_and(|b| b == b"+OK\r\n")
    });
    let got = tls_query(
        &r.addr(),
        &first.ca,
        None,
        &encode_command(&["GET", "tls:k"]),
    )
    .expect("get");
    assert_eq!(got, b"$1\r\nv\r\n");
    // Plain RESP on the TLS port gets nothing back.
    let mut plain = TcpStream::connect(r.addr()).expect("connect");
    plain
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    plain.write_all(b"*1\r\n$4\r\nPING\r\n").expect("send");
    let mut buf = [0u8; 64];
    let n = plain.read(&mut buf).unwrap_or(0);
    assert!(
        !buf[..n].starts_with(b"+PONG"),
        "plain text served on the TLS port"
    );
    // redis-cli --tls (Debian's is built with TLS).
    let cli = require_binary("redis-cli", "apt-get install redis-tools");
    let out = Command::new(&cli)
        .args(["--tls", "--cacert"])
        .arg(&first.ca)
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            &r.port().to_string(),
            "GET",
            "tls:k",
        ])
        .output()
        .expect("redis-cli");
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "v", "{out:?}");
    // New certificate from another CA: picked up without a restart.
    let second = make_pki(&dir, "b");
    std::fs::copy(&second.key, &key).expect("copy");
    std::fs::copy(&second.cert, &cert).expect("copy");
    must_wait(Duration::from_secs(15), "new certificate served", || {
        tls_query(&r.addr(), &second.ca, None, &encode_command(&["PING"]))
            .is_ok_and(|b| b == b"+PONG\r\n")
    });
    assert!(tls_query(&r.addr(), &first.ca, None, &encode_command(&["PING"])).is_err());
    assert!(r.logs().contains("TLS certificate reloaded"));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn client_ca_requires_a_client_certificate() {
    let dir = unique_temp_dir("redmux-mtls");
    let pki = make_pki(&dir, "m");
    let t = MasterReplica::start_with("mtlsgroup", 0, 1, 1);
    let tls = format!(
        "cert = \"{}\"\nkey = \"{}\"\nclient_ca = \"{}\"",
        pki.cert.display(),
        pki.key.display(),
        pki.ca.display()
    );
    let r = Redmux::start(&conf(&t, free_port(), &tls), "toml");
    let with_cert = Some((pki.client_cert.as_path(), pki.client_key.as_path()));
    must_wait(Duration::from_secs(10), "mutual TLS PING", || {
        tls_query(&r.addr(), &pki.ca, with_cert, &encode_command(&["PING"]))
            .is_ok_and(|b| b == b"+PONG\r\n")
    });
    assert!(tls_query(&r.addr(), &pki.ca, None, &encode_command(&["PING"])).is_err());
    let _ = std::fs::remove_dir_all(&dir);
}
