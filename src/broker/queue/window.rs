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
//! own when settled. After a crash the settled pages not yet deleted are
//! found by recovery below the lane's read-back frontier (`PageFrontier`).
//! Pure: the queue submits the ranges it is handed.

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
    /// Read-back pages not yet deleted, in seq order; true once settled.
    pages: VecDeque<(u64, bool)>,
    /// How many of `pages` are unsettled.
    unsettled: usize,
    /// Where the next range starts: below it, every tracked page is gone.
    from: u64,
    /// Past the last page tracked (a range reaches here when all are settled).
    end: u64,
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

    /// A page's message was settled. True if the page is tracked (it goes
    /// with a range); false if the caller deletes it on its own.
    pub fn settle(&mut self, lane: u8, seq: u64) -> bool {
        self.lane(lane).settle(seq)
    }

    /// The ranges ready to delete, to submit after the removes of the
    /// places they settle.
    pub fn take_ranges(&mut self) -> Vec<PageRange> {
        let mut out = Vec::new();
        for (lane, w) in self.lanes.iter_mut().enumerate() {
            w.ranges(lane as u8, &mut out);
        }
        out
    }
}

impl Window {
    fn track(&mut self, seq: u64) -> bool {
        if self.pages.is_empty() && self.end == 0 {
            self.from = seq;
        }
        if seq < self.from {
            return false;
        }
        match self.pages.back() {
            Some((last, _)) if *last >= seq => match self.pages.binary_search_by_key(&seq, |(s, _)| *s) {
                Ok(i) if self.pages[i].1 => {
                    self.pages[i].1 = false;
                    self.unsettled += 1;
                }
                Ok(_) => {}
                Err(i) => {
                    self.pages.insert(i, (seq, false));
                    self.unsettled += 1;
                }
            },
            _ => {
                self.pages.push_back((seq, false));
                self.unsettled += 1;
            }
        }
        self.end = self.end.max(seq + 1);
        true
    }

    fn settle(&mut self, seq: u64) -> bool {
        let Ok(i) = self.pages.binary_search_by_key(&seq, |(s, _)| *s) else { return false };
        if !self.pages[i].1 {
            self.pages[i].1 = true;
            self.unsettled -= 1;
        }
        while self.pages.front().is_some_and(|(_, settled)| *settled) {
            self.pages.pop_front();
        }
        true
    }

    /// Seqs below this are settled (or were never this lane's pages).
    fn floor(&self) -> u64 {
        self.pages.front().map_or(self.end, |(seq, _)| *seq)
    }

    fn ready(&self) -> bool {
        let pending = self.floor().saturating_sub(self.from);
        pending >= RANGE_MIN
            || (pending > 0 && self.pages.is_empty())
            || (self.pages.len() > COMPACT_AT && self.unsettled < self.pages.len() / 2)
    }

    fn ranges(&mut self, lane: u8, out: &mut Vec<PageRange>) {
        if !self.ready() {
            return;
        }
        let floor = self.floor();
        if floor > self.from {
            out.push((lane, self.from, floor));
            self.from = floor;
        }
        if self.pages.len() > COMPACT_AT && self.unsettled < self.pages.len() / 2 {
            self.compact(lane, out);
        }
    }

