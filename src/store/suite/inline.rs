//! Messages held by one queue, kept in their places (`Op::PlaceWith`,
//! schema 4), and places from before that, whose messages are kept apart.

use super::super::recovery::backlogs;
use super::super::writer::HeadLimit;
use super::*;

/// A place keeping its message (`flags` besides `INLINE`).
pub(super) fn placed(queue: u64, seq: u64, message: u64, flags: u8, body: &'static [u8], first: bool) -> Op {
    let flags = flags | IndexEntry::INLINE;
    let entry = IndexEntry { seq, message, size: body.len() as u32, flags, expires: 0, lane: 0, returns: 0 };
    Op::PlaceWith { queue, entry, record: message_record(body).into(), first }
}

fn kept(store: &dyn Store, queue: u64, seqs: &[u64]) -> Vec<Option<Bytes>> {
    store.read_places(queue, seqs).unwrap().into_iter().map(|r| r.map(|r| r.body)).collect()
}

#[test]
fn a_place_keeps_its_message_through_rewrites_until_it_is_removed() {
    const I: u8 = IndexEntry::INLINE;
    for (name, store, _dir) in stores() {
        let mut ops = vec![Op::PutQueue(queue(3, "q").into()), Op::PutQueue(queue(4, "other").into())];
        ops.extend((1..=40u64).map(|seq| placed(3, seq, 100 + seq, 0, b"kept", true)));
        ops.push(placed(4, 1, 500, 0, b"other", true));
        store.write(&ops, true).unwrap();
        // A flag rewritten: the place is written whole again.
        store.write(&[placed(3, 2, 102, IndexEntry::DELIVERED, b"kept", false)], false).unwrap();
        let all = scan(store.as_ref());
        assert_eq!(all.len(), 41, "{name}");
        assert_eq!(all[1], (3, 2, 102, I | IndexEntry::DELIVERED), "{name}");
        assert_eq!(all[0], (3, 1, 101, I), "{name}");
        let some = |b: &'static [u8]| Some(Bytes::from_static(b));
        assert_eq!(kept(store.as_ref(), 3, &[1, 2, 41]), vec![some(b"kept"), some(b"kept"), None], "{name}");
        assert_eq!(store.read_messages(&[101, 102]).unwrap(), vec![None, None], "nothing apart: {name}");
        // One removal, a run (one range delete in RocksDB) and a drop of places take their messages.
        let mut ops = vec![Op::Remove { queue: 3, seq: 1, lane: None }];
        ops.extend((10..30).map(|seq| Op::Remove { queue: 3, seq, lane: None }));
        ops.push(Op::DropPlaces { queue: 3, index: vec![(35, 38)], pages: Vec::new() });
        store.write(&ops, true).unwrap();
        let left: Vec<u64> = scan(store.as_ref()).iter().filter(|p| p.0 == 3).map(|p| p.1).collect();
        let expected: Vec<u64> = (2..10).chain(30..35).chain(38..=40).collect();
        assert_eq!(left, expected, "{name}");
        assert_eq!(
            kept(store.as_ref(), 3, &[1, 10, 29, 36, 9, 30]),
            [None, None, None, None, some(b"kept"), some(b"kept")],
            "{name}"
        );
        // Recovery gives out ids above every message kept in a place.
        let b =
            backlogs(store.as_ref(), &[(3, 0), (4, 0)], HeadLimit { messages: 100, bytes: 1 << 20 }).unwrap();
        assert_eq!(b.max_message_id, 500, "{name}");
        // Deleting a queue takes its places with their messages, and only its own.
        store
            .write(&[Op::DeleteQueue { vhost: "/".into(), name: "q".into(), id: 3, last_lane: 0 }], true)
            .unwrap();
        assert_eq!(scan(store.as_ref()), vec![(4, 1, 500, I)], "{name}");
        assert_eq!(kept(store.as_ref(), 3, &[9]), vec![None], "{name}");
        assert_eq!(kept(store.as_ref(), 4, &[1]), vec![some(b"other")], "{name}");
    }
}

