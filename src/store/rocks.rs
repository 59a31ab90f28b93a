//! The RocksDB store. Key layout, one column family per kind of record:
//!
//! | family | key | value |
//! |---|---|---|
//! | `meta` | `schema` | schema version, u32 big-endian |
//! | `meta` | `f`, queue id + lane u64 BE | the lane's read-back frontier, u64 BE |
//! | `meta` | `d`, queue id u64 BE | below it, every message of the queue was delivered (`Op::Delivered`), u64 BE |
//! | `meta` | `r`, queue id + lane u64 BE | the end of the furthest range delete of the lane's pages (`ranged.rs`) |
//! | `meta` | `idfloor` | no queue id or lane at or below it is given out again (`ranged.rs`), u64 BE |
//! | `exchanges` | vhost, name (length-prefixed) | `ExchangeRecord` |
//! | `queues` | vhost, name | `QueueRecord` |
//! | `bindings` | vhost, source, kind, destination, key, arguments | `BindingRecord` |
//! | `messages` | message id, u64 BE | `MessageRecord` |
//! | `index` | queue id u64 BE, seq u64 BE | message id u64 BE, flags u8, size u32 BE, expires u64 BE, lane u8, returns u32 BE; flagged `INLINE`, then the `MessageRecord` |
//! | `pages` | queue id + lane u64 BE, seq u64 BE | the index value, then the `MessageRecord` |
//! | `control` | space, key (length-prefixed) | the owner's encoding (users, vhosts, permissions, policies) |
//! | `delayed` | vhost, exchange, due u64 BE, seq u64 BE | boot u64 BE, `MessageRecord` (`delayed.rs`) |
//! | `dedup` | vhost, name, kind, seq u64 BE | id hash u128 BE, expires u64 BE (`dedup.rs`) |
//!
//! `index` takes every persistent message on the hot path: a message held
//! by one queue is kept in its place there (one key per message, deleted
//! with its place), a shared one in `messages`, once. Both
//! are read only at start-up (and `index` by a drop of a paged-out part
//! holding shared messages), so they use append-only vector memtables
//! (O(1) inserts; but a read copies and sorts the memtable). `pages` holds
//! the messages queues paged out, read back while running, so it keeps the
//! default skiplist; read once, in order, it is stored uncompressed in
//! 64 KiB blocks.
//!
//! Big-endian integers keep a queue's index entries in `seq` order and
//! make deleting a whole queue, or purging its paged-out part, a few range
//! deletes: no page is read back to drop it.

use std::path::Path;

use rocksdb::{ColumnFamilyDescriptor, IteratorMode, Options, WriteBatch, WriteOptions, DB};
use tracing::warn;

use self::keys::{
    binding_key, deletion_run, delivered_key, frontier_key, index_entry, index_key, index_value, name_key,
    INDEX_VALUE, RANGE_MIN,
};
use super::ranged::Ranged;
use super::records::RecordRef;
use super::{
    dedup, delayed, BindingRecord, Delayed, ExchangeRecord, IndexEntry, MessageRecord, Op, QueueRecord,
    Recovered, Result, Store, StoreError, SCHEMA_SEPARATE, SCHEMA_UNMARKED, SCHEMA_VERSION,
};

pub(super) mod keys;

/// `control`, `delayed` and `dedup` came after schema 2 was fixed: a
/// directory without them gets them empty at open, which is what they would
/// have held.
pub(super) const FAMILIES: [&str; 10] =
    ["meta", "exchanges", "queues", "bindings", "messages", "index", "pages", "control", "delayed", "dedup"];

pub struct RocksStore {
    /// Closed when the store is dropped, unless a write failed (`Drop`).
    db: std::mem::ManuallyDrop<DB>,
    path: String,
    /// A write failed: RocksDB's log file is in an error state.
    failed: std::sync::atomic::AtomicBool,
    /// Where range deletes of pages may lie (`ranged.rs`).
    ranged: Ranged,
}

