//! Durable records and their binary encoding (length-prefixed fields;
//! argument tables in AMQP's own encoding). Pure.

use amq_protocol::frame::WriteContext;
use amq_protocol::types::generation::gen_field_table;
use amq_protocol::types::parsing::parse_field_table;
use amq_protocol::types::FieldTable;
use bytes::Bytes;
use std::sync::Arc;

#[derive(Debug, Clone, PartialEq)]
pub struct ExchangeRecord {
    pub vhost: String,
    pub name: String,
    pub kind: String,
    pub auto_delete: bool,
    pub internal: bool,
    pub arguments: FieldTable,
}

#[derive(Debug, Clone, PartialEq)]
pub struct QueueRecord {
    pub vhost: String,
    pub name: String,
    /// Names the queue in index keys; never reused.
    pub id: u64,
    pub auto_delete: bool,
    pub arguments: FieldTable,
}

#[derive(Debug, Clone, PartialEq)]
pub struct BindingRecord {
    pub vhost: String,
    pub source: String,
    /// A queue, or an exchange (exchange-to-exchange binding).
    pub to_queue: bool,
    pub destination: String,
    pub key: String,
    pub arguments: FieldTable,
}

/// A message as stored: names, content header and body as on the wire.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MessageRecord {
    pub exchange: Bytes,
    pub routing_key: Bytes,
    pub header: Bytes,
    pub body: Bytes,
}

/// A stored message read in place: its parts borrowed from the store's
/// buffer (a page read back is made into a message with one copy).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordRef<'a> {
    pub exchange: &'a [u8],
    pub routing_key: &'a [u8],
    pub header: &'a [u8],
    pub body: &'a [u8],
}

impl<'a> RecordRef<'a> {
    /// The parts of an encoded `MessageRecord`; None if it is damaged.
    pub fn decode(b: &'a [u8]) -> Option<Self> {
        let mut r = Reader(b);
        let rec =
            RecordRef { exchange: r.bytes()?, routing_key: r.bytes()?, header: r.bytes()?, body: r.bytes()? };
        r.done().then_some(rec)
    }

    pub fn encode_into(self, out: &mut Vec<u8>) {
        out.reserve(16 + self.exchange.len() + self.routing_key.len() + self.header.len() + self.body.len());
        let mut w = Writer(std::mem::take(out));
        w.bytes(self.exchange).bytes(self.routing_key).bytes(self.header).bytes(self.body);
        *out = w.0;
    }

    pub fn owned(self) -> MessageRecord {
        let own = Bytes::copy_from_slice;
        MessageRecord {
            exchange: own(self.exchange),
            routing_key: own(self.routing_key),
            header: own(self.header),
            body: own(self.body),
        }
    }
}

/// Whatever holds a message's parts as the store writes them: a queue's
/// message, or a record decoded from disk.
pub trait RecordParts: Send + Sync {
    fn record_parts(&self) -> RecordRef<'_>;
}

impl RecordParts for MessageRecord {
    fn record_parts(&self) -> RecordRef<'_> {
        self.parts()
    }
}

/// A message on its way to the store: a shared reference to what holds
/// it, not a copy, and 16 bytes in an `Op` (four `Bytes` were 128, moved
/// through the writer's channel and batch for every persistent message).
#[derive(Clone)]
pub struct SharedRecord(Arc<dyn RecordParts>);

impl SharedRecord {
    pub fn new(parts: Arc<dyn RecordParts>) -> Self {
        SharedRecord(parts)
    }

    pub fn parts(&self) -> RecordRef<'_> {
        self.0.record_parts()
    }

    /// Its own copy of the parts.
    pub fn owned(&self) -> MessageRecord {
        self.parts().owned()
    }

    pub fn encode_into(&self, out: &mut Vec<u8>) {
        self.parts().encode_into(out)
    }
}

impl From<MessageRecord> for SharedRecord {
    fn from(r: MessageRecord) -> Self {
        SharedRecord(Arc::new(r))
    }
}

impl std::fmt::Debug for SharedRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // As a `MessageRecord` prints (byte strings, not lists of numbers).
        self.owned().fmt(f)
    }
}

impl PartialEq for SharedRecord {
    fn eq(&self, other: &Self) -> bool {
        self.parts() == other.parts()
    }
}

impl MessageRecord {
    pub fn parts(&self) -> RecordRef<'_> {
        RecordRef {
            exchange: &self.exchange,
            routing_key: &self.routing_key,
            header: &self.header,
            body: &self.body,
        }
    }
}

/// Appends fields; the reading side is `Reader`.
#[derive(Default)]
pub struct Writer(pub Vec<u8>);

impl Writer {
    pub fn bytes(&mut self, b: &[u8]) -> &mut Self {
        self.0.extend_from_slice(&(b.len() as u32).to_be_bytes());
        self.0.extend_from_slice(b);
        self
    }
    pub fn str(&mut self, s: &str) -> &mut Self {
        self.bytes(s.as_bytes())
    }
    pub fn u64(&mut self, v: u64) -> &mut Self {
        self.0.extend_from_slice(&v.to_be_bytes());
        self
    }
    pub fn flag(&mut self, v: bool) -> &mut Self {
        self.0.push(u8::from(v));
        self
    }
    pub fn table(&mut self, t: &FieldTable) -> &mut Self {
        let encoded = gen_field_table(t)(WriteContext::from(Vec::new())).expect("a Vec grows").into_inner().0;
        self.bytes(&encoded)
    }
}

