//! Issue 2, the protocol surface: HELLO 2/3, CLIENT subcommands, SELECT, PING/ECHO/QUIT,
//! inline commands, bulk strings split across TCP writes, a 64 MB value, a 10,000-command
//! pipeline, malformed requests, and real clients (redis-cli, the `redis` crate).
//! redmux runs the user's predixy.conf in front of a real Sentinel-managed group.

mod core_support;
mod support;

use core_support::*;
use std::io::{ErrorKind, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use support::*;

#[track_caller]
fn field(r: &Reply, name: &str) -> String {
    r.as_pairs()
        .into_iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v)
        .unwrap_or_else(|| panic!("no {name:?} in {r:?}"))
}

#[test]
fn hello_2_and_3_with_auth_and_setname_and_client_commands() {
    let t = MasterReplica::start(GROUP);
    let p = start_predixy_ready(&t);
    let mut c = p.conn();
    let hello = c
        .query(&[
            "HELLO", "3", "AUTH", "default", WRITE_PW, "SETNAME", "app-1",
        ])
        .unwrap();
    assert!(
        matches!(hello, Reply::Map(_)),
        "HELLO 3 is a map: {hello:?}"
    );
    assert_eq!(field(&hello, "proto"), "3");
    assert_eq!(field(&hello, "server"), "redis");
    assert!(field(&hello, "version").starts_with('7'));
    let id = field(&hello, "id");
    assert_eq!(
        c.query(&["CLIENT", "ID"]).unwrap(),
        Reply::Int(id.parse().unwrap())
    );
    assert_eq!(
        c.query(&["CLIENT", "GETNAME"]).unwrap(),
        Reply::bulk("app-1")
    );
    assert_eq!(
        c.query(&["CLIENT", "SETNAME", "app-2"]).unwrap(),
        Reply::ok()
    );
    assert_eq!(
        c.query(&["CLIENT", "GETNAME"]).unwrap(),
        Reply::bulk("app-2")
    );
    assert_err(&c.query(&["CLIENT", "SETNAME", "bad name"]).unwrap(), "ERR");
    assert_eq!(
        c.query(&["CLIENT", "SETINFO", "LIB-NAME", "redmux-test"])
            .unwrap(),
        Reply::ok()
    );
    assert_eq!(
        c.query(&["CLIENT", "SETINFO", "LIB-VER", "1.2.3"]).unwrap(),
        Reply::ok()
    );
    assert_err(
        &c.query(&["CLIENT", "SETINFO", "nope", "x"]).unwrap(),
        "ERR",
    );
    let info = c.query(&["CLIENT", "INFO"]).unwrap().to_string();
    for part in [
        format!("id={id} "),
        "name=app-2 ".into(),
        "resp=3".into(),
        "lib-name=redmux-test".into(),
        "lib-ver=1.2.3".into(),
        "db=0 ".into(),
    ] {
        assert!(info.contains(&part), "CLIENT INFO lacks {part:?}: {info}");
    }

    // RESP3 replies of forwarded commands are real RESP3 (maps, nulls, doubles).
    c.query(&["DEL", "h"]).unwrap();
    c.query(&["HSET", "h", "f", "v"]).unwrap();
    assert_eq!(
        c.query(&["HGETALL", "h"]).unwrap(),
        Reply::Map(vec![(Reply::bulk("f"), Reply::bulk("v"))])
    );
    assert_eq!(c.query(&["GET", "missing"]).unwrap(), Reply::Nil);
    c.query(&["ZADD", "z", "1.5", "m"]).unwrap();
    assert_eq!(
        c.query(&["ZSCORE", "z", "m"]).unwrap(),
        Reply::Double("1.5".into())
    );

    // Back to RESP2: the same commands answer in RESP2.
    let hello2 = c.query(&["HELLO", "2"]).unwrap();
    assert!(
        matches!(hello2, Reply::Array(_)),
        "HELLO 2 is an array: {hello2:?}"
    );
    assert_eq!(field(&hello2, "proto"), "2");
    assert_eq!(
        c.query(&["HGETALL", "h"]).unwrap(),
        Reply::Array(vec![Reply::bulk("f"), Reply::bulk("v")])
    );
    assert_eq!(c.query(&["ZSCORE", "z", "m"]).unwrap(), Reply::bulk("1.5"));
    assert_err(&c.query(&["HELLO", "4"]).unwrap(), "NOPROTO");
    // The name survived HELLO without SETNAME.
    assert_eq!(
        c.query(&["CLIENT", "GETNAME"]).unwrap(),
        Reply::bulk("app-2")
    );
    assert_ne!(
        p.conn_auth(WRITE_PW).query(&["CLIENT", "ID"]).unwrap(),
        Reply::Int(id.parse().unwrap()),
        "client ids are unique"
    );
}

