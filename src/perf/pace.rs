//! Ticks for producers at a fixed rate, finer and steadier than tokio's
//! 1 ms timer: its sleeps last 1–2 ms, so a producer at 100k msg/s sent
//! bursts of 100–200 messages stamped alike, and even the floor relay's
//! latency was then the length of a burst (p50 0.6 ms). One thread per
//! tick length sleeps to absolute deadlines (1 µs of timer slack, no
//! spinning) and wakes every producer paced by it; it stops once none is
//! left.

use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use tokio::sync::Notify;

/// The shortest tick at all: waking more often takes the broker's CPU.
const MIN_TICK: Duration = Duration::from_micros(50);

type Listeners = Arc<Mutex<Vec<Weak<Notify>>>>;

/// The ticking threads, by tick (locked before a thread's listeners).
static TICKERS: Mutex<Vec<(Duration, Listeners)>> = Mutex::new(Vec::new());

/// A producer's share of a ticker.
pub struct Pacer {
    wake: Arc<Notify>,
    tick: Duration,
}

impl Pacer {
    /// Ticks every `1 / rate`, but no more often than every `min_tick_us`.
    pub fn start(rate: u64, min_tick_us: u64) -> Pacer {
        let tick = Duration::from_nanos(1_000_000_000 / rate.max(1))
            .max(Duration::from_micros(min_tick_us))
            .max(MIN_TICK);
        let wake = Arc::new(Notify::new());
        let mut tickers = TICKERS.lock();
        match tickers.iter().find(|(t, _)| *t == tick) {
            Some((_, listeners)) => listeners.lock().push(Arc::downgrade(&wake)),
            None => {
                let listeners: Listeners = Arc::new(Mutex::new(vec![Arc::downgrade(&wake)]));
                let theirs = listeners.clone();
                // Without its thread the producer still goes on, at two ticks a turn.
                if std::thread::Builder::new()
                    .name("warren-perf-pace".into())
                    .spawn(move || run(tick, theirs))
                    .is_ok()
                {
                    tickers.push((tick, listeners));
                }
            }
        }
        Pacer { wake, tick }
    }

    /// Waits for the next tick (one that came meanwhile is kept as a
    /// permit), or two ticks at most.
    pub async fn tick(&self) {
        let _ = tokio::time::timeout(self.tick * 2, self.wake.notified()).await;
    }
}

fn run(tick: Duration, listeners: Listeners) {
    // SAFETY: prctl with PR_SET_TIMERSLACK only changes this thread's
    // timer slack (50 µs by default).
    #[cfg(target_os = "linux")]
    unsafe {
        libc::prctl(libc::PR_SET_TIMERSLACK, 1000 as libc::c_ulong);
    }
    let mut next = Instant::now();
    loop {
        next += tick;
        match next.checked_duration_since(Instant::now()) {
            Some(wait) => std::thread::sleep(wait),
            // Fallen behind (descheduled): the deadlines start again from now.
            None => next = Instant::now(),
        }
        let mut tickers = TICKERS.lock();
        let mut l = listeners.lock();
        l.retain(|w| w.upgrade().inspect(|wake| wake.notify_one()).is_some());
        if l.is_empty() {
            tickers.retain(|(_, t)| !Arc::ptr_eq(t, &listeners));
            return;
        }
    }
}
