//! The writer's inbox: an unbounded channel with many senders and one
//! receiver, which takes everything waiting at once.
//!
//! Every persistent message crosses it (its write, later its settlement),
//! so its cost per message counts. std's channel links blocks of 31 slots:
//! one allocation (zeroed) per 31 sends, an atomic slot state per send and
//! per receive, and blocks freed by the receiver that the senders' threads
//! allocated. Here a send is a push onto a deque under a lock held for
//! that push alone, and the receiver swaps the whole deque for its own
//! empty one: one lock per batch, and both deques keep their capacity, so
//! a steady flow allocates nothing.
//!
//! Semantics are std's: sends fail once the receiver is gone, and the
//! receiver sees the channel disconnected once every sender is gone and
//! nothing is left.

use std::collections::VecDeque;
use std::sync::mpsc::{RecvError, RecvTimeoutError, SendError, TryRecvError};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};

/// Capacity the receiver's deque keeps after a burst (entries); beyond it
/// the emptied deque is let go rather than kept for the next swap.
const KEEP: usize = 16 * 1024;

struct Shared<T> {
    state: Mutex<State<T>>,
    ready: Condvar,
}

struct State<T> {
    queue: VecDeque<T>,
    senders: usize,
    /// The receiver is gone: sends fail.
    closed: bool,
    /// The receiver waits for something to arrive.
    waiting: bool,
}

pub(super) struct Sender<T>(Arc<Shared<T>>);

pub(super) struct Receiver<T> {
    shared: Arc<Shared<T>>,
    /// What the last swap took, in order.
    taken: VecDeque<T>,
}

pub(super) fn channel<T>() -> (Sender<T>, Receiver<T>) {
    let state = State { queue: VecDeque::new(), senders: 1, closed: false, waiting: false };
    let shared = Arc::new(Shared { state: Mutex::new(state), ready: Condvar::new() });
    (Sender(shared.clone()), Receiver { shared, taken: VecDeque::new() })
}

impl<T> Sender<T> {
    pub fn send(&self, value: T) -> Result<(), SendError<T>> {
        let mut st = self.0.state.lock();
        if st.closed {
            return Err(SendError(value));
        }
        st.queue.push_back(value);
        let wake = std::mem::take(&mut st.waiting);
        drop(st);
        if wake {
            self.0.ready.notify_one();
        }
        Ok(())
    }
}

impl<T> Clone for Sender<T> {
    fn clone(&self) -> Self {
        self.0.state.lock().senders += 1;
        Sender(self.0.clone())
    }
}

impl<T> Drop for Sender<T> {
    fn drop(&mut self) {
        let mut st = self.0.state.lock();
        st.senders -= 1;
        let wake = st.senders == 0 && std::mem::take(&mut st.waiting);
        drop(st);
        if wake {
            self.0.ready.notify_one();
        }
    }
}

impl<T> Receiver<T> {
    pub fn try_recv(&mut self) -> Result<T, TryRecvError> {
        if let Some(v) = self.taken.pop_front() {
            return Ok(v);
        }
        let mut st = self.shared.state.lock();
        if st.queue.is_empty() {
            return Err(if st.senders == 0 { TryRecvError::Disconnected } else { TryRecvError::Empty });
        }
        swap(&mut self.taken, &mut st);
        drop(st);
        self.taken.pop_front().ok_or(TryRecvError::Empty)
    }

    pub fn recv(&mut self) -> Result<T, RecvError> {
        self.recv_until(None).map_err(|_| RecvError)
    }

    pub fn recv_timeout(&mut self, timeout: Duration) -> Result<T, RecvTimeoutError> {
        // A timeout past what an `Instant` can hold waits as `recv` does.
        self.recv_until(Instant::now().checked_add(timeout))
    }

    fn recv_until(&mut self, deadline: Option<Instant>) -> Result<T, RecvTimeoutError> {
        if let Some(v) = self.taken.pop_front() {
            return Ok(v);
        }
        let mut st = self.shared.state.lock();
        loop {
            if !st.queue.is_empty() {
                swap(&mut self.taken, &mut st);
                drop(st);
                return self.taken.pop_front().ok_or(RecvTimeoutError::Timeout);
            }
            if st.senders == 0 {
                return Err(RecvTimeoutError::Disconnected);
            }
            st.waiting = true;
            match deadline {
                None => self.shared.ready.wait(&mut st),
                Some(at) => {
                    if self.shared.ready.wait_until(&mut st, at).timed_out() {
                        st.waiting = false;
                        if st.queue.is_empty() {
                            return Err(if st.senders == 0 {
                                RecvTimeoutError::Disconnected
                            } else {
                                RecvTimeoutError::Timeout
                            });
                        }
                    }
                }
            }
        }
    }
}