/// Closing flushes RocksDB's log; after a failed write its file is in an
/// error state that a flush trips over (Debian's librocksdb asserts and
/// aborts the process). Then the database is left open for the process's
/// exit to release: what was written before the failure is durable, and
/// the next start replays the log.
impl Drop for RocksStore {
    fn drop(&mut self) {
        if !self.failed.load(std::sync::atomic::Ordering::Relaxed) {
            // SAFETY: `db` is dropped once, here, and not used after.
            unsafe { std::mem::ManuallyDrop::drop(&mut self.db) }
        }
    }
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
        // Every table file stays open (RocksDB's default, said here because
        // the count of deletions `ranged.rs` checks after an upgrade's
        // compaction covers every file only then).
        opts.set_max_open_files(-1);
        // Only one thread writes (the group-commit writer).
        opts.set_allow_concurrent_memtable_write(false);
        // RocksDB's own LOG file sits on the same disk. Once one of its lines
        // fails to be written (a full disk), the next line trips an
        // assertion in Debian's librocksdb and aborts Warren, and RocksDB
        // logs at warn and error level exactly while the disk is full. Only
        // fatal lines and the options header are logged; Warren logs the
        // errors RocksDB returns itself.
        opts.set_log_level(rocksdb::LogLevel::Fatal);
        let fresh = !dir.join("CURRENT").exists();
        let cfs = FAMILIES.iter().map(|n| {
            let mut cf = opts.clone();
            if matches!(*n, "messages" | "index") {
                cf.set_memtable_factory(rocksdb::MemtableFactory::Vector);
            }
            if *n == "pages" {
                // Read back in order, once: large blocks, stored as they
                // are (over a 3M-page backlog LZ4 was a quarter of the flush
                // thread's instructions; the page reader's went 2,820 ->
                // 2,648 per page with both).
                cf.set_compression_type(rocksdb::DBCompressionType::None);
                let mut table = rocksdb::BlockBasedOptions::default();
                table.set_block_size(64 << 10);
                cf.set_block_based_table_factory(&table);
            }
            ColumnFamilyDescriptor::new(*n, cf)
        });
        let db = DB::open_cf_descriptors(&opts, dir, cfs).map_err(open_err)?;
        let mut store = RocksStore {
            db: std::mem::ManuallyDrop::new(db),
            path: path.clone(),
            failed: std::sync::atomic::AtomicBool::new(false),
            ranged: Ranged::default(),
        };
        // Start-up reads `messages` and `index`: with their vector memtables
        // empty, those reads cost what they would on any memtable.
        for family in ["messages", "index"] {
            store.db.flush_cf(store.cf(family)).map_err(open_err)?;
        }
        let meta = store.cf("meta");
        // Whether every range of pages on disk is under its lane's mark.
        let mut marked = true;
        match store.db.get_cf(meta, b"schema").map_err(open_err)? {
            None if fresh => {
                store.db.put_cf(meta, b"schema", SCHEMA_VERSION.to_be_bytes()).map_err(open_err)?;
            }
            None => {
                return Err(StoreError::Schema { path, found: "none (not a Warren data directory?)".into() })
            }
            Some(v) => {
                let found = <[u8; 4]>::try_from(&v[..]).map(u32::from_be_bytes).ok();
                if found == Some(SCHEMA_UNMARKED) {
                    marked = Ranged::compact_unmarked(&store.db, store.cf("pages"))
                        .map_err(|reason| StoreError::Open { path: path.clone(), reason })?;
                    if marked {
                        store.db.put_cf(meta, b"schema", SCHEMA_VERSION.to_be_bytes()).map_err(open_err)?;
                    } else {
                        warn!(
                            path,
                            "range tombstones of pages outlived a compaction: read with them until one does"
                        );
                    }
                } else if found == Some(SCHEMA_SEPARATE) {
                    // Read as it is: its places keep their messages apart
                    // (recovery moves them in); from now on older Warrens
                    // refuse it.
                    store.db.put_cf(meta, b"schema", SCHEMA_VERSION.to_be_bytes()).map_err(open_err)?;
                } else if found != Some(SCHEMA_VERSION) {
                    let found = found.map_or_else(|| format!("{v:?}"), |f| f.to_string());
                    return Err(StoreError::Schema { path, found });
                }
            }
        }
        store.ranged = Ranged::load(&store.db, store.cf("meta"), marked)
            .map_err(|reason| StoreError::Open { path: path.clone(), reason })?;
        Ok(store)
    }

    /// Writes the `pages` memtable to a table file (tests: keys and the
    /// range tombstones written after them then lie in different places).
    #[cfg(test)]
    pub(super) fn flush_pages(&self) {
        self.db.flush_cf(self.cf("pages")).unwrap();
    }

    fn cf(&self, name: &str) -> &rocksdb::ColumnFamily {
        self.db.cf_handle(name).expect("column families are created at open")
    }

    /// A failed write: RocksDB's log is in an error state from now on.
    fn write_failed(&self, e: rocksdb::Error) -> StoreError {
        self.failed.store(true, std::sync::atomic::Ordering::Relaxed);
        StoreError::Write(e.to_string())
    }

    fn read_err(&self, e: rocksdb::Error) -> StoreError {
        StoreError::Read(format!("{e} in {}", self.path))
    }

    fn corrupt(&self, what: impl Into<String>) -> StoreError {
        StoreError::Corrupt { what: format!("{} in {}", what.into(), self.path) }
    }

    /// The `meta` entries whose key is `prefix` and a u64 BE, with their u64 BE values.
    fn meta_numbers(&self, prefix: u8, what: &str) -> Result<Vec<(u64, u64)>> {
        let mut opts = rocksdb::ReadOptions::default();
        opts.set_iterate_upper_bound([prefix + 1]);
        let mut out = Vec::new();
        let mode = IteratorMode::From(&[prefix], rocksdb::Direction::Forward);
        for item in self.db.iterator_cf_opt(self.cf("meta"), opts, mode) {
            let (k, v) = item.map_err(|e| self.read_err(e))?;
            let be = |b: &[u8]| b.try_into().ok().map(u64::from_be_bytes);
            match (k.get(1..).and_then(be), be(&v)) {
                (Some(key), Some(value)) => out.push((key, value)),
                _ => return Err(self.corrupt(what)),
            }
        }
        Ok(out)
    }
}

