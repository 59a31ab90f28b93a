//! `exchange.*` and `queue.*` methods: declare, delete, bind, unbind, purge,
//! each checked against the user's permissions first, by RabbitMQ's table
//! (a passive declare needs none; permission before existence).

use amq_protocol::protocol::{exchange, queue, AMQPClass};
use amq_protocol::types::FieldTable;

use super::channel::{Channel, Ctx};
use super::wait::Removed;
use crate::access::session::Action::{Configure, Read, Write};
use crate::access::Resource::{Exchange, Queue};
use crate::broker::exchange::ExchangeKind;
use crate::broker::names;
use crate::broker::vhost::{ExchangeDecl, QueueDecl, REPLY_TO};
use crate::protocol::table::as_str;
use crate::protocol::AmqpError;

/// A string argument naming an exchange (`alternate-exchange`, `x-dead-letter-exchange`).
fn exchange_arg<'a>(args: &'a FieldTable, key: &str) -> Option<&'a str> {
    args.inner().get(key).and_then(as_str)
}

/// A binding's routing key on a topic exchange, against topic permissions
/// (read, as RabbitMQ checks bindings).
fn check_bind_topic(ctx: &mut Ctx, source: &str, key: &str) -> Result<(), AmqpError> {
    if !ctx.session.has_topic_permissions() {
        return Ok(());
    }
    match ctx.vhost.exchange(source) {
        Some(ex) if ex.routes_as == ExchangeKind::Topic => ctx.session.check_topic(source, key, Read),
        _ => Ok(()),
    }
}

impl Channel {
    pub(super) fn handle_exchange(
        &mut self,
        m: exchange::AMQPMethod,
        ctx: &mut Ctx,
    ) -> Result<(), AmqpError> {
        use exchange::AMQPMethod as E;
        let v = ctx.vhost.clone();
        let mut change = None;
        // Deleting something durable: delete-ok once that is on disk, so a
        // crash after it cannot bring the exchange back.
        let mut removed = Removed::Nothing;
        let (nowait, ok) = match m {
            E::Declare(d) => {
                if !d.passive {
                    ctx.session.check(Exchange, d.exchange.as_str(), Configure)?;
                    // RabbitMQ's order: read on the exchange, then write on its AE.
                    if let Some(ae) = exchange_arg(&d.arguments, "alternate-exchange") {
                        ctx.session.check(Exchange, d.exchange.as_str(), Read)?;
                        ctx.session.check(Exchange, ae, Write)?;
                    }
                }
                change = v.start_declare_exchange(ExchangeDecl {
                    name: d.exchange.to_string(),
                    kind: d.kind.to_string(),
                    passive: d.passive,
                    durable: d.durable,
                    auto_delete: d.auto_delete,
                    internal: d.internal,
                    arguments: d.arguments,
                })?;
                (d.nowait, E::DeclareOk(exchange::DeclareOk {}))
            }
            E::Delete(d) => {
                ctx.session.check(Exchange, d.exchange.as_str(), Configure)?;
                if v.exchange(d.exchange.as_str()).is_some_and(|x| x.durable) {
                    removed = Removed::Durable;
                }
                v.delete_exchange(d.exchange.as_str(), d.if_unused)?;
                (d.nowait, E::DeleteOk(exchange::DeleteOk {}))
            }
            E::Bind(b) => {
                ctx.session.check(Exchange, b.destination.as_str(), Write)?;
                ctx.session.check(Exchange, b.source.as_str(), Read)?;
                check_bind_topic(ctx, b.source.as_str(), b.routing_key.as_str())?;
                change = v.start_bind_exchange(
                    b.destination.as_str(),
                    b.source.as_str(),
                    b.routing_key.as_str(),
                    b.arguments,
                )?;
                (b.nowait, E::BindOk(exchange::BindOk {}))
            }
            E::Unbind(b) => {
                ctx.session.check(Exchange, b.destination.as_str(), Write)?;
                ctx.session.check(Exchange, b.source.as_str(), Read)?;
                check_bind_topic(ctx, b.source.as_str(), b.routing_key.as_str())?;
                v.unbind_exchange(
                    b.destination.as_str(),
                    b.source.as_str(),
                    b.routing_key.as_str(),
                    b.arguments,
                )?;
                (b.nowait, E::UnbindOk(exchange::UnbindOk {}))
            }
            _ => return Err(AmqpError::command_invalid("a client may not send this exchange method")),
        };
        // A durable change is answered once it is on disk.
        self.reply_when_durable(ctx, (!nowait).then_some(AMQPClass::Exchange(ok)), change, removed);
        Ok(())
    }

