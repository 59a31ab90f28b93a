//! Reading queue contents back at start-up without loading them all:
//! one pass over the index gives each queue's count, byte size and the
//! first entries that fit its in-memory head; only the head's messages are
//! read. The rest stays on disk as the queue's paged-out part, read back
//! as consumers get to it. Pure over the `Store` trait.

use rustc_hash::{FxHashMap, FxHashSet};
use tracing::warn;

use super::refs::SharedRefs;
use super::writer::HeadLimit;
use super::{IndexEntry, MessageRecord, Op, Result, Store};

/// The paged-out part of a queue: its places from `from_seq` on, on disk only.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Paged {
    pub from_seq: u64,
    pub count: u64,
    pub bytes: u64,
    /// How many of them hold a message shared with other queues (dropping
    /// those needs a look at the index; dropping the others does not).
    pub shared: u64,
}

impl Paged {
    pub fn push(&mut self, e: &IndexEntry) {
        if self.count == 0 {
            self.from_seq = e.seq;
        }
        self.count += 1;
        self.bytes += u64::from(e.size);
        self.shared += u64::from(e.has(IndexEntry::SHARED));
    }

    /// The first one came back into memory.
    pub fn pop(&mut self, e: &IndexEntry) {
        self.count = self.count.saturating_sub(1);
        self.bytes = self.bytes.saturating_sub(u64::from(e.size));
        self.shared = self.shared.saturating_sub(u64::from(e.has(IndexEntry::SHARED)));
        self.from_seq = e.seq + 1;
    }
}

/// One queue's recovered contents.
#[derive(Debug, Default)]
pub struct Backlog {
    pub head: Vec<(IndexEntry, MessageRecord)>,
    /// The paged-out part of each lane.
    pub paged: Vec<Paged>,
    /// The seq after the last place on disk.
    pub next_seq: u64,
    /// The queue's delivery mark on disk (`Op::Delivered`; 0 for none):
    /// every place below it was delivered.
    pub delivered_below: u64,
}

#[derive(Debug, Default)]
pub struct Backlogs {
    pub queues: FxHashMap<u64, Backlog>,
    pub refs: SharedRefs,
    /// Writes to make before anything else: deletes places of queues that
    /// no longer exist and transient pages of the last run (with their
    /// messages), and gives every paged-out place a page of its own.
    pub fixes: Vec<Op>,
    /// The highest message id the index names, or lane of a gone queue
    /// dropped here if higher (ids are given out above it).
    pub max_message_id: u64,
}

