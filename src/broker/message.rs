//! A published message, shared (never copied) by every queue it is routed to.

use amq_protocol::protocol::basic::AMQPProperties;
use amq_protocol::types::parsing::parse_field_table;
use amq_protocol::types::FieldTable;
use bytes::{Bytes, BytesMut};

use crate::protocol::properties::{decode_properties, ContentHeader};
use crate::store::{MessageRecord, RecordRef};

/// A message as the broker keeps it: names and content as they came off the
/// wire, plus what routing needs.
#[derive(Debug)]
pub struct Message {
    /// Exchange name, routing key and content header, back to back (one
    /// `Bytes` instead of three keeps every queued message smaller).
    meta: Bytes,
    exchange_len: u8,
    routing_key_len: u8,
    pub body: Bytes,
    pub info: ContentHeader,
    /// Its id in the store when it is persisted (persistent, routed to a
    /// durable queue); 0 otherwise. Set before the message is shared.
    pub store_id: u64,
    /// Stored for more than one queue: its references are counted in the
    /// store's `SharedRefs`, not by its one place.
    pub shared: bool,
}

/// Bodies up to this size are copied, with the names and header, into one
/// allocation of their own; larger ones stay slices of the read buffer.
const COPY_LIMIT: usize = 16 * 1024;

impl Message {
    /// Builds a message from slices of a connection's read buffer, copying
    /// what it keeps into one exact-size allocation (the body too, when
    /// small), so a queued message does not keep the 64 KiB read buffer
    /// alive and the connection can reuse that buffer in place.
    pub fn new(exchange: Bytes, routing_key: Bytes, header: Bytes, info: ContentHeader, body: Bytes) -> Self {
        Self::built(&exchange, &routing_key, &header, info, &body, || body.clone())
    }

    /// Copies the names, the header and a small body into one allocation;
    /// a large body is what `large` makes of it (shared, or copied once).
    fn built(
        exchange: &[u8],
        routing_key: &[u8],
        header: &[u8],
        info: ContentHeader,
        body: &[u8],
        large: impl FnOnce() -> Bytes,
    ) -> Self {
        let meta_len = exchange.len() + routing_key.len() + header.len();
        let copy_body = body.len() <= COPY_LIMIT;
        let mut all = BytesMut::with_capacity(meta_len + if copy_body { body.len() } else { 0 });
        for part in [exchange, routing_key, header] {
            all.extend_from_slice(part);
        }
        if copy_body {
            all.extend_from_slice(body);
        }
        let mut all = all.freeze();
        let meta = all.split_to(meta_len);
        Message {
            meta,
            exchange_len: exchange.len().min(255) as u8,
            routing_key_len: routing_key.len().min(255) as u8,
            body: if copy_body { all } else { large() },
            info,
            store_id: 0,
            shared: false,
        }
    }

    pub fn exchange(&self) -> &[u8] {
        &self.meta[..self.exchange_len as usize]
    }

    pub fn routing_key(&self) -> &[u8] {
        let start = self.exchange_len as usize;
        &self.meta[start..start + self.routing_key_len as usize]
    }

    /// The content header payload, forwarded to consumers byte for byte.
    pub fn header(&self) -> &[u8] {
        &self.meta[self.exchange_len as usize + self.routing_key_len as usize..]
    }

    /// A message of a stream record: names and header back to back in
    /// `meta`, as stored (no copy); None if the header is damaged.
    pub fn from_stored_parts(
        meta: Bytes,
        exchange_len: u8,
        routing_key_len: u8,
        body: Bytes,
    ) -> Option<Message> {
        let info =
            ContentHeader::scan(&meta[usize::from(exchange_len) + usize::from(routing_key_len)..]).ok()?;
        Some(Message { meta, exchange_len, routing_key_len, body, info, store_id: 0, shared: false })
    }

    /// A message read back from the store.
    pub fn from_record(id: u64, r: &MessageRecord, shared: bool) -> Option<Message> {
        Self::stored(id, r.parts(), shared, || r.body.clone())
    }

    /// A message read in place from the store's buffer (a page read
    /// back): copied out once.
    pub fn from_parts(id: u64, r: RecordRef<'_>, shared: bool) -> Option<Message> {
        Self::stored(id, r, shared, || Bytes::copy_from_slice(r.body))
    }

    fn stored(id: u64, r: RecordRef<'_>, shared: bool, large: impl FnOnce() -> Bytes) -> Option<Message> {
        let info = ContentHeader::scan(r.header).ok()?;
        let mut m = Message::built(r.exchange, r.routing_key, r.header, info, r.body, large);
        m.store_id = id;
        m.shared = shared;
        Some(m)
    }

    pub fn record(&self) -> MessageRecord {
        let (e, k) = (self.exchange_len as usize, self.routing_key_len as usize);
        MessageRecord {
            exchange: self.meta.slice(..e),
            routing_key: self.meta.slice(e..e + k),
            header: self.meta.slice(e + k..),
            body: self.body.clone(),
        }
    }

    pub fn is_stored(&self) -> bool {
        self.store_id != 0
    }

    /// The `headers` property, decoded (only the headers exchange asks).
    pub fn headers(&self) -> Option<FieldTable> {
        let range = self.info.headers?.range();
        let start = range.start.checked_sub(4)?;
        parse_field_table(&self.header()[start..range.end]).ok().map(|(_, t)| t)
    }

    /// Whether the `headers` property has this key (no allocation).
    pub fn has_header(&self, key: &[u8]) -> bool {
        self.info
            .headers
            .is_some_and(|r| crate::protocol::table::find(&self.header()[r.range()], key).is_some())
    }

    /// All properties, decoded, for the rare paths that rewrite one.
    pub fn properties(&self) -> AMQPProperties {
        decode_properties(self.header()).unwrap_or_default()
    }

    /// The `expiration` property as milliseconds, if it is a valid one.
    pub fn expiration_ms(&self) -> Option<u64> {
        let text = &self.header()[self.info.expiration?.range()];
        super::queue_args::parse_expiration(text).ok()
    }

    pub fn body_size(&self) -> u64 {
        self.body.len() as u64
    }
}
