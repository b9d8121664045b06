//! A client's reply queue: one slot per request, filled in any order by backend links,
//! written to the client strictly in request order.
//!
//! Replies are written by the session's writer task, or, for plain TCP clients, straight
//! from the backend link's task at the end of the read that completed them (a
//! [`DeliveryBatch`]): one write per client per backend read, without waking the writer.
//! The writer takes over whatever such a write could not finish.

use super::merge::Merge;
use crate::metrics::{Meter, WorkerStats};
use crate::wake::LocalNotify;
use bytes::Bytes;
use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::io::IoSlice;
use std::rc::Rc;
use std::sync::Arc;
use tokio::net::tcp::OwnedWriteHalf;

enum Slot {
    /// Waiting for a backend reply (timed when the meter is set).
    Pending(Option<Meter>),
    /// Waiting for the parts of a split request.
    Merge(Box<Merge>, Option<Meter>),
    Ready(Bytes),
    /// Replies a backend sends that no client needs (a transaction's own MULTI).
    Discard,
    /// Close the connection once everything before it is written.
    Close,
}

struct ReplyQueue {
    /// Sequence number of the front slot.
    head: u64,
    slots: VecDeque<Slot>,
    /// Slots still waiting for a backend.
    pending: usize,
    /// Bytes of ready replies not yet written.
    ready_bytes: usize,
}

/// The part of a session that backend links reach: its reply queue and wake-ups.
pub struct ClientShared {
    queue: RefCell<ReplyQueue>,
    wake_writer: LocalNotify,
    wake_reader: LocalNotify,
    /// Wakes the reader's socket read when the client is closed from elsewhere.
    wake_closed: LocalNotify,
    closed: Cell<bool>,
    /// Closed for going over the output buffer limit.
    over_limit: Cell<bool>,
    /// Bytes of unwritten replies after which the client is dropped (output buffer limit).
    output_limit: Cell<usize>,
    /// Requests of this client held for a failover (its later requests wait behind them).
    held: Cell<usize>,
    /// Where commands, latency and bytes are counted (none for the proxy's own queries).
    stats: Option<Arc<WorkerStats>>,
    /// The request being dispatched: the first slot it makes takes this meter.
    armed: Cell<Option<Meter>>,
    /// When the last read from the client returned (the start of its requests' latency).
    read_at: Cell<std::time::Instant>,
    /// The client's socket, for writes made outside the writer task (plain TCP only).
    direct: RefCell<Option<Rc<OwnedWriteHalf>>>,
    /// The writer task holds replies it took from the queue and has not finished writing.
    writer_busy: Cell<bool>,
    /// What a direct write could not finish; the writer writes it before anything else.
    carry: RefCell<Vec<Bytes>>,
    /// Already in this thread's list of clients to write at the end of the delivery batch.
    flush_queued: Cell<bool>,
}

thread_local! {
    /// Open [`DeliveryBatch`] scopes on this thread.
    static BATCH_DEPTH: Cell<u32> = const { Cell::new(0) };
    /// Clients with replies ready, written when the outermost batch ends.
    static TO_FLUSH: RefCell<Vec<Rc<ClientShared>>> = const { RefCell::new(Vec::new()) };
    /// The replies of one direct write (kept to reuse its allocation).
    static DIRECT_OUT: RefCell<Vec<Bytes>> = const { RefCell::new(Vec::new()) };
}

/// While one is alive on a thread, a client whose next reply becomes ready is not woken;
/// its ready replies are written when the batch ends, in one system call, from the
/// task that delivered them (a backend link's reader, after handing out one read's
/// replies). Hold it only across code that does not await.
pub struct DeliveryBatch(());

impl DeliveryBatch {
    pub fn start() -> DeliveryBatch {
        BATCH_DEPTH.with(|d| d.set(d.get() + 1));
        DeliveryBatch(())
    }
}

impl Drop for DeliveryBatch {
    fn drop(&mut self) {
        let depth = BATCH_DEPTH.with(|d| {
            d.set(d.get() - 1);
            d.get()
        });
        if depth > 0 {
            return;
        }
        let mut clients = TO_FLUSH.with(|l| std::mem::take(&mut *l.borrow_mut()));
        for client in clients.drain(..) {
            client.flush_direct();
        }
        // Give the (now empty) list back so its allocation is reused.
        TO_FLUSH.with(|l| {
            let mut l = l.borrow_mut();
            if l.capacity() < clients.capacity() {
                *l = clients;
            }
        });
    }
}

/// Most replies gathered into one direct write.
const DIRECT_MAX_REPLIES: usize = 64;

/// What [`ClientShared::take_ready`] stopped at.
#[derive(PartialEq, Eq)]
enum Left {
    /// A close marker (taken when asked to).
    Close,
    /// More ready replies than one write takes.
    Ready,
    /// A reply still pending, or the end of the queue.
    Nothing,
}