#[test]
fn recovery_reads_messages_kept_in_places_and_moves_older_ones_in() {
    const I: u8 = IndexEntry::INLINE;
    for (name, store, _dir) in stores() {
        let mut ops = vec![Op::PutQueue(queue(1, "q").into())];
        // 1..=3 and 6 keep their messages; 4, 5 and 7 were written before
        // (schema 3: the message apart); the head holds five.
        for seq in [1, 2, 3, 6] {
            let flags = if seq == 2 { IndexEntry::DELIVERED } else { 0 };
            ops.push(placed(1, seq, seq, flags, b"in place", true));
        }
        for seq in [4, 5, 7] {
            ops.push(Op::PutMessage { id: seq, record: message(b"apart").into() });
            ops.push(place(1, seq, seq, 0));
        }
        // A place of a queue that is gone, keeping its message.
        ops.push(placed(9, 1, 8, 0, b"gone", true));
        store.write(&ops, true).unwrap();
        let limit = HeadLimit { messages: 5, bytes: 1 << 20 };
        let b = backlogs(store.as_ref(), &[(1, 0)], limit).unwrap();
        let q = &b.queues[&1];
        let head: Vec<_> = q.head.iter().map(|(e, r)| (e.seq, e.flags, r.body.clone())).collect();
        let (inp, apart) = (Bytes::from_static(b"in place"), Bytes::from_static(b"apart"));
        let expected = vec![
            (1, I, inp.clone()),
            (2, I | IndexEntry::DELIVERED, inp.clone()),
            (3, I, inp.clone()),
            (4, I, apart.clone()),
            (5, I, apart.clone()),
        ];
        assert_eq!(head, expected, "{name}");
        assert_eq!(b.max_message_id, 8, "{name}");
        // The older head places keep their messages from now on.
        let moved: Vec<_> = b
            .fixes
            .iter()
            .filter_map(|op| match op {
                Op::PlaceWith { queue: 1, entry, record, .. } => {
                    Some((entry.seq, entry.flags, record.parts().body.to_vec()))
                }
                _ => None,
            })
            .collect();
        assert_eq!(moved, vec![(4, I, b"apart".to_vec()), (5, I, b"apart".to_vec())], "{name}");
        // Nothing apart to delete for places that kept their messages (6; 8 of the gone queue).
        assert_eq!(deleted_messages(&b.fixes), vec![4, 5, 7], "{name}");
        assert!(b.fixes.contains(&Op::Remove { queue: 9, seq: 1, lane: None }), "{name}");
        // Beyond the head, pages: their flags say the page keeps the message.
        let paged: Vec<_> = b
            .fixes
            .iter()
            .filter_map(|op| match op {
                Op::Page { queue: 1, entry, record } => {
                    Some((entry.seq, entry.flags, record.parts().body.to_vec()))
                }
                _ => None,
            })
            .collect();
        let p = IndexEntry::PAGED;
        assert_eq!(paged, vec![(6, p, b"in place".to_vec()), (7, p, b"apart".to_vec())], "{name}");
        store.write(&b.fixes, true).unwrap();
        assert_eq!(store.read_messages(&[4, 5, 7]).unwrap(), vec![None, None, None], "{name}");
        assert_eq!(kept(store.as_ref(), 1, &[4, 5]), vec![Some(apart.clone()), Some(apart)], "{name}");
        assert_eq!(kept(store.as_ref(), 9, &[1]), vec![None], "{name}");
        let seqs: Vec<_> = store.read_pages(1, 0, 10).unwrap().iter().map(|(e, _)| e.seq).collect();
        assert_eq!(seqs, vec![6, 7], "{name}");
        // Read again: the same head, nothing left to move.
        let again = backlogs(store.as_ref(), &[(1, 0)], limit).unwrap();
        let head2: Vec<_> =
            again.queues[&1].head.iter().map(|(e, r)| (e.seq, e.flags, r.body.clone())).collect();
        assert_eq!(head2, head, "{name}");
        assert!(again.fixes.is_empty(), "{name}: {:?}", again.fixes);
    }
}

#[test]
fn rocksdb_brings_schema_3_to_4_and_reads_it_as_it_was() {
    let dir = tempdir::Dir::new();
    {
        let s = RocksStore::open(&dir.0).unwrap();
        let ops = [
            Op::PutQueue(queue(1, "q").into()),
            Op::PutMessage { id: 1, record: message(b"apart").into() },
            place(1, 1, 1, 0),
        ];
        s.write(&ops, true).unwrap();
    }
    let schema = |v: u32| {
        let mut opts = rocksdb::Options::default();
        opts.create_missing_column_families(true);
        let db = rocksdb::DB::open_cf(&opts, &dir.0, super::super::rocks::FAMILIES).unwrap();
        let meta = db.cf_handle("meta").unwrap();
        if v != 0 {
            db.put_cf(meta, b"schema", v.to_be_bytes()).unwrap();
        }
        u32::from_be_bytes(db.get_cf(meta, b"schema").unwrap().unwrap()[..].try_into().unwrap())
    };
    assert_eq!(schema(SCHEMA_SEPARATE), SCHEMA_SEPARATE);
    let s = RocksStore::open(&dir.0).unwrap();
    let b = backlogs(&s, &[(1, 0)], HeadLimit { messages: 10, bytes: 1 << 20 }).unwrap();
    assert_eq!(b.queues[&1].head[0].1.body, Bytes::from_static(b"apart"));
    drop(s);
    assert_eq!(schema(0), SCHEMA_VERSION, "an older Warren now refuses it");
    assert_eq!(SCHEMA_VERSION, 4);
}

