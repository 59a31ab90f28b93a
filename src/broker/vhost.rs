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
use super::deadletter::{self, Reason};
pub use super::durable::{write_failed, Unsynced};
use super::exchange::{Binding, Destination, Exchange, ExchangeKind};
use super::message::Message;
use super::names;
use super::queue::{Queue, Taken};
use crate::protocol::{AmqpError, ErrorKind};
use crate::store::{Op, StoreHandle};

mod lifecycle;
mod stats;
pub use lifecycle::{Limits, TopologyCaps, VHostMeta, VHOST_SPACE};

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

/// A connection's routing state: buffers reused for every message, and a
/// memo of the exchange and default-exchange queue it used last, so steady
/// publishing skips the name lookups (entries are checked against deletion).
#[derive(Debug, Default)]
pub struct Router {
    /// The queues the last message reached.
    pub queues: Vec<Arc<Queue>>,
    pending: Vec<Destination>,
    visited: Vec<usize>,
    cache_exchange: Option<Arc<Exchange>>,
    cache_queue: Option<Arc<Queue>>,
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
        let exchanges = PREDECLARED
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
                    self.store_later(Op::DeleteBinding(record));
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

    fn bindable_source(&self, name: &str) -> Result<Arc<Exchange>, AmqpError> {
        if name.is_empty() {
            return Err(default_exchange());
        }
        self.exchange(name).ok_or_else(|| self.no_exchange(name))
    }

    /// `queue.bind`: made in memory, its record (if both ends are
    /// durable) submitted but maybe not yet on disk (`durable.rs`).
    pub fn start_bind_queue(
        &self,
        queue: &str,
        exchange: &str,
        key: &str,
        arguments: FieldTable,
        conn: ConnectionId,
    ) -> Result<Option<Unsynced>, AmqpError> {
        let _topology = self.topology.lock();
        let q = self.usable_queue(queue, conn)?;
        let ex = self.bindable_source(exchange)?;
        ex.validate_binding(key, &arguments)?;
        let b = Binding { destination: Destination::Queue(q), key: key.to_owned(), arguments };
        Ok(self.add_binding(&ex, b))
    }

    pub fn unbind_queue(
        &self,
        queue: &str,
        exchange: &str,
        key: &str,
        arguments: FieldTable,
    ) -> Result<(), AmqpError> {
        let _topology = self.topology.lock();
        if exchange.is_empty() {
            return Err(default_exchange());
        }
        // Unbinding what is not there succeeds, as in RabbitMQ.
        let (Some(ex), Some(q)) = (self.exchange(exchange), self.queue(queue)) else { return Ok(()) };
        if self.drop_binding(
            &ex,
            &Binding { destination: Destination::Queue(q), key: key.to_owned(), arguments },
        ) {
            self.auto_delete_if_unbound(&ex);
        }
        Ok(())
    }

    /// `exchange.bind`: as `start_bind_queue`.
    pub fn start_bind_exchange(
        &self,
        destination: &str,
        source: &str,
        key: &str,
        arguments: FieldTable,
    ) -> Result<Option<Unsynced>, AmqpError> {
        let _topology = self.topology.lock();
        let dest = self.bindable_source(destination)?;
        let src = self.bindable_source(source)?;
        src.validate_binding(key, &arguments)?;
        let b = Binding { destination: Destination::Exchange(dest), key: key.to_owned(), arguments };
        Ok(self.add_binding(&src, b))
    }

    pub fn unbind_exchange(
        &self,
        destination: &str,
        source: &str,
        key: &str,
        arguments: FieldTable,
    ) -> Result<(), AmqpError> {
        let _topology = self.topology.lock();
        if destination.is_empty() || source.is_empty() {
            return Err(default_exchange());
        }
        let (Some(dest), Some(src)) = (self.exchange(destination), self.exchange(source)) else {
            return Ok(());
        };
        if self.drop_binding(
            &src,
            &Binding { destination: Destination::Exchange(dest), key: key.to_owned(), arguments },
        ) {
            self.auto_delete_if_unbound(&src);
        }
        Ok(())
    }

