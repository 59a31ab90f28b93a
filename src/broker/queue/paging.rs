//! A queue's link to the store: the places of its stored messages, and
//! paging — beyond a bounded head, ready messages live only on disk and
//! are read back, in order and ahead of need, as consumers get to them.
//!
//! Persistent messages of a durable queue are on disk anyway, so paging
//! them out costs nothing. Other messages are written out (as copies of
//! their own, marked transient so a restart drops them) only while the
//! broker is short of memory. Once anything is paged out, every newer
//! message goes to disk too, so the order holds.

use std::sync::Arc;

use tracing::{error, warn};

use super::{Entry, Queue, State};
use crate::broker::message::Message;
use crate::store::{IndexEntry, Loaded, Op};

/// Paged-out messages read back at most this many at a time.
const READ_BATCH: usize = 4096;

impl Queue {
    /// The index entry of a message's place in this queue.
    fn place(&self, seq: u64, m: &Message, delivered: bool) -> IndexEntry {
        let durable = self.is_persisted() && m.info.persistent();
        let mut flags = 0;
        if delivered {
            flags |= IndexEntry::DELIVERED;
        }
        if m.shared {
            flags |= IndexEntry::SHARED;
        }
        if !durable {
            flags |= IndexEntry::TRANSIENT;
        }
        IndexEntry { seq, message: m.store_id, size: m.body.len() as u32, flags, expires: 0 }
    }

    /// Writes the place of a message stored for this (durable) queue;
    /// returns whether it did.
    pub(super) fn store_place(&self, seq: u64, m: &Message) -> bool {
        match &self.store {
            Some(s) if s.durable && m.is_stored() => {
                s.handle.submit(Op::Place { queue: s.id, entry: self.place(seq, m, false) });
                true
            }
            _ => false,
        }
    }

    /// Decides whether a new message goes to disk only, and writes a
    /// transient copy of it if it has no place yet.
    pub(super) fn page_out(&self, st: &mut State, seq: u64, m: &Arc<Message>, stored: bool) -> bool {
        let Some(s) = &self.store else { return false };
        if st.paged.count == 0 {
            let limit = s.handle.head_limit();
            let full = st.ready.len() >= limit.messages || st.head_bytes >= limit.bytes;
            if !full || !(stored || s.handle.under_pressure()) {
                return false;
            }
        }
        if !stored {
            let id = s.handle.next_id();
            s.handle.submit(Op::PutMessage { id, record: m.record() });
            let size = m.body.len() as u32;
            let entry = IndexEntry { seq, message: id, size, flags: IndexEntry::TRANSIENT, expires: 0 };
            s.handle.submit(Op::Place { queue: s.id, entry });
        }
        true
    }

    /// Asks for the next paged-out messages when the head runs low.
    pub(super) fn fill(self: &Arc<Self>, st: &mut State) {
        let Some(s) = &self.store else { return };
        if st.paged.count == 0 || st.loading {
            return;
        }
        let limit = s.handle.head_limit();
        let (room, byte_room) = (
            (limit.messages / 2).saturating_sub(st.ready.len()),
            (limit.bytes / 2).saturating_sub(st.head_bytes),
        );
        if room == 0 || byte_room == 0 {
            return;
        }
        let average = (st.paged.bytes / st.paged.count).max(1) as usize;
        let want = (limit.messages - st.ready.len())
            .min((limit.bytes - st.head_bytes.min(limit.bytes)) / average)
            .min(st.paged.count as usize)
            .clamp(1, READ_BATCH);
        st.loading = true;
        let (queue, epoch) = (self.clone(), st.epoch);
        s.handle.read(s.id, st.paged.from_seq, want, Box::new(move |loaded| queue.on_loaded(epoch, loaded)));
    }

    /// Paged-out messages came back: they join the head, in order.
    fn on_loaded(self: &Arc<Self>, epoch: u64, loaded: Option<Loaded>) {
        let Some(s) = &self.store else { return };
        let mut st = self.state.lock();
        if st.epoch != epoch || st.deleted {
            return;
        }
        st.loading = false;
        let Some(loaded) = loaded else {
            // The store logged why; the next dispatch asks again.
            wake(&mut st);
            return;
        };
        if loaded.is_empty() {
            error!(queue = %self.name, missing = st.paged.count, "paged-out messages are missing from the store");
            st.paged = Default::default();
        }
        for (place, record) in loaded {
            st.paged.count = st.paged.count.saturating_sub(1);
            st.paged.bytes = st.paged.bytes.saturating_sub(u64::from(place.size));
            st.paged.from_seq = place.seq + 1;
            let message =
                record.and_then(|r| Message::from_record(place.message, &r, place.has(IndexEntry::SHARED)));
            let Some(message) = message else {
                warn!(queue = %self.name, seq = place.seq, "dropping a paged-out message missing or damaged on disk");
                s.handle.submit(Op::Remove { queue: s.id, seq: place.seq });
                continue;
            };
            let redelivered = place.has(IndexEntry::DELIVERED);
            st.push_back(Entry { seq: place.seq, message: Arc::new(message), redelivered, stored: true });
        }
        wake(&mut st);
        self.dispatch(&mut st);
    }

    /// Drops the paged-out part (purge, delete): the store settles its places.
    pub(super) fn drop_paged(&self, st: &mut State) {
        if let (Some(s), true) = (&self.store, st.paged.count > 0) {
            s.handle.drop_range(s.id, st.paged.from_seq, st.next_seq);
        }
        st.paged = Default::default();
        st.loading = false;
        st.epoch += 1;
        wake(st);
    }

    /// A delivery left the queue: no-ack ones are settled for good; the
    /// first delivery of a manual-ack one is remembered (redelivered after
    /// a restart).
    pub(super) fn on_delivered(&self, e: &Entry, no_ack: bool) {
        let Some(s) = self.store.as_ref().filter(|_| e.stored) else { return };
        if no_ack {
            self.forget(e);
        } else if !e.redelivered && s.durable && e.message.info.persistent() {
            s.handle.submit(Op::Place { queue: s.id, entry: self.place(e.seq, &e.message, true) });
        }
    }

    /// Removes a settled entry from the store, and its message with the last reference.
    pub(super) fn forget(&self, e: &Entry) {
        if let Some(s) = self.store.as_ref().filter(|_| e.stored) {
            s.handle.submit(Op::Remove { queue: s.id, seq: e.seq });
            s.handle.release(e.message.store_id, e.message.shared);
        }
    }

    /// Drops the entry's hold on its message (its place goes with the queue).
    pub(super) fn release(&self, e: &Entry) {
        if let Some(s) = self.store.as_ref().filter(|_| e.stored) {
            s.handle.release(e.message.store_id, e.message.shared);
        }
    }

    /// Writes a settled place back (a no-ack delivery that never left).
    pub(super) fn restore_place(&self, e: &Entry) {
        let Some(s) = self.store.as_ref().filter(|_| e.stored) else { return };
        let m = &e.message;
        if !m.shared || s.handle.refs().retain(m.store_id) {
            s.handle.submit(Op::PutMessage { id: m.store_id, record: m.record() });
        }
        s.handle.submit(Op::Place { queue: s.id, entry: self.place(e.seq, m, e.redelivered) });
    }
}

/// Lets `basic.get`s waiting for a read look again.
fn wake(st: &mut State) {
    for w in st.waiters.drain(..) {
        let _ = w.try_send(());
    }
}
