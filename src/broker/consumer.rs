//! Consumers as queues see them, and what queues hand back to connections.
//!
//! A queue pushes deliveries straight into the consuming connection's
//! outbound queue. Credit keeps that bounded: a consumer takes at most
//! `prefetch` unacknowledged messages (manual ack; `basic.qos global=false`),
//! its channel at most its own limit across all its consumers
//! (`global=true`), and every consumer at most `WINDOW` deliveries and
//! `WINDOW_BYTES` of bodies not yet written to its socket (one delivery is
//! always let through), so a slow client holds its messages in the queue,
//! not in the broker's buffers.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;

use tokio::sync::mpsc::UnboundedSender;

use super::queue::{Entry, Queue};

/// Identifies a client connection within the broker.
pub type ConnectionId = u64;

/// Deliveries in flight between a queue and one consumer's socket.
pub const WINDOW: u32 = 2000;
/// A consumer held back by its window is asked again once no more than
/// this many of its deliveries are left unwritten.
pub const WINDOW_REFILL: u32 = WINDOW / 2;
/// Body bytes in flight between a queue and one consumer's socket: large
/// bodies stay in the queue (or on disk), not in a burst towards a socket.
pub const WINDOW_BYTES: u64 = 4 << 20;

/// What the broker hands a connection.
#[derive(Debug)]
pub enum Outbound {
    Deliver(Delivery),
    /// Deliveries to one consumer, in order: a run a queue or a stream chose
    /// one after another.
    Deliveries(Vec<Delivery>),
    /// The queue went away under this consumer (`basic.cancel` from the server).
    Cancelled(Arc<Consumer>),
    /// These publishes (channel, channel epoch, confirm number) are on disk (or failed to be).
    Durable {
        confirms: Vec<(u16, u64, u64)>,
        ok: bool,
    },
    /// Close the connection: 320 CONNECTION_FORCED with this text (its
    /// user or vhost was deleted, an operator asked).
    Close(String),
    /// Describe your channels (the management API asks).
    Inspect(tokio::sync::oneshot::Sender<Vec<super::connections::ChannelInfo>>),
}

impl Outbound {
    /// The deliveries it carries (none if it is something else).
    pub fn into_deliveries(self) -> Vec<Delivery> {
        match self {
            Outbound::Deliver(d) => vec![d],
            Outbound::Deliveries(ds) => ds,
            _ => Vec::new(),
        }
    }
}

/// The body bytes of deliveries, as their consumer's window counts them.
fn body_bytes(ds: &[Delivery]) -> u64 {
    ds.iter().map(|d| d.entry.message.body().len() as u64).sum()
}

/// One message on its way to one consumer.
#[derive(Debug)]
pub struct Delivery {
    pub consumer: Arc<Consumer>,
    pub queue: Arc<Queue>,
    /// The queue's entry; its `seq` identifies it in acks.
    pub entry: Entry,
}

/// A channel's `basic.qos global=true` limit, shared by its consumers,
/// and the broker's own cap on a channel's unacknowledged deliveries.
#[derive(Debug, Default)]
pub struct ChannelCredit {
    /// 0 is unlimited.
    limit: AtomicU32,
    /// `limits.max_unacked_per_channel`; 0 is unlimited.
    cap: AtomicU32,
    unacked: AtomicU32,
    starved: AtomicBool,
}

impl ChannelCredit {
    pub fn set_limit(&self, limit: u32) {
        self.limit.store(limit, Ordering::SeqCst);
    }

    pub fn set_cap(&self, cap: u32) {
        self.cap.store(cap, Ordering::SeqCst);
    }

    /// The limit (0: none).
    pub fn limit(&self) -> u32 {
        self.limit.load(Ordering::Relaxed)
    }

    fn has_credit(&self) -> bool {
        let (limit, cap) = (self.limit.load(Ordering::SeqCst), self.cap.load(Ordering::SeqCst));
        if limit == 0 && cap == 0 {
            return true;
        }
        let unacked = self.unacked.load(Ordering::SeqCst);
        (limit == 0 || unacked < limit) && (cap == 0 || unacked < cap)
    }

    /// True (once) when a queue passed one of this channel's consumers
    /// over for lack of channel credit: all of them should be kicked.
    pub fn take_starved(&self) -> bool {
        self.starved.load(Ordering::SeqCst) && self.starved.swap(false, Ordering::SeqCst)
    }
}

/// A consumer's deliveries in flight, packed in one word: their number
/// above `BYTES_BITS`, their body bytes below. The bytes stay far below
/// 2^40 (the window lets a delivery through only under `WINDOW_BYTES`,
/// and a body is at most 512 MiB), the number below 2^24 (the window's
/// 2,000 and one run).
#[derive(Debug, Clone, Copy)]
struct InFlight {
    count: u32,
    bytes: u64,
}