    /// The exchange a `basic.publish` names: 404 if missing, 403 if internal.
    pub fn publish_exchange(&self, name: &[u8], router: &mut Router) -> Result<Arc<Exchange>, AmqpError> {
        if let Some(ex) =
            router.cache_exchange.as_ref().filter(|e| same(e.name.as_bytes(), name) && !e.is_deleted())
        {
            return Ok(ex.clone());
        }
        let ex = std::str::from_utf8(name)
            .ok()
            .and_then(|n| self.exchanges.read().get(n).cloned())
            .ok_or_else(|| self.no_exchange(&String::from_utf8_lossy(name)))?;
        if ex.internal {
            return Err(AmqpError::access_refused(format!(
                "cannot publish to internal exchange '{}' in vhost '{}'",
                ex.name, self.name
            )));
        }
        router.cache_exchange = Some(ex.clone());
        Ok(ex)
    }

    /// Collects into `router.queues` the queues a message published to
    /// `exchange` reaches, each once, following exchange-to-exchange
    /// bindings (cycles are cut). Nothing is allocated in the steady state.
    pub fn route(&self, exchange: &Arc<Exchange>, msg: &Message, bcc: &[String], router: &mut Router) {
        let Router { pending, visited, queues, cache_queue, .. } = router;
        queues.clear();
        if exchange.name.is_empty() {
            let key = msg.routing_key();
            if key.starts_with(REPLY_TO_PREFIX.as_bytes()) {
                // A reply to a vanished requester is dropped (or returned if mandatory).
                if let Some(q) =
                    std::str::from_utf8(key).ok().and_then(|k| self.replies.read().get(k).cloned())
                {
                    queues.push(q);
                }
                return;
            }
            if let Some(q) = cache_queue.as_ref().filter(|q| same(q.name.as_bytes(), key) && !q.is_deleted())
            {
                queues.push(q.clone());
            } else if let Some(q) = std::str::from_utf8(key).ok().and_then(|k| self.queue(k)) {
                *cache_queue = Some(q.clone());
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

    /// Hands a routed message to `queues` (emptied). A persistent message
    /// reaching durable queues is written to the store once, however many
    /// queues: `on_disk` says so (not if its one durable queue handed it
    /// to a no-ack consumer unwritten). Queues that refuse it (full, with
    /// reject-publish) make it `rejected`.
    pub fn enqueue(&self, mut message: Arc<Message>, queues: &mut Vec<Arc<Queue>>) -> Enqueued {
        let mut out = Enqueued::default();
        let holders = if message.info.persistent() {
            queues.iter().filter(|q| q.is_persisted()).count() as u32
        } else {
            0
        };
        if holders > 0 {
            if let (Some(store), Some(m)) = (&self.store, Arc::get_mut(&mut message)) {
                m.store_id = store.next_id();
                // Written once for all its queues; a message for one queue
                // is written by that queue (in memory or paged out).
                if holders > 1 {
                    m.shared = true;
                    store.refs().add(m.store_id, holders);
                    store.submit(Op::PutMessage { id: m.store_id, record: m.record() });
                }
                out.on_disk = true;
            }
        }
        let mut streams = false;
        for q in queues.drain(..) {
            // A stream writes every message to its log: its confirm follows the disk.
            streams |= q.is_stream;
            // A deduplicating queue drops a duplicate itself (confirmed).
            let taken = q.offer(message.clone());
            let accepted = taken != Taken::Refused;
            // Discarded: held by that queue alone (unshared), never written.
            if taken == Taken::Discarded {
                out.on_disk = false;
                out.discarded = true;
            }
            out.taken |= accepted;
            out.rejected |= !accepted;
            if out.congested.is_none() && q.is_congested() {
                out.congested = Some(q);
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
        self.enqueue(message, &mut router.queues);
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

/// The pseudo-queue requesters consume from for direct reply-to.
pub const REPLY_TO: &str = "amq.rabbitmq.reply-to";
/// What `reply_to` is rewritten to start with; replies are routed by it.
pub const REPLY_TO_PREFIX: &str = "amq.rabbitmq.reply-to.";

/// Name equality without a libc call for the common empty and short names.
#[inline]
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x == y)
}

fn default_exchange() -> AmqpError {
    AmqpError::access_refused("operation not permitted on the default exchange")
}

fn reserved(what: &str, name: &str) -> AmqpError {
    AmqpError::new(ErrorKind::AccessRefused, format!("{what} name '{name}' contains reserved prefix 'amq.*'"))
}
