//! Dropping a queue's paged-out part (purge, delete) without reading it
//! back: the work is a few range deletes, not a read of every page.
//!
//! Most drops are only that, written in order with the writer's batch. A
//! drop must look at its places first when some hold messages shared with
//! other queues (each such place lets go of one reference, and the last
//! one deletes the message) or when other places of the queue lie between
//! them in the index (a priority queue's lanes share its index). That
//! look reads index entries only, never a message, on a thread of its own
//! so confirms do not wait for it; the writer then writes what it found.
//! Until then a deletion of the queue waits for it (its record goes at
//! once, its places after the look): a crash in between leaves places of a
//! queue that no longer exists, which recovery removes.

use std::sync::mpsc;
use std::sync::Arc;

use rustc_hash::FxHashMap;
use tracing::error;

use super::{Cmd, Done, Shared};
use crate::store::{IndexEntry, Op, Store};

/// DeleteMessages sent back at a time by a look over many shared places.
const CHUNK: usize = 16 * 1024;

/// A drop of the paged-out part of a queue: in each lane, the places from
/// its first paged-out seq up to `to_seq` (excluded).
pub(in crate::store) struct DropJob {
    pub queue: u64,
    /// (lane, first paged-out seq).
    pub lanes: Vec<(u8, u64)>,
    pub to_seq: u64,
    /// How many places it drops (counted towards a compaction).
    pub count: u64,
    /// Where a look sends what it found (the writer's channel); None when
    /// the range deletes alone are right: no shared message, and nothing
    /// else of the queue between `lanes`' first seq and `to_seq`.
    pub look: Option<super::inbox::Sender<Cmd>>,
    /// Written in the same batch as the range deletes (the rest of a purge:
    /// a crash leaves the queue purged or whole).
    pub with: Vec<Op>,
}

impl DropJob {
    fn first_seq(&self) -> u64 {
        self.lanes.iter().map(|(_, from)| *from).min().unwrap_or(self.to_seq)
    }

    /// The range deletes, with the index spared at `keep` (sorted seqs of
    /// places that stay).
    pub fn places(&self, keep: &[u64]) -> Op {
        let mut index = Vec::with_capacity(keep.len() + 1);
        let mut start = self.first_seq();
        for seq in keep {
            index.push((start, *seq));
            start = seq + 1;
        }
        index.push((start, self.to_seq));
        let pages = self.lanes.iter().map(|(lane, from)| (*lane, *from, self.to_seq)).collect();
        Op::DropPlaces { queue: self.queue, index, pages }
    }
}

#[derive(Default)]
struct Pending {
    looks: u32,
    ops: Vec<Op>,
    barriers: Vec<Done>,
}

