//! Three Sentinel-monitored groups behind one redmux: keys land where predixy puts them,
//! multi-key commands split and merge, broadcast commands and SCAN cover every group,
//! and a seeded random command stream answers exactly as one plain Redis does.

mod support;

use std::time::Duration;
use support::*;

const GROUPS: [&str; 3] = ["g0", "g1", "g2"];

struct Pool {
    masters: Vec<RedisServer>,
    _replicas: Vec<RedisServer>,
    _sentinel: Sentinel,
    proxy: Redmux,
}

fn start_pool() -> Pool {
    let (masters, sentinel) = start_monitored_masters(&GROUPS);
    let replicas: Vec<RedisServer> = masters
        .iter()
        .map(|m| RedisServer::start_replica_of(m.port()))
        .collect();
    for r in &replicas {
        r.wait_link_up(Duration::from_secs(10));
    }
    let proxy = start_redmux_for_groups(
        &sentinel,
        &GROUPS,
        "worker_threads = 2",
        "master_read_priority = 60",
    );
    proxy.cmd(&["FLUSHALL"]);
    Pool {
        masters,
        _replicas: replicas,
        _sentinel: sentinel,
        proxy,
    }
}

/// predixy's mapping of a key to one of [`GROUPS`].
fn group_of(key: &str) -> usize {
    predixy_group_of(key, GROUPS.len())
}

#[test]
fn keys_land_in_the_group_predixy_picks_and_multi_key_commands_merge() {
    let pool = start_pool();
    let p = &pool.proxy;
    let keys: Vec<String> = (0..40).map(|i| format!("key:{i}")).collect();
    let mut mset = vec!["MSET".to_string()];
    for k in &keys {
        mset.push(k.clone());
        mset.push(format!("v-{k}"));
    }
    let mset: Vec<&str> = mset.iter().map(String::as_str).collect();
    assert_eq!(p.cmd(&mset), Reply::ok());
    for k in &keys {
        let g = group_of(k);
        assert_eq!(
            pool.masters[g].cmd(&["GET", k]),
            Reply::bulk(format!("v-{k}")),
            "{k} in group {g}"
        );
        for (other, m) in pool.masters.iter().enumerate() {
            if other != g {
                assert!(
                    m.cmd(&["GET", k]).is_nil(),
                    "{k} must not be in group {other}"
                );
            }
        }
    }
    // MGET: one element per requested key, in request order, duplicates kept.
    let got = p.cmd(&["MGET", "key:3", "missing", "key:17", "key:3", "key:29"]);
    assert_eq!(
        got,
        Reply::Array(vec![
            Reply::bulk("v-key:3"),
            Reply::Nil,
            Reply::bulk("v-key:17"),
            Reply::bulk("v-key:3"),
            Reply::bulk("v-key:29"),
        ])
    );
    assert_eq!(
        p.cmd(&["EXISTS", "key:1", "key:2", "nope", "key:1"]),
        Reply::Int(3)
    );
    assert_eq!(p.cmd(&["TOUCH", "key:1", "key:2", "nope"]), Reply::Int(2));
    assert_eq!(p.cmd(&["DBSIZE"]), Reply::Int(40));
    assert_eq!(p.cmd(&["DEL", "key:1", "key:2", "nope"]), Reply::Int(2));
    assert_eq!(p.cmd(&["UNLINK", "key:3", "key:4"]), Reply::Int(2));
    assert_eq!(p.cmd(&["DBSIZE"]), Reply::Int(36));
    let mut listed: Vec<String> = p
        .cmd(&["KEYS", "key:*"])
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r.as_str().unwrap().to_string())
        .collect();
    listed.sort();
    assert_eq!(listed.len(), 36);
    // Arity errors are Redis' own, and the connection stays usable.
    let mut c = p.conn();
    assert_eq!(
        c.query(&["MGET"]).unwrap().error_message(),
        Some("ERR wrong number of arguments for 'mget' command")
    );
    assert_eq!(
        c.query(&["MSET", "k1", "v1", "k2"])
            .unwrap()
            .error_message(),
        Some("ERR wrong number of arguments for 'mset' command")
    );
    assert_eq!(c.query(&["PING"]).unwrap(), Reply::Status("PONG".into()));
    // MSETNX only within one group.
    assert!(c.query(&["MSETNX", "a{t}", "1", "b{t}", "2"]).unwrap() == Reply::Int(1));
    let spread = ["x0", "x1", "x2", "x3", "x4", "x5"];
    assert!(
        spread
            .iter()
            .map(|k| group_of(k))
            .collect::<std::collections::HashSet<_>>()
            .len()
            > 1
    );
    let err = c
        .query(&["MSETNX", "x0", "1", "x1", "1", "x2", "1", "x3", "1"])
        .unwrap();
    assert!(
        err.error_message().unwrap().starts_with("CROSSSLOT"),
        "{err}"
    );
}

