//! A queue: ready messages in order (by priority, then arrival), messages
//! delivered but not yet acknowledged, and the consumers it feeds
//! round-robin within their priority.
//!
//! Each queue has its own lock, held only for in-memory work (never across
//! an `.await`); publishing to different queues never contends. Only a
//! bounded head of ready messages is kept in memory; the rest is paged
//! out to the store (`paging.rs`). TTL, length limits and delivery limits
//! remove messages; with a dead-letter exchange they are republished there
//! once the lock is released (`dead.rs`).

mod config;
mod congestion;
mod consumers;
mod dead;
mod deliver;
mod expiry;
mod fresh;
mod get;
mod paging;
mod policy;
mod ready;
mod removal;
mod settle;
mod stats;
mod stream;
mod unacked;
mod window;

pub use config::{Overflow, QueueConfig};
pub use fresh::Taken;
use get::Waiter;
pub use get::{Got, GET_WAIT};
pub use stats::{QueueInfo, QueueRates};

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Weak};

use amq_protocol::types::FieldTable;
use parking_lot::{Mutex, MutexGuard};

#[cfg(test)]
use super::consumer::ConsumerSpec;
use super::consumer::{ConnectionId, Consumer, Delivery};
use super::deadletter::Reason;
use super::message::Message;
use super::policy::Effective;
use super::stats::QueueTotals;
use super::vhost::VHost;
use crate::protocol::AmqpError;
use crate::store::recovery::Paged;
use crate::store::{Op, StoreHandle};
use ready::Ready;

#[derive(Debug)]
pub struct Queue {
    pub name: String,
    pub vhost: String,
    pub durable: bool,
    pub exclusive_owner: Option<ConnectionId>,
    pub auto_delete: bool,
    pub arguments: FieldTable,
    /// What its `x-` arguments ask for; what is in force, policies
    /// included, is `effective()` (kept in `State`).
    pub config: QueueConfig,
    /// Mirrors `State::deleted` for lock-free checks by routing caches.
    deleted: AtomicBool,
    /// Where the queue keeps messages on disk: persistent ones of a
    /// durable queue, and any it pages out.
    store: Option<QueueStore>,
    /// The vhost it lives in: dead letters are routed there, and an
    /// expired queue (`x-expires`) is deleted from it.
    home: Weak<VHost>,
    /// Where its timers run (None outside a runtime, in unit tests).
    runtime: Option<tokio::runtime::Handle>,
    /// When it was last used (ms since the epoch), for `x-expires`.
    last_used: AtomicU64,
    /// The effective `expires` (0: none), for reads without the lock.
    expires: AtomicU64,
    /// Changes when `expires` does: an expiry watcher of an older one stops.
    expiry_generation: AtomicU64,
    /// Its consumers are falling behind: publishers feeding it should pause.
    congested: AtomicBool,
    /// Told when a congested queue has drained (or lost its consumers).
    drained: tokio::sync::Notify,
    state: Mutex<State>,
    /// Its rates, made by the broker's sampler (after `state`: the publish
    /// path never reads them).
    pub rates: QueueRates,
    /// The ids it remembers (`x-message-deduplication`, `broker/dedup.rs`).
    pub dedup: std::sync::OnceLock<Arc<super::dedup::Deduper>>,
    /// `x-queue-type: stream`: its log, once opened (`queue/stream.rs`).
    stream: std::sync::OnceLock<Arc<super::stream::Stream>>,
    /// Declared as a stream (its messages go to its log, not the store's index).
    pub is_stream: bool,
}

/// A queue's link to the store.
#[derive(Debug)]
struct QueueStore {
    handle: StoreHandle,
    /// Names the queue's places in the store's index.
    id: u64,
    /// Its persistent messages survive a restart.
    durable: bool,
    /// Read-back pages not yet deleted, per lane (`window`).
    windows: Mutex<window::Windows>,
    /// The highest delivery mark submitted (`Op::Delivered`): a delivery
    /// taken back unsent and delivered again must not lower it.
    marked: std::sync::atomic::AtomicU64,
}

