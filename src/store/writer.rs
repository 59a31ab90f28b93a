//! Group commit: one writer thread in front of the store. Everyone sends
//! ops down one ordered channel; the writer takes all that is waiting,
//! writes it as one batch, syncs it once if anyone is waiting for
//! durability, then tells them. Confirmed throughput therefore grows with
//! concurrency instead of being capped by the disk's sync rate.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::Arc;

use rustc_hash::{FxHashMap, FxHashSet};
use tracing::{error, warn};

use super::metrics::StoreMetrics;
use super::refs::SharedRefs;
use super::{IndexEntry, MessageRecord, Op, Store};

/// Told when everything submitted before it is durable (true) or failed to be written (false).
pub type Done = Box<dyn FnOnce(bool) + Send>;

/// Pages read back: places with their messages.
pub type Loaded = Vec<(IndexEntry, MessageRecord)>;

/// Told what a read found; `None` if the store failed.
pub type OnLoaded = Box<dyn FnOnce(Option<Loaded>) + Send>;

/// A read of a queue's paged-out messages.
struct Read {
    queue: u64,
    from_seq: u64,
    limit: usize,
    done: OnLoaded,
}

enum Cmd {
    Op(Op),
    Barrier(Done),
    /// Read after everything submitted before it is written.
    Read(Read),
    /// Settle every place of `queue` in `from_seq..to_seq` (a purged or
    /// deleted queue's paged-out part), releasing their messages.
    DropRange {
        queue: u64,
        lane: u8,
        from_seq: u64,
        to_seq: u64,
    },
    /// Write what is pending, close the store, then say so.
    Shutdown(mpsc::SyncSender<()>),
    /// Compact once idle, as after many deletions (a whole vhost went).
    CompactSoon,
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
}

