//! Key compaction: closed segments are rewritten keeping, for each key,
//! only its newest record (records without a key are all kept). Offsets
//! do not change; the segment just has gaps. Runs on a thread of its own:
//! the new file is written beside the old one and swapped in under the
//! lock readers open files under, so readers never wait for it; a reader
//! of the old file reads on from its open handle.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{self, Write};

use super::chunk::{self, ChunkHeader, HEADER_LEN};
use super::segment::{self, IdxEntry};
use super::{Cursor, Log, CHUNK_TARGET};

/// What a compaction did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Compacted {
    pub segments: usize,
    pub removed: u64,
    pub bytes_before: u64,
    pub bytes_after: u64,
}

impl Log {
    /// Compacts the closed segments by key. The newest offset of each key
    /// is found by reading the whole log (memory: one entry per distinct key).
    pub fn compact_keys(&self) -> io::Result<Compacted> {
        let closed: Vec<(u64, u64, u64)> = {
            let inner = self.inner.lock();
            let n = inner.segments.len().saturating_sub(1);
            inner.segments.iter().take(n).map(|s| (s.first, s.end, s.generation)).collect()
        };
        let mut done = Compacted::default();
        if closed.is_empty() {
            return Ok(done);
        }
        let newest = self.newest_by_key()?;
        for (first, end, generation) in closed {
            let (removed, before, after) = match self.rewrite(first, &newest)? {
                Some(r) => r,
                None => continue,
            };
            if removed == 0 {
                let _ = std::fs::remove_file(tmp(&segment::seg_path(self.dir(), first)));
                let _ = std::fs::remove_file(tmp(&segment::idx_path(self.dir(), first)));
                continue;
            }
            let mut inner = self.inner.lock();
            let generations = inner.generations + 1;
            let Some(s) = inner.segments.iter_mut().find(|s| s.first == first && s.generation == generation)
            else {
                // Dropped by retention meanwhile.
                drop(inner);
                let _ = std::fs::remove_file(tmp(&segment::seg_path(self.dir(), first)));
                let _ = std::fs::remove_file(tmp(&segment::idx_path(self.dir(), first)));
                continue;
            };
            debug_assert_eq!(s.end, end);
            std::fs::rename(
                tmp(&segment::idx_path(self.dir(), first)),
                segment::idx_path(self.dir(), first),
            )?;
            std::fs::rename(
                tmp(&segment::seg_path(self.dir(), first)),
                segment::seg_path(self.dir(), first),
            )?;
            s.size = after;
            s.generation = generations;
            inner.generations = generations;
            drop(inner);
            self.bytes.fetch_sub(before - after, std::sync::atomic::Ordering::Relaxed);
            done.segments += 1;
            done.removed += removed;
            done.bytes_before += before;
            done.bytes_after += after;
        }
        File::open(self.dir())?.sync_all()?;
        Ok(done)
    }

    /// Each key's newest offset, over everything written.
    fn newest_by_key(&self) -> io::Result<HashMap<[u8; 16], u64>> {
        let mut newest = HashMap::new();
        let mut c = Cursor::at(self.first());
        while let Some((h, records)) = self.read(&mut c)? {
            let mut at = 0;
            while let Some((offset, key, _)) = chunk::raw_record(&records, h.first, &mut at) {
                if let Some(k) = key {
                    newest.insert(k, offset);
                }
            }
            c.next = h.end();
        }
        Ok(newest)
    }

    /// Writes segment `first`'s kept records to temporary files beside it
    /// (synced); returns (records removed, bytes before, bytes after).
    fn rewrite(&self, first: u64, newest: &HashMap<[u8; 16], u64>) -> io::Result<Option<(u64, u64, u64)>> {
        let src = match File::open(segment::seg_path(self.dir(), first)) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        let before = src.metadata()?.len();
        if !has_superseded(&src, newest)? {
            return Ok(Some((0, before, before)));
        }
        let create = |p| OpenOptions::new().create(true).truncate(true).write(true).open(p);
        let mut seg = io::BufWriter::new(create(tmp(&segment::seg_path(self.dir(), first)))?);
        let mut idx = io::BufWriter::new(create(tmp(&segment::idx_path(self.dir(), first)))?);
        let (mut pos, mut out_pos, mut removed) = (0u64, 0u64, 0u64);
        let mut out = Out::default();
        while let Some(h) = segment::header_at(&src, pos)? {
            let records = segment::records_at(&src, pos, &h)?;
            pos += h.size();
            let mut at = 0;
            while let Some((offset, key, raw)) = chunk::raw_record(&records, h.first, &mut at) {
                if key.is_some_and(|k| newest.get(&k).is_some_and(|n| *n != offset)) {
                    removed += 1;
                    continue;
                }
                if out.buf.len() >= CHUNK_TARGET {
                    out_pos += out.write(&mut seg, &mut idx, out_pos)?;
                }
                out.add(offset, h.timestamp, raw);
            }
        }
        out_pos += out.write(&mut seg, &mut idx, out_pos)?;
        let (seg, idx) =
            (seg.into_inner().map_err(|e| e.into_error())?, idx.into_inner().map_err(|e| e.into_error())?);
        seg.sync_data()?;
        idx.sync_data()?;
        Ok(Some((removed, before, out_pos)))
    }
}

/// Whether a segment holds a record a newer one of its key supersedes.
fn has_superseded(src: &File, newest: &HashMap<[u8; 16], u64>) -> io::Result<bool> {
    let mut pos = 0;
    while let Some(h) = segment::header_at(src, pos)? {
        let records = segment::records_at(src, pos, &h)?;
        pos += h.size();
        let mut at = 0;
        while let Some((offset, key, _)) = chunk::raw_record(&records, h.first, &mut at) {
            if key.is_some_and(|k| newest.get(&k).is_some_and(|n| *n != offset)) {
                return Ok(true);
            }
        }
    }
    Ok(false)
}

/// A chunk being put together from kept records.
#[derive(Default)]
struct Out {
    buf: Vec<u8>,
    first: u64,
    last: u64,
    count: u32,
    timestamp: i64,
}

impl Out {
    fn add(&mut self, offset: u64, timestamp: i64, raw: &[u8]) {
        if self.count == 0 {
            self.first = offset;
        }
        // The latest of its records': a time lookup starts at or before them all.
        self.timestamp = self.timestamp.max(timestamp);
        let at = self.buf.len();
        self.buf.extend_from_slice(raw);
        chunk::set_delta(&mut self.buf[at..], (offset - self.first) as u32);
        self.last = offset;
        self.count += 1;
    }

    /// Writes the chunk (if any) at `pos`; returns its size.
    fn write(&mut self, seg: &mut impl Write, idx: &mut impl Write, pos: u64) -> io::Result<u64> {
        if self.count == 0 {
            return Ok(0);
        }
        let mut h = ChunkHeader {
            first: self.first,
            span: (self.last - self.first + 1) as u32,
            count: self.count,
            timestamp: self.timestamp,
            len: self.buf.len() as u32,
            crc: 0,
        };
        h.crc = h.checksum(&self.buf);
        seg.write_all(&h.encode())?;
        seg.write_all(&self.buf)?;
        idx.write_all(&IdxEntry::of(&h, pos).encode())?;
        self.buf.clear();
        self.count = 0;
        self.timestamp = 0;
        Ok(HEADER_LEN as u64 + u64::from(h.len))
    }
}

fn tmp(p: &std::path::Path) -> std::path::PathBuf {
    let mut s = p.as_os_str().to_owned();
    s.push(".compact");
    s.into()
}
