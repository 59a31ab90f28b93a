//! A queue's messages delivered and not yet settled, by their sequence
//! number, with their body bytes kept as a running total (so reading it
//! costs nothing under the queue's lock, however many there are).

use rustc_hash::FxHashMap;

use super::Entry;

#[derive(Debug, Default)]
pub struct Unacked {
    map: FxHashMap<u64, Entry>,
    bytes: u64,
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
