//! Reading pages back when the store fails part way through a read.

use std::sync::Arc;
use std::time::{Duration, Instant};

use amq_protocol::types::FieldTable;
use bytes::Bytes;
use parking_lot::Mutex;

use crate::broker::consumer::{Consumer, ConsumerSpec, Outbound};
use crate::broker::message::Message;
use crate::broker::queue::Queue;
use crate::protocol::properties::ContentHeader;
use crate::store::memory::MemoryStore;
use crate::store::writer::HeadLimit;
use crate::store::{
    Delayed, IndexEntry, MessageRecord, Op, RecordRef, Recovered, Result, Store, StoreError, StoreHandle,
};

/// A memory store whose next read of pages hands over at most
/// `after` pages, then fails (`panics`: panics instead); once.
struct Flaky {
    inner: MemoryStore,
    armed: Mutex<Option<Failure>>,
    /// The armed read's limit and how many pages it handed over.
    seen: Mutex<Option<(usize, usize)>>,
}

#[derive(Clone, Copy)]
struct Failure {
    after: usize,
    panics: bool,
}

impl Store for Flaky {
    fn write(&self, ops: &[Op], sync: bool) -> Result<()> {
        self.inner.write(ops, sync)
    }
    fn load(&self) -> Result<Recovered> {
        self.inner.load()
    }
    fn scan_index(&self, f: &mut dyn FnMut(u64, IndexEntry)) -> Result<()> {
        self.inner.scan_index(f)
    }
    fn scan_places(&self, queue: u64, from: u64, to: u64, f: &mut dyn FnMut(IndexEntry)) -> Result<()> {
        self.inner.scan_places(queue, from, to, f)
    }
    fn read_messages(&self, ids: &[u64]) -> Result<Vec<Option<MessageRecord>>> {
        self.inner.read_messages(ids)
    }
    fn read_places(&self, queue: u64, seqs: &[u64]) -> Result<Vec<Option<MessageRecord>>> {
        self.inner.read_places(queue, seqs)
    }
    fn visit_pages(
        &self,
        queue: u64,
        from_seq: u64,
        limit: usize,
        f: &mut dyn FnMut(IndexEntry, Option<RecordRef<'_>>),
    ) -> Result<()> {
        let Some(failure) = self.armed.lock().take() else {
            return self.inner.visit_pages(queue, from_seq, limit, f);
        };
        let mut handed = 0;
        self.inner.visit_pages(queue, from_seq, limit.min(failure.after), &mut |e, r| {
            handed += 1;
            f(e, r)
        })?;
        *self.seen.lock() = Some((limit, handed));
        if failure.panics {
            panic!("the test store panics part way on purpose");
        }
        Err(StoreError::Read("the test store fails part way on purpose".into()))
    }
    fn page_frontiers(&self) -> Result<Vec<(u64, u64)>> {
        self.inner.page_frontiers()
    }

    fn delivered_marks(&self) -> Result<Vec<(u64, u64)>> {
        self.inner.delivered_marks()
    }
    fn scan_page_seqs(&self, queue: u64, to_seq: u64, f: &mut dyn FnMut(u64)) -> Result<()> {
        self.inner.scan_page_seqs(queue, to_seq, f)
    }
    fn read_delayed(
        &self,
        vhost: &str,
        exchange: &str,
        from: (u64, u64),
        limit: (usize, usize),
    ) -> Result<(Vec<Delayed>, bool)> {
        self.inner.read_delayed(vhost, exchange, from, limit)
    }
}

#[test]
fn a_read_of_pages_that_fails_part_way_loses_and_repeats_nothing() {
    // Failing before any page, and after some (by error and by panic).
    for (after, panics) in [(0, false), (3, false), (3, true)] {
        let seen = drain_through(Failure { after, panics });
        assert_eq!(seen.1, after, "pages handed over before the failure");
        assert!(seen.1 < seen.0, "the failed read was not cut short: {seen:?}");
    }
}

/// Publishes into a queue whose head holds 8, arms the failure, drains
/// with a no-ack consumer and checks that every message came once, in
/// order, and nothing stays on disk. Returns what the failed read saw.
fn drain_through(failure: Failure) -> (usize, usize) {
    let store =
        Arc::new(Flaky { inner: MemoryStore::default(), armed: Mutex::new(None), seen: Mutex::new(None) });
    let head = HeadLimit { messages: 8, bytes: 1 << 30 };
    let handle = StoreHandle::start(store.clone(), false, 1, Default::default(), head);
    let queue = Queue::new("q".into(), "/".into(), true, None, false, FieldTable::default());
    let queue = Arc::new(queue.persisted(handle.clone(), None));
    const N: u64 = 40;
    for i in 0..N {
        let body = Bytes::from(format!("m{i}"));
        // Class 60, weight 0, the body's size, delivery-mode 2 (persistent).
        let mut header = vec![0, 60, 0, 0];
        header.extend_from_slice(&(body.len() as u64).to_be_bytes());
        header.extend_from_slice(&[0x10, 0x00, 2]);
        let info = ContentHeader::scan(&header).unwrap();
        let mut m = Message::new(Bytes::new(), Bytes::from_static(b"q"), header.into(), info, body);
        m.store_id = handle.next_id();
        queue.offer(Arc::new(m));
    }
    assert!(handle.write_durably([]));
    let lane = queue.store_id().unwrap();
    assert_eq!(store.inner.read_pages(lane, 0, usize::MAX).unwrap().len(), N as usize - 8, "paged out");
    *store.armed.lock() = Some(failure);
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let spec = ConsumerSpec { tag: "c".into(), no_ack: true, ..Default::default() };
    queue.add_consumer(Arc::new(Consumer::new(spec, Default::default(), tx))).unwrap();
    let mut got = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while (got.len() as u64) < N && Instant::now() < deadline {
        match rx.try_recv() {
            Ok(Outbound::Deliver(d)) => got.push((d.entry.seq, d.entry.message.body_bytes())),
            Ok(Outbound::Deliveries(ds)) => {
                got.extend(ds.iter().map(|d| (d.entry.seq, d.entry.message.body_bytes())))
            }
            Ok(other) => panic!("{other:?}"),
            Err(_) => {
                // Without a runtime the queue does not retry on its own: a
                // later dispatch (a publish, an ack, a consumer) reads again.
                std::thread::sleep(Duration::from_millis(10));
                queue.kick();
            }
        }
    }
    let seen = store.seen.lock().expect("no read failed");
    let want: Vec<_> = (1..=N).map(|seq| (seq, Bytes::from(format!("m{}", seq - 1)))).collect();
    assert_eq!(got, want, "every message once, in order");
    assert!(rx.try_recv().is_err(), "a message came twice");
    // Everything delivered (no-ack) is settled: no place and no page stays.
    // The lock, once had, is past the last dispatch and what it submitted.
    queue.kick();
    assert!(handle.write_durably([]));
    let mut places = Vec::new();
    store.inner.scan_places(lane, 0, u64::MAX, &mut |e| places.push(e.seq)).unwrap();
    assert_eq!(places, Vec::<u64>::new());
    assert!(store.inner.read_pages(lane, 0, usize::MAX).unwrap().is_empty(), "pages left behind");
    seen
}
