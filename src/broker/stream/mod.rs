//! A stream queue (`x-queue-type: stream`): an append-only log that
//! consumers read from offsets of their own, kept after it was read.
//!
//! Publishing appends to the log (`store/stream`); the store's writer
//! writes the chunk with its group commit, so a confirm follows the disk.
//! Each stream has one task that hands records to its consumers: woken
//! when a chunk is written and when a consumer gets credit back, it reads
//! chunks with `pread` and sends each consumer what its credit allows.
//! Acks only give credit back (and move a tracked offset on). Beyond
//! RabbitMQ over AMQP 0-9-1: offsets kept on the server per consumer tag
//! (LavinMQ's rules), negative offsets (the last N), a single active
//! consumer, exact filters, and key compaction.
//!
//! Lock order: the stream's `state`, then the log's own locks.

pub mod args;
pub mod header;
mod reader;
mod restore;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Weak};

use parking_lot::Mutex;

use super::consumer::Consumer;
use super::message::Message;
use super::queue::Queue;
use crate::protocol::AmqpError;
use crate::store::stream::chunk::Extras;
use crate::store::stream::{Log, Retention};
use crate::store::{Op, StoreHandle};
use args::{ConsumeArgs, Start};
use reader::Reader;

/// Where tracked offsets are kept: key `<queue id>/<consumer tag>`, value the next offset (u64 BE).
pub const OFFSETS_SPACE: &str = "stream-offsets";

/// Bytes appended but not yet written above which publishers pause.
const PENDING_HIGH: usize = 64 << 20;

/// Records handed to one consumer before the next gets a turn.
const TURN: usize = 256;

/// Turns the stream's task takes before it yields.
const PASSES: usize = 64;

/// Named consumers whose offsets one stream keeps (each is a RocksDB record);
/// past it, new names are not tracked.
const MAX_TRACKED: usize = 100_000;

/// How often the task looks at retention by age and tracked offsets.
const TICK: std::time::Duration = std::time::Duration::from_secs(1);

pub struct Stream {
    pub log: Arc<Log>,
    store: StoreHandle,
    /// The queue's id in the store (names its directory and its offsets).
    pub id: u64,
    queue: Weak<Queue>,
    state: Mutex<State>,
    wake: Arc<tokio::sync::Notify>,
    /// `x-single-active-consumer` (Warren: allowed on streams).
    single_active: bool,
    /// The header a message's compaction key is read from.
    compaction_key: Option<String>,
    /// Appends over `PENDING_HIGH` made publishers pause.
    congested: AtomicBool,
    /// Records compaction removed (for the admin API).
    pub compacted: AtomicU64,
    /// A compaction is running (on a thread of its own).
    compacting: AtomicBool,
    /// The number of segments when compaction last started.
    compacted_at: std::sync::atomic::AtomicUsize,
    /// Messages appended since start-up.
    published: AtomicU64,
}

impl std::fmt::Debug for Stream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stream").field("id", &self.id).finish()
    }
}

#[derive(Debug, Default)]
struct State {
    readers: Vec<Reader>,
    /// Tracked offsets: the next offset each named consumer reads.
    tracked: HashMap<String, u64>,
    /// Tracked offsets changed since they were last written.
    dirty: Vec<String>,
    deleted: bool,
}

