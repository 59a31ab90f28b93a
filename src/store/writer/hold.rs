//! A message delivered as it is written waits about one disk sync for its
//! ack before it is written, and one written ready for a no-ack consumer
//! about to take it waits for that.
//!
//! A persistent message that reaches an empty queue with a manual-ack
//! consumer ready is delivered at once (`broker/queue/fresh.rs`) and its
//! write goes to the store with its place already marked delivered. A
//! consumer that keeps up acks it within a few hundred microseconds, but
//! the writer is faster: it writes the message in the batch it arrives in
//! and deletes it in the next, and RocksDB then carries, flushes and sorts
//! both. Held back for as long as a sync takes, the write usually meets
//! its deletion in a later batch, where `annihilate` drops both: nothing
//! reaches the disk, and the publisher's confirm needs no sync at all
//! (RabbitMQ's message store also confirms a message removed before it
//! was written).
//!
//! The same goes for a message written ready into a queue whose
//! consumers are all no-ack (`Queue::taken_soon`): a consumer a little
//! behind its publisher takes it within about a sync, and its delivery
//! removes the place as an ack would. Written at once, each such message
//! is written and deleted; held, the publisher's confirm waits for the
//! consumer (for at most the hold's window) rather than for the disk,
//! which also paces the publisher to the consumer.
//!
//! What may wait: the write of a message held by one queue and its place
//! flagged delivered (or ready, as above), sent together (`Cmd::Placed`:
//! one `PlaceWith`, or a `PutMessage` and its `Place` for a large body),
//! and nothing else of the batch about that message or place (a requeue,
//! a page, a dead letter: then it is written in order). Any other kind of
//! op in a batch (a queue's deletion, a deduplication id, a read of pages,
//! a shutdown) writes everything held first, and so does `WriteHeld`
//! (a queue dead-lettering sends it before removing the originals, whose
//! copies may be held). A barrier submitted after a held write waits for it: it is
//! answered once that write is on disk or annihilated, and no later than
//! the hold's end plus one sync.
//!
//! A consumer that acks late (after its work, say) would only make its
//! publishers wait longer for confirms: each queue keeps a score of how
//! its held writes ended, annihilated or written when due, and once they
//! are mostly written its writes are no longer held, but for one in 256
//! (a probe, which brings the hold back when its consumers speed up).

use std::time::{Duration, Instant};

use rustc_hash::FxHashMap;

use crate::store::{IndexEntry, Op};

/// The longest a write is held, however slow the disk.
const MAX_WINDOW: Duration = Duration::from_millis(2);

/// Queues scored at most (the scores start again past it).
const MAX_SCORED: usize = 16 * 1024;

/// How a queue's held writes have ended: annihilated (+1, up to 4) or
/// written when due (-2, down to -1). Below 0 only probes are held.
#[derive(Default, Clone, Copy)]
struct Score {
    level: i8,
    probes: u8,
}

/// A message delivered as it was written, or written ready for a no-ack
/// consumer, whose write may wait.
struct Candidate {
    /// Its place: (queue, seq).
    place: (u64, u64),
    /// Its number: barriers submitted after it wait for it.
    n: u64,
    since: Instant,
    /// Ready when written (not flagged delivered): a no-ack consumer was
    /// expected to take it, which removes its place.
    ready: bool,
    /// What the batch holds about it: its write, its place (one
    /// `PlaceWith` is both), anything else.
    puts: u8,
    places: u8,
    other: bool,
    /// Held back by the last split.
    held: bool,
}

#[derive(Default)]
pub(super) struct Hold {
    /// Candidates of the batch and those held from earlier ones, by message.
    fresh: FxHashMap<u64, Candidate>,
    /// The same, by place.
    places: FxHashMap<(u64, u64), u64>,
    /// Ops held back, in their order: the next batch starts with them.
    held: Vec<Op>,
    /// The ops a batch writes, while it is split (kept for its capacity).
    spare: Vec<Op>,
    /// Number of the last candidate.
    last: u64,
    /// Of the writes held: the lowest number and the earliest start.
    oldest: Option<(u64, Instant)>,
    /// How long a write may wait: the recent sync time, bounded.
    window: Duration,
    /// This batch writes everything.
    release: bool,
    /// Per queue.
    scores: FxHashMap<u64, Score>,
    /// The window stays as set (tests of the writer's loop).
    #[cfg(test)]
    fixed: bool,
}

