//! Bad input at the frame level, sent as raw bytes: malformed and oversized
//! frames, unknown frame types, content frames out of order or on the wrong
//! channel, bad protocol headers and handshakes, and input split into
//! single bytes. Expected replies follow RabbitMQ 3.10 (notes/rabbit-errors.md)
//! except where Warren deliberately answers instead of dropping the socket.
//!
//! After every error the broker must still serve a fresh connection.

mod common;

use amq_protocol::frame::AMQPFrame;
use amq_protocol::protocol::basic::AMQPProperties;
use amq_protocol::protocol::{basic, channel, connection, queue, AMQPClass};
use amq_protocol::types::{AMQPValue, FieldTable, LongString};
use common::{
    assert_serving, basic_get, content_body, content_header, message, method, publish, queue_declare,
    raw_frame, Raw, Read, Reply, FRAME_END,
};
use tokio::io::AsyncWriteExt;

const FRAME_ERROR: Reply = (501, "FRAME_ERROR - ", 0, 0);
const UNEXPECTED_FRAME: Reply = (505, "UNEXPECTED_FRAME - ", 0, 0);
const EXPECTED_METHOD: Reply =
    (505, "UNEXPECTED_FRAME - expected method frame, got non method frame instead", 0, 0);
const EXPECTED_HEADER: Reply = (
    505,
    "UNEXPECTED_FRAME - expected content header for class 60, got non content header frame instead",
    60,
    40,
);
const EXPECTED_BODY: Reply =
    (505, "UNEXPECTED_FRAME - expected content body, got non content body frame instead", 60, 40);

/// The default (and RabbitMQ's) frame_max.
const FRAME_MAX: u32 = 131_072;

fn cat(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}

/// A frame with its end octet replaced.
fn with_end(mut frame: Vec<u8>, end: u8) -> Vec<u8> {
    *frame.last_mut().unwrap() = end;
    frame
}

/// A content header without properties, with any class and weight.
fn header_raw(ch: u16, class: u16, weight: u16, body_size: u64) -> Vec<u8> {
    let mut p = class.to_be_bytes().to_vec();
    p.extend(weight.to_be_bytes());
    p.extend(body_size.to_be_bytes());
    p.extend([0, 0]);
    raw_frame(2, ch, &p, FRAME_END)
}

fn header(ch: u16, body_size: u64) -> Vec<u8> {
    content_header(ch, body_size, AMQPProperties::default())
}

/// Only the 7-byte header of a frame announcing `size` payload bytes.
fn frame_header_only(kind: u8, ch: u16, size: u32) -> Vec<u8> {
    let mut v = vec![kind];
    v.extend(ch.to_be_bytes());
    v.extend(size.to_be_bytes());
    v
}

fn start_ok(user: &str, pass: &str, client_properties: FieldTable) -> Vec<u8> {
    let start_ok = connection::StartOk {
        client_properties,
        mechanism: "PLAIN".into(),
        response: LongString::from(format!("\0{user}\0{pass}").into_bytes()),
        locale: "en_US".into(),
    };
    method(0, AMQPClass::Connection(connection::AMQPMethod::StartOk(start_ok)))
}

fn channel_open(ch: u16) -> Vec<u8> {
    method(ch, AMQPClass::Channel(channel::AMQPMethod::Open(channel::Open {})))
}

/// Cases that must end in connection.close; each gets its own broker.
macro_rules! connection_errors {
    ($($name:ident: $input:expr => $want:expr;)*) => {$(
        #[tokio::test]
        async fn $name() {
            let server = common::start().await;
            common::connection_error(server.local_addr, &$input, $want).await;
        }
    )*};
}

