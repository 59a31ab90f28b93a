//! Durable storage: the records Warren keeps on disk, the `Store` trait
//! every implementation provides (RocksDB on disk, an in-memory one for
//! tests), and the group-commit writer in front of it.
//!
//! The store knows nothing of the broker: it stores records and returns
//! them at start-up. May use protocol types.

pub mod memory;
pub mod records;
pub mod rocks;
pub mod writer;

pub use records::{BindingRecord, ExchangeRecord, MessageRecord, QueueRecord};
pub use writer::StoreHandle;

/// The on-disk format's version; a data directory written with another
/// one is refused at start-up, never silently reinterpreted.
pub const SCHEMA_VERSION: u32 = 1;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot open the data directory {path}: {reason}")]
    Open { path: String, reason: String },
    #[error(
        "the data directory {path} was written by schema version {found}; this Warren reads version {SCHEMA_VERSION}"
    )]
    Schema { path: String, found: String },
    #[error("damaged record in the data directory ({what}): refusing to start rather than lose data")]
    Corrupt { what: String },
    #[error("storage write failed: {0}")]
    Write(String),
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// One change to durable state. Ops are applied in the order submitted.
#[derive(Debug, Clone, PartialEq)]
pub enum Op {
    PutExchange(ExchangeRecord),
    DeleteExchange {
        vhost: String,
        name: String,
    },
    PutQueue(QueueRecord),
    /// Deletes the queue and every index entry it had.
    DeleteQueue {
        vhost: String,
        name: String,
        id: u64,
    },
    PutBinding(BindingRecord),
    DeleteBinding(BindingRecord),
    /// A persistent message, stored once however many queues hold it.
    PutMessage {
        id: u64,
        record: MessageRecord,
    },
    DeleteMessage {
        id: u64,
    },
    /// A message's place in a durable queue.
    Enqueue {
        queue: u64,
        seq: u64,
        message: u64,
    },
    /// The message at that place was delivered (it comes back redelivered).
    MarkDelivered {
        queue: u64,
        seq: u64,
        message: u64,
    },
    /// The place was settled for good (acked, dropped, purged).
    Remove {
        queue: u64,
        seq: u64,
    },
}

/// A message's place in a queue, as recovered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IndexEntry {
    pub seq: u64,
    pub message: u64,
    pub delivered: bool,
}

/// Everything durable, read back at start-up.
#[derive(Debug, Default)]
pub struct Recovered {
    pub exchanges: Vec<ExchangeRecord>,
    /// Each queue with its entries in `seq` order.
    pub queues: Vec<(QueueRecord, Vec<IndexEntry>)>,
    pub bindings: Vec<BindingRecord>,
    pub messages: rustc_hash::FxHashMap<u64, MessageRecord>,
}

/// What every storage implementation provides. Writes are applied
/// atomically, in order; with `sync` they are durable when `write` returns.
pub trait Store: Send + Sync + 'static {
    fn write(&self, ops: &[Op], sync: bool) -> Result<()>;
    fn load(&self) -> Result<Recovered>;
    /// Reclaims the space of deleted records (a hint; may do nothing).
    fn compact(&self) {}
}

#[cfg(test)]
mod suite;
