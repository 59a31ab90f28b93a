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
        assert_eq!(r.queues[0].0, queue(1, "q"), "{name}");
        assert_eq!(r.bindings, vec![b.clone()], "{name}");
        store
            .write(&[Op::DeleteBinding(b), Op::DeleteExchange { vhost: "/".into(), name: "x".into() }], true)
            .unwrap();
        let r = store.load().unwrap();
        assert!(r.exchanges.is_empty() && r.bindings.is_empty(), "{name}");
    }
}

#[test]
fn messages_and_index_in_order_with_delivered_flags() {
    for (name, store, _dir) in stores() {
        let mut ops = vec![Op::PutQueue(queue(3, "q")), Op::PutQueue(queue(4, "other"))];
        for i in 1..=5u64 {
            ops.push(Op::PutMessage { id: 100 + i, record: message(b"hello") });
            ops.push(Op::Enqueue { queue: 3, seq: 300 - i * 10, message: 100 + i });
        }
        ops.push(Op::Enqueue { queue: 4, seq: 1, message: 101 });
        store.write(&ops, true).unwrap();
        store
            .write(
                &[
                    Op::MarkDelivered { queue: 3, seq: 290, message: 101 },
                    Op::Remove { queue: 3, seq: 280 },
                    Op::DeleteMessage { id: 102 },
                ],
                false,
            )
            .unwrap();
        let r = store.load().unwrap();
        let (_, entries) = r.queues.iter().find(|(q, _)| q.id == 3).unwrap();
        let seqs: Vec<_> = entries.iter().map(|e| (e.seq, e.message, e.delivered)).collect();
        assert_eq!(
            seqs,
            vec![(250, 105, false), (260, 104, false), (270, 103, false), (290, 101, true)],
            "{name}"
        );
        assert_eq!(r.messages.len(), 4, "{name}");
        assert_eq!(r.messages[&101], message(b"hello"), "{name}");
        // Deleting a queue takes its index with it, and only its index.
        store.write(&[Op::DeleteQueue { vhost: "/".into(), name: "q".into(), id: 3 }], true).unwrap();
        let r = store.load().unwrap();
        assert_eq!(r.queues.len(), 1, "{name}");
        assert_eq!(r.queues[0].1.len(), 1, "{name}");
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
