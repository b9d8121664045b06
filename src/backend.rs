//! Backend links: pipelined connections to one Redis server.
//!
//! A worker keeps one shared link per server × database × protocol version and
//! multiplexes all its clients over it: a request's bytes are appended to the link's send
//! buffer and a [`Waiter`] joins the link's queue; the writer sends whatever accumulated
//! in one system call, the reader frames replies and hands each to the oldest waiter.
//! Replies are matched strictly first-in first-out, so a reply can only ever reach the
//! request it answers. When anything goes wrong on a connection (timeout, reset, garbage)
//! every request that was written on it fails with an error and the connection is
//! dropped, since the order of what follows could no longer be trusted; requests not yet
//! written move to the next connection.
//!
//! Dedicated links (transactions, blocking commands, subscriptions) are the same type,
//! owned by one session, without the request timeout, and for subscriptions in
//! passthrough mode: every frame read goes straight to the client.

use crate::backend_tls::{describe_alert, BackendStream};
use crate::protocol::{encode_request, ReplyScanner};
use crate::session::ClientShared;
use crate::topology::ServerAddr;
use crate::wake::LocalNotify;
use bytes::{Bytes, BytesMut};
use std::cell::{Cell, RefCell};
use std::collections::{HashMap, VecDeque};
use std::rc::Rc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;

/// Read buffer growth step for replies.
const READ_CHUNK: usize = 16 * 1024;
/// Least time a request still being written (a large value) gets before it times out.
const WRITE_GRACE: Duration = Duration::from_secs(10);
/// How long a connection attempt may take when no `server_timeout` is configured.
const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

/// Settings shared by every link of a worker (from the pool config).
#[derive(Clone, Debug)]
pub struct LinkSettings {
    pub user: Option<String>,
    pub password: Option<String>,
    /// Bounds every request on a shared link; zero = no bound.
    pub server_timeout: Duration,
    pub server_failure_limit: u32,
    pub server_retry_timeout: Duration,
    pub keep_alive: Duration,
    /// TLS to the servers (`[sentinel_pool] tls`); `None` = plain TCP.
    pub tls: Option<std::sync::Arc<crate::backend_tls::BackendTls>>,
}

/// Identifies a shared link within a worker.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct LinkKey {
    pub addr: ServerAddr,
    pub db: u32,
    pub resp3: bool,
}

/// Where one reply goes: the client, the request's position in its reply queue, and the
/// part of a split request it answers.
pub struct Waiter {
    pub client: Rc<ClientShared>,
    pub seq: u64,
    pub part: u32,
    /// When it was queued on its current link (its client's read, restamped when written,
    /// when released from a failover hold and when it moves to a new connection):
    /// `server_timeout` counts from here, not from a failover hold.
    pub sent: Instant,
    /// For writes: what is needed to send it again to a new master.
    pub retry: Option<Retry>,
}

/// A write's own bytes and route, kept until its reply so a refusal that proves it was
/// not applied (`-READONLY`, `-LOADING`) can be followed by a send to the new master.
pub struct Retry {
    pub frame: Bytes,
    pub group: u32,
    pub db: u32,
    pub resp3: bool,
}

/// True for replies that prove the server did not apply a write because of a topology
/// change: it is a replica now (`-READONLY`) or still loading its data (`-LOADING`).
pub fn is_retryable_refusal(reply: &[u8]) -> bool {
    reply.starts_with(b"-READONLY") || reply.starts_with(b"-LOADING")
}

/// Consecutive failures of one server as seen by this worker.
#[derive(Debug, Default)]
pub struct ServerHealth {
    failures: Cell<u32>,
    down_until: Cell<Option<Instant>>,
    /// The worker's count of servers marked down (lets routing skip health lookups).
    marked_down: Rc<Cell<usize>>,
    /// Why the last connection failed (shown to clients while the server is down).
    last_error: RefCell<Option<String>>,
    /// "Marked down" was logged and the server has not answered since: log it once.
    reported: Cell<bool>,
    /// This worker's counters for the server (requests, errors, latency, state).
    pub stats: std::sync::Arc<crate::metrics::ServerStats>,
}

