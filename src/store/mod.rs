//! Durable storage: the records Warren keeps on disk, the `Store` trait
//! every implementation provides (RocksDB on disk, an in-memory one for
//! tests), and the group-commit writer in front of it.
//!
//! The store knows nothing of the broker: it stores records and returns
//! them at start-up. May use protocol types.

pub mod dedup;
pub mod delayed;
pub mod memory;
pub mod metrics;
mod ranged;
pub mod records;
pub mod recovery;
pub mod refs;
pub mod rocks;
pub mod stream;
pub mod writer;

pub use dedup::{DedupBacklog, DedupEntry, DedupScope};
pub use delayed::{Delayed, DelayedAt, DelayedBacklog};
pub use records::{
    BindingRecord, ExchangeRecord, MessageRecord, QueueRecord, RecordParts, RecordRef, SharedRecord,
};
pub use writer::{PageSink, StoreHandle};

/// The on-disk format's version; a data directory written with another
/// one is refused at start-up, never silently reinterpreted. Version 3
/// keeps range marks of pages (`ranged.rs`); a version 2 directory is
/// brought to 3 at open (and an older Warren then refuses it, as it would
/// write ranges without their marks). Version 4 keeps a message held by
/// one queue in its place (`Op::PlaceWith`); a version 3 directory reads
/// the same and is brought to 4 at open (an older Warren would find
/// places it cannot read), its places moved as they are recovered.
pub const SCHEMA_VERSION: u32 = 4;

/// The version before range marks, which `RocksStore::open` brings to 4.
pub const SCHEMA_UNMARKED: u32 = 2;

/// The version before messages were kept in their places, which
/// `RocksStore::open` brings to 4.
pub const SCHEMA_SEPARATE: u32 = 3;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot open the data directory {path}: {reason}")]
    Open { path: String, reason: String },
    #[error(
        "the data directory {path} was written by schema version {found}; this Warren reads version {SCHEMA_VERSION} (and brings {SCHEMA_UNMARKED} and {SCHEMA_SEPARATE} to it)"
    )]
    Schema { path: String, found: String },
    #[error("damaged record in the data directory ({what}): refusing to start rather than lose data")]
    Corrupt { what: String },
    #[error("storage write failed: {0}")]
    Write(String),
    #[error("storage read failed: {0}")]
    Read(String),
}

