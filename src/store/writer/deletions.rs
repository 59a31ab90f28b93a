//! Deletions of a batch, side by side. Consumers that ack one message at a
//! time settle a place and its message, then the next place and message:
//! in the batch they alternate, so no two removes of a queue are adjacent
//! and the store writes a tombstone for each. Ops that only delete (a
//! place, with its page, or a message) commute, so within a stretch of
//! them the writer orders them by key: a queue's places, then messages,
//! each in order, and the store turns runs of consecutive keys into range
//! deletes (`rocks.rs`). RocksDB then sorts two entries per message at a
//! flush (its write and its place), not four.

use super::Op;

/// Whether `op` only deletes: such ops may be written in any order.
fn deletes_only(op: &Op) -> bool {
    matches!(op, Op::Remove { .. } | Op::DeleteMessage { .. })
}

/// The order within a stretch of deletions: places by queue, lane (none
/// first) and seq, then messages by id.
fn order(op: &Op) -> (u8, u64, u16, u64) {
    match op {
        Op::Remove { queue, seq, lane } => (0, *queue, lane.map_or(0, |l| u16::from(l) + 1), *seq),
        Op::DeleteMessage { id } => (1, 0, 0, *id),
        _ => (2, 0, 0, 0),
    }
}

/// The deletion `order` stands for (it names its op whole).
fn from_order((kind, queue, lane, seq): (u8, u64, u16, u64)) -> Op {
    match kind {
        0 => Op::Remove { queue, seq, lane: lane.checked_sub(1).map(|l| l as u8) },
        1 => Op::DeleteMessage { id: seq },
        _ => unreachable!("only deletions are ordered"),
    }
}

/// Orders each stretch of adjacent deletions in `ops` by key; everything
/// else keeps its place. The keys are sorted, not the ops: an `Op` is
/// several times a key's size, and sorting moved each one ~log n times.
pub(super) fn sort_deletions(ops: &mut [Op]) {
    let mut keys = Vec::new();
    let mut start = 0;
    while start < ops.len() {
        let len = ops[start..].iter().take_while(|op| deletes_only(op)).count();
        if len > 1 {
            let stretch = &mut ops[start..start + len];
            keys.clear();
            keys.extend(stretch.iter().map(order));
            keys.sort_unstable();
            for (op, key) in stretch.iter_mut().zip(&keys) {
                *op = from_order(*key);
            }
        }
        start += len.max(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::IndexEntry;

    fn remove(seq: u64) -> Op {
        Op::Remove { queue: 7, seq, lane: None }
    }

    fn delete(id: u64) -> Op {
        Op::DeleteMessage { id }
    }

    fn place(seq: u64) -> Op {
        Op::Place { queue: 7, entry: IndexEntry { seq, message: seq, ..Default::default() } }
    }

    #[test]
    fn alternating_acks_become_runs_of_places_then_messages() {
        let mut ops = vec![remove(3), delete(13), remove(1), delete(11), remove(2), delete(12)];
        sort_deletions(&mut ops);
        assert_eq!(ops, vec![remove(1), remove(2), remove(3), delete(11), delete(12), delete(13)]);
    }

    #[test]
    fn a_write_between_deletions_keeps_them_apart() {
        // The place of 2 written again after its remove must stay written:
        // nothing crosses it.
        let mut ops = vec![delete(12), remove(2), place(2), delete(11), remove(1), remove(2)];
        sort_deletions(&mut ops);
        assert_eq!(ops, vec![remove(2), delete(12), place(2), remove(1), remove(2), delete(11)]);
    }

    #[test]
    fn every_deletion_comes_back_as_it_was() {
        let all = [
            Op::Remove { queue: u64::MAX, seq: u64::MAX, lane: Some(u8::MAX) },
            Op::Remove { queue: 0, seq: 0, lane: Some(0) },
            Op::Remove { queue: 3, seq: 4, lane: None },
            Op::DeleteMessage { id: u64::MAX },
        ];
        for op in all {
            assert_eq!(from_order(order(&op)), op);
        }
    }

    #[test]
    fn queues_and_lanes_are_kept_apart() {
        let paged = |queue, seq| Op::Remove { queue, seq, lane: Some(0) };
        let mut ops = vec![paged(7, 1), remove(2), Op::Remove { queue: 5, seq: 9, lane: None }, remove(1)];
        sort_deletions(&mut ops);
        assert_eq!(ops, vec![Op::Remove { queue: 5, seq: 9, lane: None }, remove(1), remove(2), paged(7, 1)]);
    }
}
