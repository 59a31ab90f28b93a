//! An in-memory store with the same semantics as the RocksDB one: for tests
//! of the layers above, and to run the storage test suite against a second
//! implementation.

use std::collections::BTreeMap;

use parking_lot::Mutex;

use super::{
    BindingRecord, ExchangeRecord, IndexEntry, MessageRecord, Op, QueueRecord, RecordRef, Recovered, Result,
    Store,
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
    index: BTreeMap<(u64, u64), IndexEntry>,
    /// The messages kept in their places (`Op::PlaceWith`), by place.
    inline: BTreeMap<(u64, u64), MessageRecord>,
    pages: BTreeMap<(u64, u64), (IndexEntry, MessageRecord)>,
    /// Read-back frontiers, by page lane.
    frontiers: BTreeMap<u64, u64>,
    /// Delivery marks, by queue.
    delivered: BTreeMap<u64, u64>,
    control: BTreeMap<(String, String), Vec<u8>>,
    delayed: BTreeMap<Vec<u8>, (u64, MessageRecord)>,
    dedup: BTreeMap<Vec<u8>, [u8; 24]>,
}

impl Store for MemoryStore {
    fn write(&self, ops: &[Op], _sync: bool) -> Result<()> {
        let mut s = self.state.lock();
        for op in ops {
            match op.clone() {
                Op::PutExchange(e) => {
                    s.exchanges.insert((e.vhost.clone(), e.name.clone()), *e);
                }
                Op::DeleteExchange { vhost, name } => {
                    s.exchanges.remove(&(vhost, name));
                }
                Op::PutQueue(q) => {
                    s.queues.insert((q.vhost.clone(), q.name.clone()), *q);
                }
                Op::DeleteQueue { vhost, name, id, last_lane } => {
                    s.queues.remove(&(vhost, name));
                    s.index.retain(|(q, _), _| *q != id);
                    s.inline.retain(|(q, _), _| *q != id);
                    let end = id + u64::from(last_lane) + 1;
                    s.pages.retain(|(q, _), _| !(id..end).contains(q));
                    s.frontiers.retain(|q, _| !(id..end).contains(q));
                    s.delivered.remove(&id);
                }
                Op::PutBinding(b) => {
                    if !s.bindings.contains(&b) {
                        s.bindings.push(*b);
                    }
                }
                Op::DeleteBinding(b) => s.bindings.retain(|x| *x != *b),
                Op::PutMessage { id, record } => {
                    s.messages.insert(id, record.owned());
                }
                Op::DeleteMessage { id } => {
                    s.messages.remove(&id);
                }
                Op::Place { queue, entry } => {
                    s.index.insert((queue, entry.seq), entry);
                    s.inline.remove(&(queue, entry.seq));
                }
                Op::PlaceWith { queue, entry, record, .. } => {
                    s.index.insert((queue, entry.seq), entry);
                    s.inline.insert((queue, entry.seq), record.owned());
                }
                Op::Page { queue, entry, record } => {
                    s.index.insert((queue, entry.seq), entry);
                    s.inline.remove(&(queue, entry.seq));
                    s.pages.insert((queue + u64::from(entry.lane), entry.seq), (entry, record.owned()));
                }
                Op::PutControl { space, key, value } => {
                    s.control.insert((space, key), value);
                }
                Op::DeleteControl { space, key } => {
                    s.control.remove(&(space, key));
                }
                Op::Remove { queue, seq, lane } => {
                    s.index.remove(&(queue, seq));
                    s.inline.remove(&(queue, seq));
                    if let Some(lane) = lane {
                        s.pages.remove(&(queue + u64::from(lane), seq));
                    }
                }
                Op::DropPlaces { queue, index, pages } => {
                    for (from, to) in index {
                        s.index.retain(|(q, seq), _| !(*q == queue && (from..to).contains(seq)));
                        s.inline.retain(|(q, seq), _| !(*q == queue && (from..to).contains(seq)));
                    }
                    for (lane, from, to) in pages {
                        let lane = queue + u64::from(lane);
                        s.pages.retain(|(q, seq), _| !(*q == lane && (from..to).contains(seq)));
                        if to == u64::MAX {
                            s.frontiers.remove(&lane);
                        }
                    }
                }
                Op::PageFrontier { queue, lane, seq } => {
                    s.frontiers.insert(queue + u64::from(lane), seq);
                }
                Op::Delivered { queue, below: 0 } => {
                    s.delivered.remove(&queue);
                }
                Op::Delivered { queue, below } => {
                    s.delivered.insert(queue, below);
                }
                Op::DeleteQueueRecord { vhost, name } => {
                    s.queues.remove(&(vhost, name));
                }
                Op::PutDelayed { at, boot, record } => {
                    s.delayed.insert(super::delayed::key(&at), (boot, record.owned()));
                }
                Op::DeleteDelayed(at) => {
                    s.delayed.remove(&super::delayed::key(&at));
                }
                Op::PutDedup(scope, e) => {
                    s.dedup.insert(super::dedup::key(&scope, e.seq), super::dedup::value(&e));
                }
                Op::DeleteDedup(scope, seq) => {
                    s.dedup.remove(&super::dedup::key(&scope, seq));
                }
                Op::DropDedup(scope) => {
                    let prefix = super::dedup::prefix(&scope);
                    s.dedup.retain(|k, _| !k.starts_with(&prefix));
                }
                Op::DropDelayed { vhost, exchange } => {
                    let prefix = super::delayed::prefix(&vhost, &exchange);
                    s.delayed.retain(|k, _| !k.starts_with(&prefix));
                }
            }
        }
        Ok(())
    }

