//! A queue's messages delivered and not yet settled, by their sequence
//! number, with their body bytes kept as a running total (so reading it
//! costs nothing under the queue's lock, however many there are).
//!
//! A queue delivers in `seq` order and consumers mostly settle in that
//! order too, so the deliveries outstanding are a window sliding along the
//! numbers: a ring with a slot per number from `base` holds them, added at
//! its back and settled from its front, each end a few hot cache lines.
//! (A hash map scattered them: with 100k unacknowledged, every insert and
//! every remove missed the cache.) What does not fit the window, a
//! requeued message delivered again under its old number, a priority
//! queue's jumps, a number far past the window's end, goes to a map (a
//! ring of few deliveries moves them there and starts again instead: see
//! `FEW`). More than `FEW` deliveries kept while every later one comes past
//! the window's end still send those to the map until one is settled: the
//! speed of the map, as before the ring.

use std::collections::VecDeque;

use rustc_hash::FxHashMap;

use super::Entry;

/// An insert past the ring's end opens fewer empty slots than this.
const GAP_MAX: u64 = 64;

/// A ring holding at most this many deliveries starts again at a number
/// that does not fit it (its deliveries go to the map): one delivery kept
/// long does not send every later one to the map.
const FEW: usize = 16;

#[derive(Debug, Default)]
pub struct Unacked {
    /// Slot `i` holds the delivery of `base + i`, if outstanding; the front
    /// and back slots are never empty.
    ring: VecDeque<Option<Entry>>,
    base: u64,
    /// Deliveries in `ring`.
    in_ring: usize,
    /// Deliveries out of the window's order.
    stray: FxHashMap<u64, Entry>,
    bytes: u64,
}

impl Unacked {
    pub fn insert(&mut self, seq: u64, e: Entry) {
        debug_assert_eq!(seq, e.seq, "an entry is kept under its own number");
        self.bytes += e.message.body().len() as u64;
        if !self.stray.is_empty() {
            if let Some(old) = self.stray.remove(&seq) {
                self.bytes -= old.message.body().len() as u64;
            }
        }
        let end = self.base + self.ring.len() as u64;
        if !self.ring.is_empty() && seq >= self.base && seq < end {
            match self.ring[(seq - self.base) as usize].replace(e) {
                Some(old) => self.bytes -= old.message.body().len() as u64,
                None => self.in_ring += 1,
            }
            return;
        }
        let gap = seq.checked_sub(end);
        let fits = self.ring.is_empty()
            || gap.is_some_and(|g| g < GAP_MAX && !self.too_sparse(self.ring.len() + g as usize + 1));
        if !fits {
            if gap.is_none() || self.in_ring > FEW {
                if let Some(old) = self.stray.insert(seq, e) {
                    self.bytes -= old.message.body().len() as u64;
                }
                return;
            }
            self.ring_to_stray();
        }
        if self.ring.is_empty() {
            self.base = seq;
        }
        let end = self.base + self.ring.len() as u64;
        self.ring.extend((end..seq).map(|_| None));
        self.ring.push_back(Some(e));
        self.in_ring += 1;
    }

    /// Moves the ring's deliveries to the map; the ring starts again at
    /// the next insert.
    fn ring_to_stray(&mut self) {
        for e in self.ring.drain(..).flatten() {
            self.stray.insert(e.seq, e);
        }
        self.in_ring = 0;
    }

    /// A ring of `slots` would be mostly empty slots.
    fn too_sparse(&self, slots: usize) -> bool {
        slots > 4 * (self.in_ring + 1) + 1024
    }

    pub fn remove(&mut self, seq: &u64) -> Option<Entry> {
        let seq = *seq;
        let in_window = seq >= self.base && seq - self.base < self.ring.len() as u64;
        let e = match in_window {
            true => self.take_from_ring((seq - self.base) as usize),
            false => None,
        };
        let e = match e {
            Some(e) => e,
            None => self.stray.remove(&seq)?,
        };
        self.bytes -= e.message.body().len() as u64;
        Some(e)
    }

