//! A virtual host: its exchanges, queues and bindings, and routing.
//!
//! Topology changes (declare, delete, bind) are serialised by one mutex per
//! vhost; publishing only takes read locks on the maps and the routing table
//! of each exchange it passes through.

use std::collections::HashMap;
use std::sync::Arc;

use amq_protocol::types::FieldTable;
use parking_lot::{Mutex, RwLock};

use super::args::{check_equivalent, check_flag, EXCHANGE_EQUIVALENCE_ARGS, QUEUE_EQUIVALENCE_ARGS};
use super::consumer::ConnectionId;
pub use super::durable::{write_failed, Unsynced};
use super::exchange::{Destination, Exchange, ExchangeKind};
use super::names;
use super::queue::Queue;
use crate::protocol::{AmqpError, ErrorKind};
use crate::store::{Op, StoreHandle};

mod bindings;
mod lifecycle;
mod routing;
mod stats;
pub use lifecycle::{Limits, TopologyCaps, VHostMeta, VHOST_SPACE};
pub use routing::{Enqueued, Router};

/// The exchanges every vhost starts with.
const PREDECLARED: &[(&str, ExchangeKind)] = &[
    ("", ExchangeKind::Direct),
    ("amq.direct", ExchangeKind::Direct),
    ("amq.fanout", ExchangeKind::Fanout),
    ("amq.topic", ExchangeKind::Topic),
    ("amq.headers", ExchangeKind::Headers),
    ("amq.match", ExchangeKind::Headers),
];

#[derive(Debug)]
pub struct VHost {
    pub name: String,
    exchanges: RwLock<HashMap<String, Arc<Exchange>>>,
    /// `exchanges[""]`, which can be neither declared nor deleted (but
    /// with its vhost): found without a hash lookup, whose compare of two
    /// empty names goes through a slow `memcmp` (see `protocol::same_name`).
    default_exchange: Arc<Exchange>,
    pub(super) queues: RwLock<HashMap<String, Arc<Queue>>>,
    pub(super) topology: Mutex<()>,
    /// Serialises policy changes among themselves (held across their disk
    /// wait, which the topology lock is not: declares go on meanwhile).
    pub(super) policy_changes: Mutex<()>,
    /// Direct reply-to: each requester channel's private queue, by its full
    /// `amq.rabbitmq.reply-to.<token>` name (not in `queues`).
    replies: RwLock<HashMap<String, Arc<Queue>>>,
    /// Where durable entities and persistent messages go; None keeps all in memory.
    pub(super) store: Option<StoreHandle>,
    /// Description, tags, limits (`lifecycle`).
    meta: RwLock<VHostMeta>,
    /// Set once the vhost is deleted: nothing new may be declared in it.
    deleted: std::sync::atomic::AtomicBool,
    /// Policies and operator policies (`vhost_policy.rs`).
    pub(super) policies: RwLock<super::vhost_policy::Policies>,
    /// Queues declared, made and deleted (RabbitMQ's churn figures).
    pub churn: stats::QueueChurn,
    /// The node's `[limits]` on queues and exchanges (`lifecycle`).
    pub caps: lifecycle::TopologyCaps,
}

/// `exchange.declare` as the broker sees it.
#[derive(Debug, Clone, Default)]
pub struct ExchangeDecl {
    pub name: String,
    pub kind: String,
    pub passive: bool,
    pub durable: bool,
    pub auto_delete: bool,
    pub internal: bool,
    pub arguments: FieldTable,
}

/// `queue.declare` as the broker sees it.
#[derive(Debug, Clone, Default)]
pub struct QueueDecl {
    pub name: String,
    /// `name` was made by the server (`amq.gen-…`) for a declare without
    /// one: the reserved prefix is ours to use.
    pub server_named: bool,
    pub passive: bool,
    pub durable: bool,
    pub exclusive: bool,
    pub auto_delete: bool,
    pub arguments: FieldTable,
}

/// `queue.declare-ok`.
#[derive(Debug, Clone)]
pub struct QueueDeclared {
    pub queue: Arc<Queue>,
    pub message_count: u32,
    pub consumer_count: u32,
}