/// Ops per batch at most, so one huge burst does not delay every confirm.
const MAX_BATCH: usize = 16 * 1024;

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
        });
        let writer =
            Writer { store, sync, shared: shared.clone(), ops: Vec::with_capacity(1024), compaction: None };
        std::thread::Builder::new()
            .name("warren-store".into())
            .spawn(move || writer.run(rx))
            .expect("the store writer thread starts");
        StoreHandle { tx, shared }
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
        self.tx.send(Cmd::Read(Read { queue, from_seq, limit, done })).is_ok()
    }

    /// Settles the paged-out places of `queue`'s `lane` in `from_seq..to_seq`
    /// and releases their messages.
    pub fn drop_range(&self, queue: u64, lane: u8, from_seq: u64, to_seq: u64) {
        let _ = self.tx.send(Cmd::DropRange { queue, lane, from_seq, to_seq });
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

    /// Calls `done` once everything submitted so far is durable.
    pub fn barrier(&self, done: Done) {
        if let Err(mpsc::SendError(Cmd::Barrier(done))) = self.tx.send(Cmd::Barrier(done)) {
            done(false);
        }
    }

    /// Asks for a compaction once the writer is idle (space of deleted
    /// queues and vhosts goes back to the disk).
    pub fn compact_soon(&self) {
        let _ = self.tx.send(Cmd::CompactSoon);
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

/// Drops from a batch every op about a message that the same batch also
/// deletes: a message consumed and acknowledged before it reached the disk
/// need never be written (its publisher may be confirmed all the same, as
/// RabbitMQ does). Keeps fast consumers from doubling the disk's work. The
/// same for a page written and removed in one batch. A message or page
/// written again after its deletion (a delivery taken back) is left alone.
fn annihilate(ops: &mut Vec<Op>) {
    // Most batches delete nothing: nothing to look for.
    if !ops.iter().any(|op| matches!(op, Op::DeleteMessage { .. } | Op::Remove { lane: Some(_), .. })) {
        return;
    }
    // Where each message and page is first written in this batch: only
    // ops from there on are about that write (an earlier delete or remove
    // settles a copy written by an earlier batch, and must stay).
    let (mut first_put, mut gone, mut back) =
        (FxHashMap::default(), FxHashSet::default(), FxHashSet::default());
    let (mut first_page, mut unpaged, mut repaged) =
        (FxHashMap::default(), FxHashSet::default(), FxHashSet::default());
    for (i, op) in ops.iter().enumerate() {
        match op {
            Op::PutMessage { id, .. } if gone.contains(id) => {
                back.insert(*id);
            }
            Op::PutMessage { id, .. } => {
                first_put.entry(*id).or_insert(i);
            }
            Op::DeleteMessage { id } if first_put.contains_key(id) => {
                gone.insert(*id);
            }
            Op::Page { queue, entry, .. } if unpaged.contains(&(*queue, entry.seq)) => {
                repaged.insert((*queue, entry.seq));
            }
            Op::Page { queue, entry, .. } => {
                first_page.entry((*queue, entry.seq)).or_insert(i);
            }
            Op::Remove { queue, seq, lane: Some(_) } if first_page.contains_key(&(*queue, *seq)) => {
                unpaged.insert((*queue, *seq));
            }
            _ => {}
        }
    }
    gone.retain(|id| !back.contains(id));
    unpaged.retain(|place| !repaged.contains(place));
    if gone.is_empty() && unpaged.is_empty() {
        return;
    }
    let written_here = |id: &u64, i: usize| gone.contains(id) && first_put.get(id).is_some_and(|at| i >= *at);
    let paged_here = |place: &(u64, u64), i: usize| {
        unpaged.contains(place) && first_page.get(place).is_some_and(|at| i >= *at)
    };
    // Places whose write was dropped: their later removes go too.
    let mut places = FxHashSet::default();
    let mut i = 0;
    ops.retain(|op| {
        let keep = match op {
            Op::PutMessage { id, .. } | Op::DeleteMessage { id } => !written_here(id, i),
            Op::Place { queue, entry } | Op::Page { queue, entry, .. }
                if written_here(&entry.message, i) || paged_here(&(*queue, entry.seq), i) =>
            {
                places.insert((*queue, entry.seq));
                false
            }
            Op::Remove { queue, seq, .. } => !places.contains(&(*queue, *seq)),
            _ => true,
        };
        i += 1;
        keep
    });
}

/// The writer thread's state.
struct Writer {
    store: Arc<dyn Store>,
    sync: bool,
    shared: Arc<Shared>,
    ops: Vec<Op>,
    /// A compaction running on a thread of its own (it can take seconds
    /// over a large store; writes and reads go on meanwhile).
    compaction: Option<std::thread::JoinHandle<()>>,
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
                    Cmd::Op(op) => {
                        deletions += u64::from(matches!(
                            op,
                            Op::DeleteMessage { .. }
                                | Op::DeleteQueue { .. }
                                | Op::Remove { lane: Some(_), .. }
                        ));
                        self.ops.push(op)
                    }
                    Cmd::Barrier(done) => waiting.push(done),
                    Cmd::Read(r) => pending_reads.push(r),
                    Cmd::DropRange { queue, lane, from_seq, to_seq } => {
                        deletions += self.drop_range(queue, lane, from_seq, to_seq);
                    }
                    Cmd::Shutdown(tell) => closed = Some(tell),
                    Cmd::CompactSoon => deletions = deletions.max(COMPACT_AFTER),
                }
                if self.ops.len() < MAX_BATCH && closed.is_none() {
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
            if let Some(tell) = closed.take() {
                drop(reads);
                let _ = reader.join();
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
        if let Some(c) = self.compaction.take() {
            let _ = c.join();
        }
    }

    /// Starts a compaction unless one is still running.
    fn compact(&mut self) {
        if self.compaction.as_ref().is_some_and(|c| !c.is_finished()) {
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
        annihilate(&mut self.ops);
        if self.ops.is_empty() && !waited_for {
            return true;
        }
        let synced = self.sync && waited_for;
        let started = std::time::Instant::now();
        let ok = match self.store.write(&self.ops, synced) {
            Ok(()) => true,
            Err(e) => {
                error!("{e}: {} operations not written", self.ops.len());
                self.shared.metrics.write_errors.fetch_add(1, Ordering::Relaxed);
                false
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

    /// Settles a range of a queue's paged-out places: writes what is
    /// pending, reads the range's pages back and removes them, releasing
    /// shared messages. Returns how many messages were deleted.
    fn drop_range(&mut self, queue: u64, lane: u8, from_seq: u64, to_seq: u64) -> u64 {
        self.flush(false);
        let mut from = from_seq;
        let mut deleted = 0;
        while from < to_seq {
            let pages = match self.store.read_pages(queue + u64::from(lane), from, 4096) {
                Ok(p) => p,
                Err(e) => {
                    error!("{e}: paged-out messages of a purged queue stay on disk");
                    break;
                }
            };
            let Some((last, _)) = pages.last() else { break };
            from = last.seq + 1;
            for (e, _) in pages.iter().filter(|(e, _)| e.seq < to_seq) {
                self.ops.push(Op::Remove { queue, seq: e.seq, lane: Some(lane) });
                if e.has(IndexEntry::SHARED) && self.shared.refs.release(e.message) {
                    self.ops.push(Op::DeleteMessage { id: e.message });
                }
                deleted += 1;
            }
            self.flush(false);
        }
        deleted
    }
}

/// Answers reads of paged-out messages, off the writer's thread.
fn read_loop(store: Arc<dyn Store>, rx: mpsc::Receiver<Read>) {
    for r in rx {
        match store.read_pages(r.queue, r.from_seq, r.limit) {
            Ok(pages) => (r.done)(Some(pages)),
            Err(e) => {
                warn!("{e}: cannot read paged-out messages");
                (r.done)(None)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::MessageRecord;

    fn put(id: u64) -> Op {
        Op::PutMessage {
            id,
            record: MessageRecord {
                exchange: Default::default(),
                routing_key: Default::default(),
                header: Default::default(),
                body: Default::default(),
            },
        }
    }

    fn place(queue: u64, seq: u64, message: u64, flags: u8) -> Op {
        Op::Place { queue, entry: IndexEntry { seq, message, flags, ..Default::default() } }
    }

    #[test]
    fn a_message_written_again_after_its_deletion_stays() {
        let mut ops = vec![
            put(1),
            place(9, 1, 1, 0),
            Op::Remove { queue: 9, seq: 1, lane: None },
            Op::DeleteMessage { id: 1 },
        ];
        ops.push(put(1));
        ops.push(place(9, 1, 1, 0));
        let before = ops.clone();
        annihilate(&mut ops);
        assert_eq!(ops, before);
    }

    #[test]
    fn a_message_acked_within_its_batch_is_never_written() {
        let mut ops = vec![
            put(1),
            place(9, 1, 1, 0),
            put(2),
            place(9, 2, 2, 0),
            place(9, 1, 1, IndexEntry::DELIVERED),
            Op::Remove { queue: 9, seq: 1, lane: None },
            Op::DeleteMessage { id: 1 },
            Op::Remove { queue: 9, seq: 7, lane: None },
            Op::DeleteMessage { id: 5 },
        ];
        annihilate(&mut ops);
        assert_eq!(
            ops,
            vec![
                put(2),
                place(9, 2, 2, 0),
                Op::Remove { queue: 9, seq: 7, lane: None },
                Op::DeleteMessage { id: 5 }
            ]
        );
    }

    fn page(queue: u64, seq: u64) -> Op {
        let entry = IndexEntry { seq, message: seq, flags: IndexEntry::PAGED, ..Default::default() };
        Op::Page { queue, entry, record: MessageRecord::default() }
    }

    #[test]
    fn a_page_removed_within_its_batch_is_never_written() {
        let remove = |seq| Op::Remove { queue: 3, seq, lane: Some(0) };
        let mut ops = vec![page(3, 1), page(3, 2), remove(1), remove(0), page(3, 4), remove(4), page(3, 4)];
        annihilate(&mut ops);
        assert_eq!(ops, vec![page(3, 2), remove(0), page(3, 4), remove(4), page(3, 4)]);
    }

    #[test]
    fn settling_an_earlier_copy_survives_a_rewrite_in_the_same_batch() {
        // A no-ack delivery taken back and delivered again, all in one batch:
        // the copy written by an earlier batch must still be deleted.
        let remove = Op::Remove { queue: 9, seq: 1, lane: None };
        let mut ops = vec![
            remove.clone(),
            Op::DeleteMessage { id: 1 },
            put(1),
            place(9, 1, 1, 0),
            remove.clone(),
            Op::DeleteMessage { id: 1 },
        ];
        annihilate(&mut ops);
        assert_eq!(ops, vec![remove, Op::DeleteMessage { id: 1 }]);
        // The same for a page.
        let remove = Op::Remove { queue: 3, seq: 5, lane: Some(0) };
        let mut ops = vec![remove.clone(), page(3, 5), remove.clone()];
        annihilate(&mut ops);
        assert_eq!(ops, vec![remove]);
    }
}
