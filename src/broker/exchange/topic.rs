//! Topic: dot-separated words; `*` matches one word (an empty one too),
//! `#` matches zero or more. A trie over binding-key words, so routing cost
//! follows the routing key's length, not the number of bindings.

use std::collections::HashMap;

use super::{add_to, remove_from, Binding, Destination};

#[derive(Debug, Default)]
pub(super) struct Table {
    root: Node,
    count: usize,
}

#[derive(Debug, Default)]
struct Node {
    words: HashMap<Vec<u8>, Node>,
    star: Option<Box<Node>>,
    hash: Option<Box<Node>>,
    bindings: Vec<Binding>,
}

impl Node {
    fn is_empty(&self) -> bool {
        self.bindings.is_empty() && self.words.is_empty() && self.star.is_none() && self.hash.is_none()
    }
}

/// Splits a key into words the way RabbitMQ does: "" has no words,
/// "a..b" has an empty middle word.
fn words(key: &[u8]) -> Vec<&[u8]> {
    if key.is_empty() {
        Vec::new()
    } else {
        key.split(|&c| c == b'.').collect()
    }
}

impl Table {
    pub fn add(&mut self, b: Binding) -> bool {
        let mut node = &mut self.root;
        for w in words(b.key.as_bytes()) {
            node = match w {
                b"*" => node.star.get_or_insert_with(Default::default),
                b"#" => node.hash.get_or_insert_with(Default::default),
                _ => node.words.entry(w.to_vec()).or_default(),
            };
        }
        let added = add_to(&mut node.bindings, b);
        self.count += usize::from(added);
        added
    }

    pub fn remove(&mut self, b: &Binding) -> bool {
        let key = b.key.clone();
        let removed = remove_at(&mut self.root, &words(key.as_bytes()), b);
        self.count -= usize::from(removed);
        removed
    }

    pub fn all(&self) -> Vec<Binding> {
        let mut out = Vec::with_capacity(self.count);
        collect(&self.root, &mut out);
        out
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    pub fn route(&self, key: &[u8], out: &mut Vec<Destination>) {
        if self.count > 0 {
            let words = words(key);
            walk(&self.root, &words, out);
        }
    }
}

fn remove_at(node: &mut Node, path: &[&[u8]], b: &Binding) -> bool {
    let Some((first, rest)) = path.split_first() else {
        return remove_from(&mut node.bindings, b);
    };
    let removed = match *first {
        b"*" | b"#" => {
            let slot = if *first == b"*" { &mut node.star } else { &mut node.hash };
            let Some(child) = slot.as_deref_mut() else { return false };
            let removed = remove_at(child, rest, b);
            if child.is_empty() {
                *slot = None;
            }
            removed
        }
        w => {
            let Some(child) = node.words.get_mut(w) else { return false };
            let removed = remove_at(child, rest, b);
            if child.is_empty() {
                node.words.remove(w);
            }
            removed
        }
    };
    removed
}

fn collect(node: &Node, out: &mut Vec<Binding>) {
    out.extend(node.bindings.iter().cloned());
    for child in node.words.values().chain(node.star.as_deref()).chain(node.hash.as_deref()) {
        collect(child, out);
    }
}

fn walk(node: &Node, words: &[&[u8]], out: &mut Vec<Destination>) {
    if let Some(hash) = &node.hash {
        // `#` takes zero, one, ... or all the remaining words.
        for skip in 0..=words.len() {
            walk(hash, &words[skip..], out);
        }
    }
    let Some((first, rest)) = words.split_first() else {
        out.extend(node.bindings.iter().map(|b| b.destination.clone()));
        return;
    };
    if let Some(child) = node.words.get(*first) {
        walk(child, rest, out);
    }
    if let Some(star) = &node.star {
        walk(star, rest, out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::broker::queue::Queue;
    use std::sync::Arc;

    fn matches(pattern: &str, key: &str) -> bool {
        let q = Arc::new(Queue::new("q".into(), "/".into(), false, None, false, Default::default()));
        let mut t = Table::default();
        t.add(Binding {
            destination: Destination::Queue(q),
            key: pattern.into(),
            arguments: Default::default(),
        });
        let mut out = Vec::new();
        t.route(key.as_bytes(), &mut out);
        !out.is_empty()
    }

    #[test]
    fn topic_edge_cases() {
        let cases = [
            ("a.b.c", "a.b.c", true),
            ("a.*.c", "a.b.c", true),
            ("a.*.c", "a..c", true),
            ("a.*.c", "a.c", false),
            ("a.#", "a", true),
            ("a.#", "a.b.c", true),
            ("#", "", true),
            ("#", "a.b", true),
            ("*", "", false),
            ("*", "a", true),
            ("*", "a.b", false),
            ("a.#.b", "a.b", true),
            ("a.#.b", "a.x.y.b", true),
            ("a.#.b", "a.x.y", false),
            ("#.#", "a", true),
            ("*.#", "", false),
            ("#.*", "a.b", true),
            ("", "", true),
            ("", "a", false),
            ("a.", "a.", true),
            ("a.*", "a.", true),
            ("a.b", "a.b.c", false),
        ];
        for (p, k, want) in cases {
            assert_eq!(matches(p, k), want, "pattern {p:?} key {k:?}");
        }
    }

    #[test]
    fn remove_prunes() {
        let q = Arc::new(Queue::new("q".into(), "/".into(), false, None, false, Default::default()));
        let mut t = Table::default();
        let b = Binding {
            destination: Destination::Queue(q),
            key: "a.*.#".into(),
            arguments: Default::default(),
        };
        assert!(t.add(b.clone()));
        assert!(!t.add(b.clone()));
        assert_eq!(t.all().len(), 1);
        assert!(t.remove(&b));
        assert!(!t.remove(&b));
        assert!(t.root.is_empty() && t.is_empty());
    }
}
