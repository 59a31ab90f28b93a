//! A list of bindings with an index on what makes a binding itself (its
//! destination, key and arguments), so adding and removing one costs the
//! same with 50,000 bindings as with one. Routing walks the list.

use rustc_hash::FxHashMap;

use super::{Binding, Destination};

/// What tells bindings apart: the destination object, the key, and the
/// arguments in their wire encoding (a field table's keys are sorted, so
/// equal tables encode equally).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Identity {
    destination: usize,
    to_queue: bool,
    key: String,
    arguments: Vec<u8>,
}

impl Identity {
    fn of(b: &Binding) -> Identity {
        let (destination, to_queue) = match &b.destination {
            Destination::Queue(q) => (std::sync::Arc::as_ptr(q) as usize, true),
            Destination::Exchange(x) => (std::sync::Arc::as_ptr(x) as usize, false),
        };
        let arguments = if b.arguments.inner().is_empty() {
            Vec::new()
        } else {
            use amq_protocol::frame::WriteContext;
            amq_protocol::types::generation::gen_field_table(&b.arguments)(WriteContext::from(Vec::new()))
                .map(|ctx| ctx.into_inner().0)
                .unwrap_or_else(|_| format!("{:?}", b.arguments).into_bytes())
        };
        Identity { destination, to_queue, key: b.key.clone(), arguments }
    }
}

#[derive(Debug, Default)]
pub struct BindingList {
    items: Vec<Binding>,
    /// Where each binding is in `items`.
    index: FxHashMap<Identity, usize>,
}

impl BindingList {
    /// Adds `b` unless an equal binding is there; false if it was.
    pub fn add(&mut self, b: Binding) -> bool {
        let id = Identity::of(&b);
        if self.index.contains_key(&id) {
            return false;
        }
        self.index.insert(id, self.items.len());
        self.items.push(b);
        true
    }

    /// Removes a binding equal to `b`; returns where it was (the last one
    /// takes its place, as `Vec::swap_remove`), None if there was none.
    pub fn remove(&mut self, b: &Binding) -> Option<usize> {
        let i = self.index.remove(&Identity::of(b))?;
        self.items.swap_remove(i);
        if let Some(moved) = self.items.get(i) {
            self.index.insert(Identity::of(moved), i);
        }
        Some(i)
    }

    pub fn iter(&self) -> std::slice::Iter<'_, Binding> {
        self.items.iter()
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    pub fn to_vec(&self) -> Vec<Binding> {
        self.items.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::broker::Queue;
    use amq_protocol::types::{AMQPValue, FieldTable};
    use std::sync::Arc;

    fn queue(name: &str) -> Arc<Queue> {
        Arc::new(Queue::new(name.into(), "/".into(), false, None, false, FieldTable::default()))
    }

    fn binding(q: &Arc<Queue>, key: &str, arg: Option<i32>) -> Binding {
        let mut arguments = FieldTable::default();
        if let Some(v) = arg {
            arguments.insert("x".into(), AMQPValue::LongInt(v));
        }
        Binding { destination: Destination::Queue(q.clone()), key: key.into(), arguments }
    }

    #[test]
    fn equal_bindings_are_one_and_removal_keeps_the_index_right() {
        let (a, b) = (queue("a"), queue("b"));
        let mut l = BindingList::default();
        assert!(l.add(binding(&a, "k", None)));
        assert!(!l.add(binding(&a, "k", None)), "the same binding twice is one");
        assert!(l.add(binding(&a, "k", Some(1))), "other arguments, another binding");
        assert!(l.add(binding(&b, "k", None)), "another queue of the same name, another binding");
        assert!(l.add(binding(&a, "j", None)));
        assert_eq!(l.iter().count(), 4);
        assert_eq!(l.remove(&binding(&a, "k", None)), Some(0));
        // The last took its place and is still found.
        assert_eq!(l.remove(&binding(&a, "j", None)), Some(0));
        assert_eq!(l.remove(&binding(&a, "j", None)), None);
        assert!(
            l.remove(&binding(&a, "k", Some(1))).is_some() && l.remove(&binding(&b, "k", None)).is_some()
        );
        assert!(l.is_empty());
    }

    #[test]
    fn fifty_thousand_bindings_to_one_queue() {
        let q = queue("q");
        let mut l = BindingList::default();
        for i in 0..50_000 {
            assert!(l.add(binding(&q, &i.to_string(), None)));
        }
        for i in (0..50_000).step_by(2) {
            assert!(l.remove(&binding(&q, &i.to_string(), None)).is_some());
        }
        assert_eq!(l.iter().count(), 25_000);
        assert!(l.iter().all(|b| b.key.parse::<u32>().unwrap() % 2 == 1));
    }
}
