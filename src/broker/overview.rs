//! The broker as a whole, in figures: totals over vhosts, queues and
//! connections, and the rates the sampler makes of them. Everything is
//! read from live state when asked.

use std::sync::Arc;

use super::connections::Totals;
use super::stats::{MsgTotals, QueueTotals, Rate};
use super::{Broker, Queue, VHost};

/// The broker's message rates (RabbitMQ's overview `message_stats`).
#[derive(Debug, Default)]
pub struct GlobalRates {
    pub publish: Rate,
    pub confirm: Rate,
    pub deliver: Rate,
    pub deliver_no_ack: Rate,
    pub get: Rate,
    pub get_no_ack: Rate,
    pub deliver_get: Rate,
    pub get_empty: Rate,
    pub redeliver: Rate,
    pub ack: Rate,
    pub return_unroutable: Rate,
    pub drop_unroutable: Rate,
    pub messages: Rate,
    pub ready: Rate,
    pub unacked: Rate,
    pub connection_created: Rate,
    pub connection_closed: Rate,
    pub channel_created: Rate,
    pub channel_closed: Rate,
    pub queue_declared: Rate,
    pub queue_created: Rate,
    pub queue_deleted: Rate,
}

/// What deleted vhosts counted (so the broker's totals never go back).
#[derive(Debug, Default)]
pub struct Retired {
    queues: QueueTotals,
    declared: u64,
    created: u64,
    deleted: u64,
}

/// Ready and unacknowledged messages over some queues.
#[derive(Debug, Default, Clone, Copy)]
pub struct Depth {
    pub ready: u64,
    pub unacked: u64,
    pub bytes: u64,
    pub consumers: u64,
    pub queues: u64,
}

impl Depth {
    pub fn messages(&self) -> u64 {
        self.ready + self.unacked
    }
}

/// Objects in the broker now.
#[derive(Debug, Default, Clone, Copy)]
pub struct ObjectTotals {
    pub vhosts: u64,
    pub queues: u64,
    pub exchanges: u64,
    pub consumers: u64,
    pub connections: u64,
    pub channels: u64,
}

impl Broker {
    /// Every queue of every vhost, with its vhost.
    pub fn all_queues(&self) -> Vec<Arc<Queue>> {
        self.vhosts().iter().flat_map(|v| v.queues()).collect()
    }

    /// The depth of every queue (of one vhost, if given), added up.
    pub fn depth(&self, vhost: Option<&VHost>) -> Depth {
        let queues = match vhost {
            Some(v) => v.queues(),
            None => self.all_queues(),
        };
        let mut d = Depth::default();
        for q in queues {
            let i = q.info();
            d.ready += i.ready;
            d.unacked += i.unacked;
            d.bytes += i.bytes();
            d.consumers += i.consumers;
            d.queues += 1;
        }
        d
    }

    /// What passed through queues, deleted ones (and deleted vhosts')
    /// included, added up.
    pub fn queue_totals(&self) -> QueueTotals {
        let retired = self.retired.lock();
        let mut t = retired.queues;
        for v in self.vhosts() {
            t += v.queue_totals();
        }
        t
    }

    /// Runs `destroy` (which deletes vhost `v` from the broker) while no
    /// total can be read, then keeps what `v` counted: the totals never dip.
    pub(super) fn retire_vhost(&self, v: &VHost, destroy: impl FnOnce()) {
        let mut retired = self.retired.lock();
        let (totals, listed) = (v.queue_totals(), v.queue_count() as u64);
        let c = &v.churn;
        let (declared, created, deleted) = (c.declared.get(), c.created.get(), c.deleted.get());
        destroy();
        retired.queues += totals;
        retired.declared += declared;
        retired.created += created;
        // Its queues went with it.
        retired.deleted += deleted + listed;
    }

    /// Counts of objects now.
    pub fn object_totals(&self) -> ObjectTotals {
        let vhosts = self.vhosts();
        let c = self.connections.totals();
        let mut t = ObjectTotals {
            vhosts: vhosts.len() as u64,
            connections: c.connections,
            channels: c.channels,
            ..ObjectTotals::default()
        };
        for v in &vhosts {
            t.queues += v.queue_count() as u64;
            t.exchanges += v.exchange_count() as u64;
            t.consumers += v.queues().iter().map(|q| u64::from(q.consumer_count())).sum::<u64>();
        }
        t
    }

