//! A queue emptied (purge) or deleted: its messages settled in the store
//! in one batch, its paged-out part dropped without reading it back, its
//! consumers told.

use std::sync::atomic::Ordering;

use super::Queue;
use crate::store::Op;

impl Queue {
    /// Drops every ready message; returns how many.
    pub fn purge(&self) -> u32 {
        if self.stream.get().is_some() {
            return 0;
        }
        let mut st = self.state.lock();
        let n = st.len() as u32;
        // The head's places and the paged-out part go in one batch.
        let head = self.settle_all(st.ready.take_all(), None);
        self.drop_paged(&mut st, false, head);
        // Settled pages the purged ones held back (never the purged ones).
        self.settle_pages([]);
        self.relieve(&mut st);
        n
    }

    /// Marks the queue deleted and tells its consumers; returns the ready count.
    pub fn delete(&self) -> u32 {
        let (n, consumers) = {
            let mut st = self.state.lock();
            st.deleted = true;
            self.deleted.store(true, Ordering::Release);
            let n = st.len() as u32;
            let st = &mut *st;
            // The paged-out part first: a look at its index must come before
            // the DeleteQueue that takes the index away.
            self.drop_paged(st, true, Vec::new());
            // A durable queue's places go with its DeleteQueue, written with
            // the messages let go: a crash keeps the queue whole or none of
            // it (the vhost's own DeleteQueue after this finds nothing left).
            // No DeleteQueue covers a non-durable queue's places.
            let gone = self.store_id().map(|id| Op::DeleteQueue {
                vhost: self.vhost.clone(),
                name: self.name.clone(),
                id,
                last_lane: self.last_lane(),
            });
            let entries = st.ready.take_all().into_iter().chain(st.unacked.drain().map(|(_, e)| e)).collect();
            let mut ops = self.settle_all(entries, gone);
            if let Some(s) = self.store.as_ref().filter(|s| !s.durable && s.windows.lock().used()) {
                // Nor its pages read back: every lane goes, with its frontier.
                let pages = (0..=self.last_lane()).map(|lane| (lane, 0, u64::MAX)).collect();
                ops.push(Op::DropPlaces { queue: s.id, index: Vec::new(), pages });
            }
            if let Some(s) = self.store.as_ref().filter(|_| !ops.is_empty()) {
                s.handle.submit_all(ops);
            }
            let mut consumers = std::mem::take(&mut st.consumers);
            if let Some(s) = self.stream.get() {
                consumers.extend(s.delete());
            }
            self.relieve(st);
            (n, consumers)
        };
        for c in consumers {
            c.cancel();
            c.notify_cancelled();
        }
        n
    }
}
