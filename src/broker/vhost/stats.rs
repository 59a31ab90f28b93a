//! A vhost's contents as lists, for the management API and Prometheus,
//! and its queue churn.

use std::sync::Arc;

use super::VHost;
use crate::broker::exchange::Exchange;
use crate::broker::stats::Shared;
use crate::broker::Queue;

/// Queues declared (every non-passive `queue.declare`), made and deleted.
#[derive(Debug, Default)]
pub struct QueueChurn {
    pub declared: Shared,
    pub created: Shared,
    pub deleted: Shared,
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

    pub fn queue_count(&self) -> usize {
        self.queues.read().len()
    }

    pub fn exchange_count(&self) -> usize {
        self.exchanges.read().len()
    }
}
