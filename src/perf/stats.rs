//! Counters and latency histograms shared by a benchmark's tasks.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Instant;

use hdrhistogram::Histogram;
use parking_lot::Mutex;

#[derive(Debug)]
pub struct Stats {
    pub epoch: Instant,
    pub published: AtomicU64,
    pub confirmed: AtomicU64,
    pub nacked: AtomicU64,
    pub consumed: AtomicU64,
    pub consumed_bytes: AtomicU64,
    /// False during warm-up: nothing is recorded.
    pub recording: AtomicBool,
    latency: Mutex<Histogram<u64>>,
    /// From a publish's write to its confirm (or nack), in µs.
    confirm_latency: Mutex<Histogram<u64>>,
}

/// Latencies are recorded in microseconds, up to 100 s.
fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 100_000_000, 3).expect("valid histogram bounds")
}

impl Default for Stats {
    fn default() -> Self {
        Stats {
            epoch: Instant::now(),
            published: AtomicU64::new(0),
            confirmed: AtomicU64::new(0),
            nacked: AtomicU64::new(0),
            consumed: AtomicU64::new(0),
            consumed_bytes: AtomicU64::new(0),
            recording: AtomicBool::new(true),
            latency: Mutex::new(histogram()),
            confirm_latency: Mutex::new(histogram()),
        }
    }
}

/// A task's own histogram, merged into the shared one now and then.
pub struct LocalLatency {
    hist: Histogram<u64>,
}

impl Default for LocalLatency {
    fn default() -> Self {
        LocalLatency { hist: histogram() }
    }
}

impl LocalLatency {
    pub fn record(&mut self, micros: u64) {
        let _ = self.hist.record(micros.clamp(1, 100_000_000));
    }

    pub fn merge_into(&mut self, stats: &Stats) {
        if !self.hist.is_empty() {
            if stats.recording.load(Ordering::Relaxed) {
                let _ = stats.latency.lock().add(&self.hist);
            }
            self.hist.reset();
        }
    }
}

impl Stats {
    /// Nanoseconds since the benchmark began: what producers stamp in bodies.
    pub fn now_nanos(&self) -> u64 {
        self.epoch.elapsed().as_nanos() as u64
    }

    pub fn add(&self, counter: &AtomicU64, n: u64) {
        if self.recording.load(Ordering::Relaxed) {
            counter.fetch_add(n, Ordering::Relaxed);
        }
    }

    /// Ends warm-up: zero every counter and start recording.
    pub fn start_recording(&self) {
        for c in [&self.published, &self.confirmed, &self.nacked, &self.consumed, &self.consumed_bytes] {
            c.store(0, Ordering::Relaxed);
        }
        self.latency.lock().reset();
        self.confirm_latency.lock().reset();
        self.recording.store(true, Ordering::Relaxed);
    }

    /// `n` publishes were confirmed `micros` after they were written.
    pub fn confirmed_after(&self, micros: u64, n: u64) {
        if self.recording.load(Ordering::Relaxed) {
            let _ = self.confirm_latency.lock().record_n(micros.clamp(1, 100_000_000), n);
        }
    }

    /// Latency percentiles in microseconds: p50, p99, p99.9, max, and the count.
    pub fn latency(&self) -> (u64, u64, u64, u64, u64) {
        percentiles(&self.latency.lock())
    }

    /// The same for confirms.
    pub fn confirm_latency(&self) -> (u64, u64, u64, u64, u64) {
        percentiles(&self.confirm_latency.lock())
    }
}

fn percentiles(h: &Histogram<u64>) -> (u64, u64, u64, u64, u64) {
    (h.value_at_quantile(0.5), h.value_at_quantile(0.99), h.value_at_quantile(0.999), h.max(), h.len())
}
