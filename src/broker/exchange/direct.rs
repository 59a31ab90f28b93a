//! Direct: the routing key equals the binding key. One hash lookup (none
//! for the empty key).

use std::collections::HashMap;

use super::list::BindingList;
use super::{Binding, Destination};

#[derive(Debug, Default)]
pub(super) struct Table {
    by_key: HashMap<Vec<u8>, BindingList>,
    /// The empty key's bindings, kept apart: looking `""` up in `by_key`
    /// would compare two empty slices with `memcmp`, slow on the dangling
    /// pointer of an empty `Vec` (see `protocol::same_name`).
    empty: BindingList,
}

impl Table {
    pub fn add(&mut self, b: Binding) -> bool {
        if b.key.is_empty() {
            return self.empty.add(b);
        }
        let list = self.by_key.entry(b.key.as_bytes().to_vec()).or_default();
        list.add(b)
    }
    pub fn remove(&mut self, b: &Binding) -> bool {
        if b.key.is_empty() {
            return self.empty.remove(b).is_some();
        }
        let Some(list) = self.by_key.get_mut(b.key.as_bytes()) else { return false };
        let removed = list.remove(b).is_some();
        if list.is_empty() {
            self.by_key.remove(b.key.as_bytes());
        }
        removed
    }
    pub fn all(&self) -> Vec<Binding> {
        self.empty.iter().chain(self.by_key.values().flat_map(|l| l.iter())).cloned().collect()
    }
    pub fn is_empty(&self) -> bool {
        self.by_key.is_empty() && self.empty.is_empty()
    }
    pub fn route(&self, key: &[u8], out: &mut Vec<Destination>) {
        let list = if key.is_empty() { Some(&self.empty) } else { self.by_key.get(key) };
        if let Some(list) = list {
            out.extend(list.iter().map(|b| b.destination.clone()));
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::broker::exchange::{Exchange, ExchangeKind};
    use crate::protocol::FieldTable;

    fn to(name: &str, key: &str) -> Binding {
        let ex = Exchange::new(name.into(), ExchangeKind::Fanout, false, false, false, FieldTable::default());
        Binding {
            destination: Destination::Exchange(Arc::new(ex)),
            key: key.into(),
            arguments: FieldTable::default(),
        }
    }

    fn routed(t: &Table, key: &[u8]) -> Vec<String> {
        let mut out = Vec::new();
        t.route(key, &mut out);
        out.iter()
            .map(|d| match d {
                Destination::Exchange(e) => e.name.clone(),
                Destination::Queue(q) => q.name.clone(),
            })
            .collect()
    }

    #[test]
    fn the_empty_key_routes_only_its_own_bindings() {
        let mut t = Table::default();
        let (empty, a) = (to("e", ""), to("x", "a"));
        assert!(t.add(empty.clone()));
        assert!(!t.is_empty(), "an empty key's binding counts");
        assert_eq!(t.all().iter().map(|b| b.key.as_str()).collect::<Vec<_>>(), [""]);
        assert!(!t.add(empty.clone()), "the same binding twice");
        assert!(t.add(a.clone()));
        assert_eq!(routed(&t, b""), ["e"]);
        assert_eq!(routed(&t, b"a"), ["x"]);
        assert!(routed(&t, b"b").is_empty());
        assert_eq!(t.all().len(), 2);
        assert!(t.remove(&empty));
        assert!(!t.remove(&empty), "already gone");
        assert!(routed(&t, b"").is_empty());
        assert!(!t.is_empty());
        assert!(t.remove(&a));
        assert!(t.is_empty());
    }
}
