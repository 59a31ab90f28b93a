//! A vhost's own settings (description, tags, default queue type, limits)
//! as RabbitMQ keeps them, and its deletion: every queue, exchange and
//! binding in it goes, from memory and from disk.

use std::sync::atomic::Ordering;

use serde::{Deserialize, Serialize};

use super::VHost;
use crate::protocol::AmqpError;
use crate::store::Op;

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
    pub fn set_meta(&self, meta: VHostMeta) -> bool {
        let _topology = self.topology.lock();
        if self.is_deleted() {
            return false;
        }
        let ok = match &self.store {
            Some(store) => store.write_durably([self.meta_record(&meta)]),
            None => true,
        };
        if ok {
            *self.meta.write() = meta;
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

    /// `queue.declare` of a new queue past `max-queues`: RabbitMQ's 406.
    /// Topology lock held.
    pub(super) fn check_queue_limit(&self, name: &str) -> Result<(), AmqpError> {
        self.check_alive()?;
        let Some(limit) = self.meta.read().limits.max_queues else { return Ok(()) };
        if self.queues.read().len() as u64 >= limit {
            return Err(AmqpError::precondition_failed(format!(
                "cannot declare queue '{name}': queue limit in vhost '{}' ({limit}) is reached",
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

    pub(crate) fn mark_deleted(&self) {
        self.deleted.store(true, Ordering::Release);
    }

    pub fn is_deleted(&self) -> bool {
        self.deleted.load(Ordering::Acquire)
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
        self.store_later(Op::DeleteControl { space: VHOST_SPACE.to_owned(), key: self.name.clone() });
    }
}
