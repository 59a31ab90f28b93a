//! The on-disk form of a stream: chunks of records, each chunk one write,
//! checked by a CRC. Pure: bytes in, values out, no I/O.
//!
//! A chunk header (40 bytes, big-endian):
//! `magic u32 | crc u32 | first u64 | span u32 | count u32 | timestamp i64 | len u32 | 0 u32`.
//! `first` is the offset of its first record; the chunk covers `span`
//! offsets from there, holding `count` records (fewer than `span` once
//! compaction removed some); `len` bytes of records follow. The CRC covers
//! the header after itself and the records.
//!
//! A record: `len u32` (bytes after it) `| delta u32 | flags u8 | exchange
//! len u8 | routing key len u8 | header len u32 | [filter len u8, filter] |
//! [key hash, 16 bytes] | exchange | routing key | header | body`.

use bytes::{BufMut, Bytes, BytesMut};

pub const MAGIC: u32 = 0x5753_4331;
pub const HEADER_LEN: usize = 40;
/// A record's bytes before its variable parts.
const RECORD_FIXED: usize = 15;
/// The record carries a filter value (`x-stream-filter-value`).
const HAS_FILTER: u8 = 1;
/// The record carries a compaction key's hash.
const HAS_KEY: u8 = 2;
/// The longest filter value kept (longer ones are cut).
pub const MAX_FILTER: usize = 255;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ChunkHeader {
    pub first: u64,
    pub span: u32,
    pub count: u32,
    /// When the chunk was written, ms since the Unix epoch.
    pub timestamp: i64,
    pub len: u32,
    pub crc: u32,
}

impl ChunkHeader {
    /// The offset after the chunk's last.
    pub fn end(&self) -> u64 {
        self.first + u64::from(self.span)
    }

    /// Bytes on disk, header included.
    pub fn size(&self) -> u64 {
        HEADER_LEN as u64 + u64::from(self.len)
    }

    pub fn encode(&self) -> [u8; HEADER_LEN] {
        let mut h = [0u8; HEADER_LEN];
        h[0..4].copy_from_slice(&MAGIC.to_be_bytes());
        h[4..8].copy_from_slice(&self.crc.to_be_bytes());
        h[8..16].copy_from_slice(&self.first.to_be_bytes());
        h[16..20].copy_from_slice(&self.span.to_be_bytes());
        h[20..24].copy_from_slice(&self.count.to_be_bytes());
        h[24..32].copy_from_slice(&self.timestamp.to_be_bytes());
        h[32..36].copy_from_slice(&self.len.to_be_bytes());
        h
    }

    /// A header, or None if these bytes are not one (a torn write).
    pub fn decode(h: &[u8]) -> Option<ChunkHeader> {
        if h.len() < HEADER_LEN || u32::from_be_bytes(h[0..4].try_into().ok()?) != MAGIC {
            return None;
        }
        let u32_at = |i: usize| u32::from_be_bytes(h[i..i + 4].try_into().expect("4 bytes"));
        let u64_at = |i: usize| u64::from_be_bytes(h[i..i + 8].try_into().expect("8 bytes"));
        Some(ChunkHeader {
            crc: u32_at(4),
            first: u64_at(8),
            span: u32_at(16),
            count: u32_at(20),
            timestamp: u64_at(24) as i64,
            len: u32_at(32),
        })
    }

    /// The CRC of a header (its fields after the CRC) and its records.
    pub fn checksum(&self, records: &[u8]) -> u32 {
        let h = self.encode();
        let mut c = crc32fast::Hasher::new();
        c.update(&h[8..]);
        c.update(records);
        c.finalize()
    }
}

/// What goes into a record besides the message's own bytes.
#[derive(Debug, Clone, Copy, Default)]
pub struct Extras<'a> {
    pub filter: Option<&'a [u8]>,
    pub key: Option<[u8; 16]>,
}

