//! The store as the writer's threads see it: every page read back is
//! counted (`StoreMetrics::pages_read`), whoever reads it, so a purge or a
//! delete that reads pages shows.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

use super::Shared;
use crate::store::{IndexEntry, MessageRecord, Op, RecordRef, Recovered, Result, Store};

pub(super) struct Counted {
    pub store: Arc<dyn Store>,
    pub shared: Arc<Shared>,
}

impl Store for Counted {
    fn write(&self, ops: &[Op], sync: bool) -> Result<()> {
        self.store.write(ops, sync)
    }

    fn load(&self) -> Result<Recovered> {
        self.store.load()
    }

    fn scan_index(&self, f: &mut dyn FnMut(u64, IndexEntry)) -> Result<()> {
        self.store.scan_index(f)
    }

    fn scan_places(&self, queue: u64, from: u64, to: u64, f: &mut dyn FnMut(IndexEntry)) -> Result<()> {
        self.store.scan_places(queue, from, to, f)
    }

    fn read_messages(&self, ids: &[u64]) -> Result<Vec<Option<MessageRecord>>> {
        self.store.read_messages(ids)
    }

    fn read_places(&self, queue: u64, seqs: &[u64]) -> Result<Vec<Option<MessageRecord>>> {
        self.store.read_places(queue, seqs)
    }

    fn visit_pages(
        &self,
        queue: u64,
        from: u64,
        limit: usize,
        f: &mut dyn FnMut(IndexEntry, Option<RecordRef<'_>>),
    ) -> Result<()> {
        let (mut pages, mut bytes) = (0, 0);
        let counted = self.store.visit_pages(queue, from, limit, &mut |e, r| {
            pages += 1;
            bytes += r.map_or(0, |r| r.body.len() as u64);
            f(e, r)
        });
        // What a failed read handed over is read again.
        if counted.is_ok() {
            let m = &self.shared.metrics;
            m.pages_read.fetch_add(pages, Relaxed);
            m.page_bytes_read.fetch_add(bytes, Relaxed);
        }
        counted
    }

    fn page_frontiers(&self) -> Result<Vec<(u64, u64)>> {
        self.store.page_frontiers()
    }

    fn delivered_marks(&self) -> Result<Vec<(u64, u64)>> {
        self.store.delivered_marks()
    }

    fn page_marks(&self) -> Vec<u64> {
        self.store.page_marks()
    }

    fn scan_page_seqs(&self, queue: u64, to_seq: u64, f: &mut dyn FnMut(u64)) -> Result<()> {
        self.store.scan_page_seqs(queue, to_seq, f)
    }

    fn read_delayed(
        &self,
        vhost: &str,
        exchange: &str,
        from: (u64, u64),
        limit: (usize, usize),
    ) -> Result<(Vec<crate::store::Delayed>, bool)> {
        self.store.read_delayed(vhost, exchange, from, limit)
    }

    fn compact(&self) {
        self.store.compact()
    }
}