connection_errors! {
    // Malformed frames.
    bad_frame_end_on_a_method: with_end(queue_declare(1, "q"), 0x00) => FRAME_ERROR;
    bad_frame_end_on_a_heartbeat: raw_frame(8, 0, b"", 0x00) => FRAME_ERROR;
    bad_frame_end_on_a_body: cat(&[&publish(1, "", "q"), &header(1, 5), &raw_frame(3, 1, b"hello", 0xCD)])
        => FRAME_ERROR;
    unknown_frame_type_on_channel_0: raw_frame(9, 0, b"abc", FRAME_END) => FRAME_ERROR;
    unknown_frame_type_on_channel_1: raw_frame(9, 1, b"abc", FRAME_END) => FRAME_ERROR;
    old_oob_method_frame_type_4: raw_frame(4, 1, b"abc", FRAME_END) => FRAME_ERROR;
    frame_type_0xff: raw_frame(0xff, 1, b"", FRAME_END) => FRAME_ERROR;
    method_frame_with_class_id_only: raw_frame(1, 1, &[0, 50], FRAME_END) => FRAME_ERROR;
    empty_method_frame: raw_frame(1, 1, b"", FRAME_END) => FRAME_ERROR;
    heartbeat_with_a_payload: raw_frame(8, 0, b"abc", FRAME_END) => FRAME_ERROR;
    truncated_content_header: cat(&[&publish(1, "", "q"), &raw_frame(2, 1, &[0, 60, 0, 0], FRAME_END)])
        => FRAME_ERROR;

    // Oversized frames, refused from the 7-byte frame header alone.
    oversized_body_frame_header_only: frame_header_only(3, 1, 200_000) => FRAME_ERROR;
    oversized_method_frame_header_only: frame_header_only(1, 1, u32::MAX) => FRAME_ERROR;
    // A payload of frame_max (8 over on the wire) is taken, as RabbitMQ does; one byte more is not.
    body_frame_one_byte_over_frame_max_header_only: frame_header_only(3, 1, FRAME_MAX + 1) => (
        501,
        "FRAME_ERROR - type 3, all octets = <<>>: {frame_too_large,131073,131064}",
        0,
        0,
    );
    method_frame_one_byte_over_frame_max_header_only: frame_header_only(1, 1, FRAME_MAX + 1) => (
        501,
        "FRAME_ERROR - type 1, all octets = <<>>: {frame_too_large,131073,131064}",
        0,
        0,
    );

    // Frame types on channels they do not belong to.
    heartbeat_on_channel_1: raw_frame(8, 1, b"", FRAME_END) => UNEXPECTED_FRAME;
    content_header_on_channel_0: header(0, 5) => UNEXPECTED_FRAME;
    content_body_on_channel_0: content_body(0, b"hello") => UNEXPECTED_FRAME;

    // Content out of order.
    content_header_without_publish: header(1, 5) => EXPECTED_METHOD;
    content_body_without_publish: content_body(1, b"hello") => EXPECTED_METHOD;
    content_header_on_unopened_channel: header(5, 5) => EXPECTED_METHOD;
    content_body_on_unopened_channel: content_body(5, b"hello") => EXPECTED_METHOD;
    body_instead_of_header: cat(&[&publish(1, "", "q"), &content_body(1, b"hello")]) => EXPECTED_HEADER;
    method_instead_of_header: cat(&[&publish(1, "", "q"), &queue_declare(1, "")]) => EXPECTED_HEADER;
    method_instead_of_body: cat(&[&publish(1, "", "q"), &header(1, 5), &queue_declare(1, "")])
        => EXPECTED_BODY;
    second_header_instead_of_body: cat(&[&publish(1, "", "q"), &header(1, 5), &header(1, 5)]) => EXPECTED_BODY;
    publish_instead_of_body: cat(&[&publish(1, "", "q"), &header(1, 5), &publish(1, "", "q")]) => EXPECTED_BODY;
    body_after_zero_size_header: cat(&[&publish(1, "", "q"), &header(1, 0), &content_body(1, b"x")])
        => EXPECTED_METHOD;
    content_header_for_class_50: cat(&[&publish(1, "", "q"), &header_raw(1, 50, 0, 5)]) => (
        505,
        "UNEXPECTED_FRAME - expected content header for class 60, got one for class 50 instead",
        60,
        40,
    );
    content_header_with_nonzero_weight: cat(&[&publish(1, "", "q"), &header_raw(1, 60, 1, 5)])
        => EXPECTED_HEADER;
    // Warren refuses a body longer than announced (RabbitMQ ignores the excess).
    body_longer_than_header_size: cat(&[&publish(1, "", "q"), &header(1, 5), &content_body(1, b"0123456789")])
        => FRAME_ERROR;
    bodies_overrunning_header_size: cat(&[
        &publish(1, "", "q"),
        &header(1, 5),
        &content_body(1, b"abc"),
        &content_body(1, b"def"),
    ]) => FRAME_ERROR;
}