#[derive(Debug, Clone)]
pub struct Entry {
    pub seq: u64,
    pub message: Arc<Message>,
    /// When it expires (ms since the epoch); 0 for never.
    pub expires: u64,
    /// How often it came back unacknowledged (requeued).
    pub returns: u32,
    pub priority: u8,
    pub redelivered: bool,
    /// The entry has a place in the store's index under this queue.
    pub stored: bool,
    /// Its message is kept in the place's page (it was paged out).
    pub paged: bool,
}

#[derive(Debug, Default)]
struct State {
    /// Ready messages in memory, by priority then `seq` (requeued ones go
    /// back to their place); all of them come before the paged-out ones.
    ready: Ready,
    /// Ready messages on disk only, per priority level (page lane), each
    /// after that level's messages in `ready`.
    paged: Vec<Paged>,
    /// A read of paged-out messages is under way, per lane.
    loading: Vec<bool>,
    /// Changes when the paged-out part is dropped, so a read that was
    /// under way is ignored when it arrives.
    epoch: u64,
    /// `basic.get`s waiting for a read because the head ran dry.
    waiters: Vec<Waiter>,
    /// Delivered to a manual-ack consumer or `basic.get`, not yet settled.
    unacked: unacked::Unacked,
    /// By priority (highest first), then in the order they came.
    consumers: Vec<Arc<Consumer>>,
    /// Where the round-robin resumes.
    next_consumer: usize,
    next_seq: u64,
    had_consumer: bool,
    deleted: bool,
    /// How credit flow's pauses are doing (`congestion.rs`).
    flow: congestion::Flow,
    /// When the expiry timer that is running fires (ms since the epoch).
    timer_at: Option<u64>,
    /// Messages removed under the lock, to dead-letter once it is released.
    dead: Vec<(Arc<Message>, Reason)>,
    /// Their entries, whose removal from the store waits until their dead
    /// letters were published: a crash in between keeps a message twice
    /// (at least once), never loses it.
    dead_places: Vec<Entry>,
    /// The settings in force (arguments and policies merged): read under
    /// the lock publishing takes anyway, replaced whole when a policy changes.
    eff: Arc<Effective>,
    /// What passed through the queue (the lock is the only writer's).
    totals: QueueTotals,
    /// The publish under way whose write waits for its dispatch (`fresh`).
    fresh: fresh::Fresh,
}

/// What removing a consumer left behind.
#[derive(Debug, PartialEq, Eq)]
pub enum ConsumerRemoved {
    Remaining,
    /// The queue is auto-delete and that was its last consumer.
    LastOfAutoDelete,
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

impl Queue {
    pub fn new(
        name: String,
        vhost: String,
        durable: bool,
        exclusive_owner: Option<ConnectionId>,
        auto_delete: bool,
        arguments: FieldTable,
    ) -> Self {
        let config = QueueConfig::from_args(&arguments);
        let eff = Arc::new(Effective::from_args(&arguments, &config));
        let top = config.max_priority.unwrap_or(0);
        let ready = Ready::new(top);
        let lanes = usize::from(top) + 1;
        let is_stream = super::queue_args::is_stream(&arguments);
        Queue {
            name,
            vhost,
            durable,
            exclusive_owner,
            auto_delete,
            arguments,
            config,
            deleted: AtomicBool::new(false),
            store: None,
            home: Weak::new(),
            runtime: tokio::runtime::Handle::try_current().ok(),
            last_used: AtomicU64::new(now_ms()),
            expires: AtomicU64::new(eff.config.expires.unwrap_or(0)),
            expiry_generation: AtomicU64::new(0),
            congested: AtomicBool::new(false),
            drained: tokio::sync::Notify::new(),
            rates: QueueRates::default(),
            dedup: std::sync::OnceLock::new(),
            stream: std::sync::OnceLock::new(),
            is_stream,
            state: Mutex::new(State {
                next_seq: 1,
                ready,
                paged: vec![Paged::default(); lanes],
                loading: vec![false; lanes],
                eff,
                ..State::default()
            }),
        }
    }

