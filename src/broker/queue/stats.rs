//! A queue as the management API and Prometheus see it: its depth, bytes,
//! consumers and what passed through it, read in one short hold of its
//! lock. The counters are added to under the lock the queue holds anyway.

use std::sync::Arc;

use super::{Entry, Queue, State};
use crate::broker::consumer::Consumer;
use crate::broker::deadletter::Reason;
use crate::broker::stats::{QueueTotals, Rate};

/// One look at a queue.
#[derive(Debug, Clone, Default)]
pub struct QueueInfo {
    pub ready: u64,
    pub unacked: u64,
    /// Body bytes of ready messages (in memory and paged out).
    pub ready_bytes: u64,
    pub unacked_bytes: u64,
    /// Ready messages held in memory.
    pub ready_ram: u64,
    pub ready_ram_bytes: u64,
    /// Ready messages on disk only.
    pub paged_out: u64,
    pub paged_out_bytes: u64,
    pub consumers: u64,
    /// The consumer holding it exclusively, or its single active consumer.
    pub exclusive_consumer_tag: Option<String>,
    pub single_active_consumer_tag: Option<String>,
    pub totals: QueueTotals,
}

impl QueueInfo {
    pub fn messages(&self) -> u64 {
        self.ready + self.unacked
    }

    pub fn bytes(&self) -> u64 {
        self.ready_bytes + self.unacked_bytes
    }
}

/// A queue's rates, made by the sampler.
#[derive(Debug, Default)]
pub struct QueueRates {
    pub published: Rate,
    pub delivered: Rate,
    pub redelivered: Rate,
    pub acked: Rate,
    pub messages: Rate,
    pub ready: Rate,
    pub unacked: Rate,
}

impl Queue {
    /// Its figures now.
    pub fn info(&self) -> QueueInfo {
        if let Some(s) = self.stream() {
            return self.stream_info(s);
        }
        let st = self.state.lock();
        let paged_out = st.paged_count();
        let paged_out_bytes: u64 = st.paged.iter().map(|p| p.bytes).sum();
        let first = st.consumers.first();
        QueueInfo {
            ready: st.len() as u64,
            unacked: st.unacked.len() as u64,
            ready_bytes: st.bytes(),
            unacked_bytes: st.unacked.bytes(),
            ready_ram: st.ready.len() as u64,
            ready_ram_bytes: st.ready.bytes() as u64,
            paged_out,
            paged_out_bytes,
            consumers: st.consumers.len() as u64,
            exclusive_consumer_tag: first.filter(|c| c.exclusive).map(|c| c.tag.clone()),
            single_active_consumer_tag: first
                .filter(|_| self.config.single_active_consumer)
                .map(|c| c.tag.clone()),
            totals: st.totals,
        }
    }

    /// What passed through it so far.
    pub fn totals(&self) -> QueueTotals {
        self.state.lock().totals
    }

    /// Its consumers now, in the order they are served.
    pub fn consumers(&self) -> Vec<Arc<Consumer>> {
        self.state.lock().consumers.clone()
    }

    /// Takes a sample for its rates, `secs` after the last one; returns
    /// the figures sampled.
    pub fn sample_rates(&self, secs: f64) -> QueueInfo {
        let info = self.info();
        let r = &self.rates;
        r.published.sample(info.totals.published, secs);
        r.delivered.sample(info.totals.delivered, secs);
        r.redelivered.sample(info.totals.redelivered, secs);
        r.acked.sample(info.totals.acked, secs);
        r.messages.sample(info.messages(), secs);
        r.ready.sample(info.ready, secs);
        r.unacked.sample(info.unacked, secs);
        info
    }
}

impl State {
    /// Counts what is about to be dead-lettered (or dropped), by reason.
    pub(super) fn count_dead(&mut self) {
        for (_, reason) in &self.dead {
            let t = &mut self.totals;
            match reason {
                Reason::Expired => t.expired += 1,
                Reason::Maxlen => t.maxlen += 1,
                Reason::Rejected => t.rejected += 1,
                Reason::DeliveryLimit => t.delivery_limit += 1,
            }
        }
    }

    /// Counts a message leaving for a consumer or a `basic.get`.
    pub(super) fn count_delivery(&mut self, e: &Entry) {
        self.totals.delivered += 1;
        self.totals.redelivered += u64::from(e.redelivered);
    }
}
