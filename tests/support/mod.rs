//! Integration-test harness: real `redis-server`, `redis-sentinel` and `redmux` processes on
//! free loopback ports, each in its own temp dir, killed (by PID) on drop.
//!
//! Every integration test includes it with `mod support;`.
//!
//! - [`query`] / [`Conn`]: a tiny blocking RESP client, so tests need no external tool.
//! - [`RedisServer`], [`Sentinel`], [`MasterReplica`], [`Redmux`]: the processes.
//! - [`wait_until`] / [`must_wait`]: polling helpers.
//!
//! Missing binaries fail LOUDLY (panic with the install command); nothing is skipped.
//! When a test panics, every process dropped during the unwind prints the tail of its log
//! to stderr (shown by the test runner) and keeps its temp dir for inspection. Set
//! `REDMUX_KEEP_TEST_DIRS=1` to keep the temp dirs of passing tests too.
#![allow(dead_code)]

pub mod pki;

use std::collections::HashSet;
use std::fmt;
use std::fs;
use std::io::{self, BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// How long a process may take to become ready before the harness panics.
pub const START_TIMEOUT: Duration = Duration::from_secs(10);
/// Default read/write timeout of [`Conn`].
pub const IO_TIMEOUT: Duration = Duration::from_secs(10);
/// Lines of log printed when a test fails.
const LOG_TAIL_LINES: usize = 200;

// ---------------------------------------------------------------------------------------------
// Waiting
// ---------------------------------------------------------------------------------------------

/// Polls `cond` every 20 ms until it returns true (→ `true`) or `timeout` passes (→ `false`).
/// `cond` is always called at least once.
pub fn wait_until(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// [`wait_until`], panicking with "timed out after ..: `what`" when the condition never holds.
pub fn must_wait(timeout: Duration, what: &str, cond: impl FnMut() -> bool) {
    if !wait_until(timeout, cond) {
        panic!("timed out after {timeout:?} waiting for: {what}");
    }
}

// ---------------------------------------------------------------------------------------------
// RESP client
// ---------------------------------------------------------------------------------------------

/// One RESP2/RESP3 reply.
#[derive(Clone, Debug, PartialEq)]
pub enum Reply {
    /// `+OK`
    Status(String),
    /// `-ERR ...` (the whole line, without the `-`)
    Error(String),
    /// `:1`
    Int(i64),
    /// `$3\r\nabc` (also RESP3 verbatim strings, without the `txt:` prefix)
    Bulk(Vec<u8>),
    /// `$-1`, `*-1`, RESP3 `_`
    Nil,
    /// `*N` (also RESP3 sets `~` and pushes `>`)
    Array(Vec<Reply>),
    /// RESP3 `%N` map
    Map(Vec<(Reply, Reply)>),
    /// RESP3 `,1.5` (kept as text)
    Double(String),
    /// RESP3 `#t`
    Bool(bool),
}

impl Reply {
    pub fn ok() -> Reply {
        Reply::Status("OK".into())
    }
    pub fn bulk(s: impl AsRef<[u8]>) -> Reply {
        Reply::Bulk(s.as_ref().to_vec())
    }
    pub fn is_error(&self) -> bool {
        matches!(self, Reply::Error(_))
    }
    pub fn is_nil(&self) -> bool {
        matches!(self, Reply::Nil)
    }
    /// `Status` or UTF-8 `Bulk` as text.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Reply::Status(s) => Some(s),
            Reply::Bulk(b) => std::str::from_utf8(b).ok(),
            _ => None,
        }
    }
    pub fn as_bytes(&self) -> Option<&[u8]> {
        match self {
            Reply::Status(s) => Some(s.as_bytes()),
            Reply::Bulk(b) => Some(b),
            _ => None,
        }
    }
    pub fn as_int(&self) -> Option<i64> {
        match self {
            Reply::Int(i) => Some(*i),
            _ => None,
        }
    }
    pub fn as_array(&self) -> Option<&[Reply]> {
        match self {
            Reply::Array(a) => Some(a),
            _ => None,
        }
    }
    pub fn error_message(&self) -> Option<&str> {
        match self {
            Reply::Error(e) => Some(e),
            _ => None,
        }
    }
    /// An array of alternating field/value bulks (RESP2 map, e.g. `SENTINEL replicas` entries)
    /// or a RESP3 map, as `(field, value)` text pairs.
    pub fn as_pairs(&self) -> Vec<(String, String)> {
        match self {
            Reply::Array(a) => a
                .chunks(2)
                .filter(|c| c.len() == 2)
                .map(|c| (c[0].to_string(), c[1].to_string()))
                .collect(),
            Reply::Map(m) => m
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            _ => Vec::new(),
        }
    }
}

/// Human text: bulks/statuses as their text, errors as `(error) ...`, arrays as `[a, b]`.
impl fmt::Display for Reply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reply::Status(s) => f.write_str(s),
            Reply::Error(e) => write!(f, "(error) {e}"),
            Reply::Int(i) => write!(f, "{i}"),
            Reply::Bulk(b) => f.write_str(&String::from_utf8_lossy(b)),
            Reply::Nil => f.write_str("(nil)"),
            Reply::Double(d) => f.write_str(d),
            Reply::Bool(b) => write!(f, "{b}"),
            Reply::Array(a) => {
                f.write_str("[")?;
                for (i, r) in a.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{r}")?;
                }
                f.write_str("]")
            }
            Reply::Map(m) => {
                f.write_str("{")?;
                for (i, (k, v)) in m.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{k}: {v}")?;
                }
                f.write_str("}")
            }
        }
    }
}

