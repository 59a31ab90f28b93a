//! Group commit: one writer thread in front of the store. Everyone sends
//! ops down one ordered channel; the writer takes all that is waiting,
//! writes it as one batch, syncs it once if anyone is waiting for
//! durability, then tells them. Confirmed throughput therefore grows with
//! concurrency instead of being capped by the disk's sync rate.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::Arc;

use rustc_hash::FxHashSet;
use tracing::error;

use super::{Op, Store};

/// Told when everything submitted before it is durable (true) or failed to be written (false).
pub type Done = Box<dyn FnOnce(bool) + Send>;

enum Cmd {
    Op(Op),
    Barrier(Done),
    Compact,
    /// Write what is pending, close the store, then say so.
    Shutdown(mpsc::SyncSender<()>),
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
    ids: Arc<AtomicU64>,
}

impl std::fmt::Debug for StoreHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StoreHandle")
    }
}

impl StoreHandle {
    /// Starts the writer thread. `sync` chooses whether barriers wait for
    /// an fsync (durable against power loss) or only for the write
    /// (durable against a crash of the process). Ids continue after `next_id`.
    pub fn start(store: Arc<dyn Store>, sync: bool, next_id: u64) -> StoreHandle {
        let (tx, rx) = mpsc::channel::<Cmd>();
        std::thread::Builder::new()
            .name("warren-store".into())
            .spawn(move || run(store, rx, sync))
            .expect("the store writer thread starts");
        StoreHandle { tx, ids: Arc::new(AtomicU64::new(next_id.max(1))) }
    }

    /// A fresh id for a message or a queue.
    pub fn next_id(&self) -> u64 {
        self.ids.fetch_add(1, Ordering::Relaxed)
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

    /// Reclaims space of deleted records (after a backlog drains, say).
    pub fn compact(&self) {
        let _ = self.tx.send(Cmd::Compact);
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
/// RabbitMQ does). Keeps fast consumers from doubling the disk's work.
fn annihilate(ops: &mut Vec<Op>) {
    let mut put = FxHashSet::default();
    let mut gone = FxHashSet::default();
    for op in ops.iter() {
        match op {
            Op::PutMessage { id, .. } => {
                put.insert(*id);
            }
            Op::DeleteMessage { id } if put.contains(id) => {
                gone.insert(*id);
            }
            _ => {}
        }
    }
    if gone.is_empty() {
        return;
    }
    let mut places = FxHashSet::default();
    ops.retain(|op| match op {
        Op::PutMessage { id, .. } | Op::DeleteMessage { id } => !gone.contains(id),
        Op::Enqueue { queue, seq, message } | Op::MarkDelivered { queue, seq, message }
            if gone.contains(message) =>
        {
            places.insert((*queue, *seq));
            false
        }
        Op::Remove { queue, seq } => !places.contains(&(*queue, *seq)),
        _ => true,
    });
}

fn run(store: Arc<dyn Store>, rx: mpsc::Receiver<Cmd>, sync: bool) {
    let mut ops = Vec::with_capacity(1024);
    let mut waiting: Vec<Done> = Vec::new();
    let mut closed: Option<mpsc::SyncSender<()>> = None;
    let mut compact = false;
    let mut deletions: u64 = 0;
    loop {
        let first = if deletions >= COMPACT_AFTER {
            // Idle after many deletions: a backlog has probably drained.
            match rx.recv_timeout(std::time::Duration::from_millis(200)) {
                Ok(cmd) => cmd,
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    deletions = 0;
                    store.compact();
                    continue;
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => return,
            }
        } else {
            match rx.recv() {
                Ok(cmd) => cmd,
                Err(_) => return,
            }
        };
        let mut next = Some(first);
        while let Some(cmd) = next.take() {
            match cmd {
                Cmd::Op(op) => {
                    deletions += u64::from(matches!(op, Op::DeleteMessage { .. } | Op::DeleteQueue { .. }));
                    ops.push(op)
                }
                Cmd::Barrier(done) => waiting.push(done),
                Cmd::Compact => compact = true,
                Cmd::Shutdown(tell) => closed = Some(tell),
            }
            if ops.len() < MAX_BATCH && closed.is_none() {
                next = rx.try_recv().ok();
            }
        }
        annihilate(&mut ops);
        let ok = match store.write(&ops, sync && !waiting.is_empty()) {
            Ok(()) => true,
            Err(e) => {
                error!("{e}: {} operations not written", ops.len());
                false
            }
        };
        ops.clear();
        for done in waiting.drain(..) {
            done(ok);
        }
        if std::mem::take(&mut compact) {
            deletions = 0;
            store.compact();
        }
        if let Some(tell) = closed {
            drop(store);
            let _ = tell.send(());
            return;
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

    #[test]
    fn a_message_acked_within_its_batch_is_never_written() {
        let mut ops = vec![
            put(1),
            Op::Enqueue { queue: 9, seq: 1, message: 1 },
            put(2),
            Op::Enqueue { queue: 9, seq: 2, message: 2 },
            Op::MarkDelivered { queue: 9, seq: 1, message: 1 },
            Op::Remove { queue: 9, seq: 1 },
            Op::DeleteMessage { id: 1 },
            Op::Remove { queue: 9, seq: 7 },
            Op::DeleteMessage { id: 5 },
        ];
        annihilate(&mut ops);
        assert_eq!(
            ops,
            vec![
                put(2),
                Op::Enqueue { queue: 9, seq: 2, message: 2 },
                Op::Remove { queue: 9, seq: 7 },
                Op::DeleteMessage { id: 5 }
            ]
        );
    }
}