/// Appends a record to `buf`. `header` writes the content header and
/// returns its length (it may add to what the publisher sent).
pub fn put_record(
    buf: &mut BytesMut,
    delta: u32,
    exchange: &[u8],
    routing_key: &[u8],
    extras: Extras<'_>,
    header: impl FnOnce(&mut BytesMut),
    body: &[u8],
) {
    let start = buf.len();
    let exchange = &exchange[..exchange.len().min(255)];
    let routing_key = &routing_key[..routing_key.len().min(255)];
    let mut flags = 0;
    if extras.filter.is_some() {
        flags |= HAS_FILTER;
    }
    if extras.key.is_some() {
        flags |= HAS_KEY;
    }
    buf.put_u32(0);
    buf.put_u32(delta);
    buf.put_u8(flags);
    buf.put_u8(exchange.len() as u8);
    buf.put_u8(routing_key.len() as u8);
    let header_len_at = buf.len();
    buf.put_u32(0);
    if let Some(f) = extras.filter {
        let f = &f[..f.len().min(MAX_FILTER)];
        buf.put_u8(f.len() as u8);
        buf.put_slice(f);
    }
    if let Some(k) = extras.key {
        buf.put_slice(&k);
    }
    buf.put_slice(exchange);
    buf.put_slice(routing_key);
    let header_at = buf.len();
    header(buf);
    let header_len = (buf.len() - header_at) as u32;
    buf[header_len_at..header_len_at + 4].copy_from_slice(&header_len.to_be_bytes());
    buf.put_slice(body);
    let len = (buf.len() - start - 4) as u32;
    buf[start..start + 4].copy_from_slice(&len.to_be_bytes());
}

/// One record of a chunk, as slices of the chunk's bytes.
#[derive(Debug, Clone)]
pub struct Record {
    pub offset: u64,
    pub filter: Option<Bytes>,
    pub key: Option<[u8; 16]>,
    /// Exchange, routing key and content header, back to back.
    pub meta: Bytes,
    pub exchange_len: u8,
    pub routing_key_len: u8,
    pub body: Bytes,
}

impl Record {
    pub fn header(&self) -> &[u8] {
        &self.meta[usize::from(self.exchange_len) + usize::from(self.routing_key_len)..]
    }
}

/// Reads the record at `*at` of `records` (a chunk's record bytes, the
/// chunk starting at `first`) and moves `*at` past it; None at the end or
/// on a malformed record (the chunk's CRC was checked: a bug, not disk rot).
pub fn next_record(records: &Bytes, first: u64, at: &mut usize) -> Option<Record> {
    let b = records.get(*at..)?;
    if b.len() < RECORD_FIXED {
        return None;
    }
    let len = u32::from_be_bytes(b[0..4].try_into().ok()?) as usize;
    if len + 4 > b.len() || len + 4 < RECORD_FIXED {
        return None;
    }
    let delta = u32::from_be_bytes(b[4..8].try_into().ok()?);
    let (flags, ex_len, rk_len) = (b[8], b[9], b[10]);
    let header_len = u32::from_be_bytes(b[11..15].try_into().ok()?) as usize;
    let mut p = RECORD_FIXED;
    let filter = if flags & HAS_FILTER != 0 {
        let n = usize::from(*b.get(p)?);
        p += 1 + n;
        Some(*at + p - n..*at + p)
    } else {
        None
    };
    let key = if flags & HAS_KEY != 0 {
        p += 16;
        Some(b.get(p - 16..p)?.try_into().ok()?)
    } else {
        None
    };
    let meta_len = usize::from(ex_len) + usize::from(rk_len) + header_len;
    if p + meta_len > len + 4 {
        return None;
    }
    let base = *at;
    *at += len + 4;
    Some(Record {
        offset: first + u64::from(delta),
        filter: filter.map(|r| records.slice(r)),
        key,
        meta: records.slice(base + p..base + p + meta_len),
        exchange_len: ex_len,
        routing_key_len: rk_len,
        body: records.slice(base + p + meta_len..base + len + 4),
    })
}

