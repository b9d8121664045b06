//! One client connection: parse its requests, check its rights, route each request, and
//! write the replies back strictly in request order.
//!
//! A session is two tasks on its worker: the reader (this module's [`run`]) parses and
//! dispatches, the writer drains the reply queue ([`ClientShared`]) that backend links
//! fill. For plain TCP clients the links write ready replies to the socket themselves at
//! the end of each backend read ([`DeliveryBatch`]); the writer takes over only what the
//! socket did not accept at once. Requests go out as the bytes the client sent; the reply queue gives every request
//! exactly one slot, so a reply can only be written where its request stood.

mod fanout;
mod local;
mod merge;
mod queue;

pub use merge::{Merge, MergeKind};
pub use queue::{ClientShared, DeliveryBatch, Drained};

use crate::auth::Rights;
use crate::backend::{Link, Retry, Waiter};
use crate::command::{self, flags, ArgList, CommandClass, CommandSpec};
use crate::hold::HeldRequest;
use crate::limits::Sniff;
use crate::protocol::{put_error, ArgSpan, Parsed, RequestParser};
use crate::topology::ServerAddr;
use crate::worker::WorkerCtx;
use bytes::{Buf, Bytes, BytesMut};
use std::rc::Rc;
use std::sync::Arc;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;

/// Most requests one client may have queued before the proxy stops reading from it.
const MAX_QUEUED: usize = 16 * 1024;
/// Read buffer growth step (the buffer starts small and doubles up to this step, so
/// hundreds of idle or small-request clients cost little memory).
const READ_CHUNK: usize = 16 * 1024;
/// First read buffer size.
const READ_START: usize = 512;
/// Most bytes of replies gathered into one write.
const WRITE_BATCH: usize = 256 * 1024;
/// Replies smaller than this are copied into one buffer; larger ones are written as they are.
const COALESCE_MAX: usize = 8 * 1024;

/// The arguments of one parsed request.
pub struct Args<'a> {
    frame: &'a Bytes,
    spans: &'a [ArgSpan],
}

impl ArgList for Args<'_> {
    fn len(&self) -> usize {
        self.spans.len()
    }
    fn arg(&self, index: usize) -> &[u8] {
        let s = self.spans[index];
        &self.frame[s.start as usize..s.end as usize]
    }
}

/// A transaction in progress (MULTI seen).
struct Transaction {
    /// The group its keys belong to, once a keyed command fixed it.
    group: Option<usize>,
    /// Commands queued before the group was known: frames and their reply slots.
    buffered: Vec<(Bytes, u64)>,
    /// A command was refused: EXEC discards.
    aborted: bool,
}

/// Per-client state the dispatcher reads and changes.
pub(crate) struct Client {
    pub ctx: Rc<WorkerCtx>,
    pub shared: Rc<ClientShared>,
    pub id: u64,
    pub peer: String,
    pub rights: Option<Arc<Rights>>,
    pub db: u32,
    pub resp3: bool,
    pub name: Option<Bytes>,
    pub lib_name: Option<Bytes>,
    pub lib_ver: Option<Bytes>,
    pub created: Instant,
    /// A dedicated link (WATCH, MULTI, blocking commands) and its group.
    private: Option<(Rc<Link>, usize)>,
    /// Watched keys' group while WATCH is active outside a transaction.
    watching: bool,
    multi: Option<Transaction>,
    /// Subscribed: every command goes to this link and every frame it reads comes back.
    pubsub: Option<Rc<Link>>,
    /// The last link a request went to was dedicated (ordering across links).
    last_dedicated: bool,
    /// SELECT, HELLO or RESET changed the connection the next request goes to: it waits
    /// for the earlier ones, which run on other connections.
    switched: bool,
    keys: Vec<usize>,
    scratch: BytesMut,
    /// The last shared link used and its server (saves a map lookup per request).
    link_cache: Option<(ServerAddr, Rc<Link>)>,
    /// When the current batch of requests was read (one clock read per batch).
    now: Instant,
}

/// Serves one client until it disconnects or is closed.
pub async fn run(ctx: Rc<WorkerCtx>, stream: TcpStream, peer: String) {
    let _ = stream.set_nodelay(true);
    let (reader, writer) = stream.into_split();
    // Shared: backend links write replies to it directly (see `DeliveryBatch`).
    let writer = Rc::new(writer);
    serve(ctx, reader, SharedWrite(writer.clone()), Some(writer), peer).await;
}