impl Stream {
    /// Opens (or creates) the stream of queue `q`, with its id `id`, in
    /// `dir`, and starts its task.
    pub fn open(
        q: &Arc<Queue>,
        id: u64,
        store: StoreHandle,
        dir: &std::path::Path,
        retention: Retention,
    ) -> std::io::Result<Arc<Stream>> {
        let log = Log::open(&dir.join(id.to_string()), retention)?;
        let compaction_key = q
            .arguments
            .inner()
            .get("x-stream-compaction-key")
            .and_then(crate::protocol::table::as_str)
            .map(str::to_owned);
        let single_active = matches!(
            q.arguments.inner().get("x-single-active-consumer"),
            Some(amq_protocol::types::AMQPValue::Boolean(true))
        );
        let s = Arc::new(Stream {
            log,
            store,
            id,
            queue: Arc::downgrade(q),
            state: Mutex::new(State::default()),
            wake: Arc::new(tokio::sync::Notify::new()),
            single_active,
            compaction_key,
            congested: AtomicBool::new(false),
            compacted: AtomicU64::new(0),
            compacting: AtomicBool::new(false),
            compacted_at: std::sync::atomic::AtomicUsize::new(0),
            published: AtomicU64::new(0),
        });
        let wake = s.wake.clone();
        s.log.on_written(Box::new(move || wake.notify_one()));
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(run(Arc::downgrade(&s), s.wake.clone()));
        }
        Ok(s)
    }

    /// Appends a routed message; the writer is asked to write it.
    pub fn append(&self, m: &Message) -> bool {
        if self.log.is_deleted() {
            return true;
        }
        let filter = header_value(m, args::FILTER_VALUE.as_bytes());
        let key = self.compaction_key.as_ref().and_then(|k| raw_header(m, k.as_bytes())).map(key_hash);
        let extras = Extras { filter, key };
        let a = self.log.append(
            m.exchange(),
            m.routing_key(),
            extras,
            |offset, out| header::with_offset(m.header(), &m.info, offset, out),
            m.body(),
            || self.store.write_stream(self.log.clone()),
        );
        self.published.fetch_add(1, Ordering::Relaxed);
        if a.pending_bytes > PENDING_HIGH {
            self.congested.store(true, Ordering::Release);
        }
        true
    }

    /// Messages appended since start-up.
    pub fn published(&self) -> u64 {
        self.published.load(Ordering::Relaxed)
    }

    /// Whether publishers should pause (the disk is behind).
    pub fn is_congested(&self) -> bool {
        self.congested.load(Ordering::Acquire)
    }

    /// Adds a consumer (the channel checked prefetch and acks); it starts
    /// where its arguments say, or where its tracked offset is.
    pub fn add_consumer(&self, consumer: Arc<Consumer>, a: ConsumeArgs) -> Result<(), AmqpError> {
        let mut st = self.state.lock();
        if st.deleted {
            return Err(AmqpError::not_found("no queue (deleted)"));
        }
        if st.readers.iter().any(|r| r.consumer.exclusive) || (consumer.exclusive && !st.readers.is_empty()) {
            let (name, vhost) =
                self.queue.upgrade().map(|q| (q.name.clone(), q.vhost.clone())).unwrap_or_default();
            return Err(AmqpError::access_refused(format!(
                "queue '{name}' in vhost '{vhost}' in exclusive use"
            )));
        }
        let track = a.track && (st.tracked.len() < MAX_TRACKED || st.tracked.contains_key(&consumer.tag));
        let mut r = Reader::new(consumer, a.filter, track, a.start);
        let active = !self.single_active || st.readers.iter().all(|r| r.gone);
        if active {
            self.activate(&mut st, &mut r);
        }
        st.readers.push(r);
        drop(st);
        self.wake.notify_one();
        Ok(())
    }

    /// Positions a reader that starts delivering now.
    fn activate(&self, st: &mut State, r: &mut Reader) {
        if r.active {
            return;
        }
        r.active = true;
        let tracked = if r.track { st.tracked.get(&r.consumer.tag).copied() } else { None };
        let offset = match tracked {
            Some(o) => o,
            None => self.resolve(r.start),
        };
        r.seek(offset.max(self.log.first()));
    }

    /// Where a start spec points now.
    fn resolve(&self, start: Start) -> u64 {
        let (first, next) = (self.log.first(), self.log.written());
        match start {
            Start::First => first,
            Start::Last => self.log.last_chunk().unwrap_or(next).max(first),
            Start::Next => next,
            // Past the end: it waits there, as RabbitMQ's does.
            Start::Offset(o) => o.max(first),
            Start::Back(n) => next.saturating_sub(n).max(first),
            // A lookup that failed (its segment dropped meanwhile) starts early, not late.
            Start::Time(ts) => self.log.offset_at_time(ts).unwrap_or(first).max(first),
        }
    }

    /// Removes a consumer; with a single active consumer, the next waiting
    /// one takes over (from its tracked offset, or its own start).
    pub fn remove_consumer(&self, consumer: &Arc<Consumer>) -> usize {
        let mut st = self.state.lock();
        st.readers.retain(|r| !Arc::ptr_eq(&r.consumer, consumer));
        self.hand_over(&mut st);
        self.save_offsets(&mut st);
        let left = st.readers.len();
        drop(st);
        self.wake.notify_one();
        left
    }

    /// A delivery at `offset` was acknowledged: a tracked consumer's offset moves past it.
    pub fn acked(&self, consumer: &Consumer, offset: u64) {
        let mut st = self.state.lock();
        // A consumer gone since (acks may follow a cancel) moves its kept
        // offset on if it had one.
        let tracked = match st.readers.iter().find(|r| std::ptr::eq(Arc::as_ptr(&r.consumer), consumer)) {
            Some(r) => r.track,
            None => st.tracked.contains_key(&consumer.tag),
        };
        if !tracked {
            return;
        }
        let tag = &consumer.tag;
        let next = offset + 1;
        match st.tracked.get_mut(tag) {
            Some(o) if *o >= next => return,
            Some(o) => *o = next,
            None => {
                st.tracked.insert(tag.clone(), next);
            }
        }
        if !st.dirty.contains(tag) {
            st.dirty.push(tag.clone());
        }
    }

    /// Writes changed tracked offsets (coalesced: at most once a tick per
    /// consumer, and when it goes; a crash re-delivers what was acked since).
    fn save_offsets(&self, st: &mut State) {
        for tag in std::mem::take(&mut st.dirty) {
            if let Some(o) = st.tracked.get(&tag) {
                self.store.submit(Op::PutControl {
                    space: OFFSETS_SPACE.into(),
                    key: format!("{}/{tag}", self.id),
                    value: o.to_be_bytes().to_vec(),
                });
            }
        }
    }

    /// Offsets tracked before a restart.
    pub fn restore_offset(&self, tag: String, next: u64) {
        // Never past the end: after a power loss the log may have lost a
        // tail its readers had seen.
        self.state.lock().tracked.insert(tag, next.min(self.log.written()));
    }

    /// Credit came back: feeds consumers on the caller's thread (the
    /// connection that freed it, saving a hop to the stream's task) for one
    /// turn each, leaving the rest to the task; or, if a dispatch is running
    /// elsewhere, to the task at once.
    pub fn kick(&self) {
        match self.state.try_lock() {
            Some(st) => {
                if self.dispatch_with(st, 1) {
                    self.wake.notify_one();
                }
            }
            None => self.wake.notify_one(),
        }
    }

    /// Hands records to every active consumer while they have credit.
    fn dispatch(&self) {
        if self.dispatch_with(self.state.lock(), PASSES) {
            // Bounded: the task comes back for the rest after a yield.
            self.wake.notify_one();
        }
    }

    /// Up to `passes` turns over the active readers; true if there may be
    /// more to do (a reader delivered, or stopped at its turn's bound).
    fn dispatch_with(&self, mut st: parking_lot::MutexGuard<'_, State>, passes: usize) -> bool {
        let Some(queue) = self.queue.upgrade() else { return false };
        let mut more = false;
        for _ in 0..passes {
            more = false;
            let mut failed = false;
            for r in st.readers.iter_mut().filter(|r| r.active && !r.gone) {
                match r.pump(&self.log, &queue, TURN) {
                    Ok(p) => more |= p.delivered > 0 || p.more,
                    Err(e) => {
                        tracing::error!(queue = %queue.name, "cannot read a stream: {e}");
                        // Cancelled, so its client knows.
                        r.gone = true;
                        r.consumer.cancel();
                        r.consumer.notify_cancelled();
                        failed = true;
                    }
                }
            }
            if failed {
                // Gone for good: a waiting single active consumer takes over.
                st.readers.retain(|r| !(r.gone && r.consumer.is_cancelled()));
                self.hand_over(&mut st);
                more = true;
            }
            if !more {
                break;
            }
        }
        more
    }

    /// With a single active consumer and none active, the first waiting one starts.
    fn hand_over(&self, st: &mut State) {
        if !self.single_active || st.readers.iter().any(|r| r.active && !r.gone) {
            return;
        }
        if let Some(mut next) = st.readers.iter().position(|r| !r.gone).map(|i| st.readers.remove(i)) {
            self.activate(st, &mut next);
            st.readers.insert(0, next);
        }
    }

    /// The task's periodic work: retention by age and tracked offsets.
    fn tick(&self) {
        self.log.retain();
        self.forget_old_offsets();
        let mut st = self.state.lock();
        self.save_offsets(&mut st);
    }

    /// Starts a key compaction on a thread of its own unless one runs:
    /// readers go on reading meanwhile.
    fn compact(self: &Arc<Self>) {
        if self.compaction_key.is_none() || self.compacting.swap(true, Ordering::AcqRel) {
            return;
        }
        let s = self.clone();
        let spawned = std::thread::Builder::new().name("warren-stream-compact".into()).spawn(move || {
            match s.log.compact_keys() {
                Ok(c) => {
                    s.compacted.fetch_add(c.removed, Ordering::Relaxed);
                }
                Err(e) => tracing::warn!(stream = s.id, "compaction failed: {e}"),
            }
            s.compacting.store(false, Ordering::Release);
        });
        if spawned.is_err() {
            self.compacting.store(false, Ordering::Release);
        }
    }

    /// Tracked offsets below what is kept go (LavinMQ does the same).
    fn forget_old_offsets(&self) {
        let first = self.log.first();
        let mut st = self.state.lock();
        let old: Vec<String> =
            st.tracked.iter().filter(|(_, o)| **o < first).map(|(t, _)| t.clone()).collect();
        for tag in old {
            st.tracked.remove(&tag);
            self.store
                .submit(Op::DeleteControl { space: OFFSETS_SPACE.into(), key: format!("{}/{tag}", self.id) });
        }
    }

    /// Sets the retention in force (arguments and policies merged).
    pub fn set_retention(&self, r: Retention) {
        if self.log.retention() != r {
            self.log.set_retention(r);
            self.wake.notify_one();
        }
    }

    /// The stream was deleted: its consumers are cancelled, its files and offsets go.
    pub fn delete(&self) -> Vec<Arc<Consumer>> {
        let mut st = self.state.lock();
        st.deleted = true;
        for tag in st.tracked.keys() {
            self.store
                .submit(Op::DeleteControl { space: OFFSETS_SPACE.into(), key: format!("{}/{tag}", self.id) });
        }
        st.tracked.clear();
        let consumers = st.readers.drain(..).map(|r| r.consumer).collect();
        drop(st);
        self.log.delete();
        self.wake.notify_one();
        consumers
    }

    pub fn consumer_count(&self) -> usize {
        self.state.lock().readers.len()
    }

    /// Offsets tracked on the server, by consumer tag.
    pub fn tracked_offsets(&self) -> Vec<(String, u64)> {
        let mut t: Vec<_> = self.state.lock().tracked.iter().map(|(k, v)| (k.clone(), *v)).collect();
        t.sort();
        t
    }
}