#[test]
fn select_separates_databases_and_checks_the_range() {
    let t = MasterReplica::start(GROUP);
    let p = start_predixy_ready(&t);
    let mut c = p.conn_auth(WRITE_PW);
    assert_eq!(c.query(&["SELECT", "3"]).unwrap(), Reply::ok());
    assert_eq!(c.query(&["SET", "in3", "three"]).unwrap(), Reply::ok());
    assert_eq!(c.query(&["GET", "in3"]).unwrap(), Reply::bulk("three"));
    assert_eq!(c.query(&["SELECT", "0"]).unwrap(), Reply::ok());
    assert_eq!(c.query(&["GET", "in3"]).unwrap(), Reply::Nil);
    assert_eq!(c.query(&["EXISTS", "in3"]).unwrap(), Reply::Int(0));
    // Another client, and the master itself, see the key in db 3 only.
    let mut other = p.conn_auth(WRITE_PW);
    assert_eq!(other.query(&["GET", "in3"]).unwrap(), Reply::Nil);
    other.query(&["SELECT", "3"]).unwrap();
    assert_eq!(other.query(&["GET", "in3"]).unwrap(), Reply::bulk("three"));
    let mut m = t.master.conn();
    assert_eq!(m.query(&["GET", "in3"]).unwrap(), Reply::Nil);
    m.query(&["SELECT", "3"]).unwrap();
    assert_eq!(m.query(&["GET", "in3"]).unwrap(), Reply::bulk("three"));
    // databases = 16: 15 is the last one.
    assert_eq!(c.query(&["SELECT", "15"]).unwrap(), Reply::ok());
    assert_err(
        &c.query(&["SELECT", "16"]).unwrap(),
        "ERR DB index is out of range",
    );
    assert_err(
        &c.query(&["SELECT", "-1"]).unwrap(),
        "ERR DB index is out of range",
    );
    assert_err(&c.query(&["SELECT", "abc"]).unwrap(), "ERR");
    // A refused SELECT leaves the database as it was.
    assert_eq!(c.query(&["SET", "in15", "x"]).unwrap(), Reply::ok());
    m.query(&["SELECT", "15"]).unwrap();
    assert_eq!(m.query(&["GET", "in15"]).unwrap(), Reply::bulk("x"));
}

#[test]
fn ping_echo_quit_and_inline_commands() {
    let t = MasterReplica::start(GROUP);
    let p = start_predixy_ready(&t);
    let mut c = p.conn_auth(WRITE_PW);
    assert_eq!(c.query(&["PING"]).unwrap(), Reply::Status("PONG".into()));
    assert_eq!(
        c.query(&["ping", "hi there"]).unwrap(),
        Reply::bulk("hi there")
    );
    assert_eq!(c.query(&["ECHO", "a\r\nb"]).unwrap(), Reply::bulk("a\r\nb"));
    assert_err(
        &c.query(&["ECHO"]).unwrap(),
        "ERR wrong number of arguments",
    );

    // Inline commands, as typed in telnet.
    c.send_raw(b"PING\r\n").unwrap();
    assert_eq!(c.read_reply().unwrap(), Reply::Status("PONG".into()));
    c.send_raw(b"SET \"key with space\" 'single quoted'\r\n")
        .unwrap();
    assert_eq!(c.read_reply().unwrap(), Reply::ok());
    c.send_raw(b"GET \"key with space\"\n").unwrap();
    assert_eq!(c.read_reply().unwrap(), Reply::bulk("single quoted"));
    c.send_raw(b"SET esc \"tab\\there\\x41\"\r\n").unwrap();
    assert_eq!(c.read_reply().unwrap(), Reply::ok());
    assert_eq!(t.master.cmd(&["GET", "esc"]), Reply::bulk("tab\there\x41"));
    // Several inline commands and an empty line in one write.
    c.send_raw(b"INCR n\r\n\r\nINCR n\r\nGET n\r\n").unwrap();
    assert_eq!(c.read_reply().unwrap(), Reply::Int(1));
    assert_eq!(c.read_reply().unwrap(), Reply::Int(2));
    assert_eq!(c.read_reply().unwrap(), Reply::bulk("2"));
    // Unbalanced quotes are a protocol error, as in Redis.
    let mut bad = p.conn_auth(WRITE_PW);
    bad.send_raw(b"SET \"open k\r\n").unwrap();
    assert_err(&bad.read_reply().unwrap(), "ERR Protocol error");

    assert_eq!(c.query(&["QUIT"]).unwrap(), Reply::ok());
    let eof = c.read_reply().unwrap_err();
    assert_eq!(eof.kind(), ErrorKind::UnexpectedEof, "after QUIT: {eof}");
}