/// Encodes one command as a RESP array of bulk strings.
pub fn encode_command<A: AsRef<[u8]>>(args: &[A]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", args.len()).into_bytes();
    for a in args {
        let a = a.as_ref();
        out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
        out.extend_from_slice(a);
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// A blocking RESP connection (read/write timeouts [`IO_TIMEOUT`] by default).
pub struct Conn {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

impl Conn {
    pub fn connect(addr: &str) -> io::Result<Conn> {
        Conn::connect_timeout(addr, IO_TIMEOUT)
    }

    pub fn connect_timeout(addr: &str, timeout: Duration) -> io::Result<Conn> {
        let sa: SocketAddr = addr
            .to_socket_addrs()?
            .next()
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "no address"))?;
        let stream = TcpStream::connect_timeout(&sa, timeout)?;
        stream.set_nodelay(true)?;
        stream.set_read_timeout(Some(IO_TIMEOUT))?;
        stream.set_write_timeout(Some(IO_TIMEOUT))?;
        Ok(Conn {
            reader: BufReader::new(stream.try_clone()?),
            writer: stream,
        })
    }

    /// Connects and sends `AUTH password`; fails if the reply is not `+OK`.
    pub fn connect_auth(addr: &str, password: &str) -> io::Result<Conn> {
        let mut c = Conn::connect(addr)?;
        match c.query(&["AUTH", password])? {
            Reply::Status(s) if s == "OK" => Ok(c),
            other => Err(io::Error::other(format!("AUTH failed: {other}"))),
        }
    }

    pub fn set_read_timeout(&self, t: Option<Duration>) -> io::Result<()> {
        self.writer.set_read_timeout(t)
    }

    /// The underlying socket (e.g. to shut it down half-way).
    pub fn stream(&self) -> &TcpStream {
        &self.writer
    }

    /// Sends one command and reads its reply.
    pub fn query<A: AsRef<[u8]>>(&mut self, args: &[A]) -> io::Result<Reply> {
        self.send(args)?;
        self.read_reply()
    }

    /// Sends one command without reading.
    pub fn send<A: AsRef<[u8]>>(&mut self, args: &[A]) -> io::Result<()> {
        self.writer.write_all(&encode_command(args))
    }

    /// Writes raw bytes (inline commands, partial frames, garbage).
    pub fn send_raw(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.writer.write_all(bytes)
    }

    /// Sends all commands in one write, then reads one reply per command.
    pub fn pipeline<A: AsRef<[u8]>>(&mut self, cmds: &[&[A]]) -> io::Result<Vec<Reply>> {
        let mut buf = Vec::new();
        for c in cmds {
            buf.extend_from_slice(&encode_command(c));
        }
        self.writer.write_all(&buf)?;
        (0..cmds.len()).map(|_| self.read_reply()).collect()
    }

    /// Reads one reply.
    pub fn read_reply(&mut self) -> io::Result<Reply> {
        read_reply(&mut self.reader)
    }
}

fn bad(msg: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg)
}

fn read_line(r: &mut impl BufRead) -> io::Result<String> {
    let mut line = Vec::new();
    r.read_until(b'\n', &mut line)?;
    if line.is_empty() {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "connection closed by peer",
        ));
    }
    if !line.ends_with(b"\r\n") {
        return Err(bad(format!(
            "RESP line not terminated by CRLF: {:?}",
            String::from_utf8_lossy(&line)
        )));
    }
    line.truncate(line.len() - 2);
    String::from_utf8(line).map_err(|e| bad(format!("non-UTF-8 RESP header: {e}")))
}

fn parse_num(s: &str) -> io::Result<i64> {
    s.parse().map_err(|_| bad(format!("bad RESP number {s:?}")))
}

/// Reads one RESP2/RESP3 reply from `r`.
pub fn read_reply(r: &mut impl BufRead) -> io::Result<Reply> {
    let line = read_line(r)?;
    let (kind, rest) = line.split_at(line.len().min(1));
    Ok(match kind {
        "+" => Reply::Status(rest.to_string()),
        "-" | "!" => Reply::Error(rest.to_string()),
        ":" => Reply::Int(parse_num(rest)?),
        "(" => Reply::Status(rest.to_string()),
        "," => Reply::Double(rest.to_string()),
        "#" => Reply::Bool(rest == "t"),
        "_" => Reply::Nil,
        "$" | "=" => {
            let n = parse_num(rest)?;
            if n < 0 {
                return Ok(Reply::Nil);
            }
            let mut buf = vec![0u8; n as usize + 2];
            r.read_exact(&mut buf)?;
            if !buf.ends_with(b"\r\n") {
                return Err(bad("bulk string not terminated by CRLF".into()));
            }
            buf.truncate(n as usize);
            if kind == "=" && buf.len() >= 4 {
                buf.drain(..4);
            }
            Reply::Bulk(buf)
        }
        "*" | "~" | ">" => {
            let n = parse_num(rest)?;
            if n < 0 {
                return Ok(Reply::Nil);
            }
            let mut items = Vec::with_capacity(n as usize);
            for _ in 0..n {
                items.push(read_reply(r)?);
            }
            Reply::Array(items)
        }
        "%" => {
            let n = parse_num(rest)?;
            let mut items = Vec::with_capacity(n.max(0) as usize);
            for _ in 0..n {
                let k = read_reply(r)?;
                let v = read_reply(r)?;
                items.push((k, v));
            }
            Reply::Map(items)
        }
        _ => return Err(bad(format!("unknown RESP reply line {line:?}"))),
    })
}

/// One command on a fresh connection.
pub fn query<A: AsRef<[u8]>>(addr: &str, args: &[A]) -> io::Result<Reply> {
    Conn::connect(addr)?.query(args)
}

/// `AUTH password`, then one command, on a fresh connection.
pub fn query_auth<A: AsRef<[u8]>>(addr: &str, password: &str, args: &[A]) -> io::Result<Reply> {
    Conn::connect_auth(addr, password)?.query(args)
}

/// Parses `INFO` text into the value of `field` (e.g. `master_link_status`).
pub fn info_field(info: &str, field: &str) -> Option<String> {
    info.lines().find_map(|l| {
        let (k, v) = l.trim_end().split_once(':')?;
        (k == field).then(|| v.to_string())
    })
}

// ---------------------------------------------------------------------------------------------
// Ports, temp dirs, binaries
// ---------------------------------------------------------------------------------------------

static HANDED_OUT: Mutex<Option<HashSet<u16>>> = Mutex::new(None);

/// A loopback port that was free a moment ago and was not handed out before by this process.
/// (Bind 127.0.0.1:0, release.) Starters retry with another port when the bind still collides.
pub fn free_port() -> u16 {
    for _ in 0..100 {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("cannot bind 127.0.0.1:0 to find a free port")
            .port();
        let mut set = HANDED_OUT.lock().unwrap_or_else(|e| e.into_inner());
        if set.get_or_insert_with(HashSet::new).insert(port) {
            return port;
        }
    }
    panic!("could not find a free loopback port after 100 tries");
}

static DIR_COUNTER: AtomicU64 = AtomicU64::new(0);

/// A fresh directory under `std::env::temp_dir()`.
pub fn unique_temp_dir(label: &str) -> PathBuf {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let n = DIR_COUNTER.fetch_add(1, Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!(
        "redmux-test-{label}-{}-{n}-{nanos:08x}",
        std::process::id()
    ));
    fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("cannot create {}: {e}", dir.display()));
    dir
}

