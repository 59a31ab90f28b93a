//! The key and value layouts of the RocksDB store (the table in `rocks.rs`).

use crate::store::records::Writer;
use crate::store::{BindingRecord, IndexEntry, Op};

pub(super) fn name_key(vhost: &str, name: &str) -> Vec<u8> {
    let mut w = Writer::default();
    w.str(vhost).str(name);
    w.0
}

pub(super) fn binding_key(b: &BindingRecord) -> Vec<u8> {
    let mut w = Writer::default();
    w.str(&b.vhost).str(&b.source).flag(b.to_queue).str(&b.destination).str(&b.key).table(&b.arguments);
    w.0
}

/// A key of `meta` naming a queue or lane: `prefix`, then the id, u64 BE
/// (read back by `RocksStore::meta_numbers`).
pub(in crate::store) fn meta_key(prefix: u8, id: u64) -> [u8; 9] {
    let mut k = [prefix; 9];
    k[1..].copy_from_slice(&id.to_be_bytes());
    k
}

/// A page lane's read-back frontier, in `meta`.
pub(super) fn frontier_key(lane: u64) -> [u8; 9] {
    meta_key(b'f', lane)
}

/// A queue's delivery mark (`Op::Delivered`), in `meta`.
pub(super) fn delivered_key(queue: u64) -> [u8; 9] {
    meta_key(b'd', queue)
}

pub(super) fn index_key(queue: u64, seq: u64) -> [u8; 16] {
    let mut k = [0u8; 16];
    k[..8].copy_from_slice(&queue.to_be_bytes());
    k[8..].copy_from_slice(&seq.to_be_bytes());
    k
}

pub(super) const INDEX_VALUE: usize = 26;

/// Runs of removes at least this long become range deletes.
pub(super) const RANGE_MIN: usize = 16;

/// Messages (true) or places of a queue and lane.
type RunKind = (bool, u64, Option<u8>);

/// What must stay the same along a run of deletions the store writes as
/// one range delete (places of one queue and lane; messages), and the key
/// that counts up by one along it (a seq; an id).
pub(super) fn run_key(op: &Op) -> Option<(RunKind, u64)> {
    match op {
        Op::Remove { queue, seq, lane } => Some(((false, *queue, *lane), *seq)),
        Op::DeleteMessage { id } => Some(((true, 0, None), *id)),
        _ => None,
    }
}

/// How many of the ops at the front delete consecutive keys of one kind,
/// adjacent in the batch (so nothing between them could have written one
/// of them again; the writer puts a batch's deletions side by side).
pub(super) fn deletion_run(ops: &[Op]) -> usize {
    let Some((kind, first)) = ops.first().and_then(run_key) else { return 0 };
    let next = |i: usize| first.checked_add(i as u64).map(|key| (kind, key));
    ops.iter().enumerate().take_while(|(i, op)| run_key(op) == next(*i)).count()
}

pub(super) fn index_value(e: &IndexEntry) -> [u8; INDEX_VALUE] {
    let mut v = [0u8; INDEX_VALUE];
    v[..8].copy_from_slice(&e.message.to_be_bytes());
    v[8] = e.flags;
    v[9..13].copy_from_slice(&e.size.to_be_bytes());
    v[13..21].copy_from_slice(&e.expires.to_be_bytes());
    v[21] = e.lane;
    v[22..].copy_from_slice(&e.returns.to_be_bytes());
    v
}

/// An index entry from its key and value (a value flagged `INLINE` goes on
/// with its message, which this does not read); None if either is malformed.
pub(super) fn index_entry(k: &[u8], v: &[u8]) -> Option<(u64, IndexEntry)> {
    let be = |b: &[u8]| b.try_into().ok().map(u64::from_be_bytes);
    let inline = v.get(8).is_some_and(|flags| flags & IndexEntry::INLINE != 0);
    if k.len() != 16 || v.len() < INDEX_VALUE || (v.len() > INDEX_VALUE) != inline {
        return None;
    }
    Some((
        be(&k[..8])?,
        IndexEntry {
            seq: be(&k[8..])?,
            message: be(&v[..8])?,
            flags: v[8],
            size: u32::from_be_bytes(v[9..13].try_into().ok()?),
            expires: be(&v[13..21])?,
            lane: v[21],
            returns: u32::from_be_bytes(v[22..26].try_into().ok()?),
        },
    ))
}