/// Writes `bytes` in pieces of `chunk` bytes, one write (one TCP segment) each.
fn write_in_chunks(c: &Conn, bytes: &[u8], chunk: usize, pause_every: usize) {
    let mut s = c.stream();
    for (i, piece) in bytes.chunks(chunk).enumerate() {
        s.write_all(piece).unwrap();
        if pause_every > 0 && i % pause_every == 0 {
            std::thread::sleep(Duration::from_millis(1));
        }
    }
}

#[test]
fn bulk_strings_split_across_many_tcp_writes() {
    let t = MasterReplica::start(GROUP);
    let p = start_predixy_ready(&t);
    let mut c = p.conn_auth(WRITE_PW);
    // A small command, byte by byte, with pauses so each byte is its own read.
    let frame = encode_command(&["SET", "split:small", "hello\r\nworld"]);
    write_in_chunks(&c, &frame, 1, 1);
    assert_eq!(c.read_reply().unwrap(), Reply::ok());
    assert_eq!(
        c.query(&["GET", "split:small"]).unwrap(),
        Reply::bulk("hello\r\nworld")
    );

    // 1 MB in 7-byte writes.
    let value: Vec<u8> = (0..1_000_000u32).map(|i| (i % 251) as u8).collect();
    let frame = encode_command(&[b"SET".as_ref(), b"split:big", &value]);
    let t0 = Instant::now();
    write_in_chunks(&c, &frame, 7, 0);
    assert_eq!(c.read_reply().unwrap(), Reply::ok());
    eprintln!("1 MB SET in 7-byte writes: {:?}", t0.elapsed());
    assert_eq!(
        c.query(&["GET", "split:big"]).unwrap(),
        Reply::Bulk(value.clone())
    );
    assert_eq!(
        t.master.conn().query(&["GET", "split:big"]).unwrap(),
        Reply::Bulk(value)
    );
}

#[test]
fn value_of_64_mb_round_trips() {
    let t = MasterReplica::start(GROUP);
    let p = start_predixy_ready(&t);
    let mut c = p.conn_auth(WRITE_PW);
    c.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let value: Vec<u8> = (0..64u32 << 20)
        .map(|i| (i.wrapping_mul(31) >> 3) as u8)
        .collect();
    let t0 = Instant::now();
    assert_eq!(
        c.query(&[b"SET".as_ref(), b"big64", &value]).unwrap(),
        Reply::ok()
    );
    let set = t0.elapsed();
    let got = c.query(&["GET", "big64"]).unwrap();
    eprintln!("64 MB: SET {set:?}, GET {:?}", t0.elapsed() - set);
    match got {
        Reply::Bulk(b) => assert!(b == value, "64 MB value differs (len {})", b.len()),
        other => panic!("GET big64: {:?}", other.error_message()),
    }
    assert_eq!(t.master.cmd(&["STRLEN", "big64"]), Reply::Int(64 << 20));
    // The connection is still in sync afterwards.
    assert_eq!(c.query(&["PING"]).unwrap(), Reply::Status("PONG".into()));
}