    /// Makes the queue keep its persistent messages in `store` under `id`
    /// (and page out when its head is full). A new queue passes None and
    /// gets fresh ids: one, or one per priority level (its page lanes).
    pub fn persisted(mut self, store: StoreHandle, id: Option<u64>) -> Self {
        let id = id.unwrap_or_else(|| store.next_ids(u64::from(self.last_lane()) + 1));
        self.store = Some(QueueStore {
            handle: store,
            id,
            durable: true,
            windows: Default::default(),
            marked: Default::default(),
        });
        self
    }

    /// Lets a non-durable queue page messages out to `store` when memory
    /// is short; nothing of it survives a restart.
    pub fn paging(mut self, store: StoreHandle) -> Self {
        let id = store.next_ids(u64::from(self.last_lane()) + 1);
        self.store = Some(QueueStore {
            handle: store,
            id,
            durable: false,
            windows: Default::default(),
            marked: Default::default(),
        });
        self
    }

    /// The highest priority level (and page lane): 0 unless `x-max-priority`.
    pub fn last_lane(&self) -> u8 {
        self.config.max_priority.unwrap_or(0)
    }

    /// Places the queue in its vhost (for dead letters and `x-expires`).
    pub fn in_vhost(mut self, home: Weak<VHost>) -> Self {
        self.home = home;
        self
    }

    /// The queue's id in the store, if it is durable.
    pub fn store_id(&self) -> Option<u64> {
        self.store.as_ref().filter(|s| s.durable).map(|s| s.id)
    }

    /// Whether a persistent message routed here must be written to the
    /// store (a stream writes every message to its own log instead).
    pub fn is_persisted(&self) -> bool {
        self.store.as_ref().is_some_and(|s| s.durable) && !self.is_stream
    }

    /// Makes the queue a stream over `s` (once, as it is declared or restored).
    pub fn set_stream(&self, s: Arc<super::stream::Stream>) {
        let _ = self.stream.set(s);
    }

    /// Puts recovered messages back: the head in memory, in order (shared
    /// references already counted), the rest left on disk. `delivered_below`
    /// is the delivery mark on disk: no later mark may go below it, even for
    /// a place below it that came back without its flag.
    pub fn restore(
        self: &Arc<Self>,
        head: Vec<Entry>,
        paged: Vec<Paged>,
        next_seq: u64,
        delivered_below: u64,
    ) {
        let mut st = self.state.lock();
        st.next_seq = next_seq.max(1);
        if let Some(s) = &self.store {
            s.marked.store(delivered_below, Ordering::Relaxed);
        }
        // Pages read back at start-up are settled in ranges like later
        // reads, so a frontier must cover them first: past each lane's last.
        let mut read_back: Vec<Option<u64>> = vec![None; st.paged.len()];
        for mut e in head {
            if e.returns > 0 && st.eff.config.counts_deliveries() {
                e.message = Arc::new(dead::with_delivery_count(&e.message, e.returns));
            }
            if let Some(s) = self.store.as_ref().filter(|_| e.paged) {
                let lane = self.lane_of(e.priority);
                s.windows.lock().track(lane, e.seq);
                let last = &mut read_back[usize::from(lane)];
                *last = Some(last.map_or(e.seq, |l| l.max(e.seq)));
            }
            st.ready.push_back(e);
        }
        if let Some(s) = &self.store {
            for (lane, last) in read_back.iter().enumerate().filter_map(|(l, last)| Some((l, (*last)?))) {
                s.handle.submit(Op::PageFrontier { queue: s.id, lane: lane as u8, seq: last + 1 });
            }
        }
        for (lane, p) in paged.into_iter().enumerate().take(st.paged.len()) {
            st.paged[lane] = p;
        }
        // Timers start once every queue and binding is back (`kick`), so
        // dead letters of messages that expired meanwhile find their way.
    }

