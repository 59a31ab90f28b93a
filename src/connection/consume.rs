//! Consuming: `basic.consume` / `cancel` / `get`, deliveries, and settling
//! them with `ack` / `nack` / `reject` / `recover`.

use std::sync::Arc;

use amq_protocol::protocol::{basic, AMQPClass};

use super::channel::{Channel, Ctx, Unacked};
use super::tx::Settle;
use crate::broker::queue::ConsumerRemoved;
use crate::broker::vhost::{REPLY_TO, REPLY_TO_PREFIX};
use crate::broker::{names, Consumer, ConsumerSpec, Delivery, Queue, VHost};
use crate::protocol::{encode, AmqpError};

impl Channel {
    pub(super) fn queue_name(&self, name: &str) -> Result<String, AmqpError> {
        if !name.is_empty() {
            return Ok(name.to_owned());
        }
        self.last_queue.clone().ok_or_else(|| AmqpError::not_found("no previously declared queue"))
    }

    pub(super) fn resolve_queue(&self, name: &str, ctx: &Ctx) -> Result<Arc<Queue>, AmqpError> {
        ctx.vhost.usable_queue(&self.queue_name(name)?, ctx.conn)
    }

    pub(super) fn consume(&mut self, c: basic::Consume, ctx: &mut Ctx) -> Result<(), AmqpError> {
        // Checked first, as RabbitMQ does (a tag in use is refused below).
        let max = ctx.limits.consumer_max_per_channel;
        if max > 0
            && self.consumers.len() >= max as usize
            && !self.consumers.contains_key(c.consumer_tag.as_str())
        {
            return Err(AmqpError::not_allowed(format!("reached maximum ({max}) of consumers per channel")));
        }
        let reply = c.queue.as_str() == REPLY_TO;
        let named = if reply {
            // Direct reply-to: a private queue replies are routed to by name.
            if !c.no_ack {
                return Err(AmqpError::precondition_failed("reply consumer cannot acknowledge"));
            }
            if self.reply_queue.is_some() {
                return Err(AmqpError::precondition_failed("reply consumer already set"));
            }
            None
        } else {
            let name = self.queue_name(c.queue.as_str())?;
            ctx.session.check(crate::access::Resource::Queue, &name, crate::access::session::Action::Read)?;
            Some(self.resolve_queue(&name, ctx)?)
        };
        let queue_name = named.as_ref().map_or(REPLY_TO, |q| q.name.as_str());
        let tag = if c.consumer_tag.as_str().is_empty() {
            names::consumer_tag()
        } else {
            c.consumer_tag.to_string()
        };
        if self.consumers.contains_key(&tag) {
            return Err(AmqpError::not_allowed(format!("attempt to reuse consumer tag '{tag}'")));
        }
        let priority = match c.arguments.inner().get("x-priority") {
            None => 0,
            Some(v) => crate::protocol::table::as_int(v).ok_or_else(|| {
                AmqpError::precondition_failed(format!(
                    "invalid arg 'x-priority' for queue '{}' in vhost '{}': \"expected integer, got {}\"",
                    queue_name,
                    ctx.vhost.name,
                    crate::protocol::table::type_name(v)
                ))
            })?,
        };
        let spec = ConsumerSpec {
            tag: tag.clone(),
            channel: self.id,
            connection: ctx.conn,
            no_ack: c.no_ack,
            exclusive: c.exclusive,
            prefetch: self.prefetch,
            priority,
        };
        self.credit.set_cap(ctx.limits.max_unacked_per_channel);
        // A stream's consumer: its arguments, then RabbitMQ's rules (a
        // prefetch of its own, manual acks), in RabbitMQ's order.
        let stream = match named.as_ref().and_then(|q| q.stream().cloned()) {
            Some(s) => Some((s, self.stream_consumer(&c, &tag, queue_name, ctx)?)),
            None => None,
        };
        let consumer = Arc::new(Consumer::new(spec, self.credit.clone(), ctx.tx.clone()));
        // The reply queue is opened last, once nothing can refuse the consume.
        let queue = named.unwrap_or_else(|| ctx.vhost.open_reply_queue(ctx.conn));
        match stream {
            Some((s, args)) => s.add_consumer(consumer.clone(), args)?,
            None => queue.add_consumer(consumer.clone())?,
        }
        if reply {
            self.reply_queue = Some(queue.clone());
        }
        // Deliveries reach this connection through its outbound queue, which
        // is read after this frame: consume-ok still goes out first.
        if !c.nowait {
            self.reply(
                ctx,
                AMQPClass::Basic(basic::AMQPMethod::ConsumeOk(basic::ConsumeOk {
                    consumer_tag: tag.clone().into(),
                })),
            );
        }
        self.consumers.insert(tag, (consumer, queue));
        self.consumed = true;
        Ok(())
    }