/// Reads back the contents of the queues `known` (id, last page lane).
pub fn backlogs(store: &dyn Store, known: &[(u64, u8)], limit: HeadLimit) -> Result<Backlogs> {
    let mut b = Backlogs::default();
    for (id, last_lane) in known {
        let paged = vec![Paged::default(); usize::from(*last_lane) + 1];
        b.queues.insert(*id, Backlog { paged, ..Default::default() });
    }
    let mut head_bytes: FxHashMap<u64, usize> = FxHashMap::default();
    // Paged-out places that need a page written: those whose message is
    // among the messages (it was in memory when it arrived), and delivered
    // ones (their page must say so).
    let mut to_page: Vec<(u64, IndexEntry)> = Vec::new();
    // Shared messages that places of deleted queues held: deleted below
    // unless a remaining place holds them too.
    let mut let_go: Vec<u64> = Vec::new();
    // Below each lane's read-back frontier, pages of settled messages may
    // wait for a range delete: the live ones there are kept, the rest go.
    // A lane whose queue is gone (a non-durable one's, say) goes whole.
    let mut frontiers: FxHashMap<u64, u64> = store.page_frontiers()?.into_iter().collect();
    let mut read_back: FxHashMap<u64, Vec<Frontier>> = FxHashMap::default();
    for (id, last_lane) in known {
        let lanes: Vec<Frontier> = (0..=u64::from(*last_lane))
            .map(|lane| Frontier { seq: frontiers.remove(&(id + lane)).unwrap_or(0), live: Vec::new() })
            .collect();
        if lanes.iter().any(|f| f.seq > 0) {
            read_back.insert(*id, lanes);
        }
    }
    // A lane marked by a range (`ranged.rs`) whose queue is gone goes whole
    // too, its mark with it (one that paged out, was never read back, and
    // was dropped with its paged-out part).
    let known_lanes: FxHashSet<u64> =
        known.iter().flat_map(|(id, last)| *id..=id + u64::from(*last)).collect();
    for lane in store.page_marks().into_iter().filter(|lane| !known_lanes.contains(lane)) {
        frontiers.entry(lane).or_insert(0);
    }
    for lane in frontiers.into_keys() {
        // Its pages go under a range tombstone: no queue made now may take its id.
        b.max_message_id = b.max_message_id.max(lane);
        b.fixes.push(Op::DropPlaces { queue: lane, index: Vec::new(), pages: vec![(0, 0, u64::MAX)] });
    }
    // Below a queue's delivery mark every place was delivered: it comes
    // back redelivered, as if marked so itself (and a page rewritten below
    // says so). New seqs start past the mark. A gone queue's mark goes.
    let mut delivered: FxHashMap<u64, u64> = FxHashMap::default();
    for (queue, below) in store.delivered_marks()? {
        match b.queues.get_mut(&queue) {
            Some(q) => {
                q.next_seq = q.next_seq.max(below);
                q.delivered_below = below;
                delivered.insert(queue, below);
            }
            None => b.fixes.push(Op::Delivered { queue, below: 0 }),
        }
    }
    store.scan_index(&mut |queue, mut e| {
        b.max_message_id = b.max_message_id.max(e.message);
        let paged = e.has(IndexEntry::PAGED);
        if delivered.get(&queue).is_some_and(|below| e.seq < *below) {
            e.flags |= IndexEntry::DELIVERED;
        }
        let Some(q) = b.queues.get_mut(&queue).filter(|_| !e.has(IndexEntry::TRANSIENT)) else {
            // The message kept apart goes first: a crash between the two
            // leaves a place without its message, which the next start
            // removes, rather than a message nothing names.
            if e.has(IndexEntry::SHARED) {
                let_go.push(e.message);
            } else if e.apart() {
                b.fixes.push(Op::DeleteMessage { id: e.message });
            }
            b.fixes.push(Op::Remove { queue, seq: e.seq, lane: paged.then_some(e.lane) });
            return;
        };
        if e.has(IndexEntry::SHARED) {
            b.refs.add(e.message, 1);
        }
        if let Some(f) = read_back.get_mut(&queue).and_then(|lanes| lanes.get_mut(usize::from(e.lane))) {
            if paged && e.seq < f.seq {
                f.live.push(e.seq);
            }
        }
        q.next_seq = q.next_seq.max(e.seq + 1);
        let bytes = head_bytes.entry(queue).or_default();
        let lane = usize::from(e.lane).min(q.paged.len() - 1);
        // Within each lane the head is a prefix: once a lane pages out, all its later places do.
        if q.paged[lane].count == 0 && q.head.len() < limit.messages && *bytes < limit.bytes {
            *bytes += e.size as usize;
            q.head.push((e, MessageRecord::default()));
        } else {
            let e = IndexEntry { lane: lane as u8, ..e };
            if !paged || e.has(IndexEntry::DELIVERED) {
                to_page.push((queue, e));
            }
            q.paged[lane].push(&e);
        }
    })?;
    // A shared message is counted by the places that remain; one that none
    // holds any more (its last queue was deleted just before a crash) goes.
    let_go.sort_unstable();
    let_go.dedup();
    // Before the removals of the places that held them, as above.
    let gone: Vec<Op> =
        let_go.into_iter().filter(|id| !b.refs.holds(*id)).map(|id| Op::DeleteMessage { id }).collect();
    b.fixes.splice(0..0, gone);
    for (queue, q) in b.queues.iter_mut() {
        let head = std::mem::take(&mut q.head);
        let entries: Vec<IndexEntry> = head.iter().map(|(e, _)| *e).collect();
        for (mut e, record) in entries.into_iter().zip(read_records(store, *queue, &head)?) {
            match record {
                Some(r) => {
                    // Where the broker will look for it: in its place if
                    // small (`Queue::keeps_message`), else apart.
                    let small = r.body.len() < IndexEntry::INLINE_BELOW;
                    if own_apart(&e) && small {
                        // Written before messages held by one queue were
                        // kept in their places (schema 3): moved in, the
                        // two in one group (`fix_groups`).
                        e.flags |= IndexEntry::INLINE;
                        let record = super::SharedRecord::from(r.clone());
                        b.fixes.push(Op::PlaceWith { queue: *queue, entry: e, record, first: false });
                        b.fixes.push(Op::DeleteMessage { id: e.message });
                    } else if e.has(IndexEntry::INLINE) && !e.has(IndexEntry::PAGED) && !small {
                        // Kept in its place though large: moved out, the
                        // message first, in one group (`fix_groups`).
                        e.flags &= !IndexEntry::INLINE;
                        b.fixes.push(Op::PutMessage { id: e.message, record: r.clone().into() });
                        b.fixes.push(Op::Place { queue: *queue, entry: e });
                    }
                    q.head.push((e, r))
                }
                None => {
                    warn!(queue, seq = e.seq, "skipping an index entry without its message");
                    let lane = e.has(IndexEntry::PAGED).then_some(e.lane);
                    b.fixes.push(Op::Remove { queue: *queue, seq: e.seq, lane });
                }
            }
        }
    }
    for (queue, lanes) in read_back {
        // New seqs start past every page read back, deleted or not.
        if let Some(q) = b.queues.get_mut(&queue) {
            q.next_seq = lanes.iter().fold(q.next_seq, |next, f| next.max(f.seq));
        }
        let pages = settled_pages(store, queue, &lanes)?;
        if !pages.is_empty() {
            b.fixes.push(Op::DropPlaces { queue, index: Vec::new(), pages });
        }
    }
    for run in to_page.chunk_by(|a, b| a.0 == b.0) {
        let queue = run[0].0;
        for chunk in run.chunks(4096) {
            let places: Vec<(IndexEntry, MessageRecord)> =
                chunk.iter().map(|(_, e)| (*e, MessageRecord::default())).collect();
            for ((_, e), record) in chunk.iter().zip(read_records(store, queue, &places)?) {
                let Some(record) = record else {
                    warn!(queue, seq = e.seq, "skipping an index entry without its message");
                    continue;
                };
                // Its page keeps it now (what the place kept goes with the
                // place's rewrite; one kept apart is deleted after, in the
                // same group: `fix_groups`).
                let entry = IndexEntry { flags: (e.flags | IndexEntry::PAGED) & !IndexEntry::INLINE, ..*e };
                b.fixes.push(Op::Page { queue, entry, record: record.into() });
                if own_apart(e) {
                    b.fixes.push(Op::DeleteMessage { id: e.message });
                }
            }
        }
    }
    Ok(b)
}