    fn load(&self) -> Result<Recovered> {
        let s = self.state.lock();
        let mut queues: Vec<_> = s.queues.values().cloned().collect();
        queues.sort_by_key(|q| q.id);
        Ok(Recovered {
            exchanges: s.exchanges.values().cloned().collect(),
            queues,
            bindings: s.bindings.clone(),
            max_message_id: s.messages.keys().next_back().copied().unwrap_or(0),
            control: s.control.iter().map(|((s, k), v)| (s.clone(), k.clone(), v.clone())).collect(),
            delayed: delayed_backlogs(&s.delayed),
            dedup: s.dedup.iter().filter_map(|(k, v)| super::dedup::parse(k, v)).fold(
                Vec::new(),
                |mut out, e| {
                    super::dedup::push(&mut out, e);
                    out
                },
            ),
            max_delayed_seq: s
                .delayed
                .keys()
                .filter_map(|k| super::delayed::parse_key(k))
                .map(|(_, _, _, seq)| seq)
                .max()
                .unwrap_or(0),
        })
    }

    fn read_delayed(
        &self,
        vhost: &str,
        exchange: &str,
        from: (u64, u64),
        (limit, max_bytes): (usize, usize),
    ) -> Result<(Vec<super::Delayed>, bool)> {
        let s = self.state.lock();
        let prefix = super::delayed::prefix(vhost, exchange);
        let start = super::delayed::from_key(&prefix, from.0, from.1);
        let (mut out, mut bytes) = (Vec::new(), 0);
        for (k, (boot, record)) in s.delayed.range(start..super::delayed::end_key(&prefix)) {
            if out.len() >= limit || bytes >= max_bytes {
                return Ok((out, true));
            }
            let Some((_, _, due, seq)) = super::delayed::parse_key(k) else { continue };
            bytes += record.body.len();
            out.push(super::Delayed { due, seq, boot: *boot, record: record.clone() });
        }
        Ok((out, false))
    }

    fn scan_index(&self, f: &mut dyn FnMut(u64, IndexEntry)) -> Result<()> {
        let s = self.state.lock();
        for ((queue, _), e) in &s.index {
            f(*queue, *e);
        }
        Ok(())
    }

    fn scan_places(
        &self,
        queue: u64,
        from_seq: u64,
        to_seq: u64,
        f: &mut dyn FnMut(IndexEntry),
    ) -> Result<()> {
        let s = self.state.lock();
        for e in s.index.range((queue, from_seq)..(queue, to_seq.max(from_seq))).map(|(_, e)| e) {
            f(*e);
        }
        Ok(())
    }

    fn visit_pages(
        &self,
        queue: u64,
        from_seq: u64,
        limit: usize,
        f: &mut dyn FnMut(IndexEntry, Option<RecordRef<'_>>),
    ) -> Result<()> {
        let s = self.state.lock();
        s.pages
            .range((queue, from_seq)..(queue + 1, 0))
            .take(limit)
            .for_each(|(_, (e, r))| f(*e, Some(r.parts())));
        Ok(())
    }

    fn page_frontiers(&self) -> Result<Vec<(u64, u64)>> {
        Ok(self.state.lock().frontiers.iter().map(|(lane, seq)| (*lane, *seq)).collect())
    }

    fn delivered_marks(&self) -> Result<Vec<(u64, u64)>> {
        Ok(self.state.lock().delivered.iter().map(|(queue, below)| (*queue, *below)).collect())
    }

    fn scan_page_seqs(&self, queue: u64, to_seq: u64, f: &mut dyn FnMut(u64)) -> Result<()> {
        let s = self.state.lock();
        s.pages.range((queue, 0)..(queue, to_seq)).for_each(|((_, seq), _)| f(*seq));
        Ok(())
    }

    fn read_messages(&self, ids: &[u64]) -> Result<Vec<Option<MessageRecord>>> {
        let s = self.state.lock();
        Ok(ids.iter().map(|id| s.messages.get(id).cloned()).collect())
    }

    fn read_places(&self, queue: u64, seqs: &[u64]) -> Result<Vec<Option<MessageRecord>>> {
        let s = self.state.lock();
        Ok(seqs.iter().map(|seq| s.inline.get(&(queue, *seq)).cloned()).collect())
    }
}

fn delayed_backlogs(delayed: &BTreeMap<Vec<u8>, (u64, MessageRecord)>) -> Vec<super::DelayedBacklog> {
    let mut out = Vec::new();
    for (k, (boot, _)) in delayed {
        if let Some((vhost, exchange, _, _)) = super::delayed::parse_key(k) {
            super::delayed::count(&mut out, vhost, exchange, *boot == 0);
        }
    }
    out
}
