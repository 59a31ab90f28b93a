//! Transactions (`tx.select` / `commit` / `rollback`): publishes and
//! settlements are held on the channel until commit, dropped on rollback.

use std::sync::Arc;

use amq_protocol::protocol::{tx, AMQPClass};

use super::channel::{Channel, Ctx, Unacked};
use super::wait::Wait;
use crate::broker::exchange::Exchange;
use crate::broker::Message;
use crate::protocol::AmqpError;

/// What a transaction holds until commit.
#[derive(Debug, Default)]
pub struct Tx {
    pub publishes: Vec<HeldPublish>,
    /// Settled deliveries, taken off the unacked list, and how.
    pub settles: Vec<(Vec<Unacked>, Settle)>,
}

/// A publish held until commit: exchange, message, `BCC` keys, mandatory.
pub type HeldPublish = (Arc<Exchange>, Arc<Message>, Vec<String>, bool);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Settle {
    Ack,
    Requeue,
    Drop,
}

impl Channel {
    pub(super) fn handle_tx(&mut self, m: tx::AMQPMethod, ctx: &mut Ctx) -> Result<(), AmqpError> {
        let reply = match m {
            tx::AMQPMethod::Select(_) => {
                if self.confirms.is_some() {
                    return Err(AmqpError::precondition_failed("cannot switch from confirm to tx mode"));
                }
                self.tx.get_or_insert_with(Tx::default);
                tx::AMQPMethod::SelectOk(tx::SelectOk {})
            }
            tx::AMQPMethod::Commit(_) => {
                let Some(tx) = self.tx.replace(Tx::default()) else {
                    return Err(AmqpError::precondition_failed("channel is not transactional"));
                };
                let mut on_disk = !tx.settles.is_empty();
                for (exchange, message, bcc, mandatory) in tx.publishes {
                    on_disk |= self.route(&exchange, message, &bcc, mandatory, ctx).on_disk;
                }
                for (settled, how) in tx.settles {
                    self.apply_settle(settled, how);
                }
                let ok = AMQPClass::Tx(tx::AMQPMethod::CommitOk(tx::CommitOk {}));
                // Like RabbitMQ, commit-ok means the transaction's publishes and
                // acks are on disk: it goes out when the store says so (`wait.rs`).
                if let Some(store) = ctx.vhost.store().filter(|_| on_disk) {
                    let fail = AmqpError::internal("the transaction could not be written to disk");
                    ctx.wait = Some(Wait::durable(store, Some(ok), None, fail));
                    return Ok(());
                }
                self.reply(ctx, ok);
                return Ok(());
            }
            tx::AMQPMethod::Rollback(_) => {
                let Some(tx) = self.tx.replace(Tx::default()) else {
                    return Err(AmqpError::precondition_failed("channel is not transactional"));
                };
                // Settlements are forgotten: those deliveries are unacked again.
                for (settled, _) in tx.settles {
                    for u in settled {
                        let at = self.unacked.partition_point(|x| x.tag < u.tag);
                        self.unacked.insert(at, u);
                    }
                }
                tx::AMQPMethod::RollbackOk(tx::RollbackOk {})
            }
            _ => return Err(AmqpError::command_invalid("a client may not send this tx method")),
        };
        self.reply(ctx, AMQPClass::Tx(reply));
        Ok(())
    }
}