impl RocksStore {
    /// Counts what waits on each delayed exchange (keys and the 8-byte
    /// boot of each value; no message is decoded).
    fn load_delayed(&self, r: &mut Recovered) -> Result<()> {
        for item in self.db.iterator_cf(self.cf("delayed"), IteratorMode::Start) {
            let (k, v) = item.map_err(|e| self.read_err(e))?;
            let (vhost, exchange, _, seq) =
                delayed::parse_key(&k).ok_or_else(|| self.corrupt("delayed message key"))?;
            r.max_delayed_seq = r.max_delayed_seq.max(seq);
            delayed::count(&mut r.delayed, vhost, exchange, delayed::boot_of(&v) == Some(0));
        }
        Ok(())
    }
}

impl Store for RocksStore {
    fn write(&self, ops: &[Op], sync: bool) -> Result<()> {
        if ops.is_empty() && !sync {
            return Ok(());
        }
        let mut batch = WriteBatch::default();
        if ops.is_empty() {
            // A barrier alone (what it waits for went out unsynced in an
            // earlier batch): a record of a few bytes makes this a real
            // synced log write, whatever RocksDB does with an empty batch.
            // (Not `flush_wal`: after a background write error Debian's
            // RocksDB asserts in it instead of returning the error.)
            batch.put_cf(self.cf("meta"), b"synced", []);
        }
        let (messages, index, pages) = (self.cf("messages"), self.cf("index"), self.cf("pages"));
        // One buffer for every encoded record of the batch (put_cf copies).
        let mut scratch = Vec::new();
        let mut rest = ops;
        while let Some(op) = rest.first() {
            // A queue drained in order settles places one after another:
            // one range tombstone in the index for the run instead of one
            // per place. Pages keep point tombstones: a page-in reads from
            // past them, but RocksDB 7.8 fragments every range tombstone of
            // a memtable again for each new iterator (measured: 30% of the
            // page reader's time).
            // The same for messages settled one after another (`messages` is
            // read only at start-up, after `open` flushed its memtable).
            let run = deletion_run(rest);
            if run >= RANGE_MIN {
                match op {
                    Op::Remove { queue, seq, .. } => {
                        let (from, to) = (index_key(*queue, *seq), index_key(*queue, seq + run as u64));
                        batch.delete_range_cf(index, from, to);
                        for op in &rest[..run] {
                            if let Op::Remove { queue, seq, lane: Some(lane) } = op {
                                batch.delete_cf(pages, index_key(*queue + u64::from(*lane), *seq));
                            }
                        }
                    }
                    Op::DeleteMessage { id } => {
                        batch.delete_range_cf(messages, id.to_be_bytes(), (id + run as u64).to_be_bytes())
                    }
                    _ => unreachable!("runs are of removes or message deletions"),
                }
                rest = &rest[run..];
                continue;
            }
            rest = &rest[1..];
            match op {
                Op::PutExchange(e) => {
                    batch.put_cf(self.cf("exchanges"), name_key(&e.vhost, &e.name), e.encode())
                }
                Op::DeleteExchange { vhost, name } => {
                    batch.delete_cf(self.cf("exchanges"), name_key(vhost, name))
                }
                Op::PutQueue(q) => batch.put_cf(self.cf("queues"), name_key(&q.vhost, &q.name), q.encode()),
                Op::DeleteQueue { vhost, name, id, last_lane } => {
                    batch.delete_cf(self.cf("queues"), name_key(vhost, name));
                    batch.delete_range_cf(self.cf("index"), index_key(*id, 0), index_key(*id + 1, 0));
                    let end = *id + u64::from(*last_lane) + 1;
                    batch.delete_range_cf(self.cf("pages"), index_key(*id, 0), index_key(end, 0));
                    batch.delete_range_cf(self.cf("meta"), frontier_key(*id), frontier_key(end));
                    batch.delete_cf(self.cf("meta"), delivered_key(*id));
                    self.ranged.whole(&mut batch, self.cf("meta"), *id, end - 1);
                }
                Op::PutBinding(b) => batch.put_cf(self.cf("bindings"), binding_key(b), b.encode()),
                Op::DeleteBinding(b) => batch.delete_cf(self.cf("bindings"), binding_key(b)),
                Op::PutMessage { id, record } => {
                    scratch.clear();
                    record.encode_into(&mut scratch);
                    batch.put_cf(messages, id.to_be_bytes(), &scratch)
                }
                Op::DeleteMessage { id } => batch.delete_cf(messages, id.to_be_bytes()),
                Op::Place { queue, entry } => {
                    batch.put_cf(index, index_key(*queue, entry.seq), index_value(entry))
                }
                Op::PlaceWith { queue, entry, record, .. } => {
                    debug_assert!(entry.has(IndexEntry::INLINE), "a place keeping its message is flagged so");
                    scratch.clear();
                    scratch.extend_from_slice(&index_value(entry));
                    record.encode_into(&mut scratch);
                    batch.put_cf(index, index_key(*queue, entry.seq), &scratch)
                }
                Op::Page { queue, entry, record } => {
                    let place = index_value(entry);
                    batch.put_cf(index, index_key(*queue, entry.seq), place);
                    scratch.clear();
                    scratch.extend_from_slice(&place);
                    record.encode_into(&mut scratch);
                    batch.put_cf(pages, index_key(*queue + u64::from(entry.lane), entry.seq), &scratch);
                }
                Op::PutControl { space, key, value } => {
                    batch.put_cf(self.cf("control"), name_key(space, key), value)
                }
                Op::DeleteControl { space, key } => batch.delete_cf(self.cf("control"), name_key(space, key)),
                Op::Remove { queue, seq, lane } => {
                    batch.delete_cf(index, index_key(*queue, *seq));
                    if let Some(lane) = lane {
                        batch.delete_cf(pages, index_key(*queue + u64::from(*lane), *seq));
                    }
                }
                Op::DropPlaces { queue, index: seqs, pages: lanes } => {
                    for (from, to) in seqs.iter().filter(|(from, to)| from < to) {
                        batch.delete_range_cf(index, index_key(*queue, *from), index_key(*queue, *to));
                    }
                    for (lane, from, to) in lanes.iter().filter(|(_, from, to)| from < to) {
                        let lane = *queue + u64::from(*lane);
                        batch.delete_range_cf(pages, index_key(lane, *from), index_key(lane, *to));
                        if *to == u64::MAX {
                            batch.delete_cf(self.cf("meta"), frontier_key(lane));
                            self.ranged.whole(&mut batch, self.cf("meta"), lane, lane);
                        } else {
                            self.ranged.reach(&mut batch, self.cf("meta"), lane, *to);
                        }
                    }
                }
                Op::PageFrontier { queue, lane, seq } => {
                    batch.put_cf(self.cf("meta"), frontier_key(*queue + u64::from(*lane)), seq.to_be_bytes())
                }
                Op::Delivered { queue, below: 0 } => batch.delete_cf(self.cf("meta"), delivered_key(*queue)),
                Op::Delivered { queue, below } => {
                    batch.put_cf(self.cf("meta"), delivered_key(*queue), below.to_be_bytes())
                }
                Op::DeleteQueueRecord { vhost, name } => {
                    batch.delete_cf(self.cf("queues"), name_key(vhost, name))
                }
                Op::PutDelayed { at, boot, record } => {
                    scratch.clear();
                    delayed::encode_value(*boot, record, &mut scratch);
                    batch.put_cf(self.cf("delayed"), delayed::key(at), &scratch)
                }
                Op::DeleteDelayed(at) => batch.delete_cf(self.cf("delayed"), delayed::key(at)),
                Op::PutDedup(scope, e) => {
                    batch.put_cf(self.cf("dedup"), dedup::key(scope, e.seq), dedup::value(e))
                }
                Op::DeleteDedup(scope, seq) => batch.delete_cf(self.cf("dedup"), dedup::key(scope, *seq)),
                Op::DropDedup(scope) => {
                    let prefix = dedup::prefix(scope);
                    batch.delete_range_cf(self.cf("dedup"), &prefix, &dedup::end_key(&prefix))
                }
                Op::DropDelayed { vhost, exchange } => {
                    let prefix = delayed::prefix(vhost, exchange);
                    batch.delete_range_cf(self.cf("delayed"), &prefix, &delayed::end_key(&prefix))
                }
            }
        }
        let mut opts = WriteOptions::default();
        opts.set_sync(sync);
        self.db.write_opt(batch, &opts).map_err(|e| self.write_failed(e))
    }

