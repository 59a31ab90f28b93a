//! The content header: class, body size and the 14 basic properties.
//!
//! Messages keep the header exactly as the publisher sent it and forward
//! those bytes to consumers, so header tables keep their key order and no
//! property is re-encoded. `scan` validates the properties and notes where
//! the few the broker acts on are, without allocating.

use std::ops::Range;

use amq_protocol::frame::WriteContext;
use amq_protocol::protocol::basic::{gen_properties, parse_properties, AMQPProperties};
use bytes::Bytes;

use super::table::{check_table, TableFault};
use super::{AmqpError, CLASS_BASIC};

/// Bytes before the property flags: class id, weight, body size.
pub const PROPERTIES_OFFSET: usize = 12;

// Property flag bits, most significant first, in wire order.
const CONTENT_TYPE: u16 = 1 << 15;
const CONTENT_ENCODING: u16 = 1 << 14;
const HEADERS: u16 = 1 << 13;
const DELIVERY_MODE: u16 = 1 << 12;
const PRIORITY: u16 = 1 << 11;
const CORRELATION_ID: u16 = 1 << 10;
const REPLY_TO: u16 = 1 << 9;
const EXPIRATION: u16 = 1 << 8;
const MESSAGE_ID: u16 = 1 << 7;
const TIMESTAMP: u16 = 1 << 6;
const TYPE: u16 = 1 << 5;
const USER_ID: u16 = 1 << 4;
const APP_ID: u16 = 1 << 3;
const CLUSTER_ID: u16 = 1 << 2;

/// Where a property's bytes are in the header: 8 bytes where a `Range`
/// takes 16 (every queued message carries five of these).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Span {
    start: u32,
    end: u32,
}

impl Span {
    fn of(r: Range<usize>) -> Span {
        Span { start: r.start as u32, end: r.end as u32 }
    }

    pub fn range(self) -> Range<usize> {
        self.start as usize..self.end as usize
    }
}

/// What the broker needs to know of a content header, as offsets into it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ContentHeader {
    pub body_size: u64,
    pub delivery_mode: u8,
    pub priority: Option<u8>,
    /// The encoded header table, without its length prefix.
    pub headers: Option<Span>,
    pub reply_to: Option<Span>,
    pub expiration: Option<Span>,
    pub user_id: Option<Span>,
}

