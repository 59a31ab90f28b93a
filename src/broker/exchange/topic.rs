//! Topic: dot-separated words; `*` matches one word (an empty one too),
//! `#` matches zero or more. A trie over binding-key words, so routing cost
//! follows the routing key's length, not the number of bindings. Uses only
//! the exchange module's binding types.
//!
//! Matching stays polynomial whatever the bindings are (RabbitMQ's own
//! matcher is exponential on `#.#.#…` or `#.a.#.a…` against a long key, and
//! one such publish would hold the exchange for minutes): runs of `#` are
//! folded into one at bind time, and a route walks each (`#` node, word
//! index) pair at most once, so it visits at most trie nodes × key words.

use std::cell::RefCell;
use std::collections::HashMap;

use super::list::BindingList;
use super::{Binding, Destination};

#[derive(Debug, Default)]
pub(super) struct Table {
    root: Node,
    count: usize,
    slots: Slots,
}

#[derive(Debug, Default)]
struct Node {
    words: HashMap<Vec<u8>, Node>,
    star: Option<Box<Node>>,
    hash: Option<Box<Hash>>,
    bindings: BindingList,
}

/// A `#` word: what follows it, and its slot in the per-route memo.
#[derive(Debug)]
struct Hash {
    slot: u32,
    next: Node,
}

/// Memo slots, one per live `#` node, reused once a node is pruned, so the
/// memo a route needs is as long as the most `#` nodes the table ever held.
#[derive(Debug, Default)]
struct Slots {
    len: u32,
    free: Vec<u32>,
}

impl Slots {
    fn take(&mut self) -> u32 {
        self.free.pop().unwrap_or_else(|| {
            self.len += 1;
            self.len - 1
        })
    }
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

/// A binding key's path in the trie: its words with each run of `#` folded
/// into one, which matches the same keys. Only the trie sees this form; the
/// binding keeps its key as given, as RabbitMQ lists it.
fn path(key: &[u8]) -> Vec<&[u8]> {
    let mut path = words(key);
    path.dedup_by(|a, b| *a == b"#" && *b == b"#");
    path
}

impl Table {
    pub fn add(&mut self, b: Binding) -> bool {
        let Table { root, count, slots } = self;
        let mut node = root;
        for w in path(b.key.as_bytes()) {
            node = match w {
                b"*" => node.star.get_or_insert_with(Default::default),
                b"#" => {
                    &mut node
                        .hash
                        .get_or_insert_with(|| Box::new(Hash { slot: slots.take(), next: Node::default() }))
                        .next
                }
                _ => node.words.entry(w.to_vec()).or_default(),
            };
        }
        let added = node.bindings.add(b);
        *count += usize::from(added);
        added
    }

    pub fn remove(&mut self, b: &Binding) -> bool {
        let removed = remove_at(&mut self.root, &path(b.key.as_bytes()), b, &mut self.slots);
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

    /// Appends the destination of every binding matching `key`, each binding
    /// once.
    pub fn route(&self, key: &[u8], out: &mut Vec<Destination>) {
        if self.count > 0 {
            SCRATCH.with_borrow_mut(|s| {
                s.start(key, self.slots.len as usize);
                walk(&self.root, 0, key, s, out);
            });
        }
    }
}

/// The buffers a route works in, one set per thread and reused, so a warm
/// route allocates nothing (threading them through `Router` instead would
/// widen every exchange type's `route()` for the topic exchange's sake).
struct Scratch {
    /// Where each word of the routing key starts and ends.
    words: Vec<(usize, usize)>,
    /// Per `#` slot: the route that last wrote it, and the lowest word index
    /// that route walked the node's subtree from. The subtree is walked from
    /// every index between there and the key's end too, so one number is all
    /// a node needs.
    memo: Vec<(u32, usize)>,
    /// Numbers routes, so that `memo` needs no clearing between them.
    route: u32,
}

thread_local! {
    static SCRATCH: RefCell<Scratch> =
        const { RefCell::new(Scratch { words: Vec::new(), memo: Vec::new(), route: 0 }) };
}

impl Scratch {
    fn start(&mut self, key: &[u8], slots: usize) {
        self.words.clear();
        if !key.is_empty() {
            let mut from = 0;
            for (i, &c) in key.iter().enumerate() {
                if c == b'.' {
                    self.words.push((from, i));
                    from = i + 1;
                }
            }
            self.words.push((from, key.len()));
        }
        if self.memo.len() < slots {
            self.memo.resize(slots, (0, 0));
        }
        self.route = self.route.wrapping_add(1);
        if self.route == 0 {
            // Entries written 2^32 routes ago would pass for this route's.
            self.memo.fill((0, 0));
            self.route = 1;
        }
    }

