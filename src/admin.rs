//! INFO and the proxy's own admin commands.

use crate::worker::WorkerCtx;
use std::fmt::Write;
use std::sync::atomic::Ordering;

/// The INFO text for `section` (`default`, `all`, `everything`, or one section name).
pub async fn info(ctx: &WorkerCtx, section: &str) -> String {
    let proxy = &ctx.proxy;
    let all = matches!(section, "all" | "everything" | "default");
    let mut out = String::new();
    if all || section == "server" || section == "proxy" {
        let _ = write!(
            out,
            "# Server\r\nredis_version:7.0.15\r\nredmux_version:{}\r\nredis_mode:standalone\r\nprocess_id:{}\r\ntcp_port:{}\r\nuptime_in_seconds:{}\r\nworker_threads:{}\r\n\r\n",
            env!("CARGO_PKG_VERSION"),
            std::process::id(),
            proxy.config.bind.port(),
            proxy.started.elapsed().as_secs(),
            proxy.config.worker_threads,
        );
    }
    if all || section == "clients" {
        let _ = write!(
            out,
            "# Clients\r\nconnected_clients:{}\r\ntotal_connections_received:{}\r\n\r\n",
            proxy.clients.load(Ordering::Relaxed),
            proxy.stats.accepted.load(Ordering::Relaxed),
        );
    }
    if all || section == "replication" {
        out.push_str("# Replication\r\nrole:master\r\nconnected_slaves:0\r\n\r\n");
    }
    if all || section == "servers" {
        let topo = proxy.topology.load();
        out.push_str("# Servers\r\n");
        for g in &topo.groups {
            let master = g.master.as_deref().unwrap_or("unknown");
            let _ = write!(
                out,
                "group_{}:master={},replicas={}\r\n",
                g.name,
                master,
                g.replicas.len()
            );
            for r in &g.replicas {
                let _ = write!(
                    out,
                    "server_{}:group={},role={}\r\n",
                    r.addr,
                    g.name,
                    r.role.as_str()
                );
            }
        }
        out.push_str("\r\n");
    }
    if out.ends_with("\r\n\r\n") {
        out.truncate(out.len() - 2);
    }
    out
}

/// Serves `/metrics`, `/healthz` and `/readyz` over plain HTTP/1.1 on `addr`.
pub async fn serve_http(
    proxy: std::sync::Arc<crate::worker::Proxy>,
    addr: std::net::SocketAddr,
) -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    tracing::info!(%addr, "metrics listening");
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let proxy = proxy.clone();
            tokio::spawn(async move {
                let _ = tokio::time::timeout(
                    std::time::Duration::from_secs(5),
                    http_exchange(proxy, stream),
                )
                .await;
            });
        }
    });
    Ok(())
}

async fn http_exchange(
    proxy: std::sync::Arc<crate::worker::Proxy>,
    mut stream: tokio::net::TcpStream,
) -> std::io::Result<()> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = stream.read(&mut chunk).await?;
        if n == 0 || buf.len() > 16 * 1024 {
            return Ok(());
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    let line = buf.split(|&b| b == b'\n').next().unwrap_or_default();
    let line = String::from_utf8_lossy(line);
    let path = line.split_whitespace().nth(1).unwrap_or("/");
    let (status, body) = match path {
        "/healthz" => ("200 OK", "ok\n".to_string()),
        "/readyz" => {
            let topo = proxy.topology.load();
            let missing: Vec<&str> = topo
                .groups
                .iter()
                .filter(|g| g.master.is_none())
                .map(|g| g.name.as_str())
                .collect();
            if missing.is_empty() {
                ("200 OK", "ready\n".to_string())
            } else {
                (
                    "503 Service Unavailable",
                    format!("no master for: {}\n", missing.join(", ")),
                )
            }
        }
        "/metrics" => ("200 OK", crate::metrics::render(&proxy)),
        _ => ("404 Not Found", "not found\n".to_string()),
    };
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await?;
    stream.write_all(body.as_bytes()).await?;
    stream.shutdown().await
}

/// `redmux --health-check ADDR`: exit 0 when `http://ADDR/healthz` answers 200.
pub fn health_check(addr: &str) -> std::process::ExitCode {
    use std::io::{Read, Write};
    use std::net::ToSocketAddrs;
    let timeout = std::time::Duration::from_secs(2);
    let ok = (|| -> Option<bool> {
        let sock = addr.to_socket_addrs().ok()?.next()?;
        let mut s = std::net::TcpStream::connect_timeout(&sock, timeout).ok()?;
        s.set_read_timeout(Some(timeout)).ok()?;
        s.write_all(
            format!("GET /healthz HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n")
                .as_bytes(),
        )
        .ok()?;
        let mut resp = Vec::new();
        let _ = s.read_to_end(&mut resp);
        Some(resp.starts_with(b"HTTP/1.1 200"))
    })()
    .unwrap_or(false);
    if ok {
        std::process::ExitCode::SUCCESS
    } else {
        std::process::ExitCode::FAILURE
    }
}
