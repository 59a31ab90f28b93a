//! What the fuzz targets share: frames built from compact records (so the
//! fuzzer mutates content, not lengths), the scripted handshake a connection
//! input starts with, a whole in-process session on a paused clock, and the
//! checks on what the server wrote back.

use std::sync::{Arc, OnceLock};

use amq_protocol::frame::WriteContext;
use amq_protocol::protocol::{connection, parse_class, AMQPClass};
use amq_protocol::types::{AMQPValue, FieldTable, LongString};
use nom::combinator::all_consuming;
use nom::Parser;
use warren::access::Access;
use warren::connection::harness::Harness;
use warren::protocol::properties::ContentHeader;
use warren::protocol::{encode, method, PROTOCOL_HEADER};

/// The server's frame_max (Warren's default): no frame it sends is larger.
pub const FRAME_MAX: u32 = 131_072;
/// Channels a record can address: 1..=31 (and 0).
pub const CHANNEL_MAX: u16 = 64;

pub fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// A frame from its parts.
pub fn frame(kind: u8, channel: u16, payload: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(payload.len() + 8);
    v.push(kind);
    v.extend_from_slice(&channel.to_be_bytes());
    v.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    v.extend_from_slice(payload);
    v.push(0xCE);
    v
}

pub fn method_frame(channel: u16, class: &AMQPClass) -> Vec<u8> {
    let mut out = Vec::new();
    encode::method(&mut out, channel, class);
    out
}

/// The encoded payload of a method (class and method ids first).
pub fn method_payload(class: &AMQPClass) -> Vec<u8> {
    let v = method_frame(0, class);
    v[7..v.len() - 1].to_vec()
}

/// Protocol header, start-ok (PLAIN guest/guest, the capabilities clients
/// announce), tune-ok (64 channels, heartbeats off) and open of `/`: what a
/// connection target's input is appended to.
pub fn handshake_prefix() -> Vec<u8> {
    let mut caps = FieldTable::default();
    for cap in ["publisher_confirms", "consumer_cancel_notify", "connection.blocked", "basic.nack"] {
        caps.insert(cap.into(), AMQPValue::Boolean(true));
    }
    let mut props = FieldTable::default();
    props.insert("capabilities".into(), AMQPValue::FieldTable(caps));
    let mut v = PROTOCOL_HEADER.to_vec();
    v.extend(method_frame(
        0,
        &AMQPClass::Connection(connection::AMQPMethod::StartOk(connection::StartOk {
            client_properties: props,
            mechanism: "PLAIN".into(),
            response: LongString::from(&b"\0guest\0guest"[..]),
            locale: "en_US".into(),
        })),
    ));
    v.extend(method_frame(
        0,
        &AMQPClass::Connection(connection::AMQPMethod::TuneOk(connection::TuneOk {
            channel_max: CHANNEL_MAX,
            frame_max: FRAME_MAX,
            heartbeat: 0,
        })),
    ));
    v.extend(method_frame(
        0,
        &AMQPClass::Connection(connection::AMQPMethod::Open(connection::Open { virtual_host: "/".into() })),
    ));
    v
}

const KINDS: [u8; 4] = [1, 2, 3, 8];

/// Frames from records, so that a mutation changes what a frame says
/// rather than breaking the framing:
/// - `1lllllll` then `l` bytes: those bytes verbatim (bad framing on purpose);
/// - `0cccccKK`, a 2-byte length, the payload: a frame of type
///   `[method, header, body, heartbeat][KK]` on channel `ccccc`.
pub fn records(mut data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len() * 2);
    while let Some((&tag, rest)) = data.split_first() {
        if tag & 0x80 != 0 {
            let n = usize::from(tag & 0x7f).min(rest.len());
            out.extend_from_slice(&rest[..n]);
            data = &rest[n..];
            continue;
        }
        let kind = KINDS[usize::from(tag & 3)];
        let channel = u16::from(tag >> 2);
        let len = match rest {
            [a, b, ..] => usize::from(u16::from_be_bytes([*a, *b])),
            _ => 0,
        };
        let rest = rest.get(2..).unwrap_or(&[]);
        let n = len.min(rest.len());
        out.extend(frame(kind, channel, &rest[..n]));
        data = &rest[n..];
    }
    out
}

