//! A stream message's content header as consumers get it: the publisher's
//! bytes with `x-stream-offset` (a signed 64-bit `l`, as RabbitMQ sends it)
//! added to its header table, spliced in while the record is written, so
//! a delivery forwards stored bytes as they are. Pure.

use bytes::{BufMut, BytesMut};

use crate::protocol::properties::{ContentHeader, PROPERTIES_OFFSET};

const CONTENT_TYPE: u16 = 1 << 15;
const CONTENT_ENCODING: u16 = 1 << 14;
const HEADERS: u16 = 1 << 13;
const KEY: &[u8] = b"x-stream-offset";
/// The entry: key (short string), type `l`, value.
const ENTRY_LEN: usize = 1 + KEY.len() + 1 + 8;

/// Writes `header` (a valid content header, `info` its scan) to `out`
/// with `x-stream-offset` = `offset` as the table's last entry.
pub fn with_offset(header: &[u8], info: &ContentHeader, offset: u64, out: &mut BytesMut) {
    let entry = |out: &mut BytesMut| {
        out.put_u8(KEY.len() as u8);
        out.put_slice(KEY);
        out.put_u8(b'l');
        out.put_i64(offset as i64);
    };
    if let Some(span) = info.headers {
        // A table is there: its length grows by the entry, added at its end.
        let r = span.range();
        let len_at = r.start - 4;
        out.put_slice(&header[..len_at]);
        out.put_u32((r.len() + ENTRY_LEN) as u32);
        out.put_slice(&header[r.start..r.end]);
        entry(out);
        out.put_slice(&header[r.end..]);
        return;
    }
    // No table: the headers flag is set and one goes after the content
    // type and encoding (the properties before it in wire order).
    let flags = u16::from_be_bytes([header[PROPERTIES_OFFSET], header[PROPERTIES_OFFSET + 1]]);
    let mut at = PROPERTIES_OFFSET + 2;
    for bit in [CONTENT_TYPE, CONTENT_ENCODING] {
        if flags & bit != 0 {
            at += 1 + usize::from(header[at]);
        }
    }
    out.put_slice(&header[..PROPERTIES_OFFSET]);
    out.put_u16(flags | HEADERS);
    out.put_slice(&header[PROPERTIES_OFFSET + 2..at]);
    out.put_u32(ENTRY_LEN as u32);
    entry(out);
    out.put_slice(&header[at..]);
}

#[cfg(test)]
mod tests {
    use amq_protocol::protocol::basic::AMQPProperties;
    use amq_protocol::types::{AMQPValue, FieldTable, ShortString};

    use super::*;
    use crate::protocol::properties::{decode_properties, encode_header};

    fn round_trip(props: AMQPProperties) -> AMQPProperties {
        let header = encode_header(5, &props);
        let info = ContentHeader::scan(&header).unwrap();
        let mut out = BytesMut::new();
        with_offset(&header, &info, 42, &mut out);
        ContentHeader::scan(&out).expect("still a valid header");
        decode_properties(&out).unwrap()
    }

    #[test]
    fn the_offset_is_added_to_an_existing_table_or_a_new_one() {
        let mut t = FieldTable::default();
        t.insert(ShortString::from("a"), AMQPValue::LongString("b".into()));
        let with = round_trip(
            AMQPProperties::default()
                .with_content_type("text/plain".into())
                .with_headers(t)
                .with_message_id("m".into()),
        );
        let h = with.headers().as_ref().unwrap().inner().clone();
        assert_eq!(h.get("x-stream-offset"), Some(&AMQPValue::LongLongInt(42)));
        assert_eq!(h.get("a"), Some(&AMQPValue::LongString("b".into())));
        assert_eq!(with.message_id().as_ref().map(|m| m.as_str()), Some("m"));
        for props in [
            AMQPProperties::default(),
            AMQPProperties::default().with_content_encoding("gzip".into()).with_delivery_mode(2),
            AMQPProperties::default()
                .with_content_type("t".into())
                .with_content_encoding("e".into())
                .with_priority(3),
        ] {
            let back = round_trip(props.clone());
            let h = back.headers().as_ref().unwrap().inner().clone();
            assert_eq!(h.get("x-stream-offset"), Some(&AMQPValue::LongLongInt(42)));
            assert_eq!(back.content_type(), props.content_type());
            assert_eq!(back.content_encoding(), props.content_encoding());
            assert_eq!((back.delivery_mode(), back.priority()), (props.delivery_mode(), props.priority()));
        }
    }
}