    /// Records that `slot`'s subtree is walked from `from` on, and returns
    /// where this route's earlier walks of it began (past the key's end if
    /// none): the caller walks `from..` that index only.
    fn claim(&mut self, slot: u32, from: usize) -> usize {
        let entry = &mut self.memo[slot as usize];
        let until = if entry.0 == self.route { entry.1 } else { self.words.len() + 1 };
        if from < until {
            *entry = (self.route, from);
        }
        until
    }
}

fn remove_at(node: &mut Node, path: &[&[u8]], b: &Binding, slots: &mut Slots) -> bool {
    let Some((first, rest)) = path.split_first() else {
        return node.bindings.remove(b).is_some();
    };
    match *first {
        b"*" => {
            let Some(child) = node.star.as_deref_mut() else { return false };
            let removed = remove_at(child, rest, b, slots);
            if child.is_empty() {
                node.star = None;
            }
            removed
        }
        b"#" => {
            let Some(hash) = node.hash.as_deref_mut() else { return false };
            let removed = remove_at(&mut hash.next, rest, b, slots);
            if hash.next.is_empty() {
                slots.free.push(hash.slot);
                node.hash = None;
            }
            removed
        }
        w => {
            let Some(child) = node.words.get_mut(w) else { return false };
            let removed = remove_at(child, rest, b, slots);
            if child.is_empty() {
                node.words.remove(w);
            }
            removed
        }
    }
}

fn collect(node: &Node, out: &mut Vec<Binding>) {
    out.extend(node.bindings.iter().cloned());
    let hash = node.hash.as_deref().map(|h| &h.next);
    for child in node.words.values().chain(node.star.as_deref()).chain(hash) {
        collect(child, out);
    }
}

/// Matches the key's words from index `i` on against `node`'s subtree.
/// Outside `#` subtrees a node is reached from its parent alone, so with
/// each `#` subtree walked once per index, every (node, index) pair is
/// walked at most once and every binding emitted at most once.
fn walk(node: &Node, i: usize, key: &[u8], s: &mut Scratch, out: &mut Vec<Destination>) {
    if let Some(hash) = &node.hash {
        // `#` takes zero, one, ... or all the remaining words: what follows
        // it is matched from every index on, skipping those already done.
        let until = s.claim(hash.slot, i);
        for j in i..until {
            walk(&hash.next, j, key, s, out);
        }
    }
    let Some(&(from, to)) = s.words.get(i) else {
        out.extend(node.bindings.iter().map(|b| b.destination.clone()));
        return;
    };
    if let Some(child) = node.words.get(&key[from..to]) {
        walk(child, i + 1, key, s, out);
    }
    if let Some(star) = &node.star {
        walk(star, i + 1, key, s, out);
    }
}

/// The topic table against RabbitMQ's matching rules, against a plain
/// reference matcher, and on bindings that made the old walk exponential.
#[cfg(test)]
mod tests {
    use super::*;
    use crate::broker::queue::Queue;
    use std::sync::Arc;

    fn queue(name: &str) -> Arc<Queue> {
        Arc::new(Queue::new(name.into(), "/".into(), false, None, false, Default::default()))
    }

