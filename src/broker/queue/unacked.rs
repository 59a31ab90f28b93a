//! A queue's messages delivered and not yet settled, by their sequence
//! number, with their body bytes kept as a running total (so reading it
//! costs nothing under the queue's lock, however many there are).

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use super::Entry;

#[derive(Debug, Default)]
pub struct Unacked {
    map: HashMap<u64, Entry, BuildHasherDefault<SeqHasher>>,
    bytes: u64,
}

/// Hashes a sequence number to itself in the low bits, so the entries of
/// consecutive deliveries sit side by side in the table: deliveries are
/// added at one end of the window and mostly acked at the other, each end
/// a few hot cache lines (a mixing hash scattered them: with 100k
/// unacknowledged, every insert and remove missed the cache). The top
/// seven bits, which the table compares before any key, are mixed in
/// from the whole number, so probes still rule out other keys at a glance.
#[derive(Debug, Default)]
pub struct SeqHasher(u64);

impl Hasher for SeqHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        // Only u64 keys are hashed; anything else still gets a valid hash.
        for &b in bytes {
            self.write_u64(self.0.rotate_left(8) ^ u64::from(b));
        }
    }

    fn write_u64(&mut self, n: u64) {
        const TOP: u64 = 0xFE00_0000_0000_0000;
        self.0 = (n & !TOP) | (n.wrapping_mul(0x9E37_79B9_7F4A_7C15) & TOP);
    }
}

impl Unacked {
    pub fn insert(&mut self, seq: u64, e: Entry) {
        self.bytes += e.message.body.len() as u64;
        if let Some(old) = self.map.insert(seq, e) {
            self.bytes -= old.message.body.len() as u64;
        }
    }

    pub fn remove(&mut self, seq: &u64) -> Option<Entry> {
        let e = self.map.remove(seq)?;
        self.bytes -= e.message.body.len() as u64;
        Some(e)
    }

    /// Takes every entry out.
    pub fn drain(&mut self) -> impl Iterator<Item = (u64, Entry)> + '_ {
        self.bytes = 0;
        self.map.drain()
    }

    pub fn len(&self) -> usize {
        self.map.len()
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
    fn seq_hashes_keep_their_low_bits_and_mix_the_top() {
        let h = |n: u64| {
            let mut s = SeqHasher::default();
            s.write_u64(n);
            s.finish()
        };
        assert_eq!(h(1000) & 0xFFFF, 1000 & 0xFFFF);
        assert_eq!(h(1001).wrapping_sub(h(1000)) & 0x01FF_FFFF_FFFF_FFFF, 1, "neighbours are neighbours");
        let tops: std::collections::HashSet<u64> = (0..1000).map(|n| h(n) >> 57).collect();
        assert!(tops.len() > 100, "the top bits vary: {}", tops.len());
    }

    #[test]
    fn many_in_a_sliding_window() {
        let mut u = Unacked::default();
        for seq in 0..200_000u64 {
            u.insert(seq, entry(seq, b"x"));
            if seq >= 1000 {
                assert!(u.remove(&(seq - 1000)).is_some());
            }
        }
        assert_eq!((u.len(), u.bytes()), (1000, 1000));
        assert!(u.remove(&5).is_none() && u.remove(&199_999).is_some());
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
}
