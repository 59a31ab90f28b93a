//! A queue's link to the store: the places of its stored messages, and
//! paging — beyond a bounded head, ready messages live only on disk and
//! are read back, in order and ahead of need, as consumers get to them.
//!
//! A paged-out message is written as a page: its place in the index plus
//! a copy of the message kept under that place, read back with one range
//! read (the messages and index families are built for writing, not for
//! reading while running). A priority queue pages each priority level
//! into a lane of its own and reads back the highest lane first.
//! Persistent messages of a durable queue go to
//! disk anyway, so paging them out costs no extra write. Other messages
//! are paged out (marked transient so a restart drops them) only while
//! the broker is short of memory. Once anything is paged out, every newer
//! message goes to disk too, so the order holds.

use std::sync::Arc;

use tracing::{error, warn};

use super::{Entry, Queue, State};
use crate::broker::message::Message;
use crate::store::{IndexEntry, Op, PageSink, RecordRef};

/// Paged-out messages read back at most this many at a time.
const READ_BATCH: usize = 4096;

/// Read back at a time for a priority lane that must go before a full head.
const URGENT_BATCH: usize = 256;

/// Paged-out messages read back, each with its message (none if its
/// record is damaged).
type TakenIn = Vec<(IndexEntry, Option<Arc<Message>>)>;

/// A read of a lane's pages: each is made into a message on the store's
/// reader thread, copied once out of the store's buffer while it is in
/// that thread's cache; then they are taken in and dispatched on a
/// runtime worker, where the consumers' connections run.
struct TakeIn {
    queue: Arc<Queue>,
    lane: usize,
    epoch: u64,
    taken: TakenIn,
}

impl PageSink for TakeIn {
    fn page(&mut self, place: IndexEntry, record: Option<RecordRef<'_>>) {
        let shared = place.has(IndexEntry::SHARED);
        let message = record.and_then(|r| Message::from_parts(place.message, r, shared));
        self.taken.push((place, message.map(Arc::new)));
    }

    fn done(self: Box<Self>, ok: bool) {
        let TakeIn { queue, lane, epoch, taken } = *self;
        let taken = ok.then_some(taken);
        match queue.runtime.clone() {
            Some(rt) => drop(rt.spawn(async move { queue.on_loaded(lane, epoch, taken) })),
            None => queue.on_loaded(lane, epoch, taken),
        }
    }
}

/// No-ack deliveries of one dispatch run settled in the store: submitted
/// together, one message to the writer instead of one per delivery. The
/// first is kept in place: a run of one (a publish handed straight to its
/// consumer) allocates nothing and goes as before. With them, the queue's
/// delivery mark for the run's manual-ack deliveries (`Op::Delivered`:
/// past the last; 0 if none).
#[derive(Default)]
pub(super) struct Settled {
    first: Option<Settle>,
    rest: Vec<Settle>,
    delivered_below: u64,
}

/// A place to remove (`seq`, and its page in lane `lane` if that goes on
/// its own) and the message to delete after it if it is kept apart (a
/// message kept in its place or page goes with it). `ranged`: the lane of
/// its page if that goes with a range instead.
#[derive(Clone, Copy)]
struct Settle {
    seq: u64,
    lane: Option<u8>,
    message: Option<u64>,
    ranged: Option<u8>,
}

impl Settled {
    fn push(&mut self, s: Settle) {
        match self.first {
            None => self.first = Some(s),
            Some(_) => self.rest.push(s),
        }
    }
}

impl Queue {
    /// The page lane of a message with this priority.
    pub(super) fn lane_of(&self, priority: u8) -> u8 {
        priority.min(self.last_lane())
    }

    /// The index entry of a message's place in this queue.
    fn place(&self, e: &Entry, paged: bool, delivered: bool) -> IndexEntry {
        let (seq, m) = (e.seq, &*e.message);
        let durable = self.is_persisted() && m.info.persistent() && m.is_stored();
        let mut flags = 0;
        for (on, flag) in [
            (delivered, IndexEntry::DELIVERED),
            (m.shared, IndexEntry::SHARED),
            (!durable, IndexEntry::TRANSIENT),
            (paged, IndexEntry::PAGED),
            (self.keeps_message(e, paged), IndexEntry::INLINE),
        ] {
            if on {
                flags |= flag;
            }
        }
        let lane = self.lane_of(e.priority);
        let (size, expires, returns) = (m.body().len() as u32, e.expires, e.returns);
        IndexEntry { seq, message: m.store_id, size, flags, expires, lane, returns }
    }