    fn load(&self) -> Result<Recovered> {
        let mut r = Recovered::default();
        let read = |e: rocksdb::Error| StoreError::Open { path: self.path.clone(), reason: e.to_string() };
        for item in self.db.iterator_cf(self.cf("exchanges"), IteratorMode::Start) {
            let (_, v) = item.map_err(read)?;
            r.exchanges.push(ExchangeRecord::decode(&v).ok_or_else(|| self.corrupt("exchange record"))?);
        }
        for item in self.db.iterator_cf(self.cf("queues"), IteratorMode::Start) {
            let (_, v) = item.map_err(read)?;
            r.queues.push(QueueRecord::decode(&v).ok_or_else(|| self.corrupt("queue record"))?);
        }
        r.queues.sort_by_key(|q| q.id);
        for item in self.db.iterator_cf(self.cf("bindings"), IteratorMode::Start) {
            let (_, v) = item.map_err(read)?;
            r.bindings.push(BindingRecord::decode(&v).ok_or_else(|| self.corrupt("binding record"))?);
        }
        for item in self.db.iterator_cf(self.cf("control"), IteratorMode::Start) {
            let (k, v) = item.map_err(read)?;
            let mut key = super::records::Reader(&k);
            let (Some(space), Some(name)) = (key.str(), key.str()) else {
                return Err(self.corrupt("control record key"));
            };
            r.control.push((space, name, v.into_vec()));
        }
        if let Some(item) = self.db.iterator_cf(self.cf("messages"), IteratorMode::End).next() {
            let (k, _) = item.map_err(read)?;
            let id = <[u8; 8]>::try_from(&k[..]).map_err(|_| self.corrupt("message key"))?;
            r.max_message_id = u64::from_be_bytes(id);
        }
        // Lanes deleted whole may still hold pages under their range
        // tombstones: their ids are not given out again.
        r.max_message_id = r.max_message_id.max(self.ranged.floor());
        self.load_delayed(&mut r)?;
        for item in self.db.iterator_cf(self.cf("dedup"), IteratorMode::Start) {
            let (k, v) = item.map_err(read)?;
            dedup::push(
                &mut r.dedup,
                dedup::parse(&k, &v).ok_or_else(|| self.corrupt("deduplication record"))?,
            );
        }
        Ok(r)
    }