    /// Deletes the settled runs between unsettled pages and keeps only
    /// the unsettled ones.
    fn compact(&mut self, lane: u8, out: &mut Vec<PageRange>) {
        let mut kept = VecDeque::with_capacity(self.unsettled);
        let mut run: Option<u64> = None;
        for &(seq, settled) in &self.pages {
            match (settled, run) {
                (true, None) => run = Some(seq),
                (false, Some(start)) => {
                    out.push((lane, start, seq));
                    run = None;
                }
                _ => {}
            }
            if !settled {
                kept.push_back((seq, false));
            }
        }
        if let Some(start) = run {
            out.push((lane, start, self.end));
        }
        self.pages = kept;
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

    /// What a set of ranges deletes among `seqs`.
    fn deleted(ranges: &[PageRange], seqs: impl IntoIterator<Item = u64>) -> Vec<u64> {
        seqs.into_iter().filter(|s| ranges.iter().any(|(_, from, to)| (from..to).contains(&s))).collect()
    }

    #[test]
    fn settled_pages_go_in_one_range_once_enough_are_settled() {
        let mut w = Windows::default();
        read_back(&mut w, 0, 100..100 + RANGE_MIN + 10);
        for seq in 100..100 + RANGE_MIN - 1 {
            assert!(w.settle(0, seq));
        }
        assert!(w.take_ranges().is_empty(), "too few for a range yet");
        assert!(w.settle(0, 100 + RANGE_MIN - 1));
        assert_eq!(w.take_ranges(), vec![(0, 100, 100 + RANGE_MIN)]);
        assert!(w.take_ranges().is_empty());
    }

    #[test]
    fn a_range_stops_at_the_first_unsettled_page() {
        let mut w = Windows::default();
        read_back(&mut w, 2, 0..RANGE_MIN * 2);
        for seq in (0..RANGE_MIN * 2).filter(|s| *s != 5) {
            w.settle(2, seq);
        }
        assert!(w.take_ranges().is_empty(), "5 holds the front");
        w.settle(2, 5);
        assert_eq!(w.take_ranges(), vec![(2, 0, RANGE_MIN * 2)]);
    }

    #[test]
    fn a_window_whose_pages_are_all_settled_deletes_them_however_few() {
        let mut w = Windows::default();
        read_back(&mut w, 0, [10, 11, 12]);
        [10, 12].into_iter().for_each(|s| assert!(w.settle(0, s)));
        assert!(w.take_ranges().is_empty(), "11 holds them");
        assert!(w.settle(0, 11));
        assert_eq!(w.take_ranges(), vec![(0, 10, 13)]);
        read_back(&mut w, 0, [20]);
        w.settle(0, 20);
        assert_eq!(w.take_ranges(), vec![(0, 13, 21)]);
    }

    #[test]
    fn a_page_taken_back_is_never_in_a_range() {
        let mut w = Windows::default();
        read_back(&mut w, 0, 0..RANGE_MIN + 100);
        for seq in 0..RANGE_MIN + 50 {
            w.settle(0, seq);
        }
        // Settled and popped, its range not yet taken: tracked again.
        assert!(w.track(0, 20));
        let ranges = w.take_ranges();
        assert!(deleted(&ranges, [20]).is_empty(), "{ranges:?}");
        assert!(w.settle(0, 20));
        for seq in RANGE_MIN + 50..RANGE_MIN + 100 {
            w.settle(0, seq);
        }
        let ranges = w.take_ranges();
        assert_eq!(deleted(&ranges, 0..RANGE_MIN + 100).len(), (RANGE_MIN + 100) as usize);
        assert!(!w.track(0, 3), "below every range taken");
        assert!(!w.settle(0, 3));
    }

    #[test]
    fn settled_runs_behind_a_held_page_are_compacted_without_it() {
        let mut w = Windows::default();
        let n = COMPACT_AT as u64 + 10;
        read_back(&mut w, 1, 0..n);
        for seq in (0..n).filter(|s| *s != 7 && *s != 30_000) {
            w.settle(1, seq);
        }
        let ranges = w.take_ranges();
        let gone = deleted(&ranges, 0..n);
        assert_eq!(gone.len() as u64, n - 2);
        assert!(!gone.contains(&7) && !gone.contains(&30_000));
        assert!(w.settle(1, 30_000), "still tracked");
        w.settle(1, 7);
        let again = w.take_ranges();
        assert!(deleted(&again, [7, 30_000]).len() == 2, "{again:?}");
    }

    #[test]
    fn an_unknown_page_is_left_to_its_caller() {
        let mut w = Windows::default();
        assert!(!w.settle(0, 1));
        read_back(&mut w, 0, [5, 6]);
        assert!(!w.settle(0, 9));
    }
}