fn keep_dirs() -> bool {
    std::env::var_os("REDMUX_KEEP_TEST_DIRS").is_some_and(|v| !v.is_empty() && v != "0")
}

/// Finds `name` on PATH or panics with how to install it.
pub fn require_binary(name: &str, install_hint: &str) -> PathBuf {
    if let Some(path) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&path) {
            let p = dir.join(name);
            if p.is_file() {
                return p;
            }
        }
    }
    panic!("{name} not found on PATH: install it ({install_hint})");
}

const REDIS_HINT: &str =
    "apt-get install -y redis-server redis-sentinel redis-tools; Redis 7 is expected";

// Signals: std already links libc, so declare kill(2) directly instead of adding a crate.
extern "C" {
    fn kill(pid: i32, sig: i32) -> i32;
}
#[cfg(target_os = "linux")]
const SIGCONT: i32 = 18;
#[cfg(target_os = "linux")]
const SIGSTOP: i32 = 19;
#[cfg(target_os = "macos")]
const SIGCONT: i32 = 19;
#[cfg(target_os = "macos")]
const SIGSTOP: i32 = 17;

const SIGKILL: i32 = 9;

/// PIDs whose parent is `pid` (Linux /proc scan; empty elsewhere).
fn child_pids(pid: u32) -> Vec<u32> {
    let Ok(entries) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|p| {
            // /proc/P/stat: "P (comm) S PPID ..."; comm may contain spaces, so split after ')'.
            fs::read_to_string(format!("/proc/{p}/stat"))
                .ok()
                .and_then(|st| {
                    let rest = &st[st.rfind(')')? + 1..];
                    rest.split_whitespace().nth(1)?.parse::<u32>().ok()
                })
                == Some(pid)
        })
        .collect()
}

fn send_signal(pid: u32, sig: i32) {
    // SAFETY: kill(2) has no memory-safety preconditions; pid is our own child.
    let rc = unsafe { kill(pid as i32, sig) };
    if rc != 0 {
        panic!("kill({pid}, {sig}) failed: {}", io::Error::last_os_error());
    }
}

// ---------------------------------------------------------------------------------------------
// A child process with a temp dir and a log file
// ---------------------------------------------------------------------------------------------

/// One spawned process; killed by PID and reaped on drop.
struct Proc {
    name: String,
    child: Option<Child>,
    log: PathBuf,
}

impl Proc {
    fn spawn(name: &str, mut cmd: Command, log: &Path) -> Proc {
        let file = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .unwrap_or_else(|e| panic!("cannot open log {}: {e}", log.display()));
        let err = file.try_clone().expect("clone log file handle");
        cmd.stdin(Stdio::null()).stdout(file).stderr(err);
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name} ({cmd:?}): {e}"));
        Proc {
            name: name.to_string(),
            child: Some(child),
            log: log.to_path_buf(),
        }
    }

    fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }

    /// `Some(status)` when the process has exited.
    fn exited(&mut self) -> Option<ExitStatus> {
        self.child
            .as_mut()
            .and_then(|c| c.try_wait().ok().flatten())
    }

    fn is_running(&mut self) -> bool {
        self.child.is_some() && self.exited().is_none()
    }

    /// SIGKILL (and SIGCONT, in case it is stopped) and reap. Fork children of the process
    /// (redis-server's RDB/replication saves) are SIGKILLed first so none outlive it.
    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            if c.try_wait().ok().flatten().is_none() {
                for grandchild in child_pids(c.id()) {
                    // SAFETY: kill(2) has no memory-safety preconditions.
                    unsafe { kill(grandchild as i32, SIGKILL) };
                }
                let _ = c.kill();
                // SAFETY: see send_signal; the child has not been reaped yet.
                unsafe { kill(c.id() as i32, SIGCONT) };
            }
            let _ = c.wait();
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
    }
}

