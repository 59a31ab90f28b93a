//! Delayed messages as stored: one record per message, keyed by its
//! exchange and then by when it is due, so an exchange's next-due messages
//! are one forward read and dropping an exchange is one range delete.
//!
//! Key: vhost and exchange names (length-prefixed, so no exchange's key
//! is a prefix of another's), due time (ms since the Unix epoch) and a
//! sequence number, both u64 big-endian. Value: the boot it belongs to
//! (0 for a persistent message of a durable exchange; a transient one is
//! written only to keep memory flat, and dropped when read back by a later
//! run), then the `MessageRecord`.

use std::sync::Arc;

use super::records::{Reader, Writer};
use super::{MessageRecord, SharedRecord};

/// Where one delayed message waits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DelayedAt {
    pub vhost: Arc<str>,
    pub exchange: Arc<str>,
    pub due: u64,
    pub seq: u64,
}

/// A delayed message read back.
#[derive(Debug, Clone, PartialEq)]
pub struct Delayed {
    pub due: u64,
    pub seq: u64,
    /// 0: kept across restarts; else the run that wrote it.
    pub boot: u64,
    pub record: MessageRecord,
}

/// What is on disk for one exchange at start-up.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DelayedBacklog {
    pub vhost: String,
    pub exchange: String,
    /// Messages kept across restarts (transient ones of an earlier run are
    /// dropped as they are read back, and not counted).
    pub count: u64,
}

pub fn prefix(vhost: &str, exchange: &str) -> Vec<u8> {
    let mut w = Writer::default();
    w.str(vhost).str(exchange);
    w.0
}

pub fn key(at: &DelayedAt) -> Vec<u8> {
    let mut k = prefix(&at.vhost, &at.exchange);
    k.extend_from_slice(&at.due.to_be_bytes());
    k.extend_from_slice(&at.seq.to_be_bytes());
    k
}

/// The first key of `prefix` at or after (`due`, `seq`).
pub fn from_key(prefix: &[u8], due: u64, seq: u64) -> Vec<u8> {
    let mut k = prefix.to_vec();
    k.extend_from_slice(&due.to_be_bytes());
    k.extend_from_slice(&seq.to_be_bytes());
    k
}

/// A key past every key of `prefix` (each has exactly 16 bytes after it).
pub fn end_key(prefix: &[u8]) -> Vec<u8> {
    let mut k = prefix.to_vec();
    k.extend_from_slice(&[0xff; 17]);
    k
}

/// (vhost, exchange, due, seq) from a key; None if malformed.
pub fn parse_key(k: &[u8]) -> Option<(String, String, u64, u64)> {
    let mut r = Reader(k);
    let (vhost, exchange) = (r.str()?, r.str()?);
    let due = r.u64()?;
    let seq = r.u64()?;
    r.done().then_some((vhost, exchange, due, seq))
}

/// Counts a record read back at start-up into the backlogs (records
/// arrive in key order, so an exchange's are together); `kept`: it
/// survives restarts (boot 0).
pub fn count(backlogs: &mut Vec<DelayedBacklog>, vhost: String, exchange: String, kept: bool) {
    match backlogs.last_mut() {
        Some(b) if b.vhost == vhost && b.exchange == exchange => b.count += u64::from(kept),
        _ => backlogs.push(DelayedBacklog { vhost, exchange, count: u64::from(kept) }),
    }
}

pub fn encode_value(boot: u64, record: &SharedRecord, out: &mut Vec<u8>) {
    out.extend_from_slice(&boot.to_be_bytes());
    record.encode_into(out);
}

/// The boot of a value (its first 8 bytes).
pub fn boot_of(v: &[u8]) -> Option<u64> {
    Some(u64::from_be_bytes(v.get(..8)?.try_into().ok()?))
}

/// A value read back; a damaged record comes back empty (its message is
/// dropped when due) rather than failing every read after it.
pub fn decode(due: u64, seq: u64, v: &bytes::Bytes) -> Delayed {
    let boot = boot_of(v).unwrap_or(0);
    let record = MessageRecord::decode_shared(&v.slice(8.min(v.len())..)).unwrap_or_default();
    Delayed { due, seq, boot, record }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_sort_by_due_time_within_an_exchange_and_round_trip() {
        let at = |x: &str, due, seq| DelayedAt { vhost: "/".into(), exchange: x.into(), due, seq };
        assert!(key(&at("x", 5, 9)) < key(&at("x", 6, 1)));
        assert!(key(&at("x", 6, 1)) < key(&at("x", 6, 2)));
        assert!(key(&at("x", u64::MAX, u64::MAX)) < end_key(&prefix("/", "x")));
        assert!(!key(&at("xy", 0, 0)).starts_with(&prefix("/", "x")));
        assert_eq!(parse_key(&key(&at("x", 7, 8))), Some(("/".into(), "x".into(), 7, 8)));
        assert_eq!(parse_key(&key(&at("x", 7, 8))[..20]), None);
    }
}
