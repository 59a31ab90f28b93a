//! The RocksDB store. Key layout, one column family per kind of record:
//!
//! | family | key | value |
//! |---|---|---|
//! | `meta` | `schema` | schema version, u32 big-endian |
//! | `exchanges` | vhost, name (length-prefixed) | `ExchangeRecord` |
//! | `queues` | vhost, name | `QueueRecord` |
//! | `bindings` | vhost, source, kind, destination, key, arguments | `BindingRecord` |
//! | `messages` | message id, u64 BE | `MessageRecord` |
//! | `index` | queue id u64 BE, seq u64 BE | message id u64 BE, delivered flag |
//!
//! Big-endian integers keep a queue's index entries in `seq` order and
//! make deleting a whole queue one range delete.

use std::path::Path;

use rocksdb::{ColumnFamilyDescriptor, IteratorMode, Options, WriteBatch, WriteOptions, DB};

use super::records::Writer;
use super::{
    BindingRecord, ExchangeRecord, IndexEntry, MessageRecord, Op, QueueRecord, Recovered, Result, Store,
    StoreError, SCHEMA_VERSION,
};

const FAMILIES: [&str; 6] = ["meta", "exchanges", "queues", "bindings", "messages", "index"];

pub struct RocksStore {
    db: DB,
    path: String,
}

fn name_key(vhost: &str, name: &str) -> Vec<u8> {
    let mut w = Writer::default();
    w.str(vhost).str(name);
    w.0
}

fn binding_key(b: &BindingRecord) -> Vec<u8> {
    let mut w = Writer::default();
    w.str(&b.vhost).str(&b.source).flag(b.to_queue).str(&b.destination).str(&b.key).table(&b.arguments);
    w.0
}

fn index_key(queue: u64, seq: u64) -> [u8; 16] {
    let mut k = [0u8; 16];
    k[..8].copy_from_slice(&queue.to_be_bytes());
    k[8..].copy_from_slice(&seq.to_be_bytes());
    k
}

fn index_value(message: u64, delivered: bool) -> [u8; 9] {
    let mut v = [0u8; 9];
    v[..8].copy_from_slice(&message.to_be_bytes());
    v[8] = u8::from(delivered);
    v
}

impl RocksStore {
    /// Opens (or creates) the store in `dir`, checking its schema version.
    pub fn open(dir: &Path) -> Result<RocksStore> {
        let path = dir.display().to_string();
        let open_err = |e: rocksdb::Error| StoreError::Open { path: path.clone(), reason: e.to_string() };
        let mut opts = Options::default();
        opts.create_if_missing(true);
        opts.create_missing_column_families(true);
        opts.set_compression_type(rocksdb::DBCompressionType::Lz4);
        // Larger memtables mean fewer flushes of short-lived messages.
        opts.set_write_buffer_size(64 << 20);
        // Bounds the write-ahead log: past this, memtables are flushed and old logs deleted.
        opts.set_max_total_wal_size(256 << 20);
        // Only one thread writes (the group-commit writer).
        opts.set_allow_concurrent_memtable_write(false);
        let fresh = !dir.join("CURRENT").exists();
        let cfs = FAMILIES.iter().map(|n| {
            let mut cf = opts.clone();
            if matches!(*n, "messages" | "index") {
                // Messages and index entries are only ever written, and read
                // back in full at start-up: an append-only vector memtable
                // inserts in O(1) where a skiplist compares keys O(log n) times.
                cf.set_memtable_factory(rocksdb::MemtableFactory::Vector);
            }
            ColumnFamilyDescriptor::new(*n, cf)
        });
        let db = DB::open_cf_descriptors(&opts, dir, cfs).map_err(open_err)?;
        let store = RocksStore { db, path: path.clone() };
        let meta = store.cf("meta");
        match store.db.get_cf(meta, b"schema").map_err(open_err)? {
            None if fresh => {
                store.db.put_cf(meta, b"schema", SCHEMA_VERSION.to_be_bytes()).map_err(open_err)?;
            }
            None => {
                return Err(StoreError::Schema { path, found: "none (not a Warren data directory?)".into() })
            }
            Some(v) => {
                let found = <[u8; 4]>::try_from(&v[..]).map(u32::from_be_bytes).ok();
                if found != Some(SCHEMA_VERSION) {
                    let found = found.map_or_else(|| format!("{v:?}"), |f| f.to_string());
                    return Err(StoreError::Schema { path, found });
                }
            }
        }
        Ok(store)
    }

    fn cf(&self, name: &str) -> &rocksdb::ColumnFamily {
        self.db.cf_handle(name).expect("column families are created at open")
    }

    fn corrupt(&self, what: impl Into<String>) -> StoreError {
        StoreError::Corrupt { what: format!("{} in {}", what.into(), self.path) }
    }
}

