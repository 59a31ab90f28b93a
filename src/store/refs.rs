//! Reference counts of stored messages held by more than one queue.
//!
//! A message routed to one durable queue (the common case) needs no count:
//! settling its one place deletes it. A message routed to several is
//! counted here, not in the message object, because a queue may page its
//! copy out of memory while another still holds it; the count must
//! outlive every in-memory copy. Sharded so publishers to different
//! messages rarely meet on one lock.

use parking_lot::Mutex;
use rustc_hash::FxHashMap;

const SHARDS: usize = 16;

#[derive(Debug, Default)]
pub struct SharedRefs {
    shards: [Mutex<FxHashMap<u64, u32>>; SHARDS],
}

impl SharedRefs {
    fn shard(&self, id: u64) -> &Mutex<FxHashMap<u64, u32>> {
        &self.shards[(id as usize) % SHARDS]
    }

    /// A message now held by `n` more places.
    pub fn add(&self, id: u64, n: u32) {
        *self.shard(id).lock().entry(id).or_insert(0) += n;
    }

    /// One place let go; true when it was the last (the message may be deleted).
    pub fn release(&self, id: u64) -> bool {
        let mut shard = self.shard(id).lock();
        match shard.get_mut(&id) {
            Some(n) if *n > 1 => {
                *n -= 1;
                false
            }
            _ => {
                shard.remove(&id);
                true
            }
        }
    }

    /// Takes a place back after a release; true if the message had been let
    /// go entirely (its record must be written again).
    pub fn retain(&self, id: u64) -> bool {
        let mut shard = self.shard(id).lock();
        let n = shard.entry(id).or_insert(0);
        *n += 1;
        *n == 1
    }

    /// Whether some place still holds the message.
    pub fn holds(&self, id: u64) -> bool {
        self.shard(id).lock().contains_key(&id)
    }

    pub fn len(&self) -> usize {
        self.shards.iter().map(|s| s.lock().len()).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_last_release_says_so() {
        let r = SharedRefs::default();
        r.add(7, 3);
        assert!(!r.release(7));
        assert!(!r.release(7));
        assert!(r.release(7));
        assert!(r.is_empty());
        assert!(r.retain(7), "a message let go must be written again");
        assert!(!r.retain(7));
        assert!(!r.release(7));
        assert!(r.release(7));
    }
}
