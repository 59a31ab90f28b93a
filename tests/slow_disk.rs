//! A slow (or failing) disk stalls only those who wait for it: while one
//! connection waits for `tx.commit`, a durable declare or a `basic.get` of
//! a message still on disk, the others are served — on a broker with a
//! single runtime worker, which a blocking wait would stop for everyone.
//! The waiting connection still sees today's semantics: its replies in
//! order, nothing processed ahead of an owed answer, the same errors.

mod common;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use amq_protocol::frame::AMQPFrame;
use amq_protocol::protocol::basic::AMQPProperties;
use amq_protocol::protocol::{basic, channel, confirm, exchange, queue, tx, AMQPClass};
use amq_protocol::types::FieldTable;
use common::{message, method, queue_declare_with, Raw, Read};
use parking_lot::Mutex;
use warren::config::Config;
use warren::server::Server;
use warren::store::memory::MemoryStore;
use warren::store::{
    IndexEntry, MessageRecord, Op, RecordRef, Recovered, Result as StoreResult, Store, StoreError,
};

/// How long the test store takes per synced write: far longer than any
/// round trip the other connections make meanwhile.
const SLOW: Duration = Duration::from_millis(1000);

/// A memory store whose synced writes (and reads of pages) take their
/// time, and which can be told to fail; it keeps the ops written, in order.
#[derive(Default)]
struct SlowStore {
    inner: MemoryStore,
    sync_ms: AtomicU64,
    read_ms: AtomicU64,
    scan_ms: AtomicU64,
    failing: AtomicBool,
    written: Mutex<Vec<Op>>,
    /// Synced writes so far (a confirm that waits for the disk waits for one).
    syncs: AtomicU64,
}

