//! The storage test suite, run against every implementation.

use amq_protocol::types::{AMQPValue, FieldTable};
use bytes::Bytes;

use super::memory::MemoryStore;
use super::rocks::RocksStore;
use super::*;

mod delivered;
mod inline;

fn stores() -> Vec<(&'static str, Box<dyn Store>, Option<tempdir::Dir>)> {
    let dir = tempdir::Dir::new();
    let rocks = RocksStore::open(&dir.0).unwrap();
    vec![("memory", Box::new(MemoryStore::default()), None), ("rocksdb", Box::new(rocks), Some(dir))]
}

/// A temporary directory, removed when dropped (the writer's tests use it too).
pub(super) mod tempdir {
    pub struct Dir(pub std::path::PathBuf);
    impl Dir {
        pub fn new() -> Dir {
            let p = std::env::temp_dir().join(format!(
                "warren-store-{}-{}",
                std::process::id(),
                fastrand::u64(..)
            ));
            Dir(p)
        }
    }
    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

fn queue(id: u64, name: &str) -> QueueRecord {
    let mut args = FieldTable::default();
    args.insert("x-max-length".into(), AMQPValue::LongInt(5));
    QueueRecord { vhost: "/".into(), name: name.into(), id, auto_delete: false, arguments: args }
}

fn message(body: &'static [u8]) -> MessageRecord {
    MessageRecord {
        exchange: Bytes::from_static(b""),
        routing_key: Bytes::from_static(b"q"),
        header: Bytes::from_static(b"\x00\x3c\x00\x00\x00\x00\x00\x00\x00\x00\x00\x05\x10\x00\x02"),
        body: Bytes::from_static(body),
    }
}

#[test]
fn control_records_round_trip_in_order_and_delete() {
    for (name, store, _dir) in stores() {
        let put = |space: &str, key: &str, value: &[u8]| Op::PutControl {
            space: space.into(),
            key: key.into(),
            value: value.to_vec(),
        };
        store
            .write(&[put("vhost", "b", b"1"), put("user", "u", b"2"), put("vhost", "a", b"3")], true)
            .unwrap();
        store
            .write(
                &[put("vhost", "b", b"4"), Op::DeleteControl { space: "user".into(), key: "u".into() }],
                true,
            )
            .unwrap();
        let got = store.load().unwrap().control;
        let want =
            vec![("vhost".into(), "a".into(), b"3".to_vec()), ("vhost".into(), "b".into(), b"4".to_vec())];
        assert_eq!(got, want, "{name}");
    }
}

#[test]
fn topology_round_trips_and_deletes() {
    for (name, store, _dir) in stores() {
        let ex = ExchangeRecord {
            vhost: "/".into(),
            name: "x".into(),
            kind: "topic".into(),
            auto_delete: false,
            internal: false,
            arguments: FieldTable::default(),
        };
        let b = BindingRecord {
            vhost: "/".into(),
            source: "x".into(),
            to_queue: true,
            destination: "q".into(),
            key: "a.*".into(),
            arguments: FieldTable::default(),
        };
        store
            .write(
                &[
                    Op::PutExchange(ex.clone().into()),
                    Op::PutQueue(queue(1, "q").into()),
                    Op::PutBinding(b.clone().into()),
                ],
                true,
            )
            .unwrap();
        let r = store.load().unwrap();
        assert_eq!(r.exchanges, vec![ex], "{name}");
        assert_eq!(r.queues.len(), 1, "{name}");
        assert_eq!(r.queues[0], queue(1, "q"), "{name}");
        assert_eq!(r.bindings, vec![b.clone()], "{name}");
        store
            .write(
                &[Op::DeleteBinding(b.into()), Op::DeleteExchange { vhost: "/".into(), name: "x".into() }],
                true,
            )
            .unwrap();
        let r = store.load().unwrap();
        assert!(r.exchanges.is_empty() && r.bindings.is_empty(), "{name}");
    }
}

fn place(queue: u64, seq: u64, message: u64, flags: u8) -> Op {
    Op::Place {
        queue,
        entry: IndexEntry { seq, message, size: 5, flags, expires: 1234, lane: 0, returns: 0 },
    }
}

fn page(queue: u64, seq: u64, message: u64, flags: u8, body: &'static [u8]) -> Op {
    let entry = IndexEntry {
        seq,
        message,
        size: body.len() as u32,
        flags: flags | IndexEntry::PAGED,
        expires: 7,
        lane: 0,
        returns: 2,
    };
    Op::Page { queue, entry, record: message_record(body).into() }
}

fn message_record(body: &'static [u8]) -> MessageRecord {
    message(body)
}

/// The messages kept apart that these ops delete, in order.
fn deleted_messages(ops: &[Op]) -> Vec<u64> {
    ops.iter()
        .filter_map(|op| match op {
            Op::DeleteMessage { id } => Some(*id),
            _ => None,
        })
        .collect()
}

fn scan(store: &dyn Store) -> Vec<(u64, u64, u64, u8)> {
    let mut all = Vec::new();
    store.scan_index(&mut |q, e| all.push((q, e.seq, e.message, e.flags))).unwrap();
    all
}

#[test]
fn messages_index_and_pages_in_order_with_flags() {
    const P: u8 = IndexEntry::PAGED;
    for (name, store, _dir) in stores() {
        let mut ops = vec![Op::PutQueue(queue(3, "q").into()), Op::PutQueue(queue(4, "other").into())];
        for i in 1..=3u64 {
            ops.push(Op::PutMessage { id: 100 + i, record: message(b"hello").into() });
            ops.push(place(3, 300 - i * 10, 100 + i, 0));
        }
        ops.push(page(3, 300, 200, 0, b"p300"));
        ops.push(page(3, 310, 201, IndexEntry::SHARED, b"p310"));
        ops.push(page(4, 1, 202, 0, b"other"));
        store.write(&ops, true).unwrap();
        store
            .write(
                &[
                    place(3, 290, 101, IndexEntry::DELIVERED | IndexEntry::SHARED),
                    Op::Remove { queue: 3, seq: 280, lane: None },
                    Op::DeleteMessage { id: 102 },
                    Op::Remove { queue: 3, seq: 300, lane: Some(0) },
                ],
                false,
            )
            .unwrap();
        assert_eq!(
            scan(store.as_ref()),
            vec![(3, 270, 103, 0), (3, 290, 101, 3), (3, 310, 201, P | 2), (4, 1, 202, P)],
            "{name}"
        );
        // Pages come back in order, with their places, from where asked, up to the limit.
        let pages = store.read_pages(3, 0, 10).unwrap();
        assert_eq!(pages.len(), 1, "{name}");
        assert_eq!((pages[0].0.seq, pages[0].0.size, pages[0].0.expires), (310, 4, 7), "{name}");
        assert_eq!(pages[0].0.returns, 2, "{name}");
        assert_eq!(pages[0].1, message(b"p310"), "{name}");
        assert!(store.read_pages(3, 311, 10).unwrap().is_empty(), "{name}");
        assert_eq!(store.read_pages(4, 0, 1).unwrap()[0].1, message(b"other"), "{name}");
        let found = store.read_messages(&[101, 102, 103]).unwrap();
        assert_eq!(found, vec![Some(message(b"hello")), None, Some(message(b"hello"))], "{name}");
        assert_eq!(store.load().unwrap().max_message_id, 103, "{name}");
        // Deleting a queue takes its index and pages with it, and only its own.
        store
            .write(&[Op::DeleteQueue { vhost: "/".into(), name: "q".into(), id: 3, last_lane: 0 }], true)
            .unwrap();
        assert_eq!(store.load().unwrap().queues.len(), 1, "{name}");
        assert_eq!(scan(store.as_ref()), vec![(4, 1, 202, P)], "{name}");
        assert!(store.read_pages(3, 0, 10).unwrap().is_empty(), "{name}");
    }
}

#[test]
fn recovery_reads_only_the_head_pages_the_rest_and_drops_transient_pages() {
    use super::recovery::{backlogs, Paged};
    use super::writer::HeadLimit;
    for (name, store, _dir) in stores() {
        let mut ops = vec![Op::PutQueue(queue(1, "q").into())];
        // 1..=6 arrived while the head had room (among the messages), the rest were paged out.
        for i in 1..=6u64 {
            ops.push(Op::PutMessage { id: i, record: message(b"hello").into() });
            let flags = match i {
                4 => IndexEntry::TRANSIENT,
                5 => IndexEntry::SHARED | IndexEntry::DELIVERED,
                _ => 0,
            };
            ops.push(place(1, i, i, flags));
        }
        for i in 7..=10u64 {
            let flags = if i == 8 { IndexEntry::TRANSIENT } else { 0 };
            ops.push(page(1, i, i, flags, b"hello"));
        }
        // A page of a queue that did not survive the restart.
        ops.push(page(9, 1, 11, IndexEntry::TRANSIENT, b"gone"));
        store.write(&ops, true).unwrap();
        let b = backlogs(store.as_ref(), &[(1, 0)], HeadLimit { messages: 3, bytes: 1 << 20 }).unwrap();
        let q = &b.queues[&1];
        let head: Vec<_> = q.head.iter().map(|(e, r)| (e.seq, r.body.clone())).collect();
        let hello = bytes::Bytes::from_static(b"hello");
        assert_eq!(head, vec![(1, hello.clone()), (2, hello.clone()), (3, hello)], "{name}");
        assert_eq!(q.paged, vec![Paged { from_seq: 5, count: 5, bytes: 25, shared: 1 }], "{name}");
        assert_eq!(q.next_seq, 11, "{name}");
        assert_eq!(b.refs.len(), 1, "{name}");
        assert_eq!(b.max_message_id, 11, "{name}");
        // Transient places go; paged-out places among the messages (5, 6) get pages.
        assert!(b.fixes.contains(&Op::Remove { queue: 1, seq: 4, lane: None }), "{name}");
        assert!(b.fixes.contains(&Op::DeleteMessage { id: 4 }), "{name}");
        assert!(b.fixes.contains(&Op::Remove { queue: 1, seq: 8, lane: Some(0) }), "{name}");
        assert!(b.fixes.contains(&Op::Remove { queue: 9, seq: 1, lane: Some(0) }), "{name}");
        assert!(b.fixes.contains(&Op::DeleteMessage { id: 6 }), "{name}");
        assert!(!b.fixes.contains(&Op::DeleteMessage { id: 5 }), "a shared message stays: {name}");
        let paged: Vec<_> = b
            .fixes
            .iter()
            .filter_map(|op| match op {
                Op::Page { queue: 1, entry, .. } => Some((entry.seq, entry.flags)),
                _ => None,
            })
            .collect();
        let shared_delivered = IndexEntry::SHARED | IndexEntry::DELIVERED | IndexEntry::PAGED;
        assert_eq!(paged, vec![(5, shared_delivered), (6, IndexEntry::PAGED)], "{name}");
        store.write(&b.fixes, true).unwrap();
        let seqs: Vec<_> = store.read_pages(1, 0, 10).unwrap().iter().map(|(e, _)| e.seq).collect();
        assert_eq!(seqs, vec![5, 6, 7, 9, 10], "{name}");
        // A byte limit bounds the head too.
        let b = backlogs(store.as_ref(), &[(1, 0)], HeadLimit { messages: 100, bytes: 8 }).unwrap();
        assert_eq!(b.queues[&1].head.len(), 2, "{name}");
    }
}

#[test]
fn rocksdb_refuses_other_schema_versions_and_foreign_directories() {
    let dir = tempdir::Dir::new();
    {
        let s = RocksStore::open(&dir.0).unwrap();
        s.write(&[Op::PutQueue(queue(1, "q").into())], true).unwrap();
    }
    // Reopening is fine.
    assert_eq!(RocksStore::open(&dir.0).unwrap().load().unwrap().queues.len(), 1);
    // A data directory of another schema version is refused with a clear error.
    {
        let mut opts = rocksdb::Options::default();
        opts.create_missing_column_families(true);
        let db = rocksdb::DB::open_cf(
            &opts,
            &dir.0,
            [
                "meta",
                "exchanges",
                "queues",
                "bindings",
                "messages",
                "index",
                "pages",
                "control",
                "delayed",
                "dedup",
            ],
        )
        .unwrap();
        db.put_cf(db.cf_handle("meta").unwrap(), b"schema", 99u32.to_be_bytes()).unwrap();
    }
    let err = RocksStore::open(&dir.0).err().expect("schema 99 must be refused").to_string();
    assert!(err.contains("schema version 99"), "{err}");
    // A damaged directory is refused too.
    let damaged = tempdir::Dir::new();
    std::fs::create_dir_all(&damaged.0).unwrap();
    std::fs::write(damaged.0.join("CURRENT"), b"garbage\n").unwrap();
    assert!(RocksStore::open(&damaged.0).is_err());
}

#[test]
fn a_damaged_page_reads_back_empty_instead_of_failing_the_lane() {
    let dir = tempdir::Dir::new();
    {
        let s = RocksStore::open(&dir.0).unwrap();
        s.write(&[page(7, 1, 1, 0, b"one"), page(7, 2, 2, 0, b"two")], true).unwrap();
    }
    {
        let mut opts = rocksdb::Options::default();
        opts.create_missing_column_families(true);
        let families = [
            "meta",
            "exchanges",
            "queues",
            "bindings",
            "messages",
            "index",
            "pages",
            "control",
            "delayed",
            "dedup",
        ];
        let db = rocksdb::DB::open_cf(&opts, &dir.0, families).unwrap();
        let mut key = [0u8; 16];
        key[..8].copy_from_slice(&7u64.to_be_bytes());
        key[8..].copy_from_slice(&1u64.to_be_bytes());
        db.put_cf(db.cf_handle("pages").unwrap(), key, b"garbage").unwrap();
    }
    let s = RocksStore::open(&dir.0).unwrap();
    let pages = s.read_pages(7, 0, 10).unwrap();
    assert_eq!(pages.len(), 2);
    assert_eq!((pages[0].0.seq, pages[0].1.header.len()), (1, 0), "the damaged one, empty");
    assert_eq!(pages[1].1, message(b"two"));
    // Visited in place, the damaged one comes with no record.
    let mut seen = Vec::new();
    s.visit_pages(7, 0, 10, &mut |e, r| seen.push((e.seq, r.map(|r| r.owned())))).unwrap();
    assert_eq!(seen, [(1, None), (2, Some(message(b"two")))]);
}

#[test]
fn runs_of_removes_take_exactly_their_places_and_pages() {
    for (name, store, _dir) in stores() {
        let mut ops = vec![Op::PutQueue(queue(3, "q").into())];
        for seq in 1..=60u64 {
            ops.push(page(3, seq, 100 + seq, 0, b"page"));
        }
        ops.push(page(4, 10, 300, 0, b"other"));
        store.write(&ops, true).unwrap();
        // A run of 20 (10..30), a gap (30 stays), a run broken by another
        // queue's remove (31..40, then 40..50 of queue 3 again after it),
        // and one short of a run's length (50..55).
        let mut removes: Vec<Op> = (10..30).map(|seq| Op::Remove { queue: 3, seq, lane: Some(0) }).collect();
        removes.extend((31..40).map(|seq| Op::Remove { queue: 3, seq, lane: Some(0) }));
        removes.push(Op::Remove { queue: 4, seq: 40, lane: Some(0) });
        removes.extend((40..50).map(|seq| Op::Remove { queue: 3, seq, lane: Some(0) }));
        removes.extend((50..55).map(|seq| Op::Remove { queue: 3, seq, lane: None }));
        store.write(&removes, false).unwrap();
        let kept =
            |q: u64| -> Vec<u64> { scan(store.as_ref()).iter().filter(|e| e.0 == q).map(|e| e.1).collect() };
        let expected: Vec<u64> = (1..10).chain([30]).chain(55..=60).collect();
        assert_eq!(kept(3), expected, "{name}");
        assert_eq!(kept(4), vec![10], "{name}");
        // Pages went with their places, except where the remove named no lane.
        let pages: Vec<u64> = store.read_pages(3, 0, 100).unwrap().iter().map(|(e, _)| e.seq).collect();
        let expected: Vec<u64> = (1..10).chain([30]).chain(50..=60).collect();
        assert_eq!(pages, expected, "{name}");
        assert_eq!(store.read_pages(4, 0, 10).unwrap().len(), 1, "{name}");
    }
}

#[test]
fn dropping_places_spares_the_rest_of_the_queue_and_other_queues() {
    for (name, store, _dir) in stores() {
        let mut ops = vec![Op::PutQueue(queue(3, "q").into())];
        ops.push(place(3, 1, 50, IndexEntry::DELIVERED));
        for seq in 2..=9u64 {
            ops.push(page(3, seq, 100 + seq, if seq == 4 { IndexEntry::SHARED } else { 0 }, b"page"));
        }
        ops.push(page(4, 5, 300, 0, b"other"));
        store.write(&ops, true).unwrap();
        // A look reads places only, from where asked up to (not with) the end.
        let mut looked = Vec::new();
        store.scan_places(3, 2, 6, &mut |e| looked.push((e.seq, e.message, e.flags))).unwrap();
        let p = IndexEntry::PAGED;
        assert_eq!(looked, vec![(2, 102, p), (3, 103, p), (4, 104, p | 2), (5, 105, p)], "{name}");
        // 3..9 go, except 6 (another lane's place, say); 9 is after the drop.
        let drop = Op::DropPlaces { queue: 3, index: vec![(3, 6), (7, 9)], pages: vec![(0, 3, 9)] };
        store.write(&[drop, Op::DeleteQueueRecord { vhost: "/".into(), name: "q".into() }], true).unwrap();
        let seqs: Vec<_> = scan(store.as_ref()).iter().map(|(q, seq, _, _)| (*q, *seq)).collect();
        assert_eq!(seqs, vec![(3, 1), (3, 2), (3, 6), (3, 9), (4, 5)], "{name}");
        let pages: Vec<_> = store.read_pages(3, 0, 10).unwrap().iter().map(|(e, _)| e.seq).collect();
        assert_eq!(pages, vec![2, 9], "{name}");
        assert_eq!(store.read_pages(4, 0, 10).unwrap().len(), 1, "{name}");
        assert!(store.load().unwrap().queues.is_empty(), "the record went alone: {name}");
    }
}

#[test]
fn pages_of_every_size_come_back_in_order() {
    static BIG: [u8; 20_000] = [7; 20_000];
    for (name, store, _dir) in stores() {
        let bodies: [&'static [u8]; 5] = [b"a", &BIG, b"b", b"c", &BIG];
        let ops: Vec<Op> =
            bodies.iter().zip(1u64..).map(|(body, seq)| page(1, seq, 10 + seq, 0, body)).collect();
        store.write(&ops, true).unwrap();
        let pages = store.read_pages(1, 0, 100).unwrap();
        let seqs: Vec<_> = pages.iter().map(|(e, _)| e.seq).collect();
        assert_eq!(seqs, vec![1, 2, 3, 4, 5], "{name}");
        for ((_, record), body) in pages.iter().zip(bodies) {
            assert_eq!(&record.body[..], body, "{name}");
        }
        let limited: Vec<_> = store.read_pages(1, 2, 2).unwrap().iter().map(|(e, _)| e.seq).collect();
        assert_eq!(limited, vec![2, 3], "{name}");
    }
}

#[test]
fn recovery_deletes_settled_pages_below_a_frontier_and_lanes_of_gone_queues() {
    use super::recovery::{backlogs, Paged};
    use super::writer::HeadLimit;
    for (name, store, _dir) in stores() {
        let mut ops = vec![Op::PutQueue(queue(1, "q").into())];
        for seq in 1..=8u64 {
            ops.push(page(1, seq, 100 + seq, 0, b"hello"));
        }
        // Queue 20 (gone at the restart) had read some pages back.
        ops.push(page(20, 1, 200, IndexEntry::TRANSIENT, b"gone"));
        ops.push(Op::PageFrontier { queue: 20, lane: 0, seq: 2 });
        store.write(&ops, true).unwrap();
        // Pages 1..=6 were read back; 1, 2, 4 and 5 settled (their places
        // went, their pages were waiting for a range), 3 and 6 still live.
        let mut settled = vec![Op::PageFrontier { queue: 1, lane: 0, seq: 7 }];
        settled.extend([1, 2, 4, 5].map(|seq| Op::Remove { queue: 1, seq, lane: None }));
        store.write(&settled, true).unwrap();
        assert_eq!(store.page_frontiers().unwrap(), vec![(1, 7), (20, 2)], "{name}");
        let mut below = Vec::new();
        store.scan_page_seqs(1, 7, &mut |seq| below.push(seq)).unwrap();
        assert_eq!(below, (1..=6).collect::<Vec<_>>(), "{name}");
        let b = backlogs(store.as_ref(), &[(1, 0)], HeadLimit { messages: 1, bytes: 1 << 20 }).unwrap();
        let q = &b.queues[&1];
        assert_eq!(q.head.iter().map(|(e, _)| e.seq).collect::<Vec<_>>(), vec![3], "{name}");
        assert_eq!(q.paged, vec![Paged { from_seq: 6, count: 3, bytes: 15, shared: 0 }], "{name}");
        let runs = Op::DropPlaces { queue: 1, index: vec![], pages: vec![(0, 1, 3), (0, 4, 6)] };
        assert!(b.fixes.contains(&runs), "{name}: {:?}", b.fixes);
        store.write(&b.fixes, true).unwrap();
        let seqs: Vec<_> = store.read_pages(1, 0, 100).unwrap().iter().map(|(e, _)| e.seq).collect();
        assert_eq!(seqs, vec![3, 6, 7, 8], "{name}");
        assert!(store.read_pages(20, 0, 100).unwrap().is_empty(), "{name}");
        assert_eq!(store.page_frontiers().unwrap(), vec![(1, 7)], "{name}");
        // Deleting the queue takes its frontier too.
        store
            .write(&[Op::DeleteQueue { vhost: "/".into(), name: "q".into(), id: 1, last_lane: 0 }], true)
            .unwrap();
        assert!(store.page_frontiers().unwrap().is_empty(), "{name}");
    }
}

#[test]
fn recovery_deletes_shared_messages_only_deleted_queues_held() {
    use super::recovery::backlogs;
    use super::writer::HeadLimit;
    for (name, store, _dir) in stores() {
        let mut ops = vec![Op::PutQueue(queue(1, "q").into())];
        // 7 is shared by queue 1 and queue 2 (deleted); 8 only by deleted queues 2 and 3.
        for id in [7, 8] {
            ops.push(Op::PutMessage { id, record: message(b"hello").into() });
        }
        ops.push(place(1, 1, 7, IndexEntry::SHARED));
        ops.push(place(2, 1, 7, IndexEntry::SHARED));
        ops.push(page(2, 2, 8, IndexEntry::SHARED, b"hello"));
        ops.push(place(3, 1, 8, IndexEntry::SHARED));
        store.write(&ops, true).unwrap();
        let b = backlogs(store.as_ref(), &[(1, 0)], HeadLimit { messages: 10, bytes: 1 << 20 }).unwrap();
        assert_eq!(deleted_messages(&b.fixes), vec![8], "{name}");
        assert_eq!(b.fixes.iter().filter(|op| matches!(op, Op::Remove { .. })).count(), 3, "{name}");
    }
}

#[test]
fn delayed_messages_read_back_in_due_order_within_limits_and_drop_per_exchange() {
    for (name, store, _dir) in stores() {
        let at = |x: &str, due, seq| DelayedAt { vhost: "/".into(), exchange: x.into(), due, seq };
        let put = |x: &str, due, seq, boot| Op::PutDelayed {
            at: at(x, due, seq),
            boot,
            record: message(b"0123").into(),
        };
        store
            .write(&[put("x", 30, 1, 0), put("x", 10, 2, 0), put("x", 20, 3, 9), put("y", 5, 4, 0)], true)
            .unwrap();
        let read = |from, limit| store.read_delayed("/", "x", from, limit).unwrap();
        let keys = |(found, more): (Vec<Delayed>, bool)| {
            (found.iter().map(|d| (d.due, d.boot)).collect::<Vec<_>>(), more)
        };
        assert_eq!(keys(read((0, 0), (10, 1 << 20))), (vec![(10, 0), (20, 9), (30, 0)], false), "{name}");
        assert_eq!(keys(read((0, 0), (2, 1 << 20))), (vec![(10, 0), (20, 9)], true), "{name}");
        // The byte limit: at least one, then stop once it is reached.
        assert_eq!(keys(read((0, 0), (10, 1))).0.len(), 1, "{name}");
        assert_eq!(keys(read((20, 4), (10, 1 << 20))).0, vec![(30, 0)], "{name}");
        let loaded = store.load().unwrap();
        let counts: Vec<_> = loaded.delayed.iter().map(|b| (b.exchange.as_str(), b.count)).collect();
        assert_eq!(counts, vec![("x", 2), ("y", 1)], "{name}: the transient one is not counted");
        assert_eq!(loaded.max_delayed_seq, 4, "{name}");
        store.write(&[Op::DeleteDelayed(at("x", 10, 2))], true).unwrap();
        assert_eq!(keys(read((0, 0), (10, 1 << 20))).0, vec![(20, 9), (30, 0)], "{name}");
        store.write(&[Op::DropDelayed { vhost: "/".into(), exchange: "x".into() }], true).unwrap();
        assert!(read((0, 0), (10, 1 << 20)).0.is_empty(), "{name}");
        assert_eq!(store.read_delayed("/", "y", (0, 0), (10, 1 << 20)).unwrap().0.len(), 1, "{name}");
    }
}

#[test]
fn a_run_of_message_deletions_deletes_exactly_those_messages() {
    for (name, store, _dir) in stores() {
        let puts: Vec<Op> = (1..=40).map(|id| Op::PutMessage { id, record: message(b"m").into() }).collect();
        store.write(&puts, true).unwrap();
        // A run long enough for a range delete, and one on its own.
        let mut deletions: Vec<Op> = (5..=30).map(|id| Op::DeleteMessage { id }).collect();
        deletions.push(Op::DeleteMessage { id: 35 });
        // Written again after its deletion, in the same batch: it stays.
        deletions.push(Op::PutMessage { id: 20, record: message(b"again").into() });
        store.write(&deletions, true).unwrap();
        let ids: Vec<u64> = (1..=40).collect();
        let kept: Vec<u64> = store
            .read_messages(&ids)
            .unwrap()
            .iter()
            .zip(&ids)
            .filter(|(m, _)| m.is_some())
            .map(|(_, id)| *id)
            .collect();
        let want: Vec<u64> = (1..=4).chain([20]).chain(31..=34).chain(36..=40).collect();
        assert_eq!(kept, want, "{name}");
    }
}
