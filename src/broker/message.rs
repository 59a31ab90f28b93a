//! A published message, shared (never copied) by every queue it is routed to.

use amq_protocol::protocol::basic::AMQPProperties;
use amq_protocol::types::parsing::parse_field_table;
use amq_protocol::types::FieldTable;
use std::sync::atomic::AtomicU32;

use bytes::{Bytes, BytesMut};

use crate::protocol::properties::{decode_properties, ContentHeader};
use crate::store::MessageRecord;

/// A message as the broker keeps it: names and content as they came off the
/// wire (slices of the publisher's read buffer), plus what routing needs.
#[derive(Debug)]
pub struct Message {
    pub exchange: Bytes,
    pub routing_key: Bytes,
    /// The content header payload, forwarded to consumers byte for byte.
    pub header: Bytes,
    pub body: Bytes,
    pub info: ContentHeader,
    /// Its id in the store when it is persisted (persistent, routed to a
    /// durable queue); 0 otherwise. Set before the message is shared.
    pub store_id: u64,
    /// How many durable queue entries hold it; the last one deletes it.
    pub store_refs: AtomicU32,
}

/// Bodies up to this size are copied, with the names and header, into one
/// allocation of their own; larger ones stay slices of the read buffer.
const COPY_LIMIT: usize = 16 * 1024;

impl Message {
    /// Builds a message from slices of a connection's read buffer. Small
    /// messages are compacted into one exact-size allocation so they do not
    /// keep the (64 KiB) read buffer alive while they wait in a queue, and
    /// the connection can reuse that buffer in place.
    pub fn new(exchange: Bytes, routing_key: Bytes, header: Bytes, info: ContentHeader, body: Bytes) -> Self {
        if body.len() > COPY_LIMIT {
            return Message {
                exchange,
                routing_key,
                header,
                body,
                info,
                store_id: 0,
                store_refs: AtomicU32::new(0),
            };
        }
        let sizes = [exchange.len(), routing_key.len(), header.len(), body.len()];
        let mut all = BytesMut::with_capacity(sizes.iter().sum());
        for part in [&exchange, &routing_key, &header, &body] {
            all.extend_from_slice(part);
        }
        let all = all.freeze();
        let mut at = 0;
        let mut next = |n: usize| {
            at += n;
            all.slice(at - n..at)
        };
        Message {
            exchange: next(sizes[0]),
            routing_key: next(sizes[1]),
            header: next(sizes[2]),
            body: next(sizes[3]),
            info,
            store_id: 0,
            store_refs: AtomicU32::new(0),
        }
    }

    /// A message read back from the store.
    pub fn from_record(id: u64, r: &MessageRecord) -> Option<Message> {
        let info = ContentHeader::scan(&r.header).ok()?;
        let mut m =
            Message::new(r.exchange.clone(), r.routing_key.clone(), r.header.clone(), info, r.body.clone());
        m.store_id = id;
        Some(m)
    }

    pub fn record(&self) -> MessageRecord {
        MessageRecord {
            exchange: self.exchange.clone(),
            routing_key: self.routing_key.clone(),
            header: self.header.clone(),
            body: self.body.clone(),
        }
    }

    pub fn is_stored(&self) -> bool {
        self.store_id != 0
    }

    /// The `headers` property, decoded (only the headers exchange asks).
    pub fn headers(&self) -> Option<FieldTable> {
        let range = self.info.headers.clone()?;
        let start = range.start.checked_sub(4)?;
        parse_field_table(&self.header[start..range.end]).ok().map(|(_, t)| t)
    }

    /// All properties, decoded, for the rare paths that rewrite one.
    pub fn properties(&self) -> AMQPProperties {
        decode_properties(&self.header).unwrap_or_default()
    }

    pub fn body_size(&self) -> u64 {
        self.body.len() as u64
    }
}