    /// Checks a consume on a stream and reads its arguments.
    fn stream_consumer(
        &self,
        c: &basic::Consume,
        tag: &str,
        queue: &str,
        ctx: &Ctx,
    ) -> Result<crate::broker::stream::args::ConsumeArgs, AmqpError> {
        let vhost = &ctx.vhost.name;
        let server_tag = c.consumer_tag.as_str().is_empty();
        let args = crate::broker::stream::args::consume(&c.arguments, tag, server_tag, queue, vhost)?;
        if self.prefetch == 0 {
            return Err(AmqpError::precondition_failed(format!(
                "consumer prefetch count is not set for 'queue '{queue}' in vhost '{vhost}''"
            )));
        }
        if c.no_ack {
            return Err(AmqpError::not_implemented(format!(
                "automatic acknowledgement not supported by stream queues queue '{queue}' in vhost '{vhost}'"
            )));
        }
        Ok(args)
    }

    pub(super) fn cancel(&mut self, c: basic::Cancel, ctx: &mut Ctx) -> Result<(), AmqpError> {
        if let Some((consumer, queue)) = self.consumers.remove(c.consumer_tag.as_str()) {
            if self.reply_queue.as_ref().is_some_and(|r| Arc::ptr_eq(r, &queue)) {
                self.reply_queue = None;
            }
            remove_consumer(&ctx.vhost, &consumer, &queue);
        }
        if !c.nowait {
            self.reply(
                ctx,
                AMQPClass::Basic(basic::AMQPMethod::CancelOk(basic::CancelOk {
                    consumer_tag: c.consumer_tag,
                })),
            );
        }
        Ok(())
    }

    /// The queue cancelled this consumer (it was deleted).
    pub fn server_cancel(&mut self, consumer: &Arc<Consumer>, notify: bool, ctx: &mut Ctx) {
        let ours = self.consumers.get(&consumer.tag).is_some_and(|(c, _)| Arc::ptr_eq(c, consumer));
        if ours && !self.closing {
            self.consumers.remove(&consumer.tag);
            if notify {
                let cancel = basic::Cancel { consumer_tag: consumer.tag.clone().into(), nowait: true };
                self.reply(ctx, AMQPClass::Basic(basic::AMQPMethod::Cancel(cancel)));
            }
        }
    }

    pub(super) fn get(&mut self, g: basic::Get, ctx: &mut Ctx) -> Result<(), AmqpError> {
        let name = self.queue_name(g.queue.as_str())?;
        ctx.session.check(crate::access::Resource::Queue, &name, crate::access::session::Action::Read)?;
        let queue = self.resolve_queue(&name, ctx)?;
        if queue.is_stream {
            return Err(AmqpError::not_implemented(format!(
                "basic.get not supported by stream queues queue '{}' in vhost '{}'",
                queue.name, ctx.vhost.name
            )));
        }
        let cap = ctx.limits.max_unacked_per_channel;
        if !g.no_ack && cap > 0 && self.unacked.len() >= cap as usize {
            return Err(AmqpError::precondition_failed(format!(
                "unacknowledged messages on this channel reached the limit ({cap}): settle some first"
            )));
        }
        // A message still on disk is answered once it is read back (`wait.rs`).
        self.answer_get(queue, g.no_ack, 1, ctx);
        Ok(())
    }