impl InFlight {
    const BYTES_BITS: u32 = 40;

    fn word(count: u32, bytes: u64) -> u64 {
        debug_assert!(bytes < 1 << Self::BYTES_BITS);
        (u64::from(count) << Self::BYTES_BITS) | bytes
    }

    fn unpack(word: u64) -> InFlight {
        InFlight { count: (word >> Self::BYTES_BITS) as u32, bytes: word & ((1 << Self::BYTES_BITS) - 1) }
    }

    fn read(cell: &AtomicU64) -> InFlight {
        Self::unpack(cell.load(Ordering::SeqCst))
    }
}

/// What `basic.consume` asked for.
#[derive(Debug, Clone, Default)]
pub struct ConsumerSpec {
    pub tag: String,
    pub channel: u16,
    pub connection: ConnectionId,
    pub no_ack: bool,
    pub exclusive: bool,
    /// 0 is unlimited.
    pub prefetch: u32,
    /// `x-priority`: higher-priority consumers are served first.
    pub priority: i64,
}

#[derive(Debug)]
pub struct Consumer {
    pub tag: String,
    pub channel: u16,
    pub connection: ConnectionId,
    pub no_ack: bool,
    pub exclusive: bool,
    /// 0 is unlimited.
    pub prefetch: u32,
    pub priority: i64,
    credit: Arc<ChannelCredit>,
    unacked: AtomicU32,
    /// The deliveries in flight (`InFlight`): one word, so a delivery and
    /// its write each change it once (the queue's core and the consuming
    /// connection's take its cache line from each other).
    in_flight: AtomicU64,
    /// Set by the queue when it passed this consumer over for lack of credit.
    starved: AtomicBool,
    cancelled: AtomicBool,
    tx: UnboundedSender<Outbound>,
}

impl Consumer {
    pub fn new(spec: ConsumerSpec, credit: Arc<ChannelCredit>, tx: UnboundedSender<Outbound>) -> Self {
        Consumer {
            tag: spec.tag,
            channel: spec.channel,
            connection: spec.connection,
            no_ack: spec.no_ack,
            exclusive: spec.exclusive,
            prefetch: spec.prefetch,
            priority: spec.priority,
            credit,
            unacked: AtomicU32::new(0),
            in_flight: AtomicU64::new(0),
            starved: AtomicBool::new(false),
            cancelled: AtomicBool::new(false),
            tx,
        }
    }

    pub fn has_credit(&self) -> bool {
        let f = InFlight::read(&self.in_flight);
        f.count < WINDOW
            && f.bytes < WINDOW_BYTES
            && (self.no_ack
                || ((self.prefetch == 0 || self.unacked.load(Ordering::SeqCst) < self.prefetch)
                    && self.credit.has_credit()))
    }

    /// More than half its window is taken: deliveries wait to be written
    /// to its socket (the client reads, or the broker writes, slower than
    /// the queue delivers), whatever its prefetch. A window in use sits
    /// between its refill mark and full.
    pub fn window_full(&self) -> bool {
        let f = InFlight::read(&self.in_flight);
        f.count > WINDOW_REFILL || f.bytes > WINDOW_BYTES / 2
    }

    /// How many more deliveries it may take now (the least of its window,
    /// its prefetch and its channel's limits).
    pub fn room(&self) -> u32 {
        let f = InFlight::read(&self.in_flight);
        let window = match f.bytes < WINDOW_BYTES {
            true => WINDOW.saturating_sub(f.count),
            false => 0,
        };
        if self.no_ack {
            return window;
        }
        let own = match self.prefetch {
            0 => u32::MAX,
            p => p.saturating_sub(self.unacked.load(Ordering::SeqCst)),
        };
        let (limit, cap) = (self.credit.limit.load(Ordering::SeqCst), self.credit.cap.load(Ordering::SeqCst));
        let unacked = self.credit.unacked.load(Ordering::SeqCst);
        let channel = |l: u32| if l == 0 { u32::MAX } else { l.saturating_sub(unacked) };
        window.min(own).min(channel(limit)).min(channel(cap))
    }

    /// Takes `n` deliveries of `bytes` body bytes out of its credit (its
    /// window, prefetch and channel limit) before they are handed over, so
    /// the queue sees them taken while it goes on choosing.
    pub(crate) fn reserve(&self, n: u32, bytes: u64) {
        self.in_flight.fetch_add(InFlight::word(n, bytes), Ordering::SeqCst);
        if !self.no_ack {
            self.unacked.fetch_add(n, Ordering::SeqCst);
            self.credit.unacked.fetch_add(n, Ordering::SeqCst);
        }
    }

