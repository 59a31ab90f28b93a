//! Handing ready messages to consumers with credit. The deliveries to one
//! consumer chosen one after another go to its connection together (one
//! send and one wake-up for a run, not one per message): a queue with a
//! backlog hands on as much as the consumer has room for (its window
//! first, then at least half a window at each refill).

use std::sync::Arc;

use super::{consumers, now_ms, paging, Queue, State};
use crate::broker::consumer::{Delivery, Outbound, WINDOW};

/// Deliveries to one consumer (`st.consumers[idx]`), reserved from its
/// credit but not yet handed over: `Queue::hand_over` empties it before
/// the queue's lock is let go (`deliver_ready` has no way out before it).
#[derive(Debug, Default)]
enum Run {
    #[default]
    Empty,
    One(usize, Delivery),
    Many(usize, Vec<Delivery>),
}

impl Run {
    fn consumer(&self) -> Option<usize> {
        match self {
            Run::Empty => None,
            Run::One(idx, _) | Run::Many(idx, _) => Some(*idx),
        }
    }

    /// Adds a delivery to consumer `idx`'s run (already `consumer()`, or
    /// none); `room`: how many more it may take, for the first allocation.
    fn push(&mut self, idx: usize, d: Delivery, room: impl FnOnce() -> usize) {
        match self {
            Run::Many(_, ds) => ds.push(d),
            Run::Empty => *self = Run::One(idx, d),
            Run::One(..) => {
                let Run::One(_, first) = std::mem::take(self) else { unreachable!("one") };
                let mut ds = Vec::with_capacity(2 + room().min(WINDOW as usize));
                ds.extend([first, d]);
                *self = Run::Many(idx, ds);
            }
        }
    }
}

impl Queue {
    pub(super) fn deliver_ready(self: &Arc<Self>, st: &mut State, now: Option<u64>) {
        let now = match now {
            Some(now) => now,
            None if st.ready.next_expiry().is_some() => now_ms(),
            None => 0,
        };
        // No-ack deliveries' removals, submitted together (under the lock,
        // so before anything could put one of them back).
        let mut settled = paging::Settled::default();
        let mut run = Run::Empty;
        loop {
            self.choose(st, now, &mut run, &mut settled);
            // The last run's connection was gone: its deliveries are back,
            // for the other consumers.
            if self.hand_over(st, &mut run, &mut settled) {
                break;
            }
        }
        self.submit_settled(settled);
        self.arm(st);
    }

    /// Chooses a consumer for each ready message while one has credit,
    /// handing over each run as the next message goes to another consumer;
    /// the last run is left in `run`.
    fn choose(self: &Arc<Self>, st: &mut State, now: u64, run: &mut Run, settled: &mut paging::Settled) {
        while let Some(front) = st.ready.front() {
            // A higher priority waiting on disk goes first: wait for its page-in.
            if st.paged.len() > 1 && st.next_is_paged() {
                break;
            }
            // Strictly past: a message with a TTL of 0 still reaches a
            // consumer waiting for it the moment it arrives.
            if front.expires != 0 && front.expires < now {
                // As strictly: one arriving now behind it is not taken along.
                self.expire(st, now - 1);
                continue;
            }
            let Some(idx) = consumers::next_with_credit(st, self.config.single_active_consumer) else {
                break;
            };
            // Its connection gone, the run's consumer is removed: choose again.
            if run.consumer().is_some_and(|c| c != idx) && !self.hand_over(st, run, settled) {
                continue;
            }
            let no_ack = st.consumers[idx].no_ack;
            let mut entry = st.ready.pop_front().expect("not empty");
            let fresh = self.on_fresh_delivery(st, &mut entry, no_ack);
            st.count_delivery(&entry);
            if !fresh {
                self.on_delivered(&entry, no_ack, settled);
            }
            if !no_ack {
                st.unacked.insert(entry.seq, entry.clone());
            }
            let consumer = &st.consumers[idx];
            consumer.reserve(1, entry.message.body().len() as u64);
            let delivery = Delivery { consumer: consumer.clone(), queue: self.clone(), entry };
            run.push(idx, delivery, || (consumer.room() as usize).min(st.ready.len()));
        }
    }

    /// Hands `run` (emptied) to its consumer's connection. If that lost its
    /// receiver without removing the consumer first, the consumer is removed
    /// here and the deliveries are back in their places (the no-ack ones'
    /// removals submitted first, so their restored places come after);
    /// false then. A manual-ack one stays marked delivered in the store, as
    /// one handed over and given back would be (redelivered after a restart).
    fn hand_over(self: &Arc<Self>, st: &mut State, run: &mut Run, settled: &mut paging::Settled) -> bool {
        let (idx, o) = match std::mem::take(run) {
            Run::Empty => return true,
            Run::One(idx, d) => (idx, Outbound::Deliver(d)),
            Run::Many(idx, ds) => (idx, Outbound::Deliveries(ds)),
        };
        let Err(ds) = st.consumers[idx].hand_over(o) else { return true };
        self.submit_settled(std::mem::take(settled));
        st.consumers.remove(idx);
        for d in ds {
            self.take_back(st, d);
        }
        false
    }
}