    /// Writes a delivery, or gives it back to its queue if its consumer or
    /// this channel is gone.
    pub fn deliver(&mut self, d: Delivery, ctx: &mut Ctx) {
        // A dropped one gave its channel's credit back (manual ack): the
        // channel's other consumers may go on.
        if !self.write_delivery_counted(d, ctx, true) && self.credit.take_starved() {
            self.kick_consumers();
        }
    }

    /// Writes a run of deliveries to one consumer (`ds`, emptied), its
    /// window moved on once for all of them.
    pub fn deliver_run(&mut self, ds: &mut Vec<Delivery>, ctx: &mut Ctx) {
        let Some(first) = ds.first() else { return };
        let (consumer, queue) = (first.consumer.clone(), first.queue.clone());
        let (n, mut written, mut bytes) = (ds.len() as u32, 0, 0);
        for d in ds.drain(..) {
            let len = d.entry.message.body().len() as u64;
            if self.write_delivery_counted(d, ctx, false) {
                (written, bytes) = (written + 1, bytes + len);
            }
        }
        if written > 0 && consumer.written_n(written, bytes) {
            queue.kick();
        }
        // Dropped ones gave channel credit back: its other consumers may go on.
        if written < n && self.credit.take_starved() {
            self.kick_consumers();
        }
    }

    /// Writes one delivery, or gives it back to its queue if its consumer
    /// or this channel is gone; true if it was written. `count`: tell its
    /// consumer it was written (else the caller does, once for a run).
    fn write_delivery_counted(&mut self, d: Delivery, ctx: &mut Ctx, count: bool) -> bool {
        if self.closing || d.consumer.is_cancelled() {
            let (consumer, queue) = (d.consumer.clone(), d.queue.clone());
            if !consumer.no_ack {
                consumer.settled(1);
            }
            consumer.written(d.entry.message.body().len());
            queue.return_undelivered(d);
            return false;
        }
        let tag = self.next_tag;
        self.next_tag += 1;
        let m = &d.entry.message;
        let c = &d.consumer;
        let counted = &ctx.entry.stats.msgs;
        if c.no_ack { &counted.deliver_auto } else { &counted.deliver_manual }.add(1);
        if d.entry.redelivered {
            counted.redelivered.add(1);
        }
        encode::deliver(
            &mut ctx.out,
            self.id,
            c.tag.as_bytes(),
            tag,
            d.entry.redelivered,
            m.exchange(),
            m.routing_key(),
        );
        ctx.out.message(self.id, m, ctx.frame_max);
        if count && c.written(m.body().len()) {
            d.queue.kick();
        }
        if !c.no_ack {
            let seq = d.entry.seq;
            self.unacked.push_back(Unacked {
                tag,
                queue: d.queue,
                seq,
                consumer: Some(d.consumer),
                at: ctx.now,
            });
        }
        true
    }

    /// Removes the deliveries `tag` (and, with `multiple`, all before it)
    /// names from the unacked list; 406 if it names none.
    fn take_unacked(&mut self, tag: u64, multiple: bool) -> Result<Vec<Unacked>, AmqpError> {
        let unknown = || AmqpError::precondition_failed(format!("unknown delivery tag {tag}"));
        if multiple && tag == 0 {
            return Ok(self.unacked.drain(..).collect());
        }
        // Like RabbitMQ, the tag itself must be outstanding, `multiple` or not.
        // Acks mostly come in order: the oldest first, no search.
        let i = if self.unacked.front().is_some_and(|u| u.tag == tag) {
            0
        } else {
            self.unacked.binary_search_by_key(&tag, |u| u.tag).map_err(|_| unknown())?
        };
        if multiple {
            return Ok(self.unacked.drain(..=i).collect());
        }
        Ok(vec![self.unacked.remove(i).expect("found")])
    }

