//! Which read-back pages of a queue are settled, so their pages go from
//! the store in ranges instead of one tombstone per message.
//!
//! A page read back stays on disk until its message is settled (acked,
//! dropped, expired): it is its message's only copy. Deleting each page on
//! its own costs a tombstone per message in a sorted memtable, then in
//! flushes and compactions — measured at a third of the broker's CPU while
//! draining a paged-out backlog. Instead each lane tracks the pages read
//! back and not yet deleted, in seq order; once the settled ones at the
//! front cover `RANGE_MIN` seqs, or all are settled, they go in one range
//! delete (at most one per read back, while consumers keep up).
//!
//! What keeps a range safe: from `from` on, every page of the lane read
//! back and still live is tracked here (unsettled). Pages read back are
//! tracked as they come in, a delivery taken back is tracked again, and a
//! range never reaches past the first unsettled page. A page below `from`
//! (tracked again after its range went) is untracked: it is deleted on its
//! own when settled. A page is marked settled only once its remove was
//! submitted, and ranges are submitted under the same lock as they are
//! taken, so a range follows the removes it covers and precedes a page
//! written again. Pages a purge deletes itself (in a batch that may be
//! written late) are never in a range. After a crash the settled pages not
//! yet deleted are found by recovery below the lane's read-back frontier
//! (`PageFrontier`). Pure: the queue submits the ranges it is handed.

use std::collections::VecDeque;

/// Settled pages go in ranges of at least this many seqs.
const RANGE_MIN: u64 = 8192;

/// Past this many tracked pages, most of them settled behind an unsettled
/// one (a delivery held unacknowledged), the settled runs go at once.
const COMPACT_AT: usize = 65_536;

/// Per lane of one queue.
#[derive(Debug, Default)]
pub(super) struct Windows {
    lanes: Vec<Window>,
}

#[derive(Debug, Default)]
struct Window {
    /// Read-back pages not yet deleted, in seq order.
    pages: VecDeque<(u64, Page)>,
    /// How many of `pages` are live, and how many settled.
    live: usize,
    settled: usize,
    /// Where the next range starts: below it, every tracked page is gone.
    from: u64,
    /// Ranges closed by a page deleted on its own, not yet taken.
    closed: Vec<(u64, u64)>,
    /// Past the last page tracked (a range reaches here when all are settled).
    end: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Page {
    Live,
    /// Settled: its remove was submitted; its page goes with a range.
    Settled,
    /// Deleted on its own, by a batch that may still wait (a purge's):
    /// no range may reach it before that batch is written.
    Gone,
}

/// A range of a lane's pages to delete: (lane, from seq, to seq), end excluded.
pub(super) type PageRange = (u8, u64, u64);

impl Windows {
    fn lane(&mut self, lane: u8) -> &mut Window {
        let i = usize::from(lane);
        if self.lanes.len() <= i {
            self.lanes.resize_with(i + 1, Window::default);
        }
        &mut self.lanes[i]
    }

    /// A page read back, or live again (a delivery taken back after it was
    /// settled). False if it is below the ranges already deleted: a page
    /// written again there is deleted on its own.
    pub fn track(&mut self, lane: u8, seq: u64) -> bool {
        self.lane(lane).track(seq)
    }

    /// Whether a settled page would go with a range (else its remove
    /// deletes it on its own). Mark it with `settle` once its remove is
    /// submitted, not before: a range must follow the removes it covers.
    pub fn tracks(&self, lane: u8, seq: u64) -> bool {
        self.lanes.get(usize::from(lane)).is_some_and(|w| w.find(seq).is_some())
    }

    /// A tracked page's remove was submitted: its page may go with a range.
    pub fn settle(&mut self, lane: u8, seq: u64) {
        self.lane(lane).mark(seq, Page::Settled);
    }

    /// A page is deleted on its own by a batch submitted (or to be
    /// submitted) apart: no range reaches it.
    pub fn gone(&mut self, lane: u8, seq: u64) {
        self.lane(lane).mark(seq, Page::Gone);
    }

    /// Whether any page was ever tracked (read back).
    pub fn used(&self) -> bool {
        !self.lanes.is_empty()
    }

    /// The ranges ready to delete. Submit them before letting go of the
    /// lock: a page taken back in the meantime must be written after them.
    pub fn take_ranges(&mut self) -> Vec<PageRange> {
        let mut out = Vec::new();
        for (lane, w) in self.lanes.iter_mut().enumerate() {
            w.ranges(lane as u8, &mut out);
        }
        out
    }
}

impl Window {
    fn find(&self, seq: u64) -> Option<usize> {
        // A one-lane queue's pages come back with consecutive seqs, so a
        // seq is found where its distance from the front says: a dispatch
        // run asks for each of its deliveries before any is settled, and a
        // binary search over a deque of thousands misses the cache at every
        // step (2 % of a paged drain's samples). Gaps (a priority queue's
        // lanes share one seq count) fall back to the search.
        let (first, _) = self.pages.front()?;
        let guess = usize::try_from(seq.checked_sub(*first)?).ok();
        match guess.and_then(|i| Some((i, self.pages.get(i)?))) {
            Some((i, (s, _))) if *s == seq => Some(i),
            _ => self.pages.binary_search_by_key(&seq, |(s, _)| *s).ok(),
        }
    }

