//! Checks the generated command table against a live redis-server (started here, on a
//! free loopback port): no drift in the command set or arities, and `key_indices`
//! agrees with `COMMAND GETKEYS` on a set of representative requests.

use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use redis::Value;
use redmux::command::{self, flags};

/// A redis-server child process, killed (by its own handle) on drop.
struct Server {
    child: Child,
    port: u16,
    dir: PathBuf,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    listener.local_addr().unwrap().port()
}

fn start_server() -> Server {
    let binary = std::env::var("REDIS_SERVER").unwrap_or_else(|_| "redis-server".into());
    for _attempt in 0..5 {
        let port = free_port();
        let dir =
            std::env::temp_dir().join(format!("redmux-cmdtable-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("create temp dir");
        let child = match Command::new(&binary)
            .args([
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
            ])
            .args(["--appendonly", "no", "--dir"])
            .arg(&dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
        {
            Ok(child) => child,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => panic!(
                "redis-server is not installed (looked for `{binary}`; set REDIS_SERVER to \
                 its path): tests/command_table.rs needs a local Redis 7 server"
            ),
            Err(e) => panic!("cannot start `{binary}`: {e}"),
        };
        let mut server = Server { child, port, dir };
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if server.child.try_wait().expect("try_wait").is_some() {
                break; // exited: most likely the port was taken meanwhile; try another
            }
            if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return server;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        drop(server);
    }
    panic!("redis-server did not start on a free loopback port (5 attempts)");
}

fn connect(server: &Server) -> redis::Connection {
    let client = redis::Client::open(format!("redis://127.0.0.1:{}/", server.port)).unwrap();
    client
        .get_connection()
        .expect("connect to the test redis-server")
}

fn text(v: &Value) -> String {
    match v {
        Value::BulkString(b) => String::from_utf8_lossy(b).into_owned(),
        Value::SimpleString(s) => s.clone(),
        other => panic!("expected a string, got {other:?}"),
    }
}

fn int(v: &Value) -> i64 {
    match v {
        Value::Int(i) => *i,
        other => panic!("expected an integer, got {other:?}"),
    }
}

fn array(v: &Value) -> &[Value] {
    match v {
        Value::Array(a) => a,
        Value::Nil => &[],
        other => panic!("expected an array, got {other:?}"),
    }
}

/// (name, arity, flags, has subcommands) for every command and subcommand.
fn flatten(entries: &[Value], out: &mut Vec<(String, i64, Vec<String>, bool)>) {
    for entry in entries {
        let fields = array(entry);
        let subs = fields.get(9).map(array).unwrap_or(&[]);
        let flags = array(&fields[2]).iter().map(text).collect();
        out.push((
            text(&fields[0]).to_lowercase(),
            int(&fields[1]),
            flags,
            !subs.is_empty(),
        ));
        flatten(subs, out);
    }
}

#[test]
fn table_matches_live_redis() {
    let server = start_server();
    let mut con = connect(&server);

    let info: String = redis::cmd("INFO").arg("server").query(&mut con).unwrap();
    let version = info
        .lines()
        .find_map(|l| l.strip_prefix("redis_version:"))
        .unwrap_or("?")
        .trim()
        .to_string();
    assert!(
        version.starts_with("7."),
        "tests need Redis 7, found {version}"
    );
    if version != command::REDIS_VERSION {
        eprintln!(
            "note: table generated from Redis {}, testing against {version}",
            command::REDIS_VERSION
        );
    }

    // (a) no drift either way.
    let reply: Value = redis::cmd("COMMAND").query(&mut con).unwrap();
    let mut live = Vec::new();
    flatten(array(&reply), &mut live);
    assert!(
        live.len() > 300,
        "COMMAND listed only {} commands",
        live.len()
    );
    let mut problems = Vec::new();
    for (name, arity, redis_flags, container) in &live {
        let Some(spec) = command::lookup(name.as_bytes()) else {
            problems.push(format!("{name}: missing from the table"));
            continue;
        };
        if i64::from(spec.arity) != *arity {
            problems.push(format!(
                "{name}: arity {} in the table, {arity} in Redis",
                spec.arity
            ));
        }
        let has = |f: &str| redis_flags.iter().any(|x| x == f);
        if spec.has(flags::READONLY) != has("readonly") {
            problems.push(format!("{name}: READONLY flag differs"));
        }
        if spec.has(flags::MOVABLE_KEYS) != has("movablekeys") {
            problems.push(format!("{name}: MOVABLE_KEYS flag differs"));
        }
        if spec.has(flags::CONTAINER) != *container {
            problems.push(format!("{name}: CONTAINER flag differs"));
        }
    }
    let live_names: std::collections::HashSet<&str> =
        live.iter().map(|(name, ..)| name.as_str()).collect();
    for spec in command::all() {
        if !live_names.contains(spec.name) {
            problems.push(format!("{}: in the table, unknown to Redis", spec.name));
        }
    }
    assert!(problems.is_empty(), "table drift:\n{}", problems.join("\n"));
    assert_eq!(command::all().len(), live.len());
}

/// Representative requests: keys found by `key_indices` must equal `COMMAND GETKEYS`
/// (which needs at least one argument after the command name).
const REQUESTS: &[&[&str]] = &[
    &["GET", "k"],
    &["SET", "k", "v"],
    &["SET", "k", "v", "GET"],
    &["GETEX", "k", "PX", "10"],
    &["SETRANGE", "k", "0", "v"],
    &["MSET", "a", "1", "b", "2"],
    &["MSETNX", "a", "1", "b", "2", "c", "3"],
    &["MGET", "a", "b", "c"],
    &["DEL", "a", "b", "c"],
    &["UNLINK", "a", "b"],
    &["EXISTS", "a", "b"],
    &["TOUCH", "a", "b"],
    &["RENAME", "a", "b"],
    &["RENAMENX", "a", "b"],
    &["COPY", "a", "b"],
    &["EVAL", "return 1", "2", "k1", "k2", "a1"],
    &["EVAL", "return 1", "0"],
    &[
        "EVALSHA",
        "0123456789abcdef0123456789abcdef01234567",
        "1",
        "k",
        "a",
    ],
    &["EVAL_RO", "return 1", "1", "k"],
    &["FCALL", "f", "1", "k", "a"],
    &["FCALL_RO", "f", "2", "a", "b"],
    &["ZUNIONSTORE", "d", "2", "a", "b", "WEIGHTS", "1", "2"],
    &["ZINTERSTORE", "d", "3", "a", "b", "c"],
    &["ZDIFFSTORE", "d", "2", "a", "b"],
    &["ZINTER", "2", "a", "b", "WITHSCORES"],
    &["ZUNION", "1", "a"],
    &["ZINTERCARD", "2", "a", "b", "LIMIT", "1"],
    &["SINTERCARD", "2", "a", "b"],
    &["XREAD", "COUNT", "2", "STREAMS", "s1", "s2", "0", "0"],
    &["XREAD", "BLOCK", "0", "STREAMS", "s", "$"],
    &["XREADGROUP", "GROUP", "g", "c", "STREAMS", "s", "0"],
    &[
        "XREADGROUP",
        "GROUP",
        "g",
        "c",
        "COUNT",
        "1",
        "STREAMS",
        "s1",
        "s2",
        ">",
        ">",
    ],
    &["XADD", "s", "*", "f", "v"],
    &["XAUTOCLAIM", "s", "g", "c", "0", "0"],
    &["XINFO", "STREAM", "s"],
    &["XGROUP", "CREATE", "s", "g", "$"],
    &["LMOVE", "a", "b", "LEFT", "RIGHT"],
    &["BLMOVE", "a", "b", "LEFT", "RIGHT", "0"],
    &["RPOPLPUSH", "a", "b"],
    &["LMPOP", "2", "a", "b", "LEFT"],
    &["BLMPOP", "0", "2", "a", "b", "LEFT", "COUNT", "1"],
    &["ZMPOP", "1", "a", "MIN"],
    &["BZMPOP", "0", "2", "a", "b", "MAX"],
    &["BLPOP", "a", "b", "0"],
    &["BZPOPMIN", "a", "b", "0"],
    &["SORT", "k", "STORE", "d"],
    &[
        "SORT", "k", "BY", "w_*", "LIMIT", "0", "1", "GET", "o_*", "STORE", "d",
    ],
    &["SORT", "k", "GET", "store", "ALPHA"],
    &["SORT_RO", "k", "BY", "w_*"],
    &["GEORADIUS", "k", "1", "2", "3", "m", "STORE", "d"],
    &["GEORADIUS", "k", "1", "2", "3", "m", "WITHDIST"],
    &["GEORADIUSBYMEMBER", "k", "m", "3", "km", "STOREDIST", "d"],
    &[
        "GEOSEARCHSTORE",
        "d",
        "s",
        "FROMMEMBER",
        "m",
        "BYRADIUS",
        "1",
        "m",
    ],
    &["OBJECT", "ENCODING", "k"],
    &["MEMORY", "USAGE", "k"],
    &[
        "MIGRATE",
        "127.0.0.1",
        "1",
        "",
        "0",
        "5000",
        "COPY",
        "REPLACE",
        "AUTH",
        "pw",
        "KEYS",
        "a",
        "b",
    ],
    &[
        "MIGRATE",
        "127.0.0.1",
        "1",
        "",
        "0",
        "5000",
        "AUTH2",
        "u",
        "keys",
        "KEYS",
        "a",
    ],
    &["MIGRATE", "127.0.0.1", "1", "k", "0", "5000"],
    &["LCS", "a", "b"],
    &["BITOP", "AND", "d", "a", "b"],
    &["BITFIELD", "k", "GET", "u8", "0"],
    &["ZADD", "k", "1", "m"],
    &["HSET", "h", "f", "v"],
    &["SMOVE", "a", "b", "m"],
    &["SUNIONSTORE", "d", "a", "b"],
    &["PFMERGE", "d", "a", "b"],
    &["PFCOUNT", "a", "b"],
    &["WATCH", "a", "b"],
    &["SUBSCRIBE", "c"],
    &["SSUBSCRIBE", "c"],
    &["PUBLISH", "c", "m"],
    &["SPUBLISH", "c", "m"],
    &["PING", "hello"],
    &["ECHO", "hello"],
    &["PUBSUB", "NUMSUB", "c"],
    &["WAIT", "0", "0"],
    &["CLIENT", "SETNAME", "x"],
    &["CONFIG", "GET", "maxmemory"],
    &["SCRIPT", "FLUSH"],
    &["FUNCTION", "LIST"],
    &["KEYS", "*"],
    &["SELECT", "1"],
];

#[test]
fn key_indices_match_command_getkeys() {
    assert!(REQUESTS.len() >= 40);
    let server = start_server();
    let mut con = connect(&server);
    let mut problems = Vec::new();
    for request in REQUESTS {
        let args: Vec<&[u8]> = request.iter().map(|a| a.as_bytes()).collect();
        let spec = command::lookup_request(&args[..])
            .unwrap_or_else(|| panic!("{request:?}: not in the table"));
        assert!(
            spec.arity_ok(args.len()),
            "{request:?}: bad arity for {}",
            spec.name
        );
        let mut indices = Vec::new();
        command::key_indices(spec, &args[..], &mut indices);
        let ours: Vec<String> = indices.iter().map(|&i| request[i].to_string()).collect();

        let redis: Vec<String> = match redis::cmd("COMMAND")
            .arg("GETKEYS")
            .arg(*request)
            .query::<Vec<String>>(&mut con)
        {
            Ok(keys) => keys,
            Err(e) if e.to_string().contains("The command has no key arguments") => Vec::new(),
            Err(e) => panic!("{request:?}: COMMAND GETKEYS failed: {e}"),
        };
        if ours != redis {
            problems.push(format!(
                "{request:?} ({}): ours {ours:?}, Redis {redis:?}",
                spec.name
            ));
        }
    }
    assert!(
        problems.is_empty(),
        "key positions differ:\n{}",
        problems.join("\n")
    );
}

/// A bounded, deterministic sweep: every command with keys, with argument lists built
/// from a small pool of tricky words at a few lengths its arity allows. Wherever Redis
/// answers with keys (not an error), `key_indices` must give the same keys.
#[test]
fn key_indices_sweep_matches_command_getkeys() {
    const WORDS: &[&str] = &[
        "k1",
        "STORE",
        "2",
        "KEYS",
        "k2",
        "0",
        "STREAMS",
        "",
        "LIMIT",
        "1",
        "GET",
        "k3",
        "-1",
        "BY",
        "STOREDIST",
        "AUTH2",
        "k4",
    ];
    let server = start_server();
    let mut con = connect(&server);
    let started = Instant::now();
    let (mut compared, mut problems) = (0usize, Vec::new());
    for spec in command::all() {
        if spec.keys.is_empty() && !spec.has(flags::CUSTOM_KEYS) {
            continue;
        }
        let mut words: Vec<&str> = spec.name.split('|').collect();
        let base = words.len();
        let min = usize::from(spec.arity.unsigned_abs()).max(base);
        let lengths: Vec<usize> = if spec.arity > 0 {
            vec![min]
        } else {
            (min..min + 6).collect()
        };
        for len in lengths {
            for rotation in 0..WORDS.len() {
                words.truncate(base);
                words.extend((0..len - base).map(|i| WORDS[(rotation + i * 7) % WORDS.len()]));
                let args: Vec<&[u8]> = words.iter().map(|a| a.as_bytes()).collect();
                let Ok(redis) = redis::cmd("COMMAND")
                    .arg("GETKEYS")
                    .arg(&words)
                    .query::<Vec<String>>(&mut con)
                else {
                    continue;
                };
                let looked_up = command::lookup_request(&args[..]).expect("known command");
                assert_eq!(looked_up.name, spec.name);
                let mut indices = Vec::new();
                command::key_indices(spec, &args[..], &mut indices);
                let ours: Vec<String> = indices.iter().map(|&i| words[i].to_string()).collect();
                compared += 1;
                if ours != redis {
                    problems.push(format!("{words:?}: ours {ours:?}, Redis {redis:?}"));
                }
            }
        }
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "sweep took too long"
        );
    }
    eprintln!("sweep: compared {compared} requests with COMMAND GETKEYS");
    assert!(compared > 500, "only {compared} requests compared");
    assert!(
        problems.is_empty(),
        "{} differences:\n{}",
        problems.len(),
        problems.join("\n")
    );
}