/// Serves one TLS client: the handshake (bounded in time), then as [`run`].
pub async fn run_tls(
    ctx: Rc<WorkerCtx>,
    acceptor: tokio_rustls::TlsAcceptor,
    stream: TcpStream,
    peer: String,
) {
    let _ = stream.set_nodelay(true);
    let handshake = tokio::time::timeout(crate::tls::HANDSHAKE_TIMEOUT, acceptor.accept(stream));
    match handshake.await {
        Ok(Ok(tls)) => {
            let (reader, writer) = tokio::io::split(tls);
            serve(ctx, reader, writer, None, peer).await;
        }
        Ok(Err(e)) => tracing::debug!(client = %peer, error = %e, "TLS handshake failed"),
        Err(_) => tracing::debug!(client = %peer, "TLS handshake timed out"),
    }
}

/// The session over any byte stream (plain TCP halves or TLS halves). `direct` is the
/// socket `writer` writes to, when links may write to it themselves.
async fn serve<R, W>(
    ctx: Rc<WorkerCtx>,
    mut reader: R,
    writer: W,
    direct: Option<Rc<tokio::net::tcp::OwnedWriteHalf>>,
    peer: String,
) where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin + 'static,
{
    let shared = Rc::new(ClientShared::with_stats(
        ctx.proxy.live.output_limit_normal(),
        ctx.stats.clone(),
    ));
    if let Some(socket) = direct {
        shared.set_direct(socket);
    }
    ctx.register(&shared);
    let writer_task = tokio::task::spawn_local(write_loop(shared.clone(), writer));
    let mut client = Client {
        id: ctx.proxy.next_client_id(),
        rights: ctx.proxy.auth.load().anonymous(),
        ctx: ctx.clone(),
        shared: shared.clone(),
        peer,
        db: 0,
        resp3: false,
        name: None,
        lib_name: None,
        lib_ver: None,
        created: Instant::now(),
        private: None,
        watching: false,
        multi: None,
        pubsub: None,
        last_dedicated: false,
        switched: false,
        keys: Vec::new(),
        scratch: BytesMut::new(),
        link_cache: None,
        now: Instant::now(),
    };
    let mut parser = RequestParser::new(ctx.proxy.config.proto_max_bulk_len);
    let mut rbuf = BytesMut::new();
    let query_limit = ctx.proxy.config.client_query_buffer_limit;
    let mut sniffing = true;
    // Grows while reads fill the buffer (pipelining clients), so a busy client gets big
    // buffers (few allocations) and a quiet one small ones (little memory).
    let mut read_size = READ_START;
    'read: loop {
        shared.wait_room(MAX_QUEUED).await;
        if shared.is_closed() {
            break;
        }
        if rbuf.capacity() - rbuf.len() < (read_size / 16).max(READ_START / 2) {
            rbuf.reserve(read_size);
        }
        let room = rbuf.capacity() - rbuf.len();
        let idle = ctx.proxy.live.client_timeout();
        let read = tokio::select! {
            r = read_some(&mut reader, &mut rbuf, idle) => r,
            _ = shared.closed() => break,
        };
        match read {
            Some(Ok(0)) | Some(Err(_)) => {
                shared.close_after();
                break;
            }
            Some(Ok(n)) => {
                client.now = Instant::now();
                shared.count_in(n, client.now.into_std());
                if n == room && read_size < READ_CHUNK {
                    read_size *= 2;
                }
            }
            None => {
                if shared.pending() == 0 && client.pubsub.is_none() {
                    tracing::debug!(client = %client.peer, "idle client closed");
                    shared.close_after();
                    break;
                }
                continue;
            }
        }
        if sniffing {
            match crate::limits::sniff(&rbuf) {
                Sniff::Redis => sniffing = false,
                Sniff::NeedMore => continue,
                foreign => {
                    client.refuse_foreign(foreign == Sniff::Http);
                    break;
                }
            }
        }
        let mut depth = 0;
        loop {
            depth += 1;
            match parser.parse(&rbuf) {
                Ok(Parsed::Incomplete { need }) => {
                    shared.count_pipeline(depth - 1);
                    if rbuf.len() + need > query_limit {
                        client.protocol_error("query buffer limit reached");
                        break 'read;
                    }
                    if need > READ_CHUNK {
                        rbuf.reserve(need);
                    }
                    break;
                }
                Ok(Parsed::Skip { len }) => rbuf.advance(len),
                Ok(Parsed::Multibulk { len }) => {
                    // Frozen, not copied: a write keeps its bytes (shared with the read
                    // buffer) until its reply, so it can be re-sent after a failover.
                    let frame = rbuf.split_to(len).freeze();
                    if !client.dispatch(&frame, parser.spans()).await {
                        break 'read;
                    }
                }
                Ok(Parsed::Inline { len, encoded }) => {
                    rbuf.advance(len);
                    if !client.dispatch(&encoded.freeze(), parser.spans()).await {
                        break 'read;
                    }
                }
                Err(e) => {
                    client.protocol_error(&e.to_string());
                    break 'read;
                }
            }
        }
    }
    client.finish();
    if shared.over_limit() {
        ctx.proxy
            .stats
            .output_limit_closed
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }
    // The writer ends after writing what is queued up to the close marker; a client that
    // stopped reading is cut off by the output limit.
    let _ = writer_task.await;
}

