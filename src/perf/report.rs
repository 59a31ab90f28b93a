//! What a run prints: a line a second while it runs, a summary at the end
//! (a table, or JSON with --json).

use std::sync::atomic::Ordering;
use std::time::Instant;

use serde::Serialize;

use super::stats::Stats;
use super::Options;

pub struct Snapshot {
    at: Instant,
    published: u64,
    confirmed: u64,
    consumed: u64,
}

impl Snapshot {
    pub fn take(s: &Stats) -> Snapshot {
        Snapshot {
            at: Instant::now(),
            published: s.published.load(Ordering::Relaxed),
            confirmed: s.confirmed.load(Ordering::Relaxed),
            consumed: s.consumed.load(Ordering::Relaxed),
        }
    }

    pub fn line_since(&self, before: &Snapshot, t: f64) -> String {
        let secs = self.at.duration_since(before.at).as_secs_f64().max(1e-9);
        let rate = |a: u64, b: u64| (a.saturating_sub(b)) as f64 / secs;
        format!(
            "{t:6.1}s  sent {:>11.0} msg/s  confirmed {:>11.0} msg/s  received {:>11.0} msg/s",
            rate(self.published, before.published),
            rate(self.confirmed, before.confirmed),
            rate(self.consumed, before.consumed)
        )
    }
}

#[derive(Debug, Default, Serialize)]
pub struct Summary {
    pub scenario: String,
    pub producers: usize,
    pub consumers: usize,
    pub queues: usize,
    pub size: usize,
    pub seconds: f64,
    pub published_per_sec: f64,
    pub confirmed_per_sec: f64,
    pub consumed_per_sec: f64,
    pub consumed_mb_per_sec: f64,
    pub latency_us_p50: u64,
    pub latency_us_p99: u64,
    pub latency_us_p999: u64,
    pub latency_us_max: u64,
    /// From a publish's write to its confirm, when confirms were asked for.
    pub confirm_us_p50: u64,
    pub confirm_us_p99: u64,
    pub confirm_us_p999: u64,
    /// An append and fdatasync of a small record in --fsync-floor's
    /// directory (a write-ahead log's floor), measured after the scenario.
    pub fdatasync_us_p50: Option<u64>,
    pub fdatasync_us_p99: Option<u64>,
    pub messages: u64,
    pub publish_seconds: f64,
    pub drain_seconds: f64,
    pub connections: usize,
    pub cycles_per_sec: f64,
    /// Delayed: probes sent and received (latencies are how late they came).
    pub probes_sent: u64,
    pub probes_received: u64,
    /// CPU seconds the broker (--broker-pid) spent over the measured period.
    pub broker_cpu_seconds: Option<f64>,
    /// ... per delivered message (per round trip for rpc), in µs.
    pub broker_cpu_us_per_msg: Option<f64>,
    /// The same scenario over the floor relay (--floor).
    pub floor: Option<Box<Summary>>,
}

impl Summary {
    pub fn new(o: &Options) -> Summary {
        Summary {
            scenario: format!("{:?}", o.scenario).to_lowercase(),
            producers: o.producers,
            consumers: o.consumers,
            queues: o.queues,
            size: o.size,
            ..Default::default()
        }
    }

    fn latency(&mut self, s: &Stats) {
        let (p50, p99, p999, max, _) = s.latency();
        (self.latency_us_p50, self.latency_us_p99, self.latency_us_p999, self.latency_us_max) =
            (p50, p99, p999, max);
    }

    pub fn throughput(&mut self, s: &Stats, secs: f64) {
        let per = |n: u64| n as f64 / secs.max(1e-9);
        self.seconds = secs;
        self.published_per_sec = per(s.published.load(Ordering::Relaxed));
        self.confirmed_per_sec = per(s.confirmed.load(Ordering::Relaxed));
        self.consumed_per_sec = per(s.consumed.load(Ordering::Relaxed));
        self.consumed_mb_per_sec = per(s.consumed_bytes.load(Ordering::Relaxed)) / 1e6;
        self.latency(s);
        let (p50, p99, p999, _, _) = s.confirm_latency();
        (self.confirm_us_p50, self.confirm_us_p99, self.confirm_us_p999) = (p50, p99, p999);
    }

    /// The broker's CPU over the measured period, per delivered message.
    pub fn cpu(&mut self, seconds: Option<f64>) {
        let secs = if self.drain_seconds > 0.0 { self.drain_seconds } else { self.seconds };
        let delivered = self.consumed_per_sec * secs;
        self.broker_cpu_seconds = seconds;
        self.broker_cpu_us_per_msg = seconds.filter(|_| delivered >= 1.0).map(|s| s * 1e6 / delivered);
    }

    pub fn backlog(&mut self, s: &Stats, messages: u64, publish_secs: f64, drain_secs: f64) {
        self.messages = messages;
        self.publish_seconds = publish_secs;
        self.drain_seconds = drain_secs;
        self.published_per_sec = messages as f64 / publish_secs.max(1e-9);
        self.consumed_per_sec = s.consumed.load(Ordering::Relaxed) as f64 / drain_secs.max(1e-9);
        self.latency(s);
    }