    /// Whether the entry's place keeps its message (`IndexEntry::INLINE`):
    /// persisted here, held here alone, not paged out, and small.
    fn keeps_message(&self, e: &Entry, paged: bool) -> bool {
        let m = &*e.message;
        let durable = self.is_persisted() && m.info.persistent() && m.is_stored();
        durable && !m.shared && !paged && m.body().len() < IndexEntry::INLINE_BELOW
    }

    /// The write of an entry's place: with its message if the place keeps
    /// it (`INLINE`), whole again to change a flag. `first`: nothing of
    /// the place is on disk before it (`Op::PlaceWith`).
    fn place_op(&self, queue: u64, e: &Entry, paged: bool, delivered: bool, first: bool) -> Op {
        let entry = self.place(e, paged, delivered);
        match entry.has(IndexEntry::INLINE) {
            true => Op::PlaceWith { queue, entry, record: e.message.record(), first },
            false => Op::Place { queue, entry },
        }
    }

    /// Whether the message is persisted for this (durable) queue.
    pub(super) fn durable_entry(&self, m: &Message) -> bool {
        self.is_persisted() && m.is_stored()
    }

    /// Writes a message kept in memory to the store if this durable queue
    /// persists it (a shared one was written once by the publisher; its
    /// place is this queue's). Returns whether it did.
    pub(super) fn store_place(&self, e: &Entry) -> bool {
        self.write_place(e, false, || false)
    }

    /// As `store_place`, for a message ready in this queue: its write may
    /// wait for a no-ack consumer expected to take it shortly
    /// (`Queue::taken_soon`, asked only of a message written here alone).
    pub(super) fn store_ready(&self, st: &State, e: &Entry) -> bool {
        self.write_place(e, false, || self.taken_soon(st, e))
    }

    /// As `store_place`, its place marked delivered (a message handed to a
    /// manual-ack consumer as it is written).
    pub(super) fn store_place_delivered(&self, e: &Entry) -> bool {
        self.write_place(e, true, || false)
    }

    fn write_place(&self, e: &Entry, delivered: bool, soon: impl FnOnce() -> bool) -> bool {
        let m = &e.message;
        let Some(s) = self.store.as_ref().filter(|_| self.durable_entry(m)) else { return false };
        let entry = self.place(e, false, delivered);
        match m.shared {
            // Written once by the publisher; the place is this queue's.
            true => s.handle.submit(Op::Place { queue: s.id, entry }),
            false => s.handle.submit_placed(s.id, entry, m.record(), soon()),
        }
        true
    }

    /// Pages a new message out instead of keeping it in memory, if the
    /// head is full (and the message is persisted anyway, or memory is
    /// short) or older messages of its priority are paged out already.
    /// Returns whether it did.
    pub(super) fn page_out(&self, st: &mut State, e: &Entry) -> bool {
        let Some(s) = &self.store else { return false };
        let m = &e.message;
        let lane = usize::from(self.lane_of(e.priority));
        if st.paged[lane].count == 0 {
            let limit = s.handle.head_limit();
            let full = st.ready.len() >= limit.messages || st.ready.bytes() >= limit.bytes;
            if !full || !(self.durable_entry(m) || s.handle.under_pressure()) {
                return false;
            }
        }
        let mut entry = self.place(e, true, false);
        if !self.durable_entry(m) {
            // A copy of its own, known only to this queue.
            entry.message = s.handle.next_id();
            entry.flags &= !IndexEntry::SHARED;
        }
        s.handle.submit(Op::Page { queue: s.id, entry, record: m.record() });
        st.paged[lane].push(&entry);
        true
    }

    /// Asks for the next paged-out messages of each lane that runs low:
    /// when the head is below half, or when the lane outranks everything
    /// in memory (its messages must go first).
    pub(super) fn fill(self: &Arc<Self>, st: &mut State) {
        let Some(s) = &self.store else { return };
        let limit = s.handle.head_limit();
        let (len, bytes) = (st.ready.len(), st.ready.bytes());
        let low = len < limit.messages / 2 && bytes < limit.bytes / 2;
        let top_in_memory = st.ready.front().map(|e| usize::from(self.lane_of(e.priority)));
        for lane in (0..st.paged.len()).rev() {
            let paged = st.paged[lane];
            if paged.count == 0 || st.loading[lane] || !(low || top_in_memory.is_none_or(|top| lane > top)) {
                continue;
            }
            let average = (paged.bytes / paged.count).max(1) as usize;
            // A lane that outranks a full head still comes back in batches
            // (at most `URGENT_BATCH` over the limit per lane).
            let room = limit.messages.saturating_sub(len).min(limit.bytes.saturating_sub(bytes) / average);
            let want =
                room.max(if low { 1 } else { URGENT_BATCH }).min(paged.count as usize).clamp(1, READ_BATCH);
            st.loading[lane] = true;
            let sink = TakeIn { queue: self.clone(), lane, epoch: st.epoch, taken: Vec::with_capacity(want) };
            if !s.handle.read(s.id + lane as u64, paged.from_seq, want, Box::new(sink)) {
                st.loading[lane] = false;
            }
        }
    }