    fn scan_index(&self, f: &mut dyn FnMut(u64, IndexEntry)) -> Result<()> {
        for item in self.db.iterator_cf(self.cf("index"), IteratorMode::Start) {
            let (k, v) = item.map_err(|e| self.read_err(e))?;
            let (queue, entry) = index_entry(&k, &v).ok_or_else(|| self.corrupt("queue index entry"))?;
            f(queue, entry);
        }
        Ok(())
    }

    fn scan_places(
        &self,
        queue: u64,
        from_seq: u64,
        to_seq: u64,
        f: &mut dyn FnMut(IndexEntry),
    ) -> Result<()> {
        let mut opts = rocksdb::ReadOptions::default();
        opts.set_iterate_upper_bound(index_key(queue, to_seq));
        // A one-off pass: it should not push hot blocks out of the cache.
        opts.fill_cache(false);
        let start = index_key(queue, from_seq);
        let mode = IteratorMode::From(&start, rocksdb::Direction::Forward);
        for item in self.db.iterator_cf_opt(self.cf("index"), opts, mode) {
            let (k, v) = item.map_err(|e| self.read_err(e))?;
            let (_, entry) = index_entry(&k, &v).ok_or_else(|| self.corrupt("queue index entry"))?;
            f(entry);
        }
        Ok(())
    }

