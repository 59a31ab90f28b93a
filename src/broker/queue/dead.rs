//! Where messages leave a queue other than by an ack: length limits
//! (`x-max-length`, `x-max-length-bytes`, `x-overflow`), the delivery
//! limit (`x-delivery-limit`, with `x-delivery-count` on redeliveries), and
//! dead-lettering them to `x-dead-letter-exchange`.

use std::sync::Arc;

use amq_protocol::types::AMQPValue;

use super::{now_ms, Entry, Overflow, Queue, QueueConfig, State};
use crate::broker::deadletter::{self, DeadLetterTarget, Reason};
use crate::broker::message::Message;
use crate::protocol::properties::{encode_header, ContentHeader};

impl Queue {
    /// Whether a new message must be refused: the queue is full and
    /// refuses rather than drops (`x-overflow` = reject-publish[-dlx]).
    pub(super) fn over_limit(&self, st: &State, m: &Message) -> bool {
        let c = &st.eff.config;
        c.overflow != Overflow::DropHead
            && (c.max_length.is_some_and(|max| st.len() as u64 >= max)
                || c.max_length_bytes.is_some_and(|max| st.bytes() + m.body().len() as u64 > max))
    }

    /// Drops messages from the head (the next to be delivered: the oldest,
    /// or in a priority queue the oldest of the highest priority, as
    /// RabbitMQ) while the queue is over its limits (dead-lettered with
    /// reason `maxlen`). When that message is paged out, it is read back
    /// first and dropped when it arrives (`on_loaded`).
    pub(super) fn drop_head(self: &Arc<Self>, st: &mut State) {
        let c = &st.eff.config;
        let (max_length, max_bytes) = (c.max_length, c.max_length_bytes);
        if c.overflow != Overflow::DropHead || (max_length.is_none() && max_bytes.is_none()) {
            return;
        }
        while max_length.is_some_and(|max| st.len() as u64 > max)
            || max_bytes.is_some_and(|max| st.bytes() > max)
        {
            if st.next_is_paged() {
                self.fill(st);
                break;
            }
            let Some(e) = st.ready.pop_front() else { break };
            st.send_to_dead(e, Reason::Maxlen);
        }
    }

    /// A delivered message comes back unacknowledged: to its place, marked
    /// redelivered, or past the delivery limit to the dead letters.
    pub(super) fn come_back(&self, st: &mut State, mut e: Entry) {
        e.redelivered = true;
        e.returns = e.returns.saturating_add(1);
        if st.eff.config.delivery_limit.is_some_and(|limit| u64::from(e.returns) > limit) {
            st.send_to_dead(e, Reason::DeliveryLimit);
            return;
        }
        if st.eff.config.counts_deliveries() {
            e.message = Arc::new(with_delivery_count(&e.message, e.returns));
            self.store_returns(&e);
        }
        st.ready.insert(e);
    }

    /// Republishes removed messages to the dead-letter exchange, if the
    /// queue has one in `config` (its settings in force; else they are
    /// gone). Called without the lock.
    pub(super) fn dead_letter(self: &Arc<Self>, dead: Vec<(Arc<Message>, Reason)>, config: &QueueConfig) {
        let (Some(exchange), Some(vhost)) = (&config.dead_letter_exchange, self.home.upgrade()) else {
            return;
        };
        let target = DeadLetterTarget {
            queue: &self.name,
            exchange,
            routing_key: config.dead_letter_routing_key.as_deref(),
        };
        let now = now_ms() / 1000;
        for (m, reason) in dead {
            let copy = Arc::new(deadletter::dead_letter(&m, &target, reason, now));
            vhost.publish_dead_letter(copy, reason);
        }
    }
}

/// The message with an `x-delivery-count` header (quorum queues' count of
/// earlier deliveries).
pub(super) fn with_delivery_count(m: &Message, count: u32) -> Message {
    let props = m.properties();
    let mut headers = props.headers().clone().unwrap_or_default();
    headers.insert("x-delivery-count".into(), AMQPValue::LongLongInt(i64::from(count)));
    let header = encode_header(m.body().len() as u64, &props.with_headers(headers));
    let info = ContentHeader::scan(&header).expect("a header we encoded scans");
    let mut copy = Message::remade(m.exchange(), m.routing_key(), &header, info, m);
    copy.store_id = m.store_id;
    copy.shared = m.shared;
    copy
}
