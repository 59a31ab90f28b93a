//! A vhost's contents as lists, for the management API and Prometheus,
//! and its queue churn.

use std::sync::Arc;

use super::VHost;
use crate::broker::exchange::Exchange;
use crate::broker::stats::{QueueTotals, Shared};
use crate::broker::Queue;

/// Queues declared (every non-passive `queue.declare`), made and deleted,
/// and what deleted queues counted (so totals never go back).
#[derive(Debug, Default)]
pub struct QueueChurn {
    pub declared: Shared,
    pub created: Shared,
    pub deleted: Shared,
    retired: parking_lot::Mutex<QueueTotals>,
}

impl QueueChurn {
    /// Keeps what a deleted queue counted.
    pub(in crate::broker) fn retire(&self, q: &Queue) {
        self.deleted.add(1);
        *self.retired.lock() += q.totals();
    }
}

impl VHost {
    /// Its queues now (direct reply-to queues are not listed, as in RabbitMQ).
    pub fn queues(&self) -> Vec<Arc<Queue>> {
        self.queues.read().values().cloned().collect()
    }

    /// Its exchanges now, the default exchange among them.
    pub fn exchanges(&self) -> Vec<Arc<Exchange>> {
        self.exchanges.read().values().cloned().collect()
    }

    /// What its queues counted, those deleted included.
    pub fn queue_totals(&self) -> QueueTotals {
        let mut t = *self.churn.retired.lock();
        for q in self.queues() {
            t += q.totals();
        }
        t
    }

    pub fn queue_count(&self) -> usize {
        self.queues.read().len()
    }

    pub fn exchange_count(&self) -> usize {
        self.exchanges.read().len()
    }
}