use std::sync::Arc;

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// One change to durable state. Ops are applied in the order submitted.
#[derive(Debug, Clone, PartialEq)]
pub enum Op {
    PutExchange(Box<ExchangeRecord>),
    DeleteExchange {
        vhost: String,
        name: String,
    },
    PutQueue(Box<QueueRecord>),
    /// Deletes the queue and every index entry it had.
    DeleteQueue {
        vhost: String,
        name: String,
        id: u64,
        /// Its last page lane (lanes `id` ..= `id + last_lane`: one per priority level).
        last_lane: u8,
    },
    PutBinding(Box<BindingRecord>),
    DeleteBinding(Box<BindingRecord>),
    /// A persistent message, stored once however many queues hold it.
    PutMessage {
        id: u64,
        record: SharedRecord,
    },
    DeleteMessage {
        id: u64,
    },
    /// A message's place in a queue (written again to change its flags),
    /// its message kept apart (`PutMessage`: a shared one, or one with a
    /// body of `IndexEntry::INLINE_BELOW` or more) or in its page (`Page`).
    Place {
        queue: u64,
        entry: IndexEntry,
    },
    /// A place with its message kept in it (`entry` flagged `INLINE`): a
    /// persistent message held by one queue, not paged out, with a body
    /// below `IndexEntry::INLINE_BELOW`, is written as this alone, and
    /// deleted with its place (`Remove`). Written again, whole, to change
    /// its flags.
    PlaceWith {
        queue: u64,
        entry: IndexEntry,
        record: SharedRecord,
        /// Nothing of this place is on disk before it (a new message, or
        /// one put back after its removal), so a removal later in the same
        /// batch cancels both (`annihilate`); false for a rewrite of flags.
        first: bool,
    },
    /// A paged-out message: its place (flagged `PAGED`) and a copy of the
    /// message, kept under the place's seq in lane `queue + entry.lane`,
    /// to read back in order.
    Page {
        queue: u64,
        entry: IndexEntry,
        record: SharedRecord,
    },
    /// A control-plane record (a user, vhost, permission, policy…): the
    /// layer that owns it chooses its encoding; the store keeps it under
    /// (`space`, `key`) and hands it back at start-up.
    PutControl {
        space: String,
        key: String,
        value: Vec<u8>,
    },
    DeleteControl {
        space: String,
        key: String,
    },
    /// The place was settled for good (acked, dropped, purged), and its
    /// page (in that lane) with it if it has one.
    Remove {
        queue: u64,
        seq: u64,
        lane: Option<u8>,
    },
    /// Drops a queue's paged-out part without reading it: range deletes of
    /// its places (`index`: seq ranges, end excluded) and of its pages
    /// (`pages`: lane, from seq, to seq; to `u64::MAX`, the whole lane with
    /// its read-back frontier). Messages shared with other queues
    /// are released apart (`StoreHandle::drop_paged`).
    DropPlaces {
        queue: u64,
        index: Vec<(u64, u64)>,
        pages: Vec<(u8, u64, u64)>,
    },
    /// How far a lane of a queue has been read back: past the last page
    /// read. Below it, pages of settled messages may wait to be deleted
    /// in a range (the queue deletes them in bulk); recovery deletes those
    /// it finds there, and every page of a lane whose queue is gone. A
    /// `DropPlaces` of a whole lane (to `u64::MAX`) deletes it.
    PageFrontier {
        queue: u64,
        lane: u8,
        seq: u64,
    },
    /// Every persistent message of the queue below `below` has been
    /// delivered (and so comes back redelivered after a restart), as
    /// RabbitMQ's queue index remembers deliveries. A queue with one lane
    /// delivers in `seq` order, so one mark per queue says it for all, and
    /// the writer writes one a batch, the highest (`annihilate::latest_marks`);
    /// a priority queue marks each place instead. `below` 0 deletes the
    /// mark (`DeleteQueue` does too; a gone queue's mark left by a split
    /// `DeleteQueue` goes at the next start).
    Delivered {
        queue: u64,
        below: u64,
    },
    /// Deletes the queue's record only: the writer splits a `DeleteQueue`
    /// into this, at once, and a `DropPlaces` of everything, once a drop
    /// that still reads the queue's index is done.
    DeleteQueueRecord {
        vhost: String,
        name: String,
    },
    /// A message waiting on a delayed exchange (`delayed.rs`); `boot` 0
    /// keeps it across restarts.
    PutDelayed {
        at: DelayedAt,
        boot: u64,
        record: SharedRecord,
    },
    /// It was routed (or dropped).
    DeleteDelayed(DelayedAt),
    /// Every message waiting on an exchange (it was deleted).
    DropDelayed {
        vhost: Arc<str>,
        exchange: Arc<str>,
    },
    /// A message id a deduplicating queue or exchange remembers (`dedup.rs`).
    PutDedup(DedupScope, DedupEntry),
    /// It was pushed out of the window.
    DeleteDedup(DedupScope, u64),
    /// The whole window (its owner was deleted).
    DropDedup(DedupScope),
}

/// A message's place in a queue, as stored in the queue's index.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct IndexEntry {
    pub seq: u64,
    pub message: u64,
    /// Body size in bytes (for byte limits without reading the message).
    pub size: u32,
    /// `DELIVERED`, `SHARED`, `TRANSIENT`, `PAGED`, `INLINE`.
    pub flags: u8,
    /// When the message expires, in ms since the Unix epoch; 0 for never.
    pub expires: u64,
    /// Where its page is kept: lane `queue + lane` (a priority queue has one
    /// lane per priority level; other queues only lane 0).
    pub lane: u8,
    /// How often it came back unacknowledged (for the delivery limit).
    pub returns: u32,
}

impl IndexEntry {
    /// It was delivered before: it comes back redelivered.
    pub const DELIVERED: u8 = 1;
    /// Its message is held by more than one queue (reference counted in `refs`).
    pub const SHARED: u8 = 2;
    /// Written only to free memory: gone after a restart.
    pub const TRANSIENT: u8 = 4;
    /// Its message is kept in the place's page, not among the messages.
    pub const PAGED: u8 = 8;
    /// Its message is kept in the place itself (`Op::PlaceWith`), not
    /// among the messages: held by this queue alone, not paged out, its
    /// body below `INLINE_BELOW`.
    pub const INLINE: u8 = 16;

    /// Bodies below this size are kept in their places; larger ones apart,
    /// so that rewriting a place's flags (a delivery marked) does not write
    /// the body again. RabbitMQ embeds messages below 4 KiB in its queue
    /// index likewise (`queue_index_embed_msgs_below`).
    pub const INLINE_BELOW: usize = 4096;

    pub fn has(&self, flag: u8) -> bool {
        self.flags & flag != 0
    }

