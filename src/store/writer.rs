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
use super::{IndexEntry, Op, RecordRef, SharedRecord, Store};
use annihilate::{annihilate, latest_marks};
use deletions::sort_deletions;
use drops::{DropJob, Dropping};
use hold::Hold;

mod annihilate;
mod counted;
mod deletions;
mod drops;
mod handle;
mod hold;
mod inbox;
#[cfg(test)]
mod tests;

pub use handle::StoreHandle;

/// Told when everything submitted before it is durable (true) or failed to be written (false).
pub type Done = Box<dyn FnOnce(bool) + Send>;

/// Takes in the pages a read finds, on the reader thread, each as it is
/// read (its record borrowed from the store: none if it is damaged), then
/// is told whether the read ended well (false: the store failed, and what
/// was handed over is not all there was).
pub trait PageSink: Send {
    fn page(&mut self, place: IndexEntry, record: Option<RecordRef<'_>>);
    fn done(self: Box<Self>, ok: bool);
}

/// Told what a read of delayed messages found, and whether it stopped at
/// its limit (more may follow); `None` if the store failed.
pub type OnDelayed = Box<dyn FnOnce(Option<(Vec<super::Delayed>, bool)>) + Send>;

/// A read of what is on disk only: a queue's paged-out messages, or the
/// next messages due on a delayed exchange.
enum Read {
    Pages { queue: u64, from_seq: u64, limit: usize, sink: Box<dyn PageSink> },
    Delayed { vhost: Arc<str>, exchange: Arc<str>, from: (u64, u64), limit: (usize, usize), done: OnDelayed },
}

enum Cmd {
    Op(Op),
    /// A new persistent message held by one queue: its `PlaceWith` (id
    /// `entry.message`) if `entry` is flagged `INLINE`, else `PutMessage`
    /// then `Place`; the hold may keep them back (`hold.rs`).
    Placed {
        queue: u64,
        entry: IndexEntry,
        record: SharedRecord,
        /// Ready, and expected to go to a no-ack consumer shortly.
        soon: bool,
    },
    /// `Remove` of a place (with a message kept in it or in its page),
    /// then `DeleteMessage` of `message` if set (one kept apart): a
    /// settled delivery in one channel message.
    Settle {
        queue: u64,
        seq: u64,
        lane: Option<u8>,
        message: Option<u64>,
    },
    /// Ops written in one batch: a crash keeps all of them or none.
    Ops(Vec<Op>),
    /// Nothing submitted before it is held back any more: what follows
    /// must not reach the disk without it (`StoreHandle::write_held`).
    WriteHeld,
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
    /// Writes of messages delivered as they came, waiting for their acks,
    /// and of messages ready for no-ack consumers, waiting for them.
    hold: Hold,
    /// Something was written unsynced since the last sync.
    dirty: bool,
}

impl Writer {
    fn run(mut self, mut rx: inbox::Receiver<Cmd>) {
        let (reads, reader_rx) = mpsc::channel::<Read>();
        let reader = {
            let store = self.store.clone();
            std::thread::Builder::new()
                .name("warren-store-read".into())
                .spawn(move || read_loop(store, reader_rx))
                .expect("the store reader thread starts")
        };
        // Barriers, in order, each with the hold's mark when it came.
        let mut waiting: Vec<(u64, Done)> = Vec::new();
        let mut pending_reads: Vec<Read> = Vec::new();
        let mut closed: Option<mpsc::SyncSender<()>> = None;
        let mut deletions: u64 = 0;
        loop {
            let first = if let Some(due) = self.hold.due_in(std::time::Instant::now()) {
                // Held writes: more may come, or they are written when due.
                match rx.recv_timeout(due) {
                    Ok(cmd) => Some(cmd),
                    Err(mpsc::RecvTimeoutError::Timeout) => None,
                    Err(mpsc::RecvTimeoutError::Disconnected) => break,
                }
            } else if deletions >= COMPACT_AFTER {
                // Idle after many deletions: a backlog has probably drained.
                match rx.recv_timeout(std::time::Duration::from_millis(200)) {
                    Ok(cmd) => Some(cmd),
                    Err(mpsc::RecvTimeoutError::Timeout) => {
                        deletions = 0;
                        self.compact();
                        continue;
                    }
                    Err(mpsc::RecvTimeoutError::Disconnected) => break,
                }
            } else {
                match rx.recv() {
                    Ok(cmd) => Some(cmd),
                    Err(_) => break,
                }
            };
            // One clock read per batch: held writes count from its start.
            let started = std::time::Instant::now();
            let mut next = first;
            while let Some(cmd) = next.take() {
                if matches!(
                    cmd,
                    Cmd::Read(Read::Pages { .. })
                        | Cmd::Drop(_)
                        | Cmd::Dropped { .. }
                        | Cmd::BarrierAfter(..)
                        | Cmd::WriteHeld
                        | Cmd::Shutdown(_)
                ) {
                    // Reads of pages, drops and shutdowns see everything before them.
                    self.hold.release();
                }
                match cmd {
                    Cmd::Op(op) => self.take(op, &mut deletions),
                    Cmd::Placed { queue, entry, record, soon } => {
                        self.hold.register(queue, &entry, soon, started);
                        if entry.has(IndexEntry::INLINE) {
                            self.take(Op::PlaceWith { queue, entry, record, first: true }, &mut deletions);
                        } else {
                            self.take(Op::PutMessage { id: entry.message, record }, &mut deletions);
                            self.take(Op::Place { queue, entry }, &mut deletions);
                        }
                    }
                    Cmd::Settle { queue, seq, lane, message } => {
                        self.take(Op::Remove { queue, seq, lane }, &mut deletions);
                        if let Some(id) = message {
                            self.take(Op::DeleteMessage { id }, &mut deletions);
                        }
                    }
                    Cmd::Ops(ops) => ops.into_iter().for_each(|op| self.take(op, &mut deletions)),
                    Cmd::WriteHeld => {}
                    Cmd::Barrier(done) => waiting.push((self.hold.mark(), done)),
                    Cmd::BarrierAfter(queue, done) => {
                        if let Some(done) = self.dropping.wait_for(queue, done) {
                            waiting.push((self.hold.mark(), done));
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
                            waiting.extend(waiters.into_iter().map(|done| (self.hold.mark(), done)));
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
                            waiting.extend(waiters.into_iter().map(|done| (self.hold.mark(), done)));
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
            self.prepare();
            // Barriers after a held write wait for it (marks only grow).
            let answered = match self.hold.cut() {
                Some(cut) => waiting.partition_point(|(mark, _)| *mark < cut),
                None => waiting.len(),
            };
            let ok = self.write(answered > 0);
            for (_, done) in waiting.drain(..answered) {
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
        // Every handle is gone: what is held is written all the same.
        let ok = self.flush(!waiting.is_empty());
        for (_, done) in waiting.drain(..) {
            done(ok);
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
            Op::DeleteMessage { .. } | Op::DeleteQueue { .. } | Op::Remove { .. } | Op::DeleteDelayed(_)
        ));
        if let Op::PutMessage { record, .. }
        | Op::PlaceWith { record, .. }
        | Op::Page { record, .. }
        | Op::PutDelayed { record, .. } = &op
        {
            let parts = record.parts();
            self.ops_bytes += parts.body.len() + parts.header.len();
        }
        if let Some(op) = self.dropping.now(op) {
            self.ops.push(op)
        }
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

    /// Writes the pending batch, everything held with it (synced if
    /// someone waits for durability).
    fn flush(&mut self, waited_for: bool) -> bool {
        self.hold.release();
        self.prepare();
        self.write(waited_for)
    }

    /// Readies the batch: what cancels out goes, writes that may wait for
    /// their acks are held back, deletions go side by side.
    fn prepare(&mut self) {
        annihilate(&mut self.ops);
        latest_marks(&mut self.ops);
        self.ops_bytes = self.hold.split(&mut self.ops, std::time::Instant::now());
        sort_deletions(&mut self.ops);
    }

    /// Writes the readied batch (synced if someone waits for durability);
    /// the next batch starts with what was held back.
    fn write(&mut self, waited_for: bool) -> bool {
        // Streams first: a barrier in this batch waits for their chunks too.
        let streams_ok = self.write_streams(waited_for);
        // A barrier alone needs a sync only if something went out unsynced.
        if self.ops.is_empty() && !(waited_for && self.dirty) {
            self.hold.resume(&mut self.ops);
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
                Ok(()) => {
                    // Without fsync a write is as durable as it gets once written.
                    self.dirty = self.sync && !synced && (self.dirty || !self.ops.is_empty());
                    true
                }
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
            let took = started.elapsed();
            m.sync_ns.observe(took.as_nanos().min(u128::from(u64::MAX)) as u64);
            if !self.ops.is_empty() {
                self.hold.observe_sync(took);
            }
        }
        self.ops.clear();
        self.hold.resume(&mut self.ops);
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
            Read::Pages { queue, from_seq, limit, mut sink } => {
                // A read that panics (in the store, or in the sink making a
                // message) is a failed read: the queue is told and tries
                // again later, and this thread goes on answering the others.
                let read = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    store.visit_pages(queue, from_seq, limit, &mut |place, r| sink.page(place, r))
                }));
                match read {
                    Ok(Ok(())) => sink.done(true),
                    Ok(Err(e)) => {
                        warn!("{e}: cannot read paged-out messages");
                        sink.done(false)
                    }
                    Err(_) => {
                        error!(queue, from_seq, "reading paged-out messages failed");
                        sink.done(false)
                    }
                }
            }
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
