//! The storage test suite, run against every implementation.

use amq_protocol::types::{AMQPValue, FieldTable};
use bytes::Bytes;

use super::memory::MemoryStore;
use super::rocks::RocksStore;
use super::*;

fn stores() -> Vec<(&'static str, Box<dyn Store>, Option<tempdir::Dir>)> {
    let dir = tempdir::Dir::new();
    let rocks = RocksStore::open(&dir.0).unwrap();
    vec![("memory", Box::new(MemoryStore::default()), None), ("rocksdb", Box::new(rocks), Some(dir))]
}

mod tempdir {
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
                &[Op::PutExchange(ex.clone()), Op::PutQueue(queue(1, "q")), Op::PutBinding(b.clone())],
                true,
            )
            .unwrap();
        let r = store.load().unwrap();
        assert_eq!(r.exchanges, vec![ex], "{name}");
        assert_eq!(r.queues.len(), 1, "{name}");
        assert_eq!(r.queues[0], queue(1, "q"), "{name}");
        assert_eq!(r.bindings, vec![b.clone()], "{name}");
        store
            .write(&[Op::DeleteBinding(b), Op::DeleteExchange { vhost: "/".into(), name: "x".into() }], true)
            .unwrap();
        let r = store.load().unwrap();
        assert!(r.exchanges.is_empty() && r.bindings.is_empty(), "{name}");
    }
}

fn place(queue: u64, seq: u64, message: u64, flags: u8) -> Op {
    Op::Place { queue, entry: IndexEntry { seq, message, size: 5, flags, expires: 1234 } }
}

#[test]
fn messages_and_index_in_order_with_flags() {
    for (name, store, _dir) in stores() {
        let mut ops = vec![Op::PutQueue(queue(3, "q")), Op::PutQueue(queue(4, "other"))];
        for i in 1..=5u64 {
            ops.push(Op::PutMessage { id: 100 + i, record: message(b"hello") });
            ops.push(place(3, 300 - i * 10, 100 + i, 0));
        }
        ops.push(place(4, 1, 101, IndexEntry::SHARED));
        store.write(&ops, true).unwrap();
        store
            .write(
                &[
                    place(3, 290, 101, IndexEntry::DELIVERED | IndexEntry::SHARED),
                    Op::Remove { queue: 3, seq: 280 },
                    Op::DeleteMessage { id: 102 },
                ],
                false,
            )
            .unwrap();
        let entries = store.read_index(3, 0, 100).unwrap();
        let seqs: Vec<_> = entries.iter().map(|e| (e.seq, e.message, e.flags)).collect();
        assert_eq!(seqs, vec![(250, 105, 0), (260, 104, 0), (270, 103, 0), (290, 101, 3)], "{name}");
        assert_eq!(entries[0].size, 5, "{name}");
        assert_eq!(entries[0].expires, 1234, "{name}");
        // Reads start where asked and stop at the limit and at the queue's end.
        let some: Vec<_> = store.read_index(3, 261, 2).unwrap().iter().map(|e| e.seq).collect();
        assert_eq!(some, vec![270, 290], "{name}");
        assert!(store.read_index(3, 291, 10).unwrap().is_empty(), "{name}");
        let found = store.read_messages(&[101, 102, 105]).unwrap();
        assert_eq!(found, vec![Some(message(b"hello")), None, Some(message(b"hello"))], "{name}");
        assert_eq!(store.load().unwrap().max_message_id, 105, "{name}");
        let mut all = Vec::new();
        store.scan_index(&mut |q, e| all.push((q, e.seq))).unwrap();
        assert_eq!(all, vec![(3, 250), (3, 260), (3, 270), (3, 290), (4, 1)], "{name}");
        // Deleting a queue takes its index with it, and only its index.
        store.write(&[Op::DeleteQueue { vhost: "/".into(), name: "q".into(), id: 3 }], true).unwrap();
        assert_eq!(store.load().unwrap().queues.len(), 1, "{name}");
        assert!(store.read_index(3, 0, 10).unwrap().is_empty(), "{name}");
        assert_eq!(store.read_index(4, 0, 10).unwrap().len(), 1, "{name}");
    }
}

#[test]
fn recovery_reads_only_the_head_and_drops_transient_pages() {
    use super::recovery::{backlogs, Paged};
    use super::writer::HeadLimit;
    for (name, store, _dir) in stores() {
        let mut ops = vec![Op::PutQueue(queue(1, "q"))];
        for i in 1..=10u64 {
            ops.push(Op::PutMessage { id: i, record: message(b"hello") });
            let flags = if i == 4 {
                IndexEntry::TRANSIENT
            } else if i == 5 {
                IndexEntry::SHARED
            } else {
                0
            };
            ops.push(place(1, i, i, flags));
        }
        // A page of a queue that did not survive the restart.
        ops.push(Op::PutMessage { id: 11, record: message(b"gone") });
        ops.push(place(9, 1, 11, IndexEntry::TRANSIENT));
        store.write(&ops, true).unwrap();
        let b = backlogs(store.as_ref(), &[1], HeadLimit { messages: 3, bytes: 1 << 20 }).unwrap();
        let q = &b.queues[&1];
        let head: Vec<_> = q.head.iter().map(|(e, _)| e.seq).collect();
        assert_eq!(head, vec![1, 2, 3], "{name}");
        assert_eq!(q.paged, Paged { from_seq: 5, count: 6, bytes: 30 }, "{name}");
        assert_eq!(q.next_seq, 11, "{name}");
        assert_eq!(b.refs.len(), 1, "{name}");
        assert_eq!(b.max_message_id, 11, "{name}");
        assert_eq!(
            b.garbage,
            vec![
                Op::Remove { queue: 1, seq: 4 },
                Op::DeleteMessage { id: 4 },
                Op::Remove { queue: 9, seq: 1 },
                Op::DeleteMessage { id: 11 }
            ],
            "{name}"
        );
        // A byte limit bounds the head too.
        let b = backlogs(store.as_ref(), &[1], HeadLimit { messages: 100, bytes: 8 }).unwrap();
        assert_eq!(b.queues[&1].head.len(), 2, "{name}");
    }
}

#[test]
fn rocksdb_refuses_other_schema_versions_and_foreign_directories() {
    let dir = tempdir::Dir::new();
    {
        let s = RocksStore::open(&dir.0).unwrap();
        s.write(&[Op::PutQueue(queue(1, "q"))], true).unwrap();
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
            ["meta", "exchanges", "queues", "bindings", "messages", "index"],
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
