//! Writing frames into a connection's outbound buffer.
//!
//! Everything is appended to one `Vec<u8>` that the connection flushes when
//! it has nothing else to do, so many frames share one socket write.
//! Deliveries are written by hand: amq-protocol's generic writer allocates
//! per call, and this is the broker's hottest path.

use amq_protocol::frame::{gen_frame, AMQPFrame, WriteContext};
use amq_protocol::protocol::AMQPClass;

use super::{CLASS_BASIC, FRAME_BODY, FRAME_END, FRAME_HEADER, FRAME_HEARTBEAT, FRAME_METHOD};

/// Appends a method frame produced by amq-protocol.
pub fn method(out: &mut Vec<u8>, channel: u16, class: &AMQPClass) {
    let frame = AMQPFrame::Method(channel, class.clone());
    let buf = std::mem::take(out);
    let ctx = gen_frame(&frame)(WriteContext::from(buf)).expect("a Vec grows as needed");
    *out = ctx.into_inner().0;
}

pub fn heartbeat(out: &mut Vec<u8>) {
    out.extend_from_slice(&[FRAME_HEARTBEAT, 0, 0, 0, 0, 0, 0, FRAME_END]);
}

/// Starts a frame; returns the position of its size field for `end_frame`.
fn begin_frame(out: &mut Vec<u8>, kind: u8, channel: u16) -> usize {
    out.push(kind);
    out.extend_from_slice(&channel.to_be_bytes());
    let at = out.len();
    out.extend_from_slice(&[0; 4]);
    at
}

fn end_frame(out: &mut Vec<u8>, size_at: usize) {
    let size = (out.len() - size_at - 4) as u32;
    out[size_at..size_at + 4].copy_from_slice(&size.to_be_bytes());
    out.push(FRAME_END);
}

fn short_str(out: &mut Vec<u8>, s: &[u8]) {
    // Names are validated to at most 255 bytes where they enter the broker.
    let len = s.len().min(255);
    out.push(len as u8);
    out.extend_from_slice(&s[..len]);
}

/// `basic.deliver`.
pub fn deliver(
    out: &mut Vec<u8>,
    channel: u16,
    consumer_tag: &[u8],
    delivery_tag: u64,
    redelivered: bool,
    exchange: &[u8],
    routing_key: &[u8],
) {
    let at = begin_frame(out, FRAME_METHOD, channel);
    out.extend_from_slice(&[0, CLASS_BASIC as u8, 0, 60]);
    short_str(out, consumer_tag);
    out.extend_from_slice(&delivery_tag.to_be_bytes());
    out.push(u8::from(redelivered));
    short_str(out, exchange);
    short_str(out, routing_key);
    end_frame(out, at);
}

/// `basic.publish` (not mandatory, not immediate).
pub fn basic_publish(out: &mut Vec<u8>, channel: u16, exchange: &[u8], routing_key: &[u8]) {
    let at = begin_frame(out, FRAME_METHOD, channel);
    out.extend_from_slice(&[0, CLASS_BASIC as u8, 0, 40, 0, 0]);
    short_str(out, exchange);
    short_str(out, routing_key);
    out.push(0);
    end_frame(out, at);
}

/// `basic.ack` (publisher confirms).
pub fn basic_ack(out: &mut Vec<u8>, channel: u16, delivery_tag: u64, multiple: bool) {
    confirm(out, channel, 80, delivery_tag, multiple);
}

/// `basic.nack` (publisher confirms; requeue is meaningless there).
pub fn basic_nack(out: &mut Vec<u8>, channel: u16, delivery_tag: u64, multiple: bool) {
    confirm(out, channel, 120, delivery_tag, multiple);
}

fn confirm(out: &mut Vec<u8>, channel: u16, method: u8, delivery_tag: u64, multiple: bool) {
    let at = begin_frame(out, FRAME_METHOD, channel);
    out.extend_from_slice(&[0, CLASS_BASIC as u8, 0, method]);
    out.extend_from_slice(&delivery_tag.to_be_bytes());
    out.push(u8::from(multiple));
    end_frame(out, at);
}

/// `basic.get-ok`.
pub fn get_ok(
    out: &mut Vec<u8>,
    channel: u16,
    delivery_tag: u64,
    redelivered: bool,
    exchange: &[u8],
    routing_key: &[u8],
    message_count: u32,
) {
    let at = begin_frame(out, FRAME_METHOD, channel);
    out.extend_from_slice(&[0, CLASS_BASIC as u8, 0, 71]);
    out.extend_from_slice(&delivery_tag.to_be_bytes());
    out.push(u8::from(redelivered));
    short_str(out, exchange);
    short_str(out, routing_key);
    out.extend_from_slice(&message_count.to_be_bytes());
    end_frame(out, at);
}

