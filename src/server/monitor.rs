//! The resource monitor: reads the process's resident memory and the data
//! directory's free disk space a few times a second and raises or clears
//! the broker's alarms.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tracing::{info, warn};

use crate::broker::Broker;
use crate::config::MemoryConfig;

const INTERVAL: Duration = Duration::from_millis(200);

/// The configured limit in bytes.
pub fn memory_limit(config: &MemoryConfig) -> u64 {
    if config.high_watermark_bytes > 0 {
        return config.high_watermark_bytes;
    }
    let total = total_memory().unwrap_or(8 << 30);
    (total as f64 * config.high_watermark) as u64
}

/// The machine's RAM, from /proc/meminfo.
fn total_memory() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// This process's resident memory, from /proc/self/statm.
pub fn resident() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = text.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4096)
}

/// Free bytes on the file system holding `dir`.
pub fn disk_free(dir: &Path) -> Option<u64> {
    let path = std::ffi::CString::new(dir.as_os_str().as_encoded_bytes()).ok()?;
    let mut s = std::mem::MaybeUninit::<libc::statvfs>::uninit();
    // SAFETY: `path` is a valid NUL-terminated string and `s` a valid out-pointer.
    if unsafe { libc::statvfs(path.as_ptr(), s.as_mut_ptr()) } != 0 {
        return None;
    }
    // SAFETY: statvfs returned 0, so it filled `s`.
    let s = unsafe { s.assume_init() };
    #[allow(clippy::unnecessary_cast)] // the field types differ between platforms
    Some(s.f_bavail as u64 * s.f_frsize as u64)
}

pub async fn monitor(broker: Arc<Broker>, data_dir: PathBuf, paging_ratio: f64) {
    let mut memory = MemoryWatch { was_raised: false, paging_ratio };
    let mut disk_was_raised = false;
    let mut every = tokio::time::interval(INTERVAL);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = every.tick() => {
                if let Some(free) = disk_free(&data_dir) {
                    observe_disk(&broker, free, &mut disk_was_raised);
                }
            }
            // Connections taking in data fast: memory is read again at once,
            // so a flood of big messages is blocked within a few MiB of the
            // limit instead of up to INTERVAL later.
            _ = broker.alarms.intake() => {}
        }
        if let Some(used) = resident() {
            memory.observe(&broker, used);
        }
    }
}

fn observe_disk(broker: &Broker, free: u64, was_raised: &mut bool) {
    // A store that failed a write holds the alarm up: publishers stay
    // blocked until Warren is restarted.
    let raised = broker.alarms.observe_disk(free, broker.store_failed());
    if raised != *was_raised {
        let limit = broker.alarms.disk_free_limit();
        if raised {
            warn!(free, limit, "disk alarm raised: publishers are blocked");
        } else {
            info!(free, limit, "disk alarm cleared: publishers may go on");
        }
        *was_raised = raised;
    }
}

struct MemoryWatch {
    was_raised: bool,
    paging_ratio: f64,
}

impl MemoryWatch {
    fn observe(&mut self, broker: &Broker, used: u64) {
        let raised = broker.alarms.observe_memory(used);
        if raised != self.was_raised {
            let limit = broker.alarms.memory_limit();
            if raised {
                warn!(used, limit, "memory alarm raised: publishers are blocked");
            } else {
                info!(used, limit, "memory alarm cleared: publishers may go on");
            }
            self.was_raised = raised;
        }
        // Like RabbitMQ's paging ratio: from this share of the limit on,
        // queues page transient messages out too, to stay clear of the alarm.
        let paging = used as f64 >= broker.alarms.memory_limit() as f64 * self.paging_ratio;
        if let Some(store) = broker.vhost("/").and_then(|v| v.store().cloned()) {
            if store.under_pressure() != paging {
                info!(used, paging, "queues page transient messages to disk: {paging}");
                store.set_pressure(paging);
            }
        }
    }
}

/// How often rates are sampled (RabbitMQ's default `collect_statistics_interval`).
pub const SAMPLE_EVERY: std::time::Duration = std::time::Duration::from_secs(5);

/// Samples the broker's counters for their rates, every `SAMPLE_EVERY`.
pub async fn sample(broker: Arc<Broker>) {
    let mut last = tokio::time::Instant::now();
    let mut every = tokio::time::interval(SAMPLE_EVERY);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        every.tick().await;
        let now = tokio::time::Instant::now();
        let secs = now.duration_since(last).as_secs_f64();
        last = now;
        let b = broker.clone();
        // Off the async workers: it visits every queue.
        let _ = tokio::task::spawn_blocking(move || b.sample_rates(secs)).await;
    }
}