#[tokio::test]
async fn oversized_frame_is_refused_before_its_payload_arrives() {
    let server = common::start().await;
    let mut raw = Raw::open(server.local_addr).await;
    raw.open_channel(1).await;
    raw.send(&cat(&[&publish(1, "", "q"), &header(1, 300_000)])).await;
    // The payload is never sent: the broker must answer on the 7 bytes alone.
    common::connection_error_on(raw, server.local_addr, &frame_header_only(3, 1, 300_000), FRAME_ERROR).await;
}

#[tokio::test]
async fn frame_over_a_negotiated_frame_max_is_refused() {
    let server = common::start().await;
    let mut raw = Raw::connect(server.local_addr).await;
    raw.handshake("guest", "guest", 4096, 0).await;
    raw.open_channel(1).await;
    raw.send(&cat(&[&publish(1, "", "q"), &header(1, 5000)])).await;
    common::connection_error_on(
        raw,
        server.local_addr,
        &frame_header_only(3, 1, 4096 + 1),
        (501, "FRAME_ERROR - type 3, all octets = <<>>: {frame_too_large,4097,4088}", 0, 0),
    )
    .await;
}

/// Publishes `body` to a fresh queue in frames of at most `frame_max` and
/// gets it back; checks the broker's own body frames respect `frame_max`.
async fn publish_and_get(raw: &mut Raw, frame_max: u32, body: &[u8]) {
    publish_in_frames_and_get(raw, frame_max, frame_max, body).await;
}

/// Like `publish_and_get`, sending body frames of up to `sent_frame_max`
/// bytes on the wire (some clients send frame_max bytes of *payload*).
async fn publish_in_frames_and_get(raw: &mut Raw, frame_max: u32, sent_frame_max: u32, body: &[u8]) {
    let q = raw.declare_queue(1, "").await;
    raw.send(&message(1, "", &q, AMQPProperties::default(), body, sent_frame_max)).await;
    raw.send(&basic_get(1, &q)).await;
    let m = raw.expect_method_on(1).await;
    assert!(matches!(m, AMQPClass::Basic(basic::AMQPMethod::GetOk(_))), "{m:?}");
    let AMQPFrame::Header(1, h) = raw.expect_frame().await else { panic!("no content header") };
    assert_eq!(h.body_size, body.len() as u64);
    let mut got = Vec::new();
    while got.len() < body.len() {
        match raw.expect_frame().await {
            AMQPFrame::Body(1, part) => {
                assert!(part.len() + 8 <= frame_max as usize, "broker sent a {}-byte body frame", part.len());
                got.extend(part);
            }
            other => panic!("expected a body frame, got {other:?}"),
        }
    }
    assert!(got == body, "body changed on the way ({} bytes)", body.len());
}

fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i % 251) as u8).collect()
}

/// Bodies on either side of the size a message copies (16 KiB), each in one
/// frame and all in one write (read in place, or split off the read buffer
/// past that size), their headers large and small in turn on one channel
/// (which reuses a buffer for names and header): each arrives whole, with
/// its own properties.
#[tokio::test]
async fn single_frame_bodies_around_the_copy_limit_arrive_intact() {
    let server = common::start().await;
    let mut raw = Raw::open(server.local_addr).await;
    raw.open_channel(1).await;
    let q = raw.declare_queue(1, "").await;
    let sizes = [16 * 1024, 0, 16 * 1024 + 1, 1, 16 * 1024 - 1, 100_000];
    let pad = |i: usize| "p".repeat(if i.is_multiple_of(2) { 3000 } else { 5 });
    let mut wire = Vec::new();
    for (i, &size) in sizes.iter().enumerate() {
        let mut headers = FieldTable::default();
        headers.insert("pad".into(), AMQPValue::LongString(pad(i).into()));
        let props = AMQPProperties::default().with_message_id(format!("m{i}").into()).with_headers(headers);
        wire.extend(message(1, "", &q, props, &pattern(size), FRAME_MAX));
    }
    raw.send(&wire).await;
    for (i, &size) in sizes.iter().enumerate() {
        let (props, body) = raw.get(1, &q).await.expect("a message");
        assert_eq!(props.message_id().as_ref().map(|s| s.as_str().to_owned()), Some(format!("m{i}")));
        let headers = props.headers().clone().expect("headers");
        assert_eq!(headers.inner().get("pad"), Some(&AMQPValue::LongString(pad(i).into())), "m{i}");
        assert!(body == pattern(size), "m{i}: body changed on the way ({size} bytes)");
    }
    assert_serving(server.local_addr).await;
}

