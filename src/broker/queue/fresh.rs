//! A persistent message handed at once to a no-ack consumer is never
//! written, as RabbitMQ's classic queues `discard` it: its place would be
//! removed in the same breath, and its confirm need not wait for the disk
//! (the message has left the broker for good). The write waits until the
//! dispatch that follows the publish shows where the message went:
//!
//! - still ready (no consumer with credit): written as any other;
//! - to a manual-ack consumer: written before it leaves, its place
//!   marked delivered (one write instead of a place and its mark);
//! - to a no-ack consumer: not written (`Taken::Discarded`);
//! - taken back unsent (its connection went): written as it returns.
//!
//! Only a message that is alone in the queue (nothing ready, nothing paged
//! out, so the dispatch takes it first), with no TTL (it cannot expire into
//! a dead letter meanwhile), held by this queue alone and not deduplicated.

use super::{Entry, Queue, State};

/// A queue with more consumers than this is not looked through per message.
const SOON_CONSUMERS: usize = 4;

/// Where the message of the publish under way stands.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(super) enum Fresh {
    /// No publish is deferring its write.
    #[default]
    None,
    /// The message `seq` waits for the dispatch, not yet written.
    Waiting(u64),
    /// The message `seq` went to a no-ack consumer unwritten.
    Discarded(u64),
}

/// What a queue did with a published message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Taken {
    /// Full (`x-overflow` = reject-publish): its confirm is a nack.
    Refused,
    /// Kept, or dropped as a duplicate, or the queue went meanwhile.
    Kept,
    /// Handed at once to a no-ack consumer and never written: its confirm
    /// need not wait for the disk.
    Discarded,
}

impl Queue {
    /// Whether `e`'s write may wait for the dispatch that follows its publish.
    pub(super) fn may_defer_write(&self, st: &State, e: &Entry, deduplicated: bool) -> bool {
        let m = &e.message;
        st.ready.len() == 0
            && st.paged_count() == 0
            && e.expires == 0
            && !m.shared
            && !deduplicated
            && m.info.persistent()
            && self.durable_entry(m)
    }

    /// Whether a no-ack consumer is expected to take `e`, ready now,
    /// shortly: its queue's consumers (a few) are all no-ack, and it does
    /// not expire meanwhile. Its write may then wait for that (the store's
    /// hold, `store/writer/hold.rs`), so a no-ack consumer a little behind
    /// its publisher does not have every message written and removed.
    pub(super) fn taken_soon(&self, st: &State, e: &Entry) -> bool {
        e.expires == 0
            && !st.consumers.is_empty()
            && st.consumers.len() <= SOON_CONSUMERS
            && st.consumers.iter().all(|c| c.no_ack)
    }

    /// A deferred message leaves the queue for `no_ack` or not: one for a
    /// manual-ack consumer is written now (before any ack can remove it),
    /// its place marked delivered at once. True if `e` was that message:
    /// nothing else is written for its delivery.
    pub(super) fn on_fresh_delivery(&self, st: &mut State, e: &mut Entry, no_ack: bool) -> bool {
        if st.fresh != Fresh::Waiting(e.seq) {
            return false;
        }
        if no_ack {
            st.fresh = Fresh::Discarded(e.seq);
        } else {
            st.fresh = Fresh::None;
            e.stored = self.store_place_delivered(e);
        }
        true
    }

    /// A no-ack delivery taken back unsent (during the dispatch of its
    /// publish, or later: its channel or connection went): a persistent
    /// message of this durable queue that was never written is written
    /// now, as it is ready again (its publisher may have had its confirm).
    /// For anything else `store_place` writes nothing.
    pub(super) fn on_fresh_return(&self, st: &mut State, e: &mut Entry) {
        if st.fresh == Fresh::Discarded(e.seq) {
            st.fresh = Fresh::None;
        }
        if !e.stored && !e.paged {
            e.stored = self.store_place(e);
        }
    }

