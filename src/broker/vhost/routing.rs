//! Routing: the exchange a publish names, the queues a message reaches
//! (exchange-to-exchange bindings, alternate exchanges, CC / BCC, direct
//! reply-to), and handing it to them (written once for all its durable
//! queues); dead letters take the same way.

use std::sync::Arc;

use super::{VHost, REPLY_TO_PREFIX};
use crate::broker::deadletter::{self, Reason};
use crate::broker::exchange::{Destination, Exchange};
use crate::broker::message::Message;
use crate::broker::queue::{Queue, Taken};
use crate::protocol::{same_name, AmqpError};
use crate::store::Op;

/// A connection's routing state: buffers reused for every message, and a
/// memo of the exchange and default-exchange queue it used last, so steady
/// publishing skips the name lookups (entries are checked against deletion).
///
/// The memo is moved, not cloned: the exchange is taken out for the
/// publish and put back after it (`keep_exchange`), and a message for the
/// default exchange that reaches the one queue the last one reached leaves
/// `queues` as it is. Cloning and dropping an `Arc` per message would write
/// its count, and every publisher of the vhost shares the default
/// exchange's: publishers on both cores took that cache line from each
/// other at every message.
#[derive(Debug, Default)]
pub struct Router {
    /// The queues the last message reached (`route` sets them anew).
    pub queues: Vec<Arc<Queue>>,
    pending: Vec<Destination>,
    visited: Vec<usize>,
    cache_exchange: Option<Arc<Exchange>>,
}

impl Router {
    /// Puts back the exchange `publish_exchange` took out, for the next publish.
    pub fn keep_exchange(&mut self, exchange: Arc<Exchange>) {
        self.cache_exchange = Some(exchange);
    }

    /// Lets go of the queues the last message reached, unless they are
    /// one: kept for the next message, which `route` reuses if it goes to
    /// that queue by the default exchange (a deleted queue is let go of
    /// then).
    pub fn done(&mut self) {
        if self.queues.len() > 1 {
            self.queues.clear();
        }
    }
}

impl VHost {
    /// The exchange a `basic.publish` names: 404 if missing, 403 if internal.
    /// Taken out of the router's memo if it is there: hand it back with
    /// `Router::keep_exchange`.
    pub fn publish_exchange(&self, name: &[u8], router: &mut Router) -> Result<Arc<Exchange>, AmqpError> {
        if let Some(ex) =
            router.cache_exchange.take_if(|e| same_name(e.name.as_bytes(), name) && !e.is_deleted())
        {
            return Ok(ex);
        }
        let ex = std::str::from_utf8(name)
            .ok()
            .and_then(|n| self.exchange(n))
            .ok_or_else(|| self.no_exchange(&String::from_utf8_lossy(name)))?;
        if ex.internal {
            return Err(AmqpError::access_refused(format!(
                "cannot publish to internal exchange '{}' in vhost '{}'",
                ex.name, self.name
            )));
        }
        Ok(ex)
    }

    /// Collects into `router.queues` the queues a message published to
    /// `exchange` reaches, each once, following exchange-to-exchange
    /// bindings (cycles are cut). Nothing is allocated in the steady state.
    pub fn route(&self, exchange: &Arc<Exchange>, msg: &Message, bcc: &[String], router: &mut Router) {
        let Router { pending, visited, queues, .. } = router;
        let key = msg.routing_key();
        if let [q] = &queues[..] {
            if exchange.name.is_empty()
                && same_name(q.name.as_bytes(), key)
                && !q.is_deleted()
                && !key.starts_with(REPLY_TO_PREFIX.as_bytes())
                && bcc.is_empty()
                && !msg.has_header(b"CC")
            {
                // The queue the last message reached, kept as it is.
                return;
            }
        }
        queues.clear();
        if exchange.name.is_empty() {
            if key.starts_with(REPLY_TO_PREFIX.as_bytes()) {
                // A reply to a vanished requester is dropped (or returned if mandatory).
                if let Some(q) =
                    std::str::from_utf8(key).ok().and_then(|k| self.replies.read().get(k).cloned())
                {
                    queues.push(q);
                }
                return;
            }
            if let Some(q) = std::str::from_utf8(key).ok().and_then(|k| self.queue(k)) {
                queues.push(q);
            }
            for key in extra_routing_keys(msg, bcc) {
                if let Some(q) = self.queue(&key).filter(|q| !queues.iter().any(|x| Arc::ptr_eq(x, q))) {
                    queues.push(q);
                }
            }
            return;
        }
        pending.clear();
        visited.clear();
        let extra = extra_routing_keys(msg, bcc);
        self.route_from(exchange, msg, &extra, pending, visited);
        while let Some(dest) = pending.pop() {
            match dest {
                Destination::Queue(q) => {
                    if !queues.iter().any(|x| Arc::ptr_eq(x, &q)) {
                        queues.push(q);
                    }
                }
                Destination::Exchange(ex) => {
                    if !visited.contains(&(Arc::as_ptr(&ex) as usize)) {
                        self.route_from(&ex, msg, &extra, pending, visited);
                    }
                }
            }
        }
    }

