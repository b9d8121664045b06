//! One client connection: parse its requests, check its rights, route each request, and
//! write the replies back strictly in request order.
//!
//! A session is two tasks on its worker: the reader (this module's [`run`]) parses and
//! dispatches, the writer drains the reply queue ([`ClientShared`]) that backend links
//! fill. Requests go out as the bytes the client sent; the reply queue gives every request
//! exactly one slot, so a reply can only be written where its request stood.

mod local;
mod merge;
mod queue;

pub use merge::{Merge, MergeKind};
pub use queue::{ClientShared, Drained};

use crate::auth::Rights;
use crate::backend::{Link, Retry, Waiter};
use crate::command::{self, flags, ArgList, CommandClass, CommandSpec};
use crate::config::AuthMode;
use crate::hold::HeldRequest;
use crate::protocol::{put_error, ArgSpan, Parsed, RequestParser};
use crate::topology::ServerAddr;
use crate::worker::WorkerCtx;
use bytes::{Buf, Bytes, BytesMut};
use std::rc::Rc;
use std::sync::Arc;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::OwnedWriteHalf;
use tokio::net::TcpStream;
use tokio::time::Instant;

/// Most requests one client may have queued before the proxy stops reading from it.
const MAX_QUEUED: usize = 16 * 1024;
/// Read buffer growth step.
const READ_CHUNK: usize = 16 * 1024;
/// Most bytes of replies gathered into one write.
const WRITE_BATCH: usize = 256 * 1024;
/// Replies smaller than this are copied into one buffer; larger ones are written as they are.
const COALESCE_MAX: usize = 8 * 1024;
/// Output buffer limit of a subscribed client (Redis' pubsub class hard limit).
const PUBSUB_OUTPUT_LIMIT: usize = 32 * 1024 * 1024;

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
    keys: Vec<usize>,
    scratch: BytesMut,
}

