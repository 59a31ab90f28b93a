//! A published message, shared (never copied) by every queue it is routed to.

use amq_protocol::protocol::basic::AMQPProperties;
use amq_protocol::types::parsing::parse_field_table;
use amq_protocol::types::FieldTable;
use bytes::Bytes;
use std::sync::Arc;

use crate::protocol::properties::{decode_properties, ContentHeader};
use crate::store::{MessageRecord, RecordParts, RecordRef, SharedRecord};

/// A message as the broker keeps it: names and content as they came off the
/// wire, plus what routing needs.
#[derive(Debug)]
pub struct Message {
    /// Exchange name, routing key and content header, back to back, then
    /// the body when it is small: one allocation, which nothing on the
    /// delivery path clones (a `Bytes` made from an exact-size `Vec` costs
    /// no second allocation until its first clone).
    data: Bytes,
    exchange_len: u8,
    routing_key_len: u8,
    /// Where the header ends in `data`.
    meta_len: u32,
    /// The body when it is held apart from `data` (large, or as stored in a
    /// stream chunk); empty when it is the rest of `data`.
    apart: Bytes,
    pub info: ContentHeader,
    /// Its id in the store when it is persisted (persistent, routed to a
    /// durable queue); 0 otherwise. Set before the message is shared.
    pub store_id: u64,
    /// Stored for more than one queue: its references are counted in the
    /// store's `SharedRefs`, not by its one place.
    pub shared: bool,
}

/// Bodies up to this size are copied, with the names and header, into one
/// allocation of their own; a larger one that arrived in one frame stays a
/// slice of the read buffer (one in many frames is the buffer they were
/// gathered in).
pub const COPY_LIMIT: usize = 16 * 1024;

impl Message {
    /// `published` for callers that hold the parts as `Bytes` (the admin
    /// API's publish, tests).
    pub fn new(exchange: Bytes, routing_key: Bytes, header: Bytes, info: ContentHeader, body: Bytes) -> Self {
        Self::published(&exchange, &routing_key, &header, info, body)
    }

    /// A message as published: the names and header are copied (from the
    /// publish that gathered them) into one exact-size allocation, a small
    /// body too, so a queued message holds nothing more; a large body is
    /// kept as it came (`Bytes`: a slice of the read buffer, or the buffer
    /// its frames were gathered in).
    pub fn published(
        exchange: &[u8],
        routing_key: &[u8],
        header: &[u8],
        info: ContentHeader,
        body: Bytes,
    ) -> Self {
        Self::built(exchange, routing_key, header, info, &body, || body.clone())
    }

    /// A message whose body is read in place (a frame's payload): a small
    /// body is copied into the message, a large one copied apart.
    pub fn copied(
        exchange: &[u8],
        routing_key: &[u8],
        header: &[u8],
        info: ContentHeader,
        body: &[u8],
    ) -> Self {
        Self::built(exchange, routing_key, header, info, body, || Bytes::copy_from_slice(body))
    }

    /// A message with new names or header and the body of `from` (a
    /// dead-lettered, moved or re-published copy): a small body is copied
    /// from it, a large one shared, and `from` is left as it was.
    pub fn remade(
        exchange: &[u8],
        routing_key: &[u8],
        header: &[u8],
        info: ContentHeader,
        from: &Message,
    ) -> Self {
        Self::built(exchange, routing_key, header, info, from.body(), || from.body_bytes())
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
        // Exact capacity: `Bytes::from` then keeps the Vec's allocation as it is.
        let mut all = Vec::with_capacity(meta_len + if copy_body { body.len() } else { 0 });
        for part in [exchange, routing_key, header] {
            all.extend_from_slice(part);
        }
        if copy_body {
            all.extend_from_slice(body);
        }
        Message {
            data: Bytes::from(all),
            exchange_len: exchange.len().min(255) as u8,
            routing_key_len: routing_key.len().min(255) as u8,
            meta_len: meta_len as u32,
            apart: if copy_body { Bytes::new() } else { large() },
            info,
            store_id: 0,
            shared: false,
        }
    }

    /// The body.
    pub fn body(&self) -> &[u8] {
        self.body_apart().map_or(&self.data[self.meta_len as usize..], |b| b)
    }

    /// The body when it is held apart from the names and header (a large
    /// one, or a stream record's): a `Bytes` to share without a copy.
    pub fn body_apart(&self) -> Option<&Bytes> {
        (!self.apart.is_empty()).then_some(&self.apart)
    }

    /// The body as a `Bytes` of its own, sharing (not copying) the message's
    /// memory; for the paths that keep or splice it.
    pub fn body_bytes(&self) -> Bytes {
        self.body_apart().cloned().unwrap_or_else(|| self.data.slice(self.meta_len as usize..))
    }

    pub fn exchange(&self) -> &[u8] {
        &self.data[..self.exchange_len as usize]
    }

    pub fn routing_key(&self) -> &[u8] {
        let start = self.exchange_len as usize;
        &self.data[start..start + self.routing_key_len as usize]
    }