/// Takes everything waiting into `taken` (empty), leaving the senders the
/// receiver's emptied deque.
fn swap<T>(taken: &mut VecDeque<T>, st: &mut State<T>) {
    if taken.capacity() > KEEP {
        *taken = VecDeque::new();
    }
    std::mem::swap(&mut st.queue, taken);
}

impl<T> Drop for Receiver<T> {
    fn drop(&mut self) {
        let mut st = self.shared.state.lock();
        st.closed = true;
        let left = std::mem::take(&mut st.queue);
        drop(st);
        // What was never taken is dropped outside the lock (a drop may send).
        drop(left);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn order_holds_across_senders_and_swaps() {
        let (tx, mut rx) = channel();
        let tx2 = tx.clone();
        for i in 0..10 {
            tx.send(i).unwrap();
        }
        assert_eq!(rx.try_recv(), Ok(0));
        // Sent after a swap: after what the swap took.
        tx2.send(10).unwrap();
        let got: Vec<i32> = std::iter::from_fn(|| rx.try_recv().ok()).collect();
        assert_eq!(got, (1..=10).collect::<Vec<_>>());
        assert_eq!(rx.try_recv(), Err(TryRecvError::Empty));
    }

    #[test]
    fn disconnected_once_every_sender_is_gone_and_nothing_is_left() {
        let (tx, mut rx) = channel();
        let tx2 = tx.clone();
        tx.send(1).unwrap();
        drop(tx);
        assert_eq!(rx.recv(), Ok(1));
        assert_eq!(rx.recv_timeout(Duration::from_millis(5)), Err(RecvTimeoutError::Timeout));
        tx2.send(2).unwrap();
        drop(tx2);
        assert_eq!(rx.recv(), Ok(2), "what was sent before the last sender went is still taken");
        assert_eq!(rx.recv(), Err(RecvError));
        assert_eq!(rx.try_recv(), Err(TryRecvError::Disconnected));
        assert_eq!(rx.recv_timeout(Duration::from_secs(5)), Err(RecvTimeoutError::Disconnected));
        // A timeout no clock can reach waits as `recv` does, without a panic.
        assert_eq!(rx.recv_timeout(Duration::MAX), Err(RecvTimeoutError::Disconnected));
    }

    #[test]
    fn a_waiting_receiver_wakes_for_a_send_and_for_the_last_sender_going() {
        let (tx, mut rx) = channel::<u32>();
        let tx2 = tx.clone();
        let t = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(20));
            tx2.send(7).unwrap();
            std::thread::sleep(Duration::from_millis(20));
            drop(tx);
            drop(tx2);
        });
        assert_eq!(rx.recv(), Ok(7));
        assert_eq!(rx.recv_timeout(Duration::from_secs(30)), Err(RecvTimeoutError::Disconnected));
        t.join().unwrap();
    }

    #[test]
    fn sends_fail_once_the_receiver_is_gone_and_what_waited_is_dropped() {
        let (tx, rx) = channel();
        let kept = Arc::new(());
        tx.send(kept.clone()).unwrap();
        drop(rx);
        assert_eq!(Arc::strong_count(&kept), 1, "what was never taken is dropped with the receiver");
        assert!(tx.send(kept.clone()).is_err());
    }

    #[test]
    fn many_threads_lose_nothing_and_keep_each_senders_order() {
        let (tx, mut rx) = channel::<(u32, u32)>();
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let tx = tx.clone();
                std::thread::spawn(move || (0..20_000).for_each(|i| tx.send((t, i)).unwrap()))
            })
            .collect();
        drop(tx);
        let mut next = [0u32; 4];
        while let Ok((t, i)) = rx.recv() {
            assert_eq!(i, next[t as usize], "sender {t} out of order");
            next[t as usize] += 1;
        }
        threads.into_iter().for_each(|t| t.join().unwrap());
        assert_eq!(next, [20_000; 4]);
    }
}
