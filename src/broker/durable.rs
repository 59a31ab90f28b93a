//! How a vhost's entities reach the store, and how they come back from it
//! at start-up. Durable exchanges, durable non-exclusive queues and the
//! bindings between durable ends are written; nothing else is.

use std::sync::Arc;

use rustc_hash::FxHashMap;
use tracing::warn;

use super::exchange::{Binding, Destination, Exchange, ExchangeKind};
use super::message::Message;
use super::queue::{Entry, Queue};
use super::vhost::VHost;
use crate::protocol::AmqpError;
use crate::store::recovery::Backlog;
use crate::store::{BindingRecord, ExchangeRecord, IndexEntry, Op, QueueRecord};

impl VHost {
    /// Writes topology changes and waits until they are on disk.
    pub(super) fn store_durably(&self, ops: impl IntoIterator<Item = Op>) -> Result<(), AmqpError> {
        match &self.store {
            Some(store) if !store.write_durably(ops) => {
                Err(AmqpError::internal("the change could not be written to disk; see the broker log"))
            }
            _ => Ok(()),
        }
    }

    /// Submits a change without waiting (deletions that follow a decision already made).
    pub(super) fn store_later(&self, op: Op) {
        if let Some(store) = &self.store {
            store.submit(op);
        }
    }

    pub(super) fn exchange_record(&self, ex: &Exchange) -> ExchangeRecord {
        ExchangeRecord {
            vhost: self.name.clone(),
            name: ex.name.clone(),
            kind: ex.kind.as_str().to_owned(),
            auto_delete: ex.auto_delete,
            internal: ex.internal,
            arguments: ex.arguments.clone(),
        }
    }

    pub(super) fn queue_record(&self, q: &Queue) -> Option<QueueRecord> {
        Some(QueueRecord {
            vhost: self.name.clone(),
            name: q.name.clone(),
            id: q.store_id()?,
            auto_delete: q.auto_delete,
            arguments: q.arguments.clone(),
        })
    }

    /// The record of a binding if both its ends are durable.
    pub(super) fn binding_record(&self, source: &Exchange, b: &Binding) -> Option<BindingRecord> {
        let (to_queue, destination) = match &b.destination {
            Destination::Queue(q) if q.is_persisted() => (true, q.name.clone()),
            Destination::Exchange(e) if e.durable => (false, e.name.clone()),
            _ => return None,
        };
        source.durable.then(|| BindingRecord {
            vhost: self.name.clone(),
            source: source.name.clone(),
            to_queue,
            destination,
            key: b.key.clone(),
            arguments: b.arguments.clone(),
        })
    }

    /// Adds a binding, on disk too when both ends are durable. Topology lock held.
    pub(super) fn add_binding(&self, source: &Arc<Exchange>, b: Binding) -> Result<(), AmqpError> {
        let record = self.binding_record(source, &b);
        if source.bind(b) {
            if let Some(record) = record {
                self.store_durably([Op::PutBinding(record)])?;
            }
        }
        Ok(())
    }

    /// Removes a binding (and its record); false if there was none. Topology lock held.
    pub(super) fn drop_binding(&self, source: &Arc<Exchange>, b: &Binding) -> bool {
        if !source.unbind(b) {
            return false;
        }
        if let Some(record) = self.binding_record(source, b) {
            self.store_later(Op::DeleteBinding(record));
        }
        true
    }

    /// Rebuilds this vhost's durable entities and messages from the store:
    /// each queue's head in memory, the rest left paged out.
    pub fn restore(
        self: &Arc<Self>,
        exchanges: Vec<ExchangeRecord>,
        queues: Vec<QueueRecord>,
        bindings: Vec<BindingRecord>,
        backlogs: &mut FxHashMap<u64, Backlog>,
    ) {
        let store = self.store.clone().expect("restoring needs a store");
        let mut shared: FxHashMap<u64, Arc<Message>> = FxHashMap::default();
        for e in exchanges {
            let Some(kind) = ExchangeKind::parse(&e.kind) else {
                warn!(exchange = %e.name, kind = %e.kind, "skipping a stored exchange of an unknown type");
                continue;
            };
            let ex =
                Arc::new(Exchange::new(e.name.clone(), kind, true, e.auto_delete, e.internal, e.arguments));
            self.apply_policy_to_exchange(&ex);
            self.insert_exchange(ex);
        }
        for record in queues {
            let q = Queue::new(
                record.name.clone(),
                self.name.clone(),
                true,
                None,
                record.auto_delete,
                record.arguments,
            )
            .persisted(store.clone(), Some(record.id))
            .in_vhost(Arc::downgrade(self));
            let backlog = backlogs.remove(&record.id).unwrap_or_default();
            let mut head = Vec::with_capacity(backlog.head.len());
            for (place, r) in backlog.head {
                let is_shared = place.has(IndexEntry::SHARED);
                let message = match shared.get(&place.message).filter(|_| is_shared) {
                    Some(m) => m.clone(),
                    None => {
                        let Some(m) = Message::from_record(place.message, &r, is_shared) else {
                            warn!(queue = %record.name, seq = place.seq, "dropping a damaged stored message");
                            let lane = place.has(IndexEntry::PAGED).then_some(place.lane);
                            store.submit(Op::Remove { queue: record.id, seq: place.seq, lane });
                            store.release(place.message, is_shared);
                            continue;
                        };
                        let m = Arc::new(m);
                        if is_shared {
                            shared.insert(place.message, m.clone());
                        }
                        m
                    }
                };
                let redelivered = place.has(IndexEntry::DELIVERED);
                head.push(Entry {
                    seq: place.seq,
                    expires: place.expires,
                    returns: place.returns,
                    priority: message.info.priority.unwrap_or(0),
                    message,
                    redelivered,
                    stored: true,
                    paged: place.has(IndexEntry::PAGED),
                });
            }
            let q = Arc::new(q);
            // Before its messages are back: a policy's delivery limit counts their returns.
            self.apply_policies_to_queue(&q);
            q.restore(head, backlog.paged, backlog.next_seq);
            self.insert_queue(q.clone());
            self.watch_expiry(&q);
        }
        for b in bindings {
            let (Some(source), destination) = (
                self.exchange(&b.source),
                if b.to_queue {
                    self.queue(&b.destination).map(Destination::Queue)
                } else {
                    self.exchange(&b.destination).map(Destination::Exchange)
                },
            ) else {
                continue;
            };
            let Some(destination) = destination else { continue };
            source.bind(Binding { destination, key: b.key, arguments: b.arguments });
        }
        // Everything is back: expiry timers may start (and dead letters route).
        let queues: Vec<_> = self.queues.read().values().cloned().collect();
        for q in queues {
            q.kick();
        }
    }
}
