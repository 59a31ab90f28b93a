//! Group commit: one writer thread in front of the store. Everyone sends
//! ops down one ordered channel; the writer takes all that is waiting,
//! writes it as one batch, syncs it once if anyone is waiting for
//! durability, then tells them. Confirmed throughput therefore grows with
//! concurrency instead of being capped by the disk's sync rate.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::Arc;

use tracing::{error, warn};

use super::metrics::StoreMetrics;
use super::refs::SharedRefs;
use super::{IndexEntry, MessageRecord, Op, Store};
use annihilate::annihilate;
use deletions::sort_deletions;
use drops::{DropJob, Dropping};

mod annihilate;
mod counted;
mod deletions;
mod drops;

/// Told when everything submitted before it is durable (true) or failed to be written (false).
pub type Done = Box<dyn FnOnce(bool) + Send>;

/// Pages read back: places with their messages.
pub type Loaded = Vec<(IndexEntry, MessageRecord)>;

/// Told what a read found; `None` if the store failed.
pub type OnLoaded = Box<dyn FnOnce(Option<Loaded>) + Send>;

/// Told what a read of delayed messages found, and whether it stopped at
/// its limit (more may follow); `None` if the store failed.
pub type OnDelayed = Box<dyn FnOnce(Option<(Vec<super::Delayed>, bool)>) + Send>;

/// A read of what is on disk only: a queue's paged-out messages, or the
/// next messages due on a delayed exchange.
enum Read {
    Pages { queue: u64, from_seq: u64, limit: usize, done: OnLoaded },
    Delayed { vhost: Arc<str>, exchange: Arc<str>, from: (u64, u64), limit: (usize, usize), done: OnDelayed },
}

enum Cmd {
    Op(Op),
    /// `PutMessage` (id `entry.message`), then its `Place`: the two ops of
    /// a new persistent message in one channel message.
    Placed {
        queue: u64,
        entry: IndexEntry,
        record: MessageRecord,
    },
    /// `Remove` of a place, then `DeleteMessage` of `message` if set: a
    /// settled delivery in one channel message.
    Settle {
        queue: u64,
        seq: u64,
        lane: Option<u8>,
        message: Option<u64>,
    },
    /// Ops written in one batch: a crash keeps all of them or none.
    Ops(Vec<Op>),
    Barrier(Done),
    /// A barrier that also waits for the drops of this queue still being
    /// looked at (`drops.rs`).
    BarrierAfter(u64, Done),
    /// Read after everything submitted before it is written.
    Read(Read),
    /// Drop a purged or deleted queue's paged-out part (`drops.rs`).
    Drop(DropJob),
    /// What a look at a dropped part found (`last`: the look is done).
    Dropped {
        queue: u64,
        ops: Vec<Op>,
        last: bool,
    },
    /// Write what is pending, close the store, then say so.
    Shutdown(mpsc::SyncSender<()>),
    /// Compact once idle, as after many deletions (a whole vhost went).
    CompactSoon,
    /// Write a stream's pending appends with this batch (`stream/`).
    Stream(Arc<super::stream::Log>),
}

/// How much of a queue stays in memory before the rest is paged out.
#[derive(Debug, Clone, Copy)]
pub struct HeadLimit {
    pub messages: usize,
    pub bytes: usize,
}

/// What every handle shares.
#[derive(Debug)]
struct Shared {
    ids: AtomicU64,
    refs: SharedRefs,
    /// Memory is short: queues page transient messages out too.
    pressure: AtomicBool,
    head: HeadLimit,
    /// The writer's own figures (it alone adds to them).
    metrics: StoreMetrics,
    /// A write failed: nothing more is written until Warren restarts.
    failed: AtomicBool,
    /// Where streams keep their segment files (`<data dir>/streams`).
    streams_dir: std::sync::OnceLock<std::path::PathBuf>,
}

/// Ops per batch at most, so one huge burst does not delay every confirm.
const MAX_BATCH: usize = 16 * 1024;

/// Message bytes per batch at most: RocksDB copies a batch whole (into its
/// write batch, then its memtable), so a batch of big messages held
/// unbounded would be memory the alarm sees only once it is spent.
const MAX_BATCH_BYTES: usize = 16 << 20;