    fn binding(q: &Arc<Queue>, key: &str) -> Binding {
        Binding { destination: Destination::Queue(q.clone()), key: key.into(), arguments: Default::default() }
    }

    fn route(t: &Table, key: &str) -> Vec<Destination> {
        let mut out = Vec::new();
        t.route(key.as_bytes(), &mut out);
        out
    }

    fn matches(pattern: &str, key: &str) -> bool {
        let mut t = Table::default();
        t.add(binding(&queue("q"), pattern));
        !route(&t, key).is_empty()
    }

    /// A table with nothing bound holds no nodes and no live memo slots.
    fn assert_pruned(t: &Table) {
        assert!(t.root.is_empty() && t.is_empty());
        assert_eq!(t.slots.free.len(), t.slots.len as usize);
    }

    /// The textbook matcher: does `pattern[i..]` match `key[j..]`, by dynamic
    /// programming over pattern words × key words.
    fn reference(pattern: &str, key: &str) -> bool {
        fn split(s: &str) -> Vec<&str> {
            if s.is_empty() {
                Vec::new()
            } else {
                s.split('.').collect()
            }
        }
        let (p, k) = (split(pattern), split(key));
        let mut m = vec![vec![false; k.len() + 1]; p.len() + 1];
        m[p.len()][k.len()] = true;
        for i in (0..p.len()).rev() {
            for j in (0..=k.len()).rev() {
                let one = j < k.len() && m[i + 1][j + 1];
                m[i][j] = match p[i] {
                    "#" => m[i + 1][j] || (j < k.len() && m[i][j + 1]),
                    "*" => one,
                    w => one && w == k[j],
                };
            }
        }
        m[0][0]
    }

    fn random_key(rng: &mut fastrand::Rng, alphabet: &[&str], max_words: usize) -> String {
        let n = rng.usize(0..=max_words);
        (0..n).map(|_| alphabet[rng.usize(..alphabet.len())]).collect::<Vec<_>>().join(".")
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
            assert_eq!(reference(p, k), want, "reference: pattern {p:?} key {k:?}");
        }
    }

    #[test]
    fn remove_prunes() {
        let mut t = Table::default();
        let b = binding(&queue("q"), "a.*.#");
        assert!(t.add(b.clone()));
        assert!(!t.add(b.clone()));
        assert_eq!(t.all().len(), 1);
        assert!(t.remove(&b));
        assert!(!t.remove(&b));
        assert_pruned(&t);
    }

    #[test]
    fn runs_of_hash_fold_into_one() {
        let folded = |k: &str| path(k.as_bytes()).join(&b'.');
        assert_eq!(folded("#.#"), b"#");
        assert_eq!(folded("#.#.a.#.#"), b"#.a.#");
        assert_eq!(folded("a.#.#.b"), b"a.#.b");
        assert_eq!(folded("#.*.#"), b"#.*.#");
        assert_eq!(folded("#.#.*.#.#.#.*"), b"#.*.#.*");
        assert_eq!(folded("a..#.#."), b"a..#.");
        assert_eq!(folded(""), b"");
        // Folding keeps the meaning: every key the long form matches, and no other.
        let mut rng = fastrand::Rng::with_seed(7);
        for (long, short) in [("#.#", "#"), ("a.#.#.b", "a.#.b"), ("#.#.*.#.#", "#.*.#"), ("*.#.#.#", "*.#")]
        {
            for _ in 0..200 {
                let key = random_key(&mut rng, &["a", "b", ""], 6);
                assert_eq!(matches(long, &key), reference(short, &key), "{long:?} vs {short:?} on {key:?}");
            }
        }
    }