impl Store for SlowStore {
    fn write(&self, ops: &[Op], sync: bool) -> StoreResult<()> {
        if sync {
            std::thread::sleep(Duration::from_millis(self.sync_ms.load(Ordering::Relaxed)));
            self.syncs.fetch_add(1, Ordering::Relaxed);
        }
        if self.failing.load(Ordering::Relaxed) {
            return Err(StoreError::Write("the test store fails on purpose".into()));
        }
        self.written.lock().extend_from_slice(ops);
        self.inner.write(ops, sync)
    }
    fn load(&self) -> StoreResult<Recovered> {
        self.inner.load()
    }
    fn scan_index(&self, f: &mut dyn FnMut(u64, IndexEntry)) -> StoreResult<()> {
        self.inner.scan_index(f)
    }
    fn scan_places(
        &self,
        queue: u64,
        from_seq: u64,
        to_seq: u64,
        f: &mut dyn FnMut(IndexEntry),
    ) -> StoreResult<()> {
        std::thread::sleep(Duration::from_millis(self.scan_ms.load(Ordering::Relaxed)));
        self.inner.scan_places(queue, from_seq, to_seq, f)
    }
    fn read_messages(&self, ids: &[u64]) -> StoreResult<Vec<Option<MessageRecord>>> {
        self.inner.read_messages(ids)
    }
    fn read_places(&self, queue: u64, seqs: &[u64]) -> StoreResult<Vec<Option<MessageRecord>>> {
        self.inner.read_places(queue, seqs)
    }
    fn visit_pages(
        &self,
        queue: u64,
        from_seq: u64,
        limit: usize,
        f: &mut dyn FnMut(IndexEntry, Option<RecordRef<'_>>),
    ) -> StoreResult<()> {
        std::thread::sleep(Duration::from_millis(self.read_ms.load(Ordering::Relaxed)));
        self.inner.visit_pages(queue, from_seq, limit, f)
    }
    fn page_frontiers(&self) -> StoreResult<Vec<(u64, u64)>> {
        self.inner.page_frontiers()
    }

    fn delivered_marks(&self) -> StoreResult<Vec<(u64, u64)>> {
        self.inner.delivered_marks()
    }
    fn scan_page_seqs(&self, queue: u64, to_seq: u64, f: &mut dyn FnMut(u64)) -> StoreResult<()> {
        self.inner.scan_page_seqs(queue, to_seq, f)
    }
    fn read_delayed(
        &self,
        vhost: &str,
        exchange: &str,
        from: (u64, u64),
        limit: (usize, usize),
    ) -> StoreResult<(Vec<warren::store::Delayed>, bool)> {
        self.inner.read_delayed(vhost, exchange, from, limit)
    }
}

async fn start(store: Arc<SlowStore>, tweak: impl FnOnce(&mut Config)) -> Server {
    let mut config = Config::default();
    config.amqp.listen = "127.0.0.1:0".parse().unwrap();
    config.admin.listen = None;
    config.metrics.listen = None;
    config.storage.data_dir =
        std::env::temp_dir().join(format!("warren-slow-disk-{}-{}", std::process::id(), fastrand::u64(..)));
    tweak(&mut config);
    Server::start_with_store(config, store).await.expect("server starts")
}

async fn slow_broker() -> (Server, Arc<SlowStore>) {
    let store = Arc::new(SlowStore::default());
    store.sync_ms.store(SLOW.as_millis() as u64, Ordering::Relaxed);
    (start(store.clone(), |_| {}).await, store)
}

fn persistent() -> AMQPProperties {
    AMQPProperties::default().with_delivery_mode(2)
}

fn durable_declare(ch: u16, name: &str) -> Vec<u8> {
    queue_declare_with(ch, name, false, true, false, false)
}

fn tx_select(ch: u16) -> Vec<u8> {
    method(ch, AMQPClass::Tx(tx::AMQPMethod::Select(tx::Select {})))
}

fn tx_commit(ch: u16) -> Vec<u8> {
    method(ch, AMQPClass::Tx(tx::AMQPMethod::Commit(tx::Commit {})))
}

fn bind(ch: u16, queue: &str, exchange: &str) -> Vec<u8> {
    let b = queue::Bind {
        queue: queue.into(),
        exchange: exchange.into(),
        routing_key: queue.into(),
        nowait: false,
        arguments: FieldTable::default(),
    };
    method(ch, AMQPClass::Queue(queue::AMQPMethod::Bind(b)))
}

fn exchange_declare(ch: u16, name: &str) -> Vec<u8> {
    let d = exchange::Declare {
        exchange: name.into(),
        kind: "direct".into(),
        passive: false,
        durable: true,
        auto_delete: false,
        internal: false,
        nowait: false,
        arguments: FieldTable::default(),
    };
    method(ch, AMQPClass::Exchange(exchange::AMQPMethod::Declare(d)))
}

/// A name no other test (or run) uses.
fn unique(what: &str) -> String {
    format!("slow-{what}-{}", fastrand::u64(..))
}

/// Nothing arrives on `raw` for a moment: its answer is still owed.
async fn still_waiting(raw: &mut Raw) {
    match raw.read(Duration::from_millis(50)).await {
        Read::Silent => {}
        other => panic!("the answer came before the disk did: {other:?}"),
    }
}

/// A connection that is not waiting for the disk is served meanwhile:
/// transient round trips (declare, publish, get) on its own queue.
async fn served_meanwhile(addr: std::net::SocketAddr) {
    let mut other = Raw::open(addr).await;
    other.open_channel(1).await;
    for _ in 0..5 {
        other.round_trip(1).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 1)]
async fn a_commit_waiting_for_the_disk_stalls_no_other_connection() {
    let (server, _store) = slow_broker().await;
    let addr = server.local_addr;
    let q = unique("commit");
    let mut a = Raw::open(addr).await;
    a.open_channel(1).await;
    a.send(&durable_declare(1, &q)).await;
    assert!(matches!(a.expect_method_on(1).await, AMQPClass::Queue(queue::AMQPMethod::DeclareOk(_))));
    a.send(&tx_select(1)).await;
    assert!(matches!(a.expect_method_on(1).await, AMQPClass::Tx(tx::AMQPMethod::SelectOk(_))));
    a.send(&message(1, "", &q, persistent(), b"held", 4096)).await;
    a.send(&tx_commit(1)).await;
    served_meanwhile(addr).await;
    still_waiting(&mut a).await;
    assert!(matches!(a.expect_method_on(1).await, AMQPClass::Tx(tx::AMQPMethod::CommitOk(_))));
    // What was committed is there.
    let mut b = Raw::open(addr).await;
    b.open_channel(1).await;
    assert_eq!(b.get(1, &q).await.map(|(_, body)| body).as_deref(), Some(&b"held"[..]));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 1)]
