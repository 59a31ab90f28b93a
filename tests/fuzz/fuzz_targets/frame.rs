//! The frame splitter (`protocol::frame::decode`): the same bytes cut into
//! frames at once and fed in pieces must give the same frames and the same
//! end (more bytes needed, or the same error); every frame must be exactly
//! the bytes it was cut from.
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use warren::protocol::frame::{decode, Frame};
use warren::protocol::AmqpError;
use warren_fuzz::frame;

type Outcome = (Vec<Frame>, Result<usize, AmqpError>);

/// Frames cut from `data` fed in pieces of `step` bytes; the end is the bytes
/// left over or the error.
fn cut(data: &[u8], step: usize, frame_max: u32) -> Outcome {
    let mut buf = BytesMut::new();
    let mut frames = Vec::new();
    for piece in data.chunks(step.max(1)) {
        buf.extend_from_slice(piece);
        loop {
            match decode(&mut buf, frame_max) {
                Ok(Some(f)) => frames.push(f),
                Ok(None) => break,
                Err(e) => return (frames, Err(e)),
            }
        }
    }
    (frames, Ok(buf.len()))
}

fuzz_target!(|data: &[u8]| {
    let [sel, step, data @ ..] = data else { return };
    // Small limits make the size check reachable; the default is Warren's.
    let frame_max = [4096, 131_072, 16, 0, 1 << 20, 8, 100, 65_536][usize::from(sel & 7)];
    let whole = cut(data, data.len(), frame_max);
    let split = cut(data, usize::from(*step), frame_max);
    assert_eq!(whole, split, "cutting depends on how the bytes arrive");
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
