//! The writer's handle: what the rest of Warren calls to submit ops,
//! barriers and reads, and to start and stop the writer.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::Arc;

use super::counted;
use super::drops::{DropJob, Dropping};
use super::hold::Hold;
use super::inbox;
use super::{Cmd, Done, HeadLimit, OnDelayed, PageSink, Read, Shared, Writer};
use crate::store::metrics::StoreMetrics;
use crate::store::refs::SharedRefs;
use crate::store::{IndexEntry, Op, SharedRecord, Store};

/// A cheap, cloneable way to submit ops to the writer.
#[derive(Clone)]
pub struct StoreHandle {
    tx: inbox::Sender<Cmd>,
    shared: Arc<Shared>,
}

impl std::fmt::Debug for StoreHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StoreHandle")
    }
}

impl StoreHandle {
    /// Starts the writer thread, with recovered reference counts and the
    /// queues' head limit. `sync` chooses whether barriers wait for an
    /// fsync (durable against power loss) or only for the write (durable
    /// against a crash of the process). Ids continue after `next_id`.
    pub fn start(
        store: Arc<dyn Store>,
        sync: bool,
        next_id: u64,
        refs: SharedRefs,
        head: HeadLimit,
    ) -> StoreHandle {
        Self::start_with(store, sync, next_id, refs, head, Hold::default())
    }

    /// As `start`, syncing, with writes held for `window` whatever the
    /// syncs take (tests of the writer's loop).
    #[cfg(test)]
    pub(super) fn start_holding(store: Arc<dyn Store>, window: std::time::Duration) -> StoreHandle {
        let head = HeadLimit { messages: 1000, bytes: 1 << 20 };
        Self::start_with(store, true, 1, SharedRefs::default(), head, Hold::fixed(window))
    }

    fn start_with(
        store: Arc<dyn Store>,
        sync: bool,
        next_id: u64,
        refs: SharedRefs,
        head: HeadLimit,
        hold: Hold,
    ) -> StoreHandle {
        let (tx, rx) = inbox::channel::<Cmd>();
        let shared = Arc::new(Shared {
            ids: AtomicU64::new(next_id.max(1)),
            refs,
            pressure: AtomicBool::new(false),
            head,
            metrics: StoreMetrics::default(),
            failed: AtomicBool::new(false),
            streams_dir: std::sync::OnceLock::new(),
        });
        let slow_sync = std::env::var("WARREN_STORE_SLOW_SYNC_MS")
            .ok()
            .and_then(|ms| ms.parse().ok())
            .map(std::time::Duration::from_millis);
        let store = Arc::new(counted::Counted { store, shared: shared.clone() });
        let writer = Writer {
            store,
            sync,
            shared: shared.clone(),
            ops: Vec::with_capacity(1024),
            ops_bytes: 0,
            compaction: None,
            slow_sync,
            dropping: Dropping::default(),
            streams: Vec::new(),
            unsynced: Vec::new(),
            hold,
            dirty: true,
        };
        std::thread::Builder::new()
            .name("warren-store".into())
            .spawn(move || writer.run(rx))
            .expect("the store writer thread starts");
        StoreHandle { tx, shared }
    }

    /// Sets where streams keep their files (once, at start-up).
    pub fn set_streams_dir(&self, dir: std::path::PathBuf) {
        let _ = self.shared.streams_dir.set(dir);
    }

    /// Where streams keep their files; None when there is no data directory.
    pub fn streams_dir(&self) -> Option<&std::path::Path> {
        self.shared.streams_dir.get().map(|p| p.as_path())
    }

    /// A fresh id for a message or a queue.
    pub fn next_id(&self) -> u64 {
        self.shared.ids.fetch_add(1, Ordering::Relaxed)
    }

    /// Counts of messages held by several queues.
    pub fn refs(&self) -> &SharedRefs {
        &self.shared.refs
    }

    /// What the writer measures of its commits.
    pub fn metrics(&self) -> &StoreMetrics {
        &self.shared.metrics
    }

    pub fn head_limit(&self) -> HeadLimit {
        self.shared.head
    }

    /// Whether queues should page transient messages out too.
    pub fn under_pressure(&self) -> bool {
        self.shared.pressure.load(Ordering::Relaxed)
    }

    pub fn set_pressure(&self, on: bool) {
        self.shared.pressure.store(on, Ordering::Relaxed);
    }

    /// Reads up to `limit` places of `queue` from `from_seq` on, with their
    /// messages, once everything submitted before is written, into `sink`
    /// on the reader thread.
    /// Returns false (and drops `sink` untold) if the writer is gone:
    /// the caller may hold locks `sink` would take.
    pub fn read(&self, queue: u64, from_seq: u64, limit: usize, sink: Box<dyn PageSink>) -> bool {
        self.tx.send(Cmd::Read(Read::Pages { queue, from_seq, limit, sink })).is_ok()
    }

    /// Reads messages waiting on a delayed exchange from (`due`, `seq`) on,
    /// up to `limit` (messages, body bytes), once everything submitted
    /// before is written (what was submitted after may show too); `done`
    /// is called on the reader thread. False if the writer is gone.
    pub fn read_delayed(
        &self,
        vhost: Arc<str>,
        exchange: Arc<str>,
        from: (u64, u64),
        limit: (usize, usize),
        done: OnDelayed,
    ) -> bool {
        self.tx.send(Cmd::Read(Read::Delayed { vhost, exchange, from, limit, done })).is_ok()
    }