async fn a_durable_declare_waiting_for_the_disk_stalls_no_other_connection() {
    let (server, store) = slow_broker().await;
    let addr = server.local_addr;
    let (q, ex) = (unique("declare"), unique("exchange"));
    let mut a = Raw::open(addr).await;
    a.open_channel(1).await;
    a.send(&durable_declare(1, &q)).await;
    served_meanwhile(addr).await;
    still_waiting(&mut a).await;
    assert!(matches!(a.expect_method_on(1).await, AMQPClass::Queue(queue::AMQPMethod::DeclareOk(_))));
    a.send(&exchange_declare(1, &ex)).await;
    served_meanwhile(addr).await;
    still_waiting(&mut a).await;
    assert!(matches!(a.expect_method_on(1).await, AMQPClass::Exchange(exchange::AMQPMethod::DeclareOk(_))));
    a.send(&bind(1, &q, &ex)).await;
    served_meanwhile(addr).await;
    still_waiting(&mut a).await;
    assert!(matches!(a.expect_method_on(1).await, AMQPClass::Queue(queue::AMQPMethod::BindOk(_))));
    // Each answer came once its record was written.
    let written = store.written.lock().clone();
    assert!(written.iter().any(|op| matches!(op, Op::PutQueue(r) if r.name == q)));
    assert!(written.iter().any(|op| matches!(op, Op::PutExchange(r) if r.name == ex)));
    assert!(written.iter().any(|op| matches!(op, Op::PutBinding(r) if r.destination == q)));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 1)]
async fn answers_keep_their_order_and_nothing_runs_ahead_of_an_owed_one() {
    let (server, _store) = slow_broker().await;
    let addr = server.local_addr;
    let (q1, q2) = (unique("order-1"), unique("order-2"));
    let mut a = Raw::open(addr).await;
    a.open_channel(1).await;
    a.open_channel(2).await;
    // All sent at once: each waits for the one before it to be answered.
    let mut burst = durable_declare(1, &q1);
    burst.extend(durable_declare(2, &q2));
    burst.extend(bind(1, &q1, "amq.direct"));
    burst.extend(tx_select(2));
    burst.extend(message(2, "", &q1, persistent(), b"one", 4096));
    burst.extend(tx_commit(2));
    // A get on the other channel, after the commit: it must see the message.
    burst.extend(common::basic_get(1, &q1));
    a.send(&burst).await;
    let answers = [
        (1, "queue.declare-ok"),
        (2, "queue.declare-ok"),
        (1, "queue.bind-ok"),
        (2, "tx.select-ok"),
        (2, "tx.commit-ok"),
        (1, "basic.get-ok"),
    ];
    for (ch, want) in answers {
        let got = match a.expect_frame().await {
            AMQPFrame::Method(id, m) => (id, describe(&m)),
            other => panic!("expected {want} on channel {ch}, got {other:?}"),
        };
        assert_eq!(got, (ch, want));
    }
    assert_eq!(a.expect_content(1).await.1, b"one");
    server.stop().await;
}

fn describe(m: &AMQPClass) -> &'static str {
    match m {
        AMQPClass::Queue(queue::AMQPMethod::DeclareOk(_)) => "queue.declare-ok",
        AMQPClass::Queue(queue::AMQPMethod::BindOk(_)) => "queue.bind-ok",
        AMQPClass::Tx(tx::AMQPMethod::SelectOk(_)) => "tx.select-ok",
        AMQPClass::Tx(tx::AMQPMethod::CommitOk(_)) => "tx.commit-ok",
        AMQPClass::Basic(basic::AMQPMethod::GetOk(_)) => "basic.get-ok",
        AMQPClass::Basic(basic::AMQPMethod::GetEmpty(_)) => "basic.get-empty",
        AMQPClass::Channel(channel::AMQPMethod::CloseOk(_)) => "channel.close-ok",
        AMQPClass::Queue(queue::AMQPMethod::PurgeOk(_)) => "queue.purge-ok",
        AMQPClass::Basic(basic::AMQPMethod::CancelOk(_)) => "basic.cancel-ok",
        _ => "something else",
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 1)]
async fn a_channel_closed_behind_a_pending_commit_is_closed_after_commit_ok() {
    let (server, _store) = slow_broker().await;
    let addr = server.local_addr;
    let q = unique("close");
    let mut a = Raw::open(addr).await;
    a.open_channel(1).await;
    a.send(&durable_declare(1, &q)).await;
    a.expect_method_on(1).await;
    a.send(&tx_select(1)).await;
    a.expect_method_on(1).await;
    let mut burst = message(1, "", &q, persistent(), b"kept", 4096);
    burst.extend(tx_commit(1));
    let close = channel::Close { reply_code: 200, reply_text: "bye".into(), class_id: 0, method_id: 0 };
    burst.extend(method(1, AMQPClass::Channel(channel::AMQPMethod::Close(close))));
    a.send(&burst).await;
    assert_eq!(describe(&a.expect_method_on(1).await), "tx.commit-ok");
    assert_eq!(describe(&a.expect_method_on(1).await), "channel.close-ok");
    let mut b = Raw::open(addr).await;
    b.open_channel(1).await;
    assert_eq!(b.get(1, &q).await.map(|(_, body)| body).as_deref(), Some(&b"kept"[..]));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 1)]