/// The records that make `frames` (whole frames, as a client wrote them),
/// the inverse of [`records`]; None if a frame cannot be written as one.
pub fn to_records(mut frames: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    while !frames.is_empty() {
        if frames.len() < 8 {
            return None;
        }
        let kind = KINDS.iter().position(|k| *k == frames[0])? as u8;
        let channel = u16::from_be_bytes([frames[1], frames[2]]);
        let size = u32::from_be_bytes([frames[3], frames[4], frames[5], frames[6]]) as usize;
        if channel >= 32 || size > usize::from(u16::MAX) || frames.len() < size + 8 {
            return None;
        }
        out.push(((channel as u8) << 2) | kind);
        out.extend_from_slice(&(size as u16).to_be_bytes());
        out.extend_from_slice(&frames[7..7 + size]);
        frames = &frames[size + 8..];
    }
    Some(out)
}

/// How a client's bytes are cut into writes: all at once, or in pieces of a
/// size picked by `selector` (the server then sees frames split anywhere).
pub fn chunks(data: &[u8], selector: u8) -> Vec<&[u8]> {
    const SIZES: [usize; 8] = [usize::MAX, 1, 3, 7, 16, 100, 1000, 4096];
    let size = SIZES[usize::from(selector & 7)];
    if size == usize::MAX || data.is_empty() {
        vec![data]
    } else {
        data.chunks(size).collect()
    }
}

/// One whole connection on a fresh in-memory broker: writes `chunks`, closes
/// the client's writing side, returns what the server wrote once it is done.
/// The clock is paused (and jumps when the runtime idles), so handshake,
/// close and heartbeat timeouts cost nothing; a server that never finishes
/// is a libFuzzer timeout.
pub fn session(chunks: &[&[u8]]) -> Vec<u8> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()
        .expect("a runtime");
    static ACCESS: OnceLock<Arc<Access>> = OnceLock::new();
    let h = Harness::with_access(ACCESS.get_or_init(Harness::guest_access).clone());
    let out = rt.block_on(h.session(chunks.iter().copied())).expect("a socket pair");
    assert_eq!(h.broker.open_connections(), 0, "the connection is still counted after it ended");
    out
}

/// What the server wrote must be what a client can read: the protocol
/// header alone (a refused header), or whole, well-formed frames no larger
/// than frame_max, methods that parse, content headers that scan; after its
/// `connection.close` only `close-ok` (and heartbeats); after the close-ok
/// that answers a client's close while running, nothing.
pub fn check_server_output(out: &[u8]) {
    if out.starts_with(b"AMQP") {
        assert_eq!(out, PROTOCOL_HEADER, "a refused protocol header is answered with ours alone");
        return;
    }
    let mut rest = out;
    let (mut closing, mut closed) = (false, false);
    while !rest.is_empty() {
        assert!(!closed, "server wrote after connection.close-ok: {}", hex(rest));
        assert!(rest.len() >= 8, "server wrote a truncated frame: {}", hex(rest));
        let kind = rest[0];
        let channel = u16::from_be_bytes([rest[1], rest[2]]);
        let size = u32::from_be_bytes([rest[3], rest[4], rest[5], rest[6]]);
        assert!(matches!(kind, 1 | 2 | 3 | 8), "server wrote frame type {kind}");
        assert!(size <= FRAME_MAX, "server wrote a {size}-byte frame");
        let total = size as usize + 8;
        assert!(rest.len() >= total, "server wrote a truncated frame: {}", hex(rest));
        assert_eq!(rest[total - 1], 0xCE, "bad frame end from the server: {}", hex(&rest[..total]));
        let payload = &rest[7..total - 1];
        match kind {
            1 => {
                check_server_method(payload);
                let ids = method::ids(payload);
                if closing {
                    assert_eq!(ids, (10, 51), "server sent a method after its connection.close");
                }
                match ids {
                    (10, 50) => closing = true,
                    // Once it sent its own close, the server answers each close
                    // the client sends with a close-ok, as RabbitMQ does
                    // (rabbit_reader, connection.close while stopping); a close-ok
                    // ending a close the client started must be the last frame.
                    (10, 51) if !closing => closed = true,
                    _ => {}
                }
            }
            2 => {
                assert!(!closing, "server sent content after its connection.close");
                if let Err(e) = ContentHeader::scan(payload) {
                    panic!("server sent a content header it cannot scan ({e}): {}", hex(payload));
                }
            }
            3 => assert!(!closing, "server sent content after its connection.close"),
            _ => assert!(channel == 0 && size == 0, "server sent a bad heartbeat"),
        }
        rest = &rest[total..];
    }
}

