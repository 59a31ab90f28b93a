//! The outbound side of a connection: what queues and the store send it
//! (deliveries, cancels, durable confirms, forced closes), and giving
//! everything back when it ends.

use std::sync::Arc;

use super::{Channel, Connection, State, OUT_HIGH_WATER};
use crate::broker::{Delivery, Outbound};
use crate::protocol::AmqpError;

impl Connection {
    /// What was held back while the outbound buffer was full, in order, up
    /// to the high-water mark (as `on_outbound_batch` takes a batch).
    pub(super) fn deliver_held(&mut self, run: &mut Vec<Delivery>) {
        self.ctx.now = std::time::Instant::now();
        let mut unwritten = 0;
        while let Some(o) = self.held.pop_front() {
            if let Some(o) = self.take(o, run, &mut unwritten) {
                self.held.push_front(o);
                break;
            }
        }
        self.deliver_run(run);
        self.flush_confirms();
    }

    /// Asks the store to tell us when this turn's persistent publishes are on disk.
    pub(super) fn await_durable(&mut self) {
        if self.ctx.durable_confirms.is_empty() {
            return;
        }
        let confirms = std::mem::take(&mut self.ctx.durable_confirms);
        let tx = self.ctx.tx.clone();
        match self.ctx.vhost.store() {
            Some(store) => store.barrier(Box::new(move |ok| {
                let _ = tx.send(Outbound::Durable { confirms, ok });
            })),
            None => {
                let _ = tx.send(Outbound::Durable { confirms, ok: true });
            }
        }
    }

    pub(super) fn flush_confirms(&mut self) {
        for id in std::mem::take(&mut self.confirms_due) {
            if let Some(ch) = self.channels.get_mut(&id).filter(|ch| !ch.closing) {
                ch.flush_confirms(&mut self.ctx);
            }
        }
    }

    /// Takes a batch of what the broker sent (`take`, item by item and a
    /// run delivery by delivery); past the mark the rest is held, in order,
    /// for the socket.
    pub(super) fn on_outbound_batch(&mut self, batch: &mut Vec<Outbound>, run: &mut Vec<Delivery>) {
        let mut unwritten = 0;
        let mut take_or_hold = |this: &mut Self, o| {
            if let Some(o) = this.take(o, run, &mut unwritten) {
                this.held.push_back(o);
            }
        };
        for o in batch.drain(..) {
            match o {
                Outbound::Deliveries(ds) => {
                    ds.into_iter().for_each(|d| take_or_hold(self, Outbound::Deliver(d)))
                }
                o => take_or_hold(self, o),
            }
        }
        self.deliver_run(run);
    }

    /// Takes one thing the broker sent, in order. Deliveries one after
    /// another to one consumer are written as a run (`run`, emptied, kept
    /// for its capacity), their consumer told once how many went out: its
    /// count is written by the queues' cores too, so once per run, not per
    /// message. The run so far is written first if this does not join it
    /// or if with it the output would reach the high-water mark (counting
    /// the run's bodies not yet written, `unwritten`). Past the mark it is
    /// given back to wait for the socket (the run then empty, so order is kept).
    fn take(&mut self, o: Outbound, run: &mut Vec<Delivery>, unwritten: &mut usize) -> Option<Outbound> {
        let joins = match &o {
            Outbound::Deliver(d) => run.last().is_none_or(|last| Arc::ptr_eq(&last.consumer, &d.consumer)),
            _ => false,
        };
        if !joins || self.ctx.out.len() + *unwritten >= OUT_HIGH_WATER {
            self.deliver_run(run);
            *unwritten = 0;
        }
        if self.ctx.out.len() >= OUT_HIGH_WATER {
            return Some(o);
        }
        match o {
            Outbound::Deliver(d) => {
                *unwritten += d.entry.message.body().len();
                run.push(d);
            }
            o => self.on_outbound(o),
        }
        None
    }

