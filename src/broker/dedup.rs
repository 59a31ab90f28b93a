//! Message deduplication, as LavinMQ's: a queue or exchange declared with
//! `x-message-deduplication: true` remembers the ids of the messages it
//! took (the value of the header named by `x-deduplication-header`, by
//! default `x-deduplication-header`) and drops a message whose id it
//! remembers. `x-cache-size` bounds how many ids (128 by default, the
//! oldest go first), `x-cache-ttl` (ms) how long each is remembered (a
//! message's own `x-cache-ttl` header overrides it; none: until pushed out).
//!
//! Unlike LavinMQ's, the window survives restarts and crashes: an id a
//! persistent message brought to a durable owner is written to the store,
//! after the message's own writes (the id is written only if the message
//! is), so a publish confirmed before a crash and retried after it is
//! dropped as a duplicate. Ids are kept as 128-bit hashes (SHA-256, cut):
//! about 100 bytes of memory per remembered id (a hash map slot and a queue
//! slot) whatever the ids look like.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use amq_protocol::types::{AMQPValue, FieldTable};
use parking_lot::Mutex;
use rustc_hash::FxHashMap;
use sha2::{Digest, Sha256};

use super::message::Message;
use super::queue::now_ms;
use crate::protocol::table::{as_int, as_str, type_name};
use crate::protocol::AmqpError;
use crate::store::{DedupEntry, DedupScope, Op, StoreHandle};

/// LavinMQ's defaults.
const DEFAULT_HEADER: &str = "x-deduplication-header";
const DEFAULT_SIZE: u64 = 128;
/// The largest window: 10 million ids, about 1 GB.
pub const MAX_SIZE: i64 = 10_000_000;

/// What a declare's arguments ask for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    header: String,
    size: usize,
    ttl: Option<u64>,
}

/// Checks the deduplication arguments of a queue or exchange (`owner`
/// names it in the 406 texts); None if it does not deduplicate.
pub fn settings(args: &FieldTable, owner: &str) -> Result<Option<Settings>, AmqpError> {
    let invalid = |key: &str, why: String| {
        AmqpError::precondition_failed(format!("invalid arg '{key}' for {owner}: {why}"))
    };
    let int = |key: &str| -> Result<Option<i64>, AmqpError> {
        let Some(v) = args.inner().get(key) else { return Ok(None) };
        let n =
            as_int(v).ok_or_else(|| invalid(key, format!("expected an integer, got {}", type_name(v))))?;
        if n < 0 {
            return Err(invalid(key, format!("{n} is negative")));
        }
        Ok(Some(n))
    };
    let size = int("x-cache-size")?;
    if let Some(n) = size.filter(|n| *n > MAX_SIZE) {
        return Err(invalid("x-cache-size", format!("{n} is over the largest window, {MAX_SIZE}")));
    }
    let ttl = int("x-cache-ttl")?;
    let header = match args.inner().get("x-deduplication-header") {
        None => DEFAULT_HEADER.to_owned(),
        Some(v) => match as_str(v) {
            Some(s) if !s.is_empty() => s.to_owned(),
            _ => {
                return Err(invalid(
                    "x-deduplication-header",
                    format!("expected a header name, got {}", type_name(v)),
                ))
            }
        },
    };
    let on = match args.inner().get("x-message-deduplication") {
        None => false,
        Some(AMQPValue::Boolean(b)) => *b,
        Some(v) => {
            return Err(invalid(
                "x-message-deduplication",
                format!("expected a boolean, got {}", type_name(v)),
            ))
        }
    };
    Ok(on.then(|| Settings {
        header,
        size: size.map_or(DEFAULT_SIZE, |n| n.max(1) as u64) as usize,
        ttl: ttl.map(|n| n as u64),
    }))
}

/// What `admit` needs of a message.
#[derive(Debug, Clone, Copy)]
pub struct Key {
    id: Option<u128>,
    ttl: Option<u64>,
    persistent: bool,
}