/// A method the server sent must parse. The methods Warren writes by hand
/// carry the publisher's exchange and routing key as they came, which need
/// not be UTF-8 (RabbitMQ forwards them as binaries too): amq-protocol
/// refuses those, so they are walked here instead.
fn check_server_method(payload: &[u8]) {
    if all_consuming(parse_class).parse(payload).is_ok() {
        return;
    }
    let shorts = |mut at: usize, n: usize| -> Option<usize> {
        for _ in 0..n {
            at += 1 + usize::from(*payload.get(at)?);
        }
        Some(at)
    };
    let end = match method::ids(payload) {
        // basic.deliver: consumer tag, delivery tag, redelivered, exchange, key
        (60, 60) => shorts(4, 1).and_then(|at| shorts(at + 9, 2)),
        // basic.get-ok: delivery tag, redelivered, exchange, key, message count
        (60, 71) => shorts(13, 2).map(|at| at + 4),
        // basic.return: code, text, exchange, key
        (60, 50) => shorts(6, 3),
        _ => None,
    };
    assert_eq!(end, Some(payload.len()), "server sent a method that does not parse: {}", hex(payload));
}

/// How deeply the tables and arrays in `v` nest (a table alone is 1),
/// without recursing.
pub fn depth(v: &AMQPValue) -> usize {
    let mut deepest = 0;
    let mut stack = vec![(v, 0usize)];
    while let Some((v, d)) = stack.pop() {
        match v {
            AMQPValue::FieldTable(t) => {
                deepest = deepest.max(d + 1);
                stack.extend(t.inner().values().map(|x| (x, d + 1)));
            }
            AMQPValue::FieldArray(a) => {
                deepest = deepest.max(d + 1);
                stack.extend(a.as_slice().iter().map(|x| (x, d + 1)));
            }
            _ => {}
        }
    }
    deepest
}

pub fn table_depth(t: &FieldTable) -> usize {
    depth(&AMQPValue::FieldTable(t.clone()))
}

/// The field tables a decoded method carries.
pub fn method_tables(class: &AMQPClass) -> Vec<&FieldTable> {
    use amq_protocol::protocol::{basic, exchange, queue};
    match class {
        AMQPClass::Connection(connection::AMQPMethod::Start(m)) => vec![&m.server_properties],
        AMQPClass::Connection(connection::AMQPMethod::StartOk(m)) => vec![&m.client_properties],
        AMQPClass::Exchange(exchange::AMQPMethod::Declare(m)) => vec![&m.arguments],
        AMQPClass::Exchange(exchange::AMQPMethod::Bind(m)) => vec![&m.arguments],
        AMQPClass::Exchange(exchange::AMQPMethod::Unbind(m)) => vec![&m.arguments],
        AMQPClass::Queue(queue::AMQPMethod::Declare(m)) => vec![&m.arguments],
        AMQPClass::Queue(queue::AMQPMethod::Bind(m)) => vec![&m.arguments],
        AMQPClass::Queue(queue::AMQPMethod::Unbind(m)) => vec![&m.arguments],
        AMQPClass::Basic(basic::AMQPMethod::Consume(m)) => vec![&m.arguments],
        _ => Vec::new(),
    }
}

/// amq-protocol's encoding of a method payload.
pub fn gen_class(class: &AMQPClass) -> Vec<u8> {
    let ctx = amq_protocol::protocol::gen_class(class)(WriteContext::from(Vec::new()))
        .expect("a Vec grows as needed");
    ctx.into_inner().0
}

/// amq-protocol's encoding of a field table, length prefix included.
pub fn gen_table(t: &FieldTable) -> Vec<u8> {
    let ctx = amq_protocol::types::generation::gen_field_table(t)(WriteContext::from(Vec::new()))
        .expect("a Vec grows as needed");
    ctx.into_inner().0
}

/// amq-protocol's encoding of a typed value, type octet first.
pub fn gen_value(v: &AMQPValue) -> Vec<u8> {
    let ctx = amq_protocol::types::generation::gen_value(v)(WriteContext::from(Vec::new()))
        .expect("a Vec grows as needed");
    ctx.into_inner().0
}