impl ServerHealth {
    /// True while the server is marked down (`server_failure_limit` consecutive failures,
    /// for `server_retry_timeout`).
    pub fn is_down(&self) -> bool {
        self.down_until.get().is_some_and(|t| Instant::now() < t)
    }

    /// Why the server's last connection failed, while it is marked down.
    pub fn down_reason(&self) -> Option<String> {
        if self.is_down() {
            self.last_error.borrow().clone()
        } else {
            None
        }
    }

    /// Clears the failures after a reply (cheap when there were none).
    fn record_success(&self, addr: &str) {
        if self.failures.get() == 0 && self.down_until.get().is_none() {
            return;
        }
        self.failures.set(0);
        self.stats.set_up();
        if self.down_until.take().is_some() {
            self.marked_down
                .set(self.marked_down.get().saturating_sub(1));
            if self.reported.replace(false) {
                tracing::info!(server = %addr, "server answers again");
            }
        }
    }

    /// True right after the first failure since the server last answered.
    fn is_first_failure(&self) -> bool {
        self.failures.get() == 1 && !self.reported.get() && self.down_until.get().is_none()
    }

    /// Counts a failure; returns true when this one marked the server down and it was
    /// not reported down before (so the log says it once per outage).
    fn record_failure(&self, settings: &LinkSettings, reason: &str) -> bool {
        *self.last_error.borrow_mut() = Some(reason.to_string());
        let n = self.failures.get() + 1;
        self.failures.set(n);
        // A server marked down that fails its retry is down again at once: it gets one
        // try per `server_retry_timeout`, not `server_failure_limit` more.
        let retry_failed = self.down_until.get().is_some();
        if (n >= settings.server_failure_limit.max(1) || retry_failed) && !self.is_down() {
            let was_marked = self
                .down_until
                .replace(Some(Instant::now() + settings.server_retry_timeout))
                .is_some();
            if !was_marked {
                self.marked_down.set(self.marked_down.get() + 1);
            }
            self.failures.set(0);
            self.stats.set_failed(Some(settings.server_retry_timeout));
            return !self.reported.replace(true);
        }
        self.stats.set_failed(None);
        false
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Status {
    /// No connection; the next request starts one.
    Idle,
    /// A connection is being made; requests accumulate.
    Connecting,
    Up,
    /// The owner dropped the link; nothing more is sent.
    Closed,
}

struct LinkState {
    status: Status,
    /// Bytes of requests not yet written.
    out: BytesMut,
    /// Requests in order: written ones first, then the `unsent` ones whose bytes are
    /// still in `out`.
    waiting: VecDeque<Waiter>,
    unsent: usize,
    /// Requests in the batch the writer is writing now (0 when it is idle), and when that
    /// write started: a request is timed from when its bytes were all written.
    writing: usize,
    write_started: Instant,
    /// Incremented per connection, so a stale task never touches a newer connection.
    generation: u64,
    /// Subscriptions: frames go to this client as they come, no waiters.
    passthrough: Option<Rc<ClientShared>>,
}

/// One pipelined connection (re-made as needed) to one server.
pub struct Link {
    pub key: LinkKey,
    settings: Rc<LinkSettings>,
    /// Where refused writes go to be re-sent (the worker's hold queue).
    redirect: Rc<crate::hold::HoldQueue>,
    health: Rc<ServerHealth>,
    /// Dedicated to one client: no request timeout.
    dedicated: bool,
    state: RefCell<LinkState>,
    wake_writer: LocalNotify,
    /// Wakes a reader that waits without a deadline when a request is queued.
    wake_reader: LocalNotify,
}

impl Link {
    pub fn new(
        key: LinkKey,
        settings: Rc<LinkSettings>,
        health: Rc<ServerHealth>,
        redirect: Rc<crate::hold::HoldQueue>,
        dedicated: bool,
    ) -> Rc<Link> {
        Rc::new(Link {
            key,
            settings,
            redirect,
            health,
            dedicated,
            state: RefCell::new(LinkState {
                status: Status::Idle,
                out: BytesMut::new(),
                waiting: VecDeque::new(),
                unsent: 0,
                writing: 0,
                write_started: Instant::now(),
                generation: 0,
                passthrough: None,
            }),
            wake_writer: LocalNotify::new(),
            wake_reader: LocalNotify::new(),
        })
    }

    pub fn health(&self) -> &ServerHealth {
        &self.health
    }

    /// Requests written or queued and not yet answered.
    pub fn in_flight(&self) -> usize {
        self.state.borrow().waiting.len()
    }

    /// Queues one request. The reply (or an error) is delivered to the waiter.
    pub fn send(self: &Rc<Self>, request: &[u8], mut waiter: Waiter) {
        let start = {
            let mut st = self.state.borrow_mut();
            if st.status == Status::Closed {
                drop(st);
                fail_one(waiter, &self.error_text("link closed"));
                return;
            }
            if self.dedicated {
                // A dedicated link's request may have waited for the client's earlier
                // ones; a shared link's waiter carries the time its client's read arrived
                // (one clock read per read, not per request) and `mark_written` restamps
                // it once written.
                waiter.sent = Instant::now();
            }
            if st.waiting.is_empty() {
                // The reader may be waiting with no deadline: give it one.
                self.wake_reader.notify_one();
            }
            st.out.extend_from_slice(request);
            st.waiting.push_back(waiter);
            st.unsent += 1;
            st.status == Status::Idle
        };
        if start {
            self.start_connection();
        } else {
            self.wake_writer.notify_one();
        }
    }

    /// Queues bytes whose replies go to the passthrough client (subscriptions).
    pub fn send_passthrough(self: &Rc<Self>, client: &Rc<ClientShared>, request: &[u8]) {
        let start = {
            let mut st = self.state.borrow_mut();
            if st.status == Status::Closed {
                return;
            }
            st.passthrough = Some(client.clone());
            st.out.extend_from_slice(request);
            st.status == Status::Idle
        };
        if start {
            self.start_connection();
        } else {
            self.wake_writer.notify_one();
        }
    }

    /// Stops the link: pending requests fail, the connection tasks end.
    pub fn close(&self) {
        let waiters = {
            let mut st = self.state.borrow_mut();
            st.status = Status::Closed;
            st.generation += 1;
            st.passthrough = None;
            st.out.clear();
            st.unsent = 0;
            std::mem::take(&mut st.waiting)
        };
        self.wake_writer.notify_one();
        let text = self.error_text("connection closed");
        for w in waiters {
            fail_one(w, &text);
        }
    }

    fn error_text(&self, what: &str) -> Bytes {
        let mut b = BytesMut::new();
        crate::protocol::put_error(
            &mut b,
            &format!("ERR redmux: server {} {what}", self.key.addr),
        );
        b.freeze()
    }

    fn start_connection(self: &Rc<Self>) {
        let generation = {
            let mut st = self.state.borrow_mut();
            st.status = Status::Connecting;
            st.generation += 1;
            st.generation
        };
        let link = self.clone();
        tokio::task::spawn_local(async move {
            link.run_connection(generation).await;
        });
    }

    async fn run_connection(self: Rc<Self>, generation: u64) {
        let stream = match self.connect().await {
            Ok(s) => s,
            Err(reason) => {
                if is_handshake_refusal(&reason) {
                    log_refusal_once(&self.key.addr, &reason);
                }
                self.fail_connection(generation, &reason, true);
                return;
            }
        };
        {
            let mut st = self.state.borrow_mut();
            if st.generation != generation {
                return;
            }
            st.status = Status::Up;
        }
        match stream {
            // Plain TCP keeps the lock-free owned halves on the hot path.
            BackendStream::Plain(tcp) => {
                let (reader, writer) = tcp.into_split();
                self.run_halves(reader, writer, generation).await;
            }
            BackendStream::Tls(tls) => {
                let (reader, writer) = tokio::io::split(*tls);
                self.run_halves(reader, writer, generation).await;
            }
        }
    }

    async fn run_halves<R, W>(self: Rc<Self>, mut reader: R, writer: W, generation: u64)
    where
        R: AsyncRead + Unpin,
        W: AsyncWrite + Unpin + 'static,
    {
        let me = self.clone();
        let writer_task = tokio::task::spawn_local(async move {
            me.write_loop(writer, generation).await;
        });
        let outcome = self.read_loop(&mut reader, generation).await;
        writer_task.abort();
        if let Err(reason) = outcome {
            self.fail_connection(generation, &reason, false);
        }
    }

    /// Connects, sets socket options and runs the handshake (AUTH, HELLO 3, SELECT).
    async fn connect(&self) -> Result<BackendStream, String> {
        let limit = if self.settings.server_timeout.is_zero() {
            DEFAULT_CONNECT_TIMEOUT
        } else {
            self.settings.server_timeout.max(Duration::from_millis(500))
        };
        let addr: &str = &self.key.addr;
        let tcp = match tokio::time::timeout(limit, TcpStream::connect(addr)).await {
            Err(_) => return Err("connect timed out".into()),
            Ok(Err(e)) => return Err(format!("unreachable: {e}")),
            Ok(Ok(s)) => s,
        };
        let _ = tcp.set_nodelay(true);
        if !self.settings.keep_alive.is_zero() {
            let ka = socket2::TcpKeepalive::new().with_time(self.settings.keep_alive);
            let _ = socket2::SockRef::from(&tcp).set_tcp_keepalive(&ka);
        }
        let mut stream = match &self.settings.tls {
            None => BackendStream::Plain(tcp),
            Some(tls) => match tokio::time::timeout(limit, tls.handshake(tcp, addr)).await {
                Err(_) => return Err("TLS handshake failed: timed out".into()),
                Ok(r) => r?,
            },
        };
        let (hello, count) = self.handshake();
        if count == 0 {
            return Ok(stream);
        }
        let exchange = async {
            stream.write_all(&hello).await.map_err(|e| e.to_string())?;
            stream.flush().await.map_err(|e| e.to_string())?;
            read_replies(&mut stream, count).await
        };
        let replies = match tokio::time::timeout(limit, exchange).await {
            Err(_) => return Err("handshake timed out".into()),
            // A refused client certificate shows up here, on the first read.
            Ok(Err(e)) => {
                let alert = self.settings.tls.as_ref().and_then(|_| describe_alert(&e));
                return Err(alert.unwrap_or_else(|| format!("handshake failed: {e}")));
            }
            Ok(Ok(r)) => r,
        };
        for reply in replies {
            if reply.first() == Some(&b'-') {
                let text = String::from_utf8_lossy(&reply[1..]).trim_end().to_string();
                return Err(describe_handshake_error(&text));
            }
        }
        Ok(stream)
    }

    /// The requests sent on every new connection, and how many replies they produce.
    fn handshake(&self) -> (BytesMut, usize) {
        let mut out = BytesMut::new();
        let mut count = 0;
        if let Some(pw) = &self.settings.password {
            match &self.settings.user {
                Some(user) => encode_request(&mut out, &[b"AUTH", user.as_bytes(), pw.as_bytes()]),
                None => encode_request(&mut out, &[b"AUTH", pw.as_bytes()]),
            }
            count += 1;
        }
        if self.key.resp3 {
            encode_request(&mut out, &[b"HELLO", b"3"]);
            count += 1;
        }
        if self.key.db != 0 {
            let db = self.key.db.to_string();
            encode_request(&mut out, &[b"SELECT", db.as_bytes()]);
            count += 1;
        }
        if count == 0 {
            // A PING proves the server needs no password we lack, so a backend NOAUTH
            // never reaches a client as if it were its own error.
            encode_request(&mut out, &[b"PING"]);
            count += 1;
        }
        (out, count)
    }

    async fn write_loop<W: AsyncWrite + Unpin>(self: Rc<Self>, mut writer: W, generation: u64) {
        let mut batch = BytesMut::new();
        loop {
            {
                let mut st = self.state.borrow_mut();
                if st.generation != generation {
                    return;
                }
                if !st.out.is_empty() {
                    std::mem::swap(&mut batch, &mut st.out);
                    st.writing = st.unsent;
                    st.write_started = Instant::now();
                    st.unsent = 0;
                }
            }
            if batch.is_empty() {
                self.wake_writer.notified().await;
                continue;
            }
            let written = match writer.write_all(&batch).await {
                Ok(()) => writer.flush().await,
                Err(e) => Err(e),
            };
            if let Err(e) = written {
                tracing::debug!(server = %self.key.addr, error = %e, "write failed");
                // The reader sees the broken connection and fails the requests.
                return;
            }
            self.mark_written();
            batch.clear();
        }
    }

    /// The batch just written: its requests still waiting are timed from now.
    fn mark_written(&self) {
        let mut st = self.state.borrow_mut();
        let written = st.waiting.len() - st.unsent;
        let n = st.writing.min(written);
        let now = Instant::now();
        for w in st.waiting.range_mut(written - n..written) {
            w.sent = now;
        }
        st.writing = 0;
    }

    /// When the oldest request on this connection is overdue. A request whose bytes are
    /// still being written (a large value) is given at least [`WRITE_GRACE`] for that.
    fn deadline(&self, timeout: Duration) -> Option<Instant> {
        let st = self.state.borrow();
        let front = st.waiting.front()?;
        let written = st.waiting.len() - st.unsent;
        if st.writing > 0 && written > 0 && written <= st.writing {
            return Some(st.write_started + timeout.max(WRITE_GRACE));
        }
        Some(front.sent + timeout)
    }

    async fn read_loop<R: AsyncRead + Unpin>(
        &self,
        reader: &mut R,
        generation: u64,
    ) -> Result<(), String> {
        let mut buf = BytesMut::with_capacity(READ_CHUNK);
        let mut scanner = ReplyScanner::new();
        let timeout = if self.dedicated {
            Duration::ZERO
        } else {
            self.settings.server_timeout
        };
        let sleep = tokio::time::sleep(Duration::from_secs(3600));
        tokio::pin!(sleep);
        loop {
            if buf.capacity() - buf.len() < 512 {
                buf.reserve(READ_CHUNK);
            }
            let deadline = if timeout.is_zero() {
                None
            } else {
                self.deadline(timeout)
            };
            if deadline.is_some_and(|at| at <= Instant::now()) {
                return Err("timed out".into());
            }
            let n = match deadline {
                None if timeout.is_zero() => reader.read_buf(&mut buf).await,
                None => {
                    // Nothing to wait for; a request queued meanwhile brings a deadline.
                    tokio::select! {
                        r = reader.read_buf(&mut buf) => r,
                        _ = self.wake_reader.notified() => continue,
                    }
                }
                Some(at) => {
                    sleep.as_mut().reset(at);
                    tokio::select! {
                        r = reader.read_buf(&mut buf) => r,
                        // Look again: the request may have been written meanwhile.
                        _ = &mut sleep => continue,
                    }
                }
            };
            match n {
                Ok(0) => return Err("closed the connection".into()),
                Err(e) => return Err(format!("connection error: {e}")),
                Ok(_) => {}
            }
            let _clock = crate::metrics::BatchClock::start();
            // Clients whose replies this read completed are written when it is handed out.
            let _batch = crate::session::DeliveryBatch::start();
            loop {
                let len = match scanner.scan(&buf) {
                    Ok(Some(len)) => len,
                    Ok(None) => break,
                    Err(e) => return Err(e.to_string()),
                };
                let frame = buf.split_to(len).freeze();
                if !self.deliver(frame, generation)? {
                    return Ok(());
                }
            }
            if let Some(need) = bulk_remaining(&buf) {
                buf.reserve(need);
            }
        }
    }

    /// Hands one reply to the oldest waiter (or the passthrough client). False when the
    /// connection is no longer this link's current one.
    fn deliver(&self, frame: Bytes, generation: u64) -> Result<bool, String> {
        let waiter = {
            let mut st = self.state.borrow_mut();
            if st.generation != generation {
                return Ok(false);
            }
            if let Some(client) = &st.passthrough {
                let client = client.clone();
                drop(st);
                client.push_unsolicited(frame);
                return Ok(true);
            }
            let written = st.waiting.len() - st.unsent;
            if written == 0 {
                tracing::warn!(server = %self.key.addr, "reply with no request waiting; dropping the connection");
                return Err("sent a reply nobody asked for".into());
            }
            st.waiting.pop_front()
        };
        self.health.record_success(&self.key.addr);
        if let Some(mut w) = waiter {
            if !self.dedicated {
                self.health.stats.observe(w.sent.into_std());
            }
            if is_retryable_refusal(&frame) {
                if let Some(retry) = w.retry.take() {
                    self.redirect.push(retry, w, self.key.addr.clone(), frame);
                    return Ok(true);
                }
            }
            w.client.deliver(w.seq, w.part, frame);
        }
        Ok(true)
    }

    /// Fails the requests written on this connection (all of them when `all`), and
    /// reconnects at once for requests that were never written.
    fn fail_connection(self: &Rc<Self>, generation: u64, reason: &str, all: bool) {
        let (failed, retry) = {
            let mut st = self.state.borrow_mut();
            if st.generation != generation || st.status == Status::Closed {
                return;
            }
            let written = if all {
                st.waiting.len()
            } else {
                st.waiting.len() - st.unsent
            };
            let failed: Vec<Waiter> = st.waiting.drain(..written).collect();
            if all {
                st.out.clear();
                st.unsent = 0;
            }
            // The rest move to the next connection: their timeout starts again there.
            let now = Instant::now();
            for w in st.waiting.iter_mut() {
                w.sent = now;
            }
            st.passthrough = None;
            st.status = Status::Idle;
            st.generation += 1;
            (failed, !st.waiting.is_empty())
        };
        let expected = failed.is_empty() && reason == "closed the connection";
        if !expected {
            if self.health.record_failure(&self.settings, reason) {
                tracing::warn!(server = %self.key.addr, reason, "server marked down");
            } else if self.health.is_first_failure() && !is_handshake_refusal(reason) {
                // Said at the first failure, not only once marked down: with little traffic
                // `server_failure_limit` failures can take long, and until then clients
                // get errors the log would not explain. (A refused handshake has its own
                // error line.)
                tracing::warn!(
                    server = %self.key.addr, reason,
                    limit = self.settings.server_failure_limit,
                    "backend connection failed; `limit` failures in a row take the server out of use"
                );
            } else {
                tracing::debug!(server = %self.key.addr, reason, "backend connection failed");
            }
        }
        self.health.stats.add_errors(failed.len());
        let text = self.error_text(reason);
        for w in failed {
            fail_one(w, &text);
        }
        if retry {
            self.start_connection();
        }
    }
}

fn fail_one(w: Waiter, text: &Bytes) {
    w.client.deliver(w.seq, w.part, text.clone());
}

/// Refusals seen once, so a wrong password is logged once per server, not per request.
static REFUSALS_LOGGED: parking_lot::Mutex<Option<std::collections::HashSet<String>>> =
    parking_lot::Mutex::new(None);

/// True for the reasons [`describe_handshake_error`] gives.
fn is_handshake_refusal(reason: &str) -> bool {
    reason.starts_with("requires a password")
        || reason.starts_with("rejected the configured password")
        || reason.starts_with("has no password set")
        || reason.starts_with("refused the connection handshake")
        || reason.starts_with("TLS handshake failed")
}

fn log_refusal_once(addr: &str, reason: &str) {
    let key = format!("{addr} {reason}");
    let first = REFUSALS_LOGGED
        .lock()
        .get_or_insert_with(Default::default)
        .insert(key);
    if first {
        tracing::error!(server = %addr, reason, "backend refused the connection handshake; requests to it fail until this is fixed");
    }
}

/// Turns a backend's handshake error into what the operator and client should read.
fn describe_handshake_error(text: &str) -> String {
    if text.starts_with("NOAUTH") {
        "requires a password: set `password` in the pool config".into()
    } else if text.starts_with("WRONGPASS") || text.contains("invalid password") {
        "rejected the configured password (check `password`/`user`)".into()
    } else if text.contains("without any password configured") {
        "has no password set but one is configured: remove `password`".into()
    } else {
        format!("refused the connection handshake: {text}")
    }
}

/// When the buffer starts with (or is inside) a large bulk reply, how many more bytes
/// it needs; used to grow the buffer once instead of doubling repeatedly.
fn bulk_remaining(buf: &[u8]) -> Option<usize> {
    if buf.first() != Some(&b'$') {
        return None;
    }
    let cr = crate::protocol::memchr(b'\r', &buf[..buf.len().min(24)])?;
    let n = crate::protocol::parse_i64(&buf[1..cr])?;
    let total = cr + 2 + usize::try_from(n).ok()? + 2;
    (total > buf.len() + READ_CHUNK).then(|| total - buf.len())
}

/// Reads `count` complete replies from a fresh connection (handshake and Sentinel use).
pub async fn read_replies<S: AsyncRead + Unpin>(
    stream: &mut S,
    count: usize,
) -> Result<Vec<Bytes>, String> {
    let mut buf = BytesMut::with_capacity(4096);
    let mut scanner = ReplyScanner::new();
    let mut out = Vec::with_capacity(count);
    while out.len() < count {
        match scanner.scan(&buf) {
            Ok(Some(len)) => {
                out.push(buf.split_to(len).freeze());
                continue;
            }
            Ok(None) => {}
            Err(e) => return Err(e.to_string()),
        }
        if buf.len() > 64 * 1024 * 1024 {
            return Err("reply too large".into());
        }
        let n = stream.read_buf(&mut buf).await.map_err(|e| e.to_string())?;
        if n == 0 {
            return Err("connection closed".into());
        }
    }
    Ok(out)
}

/// A worker's shared links and server health, keyed by server × database × protocol.
pub struct LinkPool {
    settings: Rc<LinkSettings>,
    redirect: Rc<crate::hold::HoldQueue>,
    links: RefCell<HashMap<LinkKey, Rc<Link>>>,
    health: RefCell<HashMap<ServerAddr, Rc<ServerHealth>>>,
    marked_down: Rc<Cell<usize>>,
    stats: Option<std::sync::Arc<crate::metrics::WorkerStats>>,
}

impl LinkPool {
    pub fn new(settings: LinkSettings, redirect: Rc<crate::hold::HoldQueue>) -> LinkPool {
        LinkPool {
            settings: Rc::new(settings),
            redirect,
            links: RefCell::new(HashMap::new()),
            health: RefCell::new(HashMap::new()),
            marked_down: Rc::new(Cell::new(0)),
            stats: None,
        }
    }

    /// Per-server counters go to the worker's `stats`.
    pub fn with_stats(mut self, stats: std::sync::Arc<crate::metrics::WorkerStats>) -> LinkPool {
        self.stats = Some(stats);
        self
    }

    pub fn settings(&self) -> &LinkSettings {
        &self.settings
    }

    /// The shared link for a server, database and protocol, made on first use.
    pub fn shared(&self, addr: &ServerAddr, db: u32, resp3: bool) -> Rc<Link> {
        let key = LinkKey {
            addr: addr.clone(),
            db,
            resp3,
        };
        if let Some(link) = self.links.borrow().get(&key) {
            return link.clone();
        }
        let link = Link::new(
            key.clone(),
            self.settings.clone(),
            self.health_of(addr),
            self.redirect.clone(),
            false,
        );
        self.links.borrow_mut().insert(key, link.clone());
        link
    }

    /// A new link owned by one client (transactions, blocking commands, subscriptions).
    pub fn dedicated(&self, addr: &ServerAddr, db: u32, resp3: bool) -> Rc<Link> {
        let key = LinkKey {
            addr: addr.clone(),
            db,
            resp3,
        };
        Link::new(
            key,
            self.settings.clone(),
            self.health_of(addr),
            self.redirect.clone(),
            true,
        )
    }

    pub fn health_of(&self, addr: &ServerAddr) -> Rc<ServerHealth> {
        self.health
            .borrow_mut()
            .entry(addr.clone())
            .or_insert_with(|| {
                let stats = self.stats.as_ref().map(|w| w.server(addr));
                Rc::new(ServerHealth {
                    marked_down: self.marked_down.clone(),
                    stats: stats.unwrap_or_default(),
                    ..ServerHealth::default()
                })
            })
            .clone()
    }

    /// True when this worker marked the server down.
    pub fn is_down(&self, addr: &ServerAddr) -> bool {
        if self.marked_down.get() == 0 {
            return false;
        }
        self.health.borrow().get(addr).is_some_and(|h| h.is_down())
    }

    /// Why this worker marked the server down (`None` when it is not down).
    pub fn down_reason(&self, addr: &ServerAddr) -> Option<String> {
        self.health.borrow().get(addr)?.down_reason()
    }

    /// Drops links to servers that are no longer in the topology.
    pub fn retain_servers(&self, keep: impl Fn(&ServerAddr) -> bool) {
        let mut links = self.links.borrow_mut();
        links.retain(|k, link| {
            let keep = keep(&k.addr);
            if !keep {
                link.close();
            }
            keep
        });
        self.health.borrow_mut().retain(|a, _| keep(a));
    }
}