impl VHost {
    pub fn new(name: &str, store: Option<StoreHandle>) -> Self {
        let exchanges: HashMap<String, Arc<Exchange>> = PREDECLARED
            .iter()
            .map(|(n, k)| {
                let durable = true;
                (
                    n.to_string(),
                    Arc::new(Exchange::new(n.to_string(), *k, durable, false, false, FieldTable::default())),
                )
            })
            .collect();
        VHost {
            name: name.to_owned(),
            default_exchange: exchanges[""].clone(),
            exchanges: RwLock::new(exchanges),
            queues: RwLock::new(HashMap::new()),
            topology: Mutex::new(()),
            policy_changes: Mutex::new(()),
            replies: RwLock::new(HashMap::new()),
            store,
            meta: RwLock::new(VHostMeta::default()),
            deleted: std::sync::atomic::AtomicBool::new(false),
            policies: RwLock::default(),
            churn: stats::QueueChurn::default(),
            caps: lifecycle::TopologyCaps::default(),
        }
    }

    fn no_exchange(&self, name: &str) -> AmqpError {
        AmqpError::not_found(format!("no exchange '{name}' in vhost '{}'", self.name))
    }

    fn no_queue(&self, name: &str) -> AmqpError {
        AmqpError::not_found(format!("no queue '{name}' in vhost '{}'", self.name))
    }

    pub fn exchange(&self, name: &str) -> Option<Arc<Exchange>> {
        if name.is_empty() {
            // Deleted only with its vhost, which then has no exchanges.
            return Some(self.default_exchange.clone()).filter(|e| !e.is_deleted());
        }
        self.exchanges.read().get(name).cloned()
    }

    pub fn queue(&self, name: &str) -> Option<Arc<Queue>> {
        self.queues.read().get(name).cloned()
    }

    /// A queue the connection may use, or 404 / 405.
    pub fn usable_queue(&self, name: &str, conn: ConnectionId) -> Result<Arc<Queue>, AmqpError> {
        let q = self.queue(name).ok_or_else(|| self.no_queue(name))?;
        q.check_access(conn)?;
        Ok(q)
    }

    /// Opens a direct reply-to queue for a requester channel; returns it.
    pub fn open_reply_queue(&self, conn: ConnectionId) -> Arc<Queue> {
        let name = names::generate(REPLY_TO_PREFIX);
        let q = Arc::new(Queue::new(
            name.clone(),
            self.name.clone(),
            false,
            Some(conn),
            false,
            FieldTable::default(),
        ));
        self.replies.write().insert(name, q.clone());
        q
    }

    /// Closes a direct reply-to queue (its consumer went away).
    pub fn close_reply_queue(&self, q: &Arc<Queue>) {
        if self.replies.write().remove(&q.name).is_some() {
            q.delete();
        }
    }

    /// The store durable state goes to, if any.
    pub fn store(&self) -> Option<&StoreHandle> {
        self.store.as_ref()
    }

    /// A delayed-message exchange gets its delayer (`delayed.rs`), a
    /// deduplicating one its window (`dedup.rs`), before anyone can publish
    /// to it.
    pub(super) fn start_extras(self: &Arc<Self>, ex: &Arc<Exchange>) {
        // LavinMQ's form: any type, with `x-delayed-exchange: true`.
        let delaying = matches!(
            ex.arguments.inner().get("x-delayed-exchange"),
            Some(amq_protocol::types::AMQPValue::Boolean(true))
        );
        if ex.kind == ExchangeKind::DelayedMessage || delaying {
            let d = Arc::new(super::delayed::Delayer::new(&self.name, ex, self.store.clone()));
            d.start(Arc::downgrade(self), Arc::downgrade(ex));
            ex.set_delayer(d);
        }
        let store = self.store.as_ref();
        if let Some(d) =
            super::dedup::for_owner(&self.name, &ex.name, false, ex.durable, &ex.arguments, store)
        {
            ex.set_dedup(d);
        }
    }

    /// A deduplicating queue gets its window (`dedup.rs`).
    /// Opens a stream queue's log (at its declaration, or at start-up).
    pub(super) fn open_stream(&self, q: &Arc<Queue>) -> Result<(), AmqpError> {
        if !q.is_stream {
            return Ok(());
        }
        let store = self.store.as_ref();
        let (Some(store), Some(id)) = (store, q.store_id()) else {
            return Err(AmqpError::precondition_failed(format!(
                "stream queue '{}' in vhost '{}' needs a data directory",
                q.name, self.name
            )));
        };
        let Some(dir) = store.streams_dir() else {
            return Err(AmqpError::precondition_failed("streams need a data directory"));
        };
        let retention = super::stream::args::retention(&q.arguments, &q.effective_policy_definition());
        let s = super::stream::Stream::open(q, id, store.clone(), dir, retention).map_err(|e| {
            tracing::error!(queue = %q.name, "cannot open a stream's files: {e}");
            AmqpError::internal(format!("cannot open the files of stream '{}': {e}", q.name))
        })?;
        q.set_stream(s);
        Ok(())
    }