/// One read from the client; `None` when `idle` (non-zero) passed with nothing read.
async fn read_some<R: AsyncRead + Unpin>(
    reader: &mut R,
    rbuf: &mut BytesMut,
    idle: std::time::Duration,
) -> Option<std::io::Result<usize>> {
    if idle.is_zero() {
        return Some(reader.read_buf(rbuf).await);
    }
    tokio::time::timeout(idle, reader.read_buf(rbuf)).await.ok()
}

async fn write_loop<W: AsyncWrite + Unpin>(shared: Rc<ClientShared>, mut writer: W) {
    let mut batch: Vec<Bytes> = Vec::new();
    let mut small = BytesMut::new();
    loop {
        let outcome = shared.drain_ready(&mut batch, WRITE_BATCH);
        if !batch.is_empty() {
            shared.set_writer_busy(true);
            let written = write_batch(&mut writer, &mut batch, &mut small).await;
            shared.set_writer_busy(false);
            if written.is_err() {
                shared.close();
                return;
            }
        }
        match outcome {
            Drained::Write => continue,
            Drained::Close => break,
            Drained::Wait => {
                if shared.is_closed() {
                    break;
                }
                shared.writer_wait().await;
            }
        }
    }
    let _ = writer.shutdown().await;
    shared.close();
}

/// Writes replies with as few system calls as possible: small replies are copied into one
/// buffer, large ones are written from where they are.
async fn write_batch<W: AsyncWrite + Unpin>(
    writer: &mut W,
    batch: &mut Vec<Bytes>,
    small: &mut BytesMut,
) -> std::io::Result<()> {
    for reply in batch.drain(..) {
        if reply.len() <= COALESCE_MAX {
            small.extend_from_slice(&reply);
            continue;
        }
        if !small.is_empty() {
            writer.write_all(small).await?;
            small.clear();
        }
        writer.write_all(&reply).await?;
    }
    if !small.is_empty() {
        writer.write_all(small).await?;
        small.clear();
    }
    // A no-op on TCP; TLS sends the records it buffered.
    writer.flush().await
}

/// The writer task's handle on a plain TCP client socket that backend links also write
/// to (only ever one of them at a time: see [`ClientShared`]).
struct SharedWrite(Rc<tokio::net::tcp::OwnedWriteHalf>);

impl AsyncWrite for SharedWrite {
    fn poll_write(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        let socket: &TcpStream = self.0.as_ref().as_ref();
        loop {
            std::task::ready!(socket.poll_write_ready(cx))?;
            match socket.try_write(buf) {
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
                r => return std::task::Poll::Ready(r),
            }
        }
    }

    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        let socket: &TcpStream = self.0.as_ref().as_ref();
        std::task::Poll::Ready(socket2::SockRef::from(socket).shutdown(std::net::Shutdown::Write))
    }
}

/// Redis' text for an unknown command.
fn unknown_command(args: &Args<'_>) -> String {
    let name = String::from_utf8_lossy(args.arg(0));
    let mut text = format!(
        "ERR unknown command '{}', with args beginning with: ",
        truncate(&name)
    );
    for i in 1..args.len().min(16) {
        text.push_str(&format!(
            "'{}' ",
            truncate(&String::from_utf8_lossy(args.arg(i)))
        ));
    }
    text
}

fn truncate(s: &str) -> String {
    s.chars().take(128).collect()
}

/// The user-facing name of a command spec (`client|setname` → `client|setname`).
fn display_name(spec: &CommandSpec) -> &'static str {
    spec.name
}

impl Client {
    /// Queues an error reply.
    pub(crate) fn error(&mut self, text: &str) {
        self.scratch.clear();
        put_error(&mut self.scratch, text);
        let reply = self.scratch.split().freeze();
        self.shared.ready(reply);
    }

    /// Queues a reply the proxy built in `scratch`.
    pub(crate) fn reply_scratch(&mut self) {
        let reply = self.scratch.split().freeze();
        self.shared.ready(reply);
    }

    fn protocol_error(&mut self, what: &str) {
        tracing::debug!(client = %self.peer, what, "protocol error");
        self.error(&format!("ERR Protocol error: {what}"));
        self.shared.close_after();
    }

