//! A stream's log: an append-only sequence of records numbered by offset,
//! kept in segment files beside RocksDB (`<data dir>/streams/<queue id>/`).
//!
//! Appends go into a pending buffer under a short lock and are written by
//! the store's writer thread, one chunk per write, together with its other
//! work: a barrier after an append (a publisher's confirm) is answered
//! only once the chunk is written and synced, so confirms follow the same
//! group commit as everything else. Readers read written chunks with
//! `pread` through cursors of their own; only segment bounds are kept in
//! memory, so a stream's memory does not grow with its length. Retention
//! drops whole segments (`retain`), compaction rewrites closed ones
//! (`compact.rs`). Knows nothing of the broker.

pub mod chunk;
pub mod compact;
pub mod segment;

use std::collections::VecDeque;
use std::fs::File;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use bytes::{Bytes, BytesMut};
use parking_lot::Mutex;

use chunk::{ChunkHeader, Extras};
use segment::{Active, IdxEntry, Segment};

/// Records per chunk grow until a chunk holds this many bytes; the next
/// append starts another (a write takes all pending chunks at once).
const CHUNK_TARGET: usize = 256 * 1024;

/// RabbitMQ's default segment size (`x-stream-max-segment-size-bytes`).
pub const DEFAULT_SEGMENT_BYTES: u64 = 500_000_000;

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

/// How much of a stream is kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    pub max_bytes: Option<u64>,
    pub max_age_ms: Option<u64>,
    pub segment_bytes: u64,
}

impl Default for Retention {
    fn default() -> Self {
        Retention { max_bytes: None, max_age_ms: None, segment_bytes: DEFAULT_SEGMENT_BYTES }
    }
}

/// Appends not yet written.
#[derive(Debug, Default)]
struct Pending {
    chunks: Vec<PendingChunk>,
    /// The offset the next append gets.
    next: u64,
    bytes: usize,
    /// Buffers of written chunks, kept for reuse.
    spare: Vec<BytesMut>,
}

#[derive(Debug)]
struct PendingChunk {
    buf: BytesMut,
    first: u64,
    count: u32,
}

#[derive(Debug)]
struct Inner {
    segments: VecDeque<Segment>,
    retention: Retention,
    /// The first offset of the last chunk written (`x-stream-offset` = last).
    last_chunk: Option<u64>,
    /// Bumped for every segment file rewritten by compaction.
    generations: u64,
}

/// A stream's log.
pub struct Log {
    dir: PathBuf,
    inner: Mutex<Inner>,
    /// The segment being appended to: the writer thread's alone.
    active: Mutex<Option<Active>>,
    pending: Mutex<Pending>,
    /// Offsets below this are written and can be read.
    written: AtomicU64,
    /// Bytes on disk.
    bytes: AtomicU64,
    deleted: AtomicBool,
    /// Told after each write (the broker wakes the stream's readers).
    on_written: OnceLock<Box<dyn Fn() + Send + Sync>>,
    /// A chunk was written since the last sync.
    dirty: AtomicBool,
}

impl std::fmt::Debug for Log {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Log").field("dir", &self.dir).finish()
    }
}

/// What an append did.
#[derive(Debug, Clone, Copy)]
pub struct Appended {
    pub offset: u64,
    /// The pending buffer was empty: the caller must ask the writer to write it.
    pub flush: bool,
    /// Bytes waiting to be written (for back-pressure).
    pub pending_bytes: usize,
}

/// Where a reader is: the next offset it wants, and the segment file it reads.
#[derive(Debug, Default)]
pub struct Cursor {
    pub next: u64,
    file: Option<(u64, u64, File)>,
    pos: u64,
}

impl Cursor {
    pub fn at(offset: u64) -> Cursor {
        Cursor { next: offset, file: None, pos: 0 }
    }
}