/// What the writer should do with what it took from the queue.
pub enum Drained {
    /// Write these replies, then look again.
    Write,
    /// Nothing ready; wait.
    Wait,
    /// Write these, then close the connection.
    Close,
}

impl ClientShared {
    pub fn new(output_limit: usize) -> ClientShared {
        ClientShared {
            queue: RefCell::new(ReplyQueue {
                head: 0,
                slots: VecDeque::new(),
                pending: 0,
                ready_bytes: 0,
            }),
            wake_writer: LocalNotify::new(),
            wake_reader: LocalNotify::new(),
            wake_closed: LocalNotify::new(),
            closed: Cell::new(false),
            over_limit: Cell::new(false),
            output_limit: Cell::new(output_limit),
            held: Cell::new(0),
            stats: None,
            armed: Cell::new(None),
            read_at: Cell::new(std::time::Instant::now()),
            direct: RefCell::new(None),
            writer_busy: Cell::new(false),
            carry: RefCell::new(Vec::new()),
            flush_queued: Cell::new(false),
        }
    }

    /// Lets backend links write this client's replies to `socket` themselves (see
    /// [`DeliveryBatch`]); the writer task must write through the same socket.
    pub fn set_direct(&self, socket: Rc<OwnedWriteHalf>) {
        *self.direct.borrow_mut() = Some(socket);
    }

    /// The writer task has taken replies and is writing them (direct writes wait).
    pub fn set_writer_busy(&self, busy: bool) {
        self.writer_busy.set(busy);
    }

    /// The head of the queue became ready: inside a delivery batch the client is written
    /// when the batch ends, otherwise the writer is woken.
    fn head_ready(self: &Rc<Self>) {
        let batched = BATCH_DEPTH.with(|d| d.get() > 0);
        if !batched || self.direct.borrow().is_none() {
            self.wake_writer.notify_one();
            return;
        }
        if !self.flush_queued.replace(true) {
            TO_FLUSH.with(|l| l.borrow_mut().push(self.clone()));
        }
    }

    /// Writes the ready replies at the head of the queue with one non-blocking system
    /// call. Whatever is not written (the socket is full) goes to the writer task, which
    /// writes it before anything else; so does everything when the writer is busy.
    fn flush_direct(&self) {
        self.flush_queued.set(false);
        if self.closed.get() {
            return;
        }
        let Some(socket) = self.direct.borrow().clone() else {
            self.wake_writer.notify_one();
            return;
        };
        if self.writer_busy.get() || !self.carry.borrow().is_empty() {
            self.wake_writer.notify_one();
            return;
        }
        let mut out = DIRECT_OUT.with(|o| std::mem::take(&mut *o.borrow_mut()));
        let more = self.take_ready(&mut out, super::WRITE_BATCH, DIRECT_MAX_REPLIES, false)
            != Left::Nothing;
        self.write_direct(&socket, &mut out, more);
        out.clear();
        DIRECT_OUT.with(|o| *o.borrow_mut() = out);
    }

    /// One vectored write of `out`; the rest to the writer (also woken when `more`).
    fn write_direct(&self, socket: &OwnedWriteHalf, out: &mut Vec<Bytes>, more: bool) {
        if out.is_empty() {
            if more {
                self.wake_writer.notify_one();
            }
            return;
        }
        let total: usize = out.iter().map(Bytes::len).sum();
        let mut slices = [IoSlice::new(&[]); DIRECT_MAX_REPLIES];
        for (slice, b) in slices.iter_mut().zip(out.iter()) {
            *slice = IoSlice::new(b);
        }
        let written = match socket
            .as_ref()
            .try_write_vectored(&slices[..out.len().min(DIRECT_MAX_REPLIES)])
        {
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => 0,
            Err(_) => {
                // The writer would fail the same way: the client is gone.
                self.close();
                return;
            }
        };
        if written < total {
            let mut skip = written;
            let mut carry = self.carry.borrow_mut();
            for mut b in out.drain(..) {
                if skip >= b.len() {
                    skip -= b.len();
                    continue;
                }
                if skip > 0 {
                    b = b.slice(skip..);
                    skip = 0;
                }
                carry.push(b);
            }
            drop(carry);
            self.wake_writer.notify_one();
        } else if more {
            self.wake_writer.notify_one();
        }
    }

    /// A client queue whose commands, latency and bytes count in `stats`.
    pub fn with_stats(output_limit: usize, stats: Arc<WorkerStats>) -> ClientShared {
        ClientShared {
            stats: Some(stats),
            ..ClientShared::new(output_limit)
        }
    }

    /// A request of command `slot` (see [`crate::metrics::command_slot`]) was parsed: its
    /// reply slot is counted and timed from now.
    pub fn begin(&self, slot: u16) {
        let Some(stats) = &self.stats else {
            return;
        };
        if let Some(prev) = self.armed.replace(stats.begin(slot, self.read_at.get())) {
            stats.finish_unanswered(prev);
        }
    }