    /// HTTP or TLS on the Redis port: an HTTP client gets one error line, a TLS client
    /// nothing; both are closed before anything reaches a backend.
    fn refuse_foreign(&mut self, http: bool) {
        let proxy = &self.ctx.proxy;
        let n = proxy
            .stats
            .foreign_refused
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let what = if http { "HTTP" } else { "TLS" };
        if n.is_power_of_two() || n == 0 {
            tracing::warn!(client = %self.peer, what, refused = n + 1, "foreign protocol on the Redis port: connection closed");
        }
        if http {
            self.error(crate::limits::SECURITY_ATTACK);
            self.shared.close_after();
        } else {
            self.shared.close();
        }
    }

    fn finish(&mut self) {
        if let Some(link) = self.pubsub.take() {
            link.close();
        }
        if let Some((link, _)) = self.private.take() {
            link.close();
        }
    }

    /// Handles one request. False when the connection must close after what is queued.
    async fn dispatch(&mut self, frame: &Bytes, spans: &[ArgSpan]) -> bool {
        let args = Args { frame, spans };
        if args.is_empty() {
            return true;
        }
        let spec = command::lookup_request(&args);
        self.shared.begin(crate::metrics::command_slot(spec));
        let Some(spec) = spec else {
            if crate::limits::is_attack_command(args.arg(0)) {
                self.refuse_foreign(true);
                return false;
            }
            let text = unknown_command(&args);
            self.refuse_in_multi();
            self.error(&text);
            return true;
        };
        if !spec.arity_ok(args.len()) || !pairs_ok(spec, args.len()) {
            self.refuse_in_multi();
            let name = String::from_utf8_lossy(args.arg(0)).to_lowercase();
            self.error(&format!(
                "ERR wrong number of arguments for '{name}' command"
            ));
            return true;
        }
        // Taken out and put back rather than cloned: no shared reference count per request.
        let Some(rights) = self.rights.take() else {
            if !matches!(spec.name, "auth" | "hello" | "quit" | "reset") {
                self.error("NOAUTH Authentication required.");
                return true;
            }
            return Box::pin(self.local(spec, &args)).await;
        };
        let allowed = self.check_rights(&rights, spec, &args);
        self.rights = Some(rights);
        if let Err(text) = allowed {
            self.refuse_in_multi();
            self.error(&text);
            return true;
        }
        if self.pubsub.is_some() {
            return self.in_pubsub(spec, &args);
        }
        if self.multi.is_some() {
            return Box::pin(self.in_multi(spec, &args)).await;
        }
        if spec.name == "config|set" && is_reload_request(&args) {
            self.reload_config();
            return true;
        }
        match spec.class {
            CommandClass::Local => return Box::pin(self.local(spec, &args)).await,
            CommandClass::Admin if crate::admin::is_proxy_command(spec.name) => {
                self.proxy_admin(spec, &args);
                return true;
            }
            CommandClass::Unsupported => {
                self.error(&format!(
                    "ERR redmux: '{}' is not supported through the proxy",
                    display_name(spec)
                ));
                return true;
            }
            _ => {}
        }
        if spec.has(flags::TRANSACTION) {
            return Box::pin(self.transaction_command(spec, &args)).await;
        }
        if spec.has(flags::PUBSUB) && is_subscribe(spec) {
            return Box::pin(self.subscribe(&args)).await;
        }
        self.forward(spec, &args).await;
        true
    }

    /// Mode and key-prefix checks.
    fn check_rights(
        &mut self,
        rights: &Rights,
        spec: &CommandSpec,
        args: &Args<'_>,
    ) -> Result<(), String> {
        if !rights.allows_class(spec.class) {
            return Err(format!(
                "NOPERM this user has no permissions to run the '{}' command",
                display_name(spec)
            ));
        }
        if rights.read_key_prefix.is_empty() && rights.write_key_prefix.is_empty() {
            return Ok(());
        }
        self.keys.clear();
        command::key_indices(spec, args, &mut self.keys);
        let write_cmd = spec.class == CommandClass::Write || spec.class == CommandClass::Admin;
        for &i in &self.keys {
            let key_write = write_cmd && key_is_written(spec, i, args);
            if !rights.allows_key(args.arg(i), key_write) {
                return Err(
                    "NOPERM this user has no permissions to access one of the keys used as arguments"
                        .into(),
                );
            }
        }
        Ok(())
    }

    /// Inside MULTI a refused command makes EXEC fail, as Redis does.
    fn refuse_in_multi(&mut self) {
        if let Some(tx) = &mut self.multi {
            tx.aborted = true;
        }
    }

