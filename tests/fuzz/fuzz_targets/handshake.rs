//! A connection from its first byte: the protocol header, start-ok and its
//! SASL response, tune-ok, open, then whatever follows, through the real
//! handshake and driver on an in-memory broker. The server must finish
//! (a hang is a libFuzzer timeout), write only well-formed frames, and
//! nothing after its close-ok.
//!
//! Input: a mode octet, then the stream. Mode bit 0 set: the stream is the
//! 0-9-1 protocol header followed by records (`warren_fuzz::records`);
//! clear: raw bytes. Bits 1-3 pick how the bytes are cut into writes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use warren::protocol::PROTOCOL_HEADER;
use warren_fuzz::{check_server_output, chunks, records, session};

fuzz_target!(|data: &[u8]| {
    let [mode, rest @ ..] = data else { return };
    let wire = if mode & 1 == 1 {
        let mut v = PROTOCOL_HEADER.to_vec();
        v.extend(records(rest));
        v
    } else {
        rest.to_vec()
    };
    let out = session(&chunks(&wire, mode >> 1));
    check_server_output(&out);
});