impl Hold {
    /// A new message and its place in `queue`: a candidate if it was
    /// delivered as it was written, or is ready and expected to go to a
    /// no-ack consumer `soon` (and the writer syncs).
    pub fn register(&mut self, queue: u64, entry: &IndexEntry, soon: bool, now: Instant) {
        let delivered = entry.has(IndexEntry::DELIVERED);
        if self.window.is_zero() || !(delivered || soon) {
            return;
        }
        if self.scores.len() >= MAX_SCORED {
            self.scores.clear();
        }
        let score = self.scores.entry(queue).or_default();
        if score.level < 0 {
            score.probes = score.probes.wrapping_add(1);
            if score.probes != 0 {
                return;
            }
        }
        self.last += 1;
        let c = Candidate {
            place: (queue, entry.seq),
            n: self.last,
            since: now,
            ready: !delivered,
            puts: 0,
            places: 0,
            other: false,
            held: false,
        };
        if let Some(old) = self.fresh.insert(entry.message, c) {
            // An id written twice (taken back and delivered again): it is
            // about both writes, written in order.
            self.places.remove(&old.place);
            self.fresh.get_mut(&entry.message).expect("just put").other = true;
        }
        self.places.insert((queue, entry.seq), entry.message);
    }

    /// What a barrier submitted now waits for: every candidate so far.
    pub fn mark(&self) -> u64 {
        self.last
    }

    /// The batch being collected writes everything held.
    pub fn release(&mut self) {
        self.release = true;
    }

    /// Barriers whose mark is below this are answered with the batch just
    /// split; `None`: all of them.
    pub fn cut(&self) -> Option<u64> {
        self.oldest.map(|(n, _)| n)
    }

    /// How long the writer may wait for more before the oldest held write
    /// is due; `None` if nothing is held.
    pub fn due_in(&self, now: Instant) -> Option<Duration> {
        self.oldest.map(|(_, since)| (since + self.window).saturating_duration_since(now))
    }

    /// A hold whose window is `window` whatever the syncs take.
    #[cfg(test)]
    pub fn fixed(window: Duration) -> Hold {
        Hold { window, fixed: true, ..Hold::default() }
    }

    /// A synced write took `took`: how long the next writes may wait.
    pub fn observe_sync(&mut self, took: Duration) {
        #[cfg(test)]
        if self.fixed {
            return;
        }
        self.window = match self.window.is_zero() {
            // The first sync sets it at once.
            true => took,
            false => self.window - self.window / 8 + took / 8,
        }
        .min(MAX_WINDOW);
    }

    /// Moves the writes that may wait out of `ops` (annihilated already),
    /// keeping the order of both; returns the message bytes held.
    pub fn split(&mut self, ops: &mut Vec<Op>, now: Instant) -> usize {
        self.oldest = None;
        let release = std::mem::take(&mut self.release);
        if self.fresh.is_empty() {
            return 0;
        }
        if release || !self.scan(ops, now) {
            self.fresh.clear();
            self.places.clear();
            return 0;
        }
        let fresh = &self.fresh;
        let held = |op: &Op| match op {
            Op::PutMessage { id, .. } => fresh.get(id).is_some_and(|c| c.held),
            Op::Place { entry, .. } | Op::PlaceWith { entry, .. } => {
                fresh.get(&entry.message).is_some_and(|c| c.held)
            }
            _ => false,
        };
        let mut bytes = 0;
        for op in ops.drain(..) {
            if held(&op) {
                if let Op::PutMessage { record, .. } | Op::PlaceWith { record, .. } = &op {
                    let parts = record.parts();
                    bytes += parts.body.len() + parts.header.len();
                }
                self.held.push(op);
            } else {
                self.spare.push(op);
            }
        }
        std::mem::swap(ops, &mut self.spare);
        self.fresh.retain(|_, c| c.held);
        let fresh = &self.fresh;
        self.places.retain(|_, id| fresh.contains_key(id));
        self.oldest = self.fresh.values().fold(None, |o, c| match o {
            None => Some((c.n, c.since)),
            Some((n, since)) => Some((n.min(c.n), since.min(c.since))),
        });
        bytes
    }

