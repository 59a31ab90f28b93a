//! Exchanges: one file per type, each a routing table behind one `route()`.

mod direct;
mod fanout;
mod headers;
mod list;
mod topic;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use amq_protocol::types::FieldTable;
use parking_lot::RwLock;

use super::policy::Policy;
use super::queue::Queue;
use crate::protocol::AmqpError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExchangeKind {
    Direct,
    Fanout,
    Topic,
    Headers,
}

impl ExchangeKind {
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "direct" => ExchangeKind::Direct,
            "fanout" => ExchangeKind::Fanout,
            "topic" => ExchangeKind::Topic,
            "headers" => ExchangeKind::Headers,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ExchangeKind::Direct => "direct",
            ExchangeKind::Fanout => "fanout",
            ExchangeKind::Topic => "topic",
            ExchangeKind::Headers => "headers",
        }
    }
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
}

#[derive(Debug)]
pub struct Exchange {
    pub name: String,
    pub kind: ExchangeKind,
    pub durable: bool,
    pub auto_delete: bool,
    pub internal: bool,
    pub arguments: FieldTable,
    deleted: AtomicBool,
    routes: RwLock<Routes>,
    /// The policy that applies to it (read only for unroutable messages).
    policy: RwLock<Option<Arc<Policy>>>,
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
        let routes = match kind {
            ExchangeKind::Direct => Routes::Direct(Default::default()),
            ExchangeKind::Fanout => Routes::Fanout(Default::default()),
            ExchangeKind::Topic => Routes::Topic(Default::default()),
            ExchangeKind::Headers => Routes::Headers(Default::default()),
        };
        Exchange {
            name,
            kind,
            durable,
            auto_delete,
            internal,
            arguments,
            deleted: AtomicBool::new(false),
            routes: RwLock::new(routes),
            policy: RwLock::new(None),
        }
    }

    pub fn mark_deleted(&self) {
        self.deleted.store(true, Ordering::Release);
    }

    pub fn is_deleted(&self) -> bool {
        self.deleted.load(Ordering::Acquire)
    }

    /// Checks a binding's arguments before it is added.
    pub fn validate_binding(&self, arguments: &FieldTable) -> Result<(), AmqpError> {
        match self.kind {
            ExchangeKind::Headers => headers::validate(arguments),
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
        }
    }

    /// Removes a binding; false if there was none.
    pub fn unbind(&self, b: &Binding) -> bool {
        match &mut *self.routes.write() {
            Routes::Direct(t) => t.remove(b),
            Routes::Fanout(t) => t.remove(b),
            Routes::Topic(t) => t.remove(b),
            Routes::Headers(t) => t.remove(b),
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
        }
    }

    pub fn has_bindings(&self) -> bool {
        match &*self.routes.read() {
            Routes::Direct(t) => !t.is_empty(),
            Routes::Fanout(t) => !t.is_empty(),
            Routes::Topic(t) => !t.is_empty(),
            Routes::Headers(t) => !t.is_empty(),
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

    /// Appends the destinations a message matches (possibly with repeats).
    pub fn route(
        &self,
        routing_key: &[u8],
        headers: &dyn Fn() -> Option<FieldTable>,
        out: &mut Vec<Destination>,
    ) {
        match &*self.routes.read() {
            Routes::Direct(t) => t.route(routing_key, out),
            Routes::Fanout(t) => t.route(out),
            Routes::Topic(t) => t.route(routing_key, out),
            Routes::Headers(t) => t.route(headers().as_ref(), out),
        }
    }
}