/// A lane's read-back frontier and the live paged places below it, in order.
struct Frontier {
    seq: u64,
    live: Vec<u64>,
}

/// The pages below each lane's frontier that no live place holds (their
/// messages were settled before the range delete that was to take them),
/// as runs to delete: (lane, from seq, to seq), end excluded.
fn settled_pages(store: &dyn Store, queue: u64, lanes: &[Frontier]) -> Result<Vec<(u8, u64, u64)>> {
    let mut runs = Vec::new();
    for (lane, f) in lanes.iter().enumerate().filter(|(_, f)| f.seq > 0) {
        let mut run: Option<(u64, u64)> = None;
        let mut live = f.live.iter().peekable();
        store.scan_page_seqs(queue + lane as u64, f.seq, &mut |seq| {
            while live.next_if(|l| **l < seq).is_some() {
                // A live place between: the run ends before it.
                if let Some((from, to)) = run.take() {
                    runs.push((lane as u8, from, to));
                }
            }
            if live.next_if_eq(&&seq).is_some() {
                if let Some((from, to)) = run.take() {
                    runs.push((lane as u8, from, to));
                }
                return;
            }
            run = Some(run.map_or((seq, seq + 1), |(from, _)| (from, seq + 1)));
        })?;
        if let Some((from, to)) = run {
            runs.push((lane as u8, from, to));
        }
    }
    Ok(runs)
}