    /// Queue churn, deleted vhosts included: (declared, created, deleted).
    pub fn queue_churn(&self) -> (u64, u64, u64) {
        let retired = self.retired.lock();
        let start = (retired.declared, retired.created, retired.deleted);
        self.vhosts().iter().fold(start, |(d, c, x), v| {
            (d + v.churn.declared.get(), c + v.churn.created.get(), x + v.churn.deleted.get())
        })
    }

    /// Takes a sample of every counter that has a rate, `secs` after the
    /// last one: the broker's, each queue's and each connection's.
    pub fn sample_rates(&self, secs: f64) {
        let totals = self.connections.totals();
        let Totals { msgs, .. } = totals;
        let MsgTotals { received, confirmed, get_empty, redelivered, acked, .. } = msgs;
        let r = &self.rates;
        r.publish.sample(received, secs);
        r.confirm.sample(confirmed, secs);
        r.deliver.sample(msgs.deliver_manual, secs);
        r.deliver_no_ack.sample(msgs.deliver_auto, secs);
        r.get.sample(msgs.get_manual, secs);
        r.get_no_ack.sample(msgs.get_auto, secs);
        r.deliver_get.sample(msgs.deliver_get(), secs);
        r.get_empty.sample(get_empty, secs);
        r.redeliver.sample(redelivered, secs);
        r.ack.sample(acked, secs);
        r.return_unroutable.sample(msgs.unroutable_returned, secs);
        r.drop_unroutable.sample(msgs.unroutable_dropped, secs);
        let mut depth = Depth::default();
        for q in self.all_queues() {
            let i = q.sample_rates(secs);
            depth.ready += i.ready;
            depth.unacked += i.unacked;
        }
        r.messages.sample(depth.messages(), secs);
        r.ready.sample(depth.ready, secs);
        r.unacked.sample(depth.unacked, secs);
        self.connections.sample_rates(secs);
        r.connection_created.sample(totals.connections_opened, secs);
        r.connection_closed.sample(totals.connections_closed, secs);
        r.channel_created.sample(totals.channels_opened, secs);
        r.channel_closed.sample(totals.channels_closed, secs);
        let (declared, created, deleted) = self.queue_churn();
        r.queue_declared.sample(declared, secs);
        r.queue_created.sample(created, secs);
        r.queue_deleted.sample(deleted, secs);
    }

    /// Milliseconds since the broker was made.
    pub fn uptime_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::broker::vhost::{QueueDecl, VHostMeta};

    fn publish(b: &Broker, vhost: &str, queue: &str) {
        let v = b.vhost(vhost).unwrap();
        let decl = QueueDecl { name: queue.into(), ..QueueDecl::default() };
        let q = v.declare_queue(decl, 1).unwrap().queue;
        let body = bytes::Bytes::from_static(b"x");
        q.publish(Arc::new(crate::broker::Message::new(
            bytes::Bytes::new(),
            bytes::Bytes::new(),
            bytes::Bytes::new(),
            Default::default(),
            body,
        )));
    }

    #[test]
    fn totals_never_go_back_when_queues_and_vhosts_are_deleted() {
        let b = Broker::new();
        b.put_vhost("v", VHostMeta::default()).unwrap();
        publish(&b, "/", "a");
        publish(&b, "v", "b");
        publish(&b, "v", "c");
        assert_eq!(b.queue_totals().published, 3);
        b.vhost("/").unwrap().delete_queue("a", false, false, 1).unwrap();
        assert_eq!(b.queue_totals().published, 3, "a deleted queue's counts stay");
        assert!(b.delete_vhost("v"));
        assert_eq!(b.queue_totals().published, 3, "a deleted vhost's counts stay");
        assert_eq!(b.queue_churn(), (3, 3, 3));
    }

    #[test]
    fn rates_are_the_change_between_samples() {
        let b = Broker::new();
        b.sample_rates(1.0);
        publish(&b, "/", "a");
        publish(&b, "/", "b");
        b.sample_rates(2.0);
        assert_eq!(b.rates.queue_created.get(), 1.0, "two queues in two seconds");
        assert_eq!(b.rates.messages.get(), 1.0);
        // A queue's own rates start from its first sample.
        publish(&b, "/", "a");
        b.sample_rates(2.0);
        let a = b.vhost("/").unwrap().queue("a").unwrap();
        assert_eq!(a.rates.published.get(), 0.5);
        assert_eq!(b.rates.queue_created.get(), 0.0);
    }
}
