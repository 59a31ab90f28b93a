//! One channel's state and the dispatch of its methods.
//!
//! Handlers return `AmqpError`; the connection turns a soft one into
//! `channel.close` and a hard one into `connection.close`.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use amq_protocol::protocol::{basic, channel, confirm, AMQPClass};
use tokio::sync::mpsc::UnboundedSender;

use super::confirms::Confirms;
use super::publish::Pending;
use super::tx::Tx;
use crate::broker::vhost::Router;
use crate::broker::{ChannelCredit, ConnectionId, Consumer, Outbound, Queue, VHost};
use crate::protocol::method::Method;
use crate::protocol::{encode, AmqpError};

/// What a channel handler needs of its connection.
pub struct Ctx {
    pub vhost: Arc<VHost>,
    pub conn: ConnectionId,
    /// This connection as the broker lists it; its counters are ours to add to.
    pub entry: Arc<crate::broker::connections::ConnectionEntry>,
    /// The authenticated user (a message's `user_id` must name it).
    pub user: String,
    /// What the user may do in the vhost (checked on every operation).
    pub session: crate::access::Session,
    /// Frames waiting for the next socket write.
    pub out: super::outbuf::OutBuf,
    /// A sender into this connection's outbound queue, for new consumers.
    pub tx: UnboundedSender<Outbound>,
    pub frame_max: u32,
    pub max_message_size: u64,
    /// Consumers and unacknowledged deliveries a channel may have.
    pub limits: crate::config::LimitsConfig,
    pub router: Router,
    /// Confirms (channel, its epoch, number) waiting for this turn's writes to be durable.
    pub durable_confirms: Vec<(u16, u64, u64)>,
    /// A congested queue this turn published to: the connection pauses reading.
    pub throttle: Option<Arc<Queue>>,
    /// The time this turn started (one clock read per turn, not per delivery).
    pub now: std::time::Instant,
    /// Bytes all channels hold in messages still arriving (`Pending::held`).
    pub unfinished: u64,
    /// The method just handled is answered later (`wait.rs`).
    pub wait: Option<super::wait::Wait>,
}

/// A delivery the client has not settled yet.
#[derive(Debug)]
pub struct Unacked {
    pub tag: u64,
    pub queue: Arc<Queue>,
    pub seq: u64,
    /// None for `basic.get`.
    pub consumer: Option<Arc<Consumer>>,
    /// When it was delivered (the connection's clock for this turn).
    pub at: std::time::Instant,
}

#[derive(Debug, Default)]
pub struct Channel {
    pub id: u16,
    /// Which opening of channel `id` this is (late store answers for an
    /// earlier channel of the same number are ignored).
    pub epoch: u64,
    /// We sent `channel.close` and wait for `close-ok`; everything else is dropped.
    pub closing: bool,
    pub(super) next_tag: u64,
    pub(super) unacked: VecDeque<Unacked>,
    pub(super) consumers: HashMap<String, (Arc<Consumer>, Arc<Queue>)>,
    /// `basic.qos` prefetch for consumers started afterwards.
    pub(super) prefetch: u32,
    pub(super) pending: Option<Pending>,
    /// The names-and-header buffer of the last publish, kept for the next.
    pub(super) spare_meta: Vec<u8>,
    /// Publisher confirms, once `confirm.select` was seen.
    pub(super) confirms: Option<Confirms>,
    /// The open transaction, once `tx.select` was seen.
    pub(super) tx: Option<Tx>,
    /// `basic.qos global=true`, shared with this channel's consumers.
    pub(super) credit: Arc<ChannelCredit>,
    pub(super) last_queue: Option<String>,
    /// This channel's direct reply-to queue, while it consumes from `amq.rabbitmq.reply-to`.
    pub(super) reply_queue: Option<Arc<Queue>>,
    /// It started a consumer once: deliveries may be on their way to it.
    pub consumed: bool,
}

impl Channel {
    /// `epoch` tells this channel from an earlier one with the same number.
    pub fn new(id: u16, epoch: u64) -> Self {
        Channel { id, epoch, next_tag: 1, ..Default::default() }
    }

    /// What the management API shows of it.
    pub fn info(&self) -> crate::broker::connections::ChannelInfo {
        crate::broker::connections::ChannelInfo {
            number: self.id,
            prefetch: self.prefetch,
            global_prefetch: self.credit.limit(),
            confirm: self.confirms.is_some(),
            transactional: self.tx.is_some(),
            closing: self.closing,
            consumers: self.consumers.len() as u32,
            unacked: self.unacked.len() as u64,
            unconfirmed: self.confirms.as_ref().map_or(0, Confirms::pending),
            uncommitted: self.tx.as_ref().map_or(0, |t| t.publishes.len() as u64),
            acks_uncommitted: self
                .tx
                .as_ref()
                .map_or(0, |t| t.settles.iter().map(|(s, _)| s.len() as u64).sum()),
        }
    }

    pub fn reply(&self, ctx: &mut Ctx, class: AMQPClass) {
        encode::method(&mut ctx.out, self.id, &class);
    }