/// One queue's or exchange's window.
#[derive(Debug)]
pub struct Deduper {
    scope: DedupScope,
    settings: Settings,
    /// Where ids of persistent messages go, if the owner is durable.
    store: Option<StoreHandle>,
    /// Held while a message is looked up, handed on and remembered, so a
    /// second publish of the same id waits for the first's outcome (and
    /// for its writes to be submitted ahead of its own confirm's barrier).
    window: Mutex<Window>,
    hits: AtomicU64,
}

#[derive(Debug, Default)]
struct Window {
    /// Id hash → (seq, expires).
    ids: FxHashMap<u128, (u64, u64)>,
    /// Oldest first: (seq, hash, written to the store). A slot whose id was
    /// remembered again later (after it expired) is stale.
    order: VecDeque<(u64, u128, bool)>,
    next_seq: u64,
    /// The owner was deleted: nothing more is remembered or written.
    dropped: bool,
}

impl Window {
    /// Whether `id` is remembered and not expired.
    fn holds(&self, id: u128, now: u64) -> bool {
        self.ids.get(&id).is_some_and(|(_, expires)| *expires == 0 || *expires > now)
    }

    /// Pushes the oldest ids out while more than `size` are remembered (or
    /// stale slots pile up); returns the seqs of written ones.
    fn trim(&mut self, size: usize) -> Vec<u64> {
        let mut gone = Vec::new();
        while self.ids.len() > size || self.order.len() > size.saturating_mul(2) {
            let Some((old, h, was_written)) = self.order.pop_front() else { break };
            if self.ids.get(&h).is_some_and(|(s, _)| *s == old) {
                self.ids.remove(&h);
            }
            if was_written {
                gone.push(old);
            }
        }
        gone
    }
}

impl Deduper {
    pub fn new(scope: DedupScope, settings: Settings, store: Option<StoreHandle>) -> Deduper {
        Deduper { scope, settings, store, window: Mutex::default(), hits: AtomicU64::new(0) }
    }

    /// Messages dropped as duplicates.
    pub fn hits(&self) -> u64 {
        self.hits.load(Ordering::Relaxed)
    }

    /// Ids remembered now.
    pub fn remembered(&self) -> usize {
        self.window.lock().ids.len()
    }

    /// What the window needs of a message: its id, TTL and persistence.
    /// Taken before the message is handed on (`admit`).
    pub fn key_of(&self, message: &Message) -> Key {
        Key { id: self.id_of(message), ttl: self.ttl_of(message), persistent: message.info.persistent() }
    }

    /// None if the message `key` is of is a duplicate (counted). Else runs
    /// `hand_on` with the window held (a second publish of the id waits
    /// for the first's outcome), which says whether the message was taken
    /// (routed, queued: not refused; None) and if so whether it was
    /// written to the store (Some(on disk)). Its id is remembered if it was
    /// taken, and written after whatever `hand_on` submitted if the message
    /// was: a crash keeps the id only with the message. For an exchange:
    /// queues remember theirs under their own lock (`seen`, `remember`).
    pub fn admit<R>(&self, key: Key, hand_on: impl FnOnce() -> (R, Option<bool>)) -> Option<R> {
        let Some(id) = key.id else { return Some(hand_on().0) };
        let mut w = self.window.lock();
        if w.holds(id, now_ms()) {
            drop(w);
            self.hits.fetch_add(1, Ordering::Relaxed);
            return None;
        }
        let (out, taken) = hand_on();
        if let Some(on_disk) = taken {
            self.insert(&mut w, id, key, on_disk);
        }
        Some(out)
    }

    /// Whether the message `key` is of is a duplicate (counted).
    pub fn seen(&self, key: &Key) -> bool {
        let Some(id) = key.id else { return false };
        let seen = self.window.lock().holds(id, now_ms());
        if seen {
            self.hits.fetch_add(1, Ordering::Relaxed);
        }
        seen
    }

    /// Remembers the id of a message that was taken, `written` or not.
    pub fn remember(&self, key: Key, written: bool) {
        if let Some(id) = key.id {
            self.insert(&mut self.window.lock(), id, key, written);
        }
    }