impl ContentHeader {
    /// Parses and validates a content header frame's payload.
    pub fn scan(payload: &[u8]) -> Result<ContentHeader, AmqpError> {
        let bad = || AmqpError::frame_error("malformed content header frame");
        if payload.len() < PROPERTIES_OFFSET + 2 {
            return Err(bad());
        }
        let class = u16::from_be_bytes([payload[0], payload[1]]);
        if class != CLASS_BASIC {
            return Err(AmqpError::unexpected_frame(format!(
                "expected content header for class {CLASS_BASIC}, got one for class {class} instead"
            )));
        }
        if payload[2..4] != [0, 0] {
            // The weight field must be 0.
            return Err(AmqpError::unexpected_frame(
                "expected content header for class 60, got non content header frame instead",
            ));
        }
        let body_size = u64::from_be_bytes(payload[4..12].try_into().expect("8 bytes"));
        let flags = u16::from_be_bytes([payload[12], payload[13]]);
        if flags & 0b11 != 0 {
            // Bit 0 would announce a second flag word; basic has only 14 properties.
            return Err(bad());
        }
        let mut h = ContentHeader { body_size, ..Default::default() };
        let mut pos = PROPERTIES_OFFSET + 2;
        let short = |pos: &mut usize| -> Result<Range<usize>, AmqpError> {
            let len = *payload.get(*pos).ok_or_else(bad)? as usize;
            let r = *pos + 1..*pos + 1 + len;
            if r.end > payload.len() {
                return Err(bad());
            }
            *pos = r.end;
            Ok(r)
        };
        let fixed = |pos: &mut usize, n: usize| -> Result<Range<usize>, AmqpError> {
            let r = *pos..*pos + n;
            if r.end > payload.len() {
                return Err(bad());
            }
            *pos = r.end;
            Ok(r)
        };
        // Set bits only, most significant first (wire order): most
        // headers carry two or three of the 14 properties.
        let mut rest = flags;
        while rest != 0 {
            let bit = 1u16 << (15 - rest.leading_zeros());
            rest &= !bit;
            match bit {
                HEADERS => {
                    let len_at = fixed(&mut pos, 4)?;
                    let len = u32::from_be_bytes(payload[len_at].try_into().expect("4 bytes"));
                    let r = fixed(&mut pos, len as usize)?;
                    match check_table(&payload[r.clone()]) {
                        Ok(()) => {}
                        // Well formed but refused: the channel's error, not the stream's.
                        Err(TableFault::TooDeep) => {
                            return Err(AmqpError::precondition_failed(TableFault::too_deep_text(
                                "the headers property",
                            )))
                        }
                        Err(TableFault::Malformed) => return Err(bad()),
                    }
                    h.headers = Some(Span::of(r));
                }
                DELIVERY_MODE => h.delivery_mode = payload[fixed(&mut pos, 1)?.start],
                PRIORITY => h.priority = Some(payload[fixed(&mut pos, 1)?.start]),
                TIMESTAMP => {
                    fixed(&mut pos, 8)?;
                }
                REPLY_TO => h.reply_to = Some(Span::of(short(&mut pos)?)),
                EXPIRATION => h.expiration = Some(Span::of(short(&mut pos)?)),
                USER_ID => h.user_id = Some(Span::of(short(&mut pos)?)),
                CONTENT_TYPE | CONTENT_ENCODING | CORRELATION_ID | MESSAGE_ID | TYPE | APP_ID
                | CLUSTER_ID => {
                    short(&mut pos)?;
                }
                _ => unreachable!("all 14 property bits are handled"),
            }
        }
        if pos != payload.len() {
            return Err(bad());
        }
        Ok(h)
    }

    pub fn persistent(&self) -> bool {
        self.delivery_mode == 2
    }
}

/// Decodes every property (for the rare paths that rewrite one). A short
/// string that is not UTF-8 (Warren, like RabbitMQ, forwards such headers
/// byte for byte, but amq-protocol's strings are UTF-8) comes back with
/// each invalid byte as `?`, rather than every property being lost.
pub fn decode_properties(payload: &[u8]) -> Option<AMQPProperties> {
    let parse = |p: &[u8]| parse_properties(&p[PROPERTIES_OFFSET..]).ok().map(|(_, p)| p);
    parse(payload).or_else(|| parse(&utf8_short_strings(payload)?))
}

/// A copy of a scanned header with the invalid UTF-8 bytes of its short
/// string properties replaced by `?` (same lengths, so nothing moves).
fn utf8_short_strings(payload: &[u8]) -> Option<Vec<u8>> {
    let mut out = payload.to_vec();
    let flags = u16::from_be_bytes([*payload.get(12)?, *payload.get(13)?]);
    let mut pos = PROPERTIES_OFFSET + 2;
    for bit in (2..16).rev().map(|b| 1u16 << b).filter(|bit| flags & bit != 0) {
        pos = match bit {
            HEADERS => pos + 4 + u32::from_be_bytes(payload.get(pos..pos + 4)?.try_into().ok()?) as usize,
            DELIVERY_MODE | PRIORITY => pos + 1,
            TIMESTAMP => pos + 8,
            _ => {
                let len = *payload.get(pos)? as usize;
                let text = out.get_mut(pos + 1..pos + 1 + len)?;
                let mut at = 0;
                while let Err(e) = std::str::from_utf8(&text[at..]) {
                    let bad = at + e.valid_up_to();
                    let n = e.error_len().unwrap_or(text.len() - bad);
                    text[bad..bad + n].fill(b'?');
                    at = bad + n;
                }
                pos + 1 + len
            }
        };
    }
    Some(out)
}

