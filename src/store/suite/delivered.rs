//! A queue's delivery mark (`Op::Delivered`): every place below it comes
//! back redelivered.

use super::super::recovery::backlogs;
use super::super::writer::HeadLimit;
use super::inline::placed;
use super::*;

#[test]
fn places_below_a_queues_delivery_mark_come_back_delivered() {
    const D: u8 = IndexEntry::DELIVERED;
    for (name, store, _dir) in stores() {
        let mut ops = vec![Op::PutQueue(queue(3, "q").into()), Op::PutQueue(queue(4, "other").into())];
        ops.extend((1..=4u64).map(|seq| placed(3, seq, 100 + seq, 0, b"head", true)));
        ops.extend((5..=6u64).map(|seq| page(3, seq, 100 + seq, 0, b"paged")));
        ops.push(placed(4, 1, 200, 0, b"other", true));
        ops.push(Op::Delivered { queue: 3, below: 3 });
        store.write(&ops, true).unwrap();
        // Later marks replace earlier ones; a gone queue's mark is dropped at start-up.
        let marks = [Op::Delivered { queue: 3, below: 6 }, Op::Delivered { queue: 4, below: 9 }];
        store.write(&marks, false).unwrap();
        store.write(&[Op::Delivered { queue: 77, below: 5 }], false).unwrap();
        let mut got = store.delivered_marks().unwrap();
        got.sort_unstable();
        assert_eq!(got, vec![(3, 6), (4, 9), (77, 5)], "{name}");

        let limit = HeadLimit { messages: 4, bytes: 1 << 20 };
        let b = backlogs(store.as_ref(), &[(3, 0), (4, 0)], limit).unwrap();
        let q = &b.queues[&3];
        let head: Vec<(u64, bool)> = q.head.iter().map(|(e, _)| (e.seq, e.has(D))).collect();
        assert_eq!(head, vec![(1, true), (2, true), (3, true), (4, true)], "{name}");
        assert_eq!(q.paged[0].count, 2, "{name}");
        assert_eq!(q.next_seq, 7, "{name}");
        // The mark past every place: new seqs start there, or a message
        // published after the restart would come back redelivered.
        assert_eq!(b.queues[&4].next_seq, 9, "{name}");
        // The marks themselves, for the queues to go on from.
        assert_eq!((q.delivered_below, b.queues[&4].delivered_below), (6, 9), "{name}");
        assert!(b.queues[&4].head[0].0.has(D), "{name}");
        // The delivered page is written again saying so (what a page read
        // back tells the queue); the other stays as it is.
        let pages: Vec<(u64, bool)> = b
            .fixes
            .iter()
            .filter_map(|op| match op {
                Op::Page { queue: 3, entry, .. } => Some((entry.seq, entry.has(D))),
                _ => None,
            })
            .collect();
        assert_eq!(pages, vec![(5, true)], "{name}");
        assert!(b.fixes.contains(&Op::Delivered { queue: 77, below: 0 }), "{name}");
        store.write(&b.fixes, true).unwrap();
        let paged = store.read_pages(3, 5, 10).unwrap();
        let flags: Vec<(u64, bool)> = paged.iter().map(|(e, _)| (e.seq, e.has(D))).collect();
        assert_eq!(flags, vec![(5, true), (6, false)], "{name}");
        let mut got = store.delivered_marks().unwrap();
        got.sort_unstable();
        assert_eq!(got, vec![(3, 6), (4, 9)], "{name}");

        // Deleting the queue takes its mark, and only its own.
        let delete = Op::DeleteQueue { vhost: "/".into(), name: "q".into(), id: 3, last_lane: 0 };
        store.write(&[delete], true).unwrap();
        assert_eq!(store.delivered_marks().unwrap(), vec![(4, 9)], "{name}");
    }
}
