//! What consumers do with deliveries: acks, rejects and requeues, and
//! deliveries that never reached their socket coming back.

use std::sync::Arc;

use super::{Delivery, Queue, Reason, State};

impl Queue {
    /// Settles delivered messages for good.
    pub fn ack(&self, seqs: &[u64]) {
        if self.stream.get().is_some() {
            // A stream's acks only give credit back (the channel did).
            return;
        }
        let mut st = self.state.lock();
        for seq in seqs {
            if let Some(e) = st.unacked.remove(seq) {
                self.forget(&e);
                st.totals.acked += 1;
            }
        }
    }

    /// Rejected without requeue: dead-lettered (reason `rejected`) if the
    /// queue has a dead-letter exchange, else dropped.
    pub fn reject(self: &Arc<Self>, seqs: &[u64]) {
        if self.stream.get().is_some() {
            return;
        }
        let mut st = self.state.lock();
        for seq in seqs {
            if let Some(e) = st.unacked.remove(seq) {
                st.send_to_dead(e, Reason::Rejected);
            }
        }
        self.finish(st);
    }

    /// Puts delivered messages back where they were, marked redelivered;
    /// past the delivery limit they are dead-lettered instead.
    pub fn requeue(self: &Arc<Self>, seqs: &[u64]) {
        if self.stream.get().is_some() {
            // Nothing to put back: the record stays in the log.
            return;
        }
        let mut st = self.state.lock();
        for seq in seqs {
            if let Some(e) = st.unacked.remove(seq) {
                self.come_back(&mut st, e);
            }
        }
        // Requeued messages count again: drop-head makes room (RabbitMQ does).
        self.drop_head(&mut st);
        self.dispatch(&mut st);
        self.finish(st);
    }

    /// Takes back a delivery that never reached its consumer's socket,
    /// unchanged: to the client it was never delivered.
    pub fn return_undelivered(self: &Arc<Self>, d: Delivery) {
        if self.stream.get().is_some() {
            return;
        }
        let mut st = self.state.lock();
        if st.deleted {
            return;
        }
        self.take_back(&mut st, d);
        self.dispatch(&mut st);
        self.finish(st);
    }

    /// Puts a delivery back at its place, unchanged.
    pub(super) fn take_back(&self, st: &mut State, d: Delivery) {
        let mut entry = d.entry;
        if st.unacked.remove(&entry.seq).is_none() {
            // A no-ack delivery was settled in the store when it left (or
            // never written, `fresh`): it is back.
            match entry.stored {
                true => self.restore_place(&entry),
                false => self.on_fresh_return(st, &mut entry),
            }
        }
        st.ready.insert(entry);
    }
}
