//! Direct: the routing key equals the binding key. One hash lookup.

use std::collections::HashMap;

use super::list::BindingList;
use super::{Binding, Destination};

#[derive(Debug, Default)]
pub(super) struct Table {
    by_key: HashMap<Vec<u8>, BindingList>,
}

impl Table {
    pub fn add(&mut self, b: Binding) -> bool {
        let list = self.by_key.entry(b.key.as_bytes().to_vec()).or_default();
        list.add(b)
    }
    pub fn remove(&mut self, b: &Binding) -> bool {
        let Some(list) = self.by_key.get_mut(b.key.as_bytes()) else { return false };
        let removed = list.remove(b).is_some();
        if list.is_empty() {
            self.by_key.remove(b.key.as_bytes());
        }
        removed
    }
    pub fn all(&self) -> Vec<Binding> {
        self.by_key.values().flat_map(|l| l.iter().cloned()).collect()
    }
    pub fn is_empty(&self) -> bool {
        self.by_key.is_empty()
    }
    pub fn route(&self, key: &[u8], out: &mut Vec<Destination>) {
        if let Some(list) = self.by_key.get(key) {
            out.extend(list.iter().map(|b| b.destination.clone()));
        }
    }
}
