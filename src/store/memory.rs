//! An in-memory store with the same semantics as the RocksDB one: for tests
//! of the layers above, and to run the storage test suite against a second
//! implementation.

use std::collections::BTreeMap;

use parking_lot::Mutex;

use super::{
    BindingRecord, ExchangeRecord, IndexEntry, MessageRecord, Op, QueueRecord, Recovered, Result, Store,
};

#[derive(Default)]
pub struct MemoryStore {
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    exchanges: BTreeMap<(String, String), ExchangeRecord>,
    queues: BTreeMap<(String, String), QueueRecord>,
    bindings: Vec<BindingRecord>,
    messages: BTreeMap<u64, MessageRecord>,
    index: BTreeMap<(u64, u64), (u64, bool)>,
}

impl Store for MemoryStore {
    fn write(&self, ops: &[Op], _sync: bool) -> Result<()> {
        let mut s = self.state.lock();
        for op in ops {
            match op.clone() {
                Op::PutExchange(e) => {
                    s.exchanges.insert((e.vhost.clone(), e.name.clone()), e);
                }
                Op::DeleteExchange { vhost, name } => {
                    s.exchanges.remove(&(vhost, name));
                }
                Op::PutQueue(q) => {
                    s.queues.insert((q.vhost.clone(), q.name.clone()), q);
                }
                Op::DeleteQueue { vhost, name, id } => {
                    s.queues.remove(&(vhost, name));
                    s.index.retain(|(q, _), _| *q != id);
                }
                Op::PutBinding(b) => {
                    if !s.bindings.contains(&b) {
                        s.bindings.push(b);
                    }
                }
                Op::DeleteBinding(b) => s.bindings.retain(|x| *x != b),
                Op::PutMessage { id, record } => {
                    s.messages.insert(id, record);
                }
                Op::DeleteMessage { id } => {
                    s.messages.remove(&id);
                }
                Op::Enqueue { queue, seq, message } => {
                    s.index.insert((queue, seq), (message, false));
                }
                Op::MarkDelivered { queue, seq, message } => {
                    s.index.insert((queue, seq), (message, true));
                }
                Op::Remove { queue, seq } => {
                    s.index.remove(&(queue, seq));
                }
            }
        }
        Ok(())
    }

    fn load(&self) -> Result<Recovered> {
        let s = self.state.lock();
        let mut r = Recovered {
            exchanges: s.exchanges.values().cloned().collect(),
            bindings: s.bindings.clone(),
            messages: s.messages.iter().map(|(k, v)| (*k, v.clone())).collect(),
            ..Recovered::default()
        };
        let mut queues: Vec<_> = s.queues.values().cloned().collect();
        queues.sort_by_key(|q| q.id);
        for q in queues {
            let entries = s
                .index
                .range((q.id, 0)..(q.id + 1, 0))
                .map(|((_, seq), (message, delivered))| IndexEntry {
                    seq: *seq,
                    message: *message,
                    delivered: *delivered,
                })
                .collect();
            r.queues.push((q, entries));
        }
        Ok(r)
    }
}