/// `basic.return`.
pub fn basic_return(
    out: &mut Vec<u8>,
    channel: u16,
    reply_code: u16,
    reply_text: &str,
    exchange: &[u8],
    routing_key: &[u8],
) {
    let at = begin_frame(out, FRAME_METHOD, channel);
    out.extend_from_slice(&[0, CLASS_BASIC as u8, 0, 50]);
    out.extend_from_slice(&reply_code.to_be_bytes());
    short_str(out, reply_text.as_bytes());
    short_str(out, exchange);
    short_str(out, routing_key);
    end_frame(out, at);
}

/// The content header (forwarded as received) and the body, cut into
/// frames of at most `frame_max` bytes.
pub fn content(out: &mut Vec<u8>, channel: u16, header: &[u8], body: &[u8], frame_max: u32) {
    out.reserve(header.len() + body.len() + 16);
    content_with(out, channel, header, body.len(), frame_max, |out, part| out.extend_from_slice(&body[part]));
}

/// The content header frame and the body frames of a body of `body_len`
/// bytes, the bytes of each body frame put in place by `put_body(out,
/// range of the body)`: copied in, or (`connection::outbuf`) written from
/// the message itself.
pub fn content_with(
    out: &mut Vec<u8>,
    channel: u16,
    header: &[u8],
    body_len: usize,
    frame_max: u32,
    mut put_body: impl FnMut(&mut Vec<u8>, std::ops::Range<usize>),
) {
    let at = begin_frame(out, FRAME_HEADER, channel);
    out.extend_from_slice(header);
    end_frame(out, at);
    let chunk = (frame_max as usize).saturating_sub(super::FRAME_OVERHEAD).max(1);
    let mut from = 0;
    while from < body_len {
        let to = body_len.min(from + chunk);
        out.push(FRAME_BODY);
        out.extend_from_slice(&channel.to_be_bytes());
        out.extend_from_slice(&((to - from) as u32).to_be_bytes());
        put_body(out, from..to);
        out.push(FRAME_END);
        from = to;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use amq_protocol::frame::parse_frame;
    use amq_protocol::protocol::basic;

    #[test]
    fn hand_written_methods_parse_back() {
        let mut out = Vec::new();
        deliver(&mut out, 3, b"amq.ctag-x", 9, true, b"ex", b"rk");
        get_ok(&mut out, 3, 10, false, b"", b"q", 4);
        basic_return(&mut out, 3, 312, "NO_ROUTE", b"ex", b"rk");
        let (rest, f) = parse_frame(&out[..]).unwrap();
        assert_eq!(
            f,
            AMQPFrame::Method(
                3,
                AMQPClass::Basic(basic::AMQPMethod::Deliver(basic::Deliver {
                    consumer_tag: "amq.ctag-x".into(),
                    delivery_tag: 9,
                    redelivered: true,
                    exchange: "ex".into(),
                    routing_key: "rk".into(),
                }))
            )
        );
        let (rest, f) = parse_frame(rest).unwrap();
        assert!(
            matches!(f, AMQPFrame::Method(3, AMQPClass::Basic(basic::AMQPMethod::GetOk(g))) if g.message_count == 4 && g.delivery_tag == 10)
        );
        let (rest, f) = parse_frame(rest).unwrap();
        assert!(
            matches!(f, AMQPFrame::Method(3, AMQPClass::Basic(basic::AMQPMethod::Return(r))) if r.reply_code == 312)
        );
        assert!(rest.is_empty());
    }

    #[test]
    fn bodies_are_cut_at_frame_max() {
        let header = crate::protocol::properties::encode_header(10, &Default::default());
        let mut out = Vec::new();
        content(&mut out, 1, &header, b"0123456789", 12);
        let mut rest = &out[..];
        let mut bodies = Vec::new();
        while !rest.is_empty() {
            let (r, f) = parse_frame(rest).unwrap();
            if let AMQPFrame::Body(_, b) = f {
                assert!(b.len() + 8 <= 12);
                bodies.extend(b);
            }
            rest = r;
        }
        assert_eq!(bodies, b"0123456789");
    }
}
