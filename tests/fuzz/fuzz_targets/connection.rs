//! The running connection's state machine: after a scripted handshake
//! (guest on `/`, 64 channels, no heartbeats), any sequence of frames on any
//! channels, through the real driver, channels, publish/consume/confirm/tx
//! paths and an in-memory broker. The server must finish (a hang is a
//! libFuzzer timeout), write only well-formed frames, nothing after its
//! close-ok, and give the connection back.
//!
//! Input: a mode octet, then what follows the handshake. Mode bit 0 set:
//! records (`warren_fuzz::records`, frames with their lengths computed);
//! clear: raw bytes. Bits 1-3 pick how the bytes are cut into writes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use warren_fuzz::{check_server_output, chunks, handshake_prefix, records, session};

fuzz_target!(|data: &[u8]| {
    let [mode, rest @ ..] = data else { return };
    let mut wire = handshake_prefix();
    if mode & 1 == 1 {
        wire.extend(records(rest));
    } else {
        wire.extend_from_slice(rest);
    }
    let out = session(&chunks(&wire, mode >> 1));
    check_server_output(&out);
});
