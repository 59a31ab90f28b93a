//! Cutting a byte stream into frames. Pure: "need more bytes" and
//! "malformed" are different outcomes, and nothing here does I/O.
//!
//! The frame header is checked against `frame_max` before a single payload
//! byte is buffered, so a peer announcing a 4 GiB frame is refused at once.
//! Payloads are read in place ([`peek`]) or split off the read buffer
//! ([`decode`]), not copied; only [`make_room`] moves unread bytes.

use bytes::{Buf, Bytes, BytesMut};

use super::{AmqpError, FRAME_BODY, FRAME_END, FRAME_HEADER, FRAME_HEARTBEAT, FRAME_METHOD};

/// One frame, its payload still raw: `Bytes` split off the read buffer
/// ([`decode`]), or a [`Payload`] that may borrow it ([`Head::frame`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame<P = Bytes> {
    Method { channel: u16, payload: P },
    Header { channel: u16, payload: P },
    Body { channel: u16, payload: P },
    Heartbeat { channel: u16 },
}

impl<P> Frame<P> {
    pub fn channel(&self) -> u16 {
        match self {
            Frame::Method { channel, .. }
            | Frame::Header { channel, .. }
            | Frame::Body { channel, .. }
            | Frame::Heartbeat { channel } => *channel,
        }
    }
}

/// A frame's payload as the broker reads it: in place in the read buffer
/// (no reference count taken, the buffer stays the connection's own), or
/// split off it when it must outlive the read without a copy (a large body).
#[derive(Debug)]
pub enum Payload<'a> {
    Borrowed(&'a [u8]),
    Shared(Bytes),
}

impl std::ops::Deref for Payload<'_> {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        match self {
            Payload::Borrowed(b) => b,
            Payload::Shared(b) => b,
        }
    }
}

/// A complete, checked frame at the front of a buffer, not yet taken off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Head {
    kind: u8,
    pub channel: u16,
    size: u32,
}

impl Head {
    /// The frame's length on the wire: header, payload and end octet.
    pub fn total(&self) -> usize {
        self.size as usize + 8
    }

    pub fn payload_len(&self) -> usize {
        self.size as usize
    }

    pub fn is_body(&self) -> bool {
        self.kind == FRAME_BODY
    }

    /// A content header or body.
    pub fn is_content(&self) -> bool {
        matches!(self.kind, FRAME_HEADER | FRAME_BODY)
    }

    /// The payload, in `buf` (the buffer this frame is at the front of).
    pub fn payload<'a>(&self, buf: &'a [u8]) -> &'a [u8] {
        &buf[7..self.total() - 1]
    }

    /// Takes this frame off the front of `buf`, its payload split off (not copied).
    pub fn take(&self, buf: &mut BytesMut) -> Bytes {
        buf.advance(7);
        let payload = buf.split_to(self.payload_len()).freeze();
        buf.advance(1);
        payload
    }

    /// The frame with `payload` (a heartbeat has none).
    pub fn frame<P>(&self, payload: P) -> Frame<P> {
        let channel = self.channel;
        match self.kind {
            FRAME_METHOD => Frame::Method { channel, payload },
            FRAME_HEADER => Frame::Header { channel, payload },
            FRAME_BODY => Frame::Body { channel, payload },
            _ => Frame::Heartbeat { channel },
        }
    }
}

/// The complete frame at the front of `buf`, checked, left in place.
///
/// `Ok(None)` means more bytes are needed (once the frame's header is in,
/// room for the rest is made); an error is a hard (connection) error: the
/// stream can no longer be trusted.
pub fn peek(buf: &mut BytesMut, frame_max: u32) -> Result<Option<Head>, AmqpError> {
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
    let head = Head { kind, channel, size };
    let total = head.total();
    if buf.len() < total {
        // Exactly the frame: a large body split off it keeps the allocation.
        make_room(buf, total - buf.len(), 0);
        return Ok(None);
    }
    if buf[total - 1] != FRAME_END {
        return Err(AmqpError::frame_error(format!("invalid frame end octet {:#04x}", buf[total - 1])));
    }
    Ok(Some(head))
}