    pub(super) fn handle_queue(&mut self, m: queue::AMQPMethod, ctx: &mut Ctx) -> Result<(), AmqpError> {
        use queue::AMQPMethod as Q;
        let v = ctx.vhost.clone();
        let conn = ctx.conn;
        let mut change = None;
        // As for exchanges: a durable queue's delete-ok or purge-ok waits for the disk.
        let mut removed = Removed::Nothing;
        let (nowait, ok) = match m {
            Q::Declare(d) if d.passive && d.queue.as_str() == REPLY_TO => {
                // RabbitMQ answers for the direct reply-to pseudo-queue.
                let ok = queue::DeclareOk { queue: REPLY_TO.into(), message_count: 0, consumer_count: 1 };
                (d.nowait, Q::DeclareOk(ok))
            }
            Q::Declare(d) => {
                // A server-named queue is checked under the name it gets, as in RabbitMQ.
                let server_named = d.queue.as_str().is_empty() && !d.passive;
                let name = if server_named { names::queue_name() } else { d.queue.to_string() };
                if !d.passive {
                    ctx.session.check(Queue, &name, Configure)?;
                    if let Some(dlx) = exchange_arg(&d.arguments, "x-dead-letter-exchange") {
                        ctx.session.check(Queue, &name, Read)?;
                        ctx.session.check(Exchange, dlx, Write)?;
                    }
                }
                let declared;
                (declared, change) = v.start_declare_queue(
                    QueueDecl {
                        name,
                        server_named,
                        passive: d.passive,
                        durable: d.durable,
                        exclusive: d.exclusive,
                        auto_delete: d.auto_delete,
                        arguments: d.arguments,
                    },
                    conn,
                )?;
                let name = declared.queue.name.clone();
                self.last_queue = Some(name.clone());
                let ok = queue::DeclareOk {
                    queue: name.into(),
                    message_count: declared.message_count,
                    consumer_count: declared.consumer_count,
                };
                (d.nowait, Q::DeclareOk(ok))
            }
            Q::Bind(b) => {
                let name = self.queue_name(b.queue.as_str())?;
                ctx.session.check(Queue, &name, Write)?;
                ctx.session.check(Exchange, b.exchange.as_str(), Read)?;
                check_bind_topic(ctx, b.exchange.as_str(), b.routing_key.as_str())?;
                let name = self.resolve_queue(&name, ctx)?.name.clone();
                change = v.start_bind_queue(
                    &name,
                    b.exchange.as_str(),
                    b.routing_key.as_str(),
                    b.arguments,
                    conn,
                )?;
                (b.nowait, Q::BindOk(queue::BindOk {}))
            }
            Q::Unbind(b) => {
                let name = if b.queue.as_str().is_empty() {
                    self.resolve_queue("", ctx)?.name.clone()
                } else {
                    b.queue.to_string()
                };
                ctx.session.check(Queue, &name, Write)?;
                ctx.session.check(Exchange, b.exchange.as_str(), Read)?;
                check_bind_topic(ctx, b.exchange.as_str(), b.routing_key.as_str())?;
                v.unbind_queue(&name, b.exchange.as_str(), b.routing_key.as_str(), b.arguments)?;
                (false, Q::UnbindOk(queue::UnbindOk {}))
            }
            Q::Purge(p) => {
                ctx.session.check(Queue, &self.queue_name(p.queue.as_str())?, Read)?;
                let q = self.resolve_queue(p.queue.as_str(), ctx)?;
                if q.is_stream {
                    return Err(AmqpError::not_implemented(format!(
                        "queue.purge not supported by stream queues queue '{}' in vhost '{}'",
                        q.name, v.name
                    )));
                }
                if q.durable {
                    removed = Removed::PagesOf(q.store_id());
                }
                let message_count = v.purge_queue(&q.name, conn)?;
                (p.nowait, Q::PurgeOk(queue::PurgeOk { message_count }))
            }
            Q::Delete(d) => {
                ctx.session.check(Queue, &self.queue_name(d.queue.as_str())?, Configure)?;
                let message_count = match self.resolve_queue(d.queue.as_str(), ctx) {
                    Ok(q) => {
                        if q.durable {
                            removed = Removed::Durable;
                        }
                        v.delete_queue(&q.name, d.if_unused, d.if_empty, conn)?
                    }
                    // Deleting a queue that is not there succeeds, as in RabbitMQ.
                    Err(e) if e.code() == 404 => 0,
                    Err(e) => return Err(e),
                };
                (d.nowait, Q::DeleteOk(queue::DeleteOk { message_count }))
            }
            _ => return Err(AmqpError::command_invalid("a client may not send this queue method")),
        };
        // A durable change is answered once it is on disk.
        self.reply_when_durable(ctx, (!nowait).then_some(AMQPClass::Queue(ok)), change, removed);
        Ok(())
    }
}
