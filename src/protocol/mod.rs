//! The AMQP 0-9-1 codec: bytes in, frames and methods out, and back. No I/O.
//!
//! amq-protocol does the heavy lifting for the long tail of methods; the hot
//! methods (`basic.publish`, `basic.ack`, `basic.deliver`) and content frames
//! have hand-written, allocation-free paths here.

pub mod encode;
pub mod error;
pub mod frame;
pub mod json;
pub mod method;
pub mod properties;
pub mod table;

pub use amq_protocol::protocol::AMQPClass;
pub use amq_protocol::types::{AMQPValue, FieldArray, FieldTable, LongString, ShortString};
pub use error::{AmqpError, ErrorKind};

/// The protocol header a 0-9-1 client sends and the one we answer a bad one with.
pub const PROTOCOL_HEADER: &[u8; 8] = b"AMQP\x00\x00\x09\x01";
/// The frame size every peer must accept before `connection.tune` (the spec's minimum).
pub const FRAME_MIN_SIZE: u32 = 4096;
/// Frame type, channel and size (7) plus the frame-end octet (1).
pub const FRAME_OVERHEAD: usize = 8;
pub const FRAME_END: u8 = 0xCE;
pub const FRAME_METHOD: u8 = 1;
pub const FRAME_HEADER: u8 = 2;
pub const FRAME_BODY: u8 = 3;
pub const FRAME_HEARTBEAT: u8 = 8;

/// Class ids used by the broker's hand-written paths.
pub const CLASS_CONNECTION: u16 = 10;
pub const CLASS_CHANNEL: u16 = 20;
pub const CLASS_BASIC: u16 = 60;

/// Equality of two names (exchange, queue, routing key, a header's string
/// value) that may be empty. Slices' `==` calls `memcmp` even when both are
/// empty, and an empty `Vec`, `Box` or `String` points at the dangling
/// address `0x1`: glibc's AVX-512 `memcmp` then makes a fully masked load
/// from that unmapped page, which the CPU completes through a slow assist
/// (79 ns measured on the AMD EPYC VMs, against ~2 ns for any other short
/// compare). The default exchange `""` is compared on every publish to it.
#[inline]
pub fn same_name(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && (a.is_empty() || a == b)
}

#[cfg(test)]
mod tests {
    use super::same_name;

    #[test]
    fn same_name_is_byte_equality() {
        let empty_vec: Vec<u8> = Vec::new();
        let boxed: Box<[u8]> = Box::from(&b""[..]);
        assert!(same_name(&empty_vec, &boxed));
        assert!(same_name(b"amq.direct", b"amq.direct"));
        assert!(!same_name(b"amq.direct", b"amq.direc"));
        assert!(!same_name(b"", b"a"));
        assert!(!same_name(b"amq.topic", b"amq.topiC"));
    }
}