    fn track(&mut self, seq: u64) -> bool {
        if self.pages.is_empty() && self.end == 0 {
            self.from = seq;
        }
        if seq < self.from {
            return false;
        }
        match self.pages.back() {
            Some((last, _)) if *last >= seq => match self.pages.binary_search_by_key(&seq, |(s, _)| *s) {
                Ok(i) => {
                    let was = self.pages[i].1;
                    self.count(was, -1);
                    self.pages[i].1 = Page::Live;
                    self.count(Page::Live, 1);
                }
                Err(i) => {
                    self.pages.insert(i, (seq, Page::Live));
                    self.live += 1;
                }
            },
            _ => {
                self.pages.push_back((seq, Page::Live));
                self.live += 1;
            }
        }
        self.end = self.end.max(seq + 1);
        true
    }

    fn count(&mut self, page: Page, by: isize) {
        match page {
            Page::Live => self.live = self.live.wrapping_add_signed(by),
            Page::Settled => self.settled = self.settled.wrapping_add_signed(by),
            Page::Gone => {}
        }
    }

    fn mark(&mut self, seq: u64, to: Page) {
        let Some(i) = self.find(seq) else { return };
        let was = self.pages[i].1;
        if was == Page::Gone {
            return;
        }
        self.count(was, -1);
        self.pages[i].1 = to;
        self.count(to, 1);
        while let Some(&(seq, page)) = self.pages.front() {
            match page {
                Page::Live => break,
                Page::Settled => self.settled -= 1,
                Page::Gone => {
                    // The range so far stops short of it.
                    if seq > self.from {
                        self.closed.push((self.from, seq));
                    }
                    self.from = seq + 1;
                }
            }
            self.pages.pop_front();
        }
    }

    /// Seqs below this are settled (or were never this lane's pages).
    fn floor(&self) -> u64 {
        self.pages.front().map_or(self.end, |(seq, _)| *seq)
    }

    fn compacting(&self) -> bool {
        self.pages.len() > COMPACT_AT && self.settled > self.pages.len() / 2
    }

    fn ranges(&mut self, lane: u8, out: &mut Vec<PageRange>) {
        out.extend(self.closed.drain(..).map(|(from, to)| (lane, from, to)));
        let floor = self.floor();
        let pending = floor.saturating_sub(self.from);
        // (Compaction starts from the floor: what lies below goes first.)
        if pending >= RANGE_MIN || (pending > 0 && (self.pages.is_empty() || self.compacting())) {
            out.push((lane, self.from, floor));
            self.from = floor;
        }
        if self.compacting() {
            self.compact(lane, out);
        }
    }