    fn take_from_ring(&mut self, i: usize) -> Option<Entry> {
        let e = self.ring[i].take()?;
        self.in_ring -= 1;
        while self.ring.front().is_some_and(Option::is_none) {
            self.ring.pop_front();
            self.base += 1;
        }
        while self.ring.back().is_some_and(Option::is_none) {
            self.ring.pop_back();
        }
        // A delivery never settled holds the front while the window moves
        // on: past mostly empty slots, what is left moves to the map (once
        // per such delivery: W moves after about 3W + 1,024 settled), and the ring
        // starts again at the next delivery.
        if self.too_sparse(self.ring.len()) {
            self.ring_to_stray();
        }
        Some(e)
    }

    /// Takes every entry out.
    pub fn drain(&mut self) -> impl Iterator<Item = (u64, Entry)> + '_ {
        self.bytes = 0;
        self.in_ring = 0;
        self.ring.drain(..).flatten().map(|e| (e.seq, e)).chain(self.stray.drain())
    }

    pub fn len(&self) -> usize {
        self.in_ring + self.stray.len()
    }

    /// Body bytes of the entries.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn entry(seq: u64, body: &'static [u8]) -> Entry {
        let m = crate::broker::Message::new(
            bytes::Bytes::new(),
            bytes::Bytes::new(),
            bytes::Bytes::new(),
            Default::default(),
            bytes::Bytes::from_static(body),
        );
        Entry {
            seq,
            message: Arc::new(m),
            expires: 0,
            returns: 0,
            priority: 0,
            redelivered: false,
            stored: false,
            paged: false,
        }
    }

    #[test]
    fn bytes_follow_the_entries() {
        let mut u = Unacked::default();
        u.insert(1, entry(1, b"abc"));
        u.insert(2, entry(2, b"de"));
        assert_eq!((u.len(), u.bytes()), (2, 5));
        u.insert(2, entry(2, b"defg"));
        assert_eq!(u.bytes(), 7, "a replaced entry's bytes go");
        assert!(u.remove(&1).is_some() && u.remove(&1).is_none());
        assert_eq!(u.bytes(), 4);
        assert_eq!(u.drain().count(), 1);
        assert_eq!((u.len(), u.bytes()), (0, 0));
    }

    const BODIES: [&[u8]; 3] = [b"a", b"bb", b"ccc"];

    /// What must hold between any two calls.
    fn check(u: &Unacked) {
        assert_eq!(u.in_ring, u.ring.iter().flatten().count());
        if !u.ring.is_empty() {
            assert!(u.ring.front().unwrap().is_some() && u.ring.back().unwrap().is_some());
        }
        for (i, e) in u.ring.iter().enumerate() {
            if let Some(e) = e {
                assert_eq!(e.seq, u.base + i as u64);
                assert!(!u.stray.contains_key(&e.seq), "{} in both", e.seq);
            }
        }
        let bytes: usize =
            u.ring.iter().flatten().chain(u.stray.values()).map(|e| e.message.body().len()).sum();
        assert_eq!(u.bytes(), bytes as u64);
        assert!(!u.too_sparse(u.ring.len()), "{} slots for {}", u.ring.len(), u.in_ring);
    }

    /// Random deliveries and settlements against a plain map: new numbers
    /// in order with gaps (some far), old ones delivered again, acks in
    /// order, out of order and of numbers not outstanding, and drains.
    #[test]
    fn it_holds_what_a_map_would() {
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut rnd = |n: u64| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x % n
        };
        let mut u = Unacked::default();
        let mut model = std::collections::BTreeMap::<u64, usize>::new();
        let mut next = 0u64;
        let mut settled = Vec::new();
        for step in 0..200_000 {
            match rnd(100) {
                0..=49 => {
                    next += match rnd(20) {
                        0 => rnd(200),
                        1..=3 => rnd(8),
                        _ => 1,
                    };
                    let b = rnd(3) as usize;
                    u.insert(next, entry(next, BODIES[b]));
                    model.insert(next, b);
                }
                50..=54 if !settled.is_empty() => {
                    let seq = settled.swap_remove(rnd(settled.len() as u64) as usize);
                    let b = rnd(3) as usize;
                    u.insert(seq, entry(seq, BODIES[b]));
                    model.insert(seq, b);
                }
                55..=89 => {
                    // The oldest outstanding, mostly; sometimes one a bit later.
                    let Some(&first) = model.keys().next() else { continue };
                    let seq = first + if rnd(4) == 0 { rnd(30) } else { 0 };
                    let got = u.remove(&seq).map(|e| (e.seq, e.message.body().len()));
                    let want = model.remove(&seq).map(|b| (seq, BODIES[b].len()));
                    assert_eq!(got, want, "step {step}: remove {seq}");
                    if got.is_some() && rnd(3) == 0 {
                        settled.push(seq);
                    }
                }
                90..=98 => {
                    let seq = rnd(next + 10);
                    let got = u.remove(&seq).map(|e| (e.seq, e.message.body().len()));
                    let want = model.remove(&seq).map(|b| (seq, BODIES[b].len()));
                    assert_eq!(got, want, "step {step}: remove {seq}");
                }
                _ if rnd(50) == 0 => {
                    let mut got: Vec<_> =
                        u.drain().map(|(s, e)| (s, e.seq, e.message.body().len())).collect();
                    got.sort_unstable();
                    let want: Vec<_> = model.iter().map(|(s, b)| (*s, *s, BODIES[*b].len())).collect();
                    assert_eq!(got, want, "step {step}: drain");
                    model.clear();
                }
                _ => {}
            }
            assert_eq!(u.len(), model.len(), "step {step}");
            if step % 64 == 0 {
                check(&u);
            }
        }
    }

    #[test]
    fn a_delivery_never_settled_does_not_hold_the_window() {
        // A window of 1,000 settled in order behind one delivery kept.
        let mut u = Unacked::default();
        u.insert(0, entry(0, b"x"));
        let mut moved = 0;
        for seq in 1..100_000u64 {
            u.insert(seq, entry(seq, b"x"));
            if seq > 1000 {
                assert!(u.remove(&(seq - 1000)).is_some());
            }
            if u.ring.front().is_some_and(|e| e.as_ref().is_some_and(|e| e.seq == 0)) {
                assert!(u.ring.len() <= 4 * 1002 + 1024, "{} slots", u.ring.len());
            } else {
                moved += 1;
                // Once moved out, the window is back in the ring.
                assert!(seq < 7000 || u.in_ring >= 999, "{seq}: {} in the ring", u.in_ring);
            }
        }
        assert!(moved > 90_000, "the kept delivery was moved out ({moved})");
        check(&u);
        assert_eq!((u.len(), u.bytes()), (1001, 1001));
        assert!(u.remove(&0).is_some());
        assert_eq!(u.len(), 1000);
    }

    #[test]
    fn a_ring_of_few_starts_again_past_a_jump() {
        let mut u = Unacked::default();
        u.insert(5, entry(5, b"x"));
        for seq in 1000..1100 {
            u.insert(seq, entry(seq, b"x"));
        }
        assert_eq!((u.in_ring, u.stray.len(), u.base), (100, 1, 1000));
        check(&u);
        // Below the window: to the map; many in the ring: a jump goes there too.
        u.insert(7, entry(7, b"x"));
        u.insert(5000, entry(5000, b"x"));
        assert_eq!((u.in_ring, u.stray.len()), (100, 3));
        check(&u);
    }

    #[test]
    fn a_window_settled_in_order_stays_in_the_ring() {
        let mut u = Unacked::default();
        for seq in 0..10_000 {
            u.insert(seq, entry(seq, b"x"));
            if seq >= 100 {
                assert!(u.remove(&(seq - 100)).is_some());
            }
        }
        assert_eq!((u.ring.len(), u.in_ring, u.stray.len()), (100, 100, 0));
    }
}