    /// `n` bytes read from the client at `at` (the requests they hold are timed from then).
    pub fn count_in(&self, n: usize, at: std::time::Instant) {
        if let Some(stats) = &self.stats {
            self.read_at.set(at);
            stats.add_bytes_in(n);
        }
    }

    /// Requests parsed from one read.
    pub fn count_pipeline(&self, depth: u64) {
        if let Some(stats) = &self.stats {
            stats.observe_pipeline(depth);
        }
    }

    fn finish(&self, meter: Option<Meter>, reply: &[u8]) {
        if let (Some(m), Some(stats)) = (meter, &self.stats) {
            stats.finish(m, reply);
        }
    }

    /// Requests of this client waiting in the worker's hold queue.
    pub fn held(&self) -> usize {
        self.held.get()
    }

    pub fn add_held(&self, delta: isize) {
        self.held.set(self.held.get().saturating_add_signed(delta));
    }

    pub fn set_output_limit(&self, limit: usize) {
        self.output_limit.set(limit);
    }

    /// True once the client is gone or is being closed.
    pub fn is_closed(&self) -> bool {
        self.closed.get()
    }

    /// Marks the client gone: queued replies are freed and replies still arriving are
    /// dropped.
    pub fn close(&self) {
        self.closed.set(true);
        self.direct.borrow_mut().take();
        self.carry.borrow_mut().clear();
        {
            let mut q = self.queue.borrow_mut();
            let n = q.slots.len() as u64;
            q.slots.clear();
            q.head += n;
            q.pending = 0;
            q.ready_bytes = 0;
        }
        self.wake_writer.notify_one();
        self.wake_reader.notify_one();
        self.wake_closed.notify_one();
    }

    /// True when the client is closed or a close is queued (nothing more will be written
    /// after it).
    pub fn is_closing(&self) -> bool {
        self.closed.get() || matches!(self.queue.borrow().slots.back(), Some(Slot::Close))
    }

    /// Returns once the client is closed (for the reader, while it waits on the socket).
    pub async fn closed(&self) {
        while !self.closed.get() {
            self.wake_closed.notified().await;
        }
    }

    /// True when the client was dropped for going over its output buffer limit.
    pub fn over_limit(&self) -> bool {
        self.over_limit.get()
    }

    /// Requests waiting for a backend.
    pub fn pending(&self) -> usize {
        self.queue.borrow().pending
    }

    /// Slots not yet written (pending or ready).
    pub fn queued(&self) -> usize {
        self.queue.borrow().slots.len()
    }

    fn push(&self, slot: Slot) -> u64 {
        let mut q = self.queue.borrow_mut();
        let seq = q.head + q.slots.len() as u64;
        match &slot {
            Slot::Pending(_) | Slot::Merge(..) => q.pending += 1,
            Slot::Ready(b) => q.ready_bytes += b.len(),
            Slot::Discard | Slot::Close => {}
        }
        let ready = matches!(slot, Slot::Ready(_) | Slot::Close);
        q.slots.push_back(slot);
        drop(q);
        if ready && self.head_is_ready() {
            self.wake_writer.notify_one();
        }
        seq
    }

    /// A slot for a request sent to a backend; returns its sequence number.
    pub fn reserve(&self) -> u64 {
        self.push(Slot::Pending(self.armed.take()))
    }

    /// A slot for a request split into parts, merged when all have answered.
    pub fn reserve_merge(&self, merge: Merge) -> u64 {
        self.push(Slot::Merge(Box::new(merge), self.armed.take()))
    }

    /// A slot whose reply will be dropped (for example the MULTI a transaction link sends).
    pub fn reserve_discard(&self) -> u64 {
        let seq = self.push(Slot::Pending(None));
        let mut q = self.queue.borrow_mut();
        let idx = (seq - q.head) as usize;
        q.slots[idx] = Slot::Discard;
        q.pending -= 1;
        drop(q);
        if self.head_is_ready() {
            self.wake_writer.notify_one();
        }
        seq
    }

    /// A reply the proxy gives itself, in order after everything queued.
    pub fn ready(&self, reply: Bytes) {
        self.finish(self.armed.take(), &reply);
        self.push_ready(reply);
    }

    fn push_ready(&self, reply: Bytes) {
        self.push(Slot::Ready(reply));
        self.check_limit();
    }

    /// Close the connection after everything queued so far is written.
    pub fn close_after(&self) {
        self.push(Slot::Close);
    }

    /// A frame from a subscription link: appended as it comes.
    pub fn push_unsolicited(&self, frame: Bytes) {
        if self.closed.get() {
            return;
        }
        self.push_ready(frame);
    }