    /// Settles the paged-out places of `queue`'s `lane` in `from_seq..to_seq`
    /// and releases their messages (shared ones or not: the index says).
    pub fn drop_range(&self, queue: u64, lane: u8, from_seq: u64, to_seq: u64) {
        self.drop_paged(queue, vec![(lane, from_seq)], to_seq, 0, true, Vec::new());
    }

    /// Settles a queue's paged-out part, without reading it back: each
    /// lane's places from its first paged-out seq (`lanes`: lane, seq) up
    /// to `to_seq`. `look`: their index entries must be read first (some
    /// hold shared messages, or other places of the queue lie between
    /// them), off the writer's thread; else it is a few range deletes.
    /// `count` places go (a hint for compaction). `with` is written in the
    /// same batch as the range deletes.
    pub fn drop_paged(
        &self,
        queue: u64,
        lanes: Vec<(u8, u64)>,
        to_seq: u64,
        count: u64,
        look: bool,
        with: Vec<Op>,
    ) {
        let look = look.then(|| self.tx.clone());
        let _ = self.tx.send(Cmd::Drop(DropJob { queue, lanes, to_seq, count, look, with }));
    }

    /// `n` fresh consecutive ids (a priority queue's page lanes).
    pub fn next_ids(&self, n: u64) -> u64 {
        self.shared.ids.fetch_add(n.max(1), Ordering::Relaxed)
    }

    /// Drops one place's hold on a message kept apart (not in its place or
    /// page); the last one deletes it.
    pub fn release(&self, id: u64, shared: bool) {
        if !shared || self.shared.refs.release(id) {
            self.submit(Op::DeleteMessage { id });
        }
    }

    pub fn submit(&self, op: Op) {
        // The writer lives as long as any handle; a send can only fail at exit.
        let _ = self.tx.send(Cmd::Op(op));
    }

    /// Submits a new message held by `queue` alone: kept in its place
    /// (`PlaceWith`) if `entry` is flagged `INLINE`, else `PutMessage` with
    /// id `entry.message`, then `Place`. `soon`: the queue expects a no-ack
    /// consumer to take it shortly (the hold may keep its write back).
    pub fn submit_placed(&self, queue: u64, entry: IndexEntry, record: SharedRecord, soon: bool) {
        let _ = self.tx.send(Cmd::Placed { queue, entry, record, soon });
    }

    /// Writes whatever the hold keeps back with the next batch: a write
    /// submitted before this reaches the disk no later than one after it.
    /// (A dead-lettered copy, held for a consumer, must not be overtaken
    /// by its original's removal: a crash between would lose it.)
    pub fn write_held(&self) {
        let _ = self.tx.send(Cmd::WriteHeld);
    }

    /// Submits a place's removal (a message kept in it or in its page goes
    /// with it), then the deletion of `message` if set (one kept apart).
    pub fn submit_settle(&self, queue: u64, seq: u64, lane: Option<u8>, message: Option<u64>) {
        let _ = self.tx.send(Cmd::Settle { queue, seq, lane, message });
    }

    /// Submits ops to be written in one batch: after a crash, all of them
    /// or none (a queue's deletion with its messages).
    pub fn submit_all(&self, ops: Vec<Op>) {
        let _ = self.tx.send(Cmd::Ops(ops));
    }

    /// True once a write failed: the store takes no more until a restart.
    pub fn failed(&self) -> bool {
        self.shared.failed.load(Ordering::Relaxed)
    }

    /// Calls `done` once everything submitted so far is durable.
    pub fn barrier(&self, done: Done) {
        if let Err(mpsc::SendError(Cmd::Barrier(done))) = self.tx.send(Cmd::Barrier(done)) {
            done(false);
        }
    }

    /// As `barrier`, and also after the drops of store queue `queue`'s
    /// paged-out part that are still being looked at (a purge's answer).
    pub fn barrier_after(&self, queue: Option<u64>, done: Done) {
        let Some(queue) = queue else { return self.barrier(done) };
        if let Err(mpsc::SendError(Cmd::BarrierAfter(_, done))) = self.tx.send(Cmd::BarrierAfter(queue, done))
        {
            done(false);
        }
    }

    /// Asks for a compaction once the writer is idle (space of deleted
    /// queues and vhosts goes back to the disk).
    pub fn compact_soon(&self) {
        let _ = self.tx.send(Cmd::CompactSoon);
    }

    /// Asks the writer to write a stream's pending appends with its next
    /// batch: a barrier submitted after this is answered once they are durable.
    pub fn write_stream(&self, log: Arc<crate::store::stream::Log>) {
        let _ = self.tx.send(Cmd::Stream(log));
    }

    /// Submits `ops` and blocks until they are durable (for rare topology changes).
    pub fn write_durably(&self, ops: impl IntoIterator<Item = Op>) -> bool {
        for op in ops {
            self.submit(op);
        }
        let (tx, rx) = mpsc::sync_channel(1);
        self.barrier(Box::new(move |ok| {
            let _ = tx.send(ok);
        }));
        rx.recv().unwrap_or(false)
    }

    /// Writes everything pending and closes the store (the writer owns it,
    /// so it is closed on its thread, before the process exits).
    pub fn shutdown(&self) {
        let (tx, rx) = mpsc::sync_channel(1);
        if self.tx.send(Cmd::Shutdown(tx)).is_ok() {
            let _ = rx.recv();
        }
    }
}
