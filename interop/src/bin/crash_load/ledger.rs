//! What the clients know: every message published, confirmed and settled,
//! and the figures the checks add up. Message ids are (publisher, seq);
//! the body carries them, with the target queue and priority.

use std::collections::{HashMap, HashSet};

/// The queues of the workload, by index.
pub const QUEUES: [&str; 5] = ["crash-plain", "crash-paged", "crash-prio", "crash-ttl", "crash-dlq"];
pub const PLAIN: usize = 0;
pub const PAGED: usize = 1;
pub const PRIO: usize = 2;
pub const TTL: usize = 3;
pub const DLQ: usize = 4;

pub fn id(publisher: u32, seq: u32) -> u64 {
    (u64::from(publisher) << 32) | u64::from(seq)
}

pub fn publisher_of(id: u64) -> u32 {
    (id >> 32) as u32
}

pub fn seq_of(id: u64) -> u32 {
    id as u32
}

/// `publisher:seq:queue:priority:` then padding to `size` bytes.
pub fn body(publisher: u32, seq: u32, queue: usize, prio: u8, size: usize) -> Vec<u8> {
    let mut b = format!("{publisher}:{seq}:{queue}:{prio}:").into_bytes();
    b.resize(size.max(b.len()), b'x');
    b
}

/// A message read back: its id, target queue and priority.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tag {
    pub id: u64,
    pub queue: usize,
    pub prio: u8,
}

pub fn parse(body: &[u8]) -> Option<Tag> {
    let mut parts = body.splitn(5, |b| *b == b':');
    let mut next = || std::str::from_utf8(parts.next()?).ok();
    let publisher: u32 = next()?.parse().ok()?;
    let seq: u32 = next()?.parse().ok()?;
    let queue: usize = next()?.parse().ok()?;
    let prio: u8 = next()?.parse().ok()?;
    Some(Tag { id: id(publisher, seq), queue, prio })
}

#[derive(Debug, Default)]
pub struct Ledger {
    /// Sent (confirmed or not).
    pub published: u64,
    /// Confirmed with basic.ack.
    pub confirmed: HashSet<u64>,
    pub nacked: u64,
    /// Acked in a transaction whose commit-ok arrived: must never come back.
    pub committed: HashSet<u64>,
    /// Acked in a transaction whose commit was cut by the crash.
    pub uncertain: HashSet<u64>,
    /// Acked outside a transaction (no answer to wait for): may come back.
    pub plain_acked: HashSet<u64>,
    /// Settled for the checks: committed, plain-acked, uncertain ones not
    /// seen again, or already reported lost.
    pub settled: HashSet<u64>,
    /// Committed acks seen again while the load ran.
    pub resurrected_live: Vec<u64>,
}

impl Ledger {
    pub fn commit(&mut self, ids: &[u64]) {
        for id in ids {
            self.uncertain.remove(id);
            self.committed.insert(*id);
            self.settled.insert(*id);
        }
    }

    /// A delivery to a load consumer: it must not be a committed ack.
    pub fn delivered(&mut self, id: u64) {
        if self.committed.contains(&id) {
            self.resurrected_live.push(id);
        }
    }
}

/// The figures over all cycles.
#[derive(Debug, Default)]
pub struct Totals {
    pub cycles: u32,
    pub lost: Vec<(u32, u64)>,
    /// Lost between the TTL queue and its dead-letter queue: dead-lettering
    /// is at-most-once, as in RabbitMQ's classic queues. Counted apart.
    pub lost_dead_lettering: Vec<(u32, u64)>,
    pub resurrected: Vec<(u32, u64)>,
    /// The same message twice in one queue at once.
    pub duplicates: Vec<(u32, u64)>,
    /// In the TTL queue and in its dead-letter queue at once.
    pub dead_letter_duplicates: u64,
    /// Messages dead-lettered twice across a crash (allowed: at-least-once).
    pub dlq_duplicates: u64,
    /// Out of publish order within a queue (per publisher and priority).
    pub order_violations: Vec<(u32, String)>,
    pub dlq_order_violations: Vec<(u32, String)>,
    /// Plain (non-tx) acks and cut commits whose messages came back: allowed.
    pub back_after_plain_ack: u64,
    pub back_after_uncertain_ack: u64,
    /// Published but not confirmed before the kill, found after it: allowed.
    pub unconfirmed_survived: u64,
    /// In a queue they were not published to (dead-lettering aside).
    pub misplaced: u64,
    pub restart_ms: Vec<u64>,
    pub recovery_ms: Vec<u64>,
    pub verified: u64,
}

pub fn min_median_max(v: &[u64]) -> String {
    if v.is_empty() {
        return "n/a".into();
    }
    let mut s = v.to_vec();
    s.sort_unstable();
    format!("{} / {} / {}", s[0], s[s.len() / 2], s[s.len() - 1])
}

/// Order and duplicate checks over one queue's contents, in delivery order.
pub struct OrderCheck {
    last: HashMap<(u32, u8), u32>,
    seen: HashSet<u64>,
}

impl OrderCheck {
    pub fn new() -> OrderCheck {
        OrderCheck { last: HashMap::new(), seen: HashSet::new() }
    }

    /// Returns whether it is a duplicate, and the seq it came after if out of order.
    pub fn see(&mut self, t: Tag, by_priority: bool) -> (bool, Option<u32>) {
        if !self.seen.insert(t.id) {
            return (true, None);
        }
        let key = (publisher_of(t.id), if by_priority { t.prio } else { 0 });
        let seq = seq_of(t.id);
        let out = self.last.get(&key).filter(|last| **last > seq).copied();
        self.last.insert(key, seq);
        (false, out)
    }
}