impl Log {
    /// Opens (or creates) the log in `dir`, checking the last segment's
    /// tail and cutting a torn chunk off it.
    pub fn open(dir: &Path, retention: Retention) -> io::Result<Arc<Log>> {
        std::fs::create_dir_all(dir)?;
        let firsts = segment::list(dir)?;
        let mut segments = VecDeque::new();
        let mut active = None;
        for (i, first) in firsts.iter().enumerate() {
            let (s, a) = segment::open(dir, *first, i + 1 == firsts.len())?;
            segments.push_back(s);
            active = a;
        }
        if segments.is_empty() {
            let (s, a) = segment::create(dir, 0, now_ms())?;
            segments.push_back(s);
            active = Some(a);
        }
        let next = segments.back().map_or(0, |s| s.end);
        let last_chunk = match segments.iter().rev().find(|s| s.end > s.first) {
            Some(s) => segment::read_idx(dir, s.first)?.last().map(|e| e.first),
            None => None,
        };
        let bytes = segments.iter().map(|s| s.size).sum();
        Ok(Arc::new(Log {
            dir: dir.to_owned(),
            inner: Mutex::new(Inner { segments, retention, last_chunk, generations: 0 }),
            active: Mutex::new(active),
            pending: Mutex::new(Pending { next, ..Pending::default() }),
            written: AtomicU64::new(next),
            bytes: AtomicU64::new(bytes),
            deleted: AtomicBool::new(false),
            on_written: OnceLock::new(),
            dirty: AtomicBool::new(false),
        }))
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Sets what to call after each write.
    pub fn on_written(&self, f: Box<dyn Fn() + Send + Sync>) {
        let _ = self.on_written.set(f);
    }

    pub fn set_retention(&self, r: Retention) {
        self.inner.lock().retention = r;
    }

    pub fn retention(&self) -> Retention {
        self.inner.lock().retention
    }

    /// Appends a record; `header` writes its content header, given its offset.
    /// `first` is called, under the lock, when the pending buffer was
    /// empty: the caller asks the writer to write it there, so that ask is
    /// ordered before any barrier of a later append (whose confirm then
    /// waits for this write).
    #[allow(clippy::too_many_arguments)]
    pub fn append(
        &self,
        exchange: &[u8],
        routing_key: &[u8],
        extras: Extras<'_>,
        header: impl FnOnce(u64, &mut BytesMut),
        body: &[u8],
        first: impl FnOnce(),
    ) -> Appended {
        let mut p = self.pending.lock();
        let flush = p.chunks.is_empty();
        if flush {
            first();
        }
        let offset = p.next;
        p.next += 1;
        let full = p.chunks.last().is_none_or(|c| c.buf.len() >= CHUNK_TARGET);
        if full {
            let mut buf = p.spare.pop().unwrap_or_default();
            buf.clear();
            p.chunks.push(PendingChunk { buf, first: offset, count: 0 });
        }
        let c = p.chunks.last_mut().expect("a chunk");
        let before = c.buf.len();
        let delta = (offset - c.first) as u32;
        chunk::put_record(&mut c.buf, delta, exchange, routing_key, extras, |b| header(offset, b), body);
        c.count += 1;
        let added = c.buf.len() - before;
        p.bytes += added;
        Appended { offset, flush, pending_bytes: p.bytes }
    }

    /// Writes what is pending (the writer thread's part), rolling to a new
    /// segment past the segment size and applying retention then.
    pub fn write_pending(&self) -> io::Result<()> {
        let chunks = {
            let mut p = self.pending.lock();
            p.bytes = 0;
            std::mem::take(&mut p.chunks)
        };
        if chunks.is_empty() || self.deleted.load(Ordering::Acquire) {
            return Ok(());
        }
        let mut active = self.active.lock();
        let mut spare = Vec::with_capacity(chunks.len());
        let now = now_ms();
        let mut end = None;
        let mut rolled = false;
        for c in chunks {
            let Some(a) = active.as_mut() else { break };
            let mut h = ChunkHeader {
                first: c.first,
                span: c.count,
                count: c.count,
                timestamp: now,
                len: c.buf.len() as u32,
                crc: 0,
            };
            h.crc = h.checksum(&c.buf);
            let pos = {
                let inner = self.inner.lock();
                inner.segments.back().map_or(0, |s| s.size)
            };
            a.seg.write_all_at_end(&h.encode(), &c.buf)?;
            (&a.idx).write_all(&IdxEntry::of(&h, pos).encode())?;
            self.dirty.store(true, Ordering::Release);
            let size = {
                let mut inner = self.inner.lock();
                let s = inner.segments.back_mut().expect("a segment");
                if s.end == s.first {
                    s.first_ts = now;
                }
                s.end = h.end();
                s.size += h.size();
                s.last_ts = now;
                let size = s.size;
                inner.last_chunk = Some(h.first);
                size
            };
            self.bytes.fetch_add(h.size(), Ordering::Relaxed);
            end = Some(h.end());
            spare.push(c.buf);
            if size >= self.retention().segment_bytes {
                self.roll(&mut active, h.end(), now)?;
                rolled = true;
            }
        }
        drop(active);
        {
            let mut p = self.pending.lock();
            for mut b in spare {
                if p.spare.len() < 4 && b.capacity() <= 4 * CHUNK_TARGET {
                    b.clear();
                    p.spare.push(b);
                }
            }
        }
        if let Some(end) = end {
            self.written.store(end, Ordering::Release);
        }
        if rolled {
            self.retain();
        }
        if let Some(f) = self.on_written.get() {
            f();
        }
        Ok(())
    }

    /// Closes the active segment (synced with its index) and starts the next.
    fn roll(&self, active: &mut Option<Active>, first: u64, now: i64) -> io::Result<()> {
        if let Some(a) = active.take() {
            a.seg.sync_data()?;
            a.idx.sync_data()?;
        }
        let (s, a) = segment::create(&self.dir, first, now)?;
        // The new files' names must survive a power loss before anything in them counts.
        File::open(&self.dir)?.sync_all()?;
        self.inner.lock().segments.push_back(s);
        *active = Some(a);
        Ok(())
    }

    /// Makes written chunks durable (before the writer answers a barrier).
    pub fn sync(&self) -> io::Result<()> {
        if !self.dirty.swap(false, Ordering::AcqRel) {
            return Ok(());
        }
        match self.active.lock().as_ref() {
            Some(a) => a.seg.sync_data(),
            None => Ok(()),
        }
    }

    /// Drops whole segments, oldest first, past the size or age limit;
    /// never the one appended to. Returns how many went.
    pub fn retain(&self) -> usize {
        let now = now_ms();
        let mut gone = Vec::new();
        {
            let mut inner = self.inner.lock();
            let r = inner.retention;
            let mut total: u64 = inner.segments.iter().map(|s| s.size).sum();
            while inner.segments.len() > 1 {
                let s = &inner.segments[0];
                let too_big = r.max_bytes.is_some_and(|max| total > max);
                let too_old = r
                    .max_age_ms
                    .is_some_and(|age| s.last_ts < now.saturating_sub(age.min(i64::MAX as u64) as i64));
                if !too_big && !too_old {
                    break;
                }
                total -= s.size;
                gone.push(inner.segments.pop_front().expect("a segment"));
            }
        }
        for s in &gone {
            self.bytes.fetch_sub(s.size, Ordering::Relaxed);
            segment::remove(&self.dir, s.first);
        }
        gone.len()
    }

    /// The first offset kept.
    pub fn first(&self) -> u64 {
        self.inner.lock().segments.front().map_or(0, |s| s.first)
    }

    /// The offset the next written record gets (what `next` attaches at).
    pub fn written(&self) -> u64 {
        self.written.load(Ordering::Acquire)
    }

    /// Bytes appended and not yet written.
    pub fn pending_bytes(&self) -> usize {
        self.pending.lock().bytes
    }

    /// The offset the next append gets.
    pub fn next_offset(&self) -> u64 {
        self.pending.lock().next
    }

    /// The first offset of the last chunk written (`last`), if any.
    pub fn last_chunk(&self) -> Option<u64> {
        self.inner.lock().last_chunk
    }

    /// Records kept (offsets from the first kept to the next; compaction
    /// leaves gaps, which count).
    pub fn count(&self) -> u64 {
        self.written().saturating_sub(self.first())
    }

    pub fn bytes(&self) -> u64 {
        self.bytes.load(Ordering::Relaxed)
    }

    pub fn segment_count(&self) -> usize {
        self.inner.lock().segments.len()
    }

    /// The first offset of the first chunk written at or after `ts` (ms);
    /// `written()` if none was.
    pub fn offset_at_time(&self, ts: i64) -> io::Result<u64> {
        let seg = {
            let inner = self.inner.lock();
            inner.segments.iter().find(|s| s.end > s.first && s.last_ts >= ts).map(|s| s.first)
        };
        match seg {
            Some(first) => Ok(segment::find_time(&self.dir, first, ts)?.map_or(self.written(), |e| e.first)),
            None => Ok(self.written()),
        }
    }

    /// Reads the next written chunk holding offsets at or after `c.next`;
    /// None when the reader is at the end. `c.next` jumps to the first
    /// kept offset if retention dropped what it pointed at.
    pub fn read(&self, c: &mut Cursor) -> io::Result<Option<(ChunkHeader, Bytes)>> {
        loop {
            let written = self.written();
            if c.next >= written {
                return Ok(None);
            }
            let (size, end) = {
                // Files are opened and looked up under the lock compaction
                // swaps them under, so a file and its index always match.
                let inner = self.inner.lock();
                let Some(front) = inner.segments.front() else { return Ok(None) };
                if c.next < front.first {
                    c.next = front.first;
                    c.file = None;
                }
                let i = inner.segments.partition_point(|s| s.end <= c.next);
                let Some(s) = inner.segments.get(i) else { return Ok(None) };
                let same = c.file.as_ref().is_some_and(|(f, g, _)| *f == s.first && *g == s.generation);
                if !same {
                    let file = File::open(segment::seg_path(&self.dir, s.first))?;
                    match segment::find_offset(&self.dir, s.first, c.next.max(s.first))? {
                        Some(e) => {
                            c.pos = e.pos;
                            c.file = Some((s.first, s.generation, file));
                        }
                        None => {
                            c.next = c.next.max(s.end);
                            c.file = None;
                            continue;
                        }
                    }
                }
                (s.size, s.end)
            };
            if c.pos >= size {
                // This segment is done (its end moved on meanwhile): the next one.
                c.next = c.next.max(end);
                c.file = None;
                continue;
            }
            let (_, _, file) = c.file.as_ref().expect("opened");
            let h = match segment::header_at(file, c.pos)? {
                Some(h) if c.pos + h.size() <= size => h,
                _ => {
                    return Err(io::Error::other(format!("no whole chunk at {} of a stream segment", c.pos)))
                }
            };
            let records = segment::records_at(file, c.pos, &h)?;
            c.pos += h.size();
            if h.end() <= c.next {
                continue;
            }
            return Ok(Some((h, records)));
        }
    }

    /// Deletes the log's files (the stream was deleted); later writes are dropped.
    pub fn delete(&self) {
        self.deleted.store(true, Ordering::Release);
        *self.active.lock() = None;
        if let Err(e) = std::fs::remove_dir_all(&self.dir) {
            if e.kind() != io::ErrorKind::NotFound {
                tracing::warn!(dir = %self.dir.display(), "cannot remove a deleted stream's files: {e}");
            }
        }
    }

    pub fn is_deleted(&self) -> bool {
        self.deleted.load(Ordering::Acquire)
    }
}

/// Writing a chunk's header and records with one call.
trait WriteChunk {
    fn write_all_at_end(&mut self, header: &[u8], records: &[u8]) -> io::Result<()>;
}

impl WriteChunk for File {
    fn write_all_at_end(&mut self, header: &[u8], records: &[u8]) -> io::Result<()> {
        use std::io::Seek;
        self.seek(io::SeekFrom::End(0))?;
        let mut bufs = [io::IoSlice::new(header), io::IoSlice::new(records)];
        let mut bufs = &mut bufs[..];
        while !bufs.is_empty() {
            match self.write_vectored(bufs) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => io::IoSlice::advance_slices(&mut bufs, n),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