#[tokio::test]
async fn frame_exactly_at_frame_max_is_accepted() {
    let server = common::start().await;
    let mut raw = Raw::open(server.local_addr).await;
    raw.open_channel(1).await;
    publish_and_get(&mut raw, FRAME_MAX, &pattern(FRAME_MAX as usize - 8)).await;
    assert_serving(server.local_addr).await;
}

#[tokio::test]
async fn frame_exactly_at_a_negotiated_frame_max_is_accepted() {
    let server = common::start().await;
    let mut raw = Raw::connect(server.local_addr).await;
    raw.handshake("guest", "guest", 4096, 0).await;
    raw.open_channel(1).await;
    publish_and_get(&mut raw, 4096, &pattern(4096 - 8)).await;
}

#[tokio::test]
async fn body_frames_with_a_payload_of_frame_max_are_accepted() {
    let server = common::start().await;
    let mut raw = Raw::open(server.local_addr).await;
    raw.open_channel(1).await;
    // Payloads of exactly frame_max, 8 bytes over on the wire, then a remainder.
    publish_in_frames_and_get(&mut raw, FRAME_MAX, FRAME_MAX + 8, &pattern(3 * FRAME_MAX as usize + 10))
        .await;
    assert_serving(server.local_addr).await;
}

#[tokio::test]
async fn body_frames_with_a_payload_of_a_negotiated_frame_max_are_accepted() {
    let server = common::start().await;
    let mut raw = Raw::connect(server.local_addr).await;
    raw.handshake("guest", "guest", 4096, 0).await;
    raw.open_channel(1).await;
    publish_in_frames_and_get(&mut raw, 4096, 4096 + 8, &pattern(2 * 4096 + 1)).await;
}

#[tokio::test]
async fn two_frame_body_crossing_frame_max() {
    let server = common::start().await;
    let mut raw = Raw::open(server.local_addr).await;
    raw.open_channel(1).await;
    // One full frame (exactly frame_max) and a 1000-byte remainder.
    publish_and_get(&mut raw, FRAME_MAX, &pattern(FRAME_MAX as usize - 8 + 1000)).await;
}

#[tokio::test]
async fn two_frame_body_crossing_a_negotiated_frame_max() {
    let server = common::start().await;
    let mut raw = Raw::connect(server.local_addr).await;
    raw.handshake("guest", "guest", 4096, 0).await;
    raw.open_channel(1).await;
    publish_and_get(&mut raw, 4096, &pattern(5000)).await;
}

#[tokio::test]
async fn harmless_frames_are_accepted() {
    let server = common::start().await;
    let mut raw = Raw::open(server.local_addr).await;
    raw.open_channel(1).await;
    raw.open_channel(2).await;
    let q = raw.declare_queue(1, "").await;
    // A heartbeat on channel 0, also between a publish and its header; an
    // empty body frame; a method on another channel in the middle of a publish.
    raw.send(&raw_frame(8, 0, b"", FRAME_END)).await;
    raw.send(&cat(&[
        &publish(1, "", &q),
        &raw_frame(8, 0, b"", FRAME_END),
        &header(1, 5),
        &content_body(1, b""),
        &queue_declare(2, ""),
        &content_body(1, b"hello"),
    ]))
    .await;
    let m = raw.expect_method_on(2).await;
    assert!(matches!(m, AMQPClass::Queue(queue::AMQPMethod::DeclareOk(_))), "{m:?}");
    let got = raw.get(1, &q).await.map(|(_, b)| b);
    assert_eq!(got.as_deref(), Some(&b"hello"[..]));
}

