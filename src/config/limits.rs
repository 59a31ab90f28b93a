//! `[limits]`: how much of the broker one client, user or vhost may hold.
//! Each is checked where the resource is made, with RabbitMQ's refusal
//! where RabbitMQ has the limit. 0 means no limit, as for `channel_max`.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct LimitsConfig {
    /// Connections open on the node (RabbitMQ's `connection_max`); the next
    /// `connection.open` gets 530 `connection refused: node connection
    /// limit (N) is reached`.
    pub max_connections: u64,
    /// Consumers on one channel (RabbitMQ's `consumer_max_per_channel`);
    /// the next `basic.consume` gets 530 `reached maximum (N) of consumers
    /// per channel`.
    pub consumer_max_per_channel: u32,
    /// Unacknowledged deliveries one channel may hold: its consumers get
    /// nothing more until it settles some (as if every consumer's prefetch
    /// were capped there), and a `basic.get` past it is refused with 406.
    pub max_unacked_per_channel: u32,
    /// Queues in each vhost, on top of any `max-queues` vhost limit (the
    /// lower one applies); past it `queue.declare` gets 406.
    pub max_queues_per_vhost: u64,
    /// Exchanges in each vhost, the default ones included; past it
    /// `exchange.declare` gets 406.
    pub max_exchanges_per_vhost: u64,
}

impl LimitsConfig {
    /// A limit as an option: None where 0 (no limit).
    pub fn some(n: u64) -> Option<u64> {
        (n > 0).then_some(n)
    }
}
