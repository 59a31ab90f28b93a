//! A queue's ready messages in memory: one FIFO per priority level
//! (one level unless the queue has `x-max-priority`), highest first, each
//! in `seq` order.

use std::collections::VecDeque;

use super::Entry;

#[derive(Debug)]
pub struct Ready {
    /// Index = priority.
    levels: Vec<VecDeque<Entry>>,
    len: usize,
    /// Body bytes of all ready messages in memory.
    bytes: usize,
}

impl Default for Ready {
    fn default() -> Self {
        Ready::new(0)
    }
}

impl Ready {
    pub fn new(max_priority: u8) -> Ready {
        Ready { levels: (0..=max_priority).map(|_| VecDeque::new()).collect(), len: 0, bytes: 0 }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn bytes(&self) -> usize {
        self.bytes
    }

    fn level(&mut self, e: &Entry) -> &mut VecDeque<Entry> {
        let top = self.levels.len() - 1;
        &mut self.levels[usize::from(e.priority).min(top)]
    }

    pub fn push_back(&mut self, e: Entry) {
        self.len += 1;
        self.bytes += e.message.body().len();
        self.level(&e).push_back(e);
    }

    /// Puts an entry back at its place in its level (requeue).
    pub fn insert(&mut self, e: Entry) {
        self.len += 1;
        self.bytes += e.message.body().len();
        let level = self.level(&e);
        let at = level.partition_point(|x| x.seq < e.seq);
        level.insert(at, e);
    }

    /// The next message to deliver.
    pub fn front(&self) -> Option<&Entry> {
        self.levels.iter().rev().find_map(|l| l.front())
    }

    pub fn pop_front(&mut self) -> Option<Entry> {
        let e = self.levels.iter_mut().rev().find_map(|l| l.pop_front())?;
        self.len -= 1;
        self.bytes -= e.message.body().len();
        Some(e)
    }

    pub fn take_all(&mut self) -> Vec<Entry> {
        self.len = 0;
        self.bytes = 0;
        let mut all = Vec::new();
        for l in self.levels.iter_mut().rev() {
            all.extend(l.drain(..));
        }
        all
    }

    /// Removes and returns the entries `expired` says have expired, at the
    /// front of each level only (as RabbitMQ: a message expires when it
    /// reaches the head).
    pub fn take_expired(&mut self, mut expired: impl FnMut(&Entry) -> bool) -> Vec<Entry> {
        let mut out = Vec::new();
        for l in self.levels.iter_mut() {
            while l.front().is_some_and(&mut expired) {
                let e = l.pop_front().expect("front exists");
                self.len -= 1;
                self.bytes -= e.message.body().len();
                out.push(e);
            }
        }
        out
    }

    /// The earliest expiry among the heads of the levels.
    pub fn next_expiry(&self) -> Option<u64> {
        self.levels.iter().filter_map(|l| l.front()).map(|e| e.expires).filter(|t| *t != 0).min()
    }
}