async fn a_connection_gone_while_waiting_leaves_its_change_in_place() {
    let (server, _store) = slow_broker().await;
    let addr = server.local_addr;
    let q = unique("gone");
    let mut a = Raw::open(addr).await;
    a.open_channel(1).await;
    a.send(&durable_declare(1, &q)).await;
    drop(a);
    served_meanwhile(addr).await;
    // The declare was made (as it would have been with the worker blocked).
    let mut b = Raw::open(addr).await;
    b.open_channel(1).await;
    b.send(&queue_declare_with(1, &q, true, false, false, false)).await;
    assert_eq!(describe(&b.expect_method_on(1).await), "queue.declare-ok");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 1)]
async fn a_declare_the_disk_refuses_gives_541_and_leaves_nothing_behind() {
    let (server, store) = slow_broker().await;
    let addr = server.local_addr;
    let q = unique("failed");
    store.failing.store(true, Ordering::Relaxed);
    let mut a = Raw::open(addr).await;
    a.open_channel(1).await;
    a.send(&durable_declare(1, &q)).await;
    let (code, text, class, method_id) = a.expect_connection_close().await;
    assert_eq!((code, class, method_id), (541, 50, 10), "{text}");
    assert!(text.contains("could not be written to disk"), "{text}");
    // The queue the store did not take is gone again; the broker still
    // serves, though it writes nothing more until a restart.
    store.failing.store(false, Ordering::Relaxed);
    let mut b = Raw::open(addr).await;
    b.open_channel(1).await;
    b.send(&queue_declare_with(1, &q, true, false, false, false)).await;
    let (code, _, _, _) = b.expect_channel_close(1).await;
    assert_eq!(code, 404);
    b.open_channel(2).await;
    b.send(&durable_declare(2, &q)).await;
    let (code, text, _, _) = b.expect_connection_close().await;
    assert_eq!(code, 541, "a store that failed once takes nothing more: {text}");
    common::assert_serving(addr).await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 1)]
async fn a_commit_the_disk_refuses_gives_541() {
    let (server, store) = slow_broker().await;
    let addr = server.local_addr;
    let q = unique("failed");
    let mut b = Raw::open(addr).await;
    b.open_channel(2).await;
    b.send(&durable_declare(2, &q)).await;
    b.expect_method_on(2).await;
    b.send(&tx_select(2)).await;
    b.expect_method_on(2).await;
    store.failing.store(true, Ordering::Relaxed);
    b.send(&message(2, "", &q, persistent(), b"lost", 4096)).await;
    b.send(&tx_commit(2)).await;
    let (code, text, class, method_id) = b.expect_connection_close().await;
    assert_eq!((code, class, method_id), (541, 90, 20), "{text}");
    assert!(text.contains("transaction could not be written to disk"), "{text}");
    common::assert_serving(addr).await;
    server.stop().await;
}

