//! `queue.bind` / `exchange.bind` and their unbinds: checked against the
//! vhost's exchanges and queues under its topology lock.

use std::sync::Arc;

use amq_protocol::types::FieldTable;

use super::{default_exchange, Unsynced, VHost};
use crate::broker::consumer::ConnectionId;
use crate::broker::exchange::{Binding, Destination, Exchange};
use crate::protocol::AmqpError;

impl VHost {
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
}
