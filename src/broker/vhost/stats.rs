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

impl VHost {
    /// Takes a queue off the list and keeps what it counted, in one step
    /// (under `churn.retired`, which `queue_totals` holds while it reads):
    /// a reader sees the queue's counts listed or retired, never neither.
    pub(in crate::broker) fn unlist_queue(&self, q: &Queue) {
        let mut retired = self.churn.retired.lock();
        self.queues.write().remove(&q.name);
        self.churn.deleted.add(1);
        *retired += q.totals();
    }

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
        let retired = self.churn.retired.lock();
        let mut t = *retired;
        for q in self.queues.read().values() {
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