    /// The group a request's keys live in: `Ok(None)` for a keyless command, an error
    /// text when the keys span several groups.
    fn group_of_keys(
        &mut self,
        spec: &CommandSpec,
        args: &Args<'_>,
    ) -> Result<Option<usize>, String> {
        let sharding = &self.ctx.proxy.sharding;
        if sharding.group_count() == 1 {
            return Ok(if spec.keys.is_empty() { None } else { Some(0) });
        }
        self.keys.clear();
        command::key_indices(spec, args, &mut self.keys);
        let mut group = None;
        for &i in &self.keys {
            let g = sharding.group_of(args.arg(i));
            match group {
                None => group = Some(g),
                Some(prev) if prev != g => {
                    return Err(format!(
                        "CROSSSLOT redmux: the keys of '{}' are in different groups (use a {{hash tag}})",
                        display_name(spec)
                    ))
                }
                _ => {}
            }
        }
        Ok(group)
    }

    /// Picks the server for a request to `group`, and whether the group's writes are
    /// held for a failover (since when), in one look at the topology snapshot.
    fn route(
        &mut self,
        group: usize,
        write: bool,
    ) -> Result<(ServerAddr, Option<Instant>), String> {
        let ctx = self.ctx.clone();
        let mut topo = ctx.topology.borrow_mut();
        let topo = topo.get();
        let Some(g) = topo.groups.get(group) else {
            return Err("ERR redmux: no such group".into());
        };
        let Some(master) = &g.master else {
            return Err(format!(
                "ERR redmux: no master known for group '{}' yet",
                g.name
            ));
        };
        let held = g
            .hold
            .as_ref()
            .map(|h| Instant::from_std(h.since))
            .filter(|since| since.elapsed() < crate::hold::HOLD_LIMIT);
        if write {
            // Writes of a group in failover wait even if the old master is marked down.
            if held.is_some() {
                return Ok((master.clone(), held));
            }
            if ctx.links.is_down(master) {
                let why = ctx.links.down_reason(master).unwrap_or_default();
                return Err(format!(
                    "ERR redmux: master {master} of group '{}' is down: {why}",
                    g.name
                ));
            }
            return Ok((master.clone(), held));
        }
        let turn = ctx.next_turn();
        let prio = ctx.proxy.priorities();
        let addr = crate::routing::pick_reader(g, &prio, turn, |a| ctx.links.is_down(a));
        match addr {
            Some(a) => Ok((a.clone(), held)),
            None => Err(format!(
                "ERR redmux: no server available for group '{}'",
                g.name
            )),
        }
    }

    /// Picks the server for a request to `group`.
    fn server_for(&mut self, group: usize, write: bool) -> Result<ServerAddr, String> {
        self.route(group, write).map(|(addr, _)| addr)
    }

    /// The shared link to `addr` for this client's database and protocol; the last one
    /// used is cached, so the common case costs no map lookup.
    fn shared_link(&mut self, addr: &ServerAddr) -> Rc<Link> {
        if let Some((cached, link)) = &self.link_cache {
            if Arc::ptr_eq(cached, addr) && link.key.db == self.db && link.key.resp3 == self.resp3 {
                return link.clone();
            }
        }
        let link = self.ctx.links.shared(addr, self.db, self.resp3);
        self.link_cache = Some((addr.clone(), link.clone()));
        link
    }

    /// Before a request goes to a dedicated link (`dedicated`) or a shared one: when the
    /// last one went to the other kind, or SELECT/HELLO/RESET changed the connection,
    /// waits until every earlier request has its reply, so requests running on different
    /// connections still run in the client's order. Dedicated after dedicated, and shared
    /// after shared, stay pipelined.
    async fn order_after(&mut self, dedicated: bool) {
        if self.switched || self.last_dedicated != dedicated {
            self.wait_sent().await;
            // Requests sent from here are timed from now, not from the read.
            self.now = Instant::now();
        }
        self.switched = false;
        self.last_dedicated = dedicated;
    }

    /// Waits until every request sent to a backend has its reply. The commands of a
    /// transaction held back until its group is known are not waited for: they go out
    /// after this.
    async fn wait_sent(&self) {
        let held_back = self.multi.as_ref().map_or(0, |tx| tx.buffered.len());
        self.shared.wait_pending(held_back).await;
    }

    /// Waits until the dedicated link has answered what was sent on it, before it is
    /// replaced or dropped (closing it would fail those requests).
    async fn settle_dedicated(&self) {
        if self
            .private
            .as_ref()
            .is_some_and(|(link, _)| link.in_flight() > 0)
        {
            self.wait_sent().await;
        }
    }