    pub(super) fn start_queue_extras(&self, q: &Queue) {
        let durable = q.durable && q.exclusive_owner.is_none();
        let store = self.store.as_ref();
        if let Some(d) = super::dedup::for_owner(&self.name, &q.name, true, durable, &q.arguments, store) {
            let _ = q.dedup.set(d);
        }
    }

    /// A restored exchange (`restore` skips a record of the default one).
    pub(super) fn insert_exchange(&self, ex: Arc<Exchange>) {
        self.exchanges.write().insert(ex.name.clone(), ex);
    }

    pub(super) fn insert_queue(&self, q: Arc<Queue>) {
        self.queues.write().insert(q.name.clone(), q);
    }

    pub fn exchange_names(&self) -> Vec<String> {
        self.exchanges.read().keys().cloned().collect()
    }

    pub fn queue_names(&self) -> Vec<String> {
        self.queues.read().keys().cloned().collect()
    }

    /// `exchange.declare`: made in memory, its record (if durable)
    /// submitted but maybe not yet on disk (`durable.rs`).
    pub fn start_declare_exchange(self: &Arc<Self>, d: ExchangeDecl) -> Result<Option<Unsynced>, AmqpError> {
        let _topology = self.topology.lock();
        if d.name.is_empty() {
            return Err(default_exchange());
        }
        if let Some(existing) = self.exchange(&d.name) {
            if d.passive {
                return Ok(None);
            }
            let n = &d.name;
            check_flag("type", "exchange", n, &self.name, existing.kind.as_str(), d.kind.as_str())?;
            check_flag("durable", "exchange", n, &self.name, existing.durable, d.durable)?;
            check_flag("auto_delete", "exchange", n, &self.name, existing.auto_delete, d.auto_delete)?;
            check_flag("internal", "exchange", n, &self.name, existing.internal, d.internal)?;
            return check_equivalent(
                EXCHANGE_EQUIVALENCE_ARGS,
                "exchange",
                n,
                &self.name,
                &existing.arguments,
                &d.arguments,
            )
            .map(|()| None);
        }
        if d.passive {
            return Err(self.no_exchange(&d.name));
        }
        let kind = ExchangeKind::parse(&d.kind).ok_or_else(|| super::exchange::unknown_type(&d.kind))?;
        kind.check_arguments(&d.arguments)?;
        super::dedup::settings(&d.arguments, &format!("exchange '{}' in vhost '{}'", d.name, self.name))?;
        if d.name.starts_with("amq.") {
            return Err(reserved("exchange", &d.name));
        }
        self.check_exchange_limit(&d.name)?;
        let ex =
            Arc::new(Exchange::new(d.name.clone(), kind, d.durable, d.auto_delete, d.internal, d.arguments));
        self.apply_policy_to_exchange(&ex);
        // Submitted before anyone can see it: what they write of it comes after.
        let change = self.submit_exchange(&ex);
        self.start_extras(&ex);
        self.exchanges.write().insert(d.name, ex);
        Ok(change)
    }

    pub fn delete_exchange(&self, name: &str, if_unused: bool) -> Result<(), AmqpError> {
        let _topology = self.topology.lock();
        if name.is_empty() {
            return Err(default_exchange());
        }
        if name.starts_with("amq.") {
            return Err(AmqpError::access_refused(format!(
                "deletion of system exchange '{name}' in vhost '{}' not allowed",
                self.name
            )));
        }
        let Some(ex) = self.exchange(name) else {
            return Ok(()); // deleting what is not there succeeds, as in RabbitMQ
        };
        if if_unused && ex.has_bindings() {
            return Err(AmqpError::precondition_failed(format!(
                "exchange '{name}' in vhost '{}' in use",
                self.name
            )));
        }
        self.remove_exchange(&ex);
        Ok(())
    }

