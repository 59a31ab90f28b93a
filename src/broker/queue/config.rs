//! What a queue's `x-` arguments ask of it, read once at declaration
//! (they were validated by `queue_args::validate`).

use amq_protocol::types::{AMQPValue, FieldTable};

use crate::protocol::table::{as_int, as_str};

/// What happens to a publish that would take a full queue over its limit.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Overflow {
    /// The oldest ready message goes (dead-lettered with reason `maxlen`).
    #[default]
    DropHead,
    /// The new message is refused (a nack in confirm mode).
    RejectPublish,
    /// Refused and dead-lettered.
    RejectPublishDlx,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct QueueConfig {
    /// `x-message-ttl`, ms.
    pub message_ttl: Option<u64>,
    /// `x-expires`, ms unused before the queue is deleted.
    pub expires: Option<u64>,
    pub max_length: Option<u64>,
    pub max_length_bytes: Option<u64>,
    pub overflow: Overflow,
    pub dead_letter_exchange: Option<String>,
    pub dead_letter_routing_key: Option<String>,
    /// `x-max-priority`: priorities 0..=this, higher first.
    pub max_priority: Option<u8>,
    pub single_active_consumer: bool,
    /// `x-delivery-limit`: deliveries a message may have before it is
    /// dead-lettered with reason `delivery_limit`.
    pub delivery_limit: Option<u64>,
    /// `x-queue-type` = quorum: redeliveries carry `x-delivery-count`.
    pub quorum: bool,
}

impl QueueConfig {
    pub fn from_args(args: &FieldTable) -> QueueConfig {
        let int = |k: &str| args.inner().get(k).and_then(as_int).and_then(|n| u64::try_from(n).ok());
        let string = |k: &str| args.inner().get(k).and_then(as_str).map(str::to_owned);
        QueueConfig {
            message_ttl: int("x-message-ttl"),
            expires: int("x-expires"),
            max_length: int("x-max-length"),
            max_length_bytes: int("x-max-length-bytes"),
            overflow: match string("x-overflow").as_deref() {
                Some("reject-publish") => Overflow::RejectPublish,
                Some("reject-publish-dlx") => Overflow::RejectPublishDlx,
                _ => Overflow::DropHead,
            },
            dead_letter_exchange: string("x-dead-letter-exchange"),
            dead_letter_routing_key: string("x-dead-letter-routing-key"),
            max_priority: int("x-max-priority").filter(|p| *p > 0).map(|p| p.min(255) as u8),
            single_active_consumer: matches!(
                args.inner().get("x-single-active-consumer"),
                Some(AMQPValue::Boolean(true))
            ),
            delivery_limit: int("x-delivery-limit"),
            quorum: string("x-queue-type").as_deref() == Some("quorum"),
        }
    }

    /// Whether redeliveries are counted in an `x-delivery-count` header.
    pub fn counts_deliveries(&self) -> bool {
        self.quorum || self.delivery_limit.is_some()
    }
}