    /// Sends a request to the server that should answer it.
    async fn forward(&mut self, spec: &CommandSpec, args: &Args<'_>) {
        if !spec.has(flags::BLOCKING) {
            // Split and broadcast commands too.
            self.order_after(false).await;
        }
        let split = self.ctx.proxy.sharding.group_count() > 1;
        if split && self.fan_out(spec, args) {
            return;
        }
        let group = match self.group_of_keys(spec, args) {
            Ok(g) => g.unwrap_or(0),
            Err(text) => {
                self.error(&text);
                return;
            }
        };
        let write = spec.class != CommandClass::Read;
        if spec.has(flags::BLOCKING) {
            match self.server_for(group, write) {
                Ok(addr) => Box::pin(self.send_dedicated(group, &addr, args.frame)).await,
                Err(text) => self.error(&text),
            }
            return;
        }
        let seq = self.shared.reserve();
        self.send_part(group, write, args.frame, seq, 0);
    }

    /// Sends one request (or one part of a split request) to the server of `group` that
    /// should answer it, on the shared link; its reply fills slot `seq`, part `part`.
    /// Writes to a group in failover wait in the hold queue instead.
    pub(crate) fn send_part(
        &mut self,
        group: usize,
        write: bool,
        frame: &Bytes,
        seq: u64,
        part: u32,
    ) {
        let (addr, held) = match self.route(group, write) {
            Ok(r) => r,
            Err(text) => {
                self.scratch.clear();
                put_error(&mut self.scratch, &text);
                let reply = self.scratch.split().freeze();
                self.shared.deliver(seq, part, reply);
                return;
            }
        };
        let mut waiter = self.waiter(seq, part);
        if write {
            // A write refused with -READONLY/-LOADING was not applied: it may be re-sent
            // to the new master (see `hold`).
            waiter.retry = Some(Retry {
                frame: frame.clone(),
                group: group as u32,
                db: self.db,
                resp3: self.resp3,
            });
        }
        // Behind a held request of this client, even after the hold ended: a request
        // must never overtake an earlier one of the same client.
        let behind = (self.shared.held() > 0).then(Instant::now);
        if let Some(since) = held.filter(|_| write).or(behind) {
            self.ctx.hold.hold(
                &self.ctx,
                HeldRequest::new(
                    frame.clone(),
                    waiter,
                    group,
                    self.db,
                    self.resp3,
                    since,
                    None,
                ),
            );
            return;
        }
        let link = self.shared_link(&addr);
        link.send(frame, waiter);
    }

    pub(crate) fn waiter(&self, seq: u64, part: u32) -> Waiter {
        Waiter {
            client: self.shared.clone(),
            seq,
            part,
            sent: self.now,
            retry: None,
        }
    }

    /// The client's dedicated link to `addr`, made (or re-made) as needed. A link being
    /// replaced first answers what was sent on it (closing it would fail those requests).
    async fn dedicated_link(&mut self, group: usize, addr: &ServerAddr) -> Rc<Link> {
        if let Some((link, g)) = &self.private {
            if *g == group
                && link.key.addr == *addr
                && link.key.db == self.db
                && link.key.resp3 == self.resp3
            {
                return link.clone();
            }
        }
        self.settle_dedicated().await;
        if let Some((old, _)) = self.private.take() {
            old.close();
        }
        let link = self.ctx.links.dedicated(addr, self.db, self.resp3);
        self.private = Some((link.clone(), group));
        link
    }

    /// Sends on the dedicated link, after every earlier request has been answered so the
    /// client's order holds across links.
    async fn send_dedicated(&mut self, group: usize, addr: &ServerAddr, frame: &[u8]) {
        self.order_after(true).await;
        let link = self.dedicated_link(group, addr).await;
        let seq = self.shared.reserve();
        link.send(frame, self.waiter(seq, 0));
    }

