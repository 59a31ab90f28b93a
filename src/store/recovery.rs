//! Reading queue contents back at start-up without loading them all:
//! one pass over the index gives each queue's count, byte size and the
//! first entries that fit its in-memory head; only the head's messages are
//! read. The rest stays on disk as the queue's paged-out part, read back
//! as consumers get to it. Pure over the `Store` trait.

use rustc_hash::FxHashMap;
use tracing::warn;

use super::refs::SharedRefs;
use super::writer::HeadLimit;
use super::{IndexEntry, MessageRecord, Op, Result, Store};

/// The paged-out part of a queue: its places from `from_seq` on, on disk only.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Paged {
    pub from_seq: u64,
    pub count: u64,
    pub bytes: u64,
}

impl Paged {
    pub fn push(&mut self, seq: u64, size: u32) {
        if self.count == 0 {
            self.from_seq = seq;
        }
        self.count += 1;
        self.bytes += u64::from(size);
    }
}

/// One queue's recovered contents.
#[derive(Debug, Default)]
pub struct Backlog {
    pub head: Vec<(IndexEntry, MessageRecord)>,
    pub paged: Paged,
    /// The seq after the last place on disk.
    pub next_seq: u64,
}

#[derive(Debug, Default)]
pub struct Backlogs {
    pub queues: FxHashMap<u64, Backlog>,
    pub refs: SharedRefs,
    /// Places of queues that no longer exist and transient pages of the
    /// last run, with their messages: to delete.
    pub garbage: Vec<Op>,
    /// The highest message id the index names.
    pub max_message_id: u64,
}

/// Reads back the contents of the queues `known` (by id).
pub fn backlogs(store: &dyn Store, known: &[u64], limit: HeadLimit) -> Result<Backlogs> {
    let mut b = Backlogs::default();
    for id in known {
        b.queues.insert(*id, Backlog::default());
    }
    let mut head_bytes: FxHashMap<u64, usize> = FxHashMap::default();
    store.scan_index(&mut |queue, e| {
        b.max_message_id = b.max_message_id.max(e.message);
        let Some(q) = b.queues.get_mut(&queue).filter(|_| !e.has(IndexEntry::TRANSIENT)) else {
            b.garbage.push(Op::Remove { queue, seq: e.seq });
            // A shared message is counted by the places that remain.
            if !e.has(IndexEntry::SHARED) {
                b.garbage.push(Op::DeleteMessage { id: e.message });
            }
            return;
        };
        if e.has(IndexEntry::SHARED) {
            b.refs.add(e.message, 1);
        }
        q.next_seq = e.seq + 1;
        let bytes = head_bytes.entry(queue).or_default();
        if q.paged.count == 0 && q.head.len() < limit.messages && *bytes < limit.bytes {
            *bytes += e.size as usize;
            q.head.push((e, MessageRecord::default()));
        } else {
            q.paged.push(e.seq, e.size);
        }
    })?;
    for (queue, q) in b.queues.iter_mut() {
        let ids: Vec<u64> = q.head.iter().map(|(e, _)| e.message).collect();
        let records = store.read_messages(&ids)?;
        let head = std::mem::take(&mut q.head);
        for ((e, _), record) in head.into_iter().zip(records) {
            match record {
                Some(r) => q.head.push((e, r)),
                None => {
                    warn!(queue, seq = e.seq, "skipping an index entry without its message");
                    b.garbage.push(Op::Remove { queue: *queue, seq: e.seq });
                }
            }
        }
    }
    Ok(b)
}