    fn check_limit(&self) {
        let limit = self.output_limit.get();
        if limit > 0 && self.queue.borrow().ready_bytes > limit && !self.closed.get() {
            tracing::info!(limit, "client closed: output buffer limit reached");
            self.over_limit.set(true);
            self.close();
        }
    }

    /// A backend reply (or error) for slot `seq`, part `part`.
    pub fn deliver(self: &Rc<Self>, seq: u64, part: u32, reply: Bytes) {
        if self.closed.get() {
            return;
        }
        let mut q = self.queue.borrow_mut();
        let Some(idx) = seq.checked_sub(q.head) else {
            return;
        };
        let Some(slot) = q.slots.get_mut(idx as usize) else {
            return;
        };
        let done = match slot {
            Slot::Pending(meter) => {
                self.finish(*meter, &reply);
                *slot = Slot::Ready(reply);
                true
            }
            Slot::Merge(m, meter) => match m.add(part, reply) {
                Some(merged) => {
                    self.finish(*meter, &merged);
                    *slot = Slot::Ready(merged);
                    true
                }
                None => false,
            },
            // A Discard slot ignores its reply; Ready/Close never take one.
            Slot::Discard | Slot::Ready(_) | Slot::Close => false,
        };
        if !done {
            return;
        }
        if let Slot::Ready(b) = &q.slots[idx as usize] {
            let n = b.len();
            q.ready_bytes += n;
        }
        q.pending -= 1;
        let idle = q.pending == 0;
        drop(q);
        if idx == 0 || self.head_is_ready() {
            self.head_ready();
        }
        if idle {
            self.wake_reader.notify_one();
        }
        self.check_limit();
    }

    fn head_is_ready(&self) -> bool {
        matches!(
            self.queue.borrow().slots.front(),
            Some(Slot::Ready(_) | Slot::Close | Slot::Discard)
        )
    }

    /// For the writer task: moves what a direct write left over, then the ready replies
    /// at the front of the queue, into `out`.
    pub fn drain_ready(&self, out: &mut Vec<Bytes>, max_bytes: usize) -> Drained {
        out.append(&mut self.carry.borrow_mut());
        if self.take_ready(out, max_bytes, usize::MAX, true) == Left::Close {
            Drained::Close
        } else if !out.is_empty() {
            Drained::Write
        } else {
            Drained::Wait
        }
    }

    /// Moves the ready replies at the front of the queue into `out` (at most `max_bytes`
    /// unless the first is larger, at most `max_replies`), and the close marker after
    /// them when `take_close`. Says what stopped it.
    fn take_ready(
        &self,
        out: &mut Vec<Bytes>,
        max_bytes: usize,
        max_replies: usize,
        take_close: bool,
    ) -> Left {
        let mut q = self.queue.borrow_mut();
        let mut taken = 0;
        let mut popped = false;
        let mut stopped_at_ready = false;
        let mut closing = false;
        loop {
            match q.slots.front() {
                Some(Slot::Ready(b)) => {
                    if taken > 0 && (taken + b.len() > max_bytes || out.len() >= max_replies) {
                        stopped_at_ready = true;
                        break;
                    }
                    taken += b.len();
                }
                Some(Slot::Discard) => {}
                Some(Slot::Close) => {
                    if take_close {
                        q.slots.pop_front();
                        q.head += 1;
                    }
                    closing = true;
                    break;
                }
                _ => break,
            }
            if let Some(Slot::Ready(b)) = q.slots.pop_front() {
                q.ready_bytes -= b.len();
                out.push(b);
            }
            q.head += 1;
            popped = true;
        }
        drop(q);
        if let Some(stats) = &self.stats {
            stats.add_bytes_out(taken);
        }
        if popped {
            // Room in the queue for a reader held back by `wait_room`.
            self.wake_reader.notify_one();
        }
        if closing {
            Left::Close
        } else if stopped_at_ready {
            Left::Ready
        } else {
            Left::Nothing
        }
    }

    /// Waits until the writer should look at the queue again.
    pub async fn writer_wait(&self) {
        self.wake_writer.notified().await
    }

    /// Waits until every request sent so far has its reply (used before switching to
    /// or from a dedicated link, so requests run in the client's order).
    pub async fn wait_idle(&self) {
        self.wait_pending(0).await
    }

    /// Waits until at most `max` requests wait for a backend (those of a transaction
    /// not sent yet are left out this way).
    pub async fn wait_pending(&self, max: usize) {
        while self.pending() > max && !self.closed.get() {
            self.wake_reader.notified().await;
        }
    }

    /// Waits until fewer than `max` slots are queued (backpressure on a client that
    /// pipelines faster than its replies are written).
    pub async fn wait_room(&self, max: usize) {
        while self.queued() >= max && !self.closed.get() {
            self.wake_reader.notified().await;
        }
    }
}
