use bytes::Bytes;

use crate::store::rocks::RocksStore;
use crate::store::suite::tempdir::Dir;
use crate::store::{IndexEntry, MessageRecord, Op, Store};

fn page(lane: u64, seq: u64) -> Op {
    let entry =
        IndexEntry { seq, message: 1000 + seq, size: 1, flags: IndexEntry::PAGED, ..Default::default() };
    let record = MessageRecord {
        exchange: Bytes::new(),
        routing_key: Bytes::from_static(b"q"),
        header: Bytes::from_static(b"\x00\x3c\x00\x00\x00\x00\x00\x00\x00\x00\x00\x01\x10\x00\x02"),
        body: Bytes::from_static(b"x"),
    };
    Op::Page { queue: lane, entry, record: record.into() }
}

fn seqs(s: &RocksStore, lane: u64, from: u64) -> Vec<u64> {
    s.read_pages(lane, from, 100).unwrap().iter().map(|(e, _)| e.seq).collect()
}

/// Pages 0..10 of lane 7, then 2..6 deleted in a range. The pages are
/// flushed first: a flush drops what a range of the same memtable covers,
/// so only then does a read that ignores the tombstone see them.
fn ranged(dir: &Dir) -> RocksStore {
    let s = RocksStore::open(&dir.0).unwrap();
    s.write(&(0..10).map(|seq| page(7, seq)).collect::<Vec<_>>(), true).unwrap();
    s.flush_pages();
    s.write(&[Op::DropPlaces { queue: 7, index: vec![], pages: vec![(0, 2, 6)] }], true).unwrap();
    s
}

fn reads_skip_the_range(s: &RocksStore) {
    assert_eq!(seqs(s, 7, 0), [0, 1, 6, 7, 8, 9]);
    assert_eq!(seqs(s, 7, 3), [6, 7, 8, 9], "read from inside the range");
    assert_eq!(seqs(s, 7, 6), [6, 7, 8, 9], "read from its end (tombstones not looked at)");
}

#[test]
fn a_read_from_below_a_lanes_mark_keeps_to_its_ranges_across_restarts() {
    let dir = Dir::new();
    reads_skip_the_range(&ranged(&dir));
    // The pages (and the range) are in the write-ahead log, replayed into
    // the memtable: without the mark kept on disk the range would be missed.
    reads_skip_the_range(&RocksStore::open(&dir.0).unwrap());
}

#[test]
fn a_directory_from_before_the_marks_is_compacted_once_at_open() {
    let dir = Dir::new();
    drop(ranged(&dir));
    {
        // As a directory written before the marks: schema 2, no mark.
        let families = crate::store::rocks::FAMILIES;
        let db = rocksdb::DB::open_cf(&rocksdb::Options::default(), &dir.0, families).unwrap();
        let meta = db.cf_handle("meta").unwrap();
        db.put_cf(meta, b"schema", 2u32.to_be_bytes()).unwrap();
        let mut mark = [b'r'; 9];
        mark[1..].copy_from_slice(&7u64.to_be_bytes());
        db.delete_cf(meta, mark).unwrap();
        db.flush_cf(db.cf_handle("pages").unwrap()).unwrap();
        // What the open checks after compacting counts the range.
        assert!(super::deletions_left(&db).unwrap() > 0);
    }
    let s = RocksStore::open(&dir.0).unwrap();
    reads_skip_the_range(&s);
    // The range's pages are gone for good, not only hidden.
    let mut left = Vec::new();
    s.scan_page_seqs(7, 100, &mut |seq| left.push(seq)).unwrap();
    assert_eq!(left, [0, 1, 6, 7, 8, 9]);
    drop(s);
    let db =
        rocksdb::DB::open_cf(&rocksdb::Options::default(), &dir.0, crate::store::rocks::FAMILIES).unwrap();
    let schema = db.get_cf(db.cf_handle("meta").unwrap(), b"schema").unwrap().unwrap();
    assert_eq!(schema, crate::store::SCHEMA_VERSION.to_be_bytes(), "now schema 3: older Warrens refuse it");
    assert_eq!(super::deletions_left(&db).unwrap(), 0);
}

#[test]
fn a_lane_deleted_whole_keeps_its_id_and_is_read_with_its_tombstones() {
    let dir = Dir::new();
    {
        let s = RocksStore::open(&dir.0).unwrap();
        let mut ops: Vec<Op> = (0..5).map(|seq| page(31, seq)).collect();
        ops.extend((0..5).map(|seq| page(40, seq)));
        ops.extend((0..5).map(|seq| page(50, seq)));
        s.write(&ops, true).unwrap();
        s.flush_pages();
        // Lane 40 had a range (a mark) before it went whole.
        s.write(&[Op::DropPlaces { queue: 40, index: vec![], pages: vec![(0, 0, 2)] }], true).unwrap();
        let delete = Op::DeleteQueue { vhost: "/".into(), name: "q".into(), id: 30, last_lane: 2 };
        let whole = Op::DropPlaces { queue: 40, index: vec![], pages: vec![(0, 0, u64::MAX)] };
        s.write(&[delete, whole], true).unwrap();
        assert!(seqs(&s, 31, 0).is_empty());
        assert!(seqs(&s, 40, 3).is_empty());
        assert_eq!(seqs(&s, 50, 0), [0, 1, 2, 3, 4], "other lanes stay");
    }
    let s = RocksStore::open(&dir.0).unwrap();
    assert!(s.load().unwrap().max_message_id >= 40, "ids up to the last lane deleted are not given out");
    assert!(seqs(&s, 31, 0).is_empty());
    assert!(seqs(&s, 40, 0).is_empty());
}

#[test]
fn recovery_drops_a_marked_lane_whose_queue_is_gone() {
    use crate::store::recovery::backlogs;
    use crate::store::writer::HeadLimit;
    let dir = Dir::new();
    drop(ranged(&dir));
    let s = RocksStore::open(&dir.0).unwrap();
    assert_eq!(s.page_marks(), [7]);
    let limit = HeadLimit { messages: 10, bytes: 1 << 20 };
    let whole = Op::DropPlaces { queue: 7, index: vec![], pages: vec![(0, 0, u64::MAX)] };
    // Its queue still there: lane and mark stay.
    assert!(!backlogs(&s, &[(7, 0)], limit).unwrap().fixes.contains(&whole));
    // Queue 7 is not among the queues recovered (a purged, then deleted,
    // non-durable one): its lane goes whole, its id is not given out again.
    let b = backlogs(&s, &[], limit).unwrap();
    assert!(b.max_message_id >= 7);
    assert!(b.fixes.contains(&whole), "{:?}", b.fixes);
    s.write(&b.fixes, true).unwrap();
    assert!(s.page_marks().is_empty());
    assert!(seqs(&s, 7, 0).is_empty());
}
