//! A stream's segment files: `<first offset>.seg` holds chunks back to
//! back, `<first offset>.idx` one 32-byte entry per chunk (`first u64 | pos
//! u64 | timestamp i64 | span u32 | count u32`) to find an offset or a time
//! without reading the segment. Closed segments are synced with their index
//! when the next one starts; the last one's tail is checked chunk by chunk
//! at start-up and cut at the first torn chunk.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use super::chunk::{ChunkHeader, HEADER_LEN};

pub const IDX_ENTRY: usize = 32;

/// What is known of a segment without reading it.
#[derive(Debug, Clone)]
pub struct Segment {
    pub first: u64,
    /// The offset after its last chunk.
    pub end: u64,
    /// Bytes of whole chunks.
    pub size: u64,
    pub first_ts: i64,
    pub last_ts: i64,
    /// Changes when compaction rewrote the file: readers of the old one look again.
    pub generation: u64,
}

/// The segment being appended to.
#[derive(Debug)]
pub struct Active {
    pub first: u64,
    pub seg: File,
    pub idx: File,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IdxEntry {
    pub first: u64,
    pub pos: u64,
    pub timestamp: i64,
    pub span: u32,
    pub count: u32,
}

impl IdxEntry {
    pub fn encode(&self) -> [u8; IDX_ENTRY] {
        let mut b = [0u8; IDX_ENTRY];
        b[0..8].copy_from_slice(&self.first.to_be_bytes());
        b[8..16].copy_from_slice(&self.pos.to_be_bytes());
        b[16..24].copy_from_slice(&self.timestamp.to_be_bytes());
        b[24..28].copy_from_slice(&self.span.to_be_bytes());
        b[28..32].copy_from_slice(&self.count.to_be_bytes());
        b
    }

    fn decode(b: &[u8]) -> IdxEntry {
        let u64_at = |i: usize| u64::from_be_bytes(b[i..i + 8].try_into().expect("8 bytes"));
        let u32_at = |i: usize| u32::from_be_bytes(b[i..i + 4].try_into().expect("4 bytes"));
        IdxEntry {
            first: u64_at(0),
            pos: u64_at(8),
            timestamp: u64_at(16) as i64,
            span: u32_at(24),
            count: u32_at(28),
        }
    }

