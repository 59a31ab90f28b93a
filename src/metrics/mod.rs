//! Prometheus metrics in the shape of RabbitMQ's `rabbitmq_prometheus`
//! plugin (port 15692): `/metrics`, `/metrics/per-object` and
//! `/metrics/detailed`, with RabbitMQ's names so its Grafana dashboards and
//! alerts work, plus `warren_*` figures of Warren's own (the store's group
//! commits). Everything is read from live state when scraped.
//!
//! May use `broker`, `access`, `store` and the admin API's node facts.

mod collect;
mod families;
pub mod render;
mod serve;

use std::sync::Arc;

use crate::access::Access;
use crate::admin::NodeFacts;
use crate::broker::Broker;
use crate::store::StoreHandle;

pub use collect::{aggregated, detailed, per_object, permanent_id, Endpoint};
pub use serve::{router, serve};

/// What a scrape reads.
#[derive(Clone)]
pub struct MetricsState {
    pub broker: Arc<Broker>,
    pub access: Arc<Access>,
    /// The cluster's name, as the admin API reports it.
    pub node: Arc<NodeFacts>,
    /// The store's writer, for `warren_store_*`; None on a broker without one.
    pub store: Option<StoreHandle>,
}

impl MetricsState {
    pub fn new(broker: Arc<Broker>, access: Arc<Access>) -> MetricsState {
        MetricsState { broker, access, node: Arc::default(), store: None }
    }

    pub fn with_node(mut self, node: Arc<NodeFacts>) -> MetricsState {
        self.node = node;
        self
    }

    pub fn with_store(mut self, store: StoreHandle) -> MetricsState {
        self.store = Some(store);
        self
    }
}