    /// Ops held back, for the next batch to start with (`ops` is empty).
    pub fn resume(&mut self, ops: &mut Vec<Op>) {
        debug_assert!(ops.is_empty());
        std::mem::swap(ops, &mut self.held);
    }

    /// Counts what the batch holds about each candidate and marks those
    /// that may wait; false if nothing may (the batch holds an op of
    /// another kind).
    fn scan(&mut self, ops: &[Op], now: Instant) -> bool {
        for c in self.fresh.values_mut() {
            (c.puts, c.places) = (0, 0);
        }
        let (fresh, places) = (&mut self.fresh, &self.places);
        // Something else about a candidate's message or place.
        fn other(fresh: &mut FxHashMap<u64, Candidate>, id: Option<&u64>) {
            if let Some(c) = id.and_then(|id| fresh.get_mut(id)) {
                c.other = true;
            }
        }
        for op in ops {
            match op {
                Op::PutMessage { id, .. } => {
                    if let Some(c) = fresh.get_mut(id) {
                        c.puts = c.puts.saturating_add(1);
                    }
                }
                Op::Place { queue, entry } | Op::PlaceWith { queue, entry, .. } => {
                    match fresh.get_mut(&entry.message) {
                        Some(c)
                            if c.place == (*queue, entry.seq)
                                && (c.ready || entry.has(IndexEntry::DELIVERED)) =>
                        {
                            c.places = c.places.saturating_add(1);
                            if matches!(op, Op::PlaceWith { .. }) {
                                c.puts = c.puts.saturating_add(1);
                            }
                        }
                        Some(c) => c.other = true,
                        None => other(fresh, places.get(&(*queue, entry.seq))),
                    }
                }
                Op::Page { queue, entry, .. } => {
                    other(fresh, Some(&entry.message));
                    other(fresh, places.get(&(*queue, entry.seq)));
                }
                Op::DeleteMessage { id } => other(fresh, Some(id)),
                Op::Remove { queue, seq, .. } => other(fresh, places.get(&(*queue, *seq))),
                // Says only which places are redelivered after a restart:
                // one written later is marked the same.
                Op::Delivered { .. } => {}
                _ => return false,
            }
        }
        let mut any = false;
        for c in self.fresh.values_mut() {
            let whole = !c.other && c.puts == 1 && c.places == 1;
            let was_held = std::mem::replace(&mut c.held, whole && now.duration_since(c.since) < self.window);
            any |= c.held;
            // Annihilated: its ack came in time. Written when due after a
            // wait: it did not (a write already due when first looked at,
            // behind a long batch, says nothing of the consumers).
            let change = match (c.other, c.puts, c.places) {
                (false, 0, 0) => 1,
                _ if whole && !c.held && was_held => -2,
                _ => 0,
            };
            if change != 0 {
                let score = self.scores.entry(c.place.0).or_default();
                score.level = (score.level + change).clamp(-1, 4);
            }
        }
        any
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::MessageRecord;

    /// A message held by one queue, written in its place.
    fn placed(queue: u64, seq: u64, message: u64, flags: u8) -> Op {
        let entry = IndexEntry { seq, message, flags: flags | IndexEntry::INLINE, ..Default::default() };
        let record = MessageRecord { body: vec![0; 10].into(), ..Default::default() }.into();
        Op::PlaceWith { queue, entry, record, first: true }
    }

    fn place(queue: u64, seq: u64, message: u64, flags: u8) -> Op {
        Op::Place { queue, entry: IndexEntry { seq, message, flags, ..Default::default() } }
    }

    fn entry(seq: u64, message: u64) -> IndexEntry {
        IndexEntry { seq, message, flags: IndexEntry::DELIVERED, ..Default::default() }
    }

    fn hold() -> Hold {
        let mut h = Hold::default();
        h.observe_sync(Duration::from_millis(1));
        assert_eq!(h.window, Duration::from_millis(1), "the first sync sets the window");
        h.observe_sync(Duration::from_millis(9));
        assert_eq!(h.window, MAX_WINDOW);
        h
    }

    #[test]
    fn a_delivered_write_waits_and_a_barrier_after_it_waits_too() {
        let t0 = Instant::now();
        let mut h = hold();
        let before = h.mark();
        h.register(9, &entry(1, 1), false, t0);
        let after = h.mark();
        let mut ops = vec![placed(9, 1, 1, IndexEntry::DELIVERED), placed(9, 2, 2, 0)];
        assert_eq!(h.split(&mut ops, t0), 10);
        assert_eq!(ops, vec![placed(9, 2, 2, 0)]);
        let cut = h.cut().expect("something is held");
        assert!(before < cut && after >= cut);
        assert!(h.due_in(t0).is_some());
        // The next batch starts with it, and its ack annihilates both there.
        let mut next = Vec::new();
        h.resume(&mut next);
        assert_eq!(next, vec![placed(9, 1, 1, IndexEntry::DELIVERED)]);
        next.push(Op::Remove { queue: 9, seq: 1, lane: None });
        crate::store::writer::annihilate::annihilate(&mut next);
        assert_eq!(h.split(&mut next, t0), 0);
        assert!(next.is_empty());
        assert_eq!(h.cut(), None);
    }

    #[test]
    fn a_message_kept_apart_waits_with_its_place() {
        let t0 = Instant::now();
        let mut h = hold();
        h.register(9, &entry(1, 1), false, t0);
        let put = Op::PutMessage {
            id: 1,
            record: MessageRecord { body: vec![0; 10].into(), ..Default::default() }.into(),
        };
        let place = Op::Place { queue: 9, entry: entry(1, 1) };
        let mut ops = vec![put.clone(), place.clone()];
        assert_eq!(h.split(&mut ops, t0), 10);
        assert!(ops.is_empty());
        let mut next = Vec::new();
        h.resume(&mut next);
        assert_eq!(next, vec![put, place]);
    }

    #[test]
    fn a_ready_write_expected_soon_waits_for_its_no_ack_delivery() {
        let t0 = Instant::now();
        let mut h = hold();
        let ready = IndexEntry { seq: 1, message: 1, ..Default::default() };
        // Not expected soon: written at once.
        h.register(9, &ready, false, t0);
        let mut ops = vec![placed(9, 1, 1, 0)];
        assert_eq!(h.split(&mut ops, t0), 0);
        assert_eq!(ops.len(), 1);
        // Expected soon: held, a barrier after it waits, and the removal of
        // its delivery annihilates both in the next batch.
        h.register(9, &IndexEntry { seq: 2, message: 2, ..ready }, true, t0);
        let mark = h.mark();
        let mut ops = vec![placed(9, 2, 2, 0)];
        assert_eq!(h.split(&mut ops, t0), 10);
        assert!(ops.is_empty());
        assert!(h.cut().is_some_and(|cut| cut <= mark));
        let mut next = Vec::new();
        h.resume(&mut next);
        next.push(Op::Remove { queue: 9, seq: 2, lane: None });
        crate::store::writer::annihilate::annihilate(&mut next);
        assert_eq!(h.split(&mut next, t0), 0);
        assert!(next.is_empty());
        assert_eq!(h.cut(), None);
        // Paged out meanwhile: written in order.
        h.register(9, &IndexEntry { seq: 3, message: 3, ..ready }, true, t0);
        let record = MessageRecord::default().into();
        let page = Op::Page { queue: 9, entry: IndexEntry { seq: 3, message: 3, ..ready }, record };
        let mut ops = vec![placed(9, 3, 3, 0), page];
        assert_eq!(h.split(&mut ops, t0), 0);
        assert_eq!(ops.len(), 2);
    }

    #[test]
    fn a_delivery_mark_beside_it_does_not_stop_a_write_waiting() {
        let t0 = Instant::now();
        let mut h = hold();
        h.register(9, &entry(1, 1), false, t0);
        let mark = Op::Delivered { queue: 9, below: 7 };
        let mut ops = vec![mark.clone(), placed(9, 1, 1, IndexEntry::DELIVERED)];
        assert_eq!(h.split(&mut ops, t0), 10);
        assert_eq!(ops, vec![mark]);
    }

    #[test]
    fn a_write_waits_no_longer_than_its_window() {
        let t0 = Instant::now();
        let mut h = hold();
        h.register(9, &entry(1, 1), false, t0);
        let mut ops = vec![placed(9, 1, 1, IndexEntry::DELIVERED)];
        let later = t0 + Duration::from_millis(5);
        assert_eq!(h.split(&mut ops, later), 0);
        assert_eq!(ops.len(), 1);
        assert_eq!(h.cut(), None);
    }

    #[test]
    fn anything_else_about_the_message_writes_it_in_order() {
        let t0 = Instant::now();
        // A requeue rewrites the place; a dead letter places the message
        // elsewhere; a page or a removal of the place alone.
        let others = [
            placed(9, 1, 1, 0),
            place(8, 5, 1, 0),
            Op::Remove { queue: 9, seq: 1, lane: None },
            Op::Page { queue: 9, entry: entry(1, 1), record: MessageRecord::default().into() },
        ];
        for other in others {
            let mut h = hold();
            h.register(9, &entry(1, 1), false, t0);
            let mut ops = vec![placed(9, 1, 1, IndexEntry::DELIVERED), other.clone()];
            h.split(&mut ops, t0);
            assert_eq!(ops, vec![placed(9, 1, 1, IndexEntry::DELIVERED), other], "{ops:?}");
            assert_eq!(h.cut(), None);
        }
    }

    #[test]
    fn an_op_of_another_kind_writes_everything_held() {
        let t0 = Instant::now();
        let mut h = hold();
        h.register(9, &entry(1, 1), false, t0);
        let mut ops = vec![placed(9, 1, 1, IndexEntry::DELIVERED)];
        h.split(&mut ops, t0);
        assert!(ops.is_empty());
        let mut next = Vec::new();
        h.resume(&mut next);
        let scope = crate::store::DedupScope { vhost: "/".into(), name: "x".into(), queue: false };
        next.push(Op::DeleteDedup(scope, 4));
        let expected = next.clone();
        h.split(&mut next, t0);
        assert_eq!(next, expected);
        assert_eq!(h.cut(), None);
        // And a release asked for by the writer (a read, a shutdown).
        h.register(9, &entry(2, 2), false, t0);
        let mut ops = vec![placed(9, 2, 2, IndexEntry::DELIVERED)];
        h.release();
        h.split(&mut ops, t0);
        assert_eq!(ops.len(), 1);
    }

    #[test]
    fn a_queue_whose_consumers_ack_late_is_held_only_on_probes() {
        let t0 = Instant::now();
        let mut h = hold();
        let late = t0 + Duration::from_millis(5);
        // Due at once (behind a long batch): written, and that says nothing.
        h.register(9, &entry(1, 1), false, t0);
        let mut ops = vec![placed(9, 1, 1, IndexEntry::DELIVERED)];
        h.split(&mut ops, late);
        assert_eq!(ops.len(), 1);
        // Held, then written when due: the queue's score drops below zero.
        h.register(9, &entry(2, 2), false, t0);
        let mut ops = vec![placed(9, 2, 2, IndexEntry::DELIVERED)];
        h.split(&mut ops, t0);
        assert!(ops.is_empty(), "held while its queue's score is not below zero");
        let mut next = Vec::new();
        h.resume(&mut next);
        h.split(&mut next, late);
        assert_eq!(next.len(), 1);
        // From then on one write in 256 is held; another queue is not affected.
        let held = |h: &mut Hold, queue: u64, id: u64| {
            h.register(queue, &entry(id, id), false, t0);
            let mut ops = vec![placed(queue, id, id, IndexEntry::DELIVERED)];
            h.split(&mut ops, t0);
            let mut next = Vec::new();
            h.resume(&mut next);
            // Acked at once: annihilated with its write.
            next.push(Op::Remove { queue, seq: id, lane: None });
            crate::store::writer::annihilate::annihilate(&mut next);
            h.split(&mut next, t0);
            ops.is_empty()
        };
        assert!(held(&mut h, 8, 3));
        let probes = (10..10 + 256).filter(|id| held(&mut h, 9, *id)).count();
        assert_eq!(probes, 1);
        // The probe was acked in time: the queue is held again.
        assert!(held(&mut h, 9, 1000));
        assert!(held(&mut h, 9, 1001));
    }

    #[test]
    fn nothing_waits_before_the_first_sync() {
        let t0 = Instant::now();
        let mut h = Hold::default();
        h.register(9, &entry(1, 1), false, t0);
        let mut ops = vec![placed(9, 1, 1, IndexEntry::DELIVERED)];
        h.split(&mut ops, t0);
        assert_eq!(ops.len(), 1);
        assert_eq!(h.mark(), 0);
    }
}