    fn insert(&self, w: &mut Window, id: u128, key: Key, on_disk: bool) {
        if w.dropped {
            return;
        }
        let written = self.store.is_some() && key.persistent && on_disk;
        let now = now_ms();
        let seq = w.next_seq;
        w.next_seq += 1;
        let expires = key.ttl.map_or(0, |t| now.saturating_add(t).max(1));
        w.ids.insert(id, (seq, expires));
        w.order.push_back((seq, id, written));
        let gone = w.trim(self.settings.size);
        if let Some(store) = &self.store {
            for old in gone {
                store.submit(Op::DeleteDedup(self.scope.clone(), old));
            }
            if written {
                store.submit(Op::PutDedup(self.scope.clone(), DedupEntry { seq, hash: id, expires }));
            }
        }
    }

    /// The hash of the message's id, if it carries one.
    fn id_of(&self, message: &Message) -> Option<u128> {
        let table = message.info.headers.map(|r| &message.header()[r.range()])?;
        crate::protocol::table::find(table, self.settings.header.as_bytes()).map(id_hash)
    }

    /// The message's own `x-cache-ttl`, else the owner's.
    fn ttl_of(&self, message: &Message) -> Option<u64> {
        message
            .has_header(b"x-cache-ttl")
            .then(|| message.headers())
            .flatten()
            .and_then(|h| h.inner().get("x-cache-ttl").and_then(as_int))
            .filter(|n| *n >= 0)
            .map(|n| n as u64)
            .or(self.settings.ttl)
    }

    /// The window as an earlier run left it (entries in seq order).
    pub fn recovered(&self, entries: &[DedupEntry]) {
        let mut w = self.window.lock();
        for e in entries {
            w.ids.insert(e.hash, (e.seq, e.expires));
            w.order.push_back((e.seq, e.hash, true));
            w.next_seq = w.next_seq.max(e.seq + 1);
        }
        let gone = w.trim(self.settings.size);
        if let Some(store) = &self.store {
            for old in gone {
                store.submit(Op::DeleteDedup(self.scope.clone(), old));
            }
        }
    }

    /// Its owner was deleted: the window goes.
    pub fn drop_all(&self) {
        let mut w = self.window.lock();
        *w = Window { dropped: true, ..Window::default() };
        if let Some(store) = &self.store {
            store.submit(Op::DropDedup(self.scope.clone()));
        }
    }
}

/// An id as the hash of its value: a string's text whichever string type
/// carries it, else its type tag and encoding.
fn id_hash(raw: &[u8]) -> u128 {
    let bytes = match raw {
        [b'S', rest @ ..] if rest.len() >= 4 => &rest[4..],
        other => other,
    };
    let digest = Sha256::digest(bytes);
    u128::from_be_bytes(digest[..16].try_into().expect("16 of 32 bytes"))
}