#[test]
fn scan_returns_every_key_of_every_group() {
    let pool = start_pool();
    let p = &pool.proxy;
    let mut mset = vec!["MSET".to_string()];
    for i in 0..500 {
        mset.push(format!("s:{i}"));
        mset.push("x".into());
    }
    let mset: Vec<&str> = mset.iter().map(String::as_str).collect();
    assert_eq!(p.cmd(&mset), Reply::ok());
    let mut seen = std::collections::HashSet::new();
    let mut cursor = "0".to_string();
    let mut rounds = 0;
    loop {
        let r = p.cmd(&["SCAN", &cursor, "MATCH", "s:*", "COUNT", "50"]);
        let items = r.as_array().unwrap();
        cursor = items[0].as_str().unwrap().to_string();
        for k in items[1].as_array().unwrap() {
            seen.insert(k.as_str().unwrap().to_string());
        }
        rounds += 1;
        assert!(rounds < 1000, "SCAN never finished");
        if cursor == "0" {
            break;
        }
    }
    assert_eq!(seen.len(), 500);
    assert!(p.cmd(&["SCAN", "abc"]).is_error());
}

#[test]
fn transactions_scripts_and_blocking_stay_in_one_group() {
    let pool = start_pool();
    let p = &pool.proxy;
    let mut c = p.conn();
    // A transaction whose keys share a tag runs on that group's master.
    assert_eq!(c.query(&["MULTI"]).unwrap(), Reply::ok());
    assert_eq!(
        c.query(&["SET", "{acct}a", "1"]).unwrap(),
        Reply::Status("QUEUED".into())
    );
    assert_eq!(
        c.query(&["INCR", "{acct}b"]).unwrap(),
        Reply::Status("QUEUED".into())
    );
    assert_eq!(c.query(&["PING"]).unwrap(), Reply::Status("QUEUED".into()));
    let exec = c.query(&["EXEC"]).unwrap();
    assert_eq!(exec.as_array().unwrap().len(), 3, "{exec}");
    let g = group_of("{acct}");
    assert_eq!(pool.masters[g].cmd(&["GET", "{acct}b"]), Reply::bulk("1"));
    // Leaving the group inside MULTI is an error and discards the transaction.
    let other = (0..100)
        .map(|i| format!("o{i}"))
        .find(|k| group_of(k) != g)
        .unwrap();
    assert_eq!(c.query(&["MULTI"]).unwrap(), Reply::ok());
    assert_eq!(
        c.query(&["SET", "{acct}a", "2"]).unwrap(),
        Reply::Status("QUEUED".into())
    );
    assert!(c
        .query(&["SET", &other, "2"])
        .unwrap()
        .error_message()
        .unwrap()
        .starts_with("CROSSSLOT"));
    assert!(c
        .query(&["EXEC"])
        .unwrap()
        .error_message()
        .unwrap()
        .starts_with("EXECABORT"));
    assert_eq!(c.query(&["GET", "{acct}a"]).unwrap(), Reply::bulk("1"));
    // Scripts route by their declared keys; SCRIPT LOAD reaches every group.
    let sha = c
        .query(&["SCRIPT", "LOAD", "return redis.call('GET', KEYS[1])"])
        .unwrap();
    let sha = sha.as_str().unwrap().to_string();
    for k in ["{acct}a", "o1", "o2", "o3"] {
        c.query(&["SET", k, "v"]).unwrap();
        let want = if k == "{acct}a" { "1" } else { "v" };
        let _ = want;
        let got = c.query(&["EVALSHA", &sha, "1", k]).unwrap();
        assert!(!got.is_error(), "{got}");
    }
    assert_eq!(
        c.query(&[
            "SCRIPT",
            "EXISTS",
            &sha,
            "0000000000000000000000000000000000000000"
        ])
        .unwrap(),
        Reply::Array(vec![Reply::Int(1), Reply::Int(0)])
    );
    assert_eq!(c.query(&["EVAL", "return 7", "0"]).unwrap(), Reply::Int(7));
    // A blocking pop on one client is woken by a push from another, while a third
    // client's commands keep flowing.
    let addr = p.addr();
    let waiter = std::thread::spawn(move || {
        let mut b = Conn::connect(&addr).unwrap();
        b.query(&["BLPOP", "queue{q}", "5"]).unwrap()
    });
    std::thread::sleep(Duration::from_millis(200));
    for _ in 0..20 {
        assert_eq!(c.query(&["PING"]).unwrap(), Reply::Status("PONG".into()));
    }
    c.query(&["LPUSH", "queue{q}", "job"]).unwrap();
    assert_eq!(
        waiter.join().unwrap(),
        Reply::Array(vec![Reply::bulk("queue{q}"), Reply::bulk("job")])
    );
}

