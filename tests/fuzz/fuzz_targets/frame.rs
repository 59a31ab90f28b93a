//! The frame splitter (`protocol::frame::decode`): the same bytes cut into
//! frames at once and fed in pieces must give the same frames and the same
//! end (more bytes needed, or the same error), and so must reading them in
//! place (`peek`, as the broker does); every frame must be exactly the
//! bytes it was cut from.
#![no_main]

use bytes::{Buf, Bytes, BytesMut};
use libfuzzer_sys::fuzz_target;
use warren::protocol::frame::{decode, peek, Frame};
use warren::protocol::AmqpError;
use warren_fuzz::frame;

type Outcome = (Vec<Frame>, Result<usize, AmqpError>);

/// Frames cut from `data` fed in pieces of `step` bytes by `next`; the end
/// is the bytes left over or the error.
fn cut(data: &[u8], step: usize, frame_max: u32, next: Next) -> Outcome {
    let mut buf = BytesMut::new();
    let mut frames = Vec::new();
    for piece in data.chunks(step.max(1)) {
        buf.extend_from_slice(piece);
        loop {
            match next(&mut buf, frame_max) {
                Ok(Some(f)) => frames.push(f),
                Ok(None) => break,
                Err(e) => return (frames, Err(e)),
            }
        }
    }
    (frames, Ok(buf.len()))
}

type Next = fn(&mut BytesMut, u32) -> Result<Option<Frame>, AmqpError>;

/// The broker's way: the frame read in place, then dropped from the buffer.
fn read_in_place(buf: &mut BytesMut, frame_max: u32) -> Result<Option<Frame>, AmqpError> {
    let Some(head) = peek(buf, frame_max)? else { return Ok(None) };
    let frame = head.frame(Bytes::copy_from_slice(head.payload(buf)));
    buf.advance(head.total());
    Ok(Some(frame))
}

fuzz_target!(|data: &[u8]| {
    let [sel, step, data @ ..] = data else { return };
    // Small limits make the size check reachable; the default is Warren's.
    let frame_max = [4096, 131_072, 16, 0, 1 << 20, 8, 100, 65_536][usize::from(sel & 7)];
    let whole = cut(data, data.len(), frame_max, decode);
    let split = cut(data, usize::from(*step), frame_max, decode);
    assert_eq!(whole, split, "cutting depends on how the bytes arrive");
    let in_place = cut(data, usize::from(*step), frame_max, read_in_place);
    assert_eq!(whole, in_place, "reading in place differs from cutting");
    let mut at = 0;
    for f in &whole.0 {
        let (kind, payload) = match f {
            Frame::Method { payload, .. } => (1, &payload[..]),
            Frame::Header { payload, .. } => (2, &payload[..]),
            Frame::Body { payload, .. } => (3, &payload[..]),
            Frame::Heartbeat { .. } => (8, &[][..]),
        };
        assert!(payload.len() as u64 <= u64::from(frame_max), "a frame past frame_max");
        let bytes = frame(kind, f.channel(), payload);
        assert_eq!(&data[at..at + bytes.len()], &bytes[..], "a frame is not the bytes it was cut from");
        at += bytes.len();
    }
    match &whole.1 {
        Ok(left) => assert_eq!(at + left, data.len()),
        Err(e) => assert_eq!(e.code(), 501, "{e}"),
    }
});