    /// Removes an exchange and every binding from or to it. Topology lock held.
    pub(super) fn remove_exchange(&self, ex: &Arc<Exchange>) {
        self.exchanges.write().remove(&ex.name);
        ex.mark_deleted();
        if let Some(d) = ex.delayer() {
            d.stop();
        }
        if let Some(d) = ex.dedup() {
            d.drop_all();
        }
        if ex.durable {
            self.store_later(Op::DeleteExchange { vhost: self.name.clone(), name: ex.name.clone() });
        }
        for b in ex.bindings() {
            self.drop_binding(ex, &b);
        }
        self.unbind_everywhere(&Destination::Exchange(ex.clone()));
    }

    /// Removes every binding leading to `dest`, deleting auto-delete
    /// exchanges left without bindings. Topology lock held.
    fn unbind_everywhere(&self, dest: &Destination) {
        let exchanges: Vec<_> = self.exchanges.read().values().cloned().collect();
        for ex in exchanges {
            let removed = ex.unbind_destination(dest);
            for b in &removed {
                if let Some(record) = self.binding_record(&ex, b) {
                    self.store_later(Op::DeleteBinding(Box::new(record)));
                }
            }
            if !removed.is_empty() {
                self.auto_delete_if_unbound(&ex);
            }
        }
    }

    fn auto_delete_if_unbound(&self, ex: &Arc<Exchange>) {
        if ex.auto_delete && !ex.has_bindings() && self.exchange(&ex.name).is_some() {
            self.remove_exchange(ex);
        }
    }

    /// `queue.declare`: made in memory, its record (if persisted)
    /// submitted but maybe not yet on disk (`durable.rs`).
    pub fn start_declare_queue(
        self: &Arc<Self>,
        d: QueueDecl,
        conn: ConnectionId,
    ) -> Result<(QueueDeclared, Option<Unsynced>), AmqpError> {
        let _topology = self.topology.lock();
        if !d.passive {
            self.churn.declared.add(1);
        }
        let name = if d.name.is_empty() && !d.passive { names::queue_name() } else { d.name.clone() };
        if !d.passive && !d.server_named && d.name.starts_with("amq.") {
            return Err(reserved("queue", &name));
        }
        if let Some(q) = self.queue(&name) {
            q.check_access(conn)?;
            if !d.passive {
                let v = &self.name;
                check_flag("durable", "queue", &name, v, q.durable, d.durable)?;
                if q.exclusive_owner.is_some() != d.exclusive {
                    return Err(q.locked());
                }
                check_flag("auto_delete", "queue", &name, v, q.auto_delete, d.auto_delete)?;
                check_equivalent(QUEUE_EQUIVALENCE_ARGS, "queue", &name, v, &q.arguments, &d.arguments)?;
            }
            // Even a passive declare counts as use (`x-expires`), as in RabbitMQ.
            q.touch();
            let declared = QueueDeclared {
                message_count: q.message_count(),
                consumer_count: q.consumer_count(),
                queue: q,
            };
            return Ok((declared, None));
        }
        if d.passive {
            return Err(self.no_queue(&name));
        }
        self.check_queue_limit(&name)?;
        if d.name.is_empty() && super::queue_args::is_stream(&d.arguments) {
            return Err(AmqpError::precondition_failed(
                "Cannot declare a server-named queue for type rabbit_stream_queue",
            ));
        }
        super::queue_args::validate(&d.arguments, &name, &self.name, d.durable, d.exclusive, d.auto_delete)?;
        let owner = d.exclusive.then_some(conn);
        let mut q = Queue::new(name.clone(), self.name.clone(), d.durable, owner, d.auto_delete, d.arguments)
            .in_vhost(Arc::downgrade(self));
        // Exclusive queues die with their connection: nothing of them is kept.
        if let Some(store) = &self.store {
            q = if d.durable && !d.exclusive {
                q.persisted(store.clone(), None)
            } else {
                q.paging(store.clone())
            };
        }
        let q = Arc::new(q);
        self.open_stream(&q)?;
        self.apply_policies_to_queue(&q);
        self.start_queue_extras(&q);
        // Submitted before anyone can see it: what they write of it comes after.
        let change = self.submit_queue(&q);
        self.queues.write().insert(name, q.clone());
        self.churn.created.add(1);
        self.watch_expiry(&q);
        Ok((QueueDeclared { queue: q, message_count: 0, consumer_count: 0 }, change))
    }

