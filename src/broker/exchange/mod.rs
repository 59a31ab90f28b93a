//! Exchanges: one file per type, each a routing table behind one `route()`.

mod direct;
mod fanout;
mod hash;
mod headers;
mod list;
mod topic;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use amq_protocol::types::FieldTable;
use parking_lot::RwLock;

use super::dedup::Deduper;
use super::delayed::Delayer;
use super::message::Message;
use super::policy::Policy;
use super::queue::Queue;
use crate::protocol::AmqpError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExchangeKind {
    Direct,
    Fanout,
    Topic,
    Headers,
    /// RabbitMQ's `x-consistent-hash` plugin type (`hash.rs`).
    ConsistentHash,
    /// RabbitMQ 4.3's `x-modulus-hash` (`hash.rs`).
    ModulusHash,
    /// The `x-delayed-message` plugin type: routes as its `x-delayed-type`,
    /// once a message's `x-delay` is over (`broker/delayed`).
    DelayedMessage,
}

impl ExchangeKind {
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "direct" => ExchangeKind::Direct,
            "fanout" => ExchangeKind::Fanout,
            "topic" => ExchangeKind::Topic,
            "headers" => ExchangeKind::Headers,
            "x-consistent-hash" => ExchangeKind::ConsistentHash,
            "x-modulus-hash" => ExchangeKind::ModulusHash,
            "x-delayed-message" => ExchangeKind::DelayedMessage,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ExchangeKind::Direct => "direct",
            ExchangeKind::Fanout => "fanout",
            ExchangeKind::Topic => "topic",
            ExchangeKind::Headers => "headers",
            ExchangeKind::ConsistentHash => "x-consistent-hash",
            ExchangeKind::ModulusHash => "x-modulus-hash",
            ExchangeKind::DelayedMessage => "x-delayed-message",
        }
    }

    /// Checks a declare's arguments for this type, as RabbitMQ (and its
    /// plugins) do; returns the type it routes as.
    pub fn check_arguments(self, arguments: &FieldTable) -> Result<ExchangeKind, AmqpError> {
        match arguments.inner().get("x-delayed-exchange") {
            None | Some(amq_protocol::types::AMQPValue::Boolean(_)) => {}
            Some(v) => {
                return Err(AmqpError::precondition_failed(format!(
                    "invalid x-delayed-exchange {}: expected a boolean",
                    crate::protocol::table::describe(v)
                )))
            }
        }
        match self {
            ExchangeKind::DelayedMessage => {
                let inner = arguments.inner().get("x-delayed-type").and_then(crate::protocol::table::as_str);
                let Some(inner) = inner else {
                    return Err(AmqpError::precondition_failed(
                        "Invalid argument, 'x-delayed-type' must be an existing exchange type",
                    ));
                };
                if inner == "x-delayed-message" {
                    return Err(AmqpError::precondition_failed(
                        "Invalid argument, 'x-delayed-message' can't be used for 'x-delayed-type'",
                    ));
                }
                let kind = ExchangeKind::parse(inner).ok_or_else(|| unknown_type(inner))?;
                kind.check_arguments(arguments)
            }
            ExchangeKind::ConsistentHash => hash::validate_exchange(arguments).map(|()| self),
            _ => Ok(self),
        }
    }
}

/// RabbitMQ's answer to a type it does not have: `x-` names could be
/// plugin types it lacks; others are invalid.
pub fn unknown_type(kind: &str) -> AmqpError {
    let adjective = if kind.starts_with("x-") { "unknown" } else { "invalid" };
    AmqpError::command_invalid(format!("{adjective} exchange type '{kind}'"))
}

/// Where a binding leads.
#[derive(Debug, Clone)]
pub enum Destination {
    Queue(Arc<Queue>),
    Exchange(Arc<Exchange>),
}

impl Destination {
    pub fn same(&self, other: &Destination) -> bool {
        match (self, other) {
            (Destination::Queue(a), Destination::Queue(b)) => Arc::ptr_eq(a, b),
            (Destination::Exchange(a), Destination::Exchange(b)) => Arc::ptr_eq(a, b),
            _ => false,
        }
    }
}

#[derive(Debug, Clone)]
pub struct Binding {
    pub destination: Destination,
    pub key: String,
    pub arguments: FieldTable,
}

/// The routing table of one exchange type.
#[derive(Debug)]
enum Routes {
    Direct(direct::Table),
    Fanout(fanout::Table),
    Topic(topic::Table),
    Headers(headers::Table),
    Hash(hash::Table),
}

#[derive(Debug)]
pub struct Exchange {
    pub name: String,
    pub kind: ExchangeKind,
    /// The type it routes as: `kind`, except for a delayed-message
    /// exchange (its `x-delayed-type`).
    pub routes_as: ExchangeKind,
    pub durable: bool,
    pub auto_delete: bool,
    pub internal: bool,
    pub arguments: FieldTable,
    deleted: AtomicBool,
    routes: RwLock<Routes>,
    /// The policy that applies to it (read only for unroutable messages).
    policy: RwLock<Option<Arc<Policy>>>,
    /// Where its delayed messages wait (`x-delayed-message` only).
    delayer: std::sync::OnceLock<Arc<Delayer>>,
    /// The ids it remembers (`x-message-deduplication`).
    dedup: std::sync::OnceLock<Arc<Deduper>>,
}