/// Encodes a content header payload from decoded properties.
pub fn encode_header(body_size: u64, props: &AMQPProperties) -> Bytes {
    let mut v = Vec::with_capacity(64);
    v.extend_from_slice(&CLASS_BASIC.to_be_bytes());
    v.extend_from_slice(&0u16.to_be_bytes());
    v.extend_from_slice(&body_size.to_be_bytes());
    let ctx = gen_properties(props)(WriteContext::from(v)).expect("a Vec grows as needed");
    Bytes::from(ctx.into_inner().0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use amq_protocol::types::{AMQPValue, FieldTable};

    #[test]
    fn short_strings_that_are_not_utf8_do_not_lose_the_other_properties() {
        let props = AMQPProperties::default()
            .with_content_type("text/plain".into())
            .with_message_id("id-12".into())
            .with_delivery_mode(2);
        let mut header = encode_header(3, &props).to_vec();
        // Make the content type's "x" and the message id's "-" invalid UTF-8.
        let at = header.windows(10).position(|w| w == b"text/plain").unwrap();
        header[at + 5] = 0xff;
        let at = header.windows(5).position(|w| w == b"id-12").unwrap();
        header[at + 2] = 0xc3;
        assert!(ContentHeader::scan(&header).is_ok());
        let decoded = decode_properties(&header).expect("decoded with the bad bytes replaced");
        assert_eq!(decoded.content_type().as_ref().map(|s| s.as_str()), Some("text/?lain"));
        assert_eq!(decoded.message_id().as_ref().map(|s| s.as_str()), Some("id?12"));
        assert_eq!(decoded.delivery_mode(), &Some(2));
    }

    #[test]
    fn scans_what_it_encodes() {
        let mut headers = FieldTable::default();
        headers.insert("x".into(), AMQPValue::LongInt(7));
        let props = AMQPProperties::default()
            .with_content_type("text/plain".into())
            .with_headers(headers)
            .with_delivery_mode(2)
            .with_priority(5)
            .with_reply_to("amq.rabbitmq.reply-to".into())
            .with_expiration("1000".into())
            .with_timestamp(42)
            .with_app_id("app".into());
        let raw = encode_header(11, &props);
        let h = ContentHeader::scan(&raw).unwrap();
        assert_eq!(h.body_size, 11);
        assert!(h.persistent());
        assert_eq!(h.priority, Some(5));
        assert_eq!(&raw[h.reply_to.unwrap().range()], b"amq.rabbitmq.reply-to");
        assert_eq!(&raw[h.expiration.unwrap().range()], b"1000");
        assert_eq!(decode_properties(&raw).unwrap(), props);
        for cut in PROPERTIES_OFFSET..raw.len() {
            assert!(ContentHeader::scan(&raw[..cut]).is_err(), "cut at {cut} accepted");
        }
    }

    #[test]
    fn scans_all_fourteen_properties_in_wire_order() {
        let mut headers = FieldTable::default();
        headers.insert("k".into(), AMQPValue::LongString("v".into()));
        let props = AMQPProperties::default()
            .with_content_type("ct".into())
            .with_content_encoding("ce".into())
            .with_headers(headers)
            .with_delivery_mode(1)
            .with_priority(9)
            .with_correlation_id("corr".into())
            .with_reply_to("rt".into())
            .with_expiration("60".into())
            .with_message_id("mid".into())
            .with_timestamp(7)
            .with_type("ty".into())
            .with_user_id("guest".into())
            .with_app_id("ap".into())
            .with_cluster_id("cl".into());
        let raw = encode_header(3, &props);
        let h = ContentHeader::scan(&raw).unwrap();
        assert_eq!((h.delivery_mode, h.priority), (1, Some(9)));
        let text = |s: Option<Span>| &raw[s.unwrap().range()];
        assert_eq!(
            (text(h.reply_to), text(h.expiration), text(h.user_id)),
            (&b"rt"[..], &b"60"[..], &b"guest"[..])
        );
        assert_eq!(&raw[h.headers.unwrap().range()], &b"\x01kS\x00\x00\x00\x01v"[..]);
    }

    #[test]
    fn refuses_other_classes() {
        let mut raw = encode_header(0, &AMQPProperties::default()).to_vec();
        raw[1] = 50;
        assert_eq!(ContentHeader::scan(&raw).unwrap_err().code(), 505);
    }
}
