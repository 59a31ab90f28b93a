//! One stream consumer's reader: its cursor in the log, the chunk it is
//! in, its filter, and handing records on as deliveries while it has credit.

use std::sync::Arc;

use bytes::Bytes;

use super::args::Filter;
use crate::broker::consumer::{Consumer, Delivery};
use crate::broker::message::Message;
use crate::broker::queue::{Entry, Queue};
use crate::store::stream::chunk::{self, ChunkHeader};
use crate::store::stream::{Cursor, Log};

/// Bytes of messages in one run of deliveries, at most (past one message).
const RUN_BYTES: usize = 1 << 20;

#[derive(Debug)]
pub(super) struct Reader {
    pub consumer: Arc<Consumer>,
    pub cursor: Cursor,
    /// The chunk being handed on and where in its records.
    chunk: Option<(ChunkHeader, Bytes, usize)>,
    pub filter: Option<Filter>,
    /// Its offset is kept under its tag.
    pub track: bool,
    /// Delivering (false: waiting its turn as a single active consumer).
    pub active: bool,
    /// Where it starts once it becomes active.
    pub start: super::args::Start,
    /// The connection is gone or the consumer cancelled.
    pub gone: bool,
}

/// What a round of reading did.
#[derive(Debug, Default, Clone, Copy)]
pub(super) struct Pumped {
    pub delivered: usize,
    /// Stopped at the turn's bound on records looked at or bytes: more may wait.
    pub more: bool,
}

impl Reader {
    pub fn new(
        consumer: Arc<Consumer>,
        filter: Option<Filter>,
        track: bool,
        start: super::args::Start,
    ) -> Self {
        Reader {
            consumer,
            cursor: Cursor::at(0),
            chunk: None,
            filter,
            track,
            active: false,
            start,
            gone: false,
        }
    }

    /// Starts at `offset` (what was there before is dropped).
    pub fn seek(&mut self, offset: u64) {
        self.cursor = Cursor::at(offset);
        self.chunk = None;
    }

    /// Hands on up to `budget` records while the consumer has credit, in
    /// one send (its credit is taken once, not per message).
    pub fn pump(&mut self, log: &Log, queue: &Arc<Queue>, budget: usize) -> std::io::Result<Pumped> {
        let mut out = Pumped::default();
        if self.consumer.is_cancelled() {
            self.gone = true;
            return Ok(out);
        }
        let mut room = self.consumer.room() as usize;
        if room == 0 {
            self.consumer.mark_starved();
            // Credit may have come back between the look and the mark.
            room = self.consumer.room() as usize;
            if room == 0 {
                return Ok(out);
            }
        }
        let want = budget.min(room);
        // Allocated at the first record: a reader at the end reads nothing.
        let mut batch = Vec::new();
        // Records filtered out or skipped count too, so one turn stays short.
        let mut examined = 0;
        // A run holds at most about this many bytes of messages (at least one),
        // so one with big messages does not flood its connection's buffer.
        let mut bytes = 0;
        while batch.len() < want {
            if examined >= budget * 16 || bytes >= RUN_BYTES {
                out.more = true;
                break;
            }
            examined += 1;
            let Some((h, records, at)) = self.chunk.as_mut() else {
                match log.read(&mut self.cursor) {
                    Ok(Some((h, records))) => self.chunk = Some((h, records, 0)),
                    Ok(None) => break,
                    Err(e) if batch.is_empty() => return Err(e),
                    // What was read goes first; the error comes back next turn.
                    Err(_) => break,
                }
                continue;
            };
            let Some(r) = chunk::next_record(records, h.first, at) else {
                self.cursor.next = self.cursor.next.max(h.end());
                self.chunk = None;
                continue;
            };
            if r.offset < self.cursor.next {
                continue;
            }
            self.cursor.next = r.offset + 1;
            if self.filter.as_ref().is_some_and(|f| !f.matches(r.filter.as_deref())) {
                continue;
            }
            let Some(message) = Message::from_stored_parts(r.meta, r.exchange_len, r.routing_key_len, r.body)
            else {
                tracing::warn!(queue = %queue.name, offset = r.offset, "skipping a damaged stream record");
                continue;
            };
            let entry = Entry {
                seq: r.offset,
                message: Arc::new(message),
                expires: 0,
                returns: 0,
                priority: 0,
                redelivered: false,
                stored: false,
                paged: false,
            };
            bytes += entry.message.body().len() + entry.message.header().len();
            if batch.is_empty() {
                batch.reserve_exact(want);
            }
            batch.push(Delivery { consumer: self.consumer.clone(), queue: queue.clone(), entry });
        }
        out.delivered = batch.len();
        if !batch.is_empty() && self.consumer.send_many(batch).is_err() {
            self.gone = true;
        }
        Ok(out)
    }
}