/// Ops per group of fixes at most (the deletion of a message moved joins
/// the group of its new place or page, which may go one past it).
const FIX_GROUP: usize = 1024;

/// The fixes in groups, each to be written whole (`submit_all`), in order:
/// a message moved into its place or page is deleted among the messages in
/// the group of that write, and one moved out is written in the group of
/// its new place, so a crash between groups leaves every message somewhere
/// and none behind (elsewhere a message kept apart is deleted before the
/// place that named it). Groups reach `FIX_GROUP` ops or about 16 MiB of
/// bodies, plus the op that completes a move.
pub fn fix_groups(fixes: Vec<Op>) -> Vec<Vec<Op>> {
    const GROUP_BYTES: usize = 16 << 20;
    let mut groups = Vec::new();
    let (mut group, mut bytes) = (Vec::<Op>::new(), 0);
    for op in fixes {
        let full = group.len() >= FIX_GROUP || bytes >= GROUP_BYTES;
        let moved = matches!(
            (&op, group.last()),
            (Op::DeleteMessage { .. }, Some(Op::PlaceWith { .. } | Op::Page { .. }))
                | (Op::Place { .. }, Some(Op::PutMessage { .. }))
        );
        if full && !moved {
            groups.push(std::mem::take(&mut group));
            bytes = 0;
        }
        if let Op::PlaceWith { record, .. } | Op::Page { record, .. } | Op::PutMessage { record, .. } = &op {
            bytes += record.parts().body.len();
        }
        group.push(op);
    }
    if !group.is_empty() {
        groups.push(group);
    }
    groups
}

/// A place of a message held by one queue, not paged out, whose message
/// is kept apart among the messages (written before schema 4, or large).
fn own_apart(e: &IndexEntry) -> bool {
    e.apart() && !e.has(IndexEntry::SHARED)
}

/// The messages of these places: from their pages, from the places
/// themselves, or from the messages.
fn read_records(
    store: &dyn Store,
    queue: u64,
    places: &[(IndexEntry, MessageRecord)],
) -> Result<Vec<Option<MessageRecord>>> {
    let ids: Vec<u64> = places
        .iter()
        .filter(|(e, _)| !e.has(IndexEntry::PAGED) && !e.has(IndexEntry::INLINE))
        .map(|(e, _)| e.message)
        .collect();
    let seqs: Vec<u64> = places
        .iter()
        .filter(|(e, _)| e.has(IndexEntry::INLINE) && !e.has(IndexEntry::PAGED))
        .map(|(e, _)| e.seq)
        .collect();
    let mut messages = store.read_messages(&ids)?.into_iter();
    let mut inline = store.read_places(queue, &seqs)?.into_iter();
    let mut out = Vec::with_capacity(places.len());
    for (e, _) in places {
        out.push(if e.has(IndexEntry::PAGED) {
            let lane = queue + u64::from(e.lane);
            store.read_pages(lane, e.seq, 1)?.pop().filter(|(p, _)| p.seq == e.seq).map(|(_, r)| r)
        } else if e.has(IndexEntry::INLINE) {
            inline.next().flatten()
        } else {
            messages.next().flatten()
        });
    }
    Ok(out)
}
