//! The client compatibility matrix (issue 3): redis-py, ioredis and node-redis with their
//! default settings, and the Rust `redis` crate, each doing its usual connect handshake
//! and a workload of pipelines, transactions, pub/sub and blocking pops through redmux
//! running the user's predixy.conf. The scripts are in tests/clients/ (see its README);
//! tests/clients/run.sh installs the pinned clients into git-ignored dirs and runs them.
//! Fails loudly when python3, node or npm is missing.

mod core_support;
mod support;

use core_support::*;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};
use support::*;

#[test]
fn client_matrix_through_redmux() {
    for bin in ["python3", "node", "npm"] {
        require_binary(bin, "apt-get install -y python3 python3-venv nodejs npm");
    }
    let t = MasterReplica::start(GROUP);
    let p = start_predixy_ready(&t);

    // The Rust redis crate first: it needs nothing installed.
    rust_redis_crate(&p);

    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/clients/run.sh");
    let t0 = Instant::now();
    let out = Command::new("bash")
        .arg(&script)
        .args(["127.0.0.1", &p.port().to_string(), WRITE_PW])
        .env("MATRIX_SETINFO", "1")
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", script.display()));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    eprintln!("run.sh took {:?}\n{stdout}", t0.elapsed());
    for client in ["redis-py", "ioredis", "node-redis"] {
        assert!(
            stdout.lines().any(|l| l.starts_with(&format!("OK {client} "))),
            "{client} did not print OK (run.sh exit {:?})\n--- stdout ---\n{stdout}\n--- stderr ---\n{stderr}\n--- redmux log ---\n{}",
            out.status.code(),
            p.logs()
        );
    }
    assert!(out.status.success(), "run.sh failed: {stderr}");
    // Every client ran against the master through the proxy.
    for key in ["py:n", "io:n", "nr:n"] {
        let mut m = t.master.conn();
        m.query(&["SELECT", "1"]).unwrap();
        assert_eq!(m.query(&["GET", key]).unwrap(), Reply::bulk("3"), "{key}");
    }
}

/// The `redis` crate with its defaults (RESP2) plus password and database 1 in the URL.
fn rust_redis_crate(p: &Redmux) {
    use redis::Commands;
    let url = format!("redis://:{WRITE_PW}@127.0.0.1:{}/1", p.port());
    let client = redis::Client::open(url.as_str()).unwrap();
    let mut con = client.get_connection().expect("redis crate connect");
    let mut other = client.get_connection().expect("redis crate connect");
    let info: String = redis::cmd("CLIENT").arg("INFO").query(&mut con).unwrap();
    assert!(info.contains("db=1 "), "{info}");
    let _: () = con.del(&["rs:n", "rs:l"]).unwrap();

    // Pipeline.
    let mut pipe = redis::pipe();
    for i in 0..200 {
        pipe.set(format!("rs:k{i}"), i)
            .ignore()
            .get(format!("rs:k{i}"));
    }
    let got: Vec<i64> = pipe.query(&mut con).unwrap();
    assert_eq!(got, (0..200).collect::<Vec<i64>>());

    // MULTI/EXEC.
    let (a, b, c): (i64, i64, String) = redis::pipe()
        .atomic()
        .incr("rs:n", 1)
        .incr("rs:n", 1)
        .get("rs:n")
        .query(&mut con)
        .unwrap();
    assert_eq!((a, b, c.as_str()), (1, 2, "2"));
    let (n,): (i64,) = redis::transaction(&mut con, &["rs:n"], |con, pipe| {
        pipe.incr("rs:n", 1).query(con)
    })
    .unwrap();
    assert_eq!(n, 3);

    // Pub/sub.
    let mut sub_con = client.get_connection().unwrap();
    let mut sub = sub_con.as_pubsub();
    sub.subscribe("rs:chan").unwrap();
    sub.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let receivers: i64 = other.publish("rs:chan", "hello").unwrap();
    assert_eq!(receivers, 1);
    let msg = sub.get_message().expect("pub/sub message");
    assert_eq!(msg.get_channel_name(), "rs:chan");
    assert_eq!(msg.get_payload::<String>().unwrap(), "hello");
    drop(sub);

    // Blocking pop woken by a push from another client.
    let pusher = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(300));
        let _: i64 = other.lpush("rs:l", "wake").unwrap();
    });
    let t0 = Instant::now();
    let popped: Option<(String, String)> = con.blpop("rs:l", 5.0).unwrap();
    pusher.join().unwrap();
    assert_eq!(popped, Some(("rs:l".into(), "wake".into())));
    assert!(t0.elapsed() < Duration::from_secs(4), "BLPOP not woken");
    let n: i64 = con.get("rs:n").unwrap();
    assert_eq!(n, 3);
    eprintln!("OK redis-rs {} resp2", redis_crate_version());
}

/// The `redis` crate version Cargo.lock pins (for the matrix table).
fn redis_crate_version() -> String {
    let lock = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.lock"))
        .unwrap_or_default();
    lock.split("[[package]]")
        .find(|p| p.contains("\nname = \"redis\"\n"))
        .and_then(|p| p.lines().find_map(|l| l.strip_prefix("version = ")))
        .map(|v| v.trim_matches('"').to_string())
        .unwrap_or_else(|| "?".into())
}
