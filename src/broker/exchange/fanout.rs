//! Fanout: every binding matches.

use super::{add_to, remove_from, Binding, Destination};

#[derive(Debug, Default)]
pub(super) struct Table {
    bindings: Vec<Binding>,
}

impl Table {
    pub fn add(&mut self, b: Binding) -> bool {
        add_to(&mut self.bindings, b)
    }
    pub fn remove(&mut self, b: &Binding) -> bool {
        remove_from(&mut self.bindings, b)
    }
    pub fn all(&self) -> Vec<Binding> {
        self.bindings.clone()
    }
    pub fn is_empty(&self) -> bool {
        self.bindings.is_empty()
    }
    pub fn route(&self, out: &mut Vec<Destination>) {
        out.extend(self.bindings.iter().map(|b| b.destination.clone()));
    }
}
