//! The cluster's name, as set through the admin API (`PUT
//! /api/cluster-name`): kept in the store's control records, so it
//! survives a restart. None until set (the API then shows the node's name,
//! RabbitMQ's default).

use super::Broker;
use crate::store::Op;

const SPACE: &str = "broker";
const KEY: &str = "cluster_name";

impl Broker {
    pub fn cluster_name(&self) -> Option<String> {
        self.cluster_name.read().clone()
    }

    /// Sets the name, on disk first; false if the store could not take it.
    pub fn set_cluster_name(&self, name: &str) -> bool {
        let mut current = self.cluster_name.write();
        if let Some(store) = &self.store {
            let op = Op::PutControl { space: SPACE.into(), key: KEY.into(), value: name.as_bytes().to_vec() };
            if !store.write_durably([op]) {
                return false;
            }
        }
        *current = Some(name.to_owned());
        true
    }

    /// The name kept in the control records, if any.
    pub(super) fn restore_cluster_name(&self, control: &[(String, String, Vec<u8>)]) {
        let kept = control.iter().find(|(space, key, _)| space == SPACE && key == KEY);
        if let Some((_, _, value)) = kept {
            *self.cluster_name.write() = Some(String::from_utf8_lossy(value).into_owned());
        }
    }
}