/// A persistent message a durable queue hands at once to a no-ack consumer
/// is never written: its confirm does not wait for the (slow) disk, and
/// nothing of it reaches the store. One nobody takes is written first.
#[tokio::test(flavor = "multi_thread", worker_threads = 1)]
async fn a_message_consumed_as_it_is_published_is_confirmed_without_the_disk() {
    let (server, store) = slow_broker().await;
    let addr = server.local_addr;
    let (taken, kept) = (unique("taken"), unique("kept"));
    let mut a = Raw::open(addr).await;
    a.open_channel(1).await;
    a.open_channel(2).await;
    for q in [&taken, &kept] {
        a.send(&durable_declare(1, q)).await;
        assert_eq!(describe(&a.expect_method_on(1).await), "queue.declare-ok");
    }
    consumer_and_confirms(&mut a, &taken, true).await;
    let syncs = store.syncs.load(Ordering::Relaxed);
    a.send(&message(1, "", &taken, persistent(), b"taken", 4096)).await;
    let (mut acked, mut delivered) = (false, false);
    while !(acked && delivered) {
        match a.expect_frame().await {
            AMQPFrame::Method(1, AMQPClass::Basic(basic::AMQPMethod::Ack(ack))) => {
                assert_eq!(ack.delivery_tag, 1);
                // Confirmed with no sync since the publish.
                assert_eq!(store.syncs.load(Ordering::Relaxed), syncs, "the confirm waited for the disk");
                acked = true;
            }
            AMQPFrame::Method(2, AMQPClass::Basic(basic::AMQPMethod::Deliver(_))) => {
                assert_eq!(a.expect_content(2).await.1, b"taken");
                delivered = true;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    a.send(&message(1, "", &kept, persistent(), b"kept", 4096)).await;
    assert!(matches!(a.expect_method_on(1).await, AMQPClass::Basic(basic::AMQPMethod::Ack(_))));
    assert!(store.syncs.load(Ordering::Relaxed) > syncs, "a message nobody took was confirmed before a sync");
    let messages = store.written.lock().iter().filter(|op| message_write(op).is_some()).count();
    assert_eq!(messages, 1, "only the message nobody took is written");
    server.stop().await;
}

/// A consumer on `queue` (channel 2, tag "c"), and confirms on channel 1.
async fn consumer_and_confirms(a: &mut Raw, queue: &str, no_ack: bool) {
    let consume = basic::Consume {
        queue: queue.into(),
        consumer_tag: "c".into(),
        no_local: false,
        no_ack,
        exclusive: false,
        nowait: false,
        arguments: FieldTable::default(),
    };
    a.send(&method(2, AMQPClass::Basic(basic::AMQPMethod::Consume(consume)))).await;
    a.expect_method_on(2).await;
    let select = confirm::Select { nowait: false };
    a.send(&method(1, AMQPClass::Confirm(confirm::AMQPMethod::Select(select)))).await;
    a.expect_method_on(1).await;
}

/// The message a write puts on disk first: kept apart (shared), or in
/// its place (held by one queue; not a rewrite of the place's flags).
fn message_write(op: &Op) -> Option<&warren::store::SharedRecord> {
    match op {
        Op::PutMessage { record, .. } | Op::PlaceWith { record, first: true, .. } => Some(record),
        _ => None,
    }
}

fn written_bodies(store: &SlowStore, body: &[u8]) -> usize {
    let written = store.written.lock();
    written.iter().filter_map(message_write).filter(|record| record.parts().body == body).count()
}

/// A message handed at once to a manual-ack consumer may wait for its ack
/// before it is written (`store/writer/hold.rs`), but its confirm does not
/// come before it is on disk while the ack does not come.
#[tokio::test(flavor = "multi_thread", worker_threads = 1)]
async fn a_message_delivered_as_it_is_written_is_confirmed_once_on_disk_if_not_acked() {
    let (server, store) = slow_broker().await;
    store.sync_ms.store(20, Ordering::Relaxed);
    let mut a = Raw::open(server.local_addr).await;
    a.open_channel(1).await;
    a.open_channel(2).await;
    for round in 0..3 {
        // A queue each: one whose write was due unacked is held no more.
        let q = unique("unacked");
        a.send(&durable_declare(1, &q)).await;
        assert_eq!(describe(&a.expect_method_on(1).await), "queue.declare-ok");
        consumer_and_confirms(&mut a, &q, false).await;
        let body = format!("unacked {round}");
        a.send(&message(1, "", &q, persistent(), body.as_bytes(), 4096)).await;
        let (mut confirmed, mut delivered) = (false, false);
        while !(confirmed && delivered) {
            match a.expect_frame().await {
                AMQPFrame::Method(1, AMQPClass::Basic(basic::AMQPMethod::Ack(_))) => {
                    assert_eq!(written_bodies(&store, body.as_bytes()), 1, "confirmed before it was written");
                    confirmed = true;
                }
                AMQPFrame::Method(2, AMQPClass::Basic(basic::AMQPMethod::Deliver(_))) => {
                    assert_eq!(a.expect_content(2).await.1, body.as_bytes());
                    delivered = true;
                }
                other => panic!("unexpected {other:?}"),
            }
        }
        cancel_consumer(&mut a).await;
    }
    server.stop().await;
}

async fn cancel_consumer(a: &mut Raw) {
    let cancel = basic::Cancel { consumer_tag: "c".into(), nowait: false };
    a.send(&method(2, AMQPClass::Basic(basic::AMQPMethod::Cancel(cancel)))).await;
    assert_eq!(describe(&a.expect_method_on(2).await), "basic.cancel-ok");
}

/// The same message acked as it is delivered is confirmed without the
/// disk: its write met its deletion and neither was written. (The hold
/// lasts about a sync, 2 ms at most: a round may miss it on a loaded
/// machine, so each round takes a queue of its own and one must hit.)
#[tokio::test(flavor = "multi_thread", worker_threads = 1)]
async fn a_message_acked_as_it_is_delivered_is_confirmed_without_the_disk() {
    let (server, store) = slow_broker().await;
    store.sync_ms.store(20, Ordering::Relaxed);
    let mut a = Raw::open(server.local_addr).await;
    a.open_channel(1).await;
    a.open_channel(2).await;
    let mut hits = 0;
    for round in 0..10 {
        let q = unique("acked");
        a.send(&durable_declare(1, &q)).await;
        assert_eq!(describe(&a.expect_method_on(1).await), "queue.declare-ok");
        consumer_and_confirms(&mut a, &q, false).await;
        let body = format!("acked {round}");
        let syncs = store.syncs.load(Ordering::Relaxed);
        a.send(&message(1, "", &q, persistent(), body.as_bytes(), 4096)).await;
        let (mut confirmed, mut delivered) = (false, false);
        while !(confirmed && delivered) {
            match a.expect_frame().await {
                AMQPFrame::Method(1, AMQPClass::Basic(basic::AMQPMethod::Ack(_))) => confirmed = true,
                AMQPFrame::Method(2, AMQPClass::Basic(basic::AMQPMethod::Deliver(d))) => {
                    assert_eq!(a.expect_content(2).await.1, body.as_bytes());
                    let ack = basic::Ack { delivery_tag: d.delivery_tag, multiple: false };
                    a.send(&method(2, AMQPClass::Basic(basic::AMQPMethod::Ack(ack)))).await;
                    delivered = true;
                }
                other => panic!("unexpected {other:?}"),
            }
        }
        let unwritten = written_bodies(&store, body.as_bytes()) == 0;
        hits += usize::from(unwritten && store.syncs.load(Ordering::Relaxed) == syncs);
        // The next round's consumer is on another queue.
        cancel_consumer(&mut a).await;
        if hits > 0 {
            break;
        }
    }
    assert!(hits > 0, "every acked message was written, its confirm waiting for a sync");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 1)]
async fn a_publish_into_a_queue_still_being_declared_is_confirmed_after_the_queue_is_on_disk() {
    let (server, store) = slow_broker().await;
    let addr = server.local_addr;
    let q = unique("confirm");
    let mut a = Raw::open(addr).await;
    a.open_channel(1).await;
    a.send(&durable_declare(1, &q)).await;
    // Another connection publishes into it before its declare-ok went out.
    let mut b = Raw::open(addr).await;
    b.open_channel(1).await;
    let select = confirm::Select { nowait: false };
    b.send(&method(1, AMQPClass::Confirm(confirm::AMQPMethod::Select(select)))).await;
    b.expect_method_on(1).await;
    b.send(&message(1, "", &q, persistent(), b"early", 4096)).await;
    assert!(matches!(b.expect_method_on(1).await, AMQPClass::Basic(basic::AMQPMethod::Ack(_))));
    // Acked: the queue's record was written no later than the message's place.
    let written = store.written.lock().clone();
    let queue_at = written.iter().position(|op| matches!(op, Op::PutQueue(r) if r.name == q));
    let place_at = written.iter().position(|op| {
        matches!(op, Op::Place { .. } | Op::PlaceWith { .. } | Op::Page { .. } | Op::PutMessage { .. })
    });
    assert!(queue_at.is_some() && queue_at < place_at, "queue at {queue_at:?}, message at {place_at:?}");
    assert_eq!(describe(&a.expect_method_on(1).await), "queue.declare-ok");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 1)]
async fn a_get_of_messages_still_on_disk_waits_for_them_without_stalling_others() {
    let store = Arc::new(SlowStore::default());
    let server = start(store.clone(), |c| c.storage.queue_head_messages = 4).await;
    let addr = server.local_addr;
    let q = unique("paged");
    let mut a = Raw::open(addr).await;
    a.open_channel(1).await;
    a.send(&durable_declare(1, &q)).await;
    a.expect_method_on(1).await;
    const N: usize = 20;
    for i in 0..N {
        a.send(&message(1, "", &q, persistent(), format!("m{i}").as_bytes(), 4096)).await;
    }
    // Every read of paged-out messages now takes its time.
    store.read_ms.store(SLOW.as_millis() as u64, Ordering::Relaxed);
    let mut got = Vec::new();
    let mut overlapped = 0;
    while got.len() < N {
        a.send(&common::basic_get(1, &q)).await;
        match a.read(Duration::from_millis(100)).await {
            Read::Silent => {
                // Waiting for the disk: the others are served meanwhile.
                served_meanwhile(addr).await;
                let mut answer = a.read(Duration::from_millis(50)).await;
                if matches!(answer, Read::Silent) {
                    // ...and were done before the disk was.
                    overlapped += 1;
                    answer = Read::Frame(AMQPFrame::Method(1, a.expect_method_on(1).await));
                }
                match answer {
                    Read::Frame(AMQPFrame::Method(1, AMQPClass::Basic(basic::AMQPMethod::GetOk(_)))) => {}
                    other => panic!("expected get-ok for a message on disk, got {other:?}"),
                }
            }
            Read::Frame(AMQPFrame::Method(1, AMQPClass::Basic(basic::AMQPMethod::GetOk(_)))) => {}
            other => panic!("expected get-ok, got {other:?}"),
        }
        got.push(a.expect_content(1).await.1);
    }
    let want: Vec<Vec<u8>> = (0..N).map(|i| format!("m{i}").into_bytes()).collect();
    assert_eq!(got, want, "every message, in order");
    assert!(overlapped > 0, "no other connection was served while a get waited for the disk");
    assert!(a.get(1, &q).await.is_none());
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 1)]
async fn a_purge_that_looks_at_its_index_answers_once_the_drop_is_on_disk() {
    // A priority queue's paged-out lanes share its index: its purge looks
    // at the index first (slowly here), and purge-ok must wait for that.
    let store = Arc::new(SlowStore::default());
    let server = start(store.clone(), |c| c.storage.queue_head_messages = 4).await;
    let addr = server.local_addr;
    let q = unique("prio");
    let mut a = Raw::open(addr).await;
    a.open_channel(1).await;
    let mut arguments = FieldTable::default();
    arguments.insert("x-max-priority".into(), amq_protocol::types::AMQPValue::ShortShortUInt(5));
    let declare = queue::Declare { queue: q.as_str().into(), durable: true, arguments, ..Default::default() };
    a.send(&method(1, AMQPClass::Queue(queue::AMQPMethod::Declare(declare)))).await;
    assert_eq!(describe(&a.expect_method_on(1).await), "queue.declare-ok");
    a.send(&tx_select(1)).await;
    a.expect_method_on(1).await;
    let mut burst = Vec::new();
    for i in 0..64u8 {
        burst.extend(message(1, "", &q, persistent().with_priority(i % 6), b"deep", 4096));
    }
    burst.extend(tx_commit(1));
    a.send(&burst).await;
    assert_eq!(describe(&a.expect_method_on(1).await), "tx.commit-ok");
    store.scan_ms.store(SLOW.as_millis() as u64, Ordering::Relaxed);
    let purge = queue::Purge { queue: q.as_str().into(), nowait: false };
    a.send(&method(1, AMQPClass::Queue(queue::AMQPMethod::Purge(purge)))).await;
    assert_eq!(describe(&a.expect_method_on(1).await), "queue.purge-ok");
    let dropped = store.written.lock().iter().any(|op| matches!(op, Op::DropPlaces { .. }));
    assert!(dropped, "purge-ok went out before the paged-out places were dropped on disk");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 1)]