    pub(super) fn ack(&mut self, tag: u64, multiple: bool, ctx: &Ctx) -> Result<(), AmqpError> {
        let settled = self.take_unacked(tag, multiple).map_err(|e| e.during(60, 80))?;
        ctx.entry.stats.msgs.acked.add(settled.len() as u64);
        self.settle_or_hold(settled, Settle::Ack);
        Ok(())
    }

    pub(super) fn reject(&mut self, tag: u64, multiple: bool, requeue: bool) -> Result<(), AmqpError> {
        let settled = self.take_unacked(tag, multiple)?;
        self.settle_or_hold(settled, if requeue { Settle::Requeue } else { Settle::Drop });
        Ok(())
    }

    pub(super) fn recover(&mut self, requeue: bool) -> Result<(), AmqpError> {
        if !requeue {
            return Err(AmqpError::not_implemented("requeue=false"));
        }
        let all: Vec<_> = self.unacked.drain(..).collect();
        self.apply_settle(all, Settle::Requeue);
        Ok(())
    }

    /// In a transaction settlements wait for commit; otherwise they apply now.
    fn settle_or_hold(&mut self, settled: Vec<Unacked>, how: Settle) {
        match self.tx.as_mut() {
            Some(tx) => tx.settles.push((settled, how)),
            None => self.apply_settle(settled, how),
        }
    }

    /// Settles deliveries with their queues, one call per run of the same
    /// queue, and gives credit back to their consumers.
    pub(super) fn apply_settle(&mut self, settled: Vec<Unacked>, how: Settle) {
        let mut seqs = Vec::with_capacity(settled.len());
        let mut kick: Vec<Arc<Queue>> = Vec::new();
        let mut iter = settled.into_iter().peekable();
        // Credit goes back once per run of one consumer (its counters are
        // shared with the thread delivering to it: one update, not one per message).
        let mut run = 0;
        while let Some(u) = iter.next() {
            seqs.push(u.seq);
            let same_consumer = |next: &Unacked| {
                Arc::ptr_eq(&next.queue, &u.queue)
                    && match (&next.consumer, &u.consumer) {
                        (Some(a), Some(b)) => Arc::ptr_eq(a, b),
                        (None, None) => true,
                        _ => false,
                    }
            };
            let run_ends = iter.peek().is_none_or(|next| !same_consumer(next));
            run += 1;
            if let (Some(c), true) = (&u.consumer, run_ends) {
                // A stream's ack moves a tracked offset on (nacks only give credit).
                if let (Some(s), Settle::Ack) = (u.queue.stream(), how) {
                    s.acked(c, u.seq);
                }
                if c.settled(run) && !kick.iter().any(|q| Arc::ptr_eq(q, &u.queue)) {
                    kick.push(u.queue.clone());
                }
            }
            if run_ends {
                run = 0;
            }
            if iter.peek().is_none_or(|next| !Arc::ptr_eq(&next.queue, &u.queue)) {
                match how {
                    Settle::Ack => u.queue.ack(&seqs),
                    Settle::Drop => u.queue.reject(&seqs),
                    Settle::Requeue => u.queue.requeue(&seqs),
                }
                seqs.clear();
            }
        }
        for q in kick {
            q.kick();
        }
        if self.credit.take_starved() {
            self.kick_consumers();
        }
    }
}

pub(super) fn remove_consumer(vhost: &VHost, consumer: &Arc<Consumer>, queue: &Arc<Queue>) {
    consumer.cancel();
    if queue.name.starts_with(REPLY_TO_PREFIX) {
        vhost.close_reply_queue(queue);
        return;
    }
    if queue.remove_consumer(consumer) == ConsumerRemoved::LastOfAutoDelete {
        vhost.delete_auto_delete_queue(queue);
    }
}
