//! Answers that wait: for the disk (`tx.commit`, durable declares and
//! binds) or for paged-out messages (`basic.get`). A handler leaves a
//! [`Wait`] in `Ctx::wait` instead of replying; the connection then stops
//! processing its input until the wait is over, so replies keep their
//! order, while its deliveries and heartbeats go on. Nobody blocks a
//! runtime worker meanwhile.

use std::sync::Arc;

use amq_protocol::protocol::{basic, AMQPClass};
use tokio::sync::oneshot;

use super::channel::{Channel, Ctx, Unacked};
use crate::broker::queue::{Got, GET_WAIT};
use crate::broker::vhost::Unsynced;
use crate::broker::Queue;
use crate::protocol::{encode, AmqpError};
use crate::store::StoreHandle;

/// What a channel waits for, and what it does then.
#[derive(Debug)]
pub struct Wait {
    /// True: go on; false (or closed): the disk failed, or the get gives up.
    pub answer: oneshot::Receiver<bool>,
    /// The latest the answer is waited for (a `basic.get`), if any.
    pub deadline: Option<tokio::time::Instant>,
    pub then: Then,
}

#[derive(Debug)]
// A connection owes one answer at a time: its size does not matter.
#[allow(clippy::large_enum_variant)]
pub enum Then {
    /// Everything submitted so far is durable: send `reply` (none for
    /// `nowait`). Or it is not: undo `undo`, close the connection with `fail`.
    Reply { reply: Option<AMQPClass>, undo: Option<Unsynced>, fail: AmqpError },
    /// Paged-out messages came back: look again.
    Get { queue: Arc<Queue>, no_ack: bool, attempt: u32 },
}

impl Wait {
    /// Asks `store` for a barrier after what was just submitted.
    pub fn durable(
        store: &StoreHandle,
        reply: Option<AMQPClass>,
        undo: Option<Unsynced>,
        fail: AmqpError,
    ) -> Wait {
        Wait::durable_after(store, None, reply, undo, fail)
    }

    /// As `durable`, and also after the drops of store queue `after`'s
    /// paged-out part that are still being looked at (a purge).
    pub fn durable_after(
        store: &StoreHandle,
        after: Option<u64>,
        reply: Option<AMQPClass>,
        undo: Option<Unsynced>,
        fail: AmqpError,
    ) -> Wait {
        let (tx, answer) = oneshot::channel();
        store.barrier_after(
            after,
            Box::new(move |ok| {
                let _ = tx.send(ok);
            }),
        );
        Wait { answer, deadline: None, then: Then::Reply { reply, undo, fail } }
    }

    /// The method it answers, for the error it may end with.
    pub fn during(mut self, class_id: u16, method_id: u16) -> Wait {
        if let Then::Reply { fail, .. } = &mut self.then {
            *fail = std::mem::replace(fail, AmqpError::internal("")).during(class_id, method_id);
        }
        self
    }

    /// The connection goes without waiting: a change that then fails to
    /// be written is still undone.
    pub fn abandon(self, vhost: &Arc<crate::broker::VHost>) {
        if let Then::Reply { undo: Some(undo), .. } = self.then {
            let vhost = vhost.clone();
            tokio::spawn(async move {
                if !self.answer.await.unwrap_or(false) {
                    vhost.undo(undo);
                }
            });
        }
    }
}

/// What a method removed from the disk: its answer waits for that.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Removed {
    Nothing,
    /// A durable exchange or queue (its record's deletion is written at once).
    Durable,
    /// A durable queue's messages (a purge), also those of its paged-out
    /// part, whose drop may first look at the index (store queue id).
    PagesOf(Option<u64>),
}

impl Channel {
    /// Replies once `change` (if any) is durable, or a removal of something
    /// durable (`removed`) is, else at once.
    pub(super) fn reply_when_durable(
        &self,
        ctx: &mut Ctx,
        reply: Option<AMQPClass>,
        change: Option<Unsynced>,
        removed: Removed,
    ) {
        match (change.is_some() || removed != Removed::Nothing, ctx.vhost.store()) {
            (true, Some(store)) => {
                let fail = crate::broker::vhost::write_failed();
                let after = match removed {
                    Removed::PagesOf(queue) => queue,
                    _ => None,
                };
                ctx.wait = Some(Wait::durable_after(store, after, reply, change, fail));
            }
            _ => {
                if let Some(reply) = reply {
                    self.reply(ctx, reply);
                }
            }
        }
    }

    /// Answers `basic.get` from `queue`, or leaves a wait when its next
    /// message is still on disk.
    pub(super) fn answer_get(&mut self, queue: Arc<Queue>, no_ack: bool, attempt: u32, ctx: &mut Ctx) {
        let counted = &ctx.entry.stats.msgs;
        let (entry, remaining) = match queue.try_get(no_ack, attempt) {
            Got::Message(entry, remaining) => (entry, remaining),
            Got::Empty => return self.get_empty(ctx),
            Got::Later(answer) => {
                let deadline = Some(tokio::time::Instant::now() + GET_WAIT);
                ctx.wait = Some(Wait { answer, deadline, then: Then::Get { queue, no_ack, attempt } });
                return;
            }
        };
        if no_ack { &counted.get_auto } else { &counted.get_manual }.add(1);
        if entry.redelivered {
            counted.redelivered.add(1);
        }
        let tag = self.next_tag;
        self.next_tag += 1;
        let m = &entry.message;
        encode::get_ok(
            &mut ctx.out,
            self.id,
            tag,
            entry.redelivered,
            m.exchange(),
            m.routing_key(),
            remaining,
        );
        ctx.out.message(self.id, m, ctx.frame_max);
        if !no_ack {
            self.unacked.push_back(Unacked { tag, queue, seq: entry.seq, consumer: None, at: ctx.now });
        }
    }

    pub(super) fn get_empty(&self, ctx: &mut Ctx) {
        ctx.entry.stats.msgs.get_empty.add(1);
        self.reply(ctx, AMQPClass::Basic(basic::AMQPMethod::GetEmpty(basic::GetEmpty {})));
    }
}
