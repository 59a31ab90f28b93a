//! Resource alarms. While one is raised, connections that publish are
//! blocked (`connection.blocked`, and their sockets are no longer read)
//! until it clears, so publishers cannot grow the broker's memory or fill
//! its disk without bound. The server's monitor takes the readings; the
//! broker only holds the state.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use tokio::sync::{watch, Notify};

#[derive(Debug)]
pub struct Alarms {
    /// True while any alarm is raised.
    blocked: watch::Sender<bool>,
    memory_raised: AtomicBool,
    disk_raised: AtomicBool,
    /// Bytes of resident memory at which the memory alarm is raised.
    memory_limit: AtomicU64,
    /// Free bytes on the data directory's disk below which the disk alarm is raised.
    disk_free_limit: AtomicU64,
    /// The last readings (0 before the first).
    memory_used: AtomicU64,
    disk_free: AtomicU64,
    /// Bytes all connections have read; each `INTAKE_STEP` of them wakes
    /// the monitor, so a flood is seen after a few MiB rather than at the
    /// next timed reading.
    intake_bytes: AtomicU64,
    intake: Notify,
}

/// Bytes a connection reads between two wake-ups of the monitor.
pub const INTAKE_STEP: u64 = 4 << 20;

impl Alarms {
    pub fn new(memory_limit: u64, disk_free_limit: u64) -> Self {
        Alarms {
            blocked: watch::Sender::new(false),
            memory_raised: AtomicBool::new(false),
            disk_raised: AtomicBool::new(false),
            memory_limit: AtomicU64::new(memory_limit),
            disk_free_limit: AtomicU64::new(disk_free_limit),
            memory_used: AtomicU64::new(0),
            disk_free: AtomicU64::new(0),
            intake_bytes: AtomicU64::new(0),
            intake: Notify::new(),
        }
    }

    /// Follows the alarm state: true while publishers must be blocked.
    pub fn subscribe(&self) -> watch::Receiver<bool> {
        self.blocked.subscribe()
    }

    /// A connection read `n` bytes (one add per socket read, not per message).
    pub fn took_in(&self, n: u64) {
        let before = self.intake_bytes.fetch_add(n, Ordering::Relaxed);
        if before / INTAKE_STEP != (before + n) / INTAKE_STEP {
            self.intake.notify_one();
        }
    }

    /// Wakes after connections read another `INTAKE_STEP` bytes.
    pub async fn intake(&self) {
        self.intake.notified().await
    }

    pub fn memory_limit(&self) -> u64 {
        self.memory_limit.load(Ordering::Relaxed)
    }

    /// Changes the limit at run time (like `rabbitmqctl set_vm_memory_high_watermark`).
    pub fn set_memory_limit(&self, bytes: u64) {
        self.memory_limit.store(bytes, Ordering::Relaxed);
    }

    pub fn disk_free_limit(&self) -> u64 {
        self.disk_free_limit.load(Ordering::Relaxed)
    }

    /// Changes the limit at run time (like `rabbitmqctl set_disk_free_limit`).
    pub fn set_disk_free_limit(&self, bytes: u64) {
        self.disk_free_limit.store(bytes, Ordering::Relaxed);
    }

    /// Compares a memory reading with the limit; returns whether the memory alarm is raised.
    pub fn observe_memory(&self, used: u64) -> bool {
        self.memory_used.store(used, Ordering::Relaxed);
        let raised = used >= self.memory_limit();
        self.memory_raised.store(raised, Ordering::Relaxed);
        self.publish();
        raised
    }

    /// Compares a free-disk reading with the limit; returns whether the
    /// disk alarm is raised. A `failed` store raises it whatever the reading.
    pub fn observe_disk(&self, free: u64, failed: bool) -> bool {
        self.disk_free.store(free, Ordering::Relaxed);
        let raised = failed || free < self.disk_free_limit();
        self.disk_raised.store(raised, Ordering::Relaxed);
        self.publish();
        raised
    }

    fn publish(&self) {
        let any = self.memory_raised.load(Ordering::Relaxed) || self.disk_raised.load(Ordering::Relaxed);
        self.blocked.send_if_modified(|state| std::mem::replace(state, any) != any);
    }

    pub fn is_raised(&self) -> bool {
        *self.blocked.borrow()
    }

    pub fn memory_alarm(&self) -> bool {
        self.memory_raised.load(Ordering::Relaxed)
    }

    pub fn disk_alarm(&self) -> bool {
        self.disk_raised.load(Ordering::Relaxed)
    }

    /// The last memory reading, in bytes (0 before the first).
    pub fn memory_used(&self) -> u64 {
        self.memory_used.load(Ordering::Relaxed)
    }

    /// The last free-disk reading, in bytes (0 before the first).
    pub fn disk_free(&self) -> u64 {
        self.disk_free.load(Ordering::Relaxed)
    }
}