pub struct Reader<'a>(pub &'a [u8]);

impl<'a> Reader<'a> {
    pub fn bytes(&mut self) -> Option<&'a [u8]> {
        let len = u32::from_be_bytes(self.0.get(..4)?.try_into().ok()?) as usize;
        let b = self.0.get(4..4 + len)?;
        self.0 = &self.0[4 + len..];
        Some(b)
    }
    pub fn str(&mut self) -> Option<String> {
        String::from_utf8(self.bytes()?.to_vec()).ok()
    }
    pub fn u64(&mut self) -> Option<u64> {
        let v = u64::from_be_bytes(self.0.get(..8)?.try_into().ok()?);
        self.0 = &self.0[8..];
        Some(v)
    }
    pub fn flag(&mut self) -> Option<bool> {
        let (&b, rest) = self.0.split_first()?;
        self.0 = rest;
        Some(b != 0)
    }
    pub fn table(&mut self) -> Option<FieldTable> {
        let b = self.bytes()?;
        parse_field_table(b).ok().map(|(_, t)| t)
    }
    pub fn done(&self) -> bool {
        self.0.is_empty()
    }
}

impl ExchangeRecord {
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::default();
        w.str(&self.vhost).str(&self.name).str(&self.kind).flag(self.auto_delete).flag(self.internal);
        w.table(&self.arguments);
        w.0
    }
    pub fn decode(b: &[u8]) -> Option<Self> {
        let mut r = Reader(b);
        let rec = ExchangeRecord {
            vhost: r.str()?,
            name: r.str()?,
            kind: r.str()?,
            auto_delete: r.flag()?,
            internal: r.flag()?,
            arguments: r.table()?,
        };
        r.done().then_some(rec)
    }
}

impl QueueRecord {
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::default();
        w.str(&self.vhost).str(&self.name).u64(self.id).flag(self.auto_delete).table(&self.arguments);
        w.0
    }
    pub fn decode(b: &[u8]) -> Option<Self> {
        let mut r = Reader(b);
        let rec = QueueRecord {
            vhost: r.str()?,
            name: r.str()?,
            id: r.u64()?,
            auto_delete: r.flag()?,
            arguments: r.table()?,
        };
        r.done().then_some(rec)
    }
}

impl BindingRecord {
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::default();
        w.str(&self.vhost).str(&self.source).flag(self.to_queue).str(&self.destination).str(&self.key);
        w.table(&self.arguments);
        w.0
    }
    pub fn decode(b: &[u8]) -> Option<Self> {
        let mut r = Reader(b);
        let rec = BindingRecord {
            vhost: r.str()?,
            source: r.str()?,
            to_queue: r.flag()?,
            destination: r.str()?,
            key: r.str()?,
            arguments: r.table()?,
        };
        r.done().then_some(rec)
    }
}

impl MessageRecord {
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.parts().encode_into(&mut out);
        out
    }
    pub fn decode(b: &[u8]) -> Option<Self> {
        Self::decode_shared(&Bytes::copy_from_slice(b))
    }

    /// Decodes without copying: the fields are slices of `b`.
    pub fn decode_shared(b: &Bytes) -> Option<Self> {
        let r = RecordRef::decode(b)?;
        let part = |p| b.slice_ref(p);
        Some(MessageRecord {
            exchange: part(r.exchange),
            routing_key: part(r.routing_key),
            header: part(r.header),
            body: part(r.body),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use amq_protocol::types::AMQPValue;

    #[test]
    fn records_round_trip_and_truncation_is_detected() {
        let mut args = FieldTable::default();
        args.insert("x-max-length".into(), AMQPValue::LongInt(10));
        let q = QueueRecord {
            vhost: "/".into(),
            name: "q".into(),
            id: 7,
            auto_delete: true,
            arguments: args.clone(),
        };
        assert_eq!(QueueRecord::decode(&q.encode()), Some(q.clone()));
        let e = ExchangeRecord {
            vhost: "/".into(),
            name: "x".into(),
            kind: "topic".into(),
            auto_delete: false,
            internal: true,
            arguments: args.clone(),
        };
        assert_eq!(ExchangeRecord::decode(&e.encode()), Some(e.clone()));
        let b = BindingRecord {
            vhost: "/".into(),
            source: "x".into(),
            to_queue: true,
            destination: "q".into(),
            key: "a.#".into(),
            arguments: args,
        };
        assert_eq!(BindingRecord::decode(&b.encode()), Some(b.clone()));
        let m = MessageRecord {
            exchange: Bytes::from_static(b"x"),
            routing_key: Bytes::from_static(b"a.b"),
            header: Bytes::from_static(b"\x00\x3c\x00\x00"),
            body: Bytes::from_static(b"hello"),
        };
        let enc = m.encode();
        assert_eq!(MessageRecord::decode(&enc), Some(m));
        assert_eq!(MessageRecord::decode(&enc[..enc.len() - 1]), None);
        assert_eq!(QueueRecord::decode(&q.encode()[1..]), None);
    }
}
