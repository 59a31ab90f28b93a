//! What the broker counts for the management API and Prometheus, and how
//! rates are made of it. Counters are written by one owner only (a
//! connection's task, or whoever holds a queue's lock), so adding is a plain
//! load and store: no locked instruction, no shared cache line on the
//! publish path. Readers (a scrape, an API call) add them up when asked;
//! nothing is kept in a statistics database. Rates are the change of a
//! counter between the samples `Sampler` takes every few seconds.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// A monotonic counter with a single writer.
#[derive(Debug, Default)]
pub struct Counter(AtomicU64);

impl Counter {
    /// Adds `n`. Only the counter's owner may call this (see the module).
    #[inline]
    pub fn add(&self, n: u64) {
        self.0.store(self.0.load(Relaxed).wrapping_add(n), Relaxed);
    }

    #[inline]
    pub fn get(&self) -> u64 {
        self.0.load(Relaxed)
    }
}

/// A counter any thread may add to (rare events: churn, dead letters).
#[derive(Debug, Default)]
pub struct Shared(AtomicU64);

impl Shared {
    pub fn add(&self, n: u64) {
        self.0.fetch_add(n, Relaxed);
    }

    pub fn get(&self) -> u64 {
        self.0.load(Relaxed)
    }
}

macro_rules! totals {
    ($(#[$m:meta])* $name:ident, $plain:ident { $($(#[$fm:meta])* $field:ident),* $(,)? }) => {
        $(#[$m])*
        #[derive(Debug, Default)]
        pub struct $name { $($(#[$fm])* pub $field: Counter,)* }

        /// A snapshot of the counters, as plain numbers that add up.
        #[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
        pub struct $plain { $(pub $field: u64,)* }

        impl $name {
            pub fn snapshot(&self) -> $plain {
                $plain { $($field: self.$field.get(),)* }
            }
        }

        impl std::ops::AddAssign for $plain {
            fn add_assign(&mut self, o: $plain) {
                $(self.$field = self.$field.wrapping_add(o.$field);)*
            }
        }

        impl $plain {
            /// Each field with its name (for generic rendering).
            pub fn fields(&self) -> [(&'static str, u64); [$(stringify!($field)),*].len()] {
                [$((stringify!($field), self.$field)),*]
            }
        }
    };
}

totals!(
    /// What one connection did with messages: RabbitMQ's `global_messages_*`
    /// counters are these, summed over connections open and closed.
    MsgCounters,
    MsgTotals {
        /// Publishes received (`messages_received_total`).
        received,
        /// Of those, on channels in confirm mode.
        received_confirm,
        /// Routed to at least one queue.
        routed,
        /// Unroutable and dropped (not mandatory).
        unroutable_dropped,
        /// Unroutable and returned (mandatory).
        unroutable_returned,
        /// Publisher confirms sent (acks).
        confirmed,
        deliver_auto,
        deliver_manual,
        get_auto,
        get_manual,
        get_empty,
        redelivered,
        acked,
    }
);

totals!(
    /// Bytes and reads/writes on a connection's socket.
    IoCounters,
    IoTotals { recv_oct, recv_cnt, send_oct, send_cnt }
);

totals!(
    /// What passed through one queue (kept under its lock as `QueueTotals`).
    QueueCounters,
    QueueTotals {
        /// Messages the queue took.
        published,
        /// Delivered to consumers or fetched with `basic.get`.
        delivered,
        /// Of those, ones delivered before (redelivered).
        redelivered,
        /// Settled by the client (acks).
        acked,
        expired,
        maxlen,
        rejected,
        delivery_limit,
    }
);

impl MsgTotals {
    pub fn delivered(&self) -> u64 {
        self.deliver_auto + self.deliver_manual
    }

    pub fn deliver_get(&self) -> u64 {
        self.delivered() + self.get_auto + self.get_manual
    }
}

/// A rate made from two samples of a counter: written by the sampler only.
#[derive(Debug, Default)]
pub struct Rate {
    last: AtomicU64,
    /// Per second, as f64 bits.
    per_sec: AtomicU64,
    /// A sample was taken before: the next one makes a rate.
    primed: std::sync::atomic::AtomicBool,
}

impl Rate {
    /// Takes a sample of `value`, `secs` after the previous one.
    pub fn sample(&self, value: u64, secs: f64) {
        let last = self.last.swap(value, Relaxed);
        if self.primed.swap(true, Relaxed) && secs > 0.0 {
            let delta = value.wrapping_sub(last) as i64 as f64;
            self.per_sec.store((delta / secs).to_bits(), Relaxed);
        }
    }

    /// Per second between the last two samples (0 before two were taken).
    pub fn get(&self) -> f64 {
        let r = f64::from_bits(self.per_sec.load(Relaxed));
        // Rounded as RabbitMQ shows them.
        (r * 10.0).round() / 10.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_add_up_and_rates_follow_samples() {
        let c = MsgCounters::default();
        c.received.add(3);
        c.received.add(2);
        let mut t = c.snapshot();
        assert_eq!(t.received, 5);
        t += c.snapshot();
        assert_eq!(t.received, 10);
        assert!(t.fields().contains(&("received", 10)));

        let r = Rate::default();
        r.sample(100, 5.0);
        assert_eq!(r.get(), 0.0, "one sample is no rate");
        r.sample(150, 5.0);
        assert_eq!(r.get(), 10.0);
        r.sample(140, 5.0);
        assert_eq!(r.get(), -2.0, "a depth may fall");
    }
}
