//! Delayed messages (`x-delayed-message` exchanges): a message published
//! with an `x-delay` header waits, then is routed by the exchange's
//! `x-delayed-type` when it is due.
//!
//! Every waiting message is written to the store under its exchange and due
//! time (`store/delayed.rs`); only a window of the next-due ones is in
//! memory, so millions of them cost disk, not RAM. The invariant: every
//! message due before `horizon` is in `window`; those at or after it are
//! on disk only, read back in due order as the window empties. Reads go
//! through the store's writer after everything submitted before them, and
//! a message is submitted under the same lock that decides whether it goes
//! into the window, so a read never misses one (see `loaded`).
//!
//! When due, a message is routed, handed to its queues (their writes are
//! submitted then) and its delayed record deleted after them, in one
//! ordered stream: a crash in between leaves it waiting (routed again at
//! the next start, at least once), never lost.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock, Weak};

use amq_protocol::types::{AMQPValue, FieldTable};
use parking_lot::Mutex;

use super::exchange::Exchange;
use super::message::Message;
use super::queue::now_ms;
use super::vhost::{Router, VHost};
use crate::protocol::properties::{decode_properties, encode_header, ContentHeader};
use crate::protocol::AmqpError;
use crate::store::{Delayed, DelayedAt, Op, StoreHandle};

/// The longest delay, as the plugin's (Erlang's timer limit): about 49.7 days.
pub const MAX_DELAY_MS: i64 = u32::MAX as i64;
/// Messages in the window at most before the latest-due are left on disk.
const WINDOW_MESSAGES: usize = 20_000;
/// Message bytes in the window at most.
const WINDOW_BYTES: usize = 32 << 20;
/// Messages read back at a time.
const LOAD_BATCH: usize = 5_000;
/// A read starts when the window holds fewer than this.
const LOW_WATER: usize = LOAD_BATCH / 2;
/// Messages routed per turn before the task yields.
const FIRE_BATCH: usize = 1_000;

/// Sequence numbers: unique per node across restarts (they continue after
/// the highest on disk), so two messages due in the same millisecond never
/// share a key.
static NEXT_SEQ: AtomicU64 = AtomicU64::new(1);

/// This run's id: transient delayed messages written by another run are
/// dropped when read back.
fn boot() -> u64 {
    static BOOT: OnceLock<u64> = OnceLock::new();
    *BOOT.get_or_init(|| {
        let mut b = [0u8; 8];
        let _ = getrandom::fill(&mut b);
        u64::from_le_bytes(b).max(1)
    })
}

/// Seqs continue after `max` (the highest on disk at start-up).
pub fn seqs_after(max: u64) {
    NEXT_SEQ.fetch_max(max + 1, Ordering::Relaxed);
}

/// A message's `x-delay` in ms: None for no delay (absent, zero or
/// negative, as the plugin); 406 for one that is not a number or is over
/// `MAX_DELAY_MS`. Integers, floats (truncated) and numeric strings count,
/// as in the plugin.
pub fn delay_of(message: &Message) -> Result<Option<u64>, AmqpError> {
    if !message.has_header(b"x-delay") {
        return Ok(None);
    }
    let Some(value) = message.headers().and_then(|h| h.inner().get("x-delay").cloned()) else {
        return Ok(None);
    };
    let ms = match &value {
        AMQPValue::Float(f) => Some(f64::from(*f) as i64),
        AMQPValue::Double(f) => Some(*f as i64),
        AMQPValue::LongString(_) | AMQPValue::ShortString(_) => {
            crate::protocol::table::as_str(&value).and_then(|s| s.trim().parse::<i64>().ok())
        }
        other => crate::protocol::table::as_int(other),
    };
    let Some(ms) = ms else {
        return Err(AmqpError::precondition_failed(format!(
            "invalid x-delay {}: expected a number of milliseconds",
            crate::protocol::table::describe(&value)
        )));
    };
    if ms > MAX_DELAY_MS {
        return Err(AmqpError::precondition_failed(format!(
            "invalid x-delay {ms}: the longest delay is {MAX_DELAY_MS} ms"
        )));
    }
    Ok((ms > 0).then_some(ms as u64))
}

/// One delayed exchange's waiting messages.
#[derive(Debug)]
pub struct Delayer {
    vhost: Arc<str>,
    exchange: Arc<str>,
    store: Option<StoreHandle>,
    /// Persistent messages survive restarts (the exchange is durable).
    durable: bool,
    /// Messages waiting, in memory or not.
    pending: AtomicU64,
    state: Mutex<State>,
    wake: tokio::sync::Notify,
    stopped: AtomicBool,
}

/// A message and its place: (due, seq).
type Waiting = ((u64, u64), Arc<Message>);

