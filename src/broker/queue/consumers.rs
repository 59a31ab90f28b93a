//! A queue's consumers: who may consume, and who gets the next message —
//! the highest-priority consumers with credit, round-robin among equals;
//! with `x-single-active-consumer`, only the first one registered.

use std::sync::Arc;

use super::{ConsumerRemoved, Queue, State};
use crate::broker::consumer::Consumer;
use crate::protocol::AmqpError;

impl Queue {
    pub fn add_consumer(self: &Arc<Self>, consumer: Arc<Consumer>) -> Result<(), AmqpError> {
        let mut st = self.state.lock();
        if st.consumers.iter().any(|c| c.exclusive) || (consumer.exclusive && !st.consumers.is_empty()) {
            return Err(AmqpError::access_refused(format!(
                "queue '{}' in vhost '{}' in exclusive use",
                self.name, self.vhost
            )));
        }
        // After every consumer of the same or a higher priority; a single
        // active consumer stays active whoever comes later.
        let at = if self.config.single_active_consumer {
            st.consumers.len()
        } else {
            st.consumers.partition_point(|c| c.priority >= consumer.priority)
        };
        st.consumers.insert(at, consumer);
        st.had_consumer = true;
        // Credit flow judges the consumers afresh.
        st.flow = Default::default();
        self.touch();
        self.dispatch(&mut st);
        self.finish(st);
        Ok(())
    }

    pub fn remove_consumer(self: &Arc<Self>, consumer: &Arc<Consumer>) -> ConsumerRemoved {
        if let Some(s) = self.stream() {
            return self.remove_stream_consumer(s, consumer);
        }
        let mut st = self.state.lock();
        st.consumers.retain(|c| !Arc::ptr_eq(c, consumer));
        self.touch();
        self.relieve(&mut st);
        let removed = if self.auto_delete && st.had_consumer && st.consumers.is_empty() && !st.deleted {
            ConsumerRemoved::LastOfAutoDelete
        } else {
            ConsumerRemoved::Remaining
        };
        // With a single active consumer, the next one takes over.
        self.dispatch(&mut st);
        self.finish(st);
        removed
    }
}

/// The next consumer with credit: the first priority level that has one,
/// round-robin within it. Consumers passed over are marked starved first
/// and checked again, so a connection that frees credit at the same moment
/// either is seen here or sees the mark and kicks. Its index in
/// `st.consumers` (a clone of it would write its count, which the
/// consuming connection's core writes too).
pub(super) fn next_with_credit(st: &mut State, single_active: bool) -> Option<usize> {
    let n = if single_active { st.consumers.len().min(1) } else { st.consumers.len() };
    let mut start = 0;
    while start < n {
        let priority = st.consumers[start].priority;
        let end = start + st.consumers[start..n].iter().take_while(|c| c.priority == priority).count();
        let len = end - start;
        for i in 0..len {
            let idx = start + (st.next_consumer + i) % len;
            let c = &st.consumers[idx];
            if !c.has_credit() {
                c.mark_starved();
                if !c.has_credit() {
                    continue;
                }
            }
            st.next_consumer = idx - start + 1;
            return Some(idx);
        }
        start = end;
    }
    None
}
