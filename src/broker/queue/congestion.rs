//! Credit flow: a queue buried under its backlog makes the connections
//! publishing to it pause until its consumers have taken it down.

use std::sync::atomic::Ordering;

use super::{Queue, State};

impl Queue {
    /// Raises congestion once the backlog is past the marks (with consumers:
    /// a queue nobody consumes from is a backlog, bounded by the memory alarm).
    #[inline]
    pub(super) fn congest_if_full(&self, st: &State) {
        if (st.len() > CONGESTED_ABOVE || st.ready.bytes() > CONGESTED_BYTES) && !st.consumers.is_empty() {
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

    /// Lifts congestion: the backlog drained, or nobody is consuming any more.
    pub(super) fn relieve(&self, st: &State) {
        let below = st.len() < RELIEVED_BELOW && st.ready.bytes() < RELIEVED_BYTES;
        if self.is_congested() && (below || st.consumers.is_empty() || st.deleted) {
            self.congested.store(false, Ordering::Release);
            self.drained.notify_waiters();
        }
    }
}

/// Credit flow: a queue with consumers and more ready messages than this,
/// or more body bytes in memory than `CONGESTED_BYTES`, makes the
/// connections publishing to it pause until it is back below both
/// `RELIEVED_BELOW` and `RELIEVED_BYTES`, so fast publishers cannot bury
/// slow consumers in memory: with large bodies the broker holds a few
/// dozen of them per queue, not the publishers' burst. Measured (README):
/// 100,000 let 64 busy queues hold 2.4 GiB and slowed them down; 5,000
/// costs a single queue 10-20% of its throughput.
pub(super) const CONGESTED_ABOVE: usize = 20_000;
pub(super) const RELIEVED_BELOW: usize = 10_000;
pub(super) const CONGESTED_BYTES: usize = 64 << 20;
pub(super) const RELIEVED_BYTES: usize = 32 << 20;