/// Deletions after which an idle writer compacts, so a drained backlog
/// gives its disk space back.
const COMPACT_AFTER: u64 = 100_000;

/// A cheap, cloneable way to submit ops to the writer.
#[derive(Clone)]
pub struct StoreHandle {
    tx: mpsc::Sender<Cmd>,
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
        let (tx, rx) = mpsc::channel::<Cmd>();
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
    /// messages, once everything submitted before is written; `done` is
    /// called on the reader thread.
    /// Returns false (and drops `done` uncalled) if the writer is gone:
    /// the caller may hold locks `done` would take.
    pub fn read(&self, queue: u64, from_seq: u64, limit: usize, done: OnLoaded) -> bool {
        self.tx.send(Cmd::Read(Read::Pages { queue, from_seq, limit, done })).is_ok()
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

    /// Drops one place's hold on a stored message; the last one deletes it.
    pub fn release(&self, id: u64, shared: bool) {
        if !shared || self.shared.refs.release(id) {
            self.submit(Op::DeleteMessage { id });
        }
    }

    pub fn submit(&self, op: Op) {
        // The writer lives as long as any handle; a send can only fail at exit.
        let _ = self.tx.send(Cmd::Op(op));
    }

    /// Submits a new message and its place in `queue` (`PutMessage` with
    /// id `entry.message`, then `Place`).
    pub fn submit_placed(&self, queue: u64, entry: IndexEntry, record: MessageRecord) {
        let _ = self.tx.send(Cmd::Placed { queue, entry, record });
    }

    /// Submits a place's removal, then its message's deletion if `message`
    /// is set.
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
    pub fn write_stream(&self, log: Arc<super::stream::Log>) {
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

/// The writer thread's state.
struct Writer {
    store: Arc<dyn Store>,
    sync: bool,
    shared: Arc<Shared>,
    ops: Vec<Op>,
    /// Message bytes in `ops` (bounded by `MAX_BATCH_BYTES`).
    ops_bytes: usize,
    /// A compaction running on a thread of its own (it can take seconds
    /// over a large store; writes and reads go on meanwhile).
    compaction: Option<std::thread::JoinHandle<()>>,
    /// A slow disk, simulated (`WARREN_STORE_SLOW_SYNC_MS`): every batch
    /// someone waits on takes this much longer. For benchmarks of a slow
    /// disk; unset (the default) it costs nothing.
    slow_sync: Option<std::time::Duration>,
    /// Drops of paged-out parts that look at their index first.
    dropping: Dropping,
    /// Streams with appends to write in this batch.
    streams: Vec<Arc<super::stream::Log>>,
    /// Streams written to since the last sync (a barrier syncs them all).
    unsynced: Vec<Arc<super::stream::Log>>,
}

impl Writer {
    fn run(mut self, rx: mpsc::Receiver<Cmd>) {
        let (reads, reader_rx) = mpsc::channel::<Read>();
        let reader = {
            let store = self.store.clone();
            std::thread::Builder::new()
                .name("warren-store-read".into())
                .spawn(move || read_loop(store, reader_rx))
                .expect("the store reader thread starts")
        };
        let mut waiting: Vec<Done> = Vec::new();
        let mut pending_reads: Vec<Read> = Vec::new();
        let mut closed: Option<mpsc::SyncSender<()>> = None;
        let mut deletions: u64 = 0;
        loop {
            let first = if deletions >= COMPACT_AFTER {
                // Idle after many deletions: a backlog has probably drained.
                match rx.recv_timeout(std::time::Duration::from_millis(200)) {
                    Ok(cmd) => cmd,
                    Err(mpsc::RecvTimeoutError::Timeout) => {
                        deletions = 0;
                        self.compact();
                        continue;
                    }
                    Err(mpsc::RecvTimeoutError::Disconnected) => break,
                }
            } else {
                match rx.recv() {
                    Ok(cmd) => cmd,
                    Err(_) => break,
                }
            };
            let mut next = Some(first);
            while let Some(cmd) = next.take() {
                match cmd {
                    Cmd::Op(op) => self.take(op, &mut deletions),
                    Cmd::Placed { queue, entry, record } => {
                        self.take(Op::PutMessage { id: entry.message, record }, &mut deletions);
                        self.take(Op::Place { queue, entry }, &mut deletions);
                    }
                    Cmd::Settle { queue, seq, lane, message } => {
                        self.take(Op::Remove { queue, seq, lane }, &mut deletions);
                        if let Some(id) = message {
                            self.take(Op::DeleteMessage { id }, &mut deletions);
                        }
                    }
                    Cmd::Ops(ops) => ops.into_iter().for_each(|op| self.take(op, &mut deletions)),
                    Cmd::Barrier(done) => waiting.push(done),
                    Cmd::BarrierAfter(queue, done) => {
                        if let Some(done) = self.dropping.wait_for(queue, done) {
                            waiting.push(done);
                        }
                    }
                    Cmd::Read(r) => pending_reads.push(r),
                    Cmd::Drop(mut job) => {
                        deletions += job.count.max(1);
                        if job.look.is_some() {
                            // The look reads the index: it must hold everything before.
                            self.flush(false);
                            let (now, waiters) = self.dropping.look(job, &self.store, &self.shared);
                            self.ops.extend(now);
                            waiting.extend(waiters);
                        } else {
                            self.ops.append(&mut job.with);
                            self.ops.push(job.places(&[]));
                        }
                    }
                    Cmd::Dropped { queue, ops, last } => {
                        // A message the look let go of may have been taken
                        // back meanwhile (a delivery returned to another
                        // queue, `restore_place`): its PutMessage is already
                        // written or queued ahead, so its deletion must go.
                        let refs = &self.shared.refs;
                        self.ops.extend(
                            ops.into_iter()
                                .filter(|op| !matches!(op, Op::DeleteMessage { id } if refs.holds(*id))),
                        );
                        if last {
                            let (waited, waiters) = self.dropping.done(queue);
                            self.ops.extend(waited);
                            waiting.extend(waiters);
                        }
                    }
                    Cmd::Shutdown(tell) => closed = Some(tell),
                    Cmd::CompactSoon => deletions = deletions.max(COMPACT_AFTER),
                    Cmd::Stream(log) => {
                        if !self.streams.iter().any(|l| Arc::ptr_eq(l, &log)) {
                            self.streams.push(log);
                        }
                    }
                }
                if self.ops.len() < MAX_BATCH && self.ops_bytes < MAX_BATCH_BYTES && closed.is_none() {
                    next = rx.try_recv().ok();
                }
            }
            let ok = self.flush(!waiting.is_empty());
            for done in waiting.drain(..) {
                done(ok);
            }
            // Reads see everything submitted before them.
            for r in pending_reads.drain(..) {
                let _ = reads.send(r);
            }
            // Looks at dropped parts finish first (what they found is written).
            if let Some(tell) = closed.take_if(|_| !self.dropping.busy()) {
                drop(reads);
                let _ = reader.join();
                self.dropping.stop();
                if let Some(c) = self.compaction.take() {
                    let _ = c.join();
                }
                drop(self);
                let _ = tell.send(());
                return;
            }
        }
        drop(reads);
        let _ = reader.join();
        self.dropping.stop();
        if let Some(c) = self.compaction.take() {
            let _ = c.join();
        }
    }

    /// Adds an op to the batch.
    fn take(&mut self, op: Op, deletions: &mut u64) {
        *deletions += u64::from(matches!(
            op,
            Op::DeleteMessage { .. }
                | Op::DeleteQueue { .. }
                | Op::Remove { lane: Some(_), .. }
                | Op::DeleteDelayed(_)
        ));
        if let Op::PutMessage { record, .. } | Op::Page { record, .. } | Op::PutDelayed { record, .. } = &op {
            self.ops_bytes += record.body.len() + record.header.len();
        }
        let op = self.dropping.now(op);
        self.ops.push(op)
    }

    /// Starts a compaction unless one is still running.
    fn compact(&mut self) {
        let failed = self.shared.failed.load(Ordering::Relaxed);
        if failed || self.compaction.as_ref().is_some_and(|c| !c.is_finished()) {
            return;
        }
        let store = self.store.clone();
        self.compaction = std::thread::Builder::new()
            .name("warren-store-compact".into())
            .spawn(move || store.compact())
            .ok();
    }

    /// Writes the pending batch (synced if someone waits for durability).
    fn flush(&mut self, waited_for: bool) -> bool {
        self.ops_bytes = 0;
        annihilate(&mut self.ops);
        sort_deletions(&mut self.ops);
        // Streams first: a barrier in this batch waits for their chunks too.
        let streams_ok = self.write_streams(waited_for);
        if self.ops.is_empty() && !waited_for {
            return streams_ok;
        }
        let synced = self.sync && waited_for;
        let started = std::time::Instant::now();
        if let Some(delay) = self.slow_sync.filter(|_| waited_for) {
            std::thread::sleep(delay);
        }
        // After a failed write RocksDB's log file is in an error state that
        // another write would trip over (Debian's build asserts, aborting
        // the process): every later batch fails without touching it, so
        // each waiter learns it (publishers get nacks, declares 541), and
        // the monitor holds the disk alarm up until a restart.
        let ok = if self.shared.failed.load(Ordering::Relaxed) || !streams_ok {
            self.shared.metrics.write_errors.fetch_add(1, Ordering::Relaxed);
            false
        } else {
            match self.store.write(&self.ops, synced) {
                Ok(()) => true,
                Err(e) => {
                    error!(
                        "{e}: {} operations not written; the store takes no more writes: \
                         free disk space and restart Warren (what was confirmed is on disk)",
                        self.ops.len()
                    );
                    self.shared.metrics.write_errors.fetch_add(1, Ordering::Relaxed);
                    self.shared.failed.store(true, Ordering::Relaxed);
                    false
                }
            }
        };
        let m = &self.shared.metrics;
        if !self.ops.is_empty() {
            m.batch_ops.observe(self.ops.len() as u64);
        }
        if synced {
            m.sync_ns.observe(started.elapsed().as_nanos().min(u128::from(u64::MAX)) as u64);
        }
        self.ops.clear();
        ok
    }
}

impl Writer {
    /// Writes the pending appends of the streams asked for (and syncs them
    /// if someone waits); false if one failed, which fails the store too.
    fn write_streams(&mut self, waited_for: bool) -> bool {
        let mut failed = None;
        for log in self.streams.drain(..) {
            if self.shared.failed.load(Ordering::Relaxed) || failed.is_some() {
                break;
            }
            match log.write_pending() {
                Ok(()) if !self.sync || self.unsynced.iter().any(|l| Arc::ptr_eq(l, &log)) => {}
                Ok(()) => self.unsynced.push(log),
                Err(e) => failed = Some((log, e)),
            }
        }
        if failed.is_none() && self.sync && waited_for {
            for log in std::mem::take(&mut self.unsynced) {
                if let Err(e) = log.sync() {
                    failed = Some((log, e));
                    break;
                }
            }
        }
        let Some((log, e)) = failed else { return !self.shared.failed.load(Ordering::Relaxed) };
        error!(
            dir = %log.dir().display(),
            "{e}: a stream's appends not written; the store takes no more writes: \
             free disk space and restart Warren (what was confirmed is on disk)"
        );
        self.shared.failed.store(true, Ordering::Relaxed);
        false
    }
}

/// Answers reads of paged-out messages, off the writer's thread.
fn read_loop(store: Arc<dyn Store>, rx: mpsc::Receiver<Read>) {
    for r in rx {
        match r {
            Read::Pages { queue, from_seq, limit, done } => match store.read_pages(queue, from_seq, limit) {
                Ok(pages) => done(Some(pages)),
                Err(e) => {
                    warn!("{e}: cannot read paged-out messages");
                    done(None)
                }
            },
            Read::Delayed { vhost, exchange, from, limit, done } => {
                match store.read_delayed(&vhost, &exchange, from, limit) {
                    Ok(found) => done(Some(found)),
                    Err(e) => {
                        warn!("{e}: cannot read delayed messages");
                        done(None)
                    }
                }
            }
        }
    }
}