/// Serves one client until it disconnects or is closed.
pub async fn run(ctx: Rc<WorkerCtx>, stream: TcpStream, peer: String) {
    let _ = stream.set_nodelay(true);
    let (mut reader, writer) = stream.into_split();
    let shared = Rc::new(ClientShared::new(ctx.proxy.config.client_output_limit()));
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
        keys: Vec::new(),
        scratch: BytesMut::new(),
    };
    let mut parser = RequestParser::new(ctx.proxy.config.proto_max_bulk_len);
    let mut rbuf = BytesMut::with_capacity(READ_CHUNK);
    let query_limit = ctx.proxy.config.client_query_buffer_limit;
    let idle = ctx.proxy.config.client_timeout;
    'read: loop {
        shared.wait_room(MAX_QUEUED).await;
        if shared.is_closed() {
            break;
        }
        if rbuf.capacity() - rbuf.len() < 1024 {
            rbuf.reserve(READ_CHUNK);
        }
        let read = if idle.is_zero() {
            reader.read_buf(&mut rbuf).await
        } else {
            match tokio::time::timeout(idle, reader.read_buf(&mut rbuf)).await {
                Ok(r) => r,
                Err(_) => {
                    if shared.pending() == 0 && client.pubsub.is_none() {
                        tracing::debug!(client = %client.peer, "idle client closed");
                        break;
                    }
                    continue;
                }
            }
        };
        match read {
            Ok(0) | Err(_) => {
                shared.close_after();
                break;
            }
            Ok(_) => {}
        }
        loop {
            match parser.parse(&rbuf) {
                Ok(Parsed::Incomplete { need }) => {
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
    // The writer ends after writing what is queued up to the close marker; a client that
    // stopped reading is cut off by the output limit.
    let _ = writer_task.await;
}

async fn write_loop(shared: Rc<ClientShared>, mut writer: OwnedWriteHalf) {
    let mut batch: Vec<Bytes> = Vec::new();
    let mut small = BytesMut::with_capacity(COALESCE_MAX);
    loop {
        let outcome = shared.drain_ready(&mut batch, WRITE_BATCH);
        if !batch.is_empty()
            && write_batch(&mut writer, &mut batch, &mut small)
                .await
                .is_err()
        {
            shared.close();
            return;
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
async fn write_batch(
    writer: &mut OwnedWriteHalf,
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
    Ok(())
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
        let Some(spec) = command::lookup_request(&args) else {
            let text = unknown_command(&args);
            self.refuse_in_multi();
            self.error(&text);
            return true;
        };
        if !spec.arity_ok(args.len()) {
            self.refuse_in_multi();
            let name = String::from_utf8_lossy(args.arg(0)).to_lowercase();
            self.error(&format!(
                "ERR wrong number of arguments for '{name}' command"
            ));
            return true;
        }
        let Some(rights) = self.rights.clone() else {
            if !matches!(spec.name, "auth" | "hello" | "quit" | "reset") {
                self.error("NOAUTH Authentication required.");
                return true;
            }
            return self.local(spec, &args).await;
        };
        if let Err(text) = self.check_rights(&rights, spec, &args) {
            self.refuse_in_multi();
            self.error(&text);
            return true;
        }
        if self.pubsub.is_some() {
            return self.in_pubsub(spec, &args);
        }
        if self.multi.is_some() {
            return self.in_multi(spec, &args).await;
        }
        match spec.class {
            CommandClass::Local => return self.local(spec, &args).await,
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
            return self.transaction_command(spec, &args).await;
        }
        if spec.has(flags::PUBSUB) && is_subscribe(spec) {
            return self.subscribe(&args).await;
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

    /// Picks the server for a request to `group`.
    fn server_for(&mut self, group: usize, write: bool) -> Result<ServerAddr, String> {
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
        if write {
            if ctx.links.is_down(master) {
                let why = ctx.links.down_reason(master).unwrap_or_default();
                return Err(format!(
                    "ERR redmux: master {master} of group '{}' is down: {why}",
                    g.name
                ));
            }
            return Ok(master.clone());
        }
        let turn = ctx.next_turn();
        let prio = ctx.proxy.priorities();
        let addr = crate::routing::pick_reader(g, &prio, turn, |a| ctx.links.is_down(a));
        addr.cloned()
            .ok_or_else(|| format!("ERR redmux: no server available for group '{}'", g.name))
    }

    /// Sends a request to the server that should answer it.
    async fn forward(&mut self, spec: &CommandSpec, args: &Args<'_>) {
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
        // A request that will be held needs no server now: during a failover the old
        // master may already be marked down, and its writes must wait, not fail.
        let will_hold = !spec.has(flags::BLOCKING)
            && (self.shared.held() > 0 || write && self.held_since(group).is_some());
        let addr = match self.server_for(group, write) {
            Ok(a) => Some(a),
            Err(_) if will_hold => None,
            Err(text) => {
                self.error(&text);
                return;
            }
        };
        if let (true, Some(addr)) = (spec.has(flags::BLOCKING), &addr) {
            self.send_dedicated(group, addr, args.frame).await;
            return;
        }
        if self.last_dedicated {
            self.shared.wait_idle().await;
            self.last_dedicated = false;
        }
        let seq = self.shared.reserve();
        let mut waiter = self.waiter(seq, 0);
        if write {
            // A write refused with -READONLY/-LOADING was not applied: it may be re-sent
            // to the new master (see `hold`).
            waiter.retry = Some(Retry {
                frame: args.frame.clone(),
                group: group as u32,
                db: self.db,
                resp3: self.resp3,
            });
        }
        if write || self.shared.held() > 0 {
            // Behind a held request of this client, even after the hold ended: a request
            // must never overtake an earlier one of the same client.
            let behind = (self.shared.held() > 0).then(Instant::now);
            if let Some(since) = self.held_since(group).or(behind) {
                let frame = args.frame.clone();
                self.ctx.hold.hold(
                    &self.ctx,
                    HeldRequest::new(frame, waiter, group, self.db, self.resp3, since, None),
                );
                return;
            }
        }
        match addr {
            Some(addr) => self
                .ctx
                .links
                .shared(&addr, self.db, self.resp3)
                .send(args.frame, waiter),
            None => {
                let mut b = BytesMut::new();
                put_error(&mut b, "TRYAGAIN redmux: failover ended meanwhile; retry");
                self.shared.deliver(seq, 0, b.freeze());
            }
        }
    }

    /// When the group's writes are held for a failover, since when.
    fn held_since(&self, group: usize) -> Option<Instant> {
        let mut topo = self.ctx.topology.borrow_mut();
        let hold = topo.get().groups.get(group)?.hold.as_ref()?;
        let since = Instant::from_std(hold.since);
        (since.elapsed() < crate::hold::HOLD_LIMIT).then_some(since)
    }

    pub(crate) fn waiter(&self, seq: u64, part: u32) -> Waiter {
        Waiter {
            client: self.shared.clone(),
            seq,
            part,
            sent: Instant::now(),
            retry: None,
        }
    }

    /// The client's dedicated link to `addr`, made (or re-made) as needed.
    fn dedicated_link(&mut self, group: usize, addr: &ServerAddr) -> Rc<Link> {
        if let Some((link, g)) = &self.private {
            if *g == group
                && link.key.addr == *addr
                && link.key.db == self.db
                && link.key.resp3 == self.resp3
            {
                return link.clone();
            }
        }
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
        if !self.last_dedicated {
            self.shared.wait_idle().await;
        }
        self.last_dedicated = true;
        let link = self.dedicated_link(group, addr);
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
                    // WATCH already pinned a link: MULTI goes there now.
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
            if !self.last_dedicated {
                self.shared.wait_idle().await;
            }
            self.last_dedicated = true;
            let link = self.dedicated_link(group, &addr);
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
        self.shared.set_output_limit(PUBSUB_OUTPUT_LIMIT);
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
                    .set_output_limit(self.ctx.proxy.config.client_output_limit());
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

    /// Split commands and commands that go to every group, when the pool has several.
    /// True when handled.
    fn fan_out(&mut self, spec: &CommandSpec, args: &Args<'_>) -> bool {
        let _ = (spec, args);
        // Split and broadcast commands over several groups land with the sharded pool
        // work; until then a multi-key command must keep its keys in one group.
        false
    }

    /// Admin mode, for proxy-local admin commands.
    pub(crate) fn is_admin(&self) -> bool {
        self.rights
            .as_ref()
            .is_some_and(|r| r.mode == AuthMode::Admin)
    }
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
