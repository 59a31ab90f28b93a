//! How a vhost's entities reach the store, and how they come back from it
//! at start-up. Durable exchanges, durable non-exclusive queues and the
//! bindings between durable ends are written; nothing else is.
//!
//! A topology change is made in memory and its records submitted under the
//! topology lock, but nobody waits for the disk under it: the change comes
//! back as [`Unsynced`], durable once a store barrier after it says so (an
//! AMQP connection waits for that without blocking a runtime worker; the
//! blocking wrappers here are for threads that may block, e.g. the admin
//! API's). Records are submitted before the change is visible, so whatever
//! another connection then writes about it (a message for a new queue) is
//! on disk after it: the writer keeps submission order.

use std::sync::Arc;

use rustc_hash::FxHashMap;
use tracing::warn;

use super::exchange::{Binding, Destination, Exchange, ExchangeKind};
use super::message::Message;
use super::queue::{Entry, Queue};
use super::vhost::{ExchangeDecl, QueueDecl, QueueDeclared, VHost};
use super::ConnectionId;
use crate::protocol::AmqpError;
use crate::store::recovery::Backlog;
use crate::store::{BindingRecord, ExchangeRecord, IndexEntry, Op, QueueRecord};

/// A topology change made in memory whose records are on their way to
/// disk; undone (`VHost::undo`) if they cannot be written.
#[derive(Debug)]
#[must_use = "a change is durable only once a store barrier says so"]
pub enum Unsynced {
    Exchange(Arc<Exchange>),
    Queue(Arc<Queue>),
    Binding(Arc<Exchange>, Binding),
}

/// The error a change that could not be written to disk gets (541, the connection closes).
pub fn write_failed() -> AmqpError {
    AmqpError::internal("the change could not be written to disk; see the broker log")
}

impl VHost {
    /// Submits topology records; true if there is a store to wait for.
    fn submit_durably(&self, ops: impl IntoIterator<Item = Op>) -> bool {
        let Some(store) = &self.store else { return false };
        for op in ops {
            store.submit(op);
        }
        true
    }

    /// Submits a change without waiting (deletions that follow a decision already made).
    pub(super) fn store_later(&self, op: Op) {
        if let Some(store) = &self.store {
            store.submit(op);
        }
    }

    /// Blocks the thread until `change` is durable; undoes it if it could
    /// not be written. Not for runtime workers: connections wait with a
    /// store barrier instead.
    pub fn settle(&self, change: Option<Unsynced>) -> Result<(), AmqpError> {
        let (Some(change), Some(store)) = (change, &self.store) else { return Ok(()) };
        if store.write_durably([]) {
            return Ok(());
        }
        self.undo(change);
        Err(write_failed())
    }

    /// Takes back a change whose records could not be written, if it is
    /// still there: as before, a failed declare leaves nothing behind.
    pub fn undo(&self, change: Unsynced) {
        let _topology = self.topology.lock();
        match change {
            Unsynced::Exchange(ex) => {
                if self.exchange(&ex.name).is_some_and(|cur| Arc::ptr_eq(&cur, &ex)) {
                    self.remove_exchange(&ex);
                }
            }
            Unsynced::Queue(q) => {
                if self.queue(&q.name).is_some_and(|cur| Arc::ptr_eq(&cur, &q)) {
                    self.remove_queue(&q);
                }
            }
            Unsynced::Binding(source, b) => {
                self.drop_binding(&source, &b);
            }
        }
    }

    /// `exchange.declare`, waiting for the disk (see `settle`).
    pub fn declare_exchange(self: &Arc<Self>, d: ExchangeDecl) -> Result<(), AmqpError> {
        let change = self.start_declare_exchange(d)?;
        self.settle(change)
    }

    /// `queue.declare`, waiting for the disk (see `settle`).
    pub fn declare_queue(
        self: &Arc<Self>,
        d: QueueDecl,
        conn: ConnectionId,
    ) -> Result<QueueDeclared, AmqpError> {
        let (declared, change) = self.start_declare_queue(d, conn)?;
        self.settle(change)?;
        Ok(declared)
    }

    /// `queue.bind`, waiting for the disk (see `settle`).
    pub fn bind_queue(
        &self,
        queue: &str,
        exchange: &str,
        key: &str,
        arguments: amq_protocol::types::FieldTable,
        conn: ConnectionId,
    ) -> Result<(), AmqpError> {
        let change = self.start_bind_queue(queue, exchange, key, arguments, conn)?;
        self.settle(change)
    }

    /// `exchange.bind`, waiting for the disk (see `settle`).
    pub fn bind_exchange(
        &self,
        destination: &str,
        source: &str,
        key: &str,
        arguments: amq_protocol::types::FieldTable,
    ) -> Result<(), AmqpError> {
        let change = self.start_bind_exchange(destination, source, key, arguments)?;
        self.settle(change)
    }

    /// The record of a new durable exchange, submitted. Topology lock held.
    pub(super) fn submit_exchange(&self, ex: &Arc<Exchange>) -> Option<Unsynced> {
        let durable =
            ex.durable && self.submit_durably([Op::PutExchange(Box::new(self.exchange_record(ex)))]);
        durable.then(|| Unsynced::Exchange(ex.clone()))
    }

    /// The record of a new persisted queue, submitted. Topology lock held.
    pub(super) fn submit_queue(&self, q: &Arc<Queue>) -> Option<Unsynced> {
        let record = self.queue_record(q)?;
        self.submit_durably([Op::PutQueue(Box::new(record))]).then(|| Unsynced::Queue(q.clone()))
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

    /// Adds a binding, its record submitted when both ends are durable.
    /// Topology lock held.
    pub(super) fn add_binding(&self, source: &Arc<Exchange>, b: Binding) -> Option<Unsynced> {
        let record = self.binding_record(source, &b);
        let change = record.is_some().then(|| Unsynced::Binding(source.clone(), b.clone()));
        if !source.bind(b) {
            return None;
        }
        self.submit_durably(record.map(|r| Op::PutBinding(Box::new(r)))).then_some(change).flatten()
    }

    /// Removes a binding (and its record); false if there was none. Topology lock held.
    pub(super) fn drop_binding(&self, source: &Arc<Exchange>, b: &Binding) -> bool {
        if !source.unbind(b) {
            return false;
        }
        if let Some(record) = self.binding_record(source, b) {
            self.store_later(Op::DeleteBinding(Box::new(record)));
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
            if e.name.is_empty() {
                // Never declared, so never stored: none is set up for it.
                warn!(vhost = %self.name, "skipping a stored record of the default exchange");
                continue;
            }
            let Some(kind) = ExchangeKind::parse(&e.kind) else {
                warn!(exchange = %e.name, kind = %e.kind, "skipping a stored exchange of an unknown type");
                continue;
            };
            let ex =
                Arc::new(Exchange::new(e.name.clone(), kind, true, e.auto_delete, e.internal, e.arguments));
            self.apply_policy_to_exchange(&ex);
            self.start_extras(&ex);
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
            self.start_queue_extras(&q);
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
                            // A message kept in its place or page goes with it.
                            if place.apart() {
                                store.release(place.message, is_shared);
                            }
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
            if let Err(e) = self.open_stream(&q) {
                warn!(queue = %record.name, "{e}: the stream is left out");
                continue;
            }
            // Before its messages are back: a policy's delivery limit counts their returns.
            self.apply_policies_to_queue(&q);
            q.restore(head, backlog.paged, backlog.next_seq, backlog.delivered_below);
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