#[tokio::test]
async fn wrong_protocol_headers_get_ours_back_and_a_closed_socket() {
    let server = common::start().await;
    for header in [
        &b"AMQP\x00\x00\x09\x00"[..],
        b"AMQP\x00\x00\x08\x00",
        b"AMQP\x00\x01\x00\x00",
        b"AMQP\x03\x01\x00\x00",
        b"HTTP/1.1",
        b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
    ] {
        let mut raw = Raw::connect(server.local_addr).await;
        raw.send(header).await;
        let mut got = [0u8; 8];
        tokio::time::timeout(common::TIMEOUT, tokio::io::AsyncReadExt::read_exact(&mut raw.stream, &mut got))
            .await
            .expect("protocol header in time")
            .unwrap();
        assert_eq!(&got, b"AMQP\x00\x00\x09\x01", "answer to {header:?}");
        assert!(matches!(raw.read(common::TIMEOUT).await, Read::Closed), "socket after {header:?}");
    }
    assert_serving(server.local_addr).await;
}

/// Where in the handshake the bad input is sent.
#[derive(Clone, Copy)]
enum Stage {
    /// After connection.start, instead of start-ok.
    Start,
    /// After connection.tune, instead of tune-ok.
    Tune,
    /// After tune-ok, instead of connection.open.
    Open,
}

/// Malformed handshake input: the broker must close the socket (Warren may
/// send connection.close first) and keep serving others.
async fn refused_during_handshake(stage: Stage, input: Vec<u8>) {
    let server = common::start().await;
    let mut raw = Raw::connect(server.local_addr).await;
    raw.send(b"AMQP\x00\x00\x09\x01").await;
    let m = raw.expect_method().await;
    assert!(matches!(m, AMQPClass::Connection(connection::AMQPMethod::Start(_))), "{m:?}");
    if !matches!(stage, Stage::Start) {
        raw.send(&start_ok("guest", "guest", FieldTable::default())).await;
        let m = raw.expect_method().await;
        assert!(matches!(m, AMQPClass::Connection(connection::AMQPMethod::Tune(_))), "{m:?}");
    }
    if matches!(stage, Stage::Open) {
        let tune_ok = connection::TuneOk { channel_max: 2047, frame_max: FRAME_MAX, heartbeat: 0 };
        raw.send(&method(0, AMQPClass::Connection(connection::AMQPMethod::TuneOk(tune_ok)))).await;
    }
    raw.send(&input).await;
    raw.expect_close_or_eof().await;
    assert_serving(server.local_addr).await;
}

macro_rules! handshake_refusals {
    ($($name:ident: $stage:expr, $input:expr;)*) => {$(
        #[tokio::test]
        async fn $name() {
            refused_during_handshake($stage, $input).await;
        }
    )*};
}

fn connection_open() -> Vec<u8> {
    method(
        0,
        AMQPClass::Connection(connection::AMQPMethod::Open(connection::Open { virtual_host: "/".into() })),
    )
}

fn big_start_ok() -> Vec<u8> {
    let mut props = FieldTable::default();
    props.insert("padding".into(), AMQPValue::LongString(LongString::from("x".repeat(5000))));
    start_ok("guest", "guest", props)
}