    /// Paged-out messages came back: they join the head, in order.
    fn on_loaded(self: &Arc<Self>, lane: usize, epoch: u64, loaded: Option<TakenIn>) {
        let Some(s) = &self.store else { return };
        let mut st = self.state.lock();
        if st.epoch != epoch || st.deleted {
            return;
        }
        st.loading[lane] = false;
        let Some(loaded) = loaded else {
            // The store logged why; try again in a second (not in a hot loop).
            wake(&mut st);
            if let Some(rt) = &self.runtime {
                let queue = Arc::downgrade(self);
                rt.spawn(async move {
                    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                    if let Some(q) = queue.upgrade() {
                        q.kick();
                    }
                });
            }
            return;
        };
        if loaded.is_empty() {
            error!(queue = %self.name, missing = st.paged[lane].count, "paged-out messages are missing from the store");
            st.paged[lane] = Default::default();
        }
        // Read back up to here: on disk before anything read is settled
        // (recovery looks below it for pages of settled messages).
        if let Some((last, _)) = loaded.last() {
            s.handle.submit(Op::PageFrontier { queue: s.id, lane: lane as u8, seq: last.seq + 1 });
        }
        let mut windows = s.windows.lock();
        for (place, message) in loaded {
            st.paged[lane].pop(&place);
            let shared = place.has(IndexEntry::SHARED);
            let Some(message) = message else {
                warn!(queue = %self.name, seq = place.seq, "dropping a paged-out message damaged on disk");
                s.handle.submit(Op::Remove { queue: s.id, seq: place.seq, lane: Some(lane as u8) });
                if shared {
                    s.handle.release(place.message, true);
                }
                continue;
            };
            windows.track(lane as u8, place.seq);
            st.ready.push_back(Entry {
                seq: place.seq,
                expires: place.expires,
                returns: place.returns,
                priority: message.info.priority.unwrap_or(0),
                message,
                redelivered: place.has(IndexEntry::DELIVERED),
                stored: true,
                paged: true,
            });
        }
        drop(windows);
        wake(&mut st);
        // Over a length limit while everything was on disk: drop now.
        self.drop_head(&mut st);
        self.dispatch(&mut st);
        self.finish(st);
    }

    /// Drops the paged-out part (purge, delete) without reading it back:
    /// the store settles its places with range deletes. It looks at their
    /// index entries first (off the confirm path) only if some hold
    /// messages shared with other queues, or if other lanes' places may
    /// lie among them. `deleted`: the whole queue goes; a durable queue's
    /// caller then deletes its index and pages (`Op::DeleteQueue`).
    /// `with` is written in the same batch as the range deletes.
    pub(super) fn drop_paged(&self, st: &mut State, deleted: bool, with: Vec<Op>) {
        let lanes: Vec<(u8, u64)> = st
            .paged
            .iter()
            .enumerate()
            .filter(|(_, p)| p.count > 0)
            .map(|(lane, p)| (lane as u8, p.from_seq))
            .collect();
        if let Some(s) = &self.store {
            let shared = st.paged.iter().any(|p| p.shared > 0);
            // Other places of the queue: none in a one-lane queue's paged-out
            // span; in a deleted queue's, none that stay.
            let alone = st.paged.len() == 1 || (deleted && !s.durable);
            // A durable queue's deletion takes every place, shared ones aside.
            if lanes.is_empty() || (deleted && s.durable && !shared) {
                if !with.is_empty() {
                    s.handle.submit_all(with);
                }
            } else {
                let (count, look) = (st.paged_count(), shared || !alone);
                s.handle.drop_paged(s.id, lanes, st.next_seq, count, look, with);
            }
        }
        st.paged.iter_mut().for_each(|p| *p = Default::default());
        st.loading.iter_mut().for_each(|l| *l = false);
        st.epoch += 1;
        wake(st);
    }