    /// MULTI, EXEC, DISCARD, WATCH, UNWATCH outside a transaction.
    async fn transaction_command(&mut self, spec: &CommandSpec, args: &Args<'_>) -> bool {
        match spec.name {
            "multi" => {
                self.multi = Some(Transaction {
                    group: self
                        .private
                        .as_ref()
                        .filter(|_| self.watching)
                        .map(|(_, g)| *g),
                    buffered: Vec::new(),
                    aborted: false,
                });
                if self.watching {
                    // WATCH already pinned a link: MULTI goes there now, once the
                    // requests sent since on shared links have answered (EXEC must not
                    // run before them).
                    self.order_after(true).await;
                    if let Some((link, _)) = self.private.clone() {
                        let seq = self.shared.reserve();
                        link.send(args.frame, self.waiter(seq, 0));
                    }
                } else {
                    self.scratch.clear();
                    crate::protocol::put_simple(&mut self.scratch, "OK");
                    self.reply_scratch();
                }
            }
            "exec" => self.error("ERR EXEC without MULTI"),
            "discard" => self.error("ERR DISCARD without MULTI"),
            "watch" => {
                let group = match self.group_of_keys(spec, args) {
                    Ok(g) => g.unwrap_or(0),
                    Err(text) => {
                        self.error(&text);
                        return true;
                    }
                };
                if self.watching && self.private.as_ref().is_some_and(|(_, g)| *g != group) {
                    self.error("CROSSSLOT redmux: WATCH keys must all be in one group");
                    return true;
                }
                let addr = match self.server_for(group, true) {
                    Ok(a) => a,
                    Err(text) => {
                        self.error(&text);
                        return true;
                    }
                };
                self.watching = true;
                self.send_dedicated(group, &addr, args.frame).await;
            }
            _ => {
                // UNWATCH
                if self.watching {
                    if let Some((link, _)) = self.private.clone() {
                        let seq = self.shared.reserve();
                        link.send(args.frame, self.waiter(seq, 0));
                    }
                    self.watching = false;
                } else {
                    self.scratch.clear();
                    crate::protocol::put_simple(&mut self.scratch, "OK");
                    self.reply_scratch();
                }
            }
        }
        true
    }

    /// A command between MULTI and EXEC: queued on the transaction's link.
    async fn in_multi(&mut self, spec: &CommandSpec, args: &Args<'_>) -> bool {
        match spec.name {
            "multi" => {
                self.error("ERR MULTI calls can not be nested");
                return true;
            }
            "watch" => {
                self.error("ERR WATCH inside MULTI is not allowed");
                return true;
            }
            "exec" | "discard" => return self.end_multi(spec.name == "exec", args).await,
            "quit" => return self.local(spec, args).await,
            _ => {}
        }
        let refuse = match spec.class {
            CommandClass::Unsupported => Some(format!(
                "ERR redmux: '{}' is not supported through the proxy",
                display_name(spec)
            )),
            _ if matches!(spec.name, "auth" | "hello" | "reset")
                || spec.has(flags::PUBSUB) && is_subscribe(spec) =>
            {
                Some(format!(
                    "ERR redmux: '{}' is not allowed inside MULTI",
                    display_name(spec)
                ))
            }
            _ => None,
        };
        if let Some(text) = refuse {
            self.refuse_in_multi();
            self.error(&text);
            return true;
        }
        let group = match self.group_of_keys(spec, args) {
            Ok(g) => g,
            Err(text) => {
                self.refuse_in_multi();
                self.error(&text);
                return true;
            }
        };
        let tx = self
            .multi
            .as_mut()
            .expect("in_multi is only called inside MULTI");
        if let (Some(fixed), Some(g)) = (tx.group, group) {
            if fixed != g {
                tx.aborted = true;
                self.error("CROSSSLOT redmux: a transaction's keys must all be in one group; the transaction will be discarded");
                return true;
            }
        }
        if tx.group.is_none() && group.is_some() {
            tx.group = group;
            let fixed = group.unwrap_or(0);
            if !self.start_tx_link(fixed).await {
                return true;
            }
        }
        let seq = self.shared.reserve();
        let tx = self.multi.as_mut().expect("still inside MULTI");
        if tx.group.is_none() {
            tx.buffered.push((args.frame.clone(), seq));
        } else if let Some((link, _)) = &self.private {
            link.send(args.frame, self.waiter(seq, 0));
        }
        true
    }

    /// Opens (or reuses, after WATCH) the transaction's link, sends MULTI and the
    /// commands buffered before the group was known. False when no master is known.
    async fn start_tx_link(&mut self, group: usize) -> bool {
        let watched = self.watching && self.private.is_some();
        if !watched {
            let addr = match self.server_for(group, true) {
                Ok(a) => a,
                Err(text) => {
                    self.refuse_in_multi();
                    self.error(&text);
                    return false;
                }
            };
            self.order_after(true).await;
            let link = self.dedicated_link(group, &addr).await;
            // The MULTI's +OK was already given by the proxy.
            let seq = self.shared.reserve_discard();
            link.send(b"*1\r\n$5\r\nMULTI\r\n", self.waiter(seq, 0));
        }
        let buffered = std::mem::take(&mut self.multi.as_mut().expect("inside MULTI").buffered);
        if let Some((link, _)) = self.private.clone() {
            for (frame, seq) in buffered {
                link.send(&frame, self.waiter(seq, 0));
            }
        }
        true
    }

