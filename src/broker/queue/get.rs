//! `basic.get`: the next ready message, waiting for a read of paged-out
//! messages when the head ran dry (a few tries, each up to `GET_WAIT`) or
//! a higher priority waits on disk (once).

use std::sync::{mpsc, Arc};

use super::{paging, Entry, Queue};

impl Queue {
    /// `basic.get`: the next ready message and how many remain. If the
    /// head ran dry before paged-out messages came back, blocks the thread
    /// until they are in: not for runtime workers (connections use `try_get`).
    pub fn get(self: &Arc<Self>, no_ack: bool) -> Option<(Entry, u32)> {
        self.touch();
        for attempt in 1.. {
            let (tx, rx) = mpsc::sync_channel(1);
            if let Some(got) = self.get_step(no_ack, attempt, Waiter::Thread(tx)) {
                return got;
            }
            rx.recv_timeout(GET_WAIT).ok()?;
        }
        None
    }

    /// `basic.get` without blocking: when the next message is still on
    /// disk, `Got::Later` says when to ask again (with `attempt + 1`).
    pub fn try_get(self: &Arc<Self>, no_ack: bool, attempt: u32) -> Got {
        if attempt == 1 {
            self.touch();
        }
        let (tx, rx) = tokio::sync::oneshot::channel();
        match self.get_step(no_ack, attempt, Waiter::Task(tx)) {
            Some(Some((entry, remaining))) => Got::Message(entry, remaining),
            Some(None) => Got::Empty,
            None => Got::Later(rx),
        }
    }

    /// One look for `basic.get`; None when `waiter` was left to be told
    /// of a read of paged-out messages.
    fn get_step(
        self: &Arc<Self>,
        no_ack: bool,
        attempt: u32,
        waiter: Waiter,
    ) -> Option<Option<(Entry, u32)>> {
        let mut st = self.state.lock();
        self.expire_due(&mut st);
        // The next message may be on disk (a higher priority): wait once for it.
        let next = if st.next_is_paged() && attempt == 1 { None } else { st.ready.pop_front() };
        if let Some(entry) = next {
            self.fill(&mut st);
            self.relieve(&mut st);
            st.count_delivery(&entry);
            let mut settled = paging::Settled::default();
            self.on_delivered(&entry, no_ack, &mut settled);
            self.submit_settled(settled);
            if !no_ack {
                st.unacked.insert(entry.seq, entry.clone());
            }
            let remaining = st.len().min(u32::MAX as usize) as u32;
            self.arm(&mut st);
            self.finish(st);
            return Some(Some((entry, remaining)));
        }
        if st.paged_count() == 0 || attempt > 3 {
            // Nothing left, or the store cannot read it back (it logged why).
            self.finish(st);
            return Some(None);
        }
        st.waiters.push(waiter);
        self.fill(&mut st);
        self.finish(st);
        None
    }
}

/// What `basic.get` found.
#[derive(Debug)]
pub enum Got {
    /// The message and how many remain.
    Message(Entry, u32),
    Empty,
    /// The next message is being read back from disk: told (true) when it
    /// is in; false or a closed channel means give up.
    Later(tokio::sync::oneshot::Receiver<bool>),
}

/// The longest a `basic.get` waits for paged-out messages to come back.
pub const GET_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

/// A `basic.get` waiting for paged-out messages: a thread or a connection's task.
#[derive(Debug)]
pub(super) enum Waiter {
    Thread(mpsc::SyncSender<()>),
    Task(tokio::sync::oneshot::Sender<bool>),
}

impl Waiter {
    pub(super) fn wake(self) {
        match self {
            Waiter::Thread(t) => drop(t.try_send(())),
            Waiter::Task(t) => drop(t.send(true)),
        }
    }
}