#[test]
fn a_large_message_of_schema_3_stays_apart() {
    for (name, store, _dir) in stores() {
        let big: &'static [u8] = Box::leak(vec![7u8; IndexEntry::INLINE_BELOW].into_boxed_slice());
        let entry = IndexEntry { seq: 1, message: 1, size: big.len() as u32, ..Default::default() };
        let ops = [
            Op::PutQueue(queue(1, "q").into()),
            Op::PutMessage { id: 1, record: message_record(big).into() },
            Op::Place { queue: 1, entry },
        ];
        store.write(&ops, true).unwrap();
        let b = backlogs(store.as_ref(), &[(1, 0)], HeadLimit { messages: 10, bytes: 1 << 20 }).unwrap();
        assert_eq!(b.queues[&1].head[0].1.body.len(), big.len(), "{name}");
        assert_eq!(b.queues[&1].head[0].0.flags, 0, "{name}");
        assert!(b.fixes.is_empty(), "{name}: {:?}", b.fixes);
    }
}

#[test]
fn fixes_go_in_bounded_groups_that_keep_a_moved_message_with_its_new_place() {
    use super::super::recovery::fix_groups;
    // One op ahead, so that the count bound falls inside a move each time.
    let mut fixes = vec![Op::Remove { queue: 9, seq: 1, lane: None }];
    for seq in 0..3000u64 {
        fixes.push(placed(1, seq, seq, 0, b"m", false));
        fixes.push(Op::DeleteMessage { id: seq });
        // A message moved out: written apart, then its place.
        fixes.push(Op::PutMessage { id: 10_000 + seq, record: message(b"big").into() });
        fixes.push(place(2, seq, 10_000 + seq, 0));
    }
    let groups = fix_groups(fixes.clone());
    assert!(groups.len() > 1);
    assert!(groups.iter().all(|g| g.len() <= 1025), "{:?}", groups.iter().map(Vec::len).collect::<Vec<_>>());
    for g in &groups[1..] {
        assert!(
            matches!(g.first(), Some(Op::PlaceWith { .. } | Op::PutMessage { .. })),
            "a move split: {:?}",
            g.first()
        );
    }
    assert_eq!(groups.concat(), fixes, "in order, nothing lost");
    // Bodies bound a group too.
    let big: &'static [u8] = Box::leak(vec![0u8; 4 << 20].into_boxed_slice());
    let fixes: Vec<Op> = (0..10)
        .map(|seq| Op::Page {
            queue: 1,
            entry: IndexEntry { seq, flags: IndexEntry::PAGED, ..Default::default() },
            record: message(big).into(),
        })
        .collect();
    let sizes: Vec<usize> = fix_groups(fixes).iter().map(Vec::len).collect();
    assert_eq!(sizes, vec![4, 4, 2]);
    // Messages moved out count too, each with its place.
    let fixes: Vec<Op> = (0..10)
        .flat_map(|seq| [Op::PutMessage { id: seq, record: message(big).into() }, place(1, seq, seq, 0)])
        .collect();
    let sizes: Vec<usize> = fix_groups(fixes).iter().map(Vec::len).collect();
    assert_eq!(sizes, vec![8, 8, 4]);
}

#[test]
fn a_large_message_kept_in_its_place_moves_out_and_a_gone_queues_message_goes_before_its_place() {
    for (name, store, _dir) in stores() {
        let big: &'static [u8] = Box::leak(vec![7u8; IndexEntry::INLINE_BELOW].into_boxed_slice());
        let ops = [
            Op::PutQueue(queue(1, "q").into()),
            placed(1, 1, 1, 0, big, true),
            // Queue 9 is gone; its place named a message kept apart.
            Op::PutMessage { id: 2, record: message(b"gone").into() },
            place(9, 1, 2, 0),
        ];
        store.write(&ops, true).unwrap();
        let b = backlogs(store.as_ref(), &[(1, 0)], HeadLimit { messages: 10, bytes: 1 << 20 }).unwrap();
        let head = &b.queues[&1].head;
        assert_eq!((head[0].0.flags, head[0].1.body.len()), (0, big.len()), "{name}");
        let at = |want: &Op| b.fixes.iter().position(|op| op == want);
        let entry = IndexEntry { seq: 1, message: 1, size: big.len() as u32, ..Default::default() };
        let (put, placed_apart) = (
            b.fixes.iter().position(|op| matches!(op, Op::PutMessage { id: 1, .. })),
            at(&Op::Place { queue: 1, entry }),
        );
        assert!(put.is_some() && placed_apart == put.map(|p| p + 1), "{name}: {:?}", b.fixes);
        let (deleted, removed) =
            (at(&Op::DeleteMessage { id: 2 }), at(&Op::Remove { queue: 9, seq: 1, lane: None }));
        assert!(deleted.is_some() && deleted < removed, "{name}: {:?}", b.fixes);
        store.write(&b.fixes, true).unwrap();
        assert_eq!(store.read_messages(&[1, 2]).unwrap(), vec![Some(message_record(big)), None], "{name}");
        assert_eq!(kept(store.as_ref(), 1, &[1]), vec![None], "{name}");
        let again = backlogs(store.as_ref(), &[(1, 0)], HeadLimit { messages: 10, bytes: 1 << 20 }).unwrap();
        assert!(again.fixes.is_empty(), "{name}: {:?}", again.fixes);
    }
}
