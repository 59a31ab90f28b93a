//! `exchange.*` and `queue.*` methods: declare, delete, bind, unbind, purge.

use amq_protocol::protocol::{exchange, queue, AMQPClass};

use super::channel::{Channel, Ctx};
use crate::broker::vhost::{ExchangeDecl, QueueDecl, REPLY_TO};
use crate::protocol::AmqpError;

impl Channel {
    pub(super) fn handle_exchange(
        &mut self,
        m: exchange::AMQPMethod,
        ctx: &mut Ctx,
    ) -> Result<(), AmqpError> {
        use exchange::AMQPMethod as E;
        let v = ctx.vhost.clone();
        let (nowait, ok) = match m {
            E::Declare(d) => {
                v.declare_exchange(ExchangeDecl {
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
                v.delete_exchange(d.exchange.as_str(), d.if_unused)?;
                (d.nowait, E::DeleteOk(exchange::DeleteOk {}))
            }
            E::Bind(b) => {
                v.bind_exchange(
                    b.destination.as_str(),
                    b.source.as_str(),
                    b.routing_key.as_str(),
                    b.arguments,
                )?;
                (b.nowait, E::BindOk(exchange::BindOk {}))
            }
            E::Unbind(b) => {
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
        if !nowait {
            self.reply(ctx, AMQPClass::Exchange(ok));
        }
        Ok(())
    }

    pub(super) fn handle_queue(&mut self, m: queue::AMQPMethod, ctx: &mut Ctx) -> Result<(), AmqpError> {
        use queue::AMQPMethod as Q;
        let v = ctx.vhost.clone();
        let conn = ctx.conn;
        let (nowait, ok) = match m {
            Q::Declare(d) if d.passive && d.queue.as_str() == REPLY_TO => {
                // RabbitMQ answers for the direct reply-to pseudo-queue.
                let ok = queue::DeclareOk { queue: REPLY_TO.into(), message_count: 0, consumer_count: 1 };
                (d.nowait, Q::DeclareOk(ok))
            }
            Q::Declare(d) => {
                let declared = v.declare_queue(
                    QueueDecl {
                        name: d.queue.to_string(),
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
                let name = self.resolve_queue(b.queue.as_str(), ctx)?.name.clone();
                v.bind_queue(&name, b.exchange.as_str(), b.routing_key.as_str(), b.arguments, conn)?;
                (b.nowait, Q::BindOk(queue::BindOk {}))
            }
            Q::Unbind(b) => {
                let name = if b.queue.as_str().is_empty() {
                    self.resolve_queue("", ctx)?.name.clone()
                } else {
                    b.queue.to_string()
                };
                v.unbind_queue(&name, b.exchange.as_str(), b.routing_key.as_str(), b.arguments)?;
                (false, Q::UnbindOk(queue::UnbindOk {}))
            }
            Q::Purge(p) => {
                let q = self.resolve_queue(p.queue.as_str(), ctx)?;
                let message_count = v.purge_queue(&q.name, conn)?;
                (p.nowait, Q::PurgeOk(queue::PurgeOk { message_count }))
            }
            Q::Delete(d) => {
                let message_count = match self.resolve_queue(d.queue.as_str(), ctx) {
                    Ok(q) => v.delete_queue(&q.name, d.if_unused, d.if_empty, conn)?,
                    // Deleting a queue that is not there succeeds, as in RabbitMQ.
                    Err(e) if e.code() == 404 => 0,
                    Err(e) => return Err(e),
                };
                (d.nowait, Q::DeleteOk(queue::DeleteOk { message_count }))
            }
            _ => return Err(AmqpError::command_invalid("a client may not send this queue method")),
        };
        if !nowait {
            self.reply(ctx, AMQPClass::Queue(ok));
        }
        Ok(())
    }
}