impl Store for RocksStore {
    fn write(&self, ops: &[Op], sync: bool) -> Result<()> {
        let mut batch = WriteBatch::default();
        for op in ops {
            match op {
                Op::PutExchange(e) => {
                    batch.put_cf(self.cf("exchanges"), name_key(&e.vhost, &e.name), e.encode())
                }
                Op::DeleteExchange { vhost, name } => {
                    batch.delete_cf(self.cf("exchanges"), name_key(vhost, name))
                }
                Op::PutQueue(q) => batch.put_cf(self.cf("queues"), name_key(&q.vhost, &q.name), q.encode()),
                Op::DeleteQueue { vhost, name, id } => {
                    batch.delete_cf(self.cf("queues"), name_key(vhost, name));
                    batch.delete_range_cf(self.cf("index"), index_key(*id, 0), index_key(*id + 1, 0));
                }
                Op::PutBinding(b) => batch.put_cf(self.cf("bindings"), binding_key(b), b.encode()),
                Op::DeleteBinding(b) => batch.delete_cf(self.cf("bindings"), binding_key(b)),
                Op::PutMessage { id, record } => {
                    batch.put_cf(self.cf("messages"), id.to_be_bytes(), record.encode())
                }
                Op::DeleteMessage { id } => batch.delete_cf(self.cf("messages"), id.to_be_bytes()),
                Op::Enqueue { queue, seq, message } => {
                    batch.put_cf(self.cf("index"), index_key(*queue, *seq), index_value(*message, false))
                }
                Op::MarkDelivered { queue, seq, message } => {
                    batch.put_cf(self.cf("index"), index_key(*queue, *seq), index_value(*message, true))
                }
                Op::Remove { queue, seq } => batch.delete_cf(self.cf("index"), index_key(*queue, *seq)),
            }
        }
        let mut opts = WriteOptions::default();
        opts.set_sync(sync);
        self.db.write_opt(batch, &opts).map_err(|e| StoreError::Write(e.to_string()))
    }

    fn load(&self) -> Result<Recovered> {
        let mut r = Recovered::default();
        let read = |e: rocksdb::Error| StoreError::Open { path: self.path.clone(), reason: e.to_string() };
        for item in self.db.iterator_cf(self.cf("exchanges"), IteratorMode::Start) {
            let (_, v) = item.map_err(read)?;
            r.exchanges.push(ExchangeRecord::decode(&v).ok_or_else(|| self.corrupt("exchange record"))?);
        }
        let mut queues = rustc_hash::FxHashMap::default();
        for item in self.db.iterator_cf(self.cf("queues"), IteratorMode::Start) {
            let (_, v) = item.map_err(read)?;
            let q = QueueRecord::decode(&v).ok_or_else(|| self.corrupt("queue record"))?;
            queues.insert(q.id, (q, Vec::new()));
        }
        for item in self.db.iterator_cf(self.cf("bindings"), IteratorMode::Start) {
            let (_, v) = item.map_err(read)?;
            r.bindings.push(BindingRecord::decode(&v).ok_or_else(|| self.corrupt("binding record"))?);
        }
        for item in self.db.iterator_cf(self.cf("messages"), IteratorMode::Start) {
            let (k, v) = item.map_err(read)?;
            let id = <[u8; 8]>::try_from(&k[..]).map_err(|_| self.corrupt("message key"))?;
            let m = MessageRecord::decode(&v).ok_or_else(|| self.corrupt("message record"))?;
            r.messages.insert(u64::from_be_bytes(id), m);
        }
        for item in self.db.iterator_cf(self.cf("index"), IteratorMode::Start) {
            let (k, v) = item.map_err(read)?;
            if k.len() != 16 || v.len() != 9 {
                return Err(self.corrupt("queue index entry"));
            }
            let queue = u64::from_be_bytes(k[..8].try_into().expect("8 bytes"));
            let seq = u64::from_be_bytes(k[8..].try_into().expect("8 bytes"));
            let message = u64::from_be_bytes(v[..8].try_into().expect("8 bytes"));
            // Entries of a queue deleted in a crash-interrupted batch have no queue: skip them.
            if let Some((_, entries)) = queues.get_mut(&queue) {
                entries.push(IndexEntry { seq, message, delivered: v[8] != 0 });
            }
        }
        r.queues = queues.into_values().collect();
        r.queues.sort_by_key(|(q, _)| q.id);
        Ok(r)
    }

    fn compact(&self) {
        // Flushing every family lets old write-ahead logs go; then the
        // tombstones of settled messages are compacted away.
        for family in FAMILIES {
            let _ = self.db.flush_cf(self.cf(family));
        }
        for family in ["messages", "index"] {
            self.db.compact_range_cf(self.cf(family), None::<&[u8]>, None::<&[u8]>);
        }
    }
}