async fn a_policy_waiting_for_the_disk_holds_up_no_declare() {
    use warren::broker::policy::{ApplyTo, Kind, Policy};
    let (server, _store) = slow_broker().await;
    let addr = server.local_addr;
    let vhost = server.broker.vhost("/").unwrap();
    let definition = serde_json::json!({"max-length": 10});
    let policy = Policy::parse("slow", "^slow-", ApplyTo::Queues, 0, &definition, Kind::User).unwrap();
    let setting = {
        let vhost = vhost.clone();
        std::thread::spawn(move || vhost.set_policy(policy, Kind::User).map(|_| ()))
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    // A declare takes the topology lock: the policy's disk wait must not hold it.
    let mut b = Raw::open(addr).await;
    b.open_channel(1).await;
    b.send(&queue_declare_with(1, &unique("slow-"), false, false, false, false)).await;
    assert_eq!(describe(&b.expect_method_on(1).await), "queue.declare-ok");
    assert!(!setting.is_finished(), "the policy's write was not slow: the test proves nothing");
    setting.join().unwrap().unwrap();
    assert!(vhost.policy("slow", Kind::User).is_some());
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 1)]
async fn a_dead_letter_is_written_before_its_source_is_removed() {
    // At-least-once dead-lettering: a crash between the two writes must
    // leave the message in both queues, never in neither.
    use amq_protocol::types::AMQPValue;
    let store = Arc::new(SlowStore::default());
    let server = start(store.clone(), |_| {}).await;
    let addr = server.local_addr;
    let (src, dlq) = (unique("expiring"), unique("dead"));
    let mut a = Raw::open(addr).await;
    a.open_channel(1).await;
    a.send(&durable_declare(1, &dlq)).await;
    assert_eq!(describe(&a.expect_method_on(1).await), "queue.declare-ok");
    let mut arguments = FieldTable::default();
    arguments.insert("x-message-ttl".into(), AMQPValue::LongInt(1));
    arguments.insert("x-dead-letter-exchange".into(), AMQPValue::LongString("".into()));
    arguments.insert("x-dead-letter-routing-key".into(), AMQPValue::LongString(dlq.as_str().into()));
    let declare =
        queue::Declare { queue: src.as_str().into(), durable: true, arguments, ..Default::default() };
    a.send(&method(1, AMQPClass::Queue(queue::AMQPMethod::Declare(declare)))).await;
    assert_eq!(describe(&a.expect_method_on(1).await), "queue.declare-ok");
    a.send(&tx_select(1)).await;
    a.expect_method_on(1).await;
    let mut publish = message(1, "", &src, persistent(), b"doomed", 4096);
    publish.extend(tx_commit(1));
    a.send(&publish).await;
    assert_eq!(describe(&a.expect_method_on(1).await), "tx.commit-ok");
    let got = a.get_eventually(1, &dlq).await.map(|(_, body)| body);
    assert_eq!(got.as_deref(), Some(&b"doomed"[..]));
    let vhost = server.broker.vhost("/").unwrap();
    let id = |name: &str| vhost.queue(name).and_then(|q| q.store_id()).unwrap();
    let (src_id, dlq_id) = (id(&src), id(&dlq));
    let mut order = None;
    for _ in 0..100 {
        let (placed, removed) = {
            let written = store.written.lock();
            (
                written.iter().position(
                    |op| matches!(op, Op::Place { queue, .. } | Op::PlaceWith { queue, .. } if *queue == dlq_id),
                ),
                written.iter().position(|op| matches!(op, Op::Remove { queue, .. } if *queue == src_id)),
            )
        };
        if let (Some(p), Some(r)) = (placed, removed) {
            order = Some((p, r));
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (placed, removed) = order.expect("both the dead letter's place and the source's removal are written");
    assert!(
        placed < removed,
        "the source's removal ({removed}) was written before the dead letter ({placed})"
    );
    server.stop().await;
}