    #[test]
    fn folded_keys_bind_and_unbind_apart() {
        let q = queue("q");
        let mut t = Table::default();
        let (short, long) = (binding(&q, "a.#"), binding(&q, "a.#.#"));
        // Alone, `a.#.#` is found again under its folded path and pruned.
        assert!(t.add(long.clone()));
        assert!(t.remove(&long));
        assert_pruned(&t);
        // Both share one node yet stay two bindings, listed with their own keys.
        assert!(t.add(short.clone()));
        assert!(t.add(long.clone()));
        assert!(!t.add(long.clone()));
        let mut keys: Vec<_> = t.all().into_iter().map(|b| b.key).collect();
        keys.sort();
        assert_eq!(keys, ["a.#", "a.#.#"]);
        assert_eq!(route(&t, "a.b.c").len(), 2);
        assert!(t.remove(&long));
        assert!(!t.remove(&long));
        assert_eq!(t.all().iter().map(|b| b.key.as_str()).collect::<Vec<_>>(), ["a.#"]);
        assert_eq!(route(&t, "a.b.c").len(), 1);
        assert!(t.remove(&short));
        assert_pruned(&t);
    }

    /// Before `#` runs were folded and `#` subtrees walked once per word index,
    /// each of these routes took minutes (or ran out of memory collecting
    /// repeated matches).
    #[test]
    fn many_hashes_route_in_polynomial_time() {
        let key = ["a"; 100].join(".");
        let hashes = ["#"; 40].join(".");
        let alternating = (0..40).map(|i| if i % 2 == 0 { "#" } else { "a" }).collect::<Vec<_>>().join(".");
        for (pattern, want) in [
            (hashes.clone(), true),
            (format!("{hashes}.b"), false),
            (alternating.clone(), true),
            (format!("{alternating}.b"), false),
            (format!("{alternating}.#"), true),
        ] {
            let mut t = Table::default();
            t.add(binding(&queue("q"), &pattern));
            assert_eq!(route(&t, &key).len(), usize::from(want), "{pattern}");
        }
        // The alternating form is not folded: the memo alone keeps it polynomial.
        let mut t = Table::default();
        for n in 1..=20 {
            let pattern = (0..n).flat_map(|_| ["#", "a"]).collect::<Vec<_>>().join(".");
            t.add(binding(&queue(&format!("q{n}")), &format!("{pattern}.#")));
        }
        assert_eq!(route(&t, &key).len(), 20);
        assert_eq!(route(&t, &format!("{key}.b")).len(), 20);
        assert_eq!(route(&t, &["b"; 100].join(".")).len(), 0);
    }

    /// Random bindings over {a, b, *, #, empty word} against random keys: the
    /// table emits exactly the bindings the reference matcher accepts, once each.
    #[test]
    fn agrees_with_reference_matcher() {
        const PATTERN_WORDS: [&str; 5] = ["a", "b", "*", "#", ""];
        const KEY_WORDS: [&str; 5] = ["a", "b", "", "*", "#"];
        let mut rng = fastrand::Rng::with_seed(0x70_91c);
        for _ in 0..300 {
            let mut t = Table::default();
            let mut bound = Vec::new();
            for n in 0..rng.usize(1..12) {
                let q = queue(&format!("q{n}"));
                let pattern = random_key(&mut rng, &PATTERN_WORDS, 6);
                t.add(binding(&q, &pattern));
                bound.push((q, pattern));
            }
            for _ in 0..30 {
                let key = random_key(&mut rng, &KEY_WORDS, 7);
                let out = route(&t, &key);
                for (q, pattern) in &bound {
                    let hits = out.iter().filter(|d| d.same(&Destination::Queue(q.clone()))).count();
                    assert_eq!(
                        hits,
                        usize::from(reference(pattern, &key)),
                        "pattern {pattern:?} key {key:?}"
                    );
                }
            }
            // Unbinding in random order prunes everything back.
            rng.shuffle(&mut bound);
            for (q, pattern) in &bound {
                assert!(t.remove(&binding(q, pattern)), "{pattern:?}");
            }
            assert_pruned(&t);
        }
    }
}