impl Exchange {
    pub fn new(
        name: String,
        kind: ExchangeKind,
        durable: bool,
        auto_delete: bool,
        internal: bool,
        arguments: FieldTable,
    ) -> Self {
        // Declares check the arguments first; a stored one that no longer
        // passes routes as direct rather than not at all.
        let routes_as = kind.check_arguments(&arguments).unwrap_or(ExchangeKind::Direct);
        let routes = match routes_as {
            ExchangeKind::Direct | ExchangeKind::DelayedMessage => Routes::Direct(Default::default()),
            ExchangeKind::Fanout => Routes::Fanout(Default::default()),
            ExchangeKind::Topic => Routes::Topic(Default::default()),
            ExchangeKind::Headers => Routes::Headers(Default::default()),
            ExchangeKind::ConsistentHash => {
                Routes::Hash(hash::Table::new(hash::Mode::Consistent, &arguments))
            }
            ExchangeKind::ModulusHash => Routes::Hash(hash::Table::new(hash::Mode::Modulus, &arguments)),
        };
        Exchange {
            name,
            kind,
            routes_as,
            durable,
            auto_delete,
            internal,
            arguments,
            deleted: AtomicBool::new(false),
            routes: RwLock::new(routes),
            policy: RwLock::new(None),
            delayer: std::sync::OnceLock::new(),
            dedup: std::sync::OnceLock::new(),
        }
    }

    /// Its deduplication window, if it has one.
    pub fn dedup(&self) -> Option<&Arc<Deduper>> {
        self.dedup.get()
    }

    pub fn set_dedup(&self, d: Arc<Deduper>) {
        let _ = self.dedup.set(d);
    }

    /// Its delayed messages, if it is a delayed-message exchange.
    pub fn delayer(&self) -> Option<&Arc<Delayer>> {
        self.delayer.get()
    }

    pub fn set_delayer(&self, d: Arc<Delayer>) {
        let _ = self.delayer.set(d);
    }

    pub fn mark_deleted(&self) {
        self.deleted.store(true, Ordering::Release);
    }

    pub fn is_deleted(&self) -> bool {
        self.deleted.load(Ordering::Acquire)
    }

    /// Checks a binding's arguments before it is added.
    pub fn validate_binding(&self, key: &str, arguments: &FieldTable) -> Result<(), AmqpError> {
        match self.routes_as {
            ExchangeKind::Headers => headers::validate(arguments),
            ExchangeKind::ConsistentHash => hash::validate_binding(key),
            _ => Ok(()),
        }
    }

    /// Adds a binding; false if it was there already.
    pub fn bind(&self, b: Binding) -> bool {
        match &mut *self.routes.write() {
            Routes::Direct(t) => t.add(b),
            Routes::Fanout(t) => t.add(b),
            Routes::Topic(t) => t.add(b),
            Routes::Headers(t) => t.add(b),
            Routes::Hash(t) => t.add(b),
        }
    }

    /// Removes a binding; false if there was none.
    pub fn unbind(&self, b: &Binding) -> bool {
        match &mut *self.routes.write() {
            Routes::Direct(t) => t.remove(b),
            Routes::Fanout(t) => t.remove(b),
            Routes::Topic(t) => t.remove(b),
            Routes::Headers(t) => t.remove(b),
            Routes::Hash(t) => t.remove(b),
        }
    }

    /// Removes every binding to `dest`; returns them.
    pub fn unbind_destination(&self, dest: &Destination) -> Vec<Binding> {
        let mut removed = self.bindings();
        removed.retain(|b| b.destination.same(dest) && self.unbind(b));
        removed
    }

    pub fn bindings(&self) -> Vec<Binding> {
        match &*self.routes.read() {
            Routes::Direct(t) => t.all(),
            Routes::Fanout(t) => t.all(),
            Routes::Topic(t) => t.all(),
            Routes::Headers(t) => t.all(),
            Routes::Hash(t) => t.all(),
        }
    }

    pub fn has_bindings(&self) -> bool {
        match &*self.routes.read() {
            Routes::Direct(t) => !t.is_empty(),
            Routes::Fanout(t) => !t.is_empty(),
            Routes::Topic(t) => !t.is_empty(),
            Routes::Headers(t) => !t.is_empty(),
            Routes::Hash(t) => !t.is_empty(),
        }
    }

    /// Where unroutable messages go, looked up by `find`: the
    /// `alternate-exchange` argument, else the policy's (the argument wins,
    /// as in RabbitMQ).
    pub fn alternate_exchange<R>(&self, find: impl FnOnce(&str) -> Option<R>) -> Option<R> {
        let argument = self.arguments.inner().get("alternate-exchange");
        if let Some(name) = argument.and_then(crate::protocol::table::as_str) {
            return find(name);
        }
        let policy = self.policy.read().clone()?;
        find(policy.settings.alternate_exchange.as_deref()?)
    }

    /// The policy that applies to it, if any.
    pub fn policy(&self) -> Option<Arc<Policy>> {
        self.policy.read().clone()
    }

    pub fn set_policy(&self, policy: Option<Arc<Policy>>) {
        *self.policy.write() = policy;
    }

    /// Appends the destinations a message matches (possibly with repeats)
    /// for one of its routing keys.
    pub fn route(&self, routing_key: &[u8], msg: &Message, out: &mut Vec<Destination>) {
        match &*self.routes.read() {
            Routes::Direct(t) => t.route(routing_key, out),
            Routes::Fanout(t) => t.route(out),
            Routes::Topic(t) => t.route(routing_key, out),
            Routes::Headers(t) => t.route(msg.headers().as_ref(), out),
            Routes::Hash(t) => t.route(routing_key, msg, out),
        }
    }

    /// Whether it routes by the CC / BCC keys too (hash exchanges hash the
    /// routing key alone, as RabbitMQ's do).
    pub fn routes_extra_keys(&self) -> bool {
        !matches!(self.routes_as, ExchangeKind::ConsistentHash | ExchangeKind::ModulusHash)
    }
}
