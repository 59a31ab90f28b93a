//! The memory monitor: reads the process's resident memory a few times a
//! second and raises or clears the broker's memory alarm.

use std::sync::Arc;
use std::time::Duration;

use tracing::{info, warn};

use crate::broker::Broker;
use crate::config::MemoryConfig;

const INTERVAL: Duration = Duration::from_millis(200);

/// The configured limit in bytes.
pub fn limit(config: &MemoryConfig) -> u64 {
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

pub async fn monitor(broker: Arc<Broker>) {
    let mut was_raised = false;
    loop {
        if let Some(used) = resident() {
            let raised = broker.alarms.observe_memory(used);
            if raised != was_raised {
                let limit = broker.alarms.memory_limit();
                if raised {
                    warn!(used, limit, "memory alarm raised: publishers are blocked");
                } else {
                    info!(used, limit, "memory alarm cleared: publishers may go on");
                }
                was_raised = raised;
            }
        }
        tokio::time::sleep(INTERVAL).await;
    }
}