    /// Hands reserved deliveries (`Deliver` or `Deliveries`) to the
    /// connection; if it is gone, gives them back with their credit.
    pub(crate) fn hand_over(&self, o: Outbound) -> Result<(), Vec<Delivery>> {
        let Err(unsent) = self.tx.send(o) else { return Ok(()) };
        let ds = unsent.0.into_deliveries();
        let n = ds.len() as u32;
        self.in_flight.fetch_sub(InFlight::word(n, body_bytes(&ds)), Ordering::SeqCst);
        if !self.no_ack {
            self.unacked.fetch_sub(n, Ordering::SeqCst);
            self.credit.unacked.fetch_sub(n, Ordering::SeqCst);
        }
        Err(ds)
    }

    /// Hands deliveries to the connection at once (one send, one count);
    /// gives them back if the connection is gone.
    pub(crate) fn send_many(&self, ds: Vec<Delivery>) -> Result<(), Vec<Delivery>> {
        self.reserve(ds.len() as u32, body_bytes(&ds));
        self.hand_over(Outbound::Deliveries(ds))
    }

    pub(crate) fn notify_cancelled(self: &Arc<Self>) {
        let _ = self.tx.send(Outbound::Cancelled(self.clone()));
    }

    pub(crate) fn mark_starved(&self) {
        self.starved.store(true, Ordering::SeqCst);
        if !self.credit.has_credit() {
            self.credit.starved.store(true, Ordering::SeqCst);
        }
    }

    /// The connection wrote a delivery of `bytes` body bytes to the socket
    /// (or dropped it). Returns true when the queue should be asked for more.
    pub fn written(&self, bytes: usize) -> bool {
        self.written_n(1, bytes as u64)
    }

    /// `n` deliveries of `bytes` body bytes in all were written at once.
    ///
    /// A starved consumer is asked again only once no more than
    /// `WINDOW_REFILL` (half the window) of its deliveries are left unwritten,
    /// so a queue whose consumer filled its window hands on a run at a time,
    /// not one delivery per write (a dispatch and a store settle each). With
    /// fewer than that in flight it is asked at every write, as when its
    /// prefetch or its window of bytes held it back with bodies over
    /// `WINDOW_BYTES / WINDOW_REFILL` (~4.2 KiB; each worth a dispatch of its
    /// own); with bodies of ~2–4 KiB the window of bytes fills with more in
    /// flight, which then wait for the mark too: the 2–4 MiB still unwritten
    /// keep the socket busy meanwhile.
    pub fn written_n(&self, n: u32, bytes: u64) -> bool {
        let before = InFlight::unpack(self.in_flight.fetch_sub(InFlight::word(n, bytes), Ordering::SeqCst));
        let left = before.count.saturating_sub(n);
        left <= WINDOW_REFILL && self.take_starved()
    }

    /// `n` deliveries were acknowledged, rejected or returned.
    /// Returns true when the queue should be asked for more; the channel's
    /// own starvation is told by `ChannelCredit::take_starved`.
    pub fn settled(&self, n: u32) -> bool {
        self.unacked.fetch_sub(n, Ordering::SeqCst);
        self.credit.unacked.fetch_sub(n, Ordering::SeqCst);
        self.take_starved()
    }

    fn take_starved(&self) -> bool {
        self.starved.load(Ordering::SeqCst) && self.starved.swap(false, Ordering::SeqCst)
    }

    pub fn cancel(&self) {
        self.cancelled.store(true, Ordering::SeqCst);
    }

    pub fn is_cancelled(&self) -> bool {
        self.cancelled.load(Ordering::SeqCst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deliveries_in_flight_pack_their_number_and_bytes_in_one_word() {
        let cell = AtomicU64::new(0);
        let big = 512 << 20;
        cell.fetch_add(InFlight::word(WINDOW, WINDOW_BYTES + big), Ordering::SeqCst);
        cell.fetch_add(InFlight::word(1, 0), Ordering::SeqCst);
        let f = InFlight::read(&cell);
        assert_eq!((f.count, f.bytes), (WINDOW + 1, WINDOW_BYTES + big));
        let before = InFlight::unpack(cell.fetch_sub(InFlight::word(WINDOW, big), Ordering::SeqCst));
        assert_eq!(before.count, WINDOW + 1);
        let f = InFlight::read(&cell);
        assert_eq!((f.count, f.bytes), (1, WINDOW_BYTES));
        cell.fetch_sub(InFlight::word(1, WINDOW_BYTES), Ordering::SeqCst);
        assert_eq!(cell.load(Ordering::SeqCst), 0);
    }
}
