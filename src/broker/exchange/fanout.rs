//! Fanout: every binding matches.

use super::list::BindingList;
use super::{Binding, Destination};

#[derive(Debug, Default)]
pub(super) struct Table {
    bindings: BindingList,
}

impl Table {
    pub fn add(&mut self, b: Binding) -> bool {
        self.bindings.add(b)
    }
    pub fn remove(&mut self, b: &Binding) -> bool {
        self.bindings.remove(b).is_some()
    }
    pub fn all(&self) -> Vec<Binding> {
        self.bindings.to_vec()
    }
    pub fn is_empty(&self) -> bool {
        self.bindings.is_empty()
    }
    pub fn route(&self, out: &mut Vec<Destination>) {
        out.extend(self.bindings.iter().map(|b| b.destination.clone()));
    }
}