#[test]
fn pipeline_of_10000_commands_in_one_write() {
    let t = MasterReplica::start(GROUP);
    let p = start_predixy_ready(&t);
    let mut c = p.conn_auth(WRITE_PW);
    let n = 10_000usize;
    let mut cmds: Vec<Vec<String>> = Vec::with_capacity(n);
    for i in 0..n {
        let cmd = match i % 4 {
            0 => vec!["SET".into(), format!("pl:{i}"), format!("v{i}")],
            1 => vec!["GET".into(), format!("pl:{}", i - 1)],
            2 => vec!["INCR".into(), "pl:counter".into()],
            _ => vec!["ECHO".into(), format!("e{i}")],
        };
        cmds.push(cmd);
    }
    let refs: Vec<&[String]> = cmds.iter().map(|c| c.as_slice()).collect();
    let t0 = Instant::now();
    let replies = c.pipeline(&refs).unwrap();
    eprintln!("10,000-command pipeline: {:?}", t0.elapsed());
    assert_eq!(replies.len(), n);
    for (i, r) in replies.iter().enumerate() {
        let want = match i % 4 {
            0 => Reply::ok(),
            1 => Reply::bulk(format!("v{}", i - 1)),
            2 => Reply::Int((i / 4 + 1) as i64),
            _ => Reply::bulk(format!("e{i}")),
        };
        assert_eq!(*r, want, "reply {i} of the pipeline");
    }
    assert_eq!(
        t.master.cmd(&["GET", "pl:counter"]),
        Reply::bulk((n / 4).to_string())
    );
}

#[test]
fn malformed_request_closes_only_that_connection() {
    let t = MasterReplica::start(GROUP);
    let p = start_predixy_ready(&t);
    let mut good = p.conn_auth(WRITE_PW);
    good.query(&["SET", "g", "1"]).unwrap();
    let cases: [&[u8]; 5] = [
        b"*1\r\n$abc\r\n",
        b"*2\r\n$3\r\nGET\r\n:1\r\n",
        b"*x\r\n",
        b"*1\r\n$3\r\nGETxx\r\n",
        b"*1\r\n$-5\r\n",
    ];
    for bytes in cases {
        let mut bad = p.conn_auth(WRITE_PW);
        bad.send_raw(bytes).unwrap();
        let r = bad.read_reply().unwrap();
        match &r {
            Reply::Error(e) if e.starts_with("ERR Protocol error: ") => {}
            other => panic!(
                "{:?}: expected -ERR Protocol error, got {other:?}",
                String::from_utf8_lossy(bytes)
            ),
        }
        let eof = bad.read_reply().unwrap_err();
        assert_eq!(
            eof.kind(),
            ErrorKind::UnexpectedEof,
            "{:?}: connection not closed: {eof}",
            String::from_utf8_lossy(bytes)
        );
        // The other client goes on, on its existing connection and on a new one.
        assert_eq!(
            good.query(&["INCR", "g"]).unwrap().as_int().map(|_| ()),
            Some(())
        );
        assert_eq!(
            p.cmd_auth(WRITE_PW, &["PING"]),
            Reply::Status("PONG".into())
        );
    }
    // Requests before the malformed one in the same write are answered first.
    let mut bad = p.conn_auth(WRITE_PW);
    bad.send_raw(b"*1\r\n$4\r\nPING\r\n*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\nv\r\n*1\r\n$zz\r\n")
        .unwrap();
    assert_eq!(bad.read_reply().unwrap(), Reply::Status("PONG".into()));
    assert_eq!(bad.read_reply().unwrap(), Reply::ok());
    assert_err(&bad.read_reply().unwrap(), "ERR Protocol error: ");
    assert!(bad.read_reply().is_err());
    assert_eq!(good.query(&["GET", "k"]).unwrap(), Reply::bulk("v"));
}

/// Runs redis-cli (which must be installed) against redmux.
fn redis_cli(port: u16, args: &[&str], stdin: Option<&str>) -> String {
    redis_cli_pw(port, Some(WRITE_PW), args, stdin)
}

