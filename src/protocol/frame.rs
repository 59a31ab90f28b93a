//! Cutting a byte stream into frames. Pure: "need more bytes" and
//! "malformed" are different outcomes, and nothing here does I/O.
//!
//! The frame header is checked against `frame_max` before a single payload
//! byte is buffered, so a peer announcing a 4 GiB frame is refused at once.
//! Payloads are zero-copy slices of the read buffer.

use bytes::{Buf, Bytes, BytesMut};

use super::{AmqpError, FRAME_BODY, FRAME_END, FRAME_HEADER, FRAME_HEARTBEAT, FRAME_METHOD};

/// One frame, its payload still raw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    Method { channel: u16, payload: Bytes },
    Header { channel: u16, payload: Bytes },
    Body { channel: u16, payload: Bytes },
    Heartbeat { channel: u16 },
}

impl Frame {
    pub fn channel(&self) -> u16 {
        match self {
            Frame::Method { channel, .. }
            | Frame::Header { channel, .. }
            | Frame::Body { channel, .. }
            | Frame::Heartbeat { channel } => *channel,
        }
    }
}

/// Takes the next complete frame off the front of `buf`.
///
/// `Ok(None)` means more bytes are needed; an error is a hard (connection)
/// error: the stream can no longer be trusted.
pub fn decode(buf: &mut BytesMut, frame_max: u32) -> Result<Option<Frame>, AmqpError> {
    if buf.len() < 7 {
        return Ok(None);
    }
    let kind = buf[0];
    let channel = u16::from_be_bytes([buf[1], buf[2]]);
    let size = u32::from_be_bytes([buf[3], buf[4], buf[5], buf[6]]);
    if !matches!(kind, FRAME_METHOD | FRAME_HEADER | FRAME_BODY | FRAME_HEARTBEAT) {
        return Err(AmqpError::frame_error(format!("unknown frame type {kind}")));
    }
    // frame_max counts the whole frame, header and end octet included, but
    // like RabbitMQ we take a *payload* of frame_max (8 bytes over on the
    // wire): clients commonly count the payload only. Anything more is refused.
    if size > frame_max {
        return Err(AmqpError::frame_error(format!(
            "type {kind}, all octets = <<>>: {{frame_too_large,{size},{}}}",
            frame_max.saturating_sub(8)
        )));
    }
    if kind == FRAME_HEARTBEAT && size != 0 {
        return Err(AmqpError::frame_error(format!("heartbeat frame with a {size}-byte payload")));
    }
    let total = size as usize + 8;
    if buf.len() < total {
        buf.reserve(total - buf.len());
        return Ok(None);
    }
    if buf[total - 1] != FRAME_END {
        return Err(AmqpError::frame_error(format!("invalid frame end octet {:#04x}", buf[total - 1])));
    }
    buf.advance(7);
    let payload = buf.split_to(size as usize).freeze();
    buf.advance(1);
    Ok(Some(match kind {
        FRAME_METHOD => Frame::Method { channel, payload },
        FRAME_HEADER => Frame::Header { channel, payload },
        FRAME_BODY => Frame::Body { channel, payload },
        _ => Frame::Heartbeat { channel },
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(kind: u8, channel: u16, payload: &[u8]) -> Vec<u8> {
        let mut v = vec![kind];
        v.extend_from_slice(&channel.to_be_bytes());
        v.extend_from_slice(&(payload.len() as u32).to_be_bytes());
        v.extend_from_slice(payload);
        v.push(FRAME_END);
        v
    }

    #[test]
    fn split_input_one_byte_at_a_time() {
        let mut wire = frame(FRAME_METHOD, 1, b"abcdef");
        wire.extend(frame(FRAME_BODY, 2, b"xyz"));
        wire.extend(frame(FRAME_HEARTBEAT, 0, b""));
        let mut buf = BytesMut::new();
        let mut out = Vec::new();
        for b in wire {
            buf.extend_from_slice(&[b]);
            while let Some(f) = decode(&mut buf, 4096).unwrap() {
                out.push(f);
            }
        }
        assert_eq!(
            out,
            vec![
                Frame::Method { channel: 1, payload: Bytes::from_static(b"abcdef") },
                Frame::Body { channel: 2, payload: Bytes::from_static(b"xyz") },
                Frame::Heartbeat { channel: 0 },
            ]
        );
        assert!(buf.is_empty());
    }

    #[test]
    fn refuses_oversized_frames_before_buffering() {
        let mut buf = BytesMut::from(&[1u8, 0, 1, 0xff, 0xff, 0xff, 0xff][..]);
        let err = decode(&mut buf, 131072).unwrap_err();
        assert_eq!(err.code(), 501);
    }

    #[test]
    fn takes_a_payload_of_frame_max_and_not_a_byte_more() {
        let at = frame(FRAME_BODY, 1, &[7; 4096]);
        let mut buf = BytesMut::from(&at[..]);
        assert!(matches!(decode(&mut buf, 4096), Ok(Some(Frame::Body { .. }))));
        let over = frame(FRAME_BODY, 1, &[7; 4097]);
        let err = decode(&mut BytesMut::from(&over[..]), 4096).unwrap_err();
        assert_eq!(err.text, "FRAME_ERROR - type 3, all octets = <<>>: {frame_too_large,4097,4088}");
    }

    #[test]
    fn refuses_bad_frame_end_and_type() {
        let mut wire = frame(FRAME_METHOD, 1, b"ab");
        *wire.last_mut().unwrap() = 0;
        assert_eq!(decode(&mut BytesMut::from(&wire[..]), 4096).unwrap_err().code(), 501);
        let wire = frame(9, 1, b"ab");
        assert_eq!(decode(&mut BytesMut::from(&wire[..]), 4096).unwrap_err().code(), 501);
    }
}
