//! Credit flow: a queue buried under its backlog makes the connections
//! publishing to it pause until its consumers have taken it down, for as
//! long as pausing them lets the consumers catch up.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use super::{Queue, State};

/// How a congested queue's pauses are doing.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(super) struct Flow {
    /// When its backlog was last judged, and how many messages it held then.
    judged: Option<(Instant, usize)>,
    /// Pausing its publishers did not let its consumers catch up: no more
    /// pauses until it is back below the lower marks.
    off: bool,
}

impl Queue {
    /// Raises congestion once the backlog is past the marks (with consumers:
    /// a queue nobody consumes from is a backlog, bounded by the memory alarm).
    #[inline]
    pub(super) fn congest_if_full(&self, st: &mut State) {
        let (len, bytes) = (st.len(), st.ready.bytes());
        if (len > CONGESTED_ABOVE || bytes > CONGESTED_BYTES) && !st.consumers.is_empty() && !st.flow.off {
            if st.flow.judged.is_none() {
                st.flow.judged = Some((Instant::now(), len));
            }
            self.congested.store(true, Ordering::Release);
        }
    }

    /// Whether publishers feeding this queue should pause (credit flow).
    pub fn is_congested(&self) -> bool {
        self.congested.load(Ordering::Acquire) || self.stream.get().is_some_and(|s| s.is_congested())
    }

    /// Waits until the queue is no longer congested.
    pub async fn drained(&self) {
        let notified = self.drained.notified();
        if self.is_congested() {
            notified.await;
        }
    }

    /// A publisher paused on this queue for `pause` (its longest) and the
    /// queue is still congested. Pausing publishers helps while consumers
    /// wait on the broker's side of their sockets (a window more than half
    /// full: deliveries not yet written, a busy broker's cores better spent
    /// on them). If no consumer does (each is held by its prefetch: an
    /// application taking its time over its acks) and the ready messages,
    /// paged-out ones included, fell by less than a thirty-second since
    /// they were last judged (at most once per `JUDGED_OVER` pauses' time,
    /// whichever publisher asks), the queue keeps the backlog as RabbitMQ
    /// does (paged out, or bounded by the memory alarm) rather than hold
    /// its publishers to a message per pause: no more pauses until it is
    /// below the lower marks or a consumer comes.
    pub fn pause_expired(&self, pause: Duration) {
        let mut st = self.state.lock();
        if !self.congested.load(Ordering::Acquire) {
            return;
        }
        let (len, now) = (st.len() as u64, Instant::now());
        match st.flow.judged {
            Some((at, _)) if now.duration_since(at) < pause * JUDGED_OVER => {}
            Some((_, was))
                if len * 32 >= was as u64 * 31 && !st.consumers.iter().any(|c| c.window_full()) =>
            {
                st.flow.off = true;
                self.congested.store(false, Ordering::Release);
                self.drained.notify_waiters();
            }
            _ => st.flow.judged = Some((now, len as usize)),
        }
    }

    /// Lifts congestion: the backlog drained, or nobody is consuming any more.
    pub(super) fn relieve(&self, st: &mut State) {
        if st.flow == Flow::default() && !self.is_congested() {
            return;
        }
        let below = st.len() < RELIEVED_BELOW && st.ready.bytes() < RELIEVED_BYTES;
        if below || st.consumers.is_empty() || st.deleted {
            st.flow = Flow::default();
            if self.is_congested() {
                self.congested.store(false, Ordering::Release);
                self.drained.notify_waiters();
            }
        }
    }
}

/// Credit flow: a queue with consumers and more ready messages than this,
/// or more body bytes in memory than `CONGESTED_BYTES`, makes the
/// connections publishing to it pause until it is back below both
/// `RELIEVED_BELOW` and `RELIEVED_BYTES`, so fast publishers cannot bury
/// consumers in memory when the broker's cores are the limit: with large
/// bodies the broker holds a few dozen of them per queue, not the
/// publishers' burst. Measured (README): 100,000 let 64 busy queues hold
/// 2.4 GiB and slowed them down; 5,000 costs a single queue 10-20% of its
/// throughput. Consumers slow by themselves stop it (`pause_expired`).
pub(super) const CONGESTED_ABOVE: usize = 20_000;
/// A congested queue's progress is judged over this many longest pauses
/// of time at least (one second), from when it became congested.
const JUDGED_OVER: u32 = 4;
pub(super) const RELIEVED_BELOW: usize = 10_000;
pub(super) const CONGESTED_BYTES: usize = 64 << 20;
pub(super) const RELIEVED_BYTES: usize = 32 << 20;
