//! Requests held during a failover, so that no acknowledged write is lost and no write
//! fails only because the master is changing.
//!
//! Two kinds of request wait here, per worker:
//! - writes to a group whose failover is in progress (discovery saw `+try-failover`):
//!   they are sent once the new master is known (`+promoted-slave`, `+switch-master`), or
//!   to the old master if the failover is aborted;
//! - writes a server refused with `-READONLY` or `-LOADING`. Redis refuses those before
//!   executing anything, so re-sending them cannot apply a write twice. They go to the
//!   group's master once it is another server than the one that refused.
//!
//! Nothing else is ever re-sent: a request whose connection failed after it was written
//! may have been applied, so it fails with an error instead.
//!
//! Holding is bounded in time ([`HOLD_LIMIT`]) and memory ([`MAX_HELD_BYTES`]); past
//! either, the request fails with a clear error.

use crate::backend::{Retry, Waiter};
use crate::topology::ServerAddr;
use crate::wake::LocalNotify;
use crate::worker::WorkerCtx;
use bytes::{Bytes, BytesMut};
use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::rc::Rc;
use std::time::Duration;
use tokio::time::Instant;

/// Longest a request is held, counted from the start of the failover.
pub const HOLD_LIMIT: Duration = Duration::from_secs(10);
/// Most bytes of held requests per worker.
pub const MAX_HELD_BYTES: usize = 64 * 1024 * 1024;
/// How often held requests are looked at while some wait.
const RECHECK: Duration = Duration::from_millis(5);

/// One held request.
pub struct HeldRequest {
    frame: Bytes,
    waiter: Waiter,
    group: usize,
    db: u32,
    resp3: bool,
    since: Instant,
    /// Never send to this server again (it refused the write as a replica).
    avoid: Option<ServerAddr>,
    /// The reply to give when the hold expires.
    on_expiry: Option<Bytes>,
}

impl HeldRequest {
    pub fn new(
        frame: Bytes,
        waiter: Waiter,
        group: usize,
        db: u32,
        resp3: bool,
        since: Instant,
        avoid: Option<ServerAddr>,
    ) -> HeldRequest {
        HeldRequest {
            frame,
            waiter,
            group,
            db,
            resp3,
            since,
            avoid,
            on_expiry: None,
        }
    }
}

/// A worker's held requests, released in the order they came.
#[derive(Default)]
pub struct HoldQueue {
    items: RefCell<VecDeque<HeldRequest>>,
    bytes: Cell<usize>,
    wake: LocalNotify,
    /// Requests ever held, and the longest hold so far (for metrics and INFO).
    pub held_total: Cell<u64>,
    pub longest_hold: Cell<Duration>,
}

impl HoldQueue {
    pub fn new() -> Rc<HoldQueue> {
        Rc::new(HoldQueue::default())
    }

    /// Holds a request the session routed to a group in failover.
    pub fn hold(&self, _ctx: &WorkerCtx, request: HeldRequest) {
        self.push_item(request);
    }

    /// A write refused by `server` with `reply` (`-READONLY`/`-LOADING`): held until the
    /// group's master is another server.
    pub fn push(&self, retry: Retry, mut waiter: Waiter, server: ServerAddr, reply: Bytes) {
        waiter.retry = None;
        let item = HeldRequest {
            frame: retry.frame,
            waiter,
            group: retry.group as usize,
            db: retry.db,
            resp3: retry.resp3,
            since: Instant::now(),
            avoid: Some(server),
            on_expiry: Some(reply),
        };
        self.push_item(item);
    }

    fn push_item(&self, item: HeldRequest) {
        let size = item.frame.len();
        if self.bytes.get() + size > MAX_HELD_BYTES {
            fail(
                item,
                "TRYAGAIN redmux: failover in progress and too many writes held; retry",
            );
            return;
        }
        self.bytes.set(self.bytes.get() + size);
        self.held_total.set(self.held_total.get() + 1);
        item.waiter.client.add_held(1);
        self.items.borrow_mut().push_back(item);
        self.wake.notify_one();
    }

    pub fn len(&self) -> usize {
        self.items.borrow().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Releases held requests as their groups get a usable master; runs for the
    /// worker's lifetime.
    pub async fn run(self: Rc<Self>, ctx: Rc<WorkerCtx>) {
        loop {
            if self.is_empty() {
                self.wake.notified().await;
                continue;
            }
            self.release(&ctx);
            if !self.is_empty() {
                tokio::time::sleep(RECHECK).await;
            }
        }
    }

    fn release(&self, ctx: &WorkerCtx) {
        let topo = ctx.topology.borrow_mut().get().clone();
        let mut kept = VecDeque::new();
        let items = std::mem::take(&mut *self.items.borrow_mut());
        // Keep per-group order: once one request of a group stays, later ones stay too.
        let mut blocked = vec![false; topo.groups.len()];
        for item in items {
            let Some(group) = topo.groups.get(item.group) else {
                self.done(&item);
                fail(item, "ERR redmux: no such group");
                continue;
            };
            let expired = item.since.elapsed() >= HOLD_LIMIT;
            let in_failover = group
                .hold
                .as_ref()
                .is_some_and(|h| h.since.elapsed() < HOLD_LIMIT);
            let target = group
                .master
                .as_ref()
                .filter(|m| item.avoid.as_ref() != Some(*m) && !in_failover);
            match target {
                Some(master) if !blocked[item.group] => {
                    self.done(&item);
                    let held_for = item.since.elapsed();
                    if held_for > self.longest_hold.get() {
                        self.longest_hold.set(held_for);
                    }
                    let link = ctx.links.shared(master, item.db, item.resp3);
                    let mut waiter = item.waiter;
                    waiter.sent = Instant::now();
                    // Re-sendable once more, should the new master refuse it too.
                    waiter.retry = Some(Retry {
                        frame: item.frame.clone(),
                        group: item.group as u32,
                        db: item.db,
                        resp3: item.resp3,
                    });
                    link.send(&item.frame, waiter);
                }
                _ if expired => {
                    self.done(&item);
                    match item.on_expiry.clone() {
                        Some(reply) => {
                            let w = item.waiter;
                            w.client.deliver(w.seq, w.part, reply);
                        }
                        None => fail(
                            item,
                            "TRYAGAIN redmux: failover did not complete in time; retry",
                        ),
                    }
                }
                _ => {
                    blocked[item.group] = true;
                    kept.push_back(item);
                }
            }
        }
        let mut items = self.items.borrow_mut();
        kept.extend(items.drain(..));
        *items = kept;
    }

    fn done(&self, item: &HeldRequest) {
        self.bytes
            .set(self.bytes.get().saturating_sub(item.frame.len()));
        item.waiter.client.add_held(-1);
    }
}

fn fail(item: HeldRequest, text: &str) {
    let mut b = BytesMut::new();
    crate::protocol::put_error(&mut b, text);
    let w = item.waiter;
    w.client.deliver(w.seq, w.part, b.freeze());
}