/// A deduplicating owner's window, if its arguments ask for one.
pub fn for_owner(
    vhost: &str,
    name: &str,
    queue: bool,
    durable: bool,
    arguments: &FieldTable,
    store: Option<&StoreHandle>,
) -> Option<Arc<Deduper>> {
    let settings = settings(arguments, "").ok().flatten()?;
    let scope = DedupScope { vhost: vhost.into(), name: name.into(), queue };
    Some(Arc::new(Deduper::new(scope, settings, store.filter(|_| durable).cloned())))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(pairs: &[(&str, AMQPValue)]) -> FieldTable {
        let mut t = FieldTable::default();
        for (k, v) in pairs {
            t.insert((*k).into(), v.clone());
        }
        t
    }

    #[test]
    fn arguments_are_checked() {
        let on = ("x-message-deduplication", AMQPValue::Boolean(true));
        assert_eq!(settings(&args(&[]), "q").unwrap(), None);
        let s = settings(&args(std::slice::from_ref(&on)), "q").unwrap().unwrap();
        assert_eq!((s.header.as_str(), s.size, s.ttl), (DEFAULT_HEADER, 128, None));
        let s = settings(
            &args(&[
                on.clone(),
                ("x-cache-size", AMQPValue::LongInt(10)),
                ("x-cache-ttl", AMQPValue::LongInt(500)),
                ("x-deduplication-header", AMQPValue::LongString("msg-id".into())),
            ]),
            "q",
        )
        .unwrap()
        .unwrap();
        assert_eq!((s.header.as_str(), s.size, s.ttl), ("msg-id", 10, Some(500)));
        for bad in [
            args(&[("x-message-deduplication", AMQPValue::LongString("yes".into()))]),
            args(&[on.clone(), ("x-cache-size", AMQPValue::LongInt(-1))]),
            args(&[on.clone(), ("x-cache-size", AMQPValue::LongLongInt(MAX_SIZE + 1))]),
            args(&[on.clone(), ("x-cache-ttl", AMQPValue::LongString("1s".into()))]),
            args(&[on.clone(), ("x-deduplication-header", AMQPValue::LongInt(1))]),
        ] {
            let e = settings(&bad, "queue 'q' in vhost '/'").unwrap_err();
            assert!(e.text.contains("for queue 'q' in vhost '/'"), "{}", e.text);
        }
    }

    #[test]
    fn strings_hash_alike_whichever_type_carries_them() {
        assert_eq!(id_hash(b"S\x00\x00\x00\x02id"), id_hash(b"id"));
        assert_ne!(id_hash(b"I\x00\x00\x00\x01"), id_hash(b"I\x00\x00\x00\x02"));
    }
}

#[cfg(test)]
mod window {
    use bytes::Bytes;

    use super::*;
    use crate::protocol::properties::{encode_header, ContentHeader};

    fn message(id: &str, ttl: Option<i32>) -> Message {
        let mut h = FieldTable::default();
        h.insert(DEFAULT_HEADER.into(), AMQPValue::LongString(id.into()));
        if let Some(t) = ttl {
            h.insert("x-cache-ttl".into(), AMQPValue::LongInt(t));
        }
        let props = amq_protocol::protocol::basic::AMQPProperties::default().with_headers(h);
        let header = encode_header(0, &props);
        let info = ContentHeader::scan(&header).unwrap();
        Message::new(Bytes::new(), Bytes::new(), header, info, Bytes::new())
    }

    fn deduper(size: usize) -> Deduper {
        let scope = DedupScope { vhost: "/".into(), name: "q".into(), queue: true };
        Deduper::new(scope, Settings { header: DEFAULT_HEADER.into(), size, ttl: None }, None)
    }

    /// Offers `id`; whether it was taken (not a duplicate).
    fn offer(d: &Deduper, id: &str, ttl: Option<i32>, accept: bool) -> bool {
        let m = message(id, ttl);
        d.admit(d.key_of(&m), || ((), accept.then_some(false))).is_some()
    }

    #[test]
    fn refused_messages_are_not_remembered_and_the_oldest_go_first() {
        let d = deduper(2);
        assert!(offer(&d, "a", None, false), "a refused message is not a duplicate");
        assert!(offer(&d, "a", None, true), "and may come again");
        assert!(!offer(&d, "a", None, true));
        assert!(offer(&d, "b", None, true));
        assert!(offer(&d, "c", None, true));
        assert!(offer(&d, "a", None, true), "a was pushed out by b and c");
        assert!(!offer(&d, "c", None, true));
        assert_eq!(d.hits(), 2);
    }

    #[test]
    fn an_expired_id_sent_again_does_not_push_out_a_live_one() {
        let d = deduper(2);
        assert!(offer(&d, "x", None, true));
        assert!(offer(&d, "a", Some(1), true));
        std::thread::sleep(std::time::Duration::from_millis(5));
        assert!(offer(&d, "a", None, true), "a expired");
        assert!(!offer(&d, "x", None, true), "x is still remembered: two live ids fit");
        assert_eq!(d.remembered(), 2);
    }
}
