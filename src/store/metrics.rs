//! What the store's writer thread measures of itself, for Prometheus: ops
//! per group commit and how long a synced commit takes. Fixed buckets of
//! atomics: the writer (the only writer) adds without a lock, a scrape
//! reads whenever it likes. May use nothing of ours.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// Upper bounds of the batch-size buckets, in ops (a batch holds at most
/// `MAX_BATCH`, 16 Ki, except a purge's, which is split as it goes).
pub const BATCH_BOUNDS: &[u64] = &[1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384];

/// Upper bounds of the sync-latency buckets, in nanoseconds (100 µs to 2.5 s).
pub const SYNC_BOUNDS_NS: &[u64] = &[
    100_000,
    250_000,
    500_000,
    1_000_000,
    2_500_000,
    5_000_000,
    10_000_000,
    25_000_000,
    50_000_000,
    100_000_000,
    250_000_000,
    500_000_000,
    1_000_000_000,
    2_500_000_000,
];

/// A histogram over fixed bounds; a value lands in the first bucket whose
/// bound it does not exceed, or past the last one (+Inf).
#[derive(Debug)]
pub struct Histogram {
    bounds: &'static [u64],
    /// One per bound, plus +Inf; not cumulative (a snapshot adds them up).
    buckets: Box<[AtomicU64]>,
    sum: AtomicU64,
    count: AtomicU64,
}

/// A histogram read at one moment, in Prometheus's shape.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistogramSnapshot {
    pub bounds: &'static [u64],
    /// Cumulative counts, one per bound (the +Inf bucket is `count`).
    pub cumulative: Vec<u64>,
    pub sum: u64,
    pub count: u64,
}

impl Histogram {
    pub fn new(bounds: &'static [u64]) -> Histogram {
        Histogram {
            bounds,
            buckets: (0..=bounds.len()).map(|_| AtomicU64::new(0)).collect(),
            sum: AtomicU64::new(0),
            count: AtomicU64::new(0),
        }
    }

    pub fn observe(&self, value: u64) {
        let i = self.bounds.partition_point(|b| *b < value);
        self.buckets[i].fetch_add(1, Relaxed);
        self.sum.fetch_add(value, Relaxed);
        self.count.fetch_add(1, Relaxed);
    }

    /// The buckets, cumulative. Read without a lock, so a commit landing
    /// meanwhile may show in some buckets and not yet in `count`: the count
    /// is never below the last bucket (Prometheus checks that).
    pub fn snapshot(&self) -> HistogramSnapshot {
        let mut total = 0;
        let mut cumulative = Vec::with_capacity(self.bounds.len());
        for b in &self.buckets[..self.bounds.len()] {
            total += b.load(Relaxed);
            cumulative.push(total);
        }
        let count = (total + self.buckets[self.bounds.len()].load(Relaxed)).max(self.count.load(Relaxed));
        HistogramSnapshot { bounds: self.bounds, cumulative, sum: self.sum.load(Relaxed), count }
    }
}

/// The writer's figures.
#[derive(Debug)]
pub struct StoreMetrics {
    /// Ops written per batch (after ops that cancel out were dropped).
    pub batch_ops: Histogram,
    /// Time to write and fsync one batch that someone waited on, in ns.
    pub sync_ns: Histogram,
    /// Batches that failed to be written.
    pub write_errors: AtomicU64,
    /// Paged-out messages read back from disk, and their body bytes: only
    /// consumers getting to them should read any (never a purge or a delete).
    pub pages_read: AtomicU64,
    pub page_bytes_read: AtomicU64,
}

impl Default for StoreMetrics {
    fn default() -> Self {
        StoreMetrics {
            batch_ops: Histogram::new(BATCH_BOUNDS),
            sync_ns: Histogram::new(SYNC_BOUNDS_NS),
            write_errors: AtomicU64::new(0),
            pages_read: AtomicU64::new(0),
            page_bytes_read: AtomicU64::new(0),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_land_in_the_first_bucket_they_fit_and_counts_add_up() {
        let h = Histogram::new(&[1, 10, 100]);
        for v in [0, 1, 2, 10, 11, 1000] {
            h.observe(v);
        }
        let s = h.snapshot();
        assert_eq!(s.cumulative, vec![2, 4, 5]);
        assert_eq!((s.count, s.sum), (6, 1024));
    }
}
