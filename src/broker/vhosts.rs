//! Vhosts made and unmade at run time, kept in the store's control records
//! (space `vhost`, keyed by name, the settings as JSON).

use std::sync::Arc;

use tracing::warn;

use super::policy::Kind;
use super::vhost::{VHostMeta, VHOST_SPACE};
use super::{Broker, VHost};
use crate::store::Op;

/// `/` as a new data directory gets it (RabbitMQ's default vhost).
pub(super) fn default_meta() -> VHostMeta {
    VHostMeta { description: "Default virtual host".into(), ..VHostMeta::default() }
}

/// Why a vhost could not be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VHostError {
    #[error("vhost name must not be empty")]
    EmptyName,
    #[error("the change could not be written to disk")]
    Store,
}

impl Broker {
    /// Every vhost, by name.
    pub fn vhosts(&self) -> Vec<Arc<VHost>> {
        let mut all: Vec<_> = self.vhosts.read().values().cloned().collect();
        all.sort_by(|a, b| a.name.cmp(&b.name));
        all
    }

    /// Sets `[limits]` max queues and exchanges per vhost (0: none) on every
    /// vhost, now and to come.
    pub fn set_topology_caps(&self, queues: u64, exchanges: u64) {
        let _lifecycle = self.lifecycle.lock();
        self.topology_caps.set(queues, exchanges);
        for v in self.vhosts.read().values() {
            v.caps.set(queues, exchanges);
        }
    }

    /// Creates a vhost, or changes the settings of an existing one; true
    /// when it is new. Serialised with deletions; the map of vhosts is not
    /// locked while the record is written (connections open meanwhile).
    pub fn put_vhost(&self, name: &str, meta: VHostMeta) -> Result<bool, VHostError> {
        if name.is_empty() {
            return Err(VHostError::EmptyName);
        }
        let _lifecycle = self.lifecycle.lock();
        if let Some(v) = self.vhost(name) {
            return if v.set_meta(meta) { Ok(false) } else { Err(VHostError::Store) };
        }
        let v = Arc::new(VHost::new(name, self.store.clone()));
        self.topology_caps.copy_to(&v.caps);
        if !v.set_meta(meta) {
            return Err(VHostError::Store);
        }
        self.vhosts.write().insert(name.to_owned(), v);
        Ok(true)
    }

    /// Runs `f` while vhost `name` exists and cannot be deleted (for
    /// changes kept beside it, such as permissions, which must not outlive
    /// it); None if there is no such vhost.
    pub fn with_vhost<R>(&self, name: &str, f: impl FnOnce(&Arc<VHost>) -> R) -> Option<R> {
        let _lifecycle = self.lifecycle.lock();
        self.vhost(name).map(|v| f(&v))
    }

    /// Deletes a vhost and everything in it, closing its connections with
    /// RabbitMQ's text; false if there was none. `first` runs once the
    /// vhost's record is gone, under the same lifecycle lock (the caller's
    /// records kept beside the vhost, such as permissions, go next; a crash
    /// in between leaves them to the next start to remove). Everything is
    /// deleted before the name is free again.
    pub fn delete_vhost_with(&self, name: &str, first: impl FnOnce()) -> bool {
        let _lifecycle = self.lifecycle.lock();
        let Some(v) = self.vhost(name) else { return false };
        // Marked before its connections are told: a handshake that lists
        // itself after that sees the mark and is refused. Its record goes
        // first, and durably: a crash from here on leaves permissions,
        // policies, queues and exchanges of a vhost that is no longer
        // recorded, which the next start removes. The other way round a
        // crash could leave the vhost listed with half of it gone.
        // No policy change runs meanwhile: one that wrote its record before
        // the deletion could otherwise delete it again after a vhost of the
        // same name was made anew.
        let _policies = v.policy_changes.lock();
        let record = Op::DeleteControl { space: VHOST_SPACE.to_owned(), key: name.to_owned() };
        v.mark_deleted(|| {
            if let Some(store) = &self.store {
                store.submit(record);
            }
        });
        if self.store.as_ref().is_some_and(|store| !store.write_durably([])) {
            warn!(vhost = %name, "the vhost's deletion could not be written; the rest goes on, the next start finishes it");
        }
        first();
        self.connections.close_where(|c| c.vhost == name, &format!("vhost '{name}' is deleted"));
        self.retire_vhost(&v, || {
            v.destroy();
            v.drop_policies();
            self.vhosts.write().remove(name);
        });
        // Deleted queues leave tombstones: compaction gives the disk back.
        if let Some(store) = &self.store {
            store.compact_soon();
        }
        true
    }

    pub fn delete_vhost(&self, name: &str) -> bool {
        self.delete_vhost_with(name, || {})
    }

    /// Deletes the stored policies of vhosts that no longer exist (a
    /// deletion cut short by a crash), so a vhost made later under that name
    /// does not inherit them.
    pub(super) fn drop_orphan_policies(&self, control: &[(String, String, Vec<u8>)]) {
        let Some(store) = &self.store else { return };
        for (space, key, value) in control {
            if Kind::from_space(space).is_none() {
                continue;
            }
            let vhost = serde_json::from_slice::<serde_json::Value>(value)
                .ok()
                .and_then(|v| v.get("vhost").and_then(|n| n.as_str()).map(str::to_owned));
            if let Some(vhost) = vhost.filter(|v| self.vhost(v).is_none()) {
                warn!(vhost = %vhost, "deleting a policy of a deleted vhost");
                store.submit(Op::DeleteControl { space: space.clone(), key: key.clone() });
            }
        }
    }

    /// The vhosts a data directory recorded (perhaps none, if all were
    /// deleted); with `make_default` and nothing recorded, `/`.
    pub(super) fn restore_vhosts(&self, control: &[(String, String, Vec<u8>)], make_default: bool) {
        let recorded: Vec<_> = control.iter().filter(|(space, _, _)| space == VHOST_SPACE).collect();
        if make_default && recorded.is_empty() {
            let default = self.vhost("/").expect("the default vhost exists");
            if let Some(store) = &self.store {
                store.submit(default.meta_record(&default.meta()));
            }
            return;
        }
        let mut vhosts = self.vhosts.write();
        vhosts.clear();
        for (_, name, value) in recorded {
            let meta = serde_json::from_slice::<VHostMeta>(value).unwrap_or_else(|e| {
                warn!(vhost = %name, "vhost settings unreadable, using defaults: {e}");
                VHostMeta::default()
            });
            let v = VHost::new(name, self.store.clone());
            self.topology_caps.copy_to(&v.caps);
            v.set_meta_unsaved(meta);
            vhosts.insert(name.clone(), Arc::new(v));
        }
    }
}