    pub fn of(h: &ChunkHeader, pos: u64) -> IdxEntry {
        IdxEntry { first: h.first, pos, timestamp: h.timestamp, span: h.span, count: h.count }
    }
}

pub fn seg_path(dir: &Path, first: u64) -> PathBuf {
    dir.join(format!("{first:020}.seg"))
}

pub fn idx_path(dir: &Path, first: u64) -> PathBuf {
    dir.join(format!("{first:020}.idx"))
}

/// The first offsets of the segments in `dir`, in order.
pub fn list(dir: &Path) -> io::Result<Vec<u64>> {
    let mut firsts = Vec::new();
    for e in std::fs::read_dir(dir)? {
        let e = e?;
        let name = e.file_name();
        let name = name.to_string_lossy();
        // What a compaction cut short left behind.
        if name.ends_with(".compact") {
            std::fs::remove_file(e.path())?;
            continue;
        }
        if let Some(first) = name.strip_suffix(".seg").and_then(|n| n.parse().ok()) {
            firsts.push(first);
        }
    }
    firsts.sort_unstable();
    Ok(firsts)
}

/// Starts a new, empty segment.
pub fn create(dir: &Path, first: u64, now: i64) -> io::Result<(Segment, Active)> {
    let open = |p: PathBuf| OpenOptions::new().create(true).truncate(true).read(true).write(true).open(p);
    let seg = open(seg_path(dir, first))?;
    let idx = open(idx_path(dir, first))?;
    let segment = Segment { first, end: first, size: 0, first_ts: now, last_ts: now, generation: 0 };
    Ok((segment, Active { first, seg, idx }))
}

/// Reads a chunk header at `pos`, or None past the end or at a torn one.
pub fn header_at(file: &File, pos: u64) -> io::Result<Option<ChunkHeader>> {
    let mut h = [0u8; HEADER_LEN];
    match file.read_exact_at(&mut h, pos) {
        Ok(()) => Ok(ChunkHeader::decode(&h)),
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Ok(None),
        Err(e) => Err(e),
    }
}

/// Reads a chunk's records (after its header at `pos`).
pub fn records_at(file: &File, pos: u64, h: &ChunkHeader) -> io::Result<bytes::Bytes> {
    let mut buf = vec![0u8; h.len as usize];
    file.read_exact_at(&mut buf, pos + HEADER_LEN as u64)?;
    Ok(bytes::Bytes::from(buf))
}

/// The index entries of a segment.
pub fn read_idx(dir: &Path, first: u64) -> io::Result<Vec<IdxEntry>> {
    let raw = match std::fs::read(idx_path(dir, first)) {
        Ok(raw) => raw,
        Err(e) if e.kind() == io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(e),
    };
    Ok(raw.chunks_exact(IDX_ENTRY).map(IdxEntry::decode).collect())
}

/// Where the chunk holding `offset` (or the first after it) starts, by a
/// binary search of the index file; None if the segment has no such chunk.
pub fn find_offset(dir: &Path, first: u64, offset: u64) -> io::Result<Option<IdxEntry>> {
    find(dir, first, |e| e.first + u64::from(e.span) <= offset)
}

/// The first chunk written at or after `ts`.
pub fn find_time(dir: &Path, first: u64, ts: i64) -> io::Result<Option<IdxEntry>> {
    find(dir, first, |e| e.timestamp < ts)
}

/// The first entry for which `before` is false (entries are ordered by it).
fn find(dir: &Path, first: u64, before: impl Fn(&IdxEntry) -> bool) -> io::Result<Option<IdxEntry>> {
    let idx = File::open(idx_path(dir, first))?;
    let n = idx.metadata()?.len() / IDX_ENTRY as u64;
    let at = |i: u64| -> io::Result<IdxEntry> {
        let mut b = [0u8; IDX_ENTRY];
        idx.read_exact_at(&mut b, i * IDX_ENTRY as u64)?;
        Ok(IdxEntry::decode(&b))
    };
    let (mut lo, mut hi) = (0, n);
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        if before(&at(mid)?) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    if lo < n {
        at(lo).map(Some)
    } else {
        Ok(None)
    }
}

/// Checks a segment's chunks from `pos` on (each header and CRC), calling
/// `f` for each whole one; returns where the whole chunks end.
fn scan(file: &File, mut pos: u64, mut f: impl FnMut(&ChunkHeader, u64)) -> io::Result<u64> {
    let len = file.metadata()?.len();
    while pos + HEADER_LEN as u64 <= len {
        let Some(h) = header_at(file, pos)? else { break };
        if pos + h.size() > len {
            break;
        }
        let records = records_at(file, pos, &h)?;
        if h.checksum(&records) != h.crc {
            break;
        }
        f(&h, pos);
        pos += h.size();
    }
    Ok(pos)
}

/// Opens a segment at start-up: its index is trusted where its last entry
/// matches the chunk it names; the chunks after that are checked one by
/// one and the file is cut after the last whole one (a torn write of a
/// crash), the index rewritten to match. `last`: it is the one appended to.
pub fn open(dir: &Path, first: u64, last: bool) -> io::Result<(Segment, Option<Active>)> {
    let seg = OpenOptions::new().read(true).write(true).open(seg_path(dir, first))?;
    let mut entries = read_idx(dir, first)?;
    // An index page lost to a power loss reads as zeros: trust the entries
    // only while they go up (offsets and positions), from the start.
    let good = entries
        .iter()
        .enumerate()
        .take_while(|(i, e)| *i == 0 || (e.first > entries[i - 1].first && e.pos > entries[i - 1].pos))
        .count();
    entries.truncate(good);
    if entries.first().is_some_and(|e| e.pos != 0 || e.first < first) {
        entries.clear();
    }
    // Trust the index up to its last entry that names a whole chunk.
    while let Some(e) = entries.last() {
        match header_at(&seg, e.pos)? {
            Some(h) if h.first == e.first && e.pos + h.size() <= seg.metadata()?.len() => break,
            _ => {
                entries.pop();
            }
        }
    }
    // The segment written to last may hold unsynced pages a power loss
    // zeroed anywhere in it: all of it is checked, chunk by chunk. Closed
    // ones were synced with their index when the next one started.
    if last {
        entries.clear();
    }
    let from = match entries.pop() {
        Some(e) => e.pos,
        None => 0,
    };
    let end = scan(&seg, from, |h, pos| entries.push(IdxEntry::of(h, pos)))?;
    if end < seg.metadata()?.len() {
        tracing::warn!(segment = %seg_path(dir, first).display(), at = end, "cutting a torn chunk off a stream segment");
        seg.set_len(end)?;
    }
    let mut raw = Vec::with_capacity(entries.len() * IDX_ENTRY);
    for e in &entries {
        raw.extend_from_slice(&e.encode());
    }
    let idx_file =
        OpenOptions::new().create(true).truncate(true).read(true).write(true).open(idx_path(dir, first))?;
    (&idx_file).write_all(&raw)?;
    let now = super::now_ms();
    let segment = Segment {
        first,
        end: entries.last().map_or(first, |e| e.first + u64::from(e.span)),
        size: end,
        first_ts: entries.first().map_or(now, |e| e.timestamp),
        last_ts: entries.last().map_or(now, |e| e.timestamp),
        generation: 0,
    };
    if !last {
        return Ok((segment, None));
    }
    Ok((segment, Some(Active { first, seg, idx: idx_file })))
}

/// Removes a segment's files.
pub fn remove(dir: &Path, first: u64) {
    for p in [seg_path(dir, first), idx_path(dir, first)] {
        if let Err(e) = std::fs::remove_file(&p) {
            if e.kind() != io::ErrorKind::NotFound {
                tracing::warn!(path = %p.display(), "cannot remove a stream segment: {e}");
            }
        }
    }
}