/// The stream's task: feeds consumers when woken, ticks once a second.
async fn run(stream: Weak<Stream>, wake: Arc<tokio::sync::Notify>) {
    let mut last_tick = std::time::Instant::now();
    loop {
        let woken = tokio::time::timeout(TICK, wake.notified()).await.is_ok();
        let Some(s) = stream.upgrade() else { return };
        if s.state.lock().deleted {
            return;
        }
        if woken {
            s.dispatch();
        }
        // Publishers paused for the disk go on once it caught up (looked
        // at on every wake-up and tick, so a write that came first is not missed).
        if s.congested.load(Ordering::Acquire) && s.log.pending_bytes() < PENDING_HIGH / 2 {
            s.congested.store(false, Ordering::Release);
            if let Some(q) = s.queue.upgrade() {
                q.stream_relieved();
            }
        }
        if last_tick.elapsed() >= TICK {
            last_tick = std::time::Instant::now();
            let s2 = s.clone();
            let _ = tokio::task::spawn_blocking(move || s2.tick()).await;
            // Compaction when a segment closed since the last one.
            let segments = s.log.segment_count();
            if segments != s.compacted_at.swap(segments, Ordering::AcqRel) {
                s.compact();
            }
            s.dispatch();
        }
        drop(s);
        tokio::task::yield_now().await;
    }
}

/// A string header's bytes, without decoding the table.
fn header_value<'a>(m: &'a Message, key: &[u8]) -> Option<&'a [u8]> {
    let v = raw_header(m, key)?;
    match v.split_first()? {
        (b'S', rest) => rest.get(4..4 + u32::from_be_bytes(rest.get(..4)?.try_into().ok()?) as usize),
        (b's', rest) => rest.get(1..1 + usize::from(*rest.first()?)),
        _ => None,
    }
}

/// A header's encoded value (type byte first).
fn raw_header<'a>(m: &'a Message, key: &[u8]) -> Option<&'a [u8]> {
    let span = m.info.headers?;
    crate::protocol::table::find(&m.header()[span.range()], key)
}

/// A compaction key as kept on disk: 128 bits of its SHA-256.
fn key_hash(v: &[u8]) -> [u8; 16] {
    use sha2::Digest;
    let d = sha2::Sha256::digest(v);
    d[..16].try_into().expect("16 bytes")
}
