//! Answers a connection owes until the store (or a read of paged-out
//! messages) says so: while one is owed, the connection processes no more
//! input (its replies keep their order), but its task is free, so no
//! runtime worker waits for a disk.

use super::Connection;
use crate::connection::wait::{Then, Wait};

/// An answer owed on a channel (this opening of it).
#[derive(Debug)]
pub(super) struct Owed {
    pub channel: u16,
    pub epoch: u64,
    pub wait: Wait,
}

/// Resolves with the owed answer (true: go on); never while none is owed.
pub(super) async fn answer(owed: &mut Option<Owed>) -> bool {
    let Some(o) = owed else { return std::future::pending().await };
    let answer = &mut o.wait.answer;
    match o.wait.deadline {
        Some(at) => matches!(tokio::time::timeout_at(at, answer).await, Ok(Ok(true))),
        None => answer.await.unwrap_or(false),
    }
}

impl Connection {
    /// The method just handled on `channel` left a wait: it is owed now.
    pub(super) fn owe(&mut self, channel: u16, epoch: u64, wait: Wait) {
        debug_assert!(self.owed.is_none(), "one owed answer at a time");
        self.owed = Some(Owed { channel, epoch, wait });
    }

    /// The owed answer came: reply (on the channel, if it is still open),
    /// look again for a `basic.get`, or close the connection with the
    /// error of a change that could not be written (undoing it).
    pub(super) fn settle_owed(&mut self, ok: bool) {
        let Some(Owed { channel, epoch, wait }) = self.owed.take() else { return };
        let ch = self.channels.get_mut(&channel).filter(|ch| ch.epoch == epoch && !ch.closing);
        match wait.then {
            Then::Reply { reply, undo, fail } => {
                if !ok {
                    if let Some(undo) = undo {
                        self.ctx.vhost.undo(undo);
                    }
                    self.close_connection(fail);
                } else if let (Some(ch), Some(reply)) = (ch, reply) {
                    ch.reply(&mut self.ctx, reply);
                }
            }
            Then::Get { queue, no_ack, attempt } => {
                let Some(ch) = ch else { return };
                if ok {
                    ch.answer_get(queue, no_ack, attempt + 1, &mut self.ctx);
                } else {
                    ch.get_empty(&mut self.ctx);
                }
                if let Some(wait) = self.ctx.wait.take() {
                    self.owe(channel, epoch, wait);
                }
            }
        }
    }
}