/// The writer's side: looks under way, and what waits for them.
#[derive(Default)]
pub(super) struct Dropping {
    /// Per queue: looks under way, the ops waiting for the last one, and
    /// the barriers that are told once those are written.
    pending: FxHashMap<u64, Pending>,
    jobs: Option<mpsc::Sender<DropJob>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Dropping {
    /// Hands a look to the dropping thread (started at the first one).
    /// Returns what to write now (and the barriers to tell once it is
    /// written) if it cannot look.
    pub fn look(
        &mut self,
        job: DropJob,
        store: &Arc<dyn Store>,
        shared: &Arc<Shared>,
    ) -> (Vec<Op>, Vec<Done>) {
        if self.jobs.is_none() {
            let (tx, rx) = mpsc::channel();
            let (store, shared) = (store.clone(), shared.clone());
            self.thread = std::thread::Builder::new()
                .name("warren-store-drop".into())
                .spawn(move || look_loop(&*store, &shared, rx))
                .ok();
            self.jobs = Some(tx);
        }
        let queue = job.queue;
        self.pending.entry(queue).or_default().looks += 1;
        let job = match (&self.thread, &self.jobs) {
            (Some(_), Some(jobs)) => match jobs.send(job) {
                Ok(()) => return (Vec::new(), Vec::new()),
                Err(mpsc::SendError(job)) => job,
            },
            _ => job,
        };
        // No thread to look: the places stay (as if the look failed to
        // read); the rest of the purge is written all the same.
        error!(queue, "cannot drop paged-out messages: they stay on disk");
        let mut ops = job.with;
        let (waited, barriers) = self.done(queue);
        ops.extend(waited);
        (ops, barriers)
    }

    /// An op to write now, if any: a deletion of a queue being looked at
    /// keeps its places until the look is done, and so does a drop of its
    /// whole lanes (the look's ranges would raise the marks of lanes
    /// deleted whole again, `ranged.rs`).
    pub fn now(&mut self, op: Op) -> Option<Op> {
        match op {
            Op::DeleteQueue { vhost, name, id, last_lane } if self.pending.contains_key(&id) => {
                let everything = Op::DropPlaces {
                    queue: id,
                    index: vec![(0, u64::MAX)],
                    pages: (0..=last_lane).map(|lane| (lane, 0, u64::MAX)).collect(),
                };
                self.pending.entry(id).or_default().ops.push(everything);
                Some(Op::DeleteQueueRecord { vhost, name })
            }
            Op::DropPlaces { queue, ref pages, .. }
                if self.pending.contains_key(&queue) && pages.iter().any(|(_, _, to)| *to == u64::MAX) =>
            {
                self.pending.entry(queue).or_default().ops.push(op);
                None
            }
            op => Some(op),
        }
    }

    /// A barrier for `queue`: kept until its looks are done, else given back.
    pub fn wait_for(&mut self, queue: u64, done: Done) -> Option<Done> {
        match self.pending.get_mut(&queue) {
            Some(p) => {
                p.barriers.push(done);
                None
            }
            None => Some(done),
        }
    }

    /// A look at `queue` is done: what waited for it, if it was the last
    /// (ops to write, barriers to tell once they are written).
    pub fn done(&mut self, queue: u64) -> (Vec<Op>, Vec<Done>) {
        match self.pending.get_mut(&queue) {
            Some(p) if p.looks > 1 => {
                p.looks -= 1;
                (Vec::new(), Vec::new())
            }
            Some(_) => self.pending.remove(&queue).map(|p| (p.ops, p.barriers)).unwrap_or_default(),
            None => (Vec::new(), Vec::new()),
        }
    }

    pub fn busy(&self) -> bool {
        !self.pending.is_empty()
    }

    /// Lets the dropping thread finish and waits for it.
    pub fn stop(&mut self) {
        self.jobs = None;
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn look_loop(store: &dyn Store, shared: &Shared, rx: mpsc::Receiver<DropJob>) {
    for mut job in rx {
        let Some(reply) = job.look.take() else { continue };
        let queue = job.queue;
        let mut ops = std::mem::take(&mut job.with);
        // A look that panics is a look that failed to read: what waits for
        // it must still be written and told (a purge-ok waits on it).
        let looked =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| look(store, shared, &job, &reply)));
        match looked {
            Ok(Ok((mut released, keep))) => {
                ops.append(&mut released);
                ops.push(job.places(&keep));
            }
            // As a failed read always did: the places stay, and come back after a restart.
            Ok(Err(e)) => error!("{e}: paged-out messages of a purged or deleted queue stay on disk"),
            Err(_) => error!(queue, "dropping paged-out messages failed: they stay on disk"),
        }
        let _ = reply.send(Cmd::Dropped { queue, ops, last: true });
    }
}

/// Reads `job`'s index entries: the shared messages it lets go of (the
/// bigger part sent ahead in pieces) and the seqs of places that stay.
fn look(
    store: &dyn Store,
    shared: &Shared,
    job: &DropJob,
    reply: &super::inbox::Sender<Cmd>,
) -> crate::store::Result<(Vec<Op>, Vec<u64>)> {
    let mut released = Vec::new();
    let mut keep = Vec::new();
    store.scan_places(job.queue, job.first_seq(), job.to_seq, &mut |e| {
        let dropped = e.has(IndexEntry::PAGED)
            && job.lanes.iter().any(|(lane, from)| *lane == e.lane && e.seq >= *from);
        if !dropped {
            keep.push(e.seq);
        } else if e.has(IndexEntry::SHARED) && shared.refs.release(e.message) {
            // Sent ahead in pieces: a page keeps its own copy, so a
            // place that outlives a crash still has its message.
            released.push(Op::DeleteMessage { id: e.message });
            if released.len() >= CHUNK {
                let ops = std::mem::take(&mut released);
                let _ = reply.send(Cmd::Dropped { queue: job.queue, ops, last: false });
            }
        }
    })?;
    Ok((released, keep))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_whole_lane_drop_waits_for_the_look_at_its_queue() {
        let mut d = Dropping::default();
        d.pending.entry(10).or_default().looks = 1;
        let drop = |queue: u64, to: u64| Op::DropPlaces { queue, index: vec![], pages: vec![(0, 0, to)] };
        assert_eq!(d.now(drop(10, u64::MAX)), None, "held");
        assert_eq!(d.now(drop(10, 5)), Some(drop(10, 5)), "a range of it goes now");
        assert_eq!(d.now(drop(11, u64::MAX)), Some(drop(11, u64::MAX)), "another queue's goes now");
        // Written once the look is done, after what it found.
        assert_eq!(d.done(10).0, vec![drop(10, u64::MAX)]);
    }

    #[test]
    fn places_spare_the_seqs_that_stay() {
        let job = DropJob {
            queue: 10,
            lanes: vec![(0, 5), (2, 3)],
            to_seq: 20,
            count: 0,
            look: None,
            with: Vec::new(),
        };
        assert_eq!(
            job.places(&[4, 9]),
            Op::DropPlaces {
                queue: 10,
                index: vec![(3, 4), (5, 9), (10, 20)],
                pages: vec![(0, 5, 20), (2, 3, 20)]
            }
        );
    }
}
