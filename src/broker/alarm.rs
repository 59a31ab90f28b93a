//! Resource alarms. While one is raised, connections that publish are
//! blocked (`connection.blocked`, and their sockets are no longer read)
//! until it clears, so publishers cannot grow the broker's memory without
//! bound. The server's monitor decides when; the broker only holds the state.

use std::sync::atomic::{AtomicU64, Ordering};

use tokio::sync::watch;

#[derive(Debug)]
pub struct Alarms {
    memory: watch::Sender<bool>,
    /// Bytes of resident memory at which the memory alarm is raised.
    memory_limit: AtomicU64,
}

impl Alarms {
    pub fn new(memory_limit: u64) -> Self {
        Alarms { memory: watch::Sender::new(false), memory_limit: AtomicU64::new(memory_limit) }
    }

    /// Follows the alarm state: true while publishers must be blocked.
    pub fn subscribe(&self) -> watch::Receiver<bool> {
        self.memory.subscribe()
    }

    pub fn memory_limit(&self) -> u64 {
        self.memory_limit.load(Ordering::Relaxed)
    }

    /// Changes the limit at run time (like `rabbitmqctl set_vm_memory_high_watermark`).
    pub fn set_memory_limit(&self, bytes: u64) {
        self.memory_limit.store(bytes, Ordering::Relaxed);
    }

    /// Compares a memory reading with the limit and raises or clears the alarm.
    pub fn observe_memory(&self, used: u64) -> bool {
        let raised = used >= self.memory_limit();
        self.memory.send_if_modified(|state| std::mem::replace(state, raised) != raised);
        raised
    }

    pub fn is_raised(&self) -> bool {
        *self.memory.borrow()
    }
}