    /// The content header payload, forwarded to consumers byte for byte.
    pub fn header(&self) -> &[u8] {
        &self.data[self.exchange_len as usize + self.routing_key_len as usize..self.meta_len as usize]
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
        let meta_len = u32::try_from(meta.len()).ok()?;
        Some(Message {
            data: meta,
            exchange_len,
            routing_key_len,
            meta_len,
            apart: body,
            info,
            store_id: 0,
            shared: false,
        })
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

    /// The message as the store writes it: shared, not copied. The store
    /// holds it until its batch is written, so the message is no longer
    /// held once (routing copies a shared message before it gives it a
    /// store id: `routing.rs`, `unique`).
    pub fn record(self: &Arc<Self>) -> SharedRecord {
        SharedRecord::new(self.clone())
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
        self.body().len() as u64
    }
}

/// Its parts as the store writes them.
impl RecordParts for Message {
    fn record_parts(&self) -> RecordRef<'_> {
        RecordRef {
            exchange: self.exchange(),
            routing_key: self.routing_key(),
            header: self.header(),
            body: self.body(),
        }
    }
}

#[cfg(test)]
mod tests {
    use amq_protocol::types::ShortString;

    use super::*;
    use crate::protocol::properties::encode_header;

    fn parts(body_len: usize) -> (Bytes, Bytes) {
        let props =
            AMQPProperties::default().with_message_id(ShortString::from("id-1")).with_delivery_mode(2);
        let header = encode_header(body_len as u64, &props);
        let body: Bytes = (0..body_len).map(|i| i as u8).collect::<Vec<_>>().into();
        (header, body)
    }

    /// Every part reads back as it went in, whether the body is kept with
    /// the names (small, up to COPY_LIMIT) or apart; a record and a
    /// message made from it agree.
    #[test]
    fn parts_read_back_small_and_large() {
        for len in [0, 1, 100, COPY_LIMIT, COPY_LIMIT + 1, 200_000] {
            let (header, body) = parts(len);
            let info = ContentHeader::scan(&header).unwrap();
            let m = Message::new(
                Bytes::from("amq.direct"),
                Bytes::from("rk"),
                header.clone(),
                info,
                body.clone(),
            );
            assert_eq!(
                (m.exchange(), m.routing_key(), m.header()),
                (&b"amq.direct"[..], &b"rk"[..], &header[..])
            );
            assert_eq!((m.body(), &m.body_bytes()[..], m.body_size()), (&body[..], &body[..], len as u64));
            assert_eq!(m.properties().message_id().as_ref().map(|s| s.as_str()), Some("id-1"));
            assert_eq!(m.apart.is_empty(), len <= COPY_LIMIT, "{len}");

            let m = Arc::new(m);
            let r = m.record().owned();
            assert_eq!(
                (&r.exchange[..], &r.routing_key[..], &r.header[..], &r.body[..]),
                (&b"amq.direct"[..], &b"rk"[..], &header[..], &body[..])
            );
            let back = Message::from_record(7, &r, true).unwrap();
            assert_eq!((back.store_id, back.shared), (7, true));
            assert_eq!(
                (back.exchange(), back.routing_key(), back.header(), back.body()),
                (m.exchange(), m.routing_key(), m.header(), m.body())
            );
        }
    }

    /// A remade message takes new names and header and the body of the
    /// other: a small one copied, a large one shared (the same memory).
    #[test]
    fn remade_keeps_the_body_and_takes_new_names() {
        for len in [0, 10, COPY_LIMIT + 1] {
            let (header, body) = parts(len);
            let info = ContentHeader::scan(&header).unwrap();
            let from = Message::new(Bytes::from("ex"), Bytes::from("rk"), header.clone(), info.clone(), body);
            let m = Message::remade(b"dlx", b"dead", &header, info, &from);
            assert_eq!((m.exchange(), m.routing_key(), m.header()), (&b"dlx"[..], &b"dead"[..], &header[..]));
            assert_eq!(m.body(), from.body());
            let shared = m.body_apart().map(|b| b.as_ptr()) == from.body_apart().map(|b| b.as_ptr());
            assert!(shared && (m.body_apart().is_some() == (len > COPY_LIMIT)), "{len}");
        }
    }

    /// A stream record's message: names and header in one `Bytes`, the body
    /// in another (empty bodies included).
    #[test]
    fn stored_parts_read_back() {
        for len in [0, 5, COPY_LIMIT + 1] {
            let (header, body) = parts(len);
            let mut meta = b"exrk".to_vec();
            meta.extend_from_slice(&header);
            let m = Message::from_stored_parts(meta.into(), 2, 2, body.clone()).unwrap();
            assert_eq!((m.exchange(), m.routing_key(), m.header()), (&b"ex"[..], &b"rk"[..], &header[..]));
            assert_eq!((m.body(), &m.body_bytes()[..]), (&body[..], &body[..]));
        }
        assert!(Message::from_stored_parts(Bytes::from_static(b"exrk\x00"), 2, 2, Bytes::new()).is_none());
    }
}