#[derive(Debug, Default)]
struct State {
    window: BTreeMap<(u64, u64), Arc<Message>>,
    window_bytes: usize,
    /// None: nothing is on disk only.
    horizon: Option<(u64, u64)>,
    /// A read of the disk from here on is under way: nothing at or after
    /// it may fire until it is back (the read may see a message that fired
    /// before its deletion was written, and would bring it back).
    loading: Option<(u64, u64)>,
}

impl Delayer {
    pub fn new(vhost: &str, exchange: &Exchange, store: Option<StoreHandle>) -> Delayer {
        Delayer {
            vhost: vhost.into(),
            exchange: exchange.name.as_str().into(),
            store,
            durable: exchange.durable,
            pending: AtomicU64::new(0),
            state: Mutex::new(State::default()),
            wake: tokio::sync::Notify::new(),
            stopped: AtomicBool::new(false),
        }
    }

    /// `count` messages wait on disk from an earlier run: all of them are
    /// read back from the start, in due order (overdue ones fire at once).
    pub fn recovered(&self, count: u64) {
        if self.store.is_none() {
            return;
        }
        self.pending.fetch_add(count, Ordering::Relaxed);
        self.state.lock().horizon = Some((0, 0));
        self.wake.notify_one();
    }

    /// Messages waiting.
    pub fn pending(&self) -> u64 {
        self.pending.load(Ordering::Relaxed)
    }

    /// Starts routing messages as they fall due (nothing happens without a
    /// tokio runtime: unit tests of the broker alone).
    pub fn start(self: &Arc<Self>, vhost: Weak<VHost>, exchange: Weak<Exchange>) {
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(self.clone().run(vhost, exchange));
        }
    }

    /// Keeps `message` until `delay` ms from now. True if its publisher's
    /// confirm must wait for the store (persistent, on a durable exchange).
    pub fn schedule(&self, message: Arc<Message>, delay: u64) -> bool {
        let message = negate_delay(message, delay);
        let key = (now_ms().saturating_add(delay), NEXT_SEQ.fetch_add(1, Ordering::Relaxed));
        let kept = self.durable && message.info.persistent();
        let mut st = self.state.lock();
        // Deleted since the publisher looked it up: its messages went with it.
        if self.stopped.load(Ordering::Acquire) {
            return false;
        }
        self.pending.fetch_add(1, Ordering::Relaxed);
        if let Some(store) = &self.store {
            let boot = if kept { 0 } else { boot() };
            store.submit(Op::PutDelayed { at: self.at(key), boot, record: message.record() });
        }
        let horizon = st.horizon;
        let in_memory = self.store.is_none() || st.loading.is_some() || horizon.is_none_or(|h| key < h);
        if in_memory {
            st.window_bytes += message.body().len();
            st.window.insert(key, message);
            if st.loading.is_none() && self.store.is_some() {
                st.shrink();
            }
        }
        // The task waits for the earliest message; a new horizon may need a read.
        let wake = st.window.first_key_value().is_some_and(|(k, _)| *k == key) || st.horizon != horizon;
        drop(st);
        if wake {
            self.wake.notify_one();
        }
        kept && self.store.is_some()
    }

    /// The exchange is gone: its waiting messages go with it.
    pub fn stop(&self) {
        self.stopped.store(true, Ordering::Release);
        let mut st = self.state.lock();
        st.window.clear();
        st.window_bytes = 0;
        st.horizon = None;
        if let Some(store) = &self.store {
            store.submit(Op::DropDelayed { vhost: self.vhost.clone(), exchange: self.exchange.clone() });
        }
        self.pending.store(0, Ordering::Relaxed);
        drop(st);
        self.wake.notify_one();
    }

    fn at(&self, (due, seq): (u64, u64)) -> DelayedAt {
        DelayedAt { vhost: self.vhost.clone(), exchange: self.exchange.clone(), due, seq }
    }

    async fn run(self: Arc<Self>, vhost: Weak<VHost>, exchange: Weak<Exchange>) {
        let mut router = Router::default();
        loop {
            if self.stopped.load(Ordering::Acquire) {
                return;
            }
            let now = now_ms();
            let (due, next) = self.take_due(now);
            let full = due.len() == FIRE_BATCH;
            if !due.is_empty() {
                let (Some(v), Some(x)) = (vhost.upgrade(), exchange.upgrade()) else { return };
                self.fire(&v, &x, due, &mut router);
            }
            if full {
                tokio::task::yield_now().await;
                continue;
            }
            // At least once a second: a read that failed is tried again.
            let wait = next.map_or(1_000, |due| due.saturating_sub(now_ms()).min(1_000));
            if wait > 0 {
                let _ =
                    tokio::time::timeout(std::time::Duration::from_millis(wait), self.wake.notified()).await;
            }
        }
    }

    /// Takes the messages due by `now` (up to a batch), starts a read if
    /// the window runs low; returns them and when the next one is due.
    fn take_due(self: &Arc<Self>, now: u64) -> (Vec<Waiting>, Option<u64>) {
        let mut st = self.state.lock();
        let mut due = Vec::new();
        let reading = st.loading;
        while due.len() < FIRE_BATCH {
            let Some(entry) = st.window.first_entry() else { break };
            if entry.key().0 > now || reading.is_some_and(|from| *entry.key() >= from) {
                break;
            }
            let (key, message) = entry.remove_entry();
            st.window_bytes -= message.body().len();
            due.push((key, message));
        }
        if let (Some(from), None, Some(store)) = (st.horizon, st.loading, &self.store) {
            if st.window.len() < LOW_WATER && st.window_bytes < WINDOW_BYTES / 2 {
                st.loading = Some(from);
                let me = self.clone();
                let done = Box::new(move |found| me.loaded(found));
                let limit = (LOAD_BATCH, WINDOW_BYTES / 2);
                if !store.read_delayed(self.vhost.clone(), self.exchange.clone(), from, limit, done) {
                    st.loading = None;
                }
            }
        }
        // What waits behind a read in progress is not due before it is back.
        let next = st
            .window
            .first_key_value()
            .map(|(k, _)| *k)
            .filter(|k| st.loading.is_none_or(|from| *k < from))
            .map(|k| k.0);
        (due, next)
    }

    /// Routes due messages as the exchange's type, then deletes their
    /// records (after their queues' writes, in the same ordered stream).
    fn fire(&self, v: &VHost, x: &Arc<Exchange>, due: Vec<Waiting>, router: &mut Router) {
        for (key, message) in due {
            if !x.is_deleted() {
                v.route(x, &message, &[], router);
                if !router.queues.is_empty() {
                    v.enqueue(message, &router.queues);
                }
                // A delayed exchange is never the default one: nothing to keep.
                router.queues.clear();
            }
            if let Some(store) = &self.store {
                store.submit(Op::DeleteDelayed(self.at(key)));
            }
            // A deletion since the batch was taken set the count to 0.
            let _ = self.pending.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |p| p.checked_sub(1));
        }
    }

    /// A read of the disk came back (on the store's reader thread).
    fn loaded(&self, found: Option<(Vec<Delayed>, bool)>) {
        let mut st = self.state.lock();
        st.loading = None;
        if self.stopped.load(Ordering::Acquire) {
            return;
        }
        // The store failed: the read is tried again on the next turn.
        let Some((found, more)) = found else { return };
        let horizon = if more { found.last().map(|d| (d.due, d.seq.saturating_add(1))) } else { None };
        // Messages that came in during the read and are due after what it
        // reached are on disk (submitted after the read): the next read
        // brings them back.
        if let Some(h) = horizon {
            let later = st.window.split_off(&h);
            st.window_bytes -= later.values().map(|m| m.body().len()).sum::<usize>();
        }
        for d in found {
            let key = (d.due, d.seq);
            let stale = d.boot != 0 && d.boot != boot();
            let message = (!stale).then(|| Message::from_record(0, &d.record, false)).flatten();
            match message {
                Some(m) => {
                    // It may be here already: it came in during the read.
                    st.window_bytes += m.body().len();
                    if let Some(old) = st.window.insert(key, Arc::new(m)) {
                        st.window_bytes -= old.body().len();
                    }
                }
                None => {
                    // A transient message of an earlier run (not counted), or damaged.
                    if !stale {
                        self.pending.fetch_sub(1, Ordering::Relaxed);
                    }
                    if let Some(store) = &self.store {
                        store.submit(Op::DeleteDelayed(self.at(key)));
                    }
                }
            }
        }
        st.horizon = horizon;
        st.shrink();
        drop(st);
        self.wake.notify_one();
    }
}