/// Runs redis-cli, with `-a pw` when given.
fn redis_cli_pw(port: u16, pw: Option<&str>, args: &[&str], stdin: Option<&str>) -> String {
    let bin = require_binary("redis-cli", "apt-get install -y redis-tools");
    let mut cmd = Command::new(bin);
    cmd.args(["-h", "127.0.0.1", "-p", &port.to_string()]);
    if let Some(pw) = pw {
        cmd.args(["-a", pw, "--no-auth-warning"]);
    }
    cmd.args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("spawn redis-cli");
    if let Some(text) = stdin {
        child
            .stdin
            .take()
            .unwrap()
            .write_all(text.as_bytes())
            .unwrap();
    }
    let out = child.wait_with_output().expect("redis-cli output");
    assert!(out.status.success(), "redis-cli {args:?}: {:?}", out);
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn redis_cli_works_through_redmux() {
    let t = MasterReplica::start(GROUP);
    let p = start_predixy_ready(&t);
    assert_eq!(redis_cli(p.port(), &["PING"], None).trim(), "PONG");
    assert_eq!(
        redis_cli(p.port(), &["SET", "cli", "from redis-cli"], None).trim(),
        "OK"
    );
    assert_eq!(
        redis_cli(p.port(), &["GET", "cli"], None).trim(),
        "from redis-cli"
    );
    assert_eq!(
        redis_cli(p.port(), &["-n", "5", "SET", "cli5", "x"], None).trim(),
        "OK"
    );
    let mut m = t.master.conn();
    m.query(&["SELECT", "5"]).unwrap();
    assert_eq!(m.query(&["GET", "cli5"]).unwrap(), Reply::bulk("x"));
    // Commands on stdin, one per line (redis-cli's non-interactive mode).
    // The same script gives the same output as against the master itself (but the id).
    let script = "RPUSH clil a b c\nLRANGE clil 0 -1\nHELLO 3\nHSET clih f v\nHGETALL clih\n\
                  ZADD cliz 2.5 m\nZSCORE cliz m\nGET nokey\nDEL clil clih cliz\n";
    let no_id = |s: String| -> String {
        s.lines()
            .filter(|l| !l.starts_with("id "))
            .collect::<Vec<_>>()
            .join("\n")
    };
    let via_proxy = no_id(redis_cli(p.port(), &["-n", "7"], Some(script)));
    let direct = no_id(redis_cli_pw(
        t.master.port(),
        None,
        &["-n", "8"],
        Some(script),
    ));
    assert_eq!(
        via_proxy, direct,
        "redis-cli script through redmux vs. the master"
    );
    assert!(via_proxy.contains("proto 3"), "{via_proxy}");
    // redis-cli's RESP3 mode (-3) for a whole session.
    redis_cli(p.port(), &["HSET", "clih", "f", "v"], None);
    let out = redis_cli(p.port(), &["-3", "HGETALL", "clih"], None);
    let want = redis_cli_pw(t.master.port(), None, &["-3", "HGETALL", "clih"], None);
    assert_eq!(out, want, "redis-cli -3 HGETALL");
}

#[test]
fn redis_crate_resp2_and_resp3() {
    let t = MasterReplica::start(GROUP);
    let p = start_predixy_ready(&t);
    for (proto, db) in [("resp2", 2), ("resp3", 4)] {
        let url = format!(
            "redis://:{WRITE_PW}@127.0.0.1:{}/{db}?protocol={proto}",
            p.port()
        );
        let client = redis::Client::open(url.as_str()).unwrap();
        let mut con = client
            .get_connection()
            .unwrap_or_else(|e| panic!("{proto}: {e}"));
        let _: () = redis::cmd("SET")
            .arg("crate")
            .arg(proto)
            .query(&mut con)
            .unwrap();
        let got: String = redis::cmd("GET").arg("crate").query(&mut con).unwrap();
        assert_eq!(got, proto);
        let _: () = redis::cmd("HSET")
            .arg("crate:h")
            .arg("a")
            .arg("1")
            .query(&mut con)
            .unwrap();
        let map: std::collections::HashMap<String, i64> = redis::cmd("HGETALL")
            .arg("crate:h")
            .query(&mut con)
            .unwrap();
        assert_eq!(map.get("a"), Some(&1), "{proto}");
        let (a, b): (i64, i64) = redis::pipe()
            .cmd("INCR")
            .arg("crate:n")
            .cmd("INCR")
            .arg("crate:n")
            .query(&mut con)
            .unwrap();
        assert_eq!((a, b), (1, 2), "{proto}");
        let mut m = t.master.conn();
        m.query(&["SELECT", &db.to_string()]).unwrap();
        assert_eq!(m.query(&["GET", "crate"]).unwrap(), Reply::bulk(proto));
    }
}

#[test]
fn state_changes_inside_one_pipeline_apply_in_order() {
    let t = MasterReplica::start(GROUP);
    let p = start_predixy_ready(&t);
    let mut c = p.conn_auth(WRITE_PW);
    c.query(&["HSET", "ph", "f", "v"]).unwrap();
    let replies = c
        .pipeline(&[
            &["SET", "ps", "db0"][..],
            &["SELECT", "2"],
            &["SET", "ps", "db2"],
            &["GET", "ps"],
            &["HELLO", "3"],
            &["HGETALL", "ph"],
            &["SELECT", "0"],
            &["GET", "ps"],
            &["HGETALL", "ph"],
            &["HELLO", "2"],
            &["HGETALL", "ph"],
            &["CLIENT", "SETNAME", "piped"],
            &["CLIENT", "GETNAME"],
        ])
        .unwrap();
    assert_eq!(replies[0], Reply::ok());
    assert_eq!(replies[1], Reply::ok());
    assert_eq!(replies[2], Reply::ok());
    assert_eq!(replies[3], Reply::bulk("db2"));
    assert!(matches!(replies[4], Reply::Map(_)), "{:?}", replies[4]);
    // db 2 has no hash: an empty RESP3 map.
    assert_eq!(replies[5], Reply::Map(vec![]));
    assert_eq!(replies[7], Reply::bulk("db0"));
    assert_eq!(
        replies[8],
        Reply::Map(vec![(Reply::bulk("f"), Reply::bulk("v"))])
    );
    assert_eq!(
        replies[10],
        Reply::Array(vec![Reply::bulk("f"), Reply::bulk("v")])
    );
    assert_eq!(replies[12], Reply::bulk("piped"));

    // A blocking command in the middle of a pipeline keeps the order around it.
    t.master.cmd(&["RPUSH", "pbl", "x"]);
    let replies = c
        .pipeline(&[
            &["INCR", "pc"][..],
            &["BLPOP", "pbl", "1"],
            &["INCR", "pc"],
            &["BLPOP", "pbl", "0.2"],
            &["INCR", "pc"],
        ])
        .unwrap();
    assert_eq!(
        replies,
        vec![
            Reply::Int(1),
            Reply::Array(vec![Reply::bulk("pbl"), Reply::bulk("x")]),
            Reply::Int(2),
            Reply::Nil,
            Reply::Int(3)
        ]
    );

    // QUIT in a pipeline: what comes before is answered, nothing after it.
    let mut q = p.conn_auth(WRITE_PW);
    q.send_raw(b"*1\r\n$4\r\nPING\r\n*1\r\n$4\r\nQUIT\r\n*2\r\n$4\r\nINCR\r\n$2\r\npc\r\n")
        .unwrap();
    assert_eq!(q.read_reply().unwrap(), Reply::Status("PONG".into()));
    assert_eq!(q.read_reply().unwrap(), Reply::ok());
    assert!(q.read_reply().is_err(), "a reply after QUIT");
    assert_eq!(t.master.cmd(&["GET", "pc"]), Reply::bulk("3"));
}

#[test]
fn hello_with_a_wrong_password_keeps_the_session() {
    let t = MasterReplica::start(GROUP);
    let p = start_predixy_ready(&t);
    let mut c = p.conn_auth(ADMIN_PW);
    assert_err(
        &c.query(&["HELLO", "3", "AUTH", "default", "wrong"])
            .unwrap(),
        "WRONGPASS",
    );
    // Still RESP2 and still admin.
    assert_eq!(
        c.query(&["CONFIG", "GET", "bind"])
            .unwrap()
            .as_array()
            .map(|a| a.len()),
        Some(2)
    );
    assert_eq!(
        c.query(&["HELLO", "3", "AUTH", "default", WRITE_PW, "SETNAME", "x"])
            .unwrap()
            .as_pairs()
            .iter()
            .find(|(k, _)| k == "proto")
            .map(|(_, v)| v.clone()),
        Some("3".into())
    );
    assert_err(&c.query(&["CONFIG", "GET", "port"]).unwrap(), "NOPERM");
}

/// A client that stops reading while large replies pile up: replies that the socket does
/// not take at once (written from the backend link's task) must continue, in order, from
/// the session's writer, interleaved with replies the proxy makes itself and with another
/// client's traffic on the same backend link.
#[test]
fn slow_reader_gets_every_large_reply_in_order() {
    let t = MasterReplica::start(GROUP);
    let p = start_predixy_ready(&t);
    let value = |k: usize| -> Vec<u8> {
        (0..200_000u32)
            .map(|i| b'a' + ((i as usize + k * 7) % 26) as u8)
            .collect()
    };
    let mut setter = p.conn_auth(WRITE_PW);
    for k in 0..10 {
        let key = format!("slow:{k}");
        assert_eq!(
            setter
                .query(&[b"SET".as_ref(), key.as_bytes(), &value(k)])
                .unwrap(),
            Reply::ok()
        );
    }
    // Reads may go to the replica: wait until it has the last value.
    must_wait(
        Duration::from_secs(10),
        "the replica to have the values",
        || t.replicas[0].cmd(&["STRLEN", "slow:9"]) == Reply::Int(200_000),
    );
    let mut slow = p.conn_auth(WRITE_PW);
    let mut wire = Vec::new();
    let n = 120;
    for i in 0..n {
        let args: Vec<Vec<u8>> = match i % 3 {
            0 => vec![b"GET".to_vec(), format!("slow:{}", i % 10).into_bytes()],
            1 => vec![b"ECHO".to_vec(), format!("e{i}").into_bytes()],
            _ => vec![b"INCR".to_vec(), b"slow:counter".to_vec()],
        };
        wire.extend(encode_command(&args));
    }
    slow.send_raw(&wire).unwrap();
    // Meanwhile another client keeps the same backend link busy.
    let mut busy = p.conn_auth(WRITE_PW);
    for i in 0..300 {
        let k = format!("busy:{i}");
        assert_eq!(busy.query(&["SET", &k, "x"]).unwrap(), Reply::ok());
    }
    std::thread::sleep(Duration::from_millis(300));
    for i in 0..n {
        let got = slow
            .read_reply()
            .unwrap_or_else(|e| panic!("reply {i} of the slow reader: {e}"));
        let want = match i % 3 {
            0 => Reply::Bulk(value(i % 10)),
            1 => Reply::bulk(format!("e{i}")),
            _ => Reply::Int((i / 3 + 1) as i64),
        };
        assert!(got == want, "reply {i} of the slow reader is wrong");
        if i % 20 == 0 {
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// A predixy.conf as predixy users keep it, with its log and buffer directives: `--check`
/// passes with a warning per ignored line, and the proxy starts, warns once and serves.
#[test]
fn predixy_log_and_buffer_directives_load_with_warnings() {
    let t = MasterReplica::start("mymaster");
    let port = free_port();
    let text = format!(
        "Log ./predixy.log\nLogRotate 1d\nBufSize 4096\n{}",
        Redmux::predixy_conf(&t.sentinel_addrs(), port)
    );
    let (status, out) = Redmux::check(&text, "conf");
    assert!(status.success(), "{status:?}\n{out}");
    assert!(out.contains(":1: warning: `Log` ignored"), "{out}");
    assert!(out.contains(":2: warning: `LogRotate` ignored"), "{out}");
    assert!(out.contains(":3: warning: `BufSize` ignored"), "{out}");
    // What the file makes the proxy do, defaults included, without any password.
    assert!(out.contains("configuration is valid"), "{out}");
    let sentinels = format!("Sentinels: {}", t.sentinel_addrs().join(", "));
    assert!(out.contains(&sentinels), "{out}");
    assert!(out.contains("read priority: master "), "{out}");
    assert!(out.contains("auth: "), "{out}");
    assert!(!out.contains(WRITE_PW), "a password in the summary: {out}");
    let p = Redmux::start_on(&text, "conf", port);
    wait_master(&p, Some(WRITE_PW));
    let logs = p.logs();
    assert_eq!(logs.matches("`BufSize` ignored").count(), 1, "{logs}");
    // A directive that would change behaviour is still refused.
    let (status, out) = Redmux::check(&format!("MaxMemory 1G\n{text}"), "conf");
    assert_eq!(status.code(), Some(78), "{out}");
    assert!(out.contains(":1: `MaxMemory`: not supported"), "{out}");
}
