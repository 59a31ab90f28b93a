//! Where range deletes of pages may lie, so the page reader can skip
//! RocksDB's range-deletion handling where none can cover what it reads.
//!
//! Settled pages go in range deletes (`broker::queue::window`): a drain
//! leaves one per read of pages. RocksDB 7.8 fragments a memtable's range
//! tombstones again for every new iterator and keeps them in its merging
//! heap, so each read paid for every range written since the last flush:
//! a cost that grew with the backlog (a 3M-page drain: ~200 instructions
//! per page, 7 % of the reader's).
//!
//! Each range delete of a lane's pages raises that lane's mark, the end of
//! the furthest range on it, written with the range (`r` + lane in `meta`)
//! and raised in memory before the batch is written. A read of the lane
//! from a seq at or past the mark cannot meet a page a range took, so it
//! reads with `ignore_range_deletions`. A lane deleted whole (its queue
//! went) loses its mark, and the id floor (`idfloor` in `meta`) rises past
//! it: no queue takes its id again, even after a restart, and a lane at or
//! below the floor without a mark is read with the tombstones (a live
//! queue's lane until its first range, a deleted one's always). A lane
//! above the floor without a mark has no range on it. A directory written
//! before the marks (schema 2) has its `pages` family compacted to the
//! last level once, at open, which drops every range tombstone and what it
//! covered; only once no table of `pages` holds a deletion any more does it
//! become schema 3 (else every read keeps to the tombstones, and the next
//! start tries again). Schema 3 keeps an older Warren, which would write
//! ranges without marks, from opening it.

use parking_lot::Mutex;
use rocksdb::{ColumnFamily, IteratorMode, WriteBatch, DB};
use rustc_hash::FxHashMap;

/// In `meta`: no queue id or lane at or below this is given out again.
const ID_FLOOR: &[u8] = b"idfloor";

/// A lane's mark, in `meta`.
fn mark_key(lane: u64) -> [u8; 9] {
    super::rocks::keys::meta_key(b'r', lane)
}

#[derive(Default)]
pub(super) struct Ranged {
    inner: Mutex<Marks>,
    /// Every range on disk is under its lane's mark (false: a directory
    /// from before the marks whose compaction left some; reads keep to
    /// the tombstones).
    marked: bool,
}

#[derive(Default)]
struct Marks {
    lanes: FxHashMap<u64, u64>,
    floor: u64,
}

impl Ranged {
    /// Compacts a directory's pages from before the marks down to the last
    /// level, which drops every range tombstone; true if no table of
    /// `pages` holds a deletion afterwards (RocksDB does not say whether a
    /// compaction ran to its end).
    pub fn compact_unmarked(db: &DB, pages: &ColumnFamily) -> Result<bool, String> {
        let err = |e: rocksdb::Error| e.to_string();
        let started = std::time::Instant::now();
        tracing::info!("compacting the pages of a directory from before range marks (once)");
        db.flush_cf(pages).map_err(err)?;
        let mut c = rocksdb::CompactOptions::default();
        c.set_bottommost_level_compaction(rocksdb::BottommostLevelCompaction::Force);
        db.compact_range_cf_opt(pages, None::<&[u8]>, None::<&[u8]>, &c);
        // The compaction says nothing of how it ended; RocksDB counts
        // background errors (a full disk, say).
        if db.property_int_value("rocksdb.background-errors").map_err(err)?.unwrap_or(0) > 0 {
            return Err("compacting its pages failed (is the disk full?); it needs room for them".into());
        }
        let left = deletions_left(db).map_err(err)?;
        let took_ms = started.elapsed().as_millis() as u64;
        tracing::info!(took_ms, left, "compacted the pages of a directory from before range marks");
        Ok(left == 0)
    }

    /// Reads the marks and the floor. `marked`: every range on disk is
    /// under its lane's mark.
    pub fn load(db: &DB, meta: &ColumnFamily, marked: bool) -> Result<Ranged, String> {
        let err = |e: rocksdb::Error| e.to_string();
        let be = |b: &[u8]| <[u8; 8]>::try_from(b).ok().map(u64::from_be_bytes);
        let mut marks = Marks::default();
        if let Some(v) = db.get_cf(meta, ID_FLOOR).map_err(err)? {
            marks.floor = be(&v).ok_or("a damaged id floor")?;
        }
        let mut opts = rocksdb::ReadOptions::default();
        opts.set_iterate_upper_bound(*b"s");
        for item in db.iterator_cf_opt(meta, opts, IteratorMode::From(b"r", rocksdb::Direction::Forward)) {
            let (k, v) = item.map_err(err)?;
            match (k.get(1..).and_then(be), be(&v)) {
                (Some(lane), Some(to)) => marks.lanes.insert(lane, to),
                _ => return Err("a damaged range mark".into()),
            };
        }
        Ok(Ranged { inner: Mutex::new(marks), marked })
    }

    /// No queue id or lane at or below this is given out again.
    pub fn floor(&self) -> u64 {
        self.inner.lock().floor
    }

    /// The lanes with a mark.
    pub fn lanes(&self) -> Vec<u64> {
        self.inner.lock().lanes.keys().copied().collect()
    }

    /// A range of `lane`'s pages up to `to` goes in `batch`: its mark rises
    /// now, before the batch is written.
    pub fn reach(&self, batch: &mut WriteBatch, meta: &ColumnFamily, lane: u64, to: u64) {
        let mut m = self.inner.lock();
        let mark = m.lanes.entry(lane).or_default();
        if to > *mark {
            *mark = to;
            batch.put_cf(meta, mark_key(lane), to.to_be_bytes());
        }
    }

    /// Lanes `first..=last` go whole in `batch`: their ids are not given
    /// out again, and a read of them keeps to the tombstones.
    pub fn whole(&self, batch: &mut WriteBatch, meta: &ColumnFamily, first: u64, last: u64) {
        let mut m = self.inner.lock();
        for lane in first..=last {
            if m.lanes.remove(&lane).is_some() {
                batch.delete_cf(meta, mark_key(lane));
            }
        }
        if last > m.floor {
            m.floor = last;
            batch.put_cf(meta, ID_FLOOR, last.to_be_bytes());
        }
    }

    /// Whether a read of `lane` from `from` on can meet no page a range
    /// took. Ask after making the iterator: a range written after it is
    /// not in its view, and one written before raised the mark first.
    pub fn clear(&self, lane: u64, from: u64) -> bool {
        if !self.marked {
            return false;
        }
        let m = self.inner.lock();
        m.lanes.get(&lane).map_or(lane > m.floor, |mark| from >= *mark)
    }
}

/// Deletions (point or range) in the table files of `pages`.
pub(super) fn deletions_left(db: &DB) -> Result<u64, rocksdb::Error> {
    let pages = db.live_files()?.into_iter().filter(|f| f.column_family_name == "pages");
    Ok(pages.map(|f| f.num_deletions).sum())
}

#[cfg(test)]
mod tests;