    /// Writes deliveries to one consumer (`run`, emptied), or gives them
    /// back to their queue if the channel is gone.
    fn deliver_run(&mut self, run: &mut Vec<Delivery>) {
        let Some(first) = run.first() else { return };
        if run.len() == 1 {
            return self.deliver_one(run.pop().expect("one"));
        }
        match self.channels.get_mut(&first.consumer.channel) {
            Some(ch) => ch.deliver_run(run, &mut self.ctx),
            None => run.drain(..).for_each(give_back),
        }
    }

    /// Writes one delivery, or gives it back to its queue if the channel is gone.
    fn deliver_one(&mut self, d: Delivery) {
        match self.channels.get_mut(&d.consumer.channel) {
            Some(ch) => ch.deliver(d, &mut self.ctx),
            None => give_back(d),
        }
    }

    pub(super) fn on_outbound(&mut self, o: Outbound) {
        match o {
            Outbound::Deliver(d) => self.deliver_one(d),
            Outbound::Deliveries(mut ds) => self.deliver_run(&mut ds),
            Outbound::Cancelled(consumer) => {
                if let Some(ch) = self.channels.get_mut(&consumer.channel) {
                    ch.server_cancel(&consumer, self.cancel_notify, &mut self.ctx);
                }
            }
            Outbound::Close(reason) => {
                if self.state == State::Running {
                    self.close_connection(AmqpError::connection_forced(reason));
                }
            }
            Outbound::Inspect(answer) => {
                let _ = answer.send(self.channels.values().map(Channel::info).collect());
            }
            Outbound::Durable { confirms, ok } => {
                for (id, epoch, seq) in confirms {
                    // Not for a channel closed since, nor for a new one of the same number.
                    if let Some(ch) = self.channels.get_mut(&id).filter(|ch| ch.epoch == epoch && !ch.closing)
                    {
                        ch.settle_confirm(seq, ok);
                        if !self.confirms_due.contains(&id) {
                            self.confirms_due.push(id);
                        }
                    }
                }
            }
        }
    }

    /// Channel `id` is gone: its deliveries already on their way (held, or
    /// in the outbound queue) go back to their queues now, not when this
    /// connection next takes its outbound queue, which may be after it has
    /// read more input: a purge or a `basic.get` sent after close-ok finds
    /// them (RabbitMQ's queues, too, have a closed channel's messages back
    /// by its close-ok). The rest keeps its order, behind what was held.
    pub(super) fn reclaim(&mut self, id: u16) {
        let held = std::mem::take(&mut self.held);
        for o in held.into_iter().chain(std::iter::from_fn(|| self.rx.try_recv().ok())) {
            match o {
                Outbound::Deliver(d) if d.consumer.channel == id => give_back(d),
                Outbound::Deliveries(ds) if ds.first().is_some_and(|d| d.consumer.channel == id) => {
                    ds.into_iter().for_each(give_back)
                }
                // Held one by one, so `deliver_held` keeps to the mark.
                Outbound::Deliveries(ds) => self.held.extend(ds.into_iter().map(Outbound::Deliver)),
                o => self.held.push_back(o),
            }
        }
    }

    /// Gives back everything the connection held.
    pub(super) fn cleanup(&mut self) {
        for ch in self.channels.values_mut() {
            ch.release(&mut self.ctx);
        }
        self.channels.clear();
        if let Some(owed) = self.owed.take() {
            owed.wait.abandon(&self.ctx.vhost);
        }
        self.ctx.vhost.connection_closed(self.ctx.conn);
        self.rx.close();
        let held = std::mem::take(&mut self.held);
        for o in held.into_iter().chain(std::iter::from_fn(|| self.rx.try_recv().ok())) {
            match o {
                Outbound::Deliver(d) => d.queue.clone().return_undelivered(d),
                Outbound::Deliveries(ds) => {
                    ds.into_iter().for_each(|d| d.queue.clone().return_undelivered(d))
                }
                _ => {}
            }
        }
    }
}

/// A delivery for a channel that is gone goes back to its queue.
fn give_back(d: Delivery) {
    d.consumer.written(d.entry.message.body().len());
    d.queue.clone().return_undelivered(d);
}