    /// A delivery left the queue: no-ack ones are settled for good; the
    /// first delivery of a manual-ack one is remembered (redelivered after
    /// a restart): by the queue's delivery mark if it has one lane, else
    /// by its place, written again.
    /// `settled`: where a no-ack delivery's removal and the mark go,
    /// submitted by the caller with the others of its run (one message to
    /// the writer, not one per delivery).
    pub(super) fn on_delivered(&self, e: &Entry, no_ack: bool, settled: &mut Settled) {
        let Some(s) = self.store.as_ref().filter(|_| e.stored) else { return };
        if no_ack && e.message.shared {
            // Another queue may delete the message as soon as this hold is
            // let go: the place goes to the writer first (`forget`).
            self.forget(e);
        } else if no_ack {
            // As `release` (not shared): a paged entry's own copy goes with
            // its page; else its message, after its place.
            settled.push(self.settle_of(e));
        } else if !e.redelivered && self.durable_entry(&e.message) && e.message.info.persistent() {
            if self.last_lane() == 0 {
                // Delivered in seq order: the queue's mark says it for
                // every place below (recovery reads it so).
                settled.delivered_below = settled.delivered_below.max(e.seq + 1);
            } else {
                s.handle.submit(self.place_op(s.id, e, e.paged, true, false));
            }
        }
    }

    /// Submits what `on_delivered` settled: the places (with the messages
    /// they keep), then the messages kept apart (so consecutive places make
    /// a run for a range delete).
    pub(super) fn submit_settled(&self, settled: Settled) {
        let Some(s) = self.store.as_ref() else { return };
        let below = settled.delivered_below;
        if below > 0 && s.marked.fetch_max(below, std::sync::atomic::Ordering::Relaxed) < below {
            s.handle.submit(Op::Delivered { queue: s.id, below });
        }
        let Settled { first: Some(first), rest, .. } = settled else { return };
        let queue = s.id;
        let all = || std::iter::once(&first).chain(&rest);
        if rest.is_empty() {
            s.handle.submit_settle(queue, first.seq, first.lane, first.message);
        } else {
            let apart = all().filter(|x| x.message.is_some()).count();
            let mut ops = Vec::with_capacity(rest.len() + 1 + apart);
            ops.extend(all().map(|x| Op::Remove { queue, seq: x.seq, lane: x.lane }));
            ops.extend(all().filter_map(|x| x.message).map(|id| Op::DeleteMessage { id }));
            s.handle.submit_all(ops);
        }
        if all().any(|x| x.ranged.is_some()) {
            self.settle_pages(all().filter_map(|x| x.ranged.map(|lane| (lane, x.seq))));
        }
    }

    /// Where a settled entry's page goes: on its own, with its remove
    /// (`.0`: its lane), or with a range once its remove is submitted
    /// (`.1`: its lane; see `window`). Neither if it has no page.
    fn page_of(&self, e: &Entry) -> (Option<u8>, Option<u8>) {
        let Some(s) = self.store.as_ref().filter(|_| e.paged) else { return (None, None) };
        let lane = self.lane_of(e.priority);
        match s.windows.lock().tracks(lane, e.seq) {
            true => (None, Some(lane)),
            false => (Some(lane), None),
        }
    }

    /// Marks read-back pages settled whose removes were submitted, and
    /// submits the ranges ready to delete, under the windows' lock (a page
    /// written again meanwhile must come after its range).
    pub(super) fn settle_pages(&self, pages: impl IntoIterator<Item = (u8, u64)>) {
        let Some(s) = &self.store else { return };
        let mut windows = s.windows.lock();
        for (lane, seq) in pages {
            windows.settle(lane, seq);
        }
        submit_ranges(s, &mut windows);
    }

    /// Removes a settled entry from the store, and its message with the last reference.
    pub(super) fn forget(&self, e: &Entry) {
        if let Some(s) = self.store.as_ref().filter(|_| e.stored) {
            let ranged = if e.message.shared {
                let (lane, ranged) = self.page_of(e);
                s.handle.submit(Op::Remove { queue: s.id, seq: e.seq, lane });
                self.release(e);
                ranged
            } else {
                let x = self.settle_of(e);
                s.handle.submit_settle(s.id, x.seq, x.lane, x.message);
                x.ranged
            };
            if let Some(lane) = ranged {
                self.settle_pages([(lane, e.seq)]);
            }
        }
    }

    /// What settling an unshared entry removes: its place and, if the
    /// place or its page does not keep it, its message — as `release` does
    /// for an unshared one.
    fn settle_of(&self, e: &Entry) -> Settle {
        let (lane, ranged) = self.page_of(e);
        let message = self.kept_apart(e).then_some(e.message.store_id);
        Settle { seq: e.seq, lane, message, ranged }
    }

