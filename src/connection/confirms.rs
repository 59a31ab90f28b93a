//! Publisher confirms: sequence numbers per channel from 1, outcomes
//! recorded as they become known, and acks coalesced into `multiple` acks.
//!
//! An outcome may be known at once (transient messages, unroutable ones) or
//! later (a persistent message waiting for its disk write): `publish`
//! hands out the number, `settle` records the outcome whenever it is known,
//! and `flush` writes what can be written, in order.

use std::collections::VecDeque;

use crate::protocol::encode;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Pending,
    Ack,
    Nack,
}

#[derive(Debug, Default)]
pub struct Confirms {
    /// Everything at or below this number has been confirmed to the client.
    confirmed_upto: u64,
    /// Outcomes of `confirmed_upto + 1`, `+ 2`, …
    outcomes: VecDeque<Outcome>,
}

impl Confirms {
    /// Publishes not yet confirmed to the client.
    pub fn pending(&self) -> u64 {
        self.outcomes.len() as u64
    }

    /// Numbers the next publish.
    pub fn publish(&mut self) -> u64 {
        self.outcomes.push_back(Outcome::Pending);
        self.confirmed_upto + self.outcomes.len() as u64
    }

    pub fn settle(&mut self, seq: u64, ack: bool) {
        if let Some(i) = seq.checked_sub(self.confirmed_upto + 1) {
            if let Some(o) = self.outcomes.get_mut(i as usize) {
                *o = if ack { Outcome::Ack } else { Outcome::Nack };
            }
        }
    }

    pub fn has_settled(&self) -> bool {
        self.outcomes.front().is_some_and(|o| *o != Outcome::Pending)
    }

    /// Writes the acks and nacks that can be sent now, in order: a run of
    /// acks becomes one `multiple` ack; nacks go one by one. Returns how
    /// many publishes it acked.
    pub fn flush(&mut self, out: &mut Vec<u8>, channel: u16) -> u64 {
        let mut acked = 0;
        let mut acked_upto = None;
        while let Some(&o) = self.outcomes.front() {
            if o == Outcome::Pending {
                break;
            }
            self.outcomes.pop_front();
            let seq = self.confirmed_upto + 1;
            match o {
                Outcome::Ack => {
                    acked += 1;
                    acked_upto = Some(acked_upto.map_or((seq, seq), |(first, _)| (first, seq)));
                }
                _ => {
                    if let Some((first, last)) = acked_upto.take() {
                        encode::basic_ack(out, channel, last, last > first);
                    }
                    encode::basic_nack(out, channel, seq, false);
                }
            }
            self.confirmed_upto = seq;
        }
        if let Some((first, last)) = acked_upto {
            encode::basic_ack(out, channel, last, last > first);
        }
        acked
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use amq_protocol::frame::{parse_frame, AMQPFrame};
    use amq_protocol::protocol::{basic, AMQPClass};

    fn flushed(c: &mut Confirms) -> Vec<(bool, u64, bool)> {
        let mut bytes = Vec::new();
        c.flush(&mut bytes, 1);
        let mut rest = &bytes[..];
        let mut out = Vec::new();
        while !rest.is_empty() {
            let (r, frame) = parse_frame(rest).unwrap();
            match frame {
                AMQPFrame::Method(1, AMQPClass::Basic(basic::AMQPMethod::Ack(a))) => {
                    out.push((true, a.delivery_tag, a.multiple))
                }
                AMQPFrame::Method(1, AMQPClass::Basic(basic::AMQPMethod::Nack(n))) => {
                    out.push((false, n.delivery_tag, n.multiple))
                }
                other => panic!("unexpected {other:?}"),
            }
            rest = r;
        }
        out
    }

    #[test]
    fn coalesces_in_order_and_waits_for_pending() {
        let mut c = Confirms::default();
        let seqs: Vec<u64> = (0..5).map(|_| c.publish()).collect();
        assert_eq!(seqs, vec![1, 2, 3, 4, 5]);
        c.settle(1, true);
        c.settle(2, true);
        c.settle(4, false);
        c.settle(5, true);
        assert_eq!(flushed(&mut c), vec![(true, 2, true)]);
        c.settle(3, true);
        assert_eq!(flushed(&mut c), vec![(true, 3, false), (false, 4, false), (true, 5, false)]);
        assert!(flushed(&mut c).is_empty());
        let six = c.publish();
        c.settle(six, true);
        assert_eq!(flushed(&mut c), vec![(true, 6, false)]);
    }
}
