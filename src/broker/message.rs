//! A published message, shared (never copied) by every queue it is routed to.

use amq_protocol::protocol::basic::AMQPProperties;
use amq_protocol::types::parsing::parse_field_table;
use amq_protocol::types::FieldTable;
use bytes::{Bytes, BytesMut};

use crate::protocol::properties::{decode_properties, ContentHeader};

/// A message as the broker keeps it: names and content as they came off the
/// wire (slices of the publisher's read buffer), plus what routing needs.
#[derive(Debug, Clone)]
pub struct Message {
    pub exchange: Bytes,
    pub routing_key: Bytes,
    /// The content header payload, forwarded to consumers byte for byte.
    pub header: Bytes,
    pub body: Bytes,
    pub info: ContentHeader,
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
            return Message { exchange, routing_key, header, body, info };
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
        }
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