handshake_refusals! {
    handshake_start_ok_with_bad_frame_end: Stage::Start,
        with_end(start_ok("guest", "guest", FieldTable::default()), 0x00);
    handshake_unknown_frame_type: Stage::Start, raw_frame(9, 0, b"abc", FRAME_END);
    handshake_connection_open_instead_of_start_ok: Stage::Start, connection_open();
    handshake_channel_open_instead_of_start_ok: Stage::Start, channel_open(1);
    handshake_start_ok_on_channel_1: Stage::Start, {
        let mut f = start_ok("guest", "guest", FieldTable::default());
        f[1..3].copy_from_slice(&1u16.to_be_bytes());
        f
    };
    handshake_truncated_start_ok: Stage::Start,
        raw_frame(1, 0, &[0, 10, 0, 11, 0, 0, 0, 0, 200, b'P', b'L', b'A'], FRAME_END);
    handshake_oversized_frame_header_only: Stage::Start, frame_header_only(1, 0, 200_000);
    handshake_start_ok_larger_than_frame_min: Stage::Start, big_start_ok();
    handshake_content_header: Stage::Start, header(0, 5);
    handshake_heartbeat_on_channel_1: Stage::Start, raw_frame(8, 1, b"", FRAME_END);
    handshake_method_frame_garbage: Stage::Start, raw_frame(1, 0, &[0xde, 0xad], FRAME_END);
    handshake_tune_ok_frame_max_below_minimum: Stage::Tune, method(
        0,
        AMQPClass::Connection(connection::AMQPMethod::TuneOk(connection::TuneOk {
            channel_max: 2047,
            frame_max: 1000,
            heartbeat: 0,
        })),
    );
    handshake_connection_open_instead_of_tune_ok: Stage::Tune, connection_open();
    handshake_channel_open_before_connection_open: Stage::Open, channel_open(1);
    handshake_bad_frame_end_on_connection_open: Stage::Open, with_end(connection_open(), 0xCD);
}

/// The whole client side of a session, pipelined: handshake, channel.open,
/// queue.declare, a publish with a header and two body frames, basic.get.
fn whole_session() -> Vec<u8> {
    let tune_ok = connection::TuneOk { channel_max: 2047, frame_max: FRAME_MAX, heartbeat: 0 };
    let props = AMQPProperties::default().with_content_type("text/plain".into());
    cat(&[
        b"AMQP\x00\x00\x09\x01",
        &start_ok("guest", "guest", FieldTable::default()),
        &method(0, AMQPClass::Connection(connection::AMQPMethod::TuneOk(tune_ok))),
        &connection_open(),
        &channel_open(1),
        &queue_declare(1, "split-q"),
        &publish(1, "", "split-q"),
        &content_header(1, 11, props),
        &content_body(1, b"hello "),
        &content_body(1, b"world"),
        &basic_get(1, "split-q"),
    ])
}

async fn expect_session_replies(raw: &mut Raw) {
    let expect = |m: &AMQPClass, what: &str| match (m, what) {
        (AMQPClass::Connection(connection::AMQPMethod::Start(_)), "start")
        | (AMQPClass::Connection(connection::AMQPMethod::Tune(_)), "tune")
        | (AMQPClass::Connection(connection::AMQPMethod::OpenOk(_)), "open-ok")
        | (AMQPClass::Channel(channel::AMQPMethod::OpenOk(_)), "channel.open-ok")
        | (AMQPClass::Queue(queue::AMQPMethod::DeclareOk(_)), "declare-ok")
        | (AMQPClass::Basic(basic::AMQPMethod::GetOk(_)), "get-ok") => {}
        _ => panic!("expected {what}, got {m:?}"),
    };
    for (ch, what) in
        [(0, "start"), (0, "tune"), (0, "open-ok"), (1, "channel.open-ok"), (1, "declare-ok"), (1, "get-ok")]
    {
        expect(&raw.expect_method_on(ch).await, what);
    }
    let (props, body) = raw.expect_content(1).await;
    assert_eq!(props.content_type().as_ref().map(|s| s.as_str()), Some("text/plain"));
    assert_eq!(body, b"hello world");
}

#[tokio::test]
async fn whole_session_one_byte_per_write() {
    let server = common::start().await;
    let mut raw = Raw::connect(server.local_addr).await;
    raw.stream.set_nodelay(true).unwrap();
    for byte in whole_session() {
        raw.stream.write_all(&[byte]).await.unwrap();
        raw.stream.flush().await.unwrap();
    }
    expect_session_replies(&mut raw).await;
}

#[tokio::test]
async fn whole_session_in_one_write() {
    let server = common::start().await;
    let mut raw = Raw::connect(server.local_addr).await;
    raw.send(&whole_session()).await;
    expect_session_replies(&mut raw).await;
}