impl State {
    /// Leaves the latest-due messages on disk only while the window is over
    /// its bounds (they were submitted to the store when they came).
    fn shrink(&mut self) {
        if self.window.len() <= WINDOW_MESSAGES && self.window_bytes <= WINDOW_BYTES {
            return;
        }
        while self.window.len() > WINDOW_MESSAGES * 3 / 4 || self.window_bytes > WINDOW_BYTES * 3 / 4 {
            let Some((key, message)) = self.window.pop_last() else { break };
            self.window_bytes -= message.body().len();
            self.horizon = Some(key);
        }
    }
}

/// The plugin hands a delayed message on with `x-delay` negated, so that
/// publishing it again to a delayed exchange does not delay it again.
fn negate_delay(message: Arc<Message>, delay: u64) -> Arc<Message> {
    let Some(props) = decode_properties(message.header()) else { return message };
    let mut headers: FieldTable = props.headers().clone().unwrap_or_default();
    headers.insert("x-delay".into(), AMQPValue::LongLongInt(-(delay as i64)));
    let header = encode_header(message.info.body_size, &props.with_headers(headers));
    let Ok(info) = ContentHeader::scan(&header) else { return message };
    Arc::new(Message::remade(message.exchange(), message.routing_key(), &header, info, &message))
}