/// A record as compaction sees it: its offset, key hash and raw bytes.
pub type RawRecord<'a> = (u64, Option<[u8; 16]>, &'a [u8]);

/// The record at `*at` as raw bytes (for compaction's copy), with its offset.
pub fn raw_record<'a>(records: &'a [u8], first: u64, at: &mut usize) -> Option<RawRecord<'a>> {
    let b = records.get(*at..)?;
    if b.len() < RECORD_FIXED {
        return None;
    }
    let len = u32::from_be_bytes(b[0..4].try_into().ok()?) as usize;
    let raw = b.get(..len + 4)?;
    let delta = u32::from_be_bytes(b[4..8].try_into().ok()?);
    let flags = b[8];
    let mut p = RECORD_FIXED;
    if flags & HAS_FILTER != 0 {
        p += 1 + usize::from(*b.get(p)?);
    }
    let key = if flags & HAS_KEY != 0 { Some(b.get(p..p + 16)?.try_into().ok()?) } else { None };
    *at += len + 4;
    Some((first + u64::from(delta), key, raw))
}

/// Rewrites the delta of a raw record (copied into a chunk of another first offset).
pub fn set_delta(raw: &mut [u8], delta: u32) {
    raw[4..8].copy_from_slice(&delta.to_be_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_with_and_without_extras() {
        let mut buf = BytesMut::new();
        put_record(&mut buf, 0, b"ex", b"rk", Extras::default(), |b| b.put_slice(b"HDR"), b"body");
        let extras = Extras { filter: Some(b"blue"), key: Some([7; 16]) };
        put_record(&mut buf, 3, b"", b"k", extras, |b| b.put_slice(b"H2"), b"");
        let all = buf.freeze();
        let mut at = 0;
        let a = next_record(&all, 100, &mut at).unwrap();
        assert_eq!(
            (a.offset, &a.meta[..], &a.body[..], a.header()),
            (100, &b"exrkHDR"[..], &b"body"[..], &b"HDR"[..])
        );
        assert!(a.filter.is_none() && a.key.is_none());
        let b = next_record(&all, 100, &mut at).unwrap();
        assert_eq!((b.offset, b.filter.as_deref(), b.key), (103, Some(&b"blue"[..]), Some([7; 16])));
        assert_eq!((b.header(), &b.body[..]), (&b"H2"[..], &b""[..]));
        assert!(next_record(&all, 100, &mut at).is_none());
        let mut at = 0;
        let (o1, k1, r1) = raw_record(&all, 100, &mut at).unwrap();
        let (o2, k2, _) = raw_record(&all, 100, &mut at).unwrap();
        assert_eq!((o1, k1, o2, k2), (100, None, 103, Some([7; 16])));
        assert_eq!((at, &r1[4..8]), (all.len(), &[0u8, 0, 0, 0][..]));
    }

    #[test]
    fn headers_round_trip_and_torn_ones_are_refused() {
        let mut h =
            ChunkHeader { first: 42, span: 3, count: 2, timestamp: 1_700_000_000_000, len: 9, crc: 0 };
        h.crc = h.checksum(b"123456789");
        let back = ChunkHeader::decode(&h.encode()).unwrap();
        assert_eq!(back, h);
        assert_eq!(back.checksum(b"123456789"), h.crc);
        assert_ne!(back.checksum(b"123456780"), h.crc);
        assert!(ChunkHeader::decode(&[0; HEADER_LEN]).is_none());
        assert!(ChunkHeader::decode(&h.encode()[..20]).is_none());
    }

    #[test]
    fn truncated_records_are_not_read() {
        let mut buf = BytesMut::new();
        put_record(&mut buf, 0, b"e", b"r", Extras::default(), |b| b.put_slice(b"h"), b"body");
        for cut in 0..buf.len() {
            let part = Bytes::copy_from_slice(&buf[..cut]);
            assert!(next_record(&part, 0, &mut 0).is_none(), "cut at {cut}");
        }
    }
}