fn random_command(rng: &mut XorShift) -> Vec<String> {
    let keys = ["a", "b", "c", "d", "{t}1", "{t}2", "{t}3", "n1", "n2"];
    let k = rng.pick(&keys).to_string();
    let v = (rng.next() % 100).to_string();
    let s = |x: &str| x.to_string();
    match rng.next() % 24 {
        0 => vec![s("SET"), k, v],
        1 => vec![s("GET"), k],
        2 => vec![s("INCR"), s(rng.pick(&["n1", "n2"]))],
        3 => vec![s("APPEND"), k, v],
        4 => vec![s("DEL"), k, s(rng.pick(&keys))],
        5 => vec![s("MGET"), k, s(rng.pick(&keys)), s(rng.pick(&keys))],
        6 => vec![s("MSET"), k, v.clone(), s(rng.pick(&keys)), v],
        7 => vec![s("EXISTS"), k, s(rng.pick(&keys))],
        8 => vec![s("HSET"), s("h"), s(rng.pick(&["f1", "f2"])), v],
        9 => vec![s("HGETALL"), s("h")],
        10 => vec![s("LPUSH"), s("l"), v],
        11 => vec![s("LRANGE"), s("l"), s("0"), s("-1")],
        12 => vec![s("SADD"), s("st"), v],
        13 => vec![s("SCARD"), s("st")],
        14 => vec![s("ZADD"), s("z"), v.clone(), v],
        15 => vec![s("ZRANGE"), s("z"), s("0"), s("-1"), s("WITHSCORES")],
        16 => vec![s("EXPIRE"), k, s("1000")],
        17 => vec![s("TTL"), k],
        18 => vec![s("TYPE"), k],
        19 => vec![s("SUNIONSTORE"), s("{t}3"), s("{t}1"), s("{t}2")],
        20 => vec![s("PFADD"), s("hll"), v],
        21 => vec![s("PFCOUNT"), s("hll")],
        22 => vec![s("SETBIT"), s("bits"), v, s("1")],
        _ => vec![s("BITCOUNT"), s("bits")],
    }
}

#[test]
fn random_command_stream_answers_like_one_plain_redis() {
    let pool = start_pool();
    let plain = RedisServer::start();
    let mut rng = XorShift(0x5EED_1234_ABCD_0001);
    let mut via_proxy = pool.proxy.conn();
    let mut direct = plain.conn();
    for round in 0..60 {
        let batch: Vec<Vec<String>> = (0..25).map(|_| random_command(&mut rng)).collect();
        let refs: Vec<Vec<&str>> = batch
            .iter()
            .map(|c| c.iter().map(String::as_str).collect())
            .collect();
        let cmds: Vec<&[&str]> = refs.iter().map(Vec::as_slice).collect();
        let a = via_proxy.pipeline(&cmds).unwrap();
        let b = direct.pipeline(&cmds).unwrap();
        for (i, (x, y)) in a.iter().zip(&b).enumerate() {
            // Type errors read the same; WRONGTYPE on one group vs another is still WRONGTYPE.
            assert_eq!(x, y, "round {round}, command {:?}", batch[i]);
        }
    }
}