    /// Whether a stored entry's message is kept apart, not in its place or
    /// page: a shared one, or a large one.
    fn kept_apart(&self, e: &Entry) -> bool {
        e.message.shared || !(e.paged || self.keeps_message(e, false))
    }

    /// Drops the entry's hold on a message kept apart (its place goes with
    /// the queue); one kept in its place or page goes with that.
    pub(super) fn release(&self, e: &Entry) {
        if let Some(s) = self.store.as_ref().filter(|_| e.stored && self.kept_apart(e)) {
            s.handle.release(e.message.store_id, e.message.shared);
        }
    }

    /// What settling entries for good as one group writes (purge,
    /// delete): their places (unless `first`, the queue's deletion, takes
    /// them all) and messages let go by their last reference. Submitted
    /// together, a crash keeps all of them or none.
    pub(super) fn settle_all(&self, entries: Vec<Entry>, first: Option<Op>) -> Vec<Op> {
        let Some(s) = &self.store else { return Vec::new() };
        let each_place = first.is_none();
        let mut ops: Vec<Op> = first.into_iter().collect();
        let mut windows = s.windows.lock();
        for e in entries.iter().filter(|e| e.stored) {
            if each_place {
                // Each page on its own, in this batch, which may be written
                // after later ones (a purge's waits for a look at its
                // index): no range may reach it before.
                let lane = e.paged.then(|| self.lane_of(e.priority));
                if let Some(lane) = lane {
                    windows.gone(lane, e.seq);
                }
                ops.push(Op::Remove { queue: s.id, seq: e.seq, lane });
            }
            // As `release`: a message kept in its place or page goes with it.
            let m = &e.message;
            if self.kept_apart(e) && (!m.shared || s.handle.refs().release(m.store_id)) {
                ops.push(Op::DeleteMessage { id: m.store_id });
            }
        }
        // Ranges the purged pages closed (of pages settled before, never
        // of these), now and under the lock, as `settle_pages` does.
        submit_ranges(s, &mut windows);
        ops
    }

    /// Remembers on disk how often a persisted message came back, so the
    /// delivery limit holds across restarts.
    pub(super) fn store_returns(&self, e: &Entry) {
        if let Some(s) = self.store.as_ref().filter(|_| e.stored && self.durable_entry(&e.message)) {
            s.handle.submit(self.place_op(s.id, e, e.paged, true, false));
        }
    }

    /// Writes a settled place back (a no-ack delivery that never left).
    pub(super) fn restore_place(&self, e: &Entry) {
        let Some(s) = self.store.as_ref().filter(|_| e.stored) else { return };
        let m = &e.message;
        let retained = !m.shared || s.handle.refs().retain(m.store_id);
        let entry = self.place(e, e.paged, e.redelivered);
        if e.paged {
            // Live again: no range may take its page (if one took it
            // already, it is written again below and goes on its own).
            // Tracked and written under the lock ranges are submitted under.
            let mut windows = s.windows.lock();
            windows.track(entry.lane, e.seq);
            let page = Op::Page { queue: s.id, entry, record: m.record() };
            match m.shared && retained {
                true => {
                    s.handle.submit_all(vec![Op::PutMessage { id: m.store_id, record: m.record() }, page])
                }
                false => s.handle.submit(page),
            }
        } else if entry.has(IndexEntry::INLINE) {
            // Its place was removed with the message it kept.
            s.handle.submit(Op::PlaceWith { queue: s.id, entry, record: m.record(), first: true });
        } else {
            // The message and its place in one batch: a crash keeps both or neither.
            let place = Op::Place { queue: s.id, entry };
            match retained {
                true => {
                    s.handle.submit_all(vec![Op::PutMessage { id: m.store_id, record: m.record() }, place])
                }
                false => s.handle.submit(place),
            }
        }
    }
}

/// Submits the ranges of settled pages ready to delete, under the lock of
/// `windows` (a page written again after must come after its range).
fn submit_ranges(s: &super::QueueStore, windows: &mut super::window::Windows) {
    let pages = windows.take_ranges();
    if !pages.is_empty() {
        s.handle.submit(Op::DropPlaces { queue: s.id, index: Vec::new(), pages });
    }
}

/// Lets `basic.get`s waiting for a read look again.
fn wake(st: &mut State) {
    for w in st.waiters.drain(..) {
        w.wake();
    }
}

#[cfg(test)]
mod tests;
