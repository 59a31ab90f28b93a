//! A vhost's own settings (description, tags, default queue type, limits)
//! as RabbitMQ keeps them, and its deletion: every queue, exchange and
//! binding in it goes, from memory and from disk.

use std::sync::atomic::{AtomicU64, Ordering};

use serde::{Deserialize, Serialize};

use super::VHost;
use crate::protocol::AmqpError;
use crate::store::Op;

/// The node's `[limits]` on one vhost's queues and exchanges; 0 is none.
#[derive(Debug, Default)]
pub struct TopologyCaps {
    queues: AtomicU64,
    exchanges: AtomicU64,
}

impl TopologyCaps {
    pub fn set(&self, queues: u64, exchanges: u64) {
        self.queues.store(queues, Ordering::Relaxed);
        self.exchanges.store(exchanges, Ordering::Relaxed);
    }

    pub fn copy_to(&self, other: &TopologyCaps) {
        other.set(self.queues.load(Ordering::Relaxed), self.exchanges.load(Ordering::Relaxed));
    }

    fn queues(&self) -> Option<u64> {
        Some(self.queues.load(Ordering::Relaxed)).filter(|&n| n > 0)
    }

    fn exchanges(&self) -> Option<u64> {
        Some(self.exchanges.load(Ordering::Relaxed)).filter(|&n| n > 0)
    }
}

/// The control-record space vhosts are kept in.
pub const VHOST_SPACE: &str = "vhost";

/// RabbitMQ's vhost limits; None is unlimited.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Limits {
    #[serde(rename = "max-connections", skip_serializing_if = "Option::is_none", default)]
    pub max_connections: Option<u64>,
    #[serde(rename = "max-queues", skip_serializing_if = "Option::is_none", default)]
    pub max_queues: Option<u64>,
}

impl Limits {
    pub fn is_empty(&self) -> bool {
        self.max_connections.is_none() && self.max_queues.is_none()
    }
}

/// What a vhost record holds (its name is the key).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct VHostMeta {
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub tags: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_queue_type: Option<String>,
    #[serde(default)]
    pub limits: Limits,
}

impl VHost {
    pub fn meta(&self) -> VHostMeta {
        self.meta.read().clone()
    }

    pub fn limits(&self) -> Limits {
        self.meta.read().limits.clone()
    }

    pub(crate) fn set_meta_unsaved(&self, meta: VHostMeta) {
        *self.meta.write() = meta;
    }

    /// Changes the settings and writes them; false if the write failed or
    /// the vhost is deleted (its record must not come back).
    /// The record is submitted under the topology lock (so it cannot land
    /// after a deletion's) but waited for without it: connections declaring
    /// meanwhile do not wait for this disk write. Blocks the thread.
    pub fn set_meta(&self, meta: VHostMeta) -> bool {
        let previous = {
            let _topology = self.topology.lock();
            if self.is_deleted() {
                return false;
            }
            let Some(store) = &self.store else {
                *self.meta.write() = meta;
                return true;
            };
            store.submit(self.meta_record(&meta));
            std::mem::replace(&mut *self.meta.write(), meta.clone())
        };
        let ok = self.store.as_ref().is_some_and(|store| store.write_durably([]));
        if !ok {
            // Not written: back to what it was, unless someone changed it since.
            let _topology = self.topology.lock();
            let mut current = self.meta.write();
            if *current == meta {
                *current = previous;
            }
        }
        ok
    }

    pub(crate) fn meta_record(&self, meta: &VHostMeta) -> Op {
        Op::PutControl {
            space: VHOST_SPACE.to_owned(),
            key: self.name.clone(),
            value: serde_json::to_vec(meta).expect("plain struct serialises"),
        }
    }

    /// `queue.declare` of a new queue past `max-queues` (or the node's
    /// `max_queues_per_vhost`, if lower): RabbitMQ's 406.
    /// Topology lock held.
    pub(super) fn check_queue_limit(&self, name: &str) -> Result<(), AmqpError> {
        self.check_alive()?;
        let node = self.caps.queues();
        let limit = match (self.meta.read().limits.max_queues, node) {
            (Some(v), Some(n)) => v.min(n),
            (v, n) => match v.or(n) {
                Some(limit) => limit,
                None => return Ok(()),
            },
        };
        if self.queues.read().len() as u64 >= limit {
            return Err(AmqpError::precondition_failed(format!(
                "cannot declare queue '{name}': queue limit in vhost '{}' ({limit}) is reached",
                self.name
            )));
        }
        Ok(())
    }

    /// `exchange.declare` of a new exchange past the node's
    /// `max_exchanges_per_vhost` (RabbitMQ has no such limit; the same 406
    /// as for queues). Topology lock held.
    pub(super) fn check_exchange_limit(&self, name: &str) -> Result<(), AmqpError> {
        self.check_alive()?;
        let Some(limit) = self.caps.exchanges() else { return Ok(()) };
        if self.exchanges.read().len() as u64 >= limit {
            return Err(AmqpError::precondition_failed(format!(
                "cannot declare exchange '{name}': exchange limit in vhost '{}' ({limit}) is reached",
                self.name
            )));
        }
        Ok(())
    }

    /// Declares racing a deletion must not leave records behind it.
    /// Topology lock held.
    pub(super) fn check_alive(&self) -> Result<(), AmqpError> {
        if self.is_deleted() {
            return Err(AmqpError::connection_forced(format!("vhost '{}' is deleted", self.name)));
        }
        Ok(())
    }

    /// Marks the vhost deleted and runs `then` (the submit of its record's
    /// deletion) under the topology lock: a settings record (`set_meta`)
    /// is submitted before that or not at all, so it cannot bring the
    /// vhost back.
    pub(crate) fn mark_deleted(&self, then: impl FnOnce()) {
        let _topology = self.topology.lock();
        self.deleted.store(true, Ordering::Release);
        then();
    }

    pub fn is_deleted(&self) -> bool {
        self.deleted.load(Ordering::Acquire)
    }

    /// Waits until everything submitted to the store so far is on disk:
    /// false if it failed; true without a store.
    pub fn sync_store(&self) -> bool {
        self.store.as_ref().is_none_or(|store| store.write_durably([]))
    }

    /// Deletes everything in the vhost, and its record: queues (their
    /// consumers are cancelled, their messages and pages go from disk),
    /// exchanges and bindings. Connections are closed by the caller.
    pub fn destroy(&self) {
        let _topology = self.topology.lock();
        self.deleted.store(true, Ordering::Release);
        let queues: Vec<_> = self.queues.read().values().cloned().collect();
        for q in queues {
            self.remove_queue(&q);
        }
        let replies: Vec<_> = self.replies.write().drain().map(|(_, q)| q).collect();
        for q in replies {
            q.delete();
        }
        // The predeclared exchanges too: bindings between them are on disk.
        let exchanges: Vec<_> = self.exchanges.read().values().cloned().collect();
        for ex in exchanges {
            if self.exchanges.read().contains_key(&ex.name) {
                self.remove_exchange(&ex);
            }
        }
        // The vhost's record was deleted first (`Broker::delete_vhost_with`).
    }
}