    /// The delayed scenario: `messages` waited (filled in `fill_secs`),
    /// probes' lateness, and the ordinary traffic beside them.
    pub fn delayed(
        &mut self,
        messages: u64,
        fill_secs: f64,
        probes: &Stats,
        sent: u64,
        traffic: &Stats,
        secs: f64,
    ) {
        self.messages = messages;
        self.publish_seconds = fill_secs;
        self.seconds = secs;
        self.probes_sent = sent;
        self.probes_received = probes.consumed.load(Ordering::Relaxed);
        self.published_per_sec = traffic.published.load(Ordering::Relaxed) as f64 / secs.max(1e-9);
        self.consumed_per_sec = traffic.consumed.load(Ordering::Relaxed) as f64 / secs.max(1e-9);
        self.latency(probes);
    }

    pub fn churn(&mut self, cycles: u64, secs: f64) {
        self.seconds = secs;
        self.cycles_per_sec = cycles as f64 / secs.max(1e-9);
    }

    pub fn idle(&mut self, connections: usize, queues: usize) {
        self.connections = connections;
        self.queues = queues;
    }

    pub fn table(&self) -> String {
        let mut out = self.figures();
        if self.confirmed_per_sec > 0.0 {
            out += &format!(
                "\nconfirms p50 {:.3} ms, p99 {:.3} ms, p99.9 {:.3} ms after the publish",
                self.confirm_us_p50 as f64 / 1000.0,
                self.confirm_us_p99 as f64 / 1000.0,
                self.confirm_us_p999 as f64 / 1000.0
            );
        }
        if let (Some(p50), Some(p99)) = (self.fdatasync_us_p50, self.fdatasync_us_p99) {
            out += &format!("\nfdatasync floor: append and sync p50 {p50} µs, p99 {p99} µs");
        }
        if let Some(us) = self.broker_cpu_us_per_msg {
            out += &format!("\nbroker CPU {us:.2} µs per delivered message");
        }
        if let Some(f) = &self.floor {
            let share = |broker: f64, floor: f64| 100.0 * broker / floor.max(1e-9);
            let times = |broker: u64, floor: u64| broker as f64 / floor.max(1) as f64;
            out += &format!("\nfloor (the relay): {}", f.figures().replace('\n', "\n  "));
            if let Some(us) = f.broker_cpu_us_per_msg {
                out += &format!("\n  relay CPU {us:.2} µs per message");
            }
            out += &format!(
                "\nbroker against the floor: {:.0}% of its msg/s",
                share(self.consumed_per_sec, f.consumed_per_sec)
            );
            if f.consumed_mb_per_sec > 0.0 {
                out +=
                    &format!(", {:.0}% of its MB/s", share(self.consumed_mb_per_sec, f.consumed_mb_per_sec));
            }
            out += &format!(
                "; latency p50 {:.2}×, p99 {:.2}× the floor's",
                times(self.latency_us_p50, f.latency_us_p50),
                times(self.latency_us_p99, f.latency_us_p99)
            );
        }
        out
    }

    fn figures(&self) -> String {
        let ms = |us: u64| us as f64 / 1000.0;
        match self.scenario.as_str() {
            "backlog" => format!(
                "backlog of {} messages: published {:.0} msg/s ({:.2}s), drained {:.0} msg/s ({:.2}s)",
                self.messages,
                self.published_per_sec,
                self.publish_seconds,
                self.consumed_per_sec,
                self.drain_seconds
            ),
            "churn" => {
                format!("connection churn: {:.0} connections/s (open, declare, close)", self.cycles_per_sec)
            }
            "idle" => format!("held {} connections and {} queues", self.connections, self.queues),
            "delayed" => format!(
                "{} delayed messages waiting (filled at {:.0} msg/s); {} of {} probes arrived; \
                 late by p50 {:.3} ms, p99 {:.3} ms, p99.9 {:.3} ms, max {:.3} ms; \
                 beside {:.0} msg/s published, {:.0} msg/s consumed",
                self.messages,
                self.messages as f64 / self.publish_seconds.max(1e-9),
                self.probes_received,
                self.probes_sent,
                ms(self.latency_us_p50),
                ms(self.latency_us_p99),
                ms(self.latency_us_p999),
                ms(self.latency_us_max),
                self.published_per_sec,
                self.consumed_per_sec
            ),
            _ => format!(
                "sent {:.0} msg/s, confirmed {:.0} msg/s, received {:.0} msg/s ({:.1} MB/s)\n\
                 latency p50 {:.3} ms, p99 {:.3} ms, p99.9 {:.3} ms, max {:.3} ms",
                self.published_per_sec,
                self.confirmed_per_sec,
                self.consumed_per_sec,
                self.consumed_mb_per_sec,
                ms(self.latency_us_p50),
                ms(self.latency_us_p99),
                ms(self.latency_us_p999),
                ms(self.latency_us_max)
            ),
        }
    }
}
