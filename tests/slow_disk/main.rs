//! A slow (or failing) disk stalls only those who wait for it: while one
//! connection waits for `tx.commit`, a durable declare or a `basic.get` of
//! a message still on disk, the others are served — on a broker with a
//! single runtime worker, which a blocking wait would stop for everyone.
//! The waiting connection still sees today's semantics: its replies in
//! order, nothing processed ahead of an owed answer, the same errors.

#[path = "../common/mod.rs"]
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

mod confirms;
mod stalls;
mod waits;

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

/// The broker still serves after its store failed: a fresh connection's
/// queue declare is answered. The failure raises the disk alarm at the
/// monitor's next look (200 ms), which blocks publishers from then on, so
/// this waits for the alarm and publishes nothing: a publish's answer would
/// depend on which came first.
async fn serving_with_a_failed_store(server: &Server) {
    common::wait_for("the disk alarm after the store failed", || server.broker.alarms.disk_alarm()).await;
    let mut c = Raw::open(server.local_addr).await;
    c.open_channel(1).await;
    c.declare_queue(1, "").await;
}