    /// Routes by one exchange's bindings, for the routing key and any CC /
    /// BCC keys together; an exchange that routes none of them hands the
    /// message to its `alternate-exchange`, if it has one.
    fn route_from(
        &self,
        exchange: &Arc<Exchange>,
        msg: &Message,
        extra: &[String],
        pending: &mut Vec<Destination>,
        visited: &mut Vec<usize>,
    ) {
        let before = pending.len();
        visited.push(Arc::as_ptr(exchange) as usize);
        exchange.route(msg.routing_key(), msg, pending);
        if exchange.routes_extra_keys() {
            for k in extra {
                exchange.route(k.as_bytes(), msg, pending);
            }
        }
        if pending.len() == before {
            if let Some(ae) = exchange.alternate_exchange(|n| self.exchange(n)) {
                if !visited.contains(&(Arc::as_ptr(&ae) as usize)) {
                    pending.push(Destination::Exchange(ae));
                }
            }
        }
    }

    /// Hands a routed message to `queues`. A persistent message
    /// reaching durable queues is written to the store once, however many
    /// queues: `on_disk` says so (not if its one durable queue handed it
    /// to a no-ack consumer unwritten). Queues that refuse it (full, with
    /// reject-publish) make it `rejected`.
    pub fn enqueue(&self, mut message: Arc<Message>, queues: &[Arc<Queue>]) -> Enqueued {
        let mut out = Enqueued::default();
        let holders = if message.info.persistent() {
            queues.iter().filter(|q| q.is_persisted()).count() as u32
        } else {
            0
        };
        if let (true, Some(store)) = (holders > 0, &self.store) {
            let m = unique(&mut message);
            m.store_id = store.next_id();
            let id = m.store_id;
            // Written once for all its queues; a message for one queue
            // is written by that queue (in memory or paged out).
            if holders > 1 {
                m.shared = true;
                store.refs().add(id, holders);
                store.submit(Op::PutMessage { id, record: message.record() });
            }
            out.on_disk = true;
        }
        let mut streams = false;
        let mut message = Some(message);
        for (i, q) in queues.iter().enumerate() {
            // A stream writes every message to its log: its confirm follows the disk.
            streams |= q.is_stream;
            // The last queue takes the message itself, not a clone.
            let m = if i + 1 == queues.len() { message.take() } else { message.clone() };
            // A deduplicating queue drops a duplicate itself (confirmed).
            let taken = q.offer(m.expect("the message is there until the last queue"));
            let accepted = taken != Taken::Refused;
            // Discarded: held by that queue alone (unshared), never written.
            if taken == Taken::Discarded {
                out.on_disk = false;
                out.discarded = true;
            }
            out.taken |= accepted;
            out.rejected |= !accepted;
            if out.congested.is_none() && q.is_congested() {
                out.congested = Some(q.clone());
            }
        }
        out.on_disk |= streams;
        out
    }

    /// Routes a dead-lettered message from its dead-letter exchange (gone:
    /// dropped), except to queues it would cycle through without a rejection.
    pub fn publish_dead_letter(&self, message: Arc<Message>, reason: Reason) {
        let Some(exchange) = std::str::from_utf8(message.exchange()).ok().and_then(|n| self.exchange(n))
        else {
            return;
        };
        let mut router = Router::default();
        self.route(&exchange, &message, &[], &mut router);
        if reason != Reason::Rejected {
            router.queues.retain(|q| !deadletter::is_cycle(&message, &q.name));
        }
        self.enqueue(message, &router.queues);
    }
}

/// What became of a routed message.
#[derive(Debug, Default)]
pub struct Enqueued {
    /// A persistent message was written for durable queues: its confirm waits for the disk.
    pub on_disk: bool,
    /// A persistent message went to a no-ack consumer without being
    /// written: the message need not be on disk, but a deduplicating
    /// exchange's record of its id must be (its confirm waits for that).
    pub discarded: bool,
    /// A queue refused it (`x-overflow` = reject-publish): its confirm is a nack.
    pub rejected: bool,
    /// A queue took it (or a delayed exchange keeps it): a deduplicating
    /// exchange remembers its id.
    pub taken: bool,
    /// A queue it reached is congested: its publisher should pause.
    pub congested: Option<Arc<Queue>>,
}

/// The extra routing keys of sender-selected distribution: the `CC`
/// header's, and `bcc` (taken off the message at publish).
fn extra_routing_keys(msg: &Message, bcc: &[String]) -> Vec<String> {
    let mut keys = bcc.to_vec();
    if msg.has_header(b"CC") {
        if let Some(amq_protocol::types::AMQPValue::FieldArray(cc)) =
            msg.headers().and_then(|h| h.inner().get("CC").cloned())
        {
            keys.extend(cc.as_slice().iter().filter_map(crate::protocol::table::as_str).map(str::to_owned));
        }
    }
    keys
}

/// The message to give a store id, held by this routing alone. One still
/// shared when it is routed (a delayed message, whose record the store's
/// writer may hold until its batch is written) is copied first: its id and
/// flags must be this routing's own, and it must be written all the same.
fn unique(message: &mut Arc<Message>) -> &mut Message {
    if Arc::get_mut(message).is_none() {
        let m = &**message;
        *message = Arc::new(Message::remade(m.exchange(), m.routing_key(), m.header(), m.info.clone(), m));
    }
    Arc::get_mut(message).expect("a message just made is held once")
}

#[cfg(test)]
mod tests;
