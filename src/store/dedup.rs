//! Deduplication windows as stored: one record per remembered message id,
//! under its queue or exchange and the order it was remembered in, so the
//! oldest goes first and a deleted owner is one range delete.
//!
//! Key: vhost and name (length-prefixed), a kind byte (`q` queue, `e`
//! exchange), then the entry's seq, u64 big-endian. Value: the 128-bit
//! hash of the id, then when it expires (ms since the Unix epoch, 0 never),
//! both big-endian. Ids are kept hashed: a window costs the same whatever
//! the ids look like.

use std::sync::Arc;

use super::records::{Reader, Writer};

/// Whose window: a queue's or an exchange's.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DedupScope {
    pub vhost: Arc<str>,
    pub name: Arc<str>,
    pub queue: bool,
}

/// One remembered id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DedupEntry {
    pub seq: u64,
    pub hash: u128,
    /// Ms since the Unix epoch; 0 for never.
    pub expires: u64,
}

/// A window read back at start-up, its entries in seq order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DedupBacklog {
    pub vhost: String,
    pub name: String,
    pub queue: bool,
    pub entries: Vec<DedupEntry>,
}

pub fn prefix(s: &DedupScope) -> Vec<u8> {
    let mut w = Writer::default();
    w.str(&s.vhost).str(&s.name);
    w.0.push(if s.queue { b'q' } else { b'e' });
    w.0
}

pub fn key(s: &DedupScope, seq: u64) -> Vec<u8> {
    let mut k = prefix(s);
    k.extend_from_slice(&seq.to_be_bytes());
    k
}

/// A key past every key of `prefix` (each has exactly 8 bytes after it).
pub fn end_key(prefix: &[u8]) -> Vec<u8> {
    let mut k = prefix.to_vec();
    k.extend_from_slice(&[0xff; 9]);
    k
}

pub fn value(e: &DedupEntry) -> [u8; 24] {
    let mut v = [0u8; 24];
    v[..16].copy_from_slice(&e.hash.to_be_bytes());
    v[16..].copy_from_slice(&e.expires.to_be_bytes());
    v
}

/// (vhost, name, queue, entry) from a key and value; None if malformed.
pub fn parse(k: &[u8], v: &[u8]) -> Option<(String, String, bool, DedupEntry)> {
    let mut r = Reader(k);
    let (vhost, name) = (r.str()?, r.str()?);
    let (&kind, rest) = r.0.split_first()?;
    let seq = u64::from_be_bytes(rest.try_into().ok()?);
    let hash = u128::from_be_bytes(v.get(..16)?.try_into().ok()?);
    let expires = u64::from_be_bytes(v.get(16..24)?.try_into().ok()?);
    Some((vhost, name, kind == b'q', DedupEntry { seq, hash, expires }))
}

/// Appends an entry read back to the backlogs (entries arrive in key order).
pub fn push(backlogs: &mut Vec<DedupBacklog>, (vhost, name, queue, e): (String, String, bool, DedupEntry)) {
    match backlogs.last_mut() {
        Some(b) if b.vhost == vhost && b.name == name && b.queue == queue => b.entries.push(e),
        _ => backlogs.push(DedupBacklog { vhost, name, queue, entries: vec![e] }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_round_trip_and_sort_by_seq_within_their_owner() {
        let s = DedupScope { vhost: "/".into(), name: "q".into(), queue: true };
        let e = DedupEntry { seq: 7, hash: u128::MAX - 3, expires: 99 };
        assert_eq!(parse(&key(&s, 7), &value(&e)), Some(("/".into(), "q".into(), true, e)));
        assert!(key(&s, 1) < key(&s, 2) && key(&s, u64::MAX) < end_key(&prefix(&s)));
        let x = DedupScope { queue: false, ..s.clone() };
        assert!(!key(&x, 1).starts_with(&prefix(&s)));
    }
}