/// Makes room for `additional` more bytes at the end of a read buffer: in
/// its own allocation when the bytes already taken off its front leave
/// enough (the rest moved to the front), else in a new one sized by the
/// unread bytes, not by what was taken: `additional` and `headroom` more.
/// `BytesMut::reserve` instead doubles the whole allocation of a buffer
/// whose unread bytes outnumber the taken ones, so a connection stopped
/// with input left over, time after time (credit flow), would end up
/// reading into many times the chunk it asked for.
pub fn make_room(buf: &mut BytesMut, additional: usize, headroom: usize) {
    if buf.capacity() - buf.len() >= additional || buf.try_reclaim(additional) {
        return;
    }
    let mut fresh = BytesMut::with_capacity(buf.len() + additional + headroom);
    fresh.extend_from_slice(buf);
    *buf = fresh;
}

/// Takes the next complete frame off the front of `buf`, its payload split
/// off as `Bytes` ([`peek`] says when there is none and why).
pub fn decode(buf: &mut BytesMut, frame_max: u32) -> Result<Option<Frame>, AmqpError> {
    let Some(head) = peek(buf, frame_max)? else { return Ok(None) };
    let payload = head.take(buf);
    Ok(Some(head.frame(payload)))
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
    fn peek_reads_in_place_and_leaves_the_frame() {
        let mut wire = frame(FRAME_HEADER, 3, b"head");
        wire.extend(frame(FRAME_BODY, 3, b"body"));
        let mut buf = BytesMut::from(&wire[..wire.len() - 1]);
        let head = peek(&mut buf, 4096).unwrap().unwrap();
        assert_eq!((head.channel, head.is_content(), head.is_body()), (3, true, false));
        assert_eq!(head.payload(&buf), b"head");
        assert_eq!(head.frame(head.payload(&buf)), Frame::Header { channel: 3, payload: &b"head"[..] });
        assert_eq!(buf.len(), wire.len() - 1, "nothing taken off");
        buf.advance(head.total());
        // The body lacks its end octet: more is needed, and room is made for it.
        assert_eq!(peek(&mut buf, 4096), Ok(None));
        buf.extend_from_slice(&[FRAME_END]);
        let head = peek(&mut buf, 4096).unwrap().unwrap();
        assert_eq!(head.take(&mut buf), Bytes::from_static(b"body"));
        assert!(buf.is_empty());
    }

    #[test]
    fn room_is_made_in_place_or_sized_by_the_unread_bytes() {
        // All taken but a partial frame, round after round: the same allocation.
        let mut buf = BytesMut::with_capacity(4096);
        let base = buf.as_ptr();
        for round in 0..50u8 {
            while buf.len() < buf.capacity() {
                buf.extend_from_slice(&[round]);
            }
            buf.advance(buf.len() - 100);
            make_room(&mut buf, 2048, 0);
            assert_eq!((buf.as_ptr(), &buf[..]), (base, &[round; 100][..]), "round {round}");
        }
        // A large frame arriving in small reads, none of it taken yet, with
        // the read loop's headroom (as much as is unread, up to 64 KiB): the
        // buffer is copied each time its bytes double or grow by 64 KiB, not
        // at every read (as a new one of just the room asked for would be).
        let mut buf = BytesMut::new();
        let (mut moves, mut at) = (0, buf.as_ptr());
        for _ in 0..1300 {
            if buf.capacity() - buf.len() < 2048 {
                let headroom = buf.len().min(64 * 1024);
                make_room(&mut buf, 2048, headroom);
            }
            if buf.as_ptr() != at {
                (moves, at) = (moves + 1, buf.as_ptr());
            }
            buf.extend_from_slice(&[9; 100]);
        }
        assert!(moves <= 12, "copied {moves} times");
        assert!(buf.capacity() <= 3 * buf.len() + 2048);
        assert!(buf.iter().all(|&b| b == 9));
        // Shared with a body split off it: a new buffer of just the room
        // asked for; both keep their bytes.
        let mut buf = BytesMut::from(&[1u8; 1000][..]);
        let body = buf.split_to(600).freeze();
        let shared = buf.as_ptr();
        make_room(&mut buf, 4096, 0);
        assert_ne!(buf.as_ptr(), shared);
        assert_eq!(buf.capacity(), 400 + 4096);
        assert_eq!((&buf[..], &body[..]), (&[1; 400][..], &[1; 600][..]));
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