    /// Refuses access to another connection's exclusive queue.
    pub fn check_access(&self, conn: ConnectionId) -> Result<(), AmqpError> {
        match self.exclusive_owner {
            Some(owner) if owner != conn => Err(self.locked()),
            _ => Ok(()),
        }
    }

    pub fn locked(&self) -> AmqpError {
        AmqpError::resource_locked(format!(
            "cannot obtain exclusive access to locked queue '{}' in vhost '{}'. It could be \
             originally declared on another connection or the exclusive property value does \
             not match that of the original declaration.",
            self.name, self.vhost
        ))
    }

    /// Takes a routed message; hands it to a consumer at once if one has
    /// credit, pages it out if the head is full. Returns false if the
    /// queue refused it (full, with `x-overflow` = reject-publish[-dlx]).
    pub fn publish(self: &Arc<Self>, message: Arc<Message>) -> bool {
        self.offer(message) != Taken::Refused
    }

    /// As `publish`, and says whether the message went to a no-ack
    /// consumer without ever being written (`fresh`).
    pub fn offer(self: &Arc<Self>, message: Arc<Message>) -> Taken {
        if let Some(s) = self.stream.get() {
            return if s.append(&message) { Taken::Kept } else { Taken::Refused };
        }
        let mut st = self.state.lock();
        // A duplicate (`x-message-deduplication`) is dropped, confirmed: looked
        // up and remembered under this lock, so two publishes of one id take
        // turns, and no lock is held when this queue dead-letters.
        let dedup = self.dedup.get().map(|d| (d, d.key_of(&message)));
        let duplicate = dedup.as_ref().is_some_and(|(d, key)| !st.deleted && d.seen(key));
        if st.deleted || duplicate || self.over_limit(&st, &message) {
            // Deleted since routing, or full: its share of a stored message goes.
            if let Some(s) =
                self.store.as_ref().filter(|s| s.durable && message.is_stored() && message.shared)
            {
                s.handle.release(message.store_id, true);
            }
            if st.deleted || duplicate {
                return Taken::Kept;
            }
            if st.eff.config.overflow == Overflow::RejectPublishDlx {
                st.dead.push((message, Reason::Maxlen));
            }
            self.finish(st);
            return Taken::Refused;
        }
        let seq = st.next_seq;
        st.next_seq += 1;
        st.totals.published += 1;
        let ttl = st.eff.config.message_ttl;
        // The clock is read once: delivered in this call, the message is
        // delivered the moment it arrived (a TTL of 0 does not expire on a
        // millisecond ticking over in between).
        let arrived = (ttl.is_some() || message.info.expiration.is_some()).then(now_ms);
        let entry = Entry {
            seq,
            expires: arrived.map_or(0, |now| self.expiry_of(ttl, &message, now)),
            priority: message.info.priority.unwrap_or(0),
            message,
            returns: 0,
            redelivered: false,
            stored: false,
            paged: false,
        };
        let written = self.store.as_ref().is_some_and(|s| s.durable) && entry.message.info.persistent();
        let mut discarded = false;
        if self.may_defer_write(&st, &entry, dedup.is_some()) {
            st.fresh = fresh::Fresh::Waiting(seq);
            st.ready.push_back(entry);
            self.dispatch_at(&mut st, arrived);
            discarded = self.settle_fresh(&mut st);
        } else if !self.page_out(&mut st, &entry) {
            let stored = self.store_ready(&st, &entry);
            st.ready.push_back(Entry { stored, ..entry });
            self.dispatch_at(&mut st, arrived);
        }
        // After the message's own writes: a crash keeps the id only with it.
        if let Some((d, key)) = dedup {
            d.remember(key, written);
        }
        self.drop_head(&mut st);
        self.expire_due(&mut st);
        self.congest_if_full(&mut st);
        self.finish(st);
        if discarded {
            Taken::Discarded
        } else {
            Taken::Kept
        }
    }