    /// Deletes a queue; returns its ready message count.
    pub fn delete_queue(
        &self,
        name: &str,
        if_unused: bool,
        if_empty: bool,
        conn: ConnectionId,
    ) -> Result<u32, AmqpError> {
        let _topology = self.topology.lock();
        let Some(q) = self.queue(name) else { return Ok(0) };
        q.check_access(conn)?;
        if if_unused && !q.is_unused() {
            return Err(AmqpError::precondition_failed(format!(
                "queue '{name}' in vhost '{}' in use",
                self.name
            )));
        }
        // A stream is deleted `if_empty` or not, as RabbitMQ does.
        if if_empty && !q.is_empty() && !q.is_stream {
            return Err(AmqpError::precondition_failed(format!(
                "queue '{name}' in vhost '{}' not empty",
                self.name
            )));
        }
        Ok(self.remove_queue(&q))
    }

    /// Deletes a queue that lost its last consumer, if it is still there.
    pub fn delete_auto_delete_queue(&self, q: &Arc<Queue>) {
        let _topology = self.topology.lock();
        if self.queue(&q.name).is_some_and(|cur| Arc::ptr_eq(&cur, q)) && q.is_unused() {
            self.remove_queue(q);
        }
    }

    /// Deletes the exclusive queues a closing connection owned.
    pub fn connection_closed(&self, conn: ConnectionId) {
        let _topology = self.topology.lock();
        let owned: Vec<_> =
            self.queues.read().values().filter(|q| q.exclusive_owner == Some(conn)).cloned().collect();
        for q in owned {
            self.remove_queue(&q);
        }
    }

    /// Topology lock held.
    pub(super) fn remove_queue(&self, q: &Arc<Queue>) -> u32 {
        self.unlist_queue(q);
        self.unbind_everywhere(&Destination::Queue(q.clone()));
        // The queue first: it settles its paged-out places before the
        // DeleteQueue drops its index.
        let ready = q.delete();
        if let Some(d) = q.dedup.get() {
            d.drop_all();
        }
        if let Some(id) = q.store_id() {
            let (vhost, name, last_lane) = (self.name.clone(), q.name.clone(), q.last_lane());
            self.store_later(Op::DeleteQueue { vhost, name, id, last_lane });
        }
        ready
    }

    pub fn purge_queue(&self, name: &str, conn: ConnectionId) -> Result<u32, AmqpError> {
        Ok(self.usable_queue(name, conn)?.purge())
    }

    /// Deletes queues with `x-expires` once they have been unused that long.
    pub(super) fn watch_expiry(self: &Arc<Self>, q: &Arc<Queue>) {
        let (Some(after), Ok(rt)) = (q.expires_after(), tokio::runtime::Handle::try_current()) else {
            return;
        };
        let (vhost, queue, generation) = (Arc::downgrade(self), Arc::downgrade(q), q.expiry_generation());
        rt.spawn(async move {
            loop {
                let (Some(v), Some(q)) = (vhost.upgrade(), queue.upgrade()) else { return };
                // A policy changed `expires`: the watcher started then takes over.
                if q.is_deleted() || q.expiry_generation() != generation {
                    return;
                }
                let now = super::queue::now_ms();
                let wait = match q.expires_at() {
                    Some(at) if at <= now => {
                        let _topology = v.topology.lock();
                        if v.queue(&q.name).is_some_and(|cur| Arc::ptr_eq(&cur, &q))
                            && q.expires_at().is_some_and(|at| at <= super::queue::now_ms())
                        {
                            v.remove_queue(&q);
                        }
                        continue;
                    }
                    Some(at) => at - now,
                    // In use: look again later (not more than ten times a second).
                    None => after.max(100),
                };
                drop((v, q));
                tokio::time::sleep(std::time::Duration::from_millis(wait)).await;
            }
        });
    }
}

/// The pseudo-queue requesters consume from for direct reply-to.
pub const REPLY_TO: &str = "amq.rabbitmq.reply-to";
/// What `reply_to` is rewritten to start with; replies are routed by it.
pub const REPLY_TO_PREFIX: &str = "amq.rabbitmq.reply-to.";

fn default_exchange() -> AmqpError {
    AmqpError::access_refused("operation not permitted on the default exchange")
}

fn reserved(what: &str, name: &str) -> AmqpError {
    AmqpError::new(ErrorKind::AccessRefused, format!("{what} name '{name}' contains reserved prefix 'amq.*'"))
}