    async fn end_multi(&mut self, exec: bool, args: &Args<'_>) -> bool {
        let Some(tx) = self.multi.take() else {
            return true;
        };
        self.watching = false;
        let started = tx.group.is_some() || self.private.is_some() && !tx.buffered.is_empty();
        if tx.aborted {
            if tx.group.is_some() {
                if let Some((link, _)) = self.private.clone() {
                    let seq = self.shared.reserve_discard();
                    link.send(b"*1\r\n$7\r\nDISCARD\r\n", self.waiter(seq, 0));
                }
            }
            self.discard_buffered(tx.buffered);
            if exec {
                self.error("EXECABORT Transaction discarded because of previous errors.");
            } else {
                self.scratch.clear();
                crate::protocol::put_simple(&mut self.scratch, "OK");
                self.reply_scratch();
            }
            return true;
        }
        if tx.group.is_none() {
            // No keyed command: run it on the first group (or the watched one).
            self.multi = Some(Transaction {
                group: Some(0),
                buffered: tx.buffered,
                aborted: false,
            });
            if !self.start_tx_link(0).await {
                self.multi = None;
                return true;
            }
            self.multi = None;
        }
        let _ = started;
        if let Some((link, _)) = self.private.clone() {
            let seq = self.shared.reserve();
            link.send(args.frame, self.waiter(seq, 0));
        }
        true
    }

    /// Fills the slots of commands that never reached a backend.
    fn discard_buffered(&mut self, buffered: Vec<(Bytes, u64)>) {
        for (_, seq) in buffered {
            self.scratch.clear();
            put_error(
                &mut self.scratch,
                "EXECABORT Transaction discarded because of previous errors.",
            );
            let reply = self.scratch.split().freeze();
            self.shared.deliver(seq, 0, reply);
        }
    }

    /// SUBSCRIBE, PSUBSCRIBE, SSUBSCRIBE: the client moves to a dedicated link whose
    /// frames all come straight back.
    async fn subscribe(&mut self, args: &Args<'_>) -> bool {
        let addr = match self.server_for(0, true) {
            Ok(a) => a,
            Err(text) => {
                self.error(&text);
                return true;
            }
        };
        self.shared.wait_idle().await;
        self.shared
            .set_output_limit(self.ctx.proxy.live.output_limit_pubsub());
        let link = self.ctx.links.dedicated(&addr, self.db, self.resp3);
        link.send_passthrough(&self.shared, args.frame);
        self.pubsub = Some(link);
        true
    }

    /// A command while subscribed goes to the subscription link; its reply comes back
    /// through the link in order with the messages.
    fn in_pubsub(&mut self, spec: &CommandSpec, args: &Args<'_>) -> bool {
        match spec.name {
            "quit" => {
                self.scratch.clear();
                crate::protocol::put_simple(&mut self.scratch, "OK");
                self.reply_scratch();
                self.shared.close_after();
                return false;
            }
            "reset" => {
                if let Some(link) = self.pubsub.take() {
                    link.close();
                }
                self.shared
                    .set_output_limit(self.ctx.proxy.live.output_limit_normal());
                return local::reset(self);
            }
            _ => {}
        }
        if self.ctx.proxy.sharding.group_count() > 1
            && !spec.keys.is_empty()
            && !spec.has(flags::PUBSUB)
        {
            self.error(
                "ERR redmux: keyed commands are not available while subscribed on a sharded pool",
            );
            return true;
        }
        if let Some(link) = &self.pubsub {
            link.send_passthrough(&self.shared, args.frame);
        }
        true
    }
}

/// Commands taking key/value pairs need an even number of arguments after the name
/// (Redis checks this inside the command; the proxy splits them, so checks first).
fn pairs_ok(spec: &CommandSpec, argc: usize) -> bool {
    !matches!(spec.name, "mset" | "msetnx") || argc % 2 == 1
}

/// `CONFIG SET redmux.reload yes`: the proxy reloads its own config.
fn is_reload_request(args: &Args<'_>) -> bool {
    args.len() == 4 && args.arg(2).eq_ignore_ascii_case(b"redmux.reload")
}

fn is_subscribe(spec: &CommandSpec) -> bool {
    matches!(spec.name, "subscribe" | "psubscribe" | "ssubscribe")
}

/// Is the key at argument `index` one the command writes (by its key specs)?
fn key_is_written(spec: &CommandSpec, index: usize, args: &Args<'_>) -> bool {
    if spec.keys.iter().all(|k| k.write) {
        return true;
    }
    if spec.keys.iter().all(|k| !k.write) {
        return false;
    }
    // Mixed specs (SORT ... STORE, LMOVE, *STORE commands): find which spec names it.
    let mut found = Vec::new();
    for ks in spec.keys {
        let one = CommandSpec {
            keys: std::slice::from_ref(ks),
            ..*spec
        };
        found.clear();
        command::key_indices(&one, args, &mut found);
        if found.contains(&index) {
            return ks.write;
        }
    }
    true
}