    /// Releases the lock, then dead-letters what was removed under it.
    fn finish(self: &Arc<Self>, mut st: MutexGuard<'_, State>) {
        if st.dead.is_empty() {
            return;
        }
        st.count_dead();
        let (dead, eff) = (std::mem::take(&mut st.dead), st.eff.clone());
        let places = std::mem::take(&mut st.dead_places);
        drop(st);
        self.dead_letter(dead, &eff.config);
        // The copies first: the store's hold may keep a copy back (for a
        // consumer about to take it), which the originals' removals must
        // not overtake.
        if let Some(s) = self.store.as_ref().filter(|_| !places.is_empty()) {
            s.handle.write_held();
        }
        for e in &places {
            self.forget(e);
        }
    }

    /// Asks the queue to feed consumers that regained credit.
    pub fn kick(self: &Arc<Self>) {
        if let Some(s) = self.stream.get() {
            return s.kick();
        }
        let mut st = self.state.lock();
        self.dispatch(&mut st);
        self.finish(st);
    }

    fn dispatch(self: &Arc<Self>, st: &mut State) {
        self.dispatch_at(st, None);
    }

    /// As `dispatch`, with the time to judge expiry by if already read.
    fn dispatch_at(self: &Arc<Self>, st: &mut State, now: Option<u64>) {
        self.deliver_ready(st, now);
        self.fill(st);
        self.relieve(st);
    }

    pub fn is_deleted(&self) -> bool {
        self.deleted.load(Ordering::Acquire)
    }

    /// Ready messages (what `queue.declare-ok` reports).
    pub fn message_count(&self) -> u32 {
        if let Some(s) = self.stream.get() {
            return s.log.count().min(u64::from(u32::MAX)) as u32;
        }
        self.state.lock().len().min(u32::MAX as usize) as u32
    }

    /// Ready messages held in memory (the rest are paged out).
    pub fn in_memory(&self) -> usize {
        self.state.lock().ready.len()
    }

    pub fn consumer_count(&self) -> u32 {
        if let Some(s) = self.stream.get() {
            return s.consumer_count() as u32;
        }
        self.state.lock().consumers.len() as u32
    }

    pub fn is_unused(&self) -> bool {
        self.consumer_count() == 0
    }

    pub fn is_empty(&self) -> bool {
        if let Some(s) = self.stream.get() {
            return s.log.count() == 0;
        }
        self.state.lock().len() == 0
    }
}

impl State {
    /// `e` leaves the queue for the dead letters; its place in the store
    /// goes once they are published (`Queue::finish`).
    fn send_to_dead(&mut self, e: Entry, reason: Reason) {
        self.dead.push((e.message.clone(), reason));
        self.dead_places.push(e);
    }

    /// Ready messages, in memory and paged out.
    fn len(&self) -> usize {
        self.ready.len() + self.paged_count() as usize
    }

    /// Body bytes of ready messages, in memory and paged out.
    fn bytes(&self) -> u64 {
        self.ready.bytes() as u64 + self.paged.iter().map(|p| p.bytes).sum::<u64>()
    }

    fn paged_count(&self) -> u64 {
        self.paged.iter().map(|p| p.count).sum()
    }

    /// The highest lane with messages paged out.
    fn top_paged(&self) -> Option<usize> {
        self.paged.iter().rposition(|p| p.count > 0)
    }

    /// Whether the next message to deliver is on disk: nothing in memory
    /// but pages, or pages of a higher priority than anything in memory.
    fn next_is_paged(&self) -> bool {
        let Some(top) = self.top_paged() else { return false };
        let last = self.paged.len() - 1;
        self.ready.front().is_none_or(|e| top > usize::from(e.priority).min(last))
    }
}

#[cfg(test)]
use congestion::{CONGESTED_ABOVE, CONGESTED_BYTES, RELIEVED_BELOW, RELIEVED_BYTES};
#[cfg(test)]
mod tests;