    fn visit_pages(
        &self,
        queue: u64,
        from_seq: u64,
        limit: usize,
        f: &mut dyn FnMut(IndexEntry, Option<RecordRef<'_>>),
    ) -> Result<()> {
        let iterator = |ignore_ranges: bool| {
            let mut opts = rocksdb::ReadOptions::default();
            opts.set_iterate_upper_bound(index_key(queue + 1, 0));
            opts.set_ignore_range_deletions(ignore_ranges);
            self.db.raw_iterator_cf_opt(self.cf("pages"), opts)
        };
        // Past the lane's ranges, their tombstones are not looked at
        // (`ranged.rs`); asked again once the iterator is made, which sees
        // only ranges that raised the mark before.
        let ignore = self.ranged.clear(queue, from_seq);
        let mut it = iterator(ignore);
        if ignore && !self.ranged.clear(queue, from_seq) {
            it = iterator(false);
        }
        it.seek(index_key(queue, from_seq));
        // Each record is handed over where the iterator holds it: the
        // broker copies a message out of it once.
        for _ in 0..limit {
            let (Some(k), Some(v)) = (it.key(), it.value()) else { break };
            // A damaged page comes back with no record (the queue drops
            // it and moves on) rather than failing every read after it.
            let entry = v.get(..INDEX_VALUE).and_then(|place| index_entry(k, place)).map(|(_, e)| e);
            let entry = match entry {
                Some(e) => e,
                None => {
                    let (_, e) = index_entry(k, &[0; INDEX_VALUE]).ok_or_else(|| self.corrupt("page key"))?;
                    e
                }
            };
            f(entry, RecordRef::decode(&v[INDEX_VALUE.min(v.len())..]));
            it.next();
        }
        it.status().map_err(|e| self.read_err(e))
    }

    fn page_marks(&self) -> Vec<u64> {
        self.ranged.lanes()
    }

    fn page_frontiers(&self) -> Result<Vec<(u64, u64)>> {
        self.meta_numbers(b'f', "page frontier")
    }

    fn delivered_marks(&self) -> Result<Vec<(u64, u64)>> {
        self.meta_numbers(b'd', "delivery mark")
    }

    fn scan_page_seqs(&self, queue: u64, to_seq: u64, f: &mut dyn FnMut(u64)) -> Result<()> {
        let mut opts = rocksdb::ReadOptions::default();
        opts.set_iterate_upper_bound(index_key(queue, to_seq));
        opts.fill_cache(false);
        let start = index_key(queue, 0);
        let mut it = self.db.raw_iterator_cf_opt(self.cf("pages"), opts);
        it.seek(start);
        while let Some(k) = it.key() {
            let seq = k.get(8..16).and_then(|b| b.try_into().ok()).map(u64::from_be_bytes);
            f(seq.ok_or_else(|| self.corrupt("page key"))?);
            it.next();
        }
        it.status().map_err(|e| self.read_err(e))
    }

    fn read_delayed(
        &self,
        vhost: &str,
        exchange: &str,
        from: (u64, u64),
        (limit, max_bytes): (usize, usize),
    ) -> Result<(Vec<Delayed>, bool)> {
        let prefix = delayed::prefix(vhost, exchange);
        let mut opts = rocksdb::ReadOptions::default();
        opts.set_iterate_upper_bound(delayed::end_key(&prefix));
        let start = delayed::from_key(&prefix, from.0, from.1);
        let mode = IteratorMode::From(&start, rocksdb::Direction::Forward);
        let mut out = Vec::with_capacity(limit.min(4096));
        let mut bytes = 0;
        for item in self.db.iterator_cf_opt(self.cf("delayed"), opts, mode) {
            if out.len() >= limit || bytes >= max_bytes {
                return Ok((out, true));
            }
            let (k, v) = item.map_err(|e| self.read_err(e))?;
            let (_, _, due, seq) =
                delayed::parse_key(&k).ok_or_else(|| self.corrupt("delayed message key"))?;
            bytes += v.len();
            out.push(delayed::decode(due, seq, &bytes::Bytes::from(v.into_vec())));
        }
        Ok((out, false))
    }

    fn read_messages(&self, ids: &[u64]) -> Result<Vec<Option<MessageRecord>>> {
        let cf = self.cf("messages");
        let keys: Vec<_> = ids.iter().map(|id| (cf, id.to_be_bytes())).collect();
        self.db
            .multi_get_cf(keys)
            .into_iter()
            .map(|r| match r.map_err(|e| self.read_err(e))? {
                None => Ok(None),
                Some(v) => MessageRecord::decode(&v).map(Some).ok_or_else(|| self.corrupt("message record")),
            })
            .collect()
    }

    fn read_places(&self, queue: u64, seqs: &[u64]) -> Result<Vec<Option<MessageRecord>>> {
        let cf = self.cf("index");
        let keys: Vec<_> = seqs.iter().map(|seq| (cf, index_key(queue, *seq))).collect();
        self.db
            .multi_get_cf(keys)
            .into_iter()
            .map(|r| match r.map_err(|e| self.read_err(e))? {
                None => Ok(None),
                Some(v) => match index_entry(&index_key(queue, 0), &v) {
                    Some((_, e)) if e.has(IndexEntry::INLINE) => MessageRecord::decode(&v[INDEX_VALUE..])
                        .map(Some)
                        .ok_or_else(|| self.corrupt("message kept in its place")),
                    _ => Ok(None),
                },
            })
            .collect()
    }

    fn compact(&self) {
        // Flushing every family lets old write-ahead logs go; then the
        // tombstones of settled messages are compacted away.
        for family in FAMILIES {
            let _ = self.db.flush_cf(self.cf(family));
        }
        for family in ["messages", "index", "pages", "delayed"] {
            self.db.compact_range_cf(self.cf(family), None::<&[u8]>, None::<&[u8]>);
        }
    }
}
