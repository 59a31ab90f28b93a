//! A published message, shared (never copied) by every queue it is routed to.

use amq_protocol::protocol::basic::AMQPProperties;
use amq_protocol::types::parsing::parse_field_table;
use amq_protocol::types::FieldTable;
use bytes::Bytes;

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

impl Message {
    pub fn new(exchange: Bytes, routing_key: Bytes, header: Bytes, info: ContentHeader, body: Bytes) -> Self {
        Message { exchange, routing_key, header, body, info }
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