    /// Deletes the settled runs between pages that are live (or deleted on
    /// their own) and keeps only those.
    fn compact(&mut self, lane: u8, out: &mut Vec<PageRange>) {
        let mut kept = VecDeque::with_capacity(self.pages.len() - self.settled);
        let mut run: Option<u64> = None;
        for &(seq, page) in &self.pages {
            match (page, run) {
                (Page::Settled, None) => run = Some(seq),
                (Page::Settled, Some(_)) => {}
                (_, Some(start)) => {
                    out.push((lane, start, seq));
                    run = None;
                }
                (_, None) => {}
            }
            if page != Page::Settled {
                kept.push_back((seq, page));
            }
        }
        if let Some(start) = run {
            out.push((lane, start, self.end));
        }
        self.pages = kept;
        self.settled = 0;
        self.from = self.floor();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_back(w: &mut Windows, lane: u8, seqs: impl IntoIterator<Item = u64>) {
        for seq in seqs {
            assert!(w.track(lane, seq));
        }
    }

    /// Settles as the queue does: only tracked pages, after their removes.
    fn settle(w: &mut Windows, lane: u8, seqs: impl IntoIterator<Item = u64>) {
        for seq in seqs {
            assert!(w.tracks(lane, seq), "{seq} is tracked");
            w.settle(lane, seq);
        }
    }

    /// What a set of ranges deletes among `seqs`.
    fn deleted(ranges: &[PageRange], seqs: impl IntoIterator<Item = u64>) -> Vec<u64> {
        seqs.into_iter().filter(|s| ranges.iter().any(|(_, from, to)| (from..to).contains(&s))).collect()
    }

    #[test]
    fn settled_pages_go_in_one_range_once_enough_are_settled() {
        let mut w = Windows::default();
        read_back(&mut w, 0, 100..100 + RANGE_MIN + 10);
        settle(&mut w, 0, 100..100 + RANGE_MIN - 1);
        assert!(w.take_ranges().is_empty(), "too few for a range yet");
        settle(&mut w, 0, [100 + RANGE_MIN - 1]);
        assert_eq!(w.take_ranges(), vec![(0, 100, 100 + RANGE_MIN)]);
        assert!(w.take_ranges().is_empty());
    }

    #[test]
    fn a_range_stops_at_the_first_unsettled_page() {
        let mut w = Windows::default();
        read_back(&mut w, 2, 0..RANGE_MIN * 2);
        settle(&mut w, 2, (0..RANGE_MIN * 2).filter(|s| *s != 5));
        assert!(w.take_ranges().is_empty(), "5 holds the front");
        settle(&mut w, 2, [5]);
        assert_eq!(w.take_ranges(), vec![(2, 0, RANGE_MIN * 2)]);
    }

    #[test]
    fn a_window_whose_pages_are_all_settled_deletes_them_however_few() {
        let mut w = Windows::default();
        read_back(&mut w, 0, [10, 11, 12]);
        settle(&mut w, 0, [10, 12]);
        assert!(w.take_ranges().is_empty(), "11 holds them");
        settle(&mut w, 0, [11]);
        assert_eq!(w.take_ranges(), vec![(0, 10, 13)]);
        read_back(&mut w, 0, [20]);
        settle(&mut w, 0, [20]);
        assert_eq!(w.take_ranges(), vec![(0, 13, 21)]);
    }

    #[test]
    fn a_page_taken_back_is_never_in_a_range() {
        let mut w = Windows::default();
        read_back(&mut w, 0, 0..RANGE_MIN + 100);
        settle(&mut w, 0, 0..RANGE_MIN + 50);
        // Settled and popped, its range not yet taken: tracked again.
        assert!(w.track(0, 20));
        let ranges = w.take_ranges();
        assert!(deleted(&ranges, [20]).is_empty(), "{ranges:?}");
        settle(&mut w, 0, [20]);
        settle(&mut w, 0, RANGE_MIN + 50..RANGE_MIN + 100);
        let ranges = w.take_ranges();
        assert_eq!(deleted(&ranges, 0..RANGE_MIN + 100).len(), (RANGE_MIN + 100) as usize);
        assert!(!w.track(0, 3), "below every range taken");
        assert!(!w.tracks(0, 3));
    }

    #[test]
    fn pages_deleted_on_their_own_are_never_in_a_range() {
        let mut w = Windows::default();
        read_back(&mut w, 0, 0..100);
        settle(&mut w, 0, 0..10);
        // A purge: its batch deletes 10..60 itself, and may be written late.
        (10..60).for_each(|seq| w.gone(0, seq));
        settle(&mut w, 0, 60..100);
        let ranges = w.take_ranges();
        assert_eq!(ranges, vec![(0, 0, 10), (0, 60, 100)]);
        assert!(deleted(&ranges, 10..60).is_empty());
    }

    #[test]
    fn settled_runs_behind_a_held_page_are_compacted_without_it() {
        let mut w = Windows::default();
        let n = COMPACT_AT as u64 + 10;
        read_back(&mut w, 1, 0..n);
        w.gone(1, 40_000);
        settle(&mut w, 1, (0..n).filter(|s| ![7, 30_000, 40_000].contains(s)));
        let ranges = w.take_ranges();
        let gone = deleted(&ranges, 0..n);
        assert_eq!(gone.len() as u64, n - 3);
        assert!(deleted(&ranges, [7, 30_000, 40_000]).is_empty(), "{ranges:?}");
        assert!(w.tracks(1, 30_000), "still tracked");
        settle(&mut w, 1, [30_000, 7]);
        let again = w.take_ranges();
        assert_eq!(deleted(&again, [7, 30_000, 40_000]), vec![7, 30_000], "{again:?}");
    }

    /// Consecutive seqs (found where their distance from the front says),
    /// then seqs with gaps (a priority lane's), then consecutive again past
    /// the gaps, some settled: each is found where it is, and seqs between
    /// or around them are not.
    #[test]
    fn pages_are_found_with_and_without_gaps() {
        let mut w = Windows::default();
        let seqs: Vec<u64> = (1000..1100).chain((0..100).map(|i| 1100 + i * 3)).chain(1500..1600).collect();
        read_back(&mut w, 1, seqs.iter().copied());
        let check = |w: &Windows, seqs: &[u64]| {
            for seq in 990..1610 {
                assert_eq!(w.tracks(1, seq), seqs.contains(&seq), "seq {seq}");
            }
        };
        check(&w, &seqs);
        assert!(!w.tracks(1, u64::MAX) && !w.tracks(0, 1000), "past the end; another lane");
        // The front moves on as its pages are settled; the rest stay found.
        settle(&mut w, 1, 1000..1010);
        check(&w, &seqs[10..]);
    }

    #[test]
    fn an_unknown_page_is_left_to_its_caller() {
        let mut w = Windows::default();
        assert!(!w.tracks(0, 1));
        read_back(&mut w, 0, [5, 6]);
        assert!(!w.tracks(0, 9));
        assert!(!w.tracks(3, 5), "another lane");
    }
}
