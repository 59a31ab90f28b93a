//! Ops that cancel out within one group commit: a message consumed (or a
//! page settled) before its batch reached the disk is never written.

use rustc_hash::{FxHashMap, FxHashSet};

use crate::store::Op;

/// Drops from a batch every op about a message that the same batch also
/// deletes: a message consumed and acknowledged before it reached the disk
/// need never be written (its publisher may be confirmed all the same, as
/// RabbitMQ does). Keeps fast consumers from doubling the disk's work. The
/// same for a page, or a place holding its message, written and removed in
/// one batch. A message or place written again after its deletion (a
/// delivery taken back) is left alone.
pub(super) fn annihilate(ops: &mut Vec<Op>) {
    // Most batches delete nothing: nothing to look for.
    if !ops.iter().any(|op| matches!(op, Op::DeleteMessage { .. } | Op::Remove { .. })) {
        return;
    }
    // Where each message, page and place holding its message is first
    // written in this batch: only ops from there on are about that write
    // (an earlier delete or remove settles a copy written by an earlier
    // batch, and must stay).
    let (mut first_put, mut gone, mut back) =
        (FxHashMap::default(), FxHashSet::default(), FxHashSet::default());
    let (mut first_place, mut removed, mut rewritten) =
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
            Op::Page { queue, entry, .. } | Op::PlaceWith { queue, entry, .. }
                if removed.contains(&(*queue, entry.seq)) =>
            {
                rewritten.insert((*queue, entry.seq));
            }
            // A rewrite of flags (`first` false) before any first write
            // rewrites what an earlier batch wrote: its removal must stay.
            Op::Page { queue, entry, .. } | Op::PlaceWith { queue, entry, first: true, .. } => {
                first_place.entry((*queue, entry.seq)).or_insert(i);
            }
            Op::Remove { queue, seq, .. } if first_place.contains_key(&(*queue, *seq)) => {
                removed.insert((*queue, *seq));
            }
            _ => {}
        }
    }
    gone.retain(|id| !back.contains(id));
    removed.retain(|place| !rewritten.contains(place));
    if gone.is_empty() && removed.is_empty() {
        return;
    }
    let written_here = |id: &u64, i: usize| gone.contains(id) && first_put.get(id).is_some_and(|at| i >= *at);
    let placed_here = |place: &(u64, u64), i: usize| {
        removed.contains(place) && first_place.get(place).is_some_and(|at| i >= *at)
    };
    // Places whose write was dropped: their later removes go too.
    let mut places = FxHashSet::default();
    let mut i = 0;
    ops.retain(|op| {
        let keep = match op {
            Op::PutMessage { id, .. } | Op::DeleteMessage { id } => !written_here(id, i),
            Op::Place { queue, entry }
            | Op::Page { queue, entry, .. }
            | Op::PlaceWith { queue, entry, .. }
                if written_here(&entry.message, i) || placed_here(&(*queue, entry.seq), i) =>
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

/// Keeps one delivery mark of each queue in a batch (`Op::Delivered`): the
/// last, raised to the highest (a queue submits only rising marks; a mark
/// of 0, a deletion, stays as it is).
pub(super) fn latest_marks(ops: &mut Vec<Op>) {
    if ops.iter().filter(|op| matches!(op, Op::Delivered { .. })).nth(1).is_none() {
        return;
    }
    // Per queue: where its last mark is, and the highest.
    let mut last: FxHashMap<u64, (usize, u64)> = FxHashMap::default();
    for (i, op) in ops.iter().enumerate() {
        if let Op::Delivered { queue, below } = op {
            if *below > 0 {
                let l = last.entry(*queue).or_default();
                *l = (i, l.1.max(*below));
            }
        }
    }
    let mut i = 0;
    ops.retain_mut(|op| {
        let at = i;
        i += 1;
        match op {
            Op::Delivered { queue, below } if *below > 0 => {
                let (keep_at, highest) = last[queue];
                *below = highest;
                keep_at == at
            }
            _ => true,
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{IndexEntry, MessageRecord};

    fn put(id: u64) -> Op {
        Op::PutMessage { id, record: MessageRecord::default().into() }
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
        Op::Page { queue, entry, record: MessageRecord::default().into() }
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

    fn placed(seq: u64, first: bool) -> Op {
        let entry = IndexEntry { seq, message: seq, flags: IndexEntry::INLINE, ..Default::default() };
        Op::PlaceWith { queue: 9, entry, record: MessageRecord::default().into(), first }
    }

    #[test]
    fn a_place_keeping_its_message_removed_within_its_batch_is_never_written() {
        let remove = |seq| Op::Remove { queue: 9, seq, lane: None };
        // Its rewrite (delivered) goes with it; another place stays.
        let mut ops = vec![placed(1, true), placed(2, true), placed(1, false), remove(1)];
        annihilate(&mut ops);
        assert_eq!(ops, vec![placed(2, true)]);
        // Put back after its removal: written again, in order.
        let mut ops = vec![placed(1, true), remove(1), placed(1, true)];
        let before = ops.clone();
        annihilate(&mut ops);
        assert_eq!(ops, before);
        // Removed, put back (a delivery that never left), removed again: the
        // first removal settles what an earlier batch wrote.
        let mut ops = vec![remove(1), placed(1, true), remove(1)];
        annihilate(&mut ops);
        assert_eq!(ops, vec![remove(1)]);
    }

    #[test]
    fn a_rewrite_of_flags_and_a_removal_in_one_batch_both_reach_the_disk() {
        // The place was written by an earlier batch: only a first write
        // cancels with its removal.
        let remove = Op::Remove { queue: 9, seq: 1, lane: None };
        let mut ops = vec![placed(1, false), remove.clone()];
        let before = ops.clone();
        annihilate(&mut ops);
        assert_eq!(ops, before);
    }

    #[test]
    fn only_the_last_delivery_mark_of_a_queue_is_written() {
        let mark = |queue, below| Op::Delivered { queue, below };
        let mut ops = vec![mark(9, 3), placed(1, true), mark(4, 2), mark(9, 5), put(7), mark(9, 6)];
        latest_marks(&mut ops);
        assert_eq!(ops, vec![placed(1, true), mark(4, 2), put(7), mark(9, 6)]);
        // Never lowered; a deletion stays where it is.
        let mut ops = vec![mark(9, 8), mark(9, 0), mark(9, 4)];
        latest_marks(&mut ops);
        assert_eq!(ops, vec![mark(9, 0), mark(9, 8)]);
        let mut ops = vec![mark(9, 3), put(7)];
        let before = ops.clone();
        latest_marks(&mut ops);
        assert_eq!(ops, before);
    }
}
