//! Time in a queue: message TTL (`x-message-ttl` and per-message
//! `expiration`, the lower wins), expired messages removed from the head by
//! a timer (and never delivered), and `x-expires` for unused queues.

use std::sync::Arc;
use std::time::Duration;

use super::{now_ms, Queue, State};
use crate::broker::deadletter::Reason;
use crate::broker::message::Message;

impl Queue {
    /// When a message arriving now under the queue's `ttl` expires; 0 for never.
    pub(super) fn expiry_of(&self, ttl: Option<u64>, m: &Message, now: u64) -> u64 {
        let ttl = match (ttl, m.expiration_ms()) {
            (Some(a), Some(b)) => a.min(b),
            (a, b) => match a.or(b) {
                Some(t) => t,
                None => return 0,
            },
        };
        // 0 stays "never"; a TTL of 0 expires at once (unless delivered at once).
        now.saturating_add(ttl).max(1)
    }

    /// Removes the expired messages at the head (dead-lettered with reason
    /// `expired` once the lock is released).
    pub(super) fn expire(&self, st: &mut State, now: u64) {
        if st.ready.next_expiry().is_none_or(|t| t > now) {
            return;
        }
        for e in st.ready.take_expired(|e| e.expires != 0 && e.expires <= now) {
            st.send_to_dead(e, Reason::Expired);
        }
    }

    /// Removes what has expired by now (reading the clock only if a
    /// message at the head can expire at all).
    pub(super) fn expire_due(&self, st: &mut State) {
        if st.ready.next_expiry().is_some() {
            self.expire(st, now_ms());
        }
    }

    /// Makes sure a timer fires when the head's first message expires.
    pub(super) fn arm(self: &Arc<Self>, st: &mut State) {
        let Some(at) = st.ready.next_expiry() else { return };
        if st.timer_at.is_some_and(|t| t <= at) || st.deleted {
            return;
        }
        let Some(rt) = &self.runtime else { return };
        st.timer_at = Some(at);
        let queue = Arc::downgrade(self);
        rt.spawn(async move {
            tokio::time::sleep(Duration::from_millis(at.saturating_sub(now_ms()))).await;
            if let Some(q) = queue.upgrade() {
                q.on_timer(at);
            }
        });
    }

    fn on_timer(self: &Arc<Self>, at: u64) {
        let mut st = self.state.lock();
        if st.timer_at == Some(at) {
            st.timer_at = None;
        }
        self.expire_due(&mut st);
        self.dispatch(&mut st);
        self.finish(st);
    }

    /// The queue was used (consumed from, got from, declared): an
    /// `x-expires` countdown starts again.
    pub fn touch(&self) {
        if self.expires.load(std::sync::atomic::Ordering::Relaxed) != 0 {
            self.last_used.store(now_ms(), std::sync::atomic::Ordering::Relaxed);
        }
    }

    /// The effective `expires` (argument or policy): how long the queue
    /// may stay unused, in ms.
    pub fn expires_after(&self) -> Option<u64> {
        Some(self.expires.load(std::sync::atomic::Ordering::Relaxed)).filter(|e| *e != 0)
    }

    /// Changes whenever `expires_after` does (an expiry watcher started
    /// before stops).
    pub fn expiry_generation(&self) -> u64 {
        self.expiry_generation.load(std::sync::atomic::Ordering::Acquire)
    }

    /// With `expires`: when the queue, unused since, is due to go
    /// (None while it has consumers).
    pub fn expires_at(&self) -> Option<u64> {
        let after = self.expires_after()?;
        if !self.state.lock().consumers.is_empty() {
            return None;
        }
        Some(self.last_used.load(std::sync::atomic::Ordering::Relaxed).saturating_add(after))
    }
}