    /// After the dispatch of a deferred publish: writes the message if it
    /// is still ready, and says whether it was discarded.
    pub(super) fn settle_fresh(&self, st: &mut State) -> bool {
        match std::mem::take(&mut st.fresh) {
            Fresh::None => false,
            Fresh::Discarded(_) => true,
            Fresh::Waiting(seq) => {
                // Alone in the queue when published, and nothing took it.
                let mut e = st.ready.pop_front().expect("the deferred message is still ready");
                debug_assert_eq!(e.seq, seq);
                e.stored = self.store_ready(st, &e);
                st.ready.push_back(e);
                false
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use amq_protocol::types::{AMQPValue, FieldTable};
    use bytes::Bytes;

    use super::Taken;
    use crate::broker::consumer::{Consumer, ConsumerSpec, Outbound};
    use crate::broker::message::Message;
    use crate::broker::queue::{Entry, Queue};
    use crate::store::memory::MemoryStore;
    use crate::store::writer::HeadLimit;
    use crate::store::{IndexEntry, Op, Store, StoreHandle};

    struct Fixture {
        store: Arc<MemoryStore>,
        handle: StoreHandle,
        queue: Arc<Queue>,
    }

    fn fixture() -> Fixture {
        fixture_with(FieldTable::default())
    }

    fn fixture_with(arguments: FieldTable) -> Fixture {
        let store = Arc::new(MemoryStore::default());
        let head = HeadLimit { messages: 1000, bytes: 1 << 30 };
        let handle = StoreHandle::start(store.clone(), false, 1, Default::default(), head);
        let queue = Queue::new("q".into(), "/".into(), true, None, false, arguments);
        Fixture { store, queue: Arc::new(queue.persisted(handle.clone(), None)), handle }
    }

    impl Fixture {
        /// A persistent message with a store id, as `VHost::enqueue` makes it.
        fn message(&self) -> Arc<Message> {
            let mut m = Message::new(
                Bytes::new(),
                Bytes::from_static(b"q"),
                Bytes::new(),
                Default::default(),
                "x".into(),
            );
            m.info.delivery_mode = 2;
            m.store_id = self.handle.next_id();
            Arc::new(m)
        }

        fn consumer(&self, no_ack: bool) -> (Arc<Consumer>, tokio::sync::mpsc::UnboundedReceiver<Outbound>) {
            let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
            let spec = ConsumerSpec { tag: "c".into(), no_ack, ..Default::default() };
            let c = Arc::new(Consumer::new(spec, Default::default(), tx));
            self.queue.add_consumer(c.clone()).unwrap();
            (c, rx)
        }

        /// What the store holds once everything submitted is written:
        /// the queue's places, and whether message `id` is there (held
        /// by this queue alone, it is kept in its place).
        fn on_disk(&self, id: u64) -> (Vec<IndexEntry>, bool) {
            assert!(self.handle.write_durably([]));
            let mut places = Vec::new();
            let queue = self.queue.store_id().unwrap();
            self.store.scan_places(queue, 0, u64::MAX, &mut |e| places.push(e)).unwrap();
            let seqs: Vec<u64> = places.iter().filter(|e| e.message == id).map(|e| e.seq).collect();
            let kept = self.store.read_places(queue, &seqs).unwrap().iter().any(Option::is_some);
            assert!(self.store.read_messages(&[id]).unwrap()[0].is_none(), "kept apart too");
            (places, kept)
        }
    }

    #[test]
    fn a_message_handed_at_once_to_a_no_ack_consumer_is_never_written() {
        let f = fixture();
        let (_c, mut rx) = f.consumer(true);
        let m = f.message();
        assert_eq!(f.queue.offer(m.clone()), Taken::Discarded);
        assert!(matches!(rx.try_recv(), Ok(Outbound::Deliver(d)) if d.entry.seq == 1 && !d.entry.stored));
        assert_eq!(f.on_disk(m.store_id), (Vec::new(), false));
        assert_eq!(f.queue.message_count(), 0);
    }

    #[test]
    fn a_ready_message_is_expected_soon_only_by_no_ack_consumers() {
        let f = fixture();
        let entry = |expires| Entry {
            seq: 1,
            expires,
            priority: 0,
            message: f.message(),
            returns: 0,
            redelivered: false,
            stored: false,
            paged: false,
        };
        let soon = |e: &Entry| f.queue.taken_soon(&f.queue.state.lock(), e);
        assert!(!soon(&entry(0)), "nobody consumes");
        let (_a, _ra) = f.consumer(true);
        assert!(soon(&entry(0)));
        assert!(!soon(&entry(5)), "it may expire meanwhile");
        let (_b, _rb) = f.consumer(false);
        assert!(!soon(&entry(0)), "a manual-ack consumer may take it");
    }

    #[test]
    fn a_message_nobody_takes_at_once_is_written_as_before() {
        let f = fixture();
        let m = f.message();
        assert_eq!(f.queue.offer(m.clone()), Taken::Kept);
        let (places, kept) = f.on_disk(m.store_id);
        assert!(kept);
        assert_eq!(
            places.iter().map(|p| (p.seq, p.flags)).collect::<Vec<_>>(),
            vec![(1, IndexEntry::INLINE)]
        );
        // Written once, so a later no-ack delivery settles it in the store.
        let (_c, mut rx) = f.consumer(true);
        assert!(matches!(rx.try_recv(), Ok(Outbound::Deliver(d)) if d.entry.stored));
        assert_eq!(f.on_disk(m.store_id), (Vec::new(), false));
    }

    #[test]
    fn a_message_for_a_manual_ack_consumer_is_written_marked_delivered() {
        let f = fixture();
        let (_c, mut rx) = f.consumer(false);
        let m = f.message();
        assert_eq!(f.queue.offer(m.clone()), Taken::Kept);
        let Ok(Outbound::Deliver(d)) = rx.try_recv() else { panic!("no delivery") };
        assert!(d.entry.stored && !d.entry.redelivered);
        let (places, kept) = f.on_disk(m.store_id);
        assert!(kept);
        let flags: Vec<_> = places.iter().map(|p| (p.seq, p.flags)).collect();
        assert_eq!(flags, vec![(1, IndexEntry::DELIVERED | IndexEntry::INLINE)]);
        f.queue.ack(&[1]);
        assert_eq!(f.on_disk(m.store_id), (Vec::new(), false));
    }

    #[test]
    fn a_delivery_taken_back_unsent_and_delivered_again_never_lowers_the_mark() {
        let f = fixture();
        let (a, b) = (f.message(), f.message());
        assert_eq!(f.queue.offer(a), Taken::Kept);
        assert_eq!(f.queue.offer(b), Taken::Kept);
        let (c, mut rx) = f.consumer(false);
        let mut got = Vec::new();
        while let Ok(o) = rx.try_recv() {
            got.extend(o.into_deliveries());
        }
        assert_eq!(got.iter().map(|d| d.entry.seq).collect::<Vec<_>>(), vec![1, 2]);
        let queue = f.queue.store_id().unwrap();
        assert!(f.handle.write_durably([]));
        assert_eq!(f.store.delivered_marks().unwrap(), vec![(queue, 3)]);
        // Seq 1 never left: back as it was (not redelivered), and delivered
        // again to another consumer; 2 was delivered and stays so.
        f.queue.remove_consumer(&c);
        let first = got.remove(0);
        f.queue.clone().return_undelivered(first);
        let (_other, mut rx) = f.consumer(false);
        assert!(
            matches!(rx.try_recv(), Ok(Outbound::Deliver(d)) if d.entry.seq == 1 && !d.entry.redelivered)
        );
        assert!(f.handle.write_durably([]));
        assert_eq!(f.store.delivered_marks().unwrap(), vec![(queue, 3)]);
    }

    #[test]
    fn a_restored_queue_never_writes_a_mark_below_the_one_on_disk() {
        let f = fixture();
        let queue = f.queue.store_id().unwrap();
        // Back from a restart whose mark said 10, with a place below it that
        // lost its delivered flag (a page rewrite that did not happen).
        f.store.write(&[Op::Delivered { queue, below: 10 }], false).unwrap();
        let entry = Entry {
            seq: 5,
            message: f.message(),
            expires: 0,
            returns: 0,
            priority: 0,
            redelivered: false,
            stored: true,
            paged: false,
        };
        f.queue.restore(vec![entry], Vec::new(), 10, 10);
        let (c, mut rx) = f.consumer(false);
        assert!(matches!(rx.try_recv(), Ok(Outbound::Deliver(d)) if d.entry.seq == 5));
        assert!(f.handle.write_durably([]));
        assert_eq!(f.store.delivered_marks().unwrap(), vec![(queue, 10)], "not lowered");
        // A message written before it is delivered still raises it.
        f.queue.remove_consumer(&c);
        assert_eq!(f.queue.offer(f.message()), Taken::Kept);
        let (_other, mut rx) = f.consumer(false);
        assert!(matches!(
            rx.try_recv(),
            Ok(Outbound::Deliver(d)) if d.entry.seq == 10 && d.entry.stored && !d.entry.redelivered
        ));
        assert!(f.handle.write_durably([]));
        assert_eq!(f.store.delivered_marks().unwrap(), vec![(queue, 11)]);
    }

    #[test]
    fn a_discarded_delivery_that_comes_back_unsent_is_written() {
        let f = fixture();
        let (_c, rx) = f.consumer(true);
        // The consumer's connection is gone: the delivery comes straight back.
        drop(rx);
        let m = f.message();
        assert_eq!(f.queue.offer(m.clone()), Taken::Kept);
        assert_eq!(f.queue.message_count(), 1);
        let (places, kept) = f.on_disk(m.store_id);
        assert!(kept);
        assert_eq!(places.iter().map(|p| p.seq).collect::<Vec<_>>(), vec![1]);
    }

    #[test]
    fn a_discarded_delivery_returned_later_is_written() {
        let f = fixture();
        let (c, mut rx) = f.consumer(true);
        let m = f.message();
        assert_eq!(f.queue.offer(m.clone()), Taken::Discarded);
        let Ok(Outbound::Deliver(d)) = rx.try_recv() else { panic!("no delivery") };
        // Its channel closed before the delivery reached the socket.
        f.queue.remove_consumer(&c);
        f.queue.clone().return_undelivered(d);
        assert_eq!(f.queue.message_count(), 1);
        let (places, kept) = f.on_disk(m.store_id);
        assert!(kept);
        assert_eq!(places.iter().map(|p| p.seq).collect::<Vec<_>>(), vec![1]);
    }

    #[test]
    fn a_message_with_a_ttl_is_written_before_it_is_handed_over() {
        // It could expire into a dead letter before it is sent: as before.
        let mut ttl = FieldTable::default();
        ttl.insert("x-message-ttl".into(), AMQPValue::LongInt(60_000));
        let f = fixture_with(ttl);
        let (_c, mut rx) = f.consumer(true);
        let m = f.message();
        assert_eq!(f.queue.offer(m.clone()), Taken::Kept);
        assert!(matches!(rx.try_recv(), Ok(Outbound::Deliver(d)) if d.entry.stored));
        assert_eq!(f.on_disk(m.store_id), (Vec::new(), false));
    }
}