    /// Dispatches a method other than `channel.open` / `channel.close(-ok)`.
    pub fn handle(&mut self, m: Method<'_>, ctx: &mut Ctx) -> Result<(), AmqpError> {
        if let Some(pending) = &self.pending {
            let text = if pending.has_header() {
                "expected content body, got non content body frame instead"
            } else {
                "expected content header for class 60, got non content header frame instead"
            };
            return Err(AmqpError::unexpected_frame(text).during(60, 40));
        }
        match m {
            Method::Publish(p) => self.on_publish(p),
            Method::Ack { delivery_tag, multiple } => self.ack(delivery_tag, multiple, ctx),
            Method::Qos { prefetch_size, prefetch_count, global } => {
                if prefetch_size != 0 {
                    return Err(AmqpError::not_implemented(format!("prefetch_size!=0 ({prefetch_size})")));
                }
                if global {
                    // Applies at once to every consumer of the channel.
                    self.credit.set_limit(u32::from(prefetch_count));
                    self.kick_consumers();
                } else {
                    // Applies to consumers started from now on.
                    self.prefetch = u32::from(prefetch_count);
                }
                self.reply(ctx, AMQPClass::Basic(basic::AMQPMethod::QosOk(basic::QosOk {})));
                Ok(())
            }
            Method::Other(AMQPClass::Basic(b)) => self.handle_basic(b, ctx),
            Method::Other(AMQPClass::Exchange(e)) => self.handle_exchange(e, ctx),
            Method::Other(AMQPClass::Queue(q)) => self.handle_queue(q, ctx),
            Method::Other(AMQPClass::Confirm(confirm::AMQPMethod::Select(s))) => {
                if self.tx.is_some() {
                    return Err(AmqpError::precondition_failed("cannot switch from tx to confirm mode"));
                }
                self.confirms.get_or_insert_with(Confirms::default);
                if !s.nowait {
                    self.reply(ctx, AMQPClass::Confirm(confirm::AMQPMethod::SelectOk(confirm::SelectOk {})));
                }
                Ok(())
            }
            Method::Other(AMQPClass::Channel(channel::AMQPMethod::Flow(f))) => {
                // Like RabbitMQ, Warren does not let clients pause deliveries this way.
                if !f.active {
                    return Err(AmqpError::not_implemented("active=false"));
                }
                self.reply(
                    ctx,
                    AMQPClass::Channel(channel::AMQPMethod::FlowOk(channel::FlowOk { active: f.active })),
                );
                Ok(())
            }
            Method::Other(AMQPClass::Channel(channel::AMQPMethod::FlowOk(_))) => Ok(()),
            Method::Other(AMQPClass::Tx(t)) => self.handle_tx(t, ctx),
            Method::Other(AMQPClass::Access(_)) => {
                Err(AmqpError::not_implemented("access.request is not supported"))
            }
            Method::Other(other) => Err(AmqpError::command_invalid(format!(
                "unexpected method {}.{} on a channel",
                other.get_amqp_class_id(),
                other.get_amqp_method_id()
            ))),
        }
    }

    fn handle_basic(&mut self, b: basic::AMQPMethod, ctx: &mut Ctx) -> Result<(), AmqpError> {
        use basic::AMQPMethod as B;
        match b {
            B::Consume(c) => self.consume(c, ctx),
            B::Cancel(c) => self.cancel(c, ctx),
            B::Get(g) => self.get(g, ctx),
            B::Reject(r) => self.reject(r.delivery_tag, false, r.requeue),
            B::Nack(n) => self.reject(n.delivery_tag, n.multiple, n.requeue),
            B::Recover(r) => {
                self.recover(r.requeue)?;
                self.reply(ctx, AMQPClass::Basic(B::RecoverOk(basic::RecoverOk {})));
                Ok(())
            }
            B::RecoverAsync(r) => self.recover(r.requeue),
            B::Ack(a) => self.ack(a.delivery_tag, a.multiple, ctx),
            B::Publish(_) => unreachable!("publish is decoded on the fast path"),
            _ => Err(AmqpError::command_invalid("a client may not send this basic method")),
        }
    }

    /// Asks every queue this channel consumes from for more (credit grew).
    pub(super) fn kick_consumers(&self) {
        for (_, queue) in self.consumers.values() {
            queue.kick();
        }
    }

    /// When the oldest delivery still unacknowledged went out.
    pub fn oldest_unacked(&self) -> Option<std::time::Instant> {
        self.unacked.front().map(|u| u.at)
    }

    /// Releases everything the channel holds: consumers are removed and
    /// unacknowledged messages go back to their queues as redelivered.
    pub fn release(&mut self, ctx: &mut Ctx) {
        ctx.unfinished -= self.unfinished_bytes();
        self.pending = None;
        self.spare_meta = Vec::new();
        let vhost = &*ctx.vhost;
        if let Some(tx) = self.tx.as_mut() {
            // An open transaction's settlements are void: back to unacked, then requeued below.
            for (settled, _) in tx.settles.drain(..) {
                self.unacked.extend(settled);
            }
            tx.publishes.clear();
        }
        for (_, (consumer, queue)) in self.consumers.drain() {
            super::consume::remove_consumer(vhost, &consumer, &queue);
        }
        let mut by_queue: Vec<(Arc<Queue>, Vec<u64>)> = Vec::new();
        for u in self.unacked.drain(..) {
            match by_queue.iter_mut().find(|(q, _)| Arc::ptr_eq(q, &u.queue)) {
                Some((_, seqs)) => seqs.push(u.seq),
                None => by_queue.push((u.queue, vec![u.seq])),
            }
        }
        for (q, seqs) in by_queue {
            q.requeue(&seqs);
        }
    }
}