    /// Whether its message is kept apart, among the messages: a shared
    /// one, or one that neither its page nor its place keeps. Only such a
    /// message has a record to delete once its place goes.
    pub fn apart(&self) -> bool {
        self.has(Self::SHARED) || !(self.has(Self::PAGED) || self.has(Self::INLINE))
    }
}

/// The durable topology, read back at start-up (queue contents are read
/// with `scan_index` and `read_messages`).
#[derive(Debug, Default)]
pub struct Recovered {
    pub exchanges: Vec<ExchangeRecord>,
    pub queues: Vec<QueueRecord>,
    pub bindings: Vec<BindingRecord>,
    /// The highest message id on disk, or id floor (`ranged.rs`) if higher:
    /// ids are given out above it, never again.
    pub max_message_id: u64,
    /// Control-plane records as (space, key, value), in (space, key) order.
    pub control: Vec<(String, String, Vec<u8>)>,
    /// What waits on each delayed exchange.
    pub delayed: Vec<DelayedBacklog>,
    /// The highest delayed message seq on disk (seqs are never reused).
    pub max_delayed_seq: u64,
    /// The deduplication windows.
    pub dedup: Vec<DedupBacklog>,
}

/// What every storage implementation provides. Writes are applied
/// atomically, in order; with `sync` they are durable when `write` returns.
pub trait Store: Send + Sync + 'static {
    fn write(&self, ops: &[Op], sync: bool) -> Result<()>;
    fn load(&self) -> Result<Recovered>;
    /// Every index entry of every queue, in (queue, seq) order (at start-up).
    fn scan_index(&self, f: &mut dyn FnMut(u64, IndexEntry)) -> Result<()>;
    /// The index entries of `queue` in `from_seq..to_seq`, in order, without
    /// reading a message or a page (a drop looking for shared messages).
    fn scan_places(
        &self,
        queue: u64,
        from_seq: u64,
        to_seq: u64,
        f: &mut dyn FnMut(IndexEntry),
    ) -> Result<()>;
    /// The messages with these ids, None where one is missing (at start-up).
    fn read_messages(&self, ids: &[u64]) -> Result<Vec<Option<MessageRecord>>>;
    /// The messages kept in these places of `queue` (`INLINE` ones), None
    /// where one is missing or holds none (at start-up).
    fn read_places(&self, queue: u64, seqs: &[u64]) -> Result<Vec<Option<MessageRecord>>>;
    /// Up to `limit` pages of `queue` from `from_seq` on, in order, each
    /// handed to `f` in place (no record where one is damaged): the only
    /// read while running, so hot-path writes can go where reads are slow.
    /// `f` must not call the store (it may run under the store's lock).
    fn visit_pages(
        &self,
        queue: u64,
        from_seq: u64,
        limit: usize,
        f: &mut dyn FnMut(IndexEntry, Option<RecordRef<'_>>),
    ) -> Result<()>;
    /// As `visit_pages`, copied out (an empty record where one is damaged).
    fn read_pages(
        &self,
        queue: u64,
        from_seq: u64,
        limit: usize,
    ) -> Result<Vec<(IndexEntry, MessageRecord)>> {
        let mut out = Vec::new();
        self.visit_pages(queue, from_seq, limit, &mut |e, r| {
            out.push((e, r.map(RecordRef::owned).unwrap_or_default()))
        })?;
        Ok(out)
    }
    /// Every page lane's read-back frontier (`Op::PageFrontier`): (lane, seq).
    fn page_frontiers(&self) -> Result<Vec<(u64, u64)>>;
    /// Every queue's delivery mark (`Op::Delivered`): (queue, below).
    fn delivered_marks(&self) -> Result<Vec<(u64, u64)>>;
    /// The page lanes with a range mark (`ranged.rs`; a store that reads
    /// past range deletes, or keeps none, has none).
    fn page_marks(&self) -> Vec<u64> {
        Vec::new()
    }
    /// The seqs of the pages of lane `queue` below `to_seq`, in order,
    /// without their messages (at start-up, below the frontier).
    fn scan_page_seqs(&self, queue: u64, to_seq: u64, f: &mut dyn FnMut(u64)) -> Result<()>;
    /// Messages waiting on an exchange, from (`due`, `seq`) on, in due
    /// order, up to `limit` (messages, body bytes: at least one); true if
    /// it stopped at the limit.
    fn read_delayed(
        &self,
        vhost: &str,
        exchange: &str,
        from: (u64, u64),
        limit: (usize, usize),
    ) -> Result<(Vec<Delayed>, bool)>;
    /// Reclaims the space of deleted records (a hint; may do nothing).
    fn compact(&self) {}
}

#[cfg(test)]
mod suite;