fn read_log(path: &Path) -> String {
    match fs::read(path) {
        Ok(b) => String::from_utf8_lossy(&b).into_owned(),
        Err(e) => format!("<cannot read {}: {e}>", path.display()),
    }
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// Shared drop behaviour: print the log when unwinding, then remove the dir unless kept.
fn finish_dir(what: &str, dir: &Path, log: &Path) {
    if std::thread::panicking() {
        eprintln!(
            "\n===== {what}: last {LOG_TAIL_LINES} lines of {} (dir kept) =====\n{}\n===== end of {what} log =====",
            log.display(),
            tail(&read_log(log), LOG_TAIL_LINES)
        );
    } else if !keep_dirs() {
        let _ = fs::remove_dir_all(dir);
    }
}

fn addr_in_use(log: &str) -> bool {
    log.contains("Address already in use") || log.contains("AddrInUse")
}

/// The `process_id` in `INFO server` of whatever answers on `addr`.
fn remote_pid(addr: &str) -> Option<u32> {
    let r = query(addr, &["INFO", "server"]).ok()?;
    info_field(r.as_str()?, "process_id")?.parse().ok()
}

// ---------------------------------------------------------------------------------------------
// redis-server
// ---------------------------------------------------------------------------------------------

/// A `redis-server` on 127.0.0.1 with no persistence.
pub struct RedisServer {
    port: u16,
    dir: PathBuf,
    log: PathBuf,
    extra_args: Vec<String>,
    proc: Proc,
}

impl RedisServer {
    /// A standalone master.
    pub fn start() -> RedisServer {
        RedisServer::start_with(&[])
    }

    /// A replica of `127.0.0.1:master_port` (does not wait for the link; see
    /// [`RedisServer::wait_link_up`]).
    pub fn start_replica_of(master_port: u16) -> RedisServer {
        let mp = master_port.to_string();
        RedisServer::start_with(&["--replicaof", "127.0.0.1", &mp])
    }

    /// With extra `redis-server` arguments (e.g. `["--replicaof", "127.0.0.1", "6380"]`,
    /// `["--requirepass", "pw"]`). Note: with `--requirepass` the readiness probe still
    /// works (PING/INFO are sent without AUTH and `-NOAUTH` counts as "up").
    pub fn start_with(args: &[&str]) -> RedisServer {
        let bin = require_binary("redis-server", REDIS_HINT);
        let extra: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        for attempt in 1..=5 {
            // A fresh dir per attempt: a failed attempt's drop removes its own dir.
            let dir = unique_temp_dir("redis");
            let log = dir.join("redis.log");
            let port = free_port();
            let proc = Proc::spawn("redis-server", redis_cmd(&bin, port, &dir, &extra), &log);
            let mut s = RedisServer {
                port,
                dir: dir.clone(),
                log: log.clone(),
                extra_args: extra.clone(),
                proc,
            };
            match s.wait_ready() {
                Ok(()) => return s,
                Err(e) if attempt < 5 && addr_in_use(&s.logs()) => {
                    eprintln!("redis-server: port {port} collided ({e}); retrying");
                    continue;
                }
                Err(e) => panic!(
                    "redis-server on port {port} did not start: {e}\n--- log {} ---\n{}",
                    log.display(),
                    s.logs()
                ),
            }
        }
        unreachable!()
    }

    fn wait_ready(&mut self) -> Result<(), String> {
        let addr = self.addr();
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Some(st) = self.proc.exited() {
                return Err(format!("redis-server exited with {st}"));
            }
            if let Ok(r) = query(&addr, &["PING"]) {
                let ok = matches!(&r, Reply::Status(s) if s == "PONG")
                    || r.error_message().is_some_and(|e| e.starts_with("NOAUTH"));
                // Make sure it is OUR process answering, not someone else on a reused port.
                let ours = r.is_error() || remote_pid(&addr) == self.proc.pid();
                if ok && ours {
                    return Ok(());
                }
            }
            if Instant::now() >= deadline {
                return Err(format!("no PONG within {START_TIMEOUT:?}"));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn port(&self) -> u16 {
        self.port
    }
    /// `127.0.0.1:PORT`
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
    pub fn pid(&self) -> Option<u32> {
        self.proc.pid()
    }
    pub fn dir(&self) -> &Path {
        &self.dir
    }
    pub fn log_path(&self) -> &Path {
        &self.log
    }
    /// The whole log so far.
    pub fn logs(&self) -> String {
        read_log(&self.log)
    }
    pub fn is_running(&mut self) -> bool {
        self.proc.is_running()
    }

    /// One command; panics on I/O errors (an `-ERR` reply is returned as `Reply::Error`).
    pub fn cmd(&self, args: &[&str]) -> Reply {
        self.try_cmd(args)
            .unwrap_or_else(|e| panic!("redis-server {}: {args:?} failed: {e}", self.addr()))
    }
    pub fn try_cmd(&self, args: &[&str]) -> io::Result<Reply> {
        query(&self.addr(), args)
    }
    pub fn conn(&self) -> Conn {
        Conn::connect(&self.addr())
            .unwrap_or_else(|e| panic!("connect to redis-server {}: {e}", self.addr()))
    }
    /// `INFO section` text.
    pub fn info(&self, section: &str) -> String {
        self.cmd(&["INFO", section]).to_string()
    }
    /// One `INFO` field, e.g. `info_field("replication", "role")`.
    pub fn info_field(&self, section: &str, field: &str) -> Option<String> {
        self.try_cmd(&["INFO", section])
            .ok()
            .and_then(|r| info_field(r.as_str()?, field))
    }
    /// `role` from INFO replication: "master" or "slave".
    pub fn role(&self) -> Option<String> {
        self.info_field("replication", "role")
    }
    /// Waits until this replica reports `master_link_status:up`.
    pub fn wait_link_up(&self, timeout: Duration) {
        must_wait(
            timeout,
            &format!("{} master_link_status:up", self.addr()),
            || {
                self.info_field("replication", "master_link_status")
                    .as_deref()
                    == Some("up")
            },
        );
    }

    /// SIGKILL and reap; the port becomes free (but stays "ours" for [`RedisServer::restart`]).
    pub fn stop(&mut self) {
        self.proc.kill();
    }
    /// SIGSTOP: the process keeps its sockets but answers nothing.
    pub fn pause(&self) {
        send_signal(self.pid().expect("pause: process not running"), SIGSTOP);
    }
    /// SIGCONT.
    pub fn resume(&self) {
        send_signal(self.pid().expect("resume: process not running"), SIGCONT);
    }
    /// Kills the process if still running, then starts it again on the same port with the
    /// same arguments (empty dataset: no persistence) and waits for PING.
    pub fn restart(&mut self) {
        self.restart_with(&self.extra_args.clone());
    }
    /// Like [`RedisServer::restart`] but with other extra arguments (e.g. `--replicaof`).
    pub fn restart_with(&mut self, args: &[impl AsRef<str>]) {
        self.proc.kill();
        self.extra_args = args.iter().map(|a| a.as_ref().to_string()).collect();
        let bin = require_binary("redis-server", REDIS_HINT);
        let _ = fs::OpenOptions::new()
            .append(true)
            .open(&self.log)
            .and_then(|mut f| writeln!(f, "===== harness: restart ====="));
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            self.proc = Proc::spawn(
                "redis-server",
                redis_cmd(&bin, self.port, &self.dir, &self.extra_args),
                &self.log,
            );
            match self.wait_ready() {
                Ok(()) => return,
                // The old socket may linger briefly; keep trying on the same port.
                Err(_) if Instant::now() < deadline && addr_in_use(&self.logs()) => {
                    self.proc.kill();
                    std::thread::sleep(Duration::from_millis(100));
                }
                Err(e) => panic!(
                    "redis-server restart on port {} failed: {e}\n--- log ---\n{}",
                    self.port,
                    self.logs()
                ),
            }
        }
    }
}

fn redis_cmd(bin: &Path, port: u16, dir: &Path, extra: &[String]) -> Command {
    let mut c = Command::new(bin);
    c.arg("--port")
        .arg(port.to_string())
        .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
        .args(["--daemonize", "no", "--dir"])
        .arg(dir)
        .args(extra)
        .current_dir(dir);
    c
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.proc.kill();
        finish_dir(
            &format!("redis-server :{}", self.port),
            &self.dir,
            &self.log,
        );
    }
}

// ---------------------------------------------------------------------------------------------
// redis-sentinel
// ---------------------------------------------------------------------------------------------

/// One `redis-sentinel` monitoring one or more masters on 127.0.0.1
/// (down-after 1000 ms, failover-timeout 5000 ms, parallel-syncs 1).
pub struct Sentinel {
    port: u16,
    dir: PathBuf,
    log: PathBuf,
    conf: PathBuf,
    masters: Vec<(String, u16)>,
    proc: Proc,
}

impl Sentinel {
    pub fn start(master_name: &str, master_port: u16, quorum: u32) -> Sentinel {
        Sentinel::start_multi(&[(master_name, master_port)], quorum)
    }

    /// One Sentinel monitoring several masters.
    pub fn start_multi(masters: &[(&str, u16)], quorum: u32) -> Sentinel {
        let bin = require_binary("redis-sentinel", REDIS_HINT);
        let masters: Vec<(String, u16)> =
            masters.iter().map(|(n, p)| (n.to_string(), *p)).collect();
        for attempt in 1..=5 {
            let dir = unique_temp_dir("sentinel");
            let log = dir.join("sentinel.log");
            let conf = dir.join("sentinel.conf");
            let port = free_port();
            let mut text = format!(
                "port {port}\nbind 127.0.0.1\ndaemonize no\ndir \"{}\"\n",
                dir.display()
            );
            for (name, mp) in &masters {
                text.push_str(&format!(
                    "sentinel monitor {name} 127.0.0.1 {mp} {quorum}\n\
                     sentinel down-after-milliseconds {name} 1000\n\
                     sentinel failover-timeout {name} 5000\n\
                     sentinel parallel-syncs {name} 1\n"
                ));
            }
            fs::write(&conf, text)
                .unwrap_or_else(|e| panic!("cannot write {}: {e}", conf.display()));
            let mut c = Command::new(&bin);
            c.arg(&conf).current_dir(&dir);
            let proc = Proc::spawn("redis-sentinel", c, &log);
            let mut s = Sentinel {
                port,
                dir: dir.clone(),
                log: log.clone(),
                conf: conf.clone(),
                masters: masters.clone(),
                proc,
            };
            match s.wait_ready() {
                Ok(()) => return s,
                Err(e) if attempt < 5 && addr_in_use(&s.logs()) => {
                    eprintln!("redis-sentinel: port {port} collided ({e}); retrying");
                    continue;
                }
                Err(e) => panic!(
                    "redis-sentinel on port {port} did not start: {e}\n--- log {} ---\n{}",
                    log.display(),
                    s.logs()
                ),
            }
        }
        unreachable!()
    }

    fn wait_ready(&mut self) -> Result<(), String> {
        let addr = self.addr();
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Some(st) = self.proc.exited() {
                return Err(format!("redis-sentinel exited with {st}"));
            }
            let all_known = self.masters.iter().all(|(name, _)| {
                matches!(
                    query(&addr, &["SENTINEL", "get-master-addr-by-name", name]),
                    Ok(Reply::Array(a)) if a.len() == 2
                )
            });
            if all_known && remote_pid(&addr) == self.proc.pid() {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "SENTINEL get-master-addr-by-name did not answer within {START_TIMEOUT:?}"
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn port(&self) -> u16 {
        self.port
    }
    /// `127.0.0.1:PORT`
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
    pub fn pid(&self) -> Option<u32> {
        self.proc.pid()
    }
    pub fn dir(&self) -> &Path {
        &self.dir
    }
    pub fn conf_path(&self) -> &Path {
        &self.conf
    }
    pub fn log_path(&self) -> &Path {
        &self.log
    }
    pub fn logs(&self) -> String {
        read_log(&self.log)
    }
    pub fn is_running(&mut self) -> bool {
        self.proc.is_running()
    }
    pub fn cmd(&self, args: &[&str]) -> Reply {
        self.try_cmd(args)
            .unwrap_or_else(|e| panic!("redis-sentinel {}: {args:?} failed: {e}", self.addr()))
    }
    pub fn try_cmd(&self, args: &[&str]) -> io::Result<Reply> {
        query(&self.addr(), args)
    }

    /// `SENTINEL get-master-addr-by-name` as `(ip, port)`.
    pub fn master_addr(&self, name: &str) -> Option<(String, u16)> {
        match self
            .try_cmd(&["SENTINEL", "get-master-addr-by-name", name])
            .ok()?
        {
            Reply::Array(a) if a.len() == 2 => {
                Some((a[0].to_string(), a[1].as_str()?.parse().ok()?))
            }
            _ => None,
        }
    }

    /// `SENTINEL replicas NAME`, each entry as field/value pairs (`ip`, `port`, `flags`, ...).
    pub fn replicas(&self, name: &str) -> Vec<Vec<(String, String)>> {
        match self.try_cmd(&["SENTINEL", "replicas", name]) {
            Ok(Reply::Array(a)) => a.iter().map(Reply::as_pairs).collect(),
            _ => Vec::new(),
        }
    }

    /// `SENTINEL sentinels NAME`: the other Sentinels this one knows.
    pub fn other_sentinels(&self, name: &str) -> Vec<Vec<(String, String)>> {
        match self.try_cmd(&["SENTINEL", "sentinels", name]) {
            Ok(Reply::Array(a)) => a.iter().map(Reply::as_pairs).collect(),
            _ => Vec::new(),
        }
    }

    /// True when `SENTINEL replicas NAME` lists 127.0.0.1:`port` and it is not down.
    pub fn knows_replica(&self, name: &str, port: u16) -> bool {
        let p = port.to_string();
        self.replicas(name).iter().any(|fields| {
            let get = |k: &str| fields.iter().find(|(f, _)| f == k).map(|(_, v)| v.as_str());
            get("port") == Some(p.as_str())
                && get("flags")
                    .is_some_and(|f| !f.contains("s_down") && !f.contains("disconnected"))
        })
    }

    /// Waits until this Sentinel lists replica `port` of `name` (not down).
    pub fn wait_replica_known(&self, name: &str, port: u16, timeout: Duration) {
        must_wait(
            timeout,
            &format!("sentinel {} to list replica :{port} of {name}", self.addr()),
            || self.knows_replica(name, port),
        );
    }

    pub fn stop(&mut self) {
        self.proc.kill();
    }
    pub fn pause(&self) {
        send_signal(self.pid().expect("pause: process not running"), SIGSTOP);
    }
    pub fn resume(&self) {
        send_signal(self.pid().expect("resume: process not running"), SIGCONT);
    }
    /// Restarts on the same port with the (Sentinel-rewritten) config file.
    pub fn restart(&mut self) {
        self.proc.kill();
        let bin = require_binary("redis-sentinel", REDIS_HINT);
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            let mut c = Command::new(&bin);
            c.arg(&self.conf).current_dir(&self.dir);
            self.proc = Proc::spawn("redis-sentinel", c, &self.log);
            match self.wait_ready() {
                Ok(()) => return,
                Err(_) if Instant::now() < deadline && addr_in_use(&self.logs()) => {
                    self.proc.kill();
                    std::thread::sleep(Duration::from_millis(100));
                }
                Err(e) => panic!(
                    "redis-sentinel restart on port {} failed: {e}\n--- log ---\n{}",
                    self.port,
                    self.logs()
                ),
            }
        }
    }
}

impl Drop for Sentinel {
    fn drop(&mut self) {
        self.proc.kill();
        finish_dir(
            &format!("redis-sentinel :{}", self.port),
            &self.dir,
            &self.log,
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Topology
// ---------------------------------------------------------------------------------------------

/// A Sentinel-managed group: one master, replicas (link up), Sentinels (started last).
///
/// Field order matters for drop: Sentinels are dropped first so they do not fail over
/// while the servers are being killed.
pub struct MasterReplica {
    pub name: String,
    pub sentinels: Vec<Sentinel>,
    pub replicas: Vec<RedisServer>,
    pub master: RedisServer,
}

impl MasterReplica {
    /// Master + 1 replica + 1 Sentinel (quorum 1).
    pub fn start(name: &str) -> MasterReplica {
        MasterReplica::start_with(name, 1, 1, 1)
    }

    /// Master + `replicas` replicas + `sentinels` Sentinels with `quorum`.
    /// Waits until every replica reports `master_link_status:up`; with several Sentinels
    /// call [`MasterReplica::wait_sentinels_known`] before failover tests.
    pub fn start_with(name: &str, replicas: usize, sentinels: usize, quorum: u32) -> MasterReplica {
        let master = RedisServer::start();
        let replicas: Vec<RedisServer> = (0..replicas)
            .map(|_| RedisServer::start_replica_of(master.port()))
            .collect();
        for r in &replicas {
            r.wait_link_up(START_TIMEOUT);
        }
        let sentinels = (0..sentinels)
            .map(|_| Sentinel::start(name, master.port(), quorum))
            .collect();
        MasterReplica {
            name: name.to_string(),
            sentinels,
            replicas,
            master,
        }
    }

    /// The first replica.
    pub fn replica(&self) -> &RedisServer {
        &self.replicas[0]
    }
    /// The first Sentinel.
    pub fn sentinel(&self) -> &Sentinel {
        &self.sentinels[0]
    }
    /// `127.0.0.1:PORT` of every Sentinel.
    pub fn sentinel_addrs(&self) -> Vec<String> {
        self.sentinels.iter().map(Sentinel::addr).collect()
    }
    /// Waits (10 s) until every Sentinel lists every replica (not down).
    pub fn wait_replica_known(&self) {
        for s in &self.sentinels {
            for r in &self.replicas {
                s.wait_replica_known(&self.name, r.port(), START_TIMEOUT);
            }
        }
    }
    /// Waits (15 s) until every Sentinel knows all the others (hello messages, every 2 s).
    pub fn wait_sentinels_known(&self) {
        let others = self.sentinels.len().saturating_sub(1);
        must_wait(
            Duration::from_secs(15),
            "sentinels to discover each other",
            || {
                self.sentinels
                    .iter()
                    .all(|s| s.other_sentinels(&self.name).len() >= others)
            },
        );
    }
    /// The master port the first Sentinel currently reports.
    pub fn current_master_port(&self) -> Option<u16> {
        self.sentinel().master_addr(&self.name).map(|(_, p)| p)
    }
    /// `SENTINEL FAILOVER NAME` on the first Sentinel, then waits (`timeout`) until it reports
    /// a different master. Returns the new master port. Call `wait_replica_known` first.
    pub fn failover(&self, timeout: Duration) -> u16 {
        let old = self.current_master_port();
        let r = self.sentinel().cmd(&["SENTINEL", "FAILOVER", &self.name]);
        assert!(!r.is_error(), "SENTINEL FAILOVER {} failed: {r}", self.name);
        let mut new = None;
        must_wait(timeout, "sentinel to report a new master", || {
            new = self.current_master_port().filter(|p| Some(*p) != old);
            new.is_some()
        });
        new.unwrap()
    }
    /// The server (master or replica) listening on `port`.
    pub fn server_on(&self, port: u16) -> Option<&RedisServer> {
        std::iter::once(&self.master)
            .chain(self.replicas.iter())
            .find(|s| s.port() == port)
    }
    /// Every log of the group, for failure messages.
    pub fn logs(&self) -> String {
        let mut out = format!(
            "--- master :{} ---\n{}",
            self.master.port(),
            self.master.logs()
        );
        for r in &self.replicas {
            out.push_str(&format!("\n--- replica :{} ---\n{}", r.port(), r.logs()));
        }
        for s in &self.sentinels {
            out.push_str(&format!("\n--- sentinel :{} ---\n{}", s.port(), s.logs()));
        }
        out
    }
}

// ---------------------------------------------------------------------------------------------
// redmux
// ---------------------------------------------------------------------------------------------

/// The `redmux` binary under test, run as `redmux --config FILE`.
pub struct Redmux {
    port: u16,
    dir: PathBuf,
    log: PathBuf,
    config: PathBuf,
    proc: Proc,
}

/// Path of the redmux binary Cargo built for these tests.
pub fn redmux_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_redmux"))
}

/// Finds the client port in a config text: the first line whose first word is `Bind`/`bind`
/// (predixy `Bind host:port`, TOML `bind = "host:port"`).
pub fn config_bind_port(config_text: &str) -> Option<u16> {
    config_text.lines().find_map(|line| {
        let l = line.trim();
        let word: String = l
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        if !word.eq_ignore_ascii_case("bind") {
            return None;
        }
        let value = l[word.len()..].trim_start().trim_start_matches('=').trim();
        let value = value.split('#').next()?.trim().trim_matches('"');
        value.rsplit_once(':')?.1.parse().ok()
    })
}

impl Redmux {
    /// Writes `config_text` to `redmux.EXT` in a temp dir (`ext`: "toml" or "conf"), runs
    /// `redmux --config FILE` (RUST_LOG=info unless `REDMUX_TEST_RUST_LOG` is set) and waits
    /// until the bind port (read from the config's `Bind`/`bind` line) accepts TCP.
    pub fn start(config_text: &str, ext: &str) -> Redmux {
        let port = config_bind_port(config_text).unwrap_or_else(|| {
            panic!("Redmux::start: no `Bind host:port` / `bind = \"host:port\"` line in config:\n{config_text}")
        });
        Redmux::start_on(config_text, ext, port)
    }

    /// Like [`Redmux::start`] with the client port given explicitly.
    pub fn start_on(config_text: &str, ext: &str, port: u16) -> Redmux {
        let (dir, log, config) = Redmux::prepare(config_text, ext);
        let proc = Proc::spawn("redmux", Redmux::command(&config, &dir), &log);
        let mut r = Redmux {
            port,
            dir,
            log,
            config,
            proc,
        };
        if let Err(e) = r.wait_ready() {
            panic!(
                "redmux did not start on 127.0.0.1:{port}: {e}\n--- config {} ---\n{config_text}\n--- log {} ---\n{}",
                r.config.display(),
                r.log.display(),
                r.logs()
            );
        }
        r
    }

    /// Runs `redmux --config FILE` expecting it to exit by itself (bad config, ...) within
    /// `timeout`; returns its exit status and output. Panics if it is still running then.
    pub fn run_expect_exit(
        config_text: &str,
        ext: &str,
        timeout: Duration,
    ) -> (ExitStatus, String) {
        let (dir, log, config) = Redmux::prepare(config_text, ext);
        let mut proc = Proc::spawn("redmux", Redmux::command(&config, &dir), &log);
        let mut status = None;
        wait_until(timeout, || {
            status = proc.exited();
            status.is_some()
        });
        let out = read_log(&log);
        match status {
            Some(st) => {
                drop(proc);
                if !keep_dirs() {
                    let _ = fs::remove_dir_all(&dir);
                }
                (st, out)
            }
            None => panic!("redmux was expected to exit within {timeout:?} but kept running\n--- log ---\n{out}"),
        }
    }

    /// Runs `redmux ARGS...` (e.g. `["--version"]`, `["--check", "--config", path]`) to
    /// completion (30 s max); returns status and combined output.
    pub fn run_cli(args: &[&str]) -> (ExitStatus, String) {
        let dir = unique_temp_dir("redmux-cli");
        let log = dir.join("out.log");
        let mut c = Command::new(redmux_bin());
        c.args(args).current_dir(&dir);
        let mut proc = Proc::spawn("redmux", c, &log);
        let mut status = None;
        wait_until(Duration::from_secs(30), || {
            status = proc.exited();
            status.is_some()
        });
        let out = read_log(&log);
        let st =
            status.unwrap_or_else(|| panic!("redmux {args:?} still running after 30 s\n{out}"));
        drop(proc);
        let _ = fs::remove_dir_all(&dir);
        (st, out)
    }

    /// `redmux --check --config FILE` on a config text: (exit status, output).
    pub fn check(config_text: &str, ext: &str) -> (ExitStatus, String) {
        let dir = unique_temp_dir("redmux-check");
        let path = dir.join(format!("redmux.{ext}"));
        fs::write(&path, config_text).expect("write config");
        let res = Redmux::run_cli(&["--check", "--config", path.to_str().expect("utf-8 path")]);
        let _ = fs::remove_dir_all(&dir);
        res
    }

    /// The user's `conf/predixy.conf` with `0.0.0.0:7617` → `127.0.0.1:BIND_PORT` and the
    /// Sentinel `instance01-redis-ha:26379` → the given addresses (one `+` line each);
    /// everything else unchanged.
    pub fn predixy_conf(sentinel_addrs: &[String], bind_port: u16) -> String {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("conf/predixy.conf");
        let text = fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
        assert!(
            text.contains("0.0.0.0:7617") && text.contains("instance01-redis-ha:26379"),
            "{} no longer contains `0.0.0.0:7617` and `instance01-redis-ha:26379`; update the harness",
            path.display()
        );
        assert!(
            !sentinel_addrs.is_empty(),
            "predixy_conf: no Sentinel addresses"
        );
        let mut out = String::with_capacity(text.len());
        for line in text.split_inclusive('\n') {
            if line.contains("instance01-redis-ha:26379") {
                for addr in sentinel_addrs {
                    out.push_str(&line.replace("instance01-redis-ha:26379", addr));
                }
            } else {
                out.push_str(&line.replace("0.0.0.0:7617", &format!("127.0.0.1:{bind_port}")));
            }
        }
        out
    }

    /// [`Redmux::predixy_conf`] on a fresh port, started.
    pub fn start_predixy(sentinel_addrs: &[String]) -> Redmux {
        for attempt in 1..=5 {
            let port = free_port();
            let text = Redmux::predixy_conf(sentinel_addrs, port);
            let (dir, log, config) = Redmux::prepare(&text, "conf");
            let proc = Proc::spawn("redmux", Redmux::command(&config, &dir), &log);
            let mut r = Redmux {
                port,
                dir,
                log,
                config,
                proc,
            };
            match r.wait_ready() {
                Ok(()) => return r,
                Err(e) if attempt < 5 && addr_in_use(&r.logs()) => {
                    eprintln!("redmux: port {port} collided ({e}); retrying");
                    continue;
                }
                Err(e) => panic!(
                    "redmux did not start on 127.0.0.1:{port}: {e}\n--- config ---\n{text}\n--- log ---\n{}",
                    r.logs()
                ),
            }
        }
        unreachable!()
    }

    fn prepare(config_text: &str, ext: &str) -> (PathBuf, PathBuf, PathBuf) {
        let dir = unique_temp_dir("redmux");
        let log = dir.join("redmux.log");
        let config = dir.join(format!("redmux.{ext}"));
        fs::write(&config, config_text)
            .unwrap_or_else(|e| panic!("cannot write {}: {e}", config.display()));
        (dir, log, config)
    }

    fn command(config: &Path, dir: &Path) -> Command {
        let bin = redmux_bin();
        assert!(
            bin.is_file(),
            "redmux binary {} missing (it is built by `cargo test`)",
            bin.display()
        );
        let mut c = Command::new(bin);
        let level = std::env::var("REDMUX_TEST_RUST_LOG").unwrap_or_else(|_| "info".into());
        c.arg("--config")
            .arg(config)
            .env("RUST_LOG", level)
            .current_dir(dir);
        c
    }

    fn wait_ready(&mut self) -> Result<(), String> {
        let sa = SocketAddr::from(([127, 0, 0, 1], self.port));
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Some(st) = self.proc.exited() {
                return Err(format!("redmux exited with {st}"));
            }
            if TcpStream::connect_timeout(&sa, Duration::from_millis(200)).is_ok() {
                // Still alive after accepting? (guards against another process on the port)
                std::thread::sleep(Duration::from_millis(20));
                if let Some(st) = self.proc.exited() {
                    return Err(format!("redmux exited with {st}"));
                }
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "port {} not accepting within {START_TIMEOUT:?}",
                    self.port
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn port(&self) -> u16 {
        self.port
    }
    /// `127.0.0.1:PORT`
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
    pub fn pid(&self) -> Option<u32> {
        self.proc.pid()
    }
    pub fn dir(&self) -> &Path {
        &self.dir
    }
    pub fn config_path(&self) -> &Path {
        &self.config
    }
    pub fn log_path(&self) -> &Path {
        &self.log
    }
    pub fn logs(&self) -> String {
        read_log(&self.log)
    }
    pub fn is_running(&mut self) -> bool {
        self.proc.is_running()
    }
    /// Exit status if redmux has exited (crash detection).
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.proc.exited()
    }
    /// One command on a fresh unauthenticated connection; panics on I/O errors.
    pub fn cmd(&self, args: &[&str]) -> Reply {
        self.try_cmd(args).unwrap_or_else(|e| {
            panic!(
                "redmux {}: {args:?} failed: {e}\n--- log ---\n{}",
                self.addr(),
                self.logs()
            )
        })
    }
    pub fn try_cmd(&self, args: &[&str]) -> io::Result<Reply> {
        query(&self.addr(), args)
    }
    /// One command after `AUTH password`; panics on I/O errors or a failed AUTH.
    pub fn cmd_auth(&self, password: &str, args: &[&str]) -> Reply {
        query_auth(&self.addr(), password, args).unwrap_or_else(|e| {
            panic!(
                "redmux {}: {args:?} failed: {e}\n--- log ---\n{}",
                self.addr(),
                self.logs()
            )
        })
    }
    pub fn conn(&self) -> Conn {
        Conn::connect(&self.addr())
            .unwrap_or_else(|e| panic!("connect to redmux {}: {e}", self.addr()))
    }
    pub fn conn_auth(&self, password: &str) -> Conn {
        Conn::connect_auth(&self.addr(), password)
            .unwrap_or_else(|e| panic!("connect+AUTH to redmux {}: {e}", self.addr()))
    }
    /// SIGKILL and reap.
    pub fn stop(&mut self) {
        self.proc.kill();
    }
    pub fn pause(&self) {
        send_signal(self.pid().expect("pause: process not running"), SIGSTOP);
    }
    pub fn resume(&self) {
        send_signal(self.pid().expect("resume: process not running"), SIGCONT);
    }
    /// Sends SIGTERM (graceful shutdown) and waits up to `timeout` for the exit status.
    pub fn terminate(&mut self, timeout: Duration) -> Option<ExitStatus> {
        if let Some(pid) = self.pid() {
            send_signal(pid, 15);
        }
        let mut st = None;
        wait_until(timeout, || {
            st = self.proc.exited();
            st.is_some()
        });
        st
    }
    /// Kills redmux and starts it again with the same config file and port.
    pub fn restart(&mut self) {
        self.proc.kill();
        let _ = fs::OpenOptions::new()
            .append(true)
            .open(&self.log)
            .and_then(|mut f| writeln!(f, "===== harness: restart ====="));
        self.proc = Proc::spawn(
            "redmux",
            Redmux::command(&self.config, &self.dir),
            &self.log,
        );
        if let Err(e) = self.wait_ready() {
            panic!("redmux restart failed: {e}\n--- log ---\n{}", self.logs());
        }
    }
}

impl Drop for Redmux {
    fn drop(&mut self) {
        self.proc.kill();
        finish_dir(&format!("redmux :{}", self.port), &self.dir, &self.log);
    }
}

/// predixy's mapping of a key to one of `groups` groups: crc16 (XMODEM) of the `{tag}` or
/// the key, modulo the number of groups (computed here independently of redmux's code).
pub fn predixy_group_of(key: &str, groups: usize) -> usize {
    let bytes = key.as_bytes();
    let part = match bytes.iter().position(|&b| b == b'{') {
        Some(s) => match bytes[s + 1..].iter().position(|&b| b == b'}') {
            Some(len) if len > 0 => &bytes[s + 1..s + 1 + len],
            _ => bytes,
        },
        None => bytes,
    };
    let mut crc: u16 = 0;
    for &b in part {
        crc ^= (b as u16) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ 0x1021
            } else {
                crc << 1
            };
        }
    }
    crc as usize % groups
}

/// redmux (TOML config) in front of the groups `groups` that `sentinel` monitors, hashing
/// keys as predixy does (crc16, `{}` tags, modula). `top` holds extra top-level lines
/// (worker_threads, limits), `pool` extra `[sentinel_pool]` lines. Returns once SETs of 30
/// keys, which fall in every group, succeed through it.
pub fn start_redmux_for_groups(
    sentinel: &Sentinel,
    groups: &[&str],
    top: &str,
    pool: &str,
) -> Redmux {
    let port = free_port();
    let mut config = format!(
        "bind = \"127.0.0.1:{port}\"\n{top}\n[sentinel_pool]\n\
         hash = \"crc16\"\nhash_tag = \"{{}}\"\ndistribution = \"modula\"\n\
         {pool}\nsentinels = [\"{}\"]\n",
        sentinel.addr()
    );
    for g in groups {
        config.push_str(&format!("[[sentinel_pool.group]]\nname = \"{g}\"\n"));
    }
    let proxy = Redmux::start_on(&config, "toml", port);
    must_wait(Duration::from_secs(10), "proxy knows every master", || {
        (0..30).all(|i| {
            proxy
                .try_cmd(&["SET", &format!("warm{i}"), "1"])
                .is_ok_and(|r| r == Reply::ok())
        })
    });
    proxy
}

/// One master per name in `groups` and one Sentinel (quorum 1) monitoring them all.
pub fn start_monitored_masters(groups: &[&str]) -> (Vec<RedisServer>, Sentinel) {
    let masters: Vec<RedisServer> = groups.iter().map(|_| RedisServer::start()).collect();
    let monitored: Vec<(&str, u16)> = groups
        .iter()
        .copied()
        .zip(masters.iter().map(|m| m.port()))
        .collect();
    (masters, Sentinel::start_multi(&monitored, 1))
}

/// A tiny deterministic generator (xorshift64) so a failing random test replays. The
/// field is the state: `XorShift(seed)` starts from `seed` as it is (it must not be 0);
/// [`XorShift::new`] spreads any seed first.
pub struct XorShift(pub u64);

impl XorShift {
    pub fn new(seed: u64) -> XorShift {
        XorShift(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    /// A number in `0..n`.
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    /// A number in `lo..=hi`.
    pub fn range(&mut self, lo: usize, hi: usize) -> usize {
        lo + self.below((hi - lo + 1) as u64) as usize
    }
    /// One of `items`.
    pub fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len() as u64) as usize]
    }
}
