//! Bad input at the method level, sent as raw frames: unknown and malformed
//! methods, methods on unopened channels or channel 0, channel.open misuse,
//! unsupported basic flags, and the channel-level errors (403, 404, 405, 406).
//! Expected replies follow RabbitMQ 3.10 (notes/rabbit-errors.md) except
//! where Warren deliberately differs (unknown methods).
//!
//! After a connection error the broker must still serve a fresh connection;
//! after a channel error the connection's other channels keep working and
//! the closed channel can be reopened.

mod common;

use amq_protocol::frame::AMQPFrame;
use amq_protocol::protocol::basic::AMQPProperties;
use amq_protocol::protocol::{basic, channel, connection, exchange, queue, AMQPClass};
use amq_protocol::types::FieldTable;
use common::{
    channel_error_on, connection_error_on, message, method, publish, queue_declare, queue_declare_with,
    raw_frame, Raw, Read, Reply, FRAME_END, TIMEOUT,
};

const CHANNEL_NOT_OPEN: &str = "CHANNEL_ERROR - expected 'channel.open'";
const CHANNEL_0: &str = "CHANNEL_ERROR - unexpected method in connection state running";
const SECOND_OPEN: Reply = (504, "CHANNEL_ERROR - second 'channel.open' seen", 20, 10);
const LOCKED: &str = "RESOURCE_LOCKED - cannot obtain exclusive access to locked queue 'excl-q' in vhost '/'";

fn cat(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}

/// A method frame from a raw payload (class and method ids included).
fn method_raw(ch: u16, payload: &[u8]) -> Vec<u8> {
    raw_frame(1, ch, payload, FRAME_END)
}

/// The payload of an encoded frame.
fn payload_of(frame: &[u8]) -> &[u8] {
    &frame[7..frame.len() - 1]
}

fn channel_open(ch: u16) -> Vec<u8> {
    method(ch, AMQPClass::Channel(channel::AMQPMethod::Open(channel::Open {})))
}

fn channel_close(ch: u16) -> Vec<u8> {
    let close = channel::Close { reply_code: 200, reply_text: "bye".into(), class_id: 0, method_id: 0 };
    method(ch, AMQPClass::Channel(channel::AMQPMethod::Close(close)))
}

fn exchange_declare(ch: u16, name: &str, kind: &str, passive: bool) -> Vec<u8> {
    let d = exchange::Declare {
        exchange: name.into(),
        kind: kind.into(),
        passive,
        durable: false,
        auto_delete: false,
        internal: false,
        nowait: false,
        arguments: FieldTable::default(),
    };
    method(ch, AMQPClass::Exchange(exchange::AMQPMethod::Declare(d)))
}

fn consume(ch: u16, queue: &str, tag: &str) -> Vec<u8> {
    let c = basic::Consume {
        queue: queue.into(),
        consumer_tag: tag.into(),
        no_local: false,
        no_ack: false,
        exclusive: false,
        nowait: false,
        arguments: FieldTable::default(),
    };
    method(ch, AMQPClass::Basic(basic::AMQPMethod::Consume(c)))
}

fn ack(ch: u16, delivery_tag: u64) -> Vec<u8> {
    method(ch, AMQPClass::Basic(basic::AMQPMethod::Ack(basic::Ack { delivery_tag, multiple: false })))
}

/// basic.get that leaves the message unacknowledged.
fn get_with_ack(ch: u16, queue: &str) -> Vec<u8> {
    method(ch, AMQPClass::Basic(basic::AMQPMethod::Get(basic::Get { queue: queue.into(), no_ack: false })))
}

fn msg(ch: u16, exchange: &str, routing_key: &str, body: &[u8]) -> Vec<u8> {
    message(ch, exchange, routing_key, AMQPProperties::default(), body, 131_072)
}

/// Cases that must end in connection.close (channels 1 and 2 open).
macro_rules! connection_errors {
    ($($name:ident: $input:expr => $want:expr;)*) => {$(
        #[tokio::test]
        async fn $name() {
            let server = common::start().await;
            common::connection_error(server.local_addr, &$input, $want).await;
        }
    )*};
}

/// Cases that must end in channel.close on channel 1 (channels 1 and 2 open).
macro_rules! channel_errors {
    ($($name:ident: $input:expr => $want:expr;)*) => {$(
        #[tokio::test]
        async fn $name() {
            let server = common::start().await;
            common::channel_error(server.local_addr, &$input, $want).await;
        }
    )*};
}

connection_errors! {
    // A close-ok on an open channel that is not closing, and on one never opened (RabbitMQ 3.10.8).
    close_ok_on_an_open_channel: method(1, AMQPClass::Channel(channel::AMQPMethod::CloseOk(channel::CloseOk {})))
        => (503, "COMMAND_INVALID - unimplemented method", 20, 41);
    close_ok_on_an_unopened_channel: method(7, AMQPClass::Channel(channel::AMQPMethod::CloseOk(channel::CloseOk {})))
        => (504, "CHANNEL_ERROR - expected 'channel.open'", 20, 41);
    // Unknown classes and methods: Warren answers 540 (RabbitMQ drops the socket).
    unknown_class_on_channel_1: method_raw(1, &[0x03, 0xe7, 0, 10]) => (540, "NOT_IMPLEMENTED - ", 999, 10);
    unknown_class_on_channel_0: method_raw(0, &[0x03, 0xe7, 0, 10]) => (540, "NOT_IMPLEMENTED - ", 999, 10);
    unknown_queue_method_on_channel_1: method_raw(1, &[0, 50, 0, 99]) => (540, "NOT_IMPLEMENTED - ", 50, 99);
    unknown_connection_method_on_channel_0: method_raw(0, &[0, 10, 0, 99])
        => (540, "NOT_IMPLEMENTED - ", 10, 99);

    // Malformed method payloads: 501 with the method's ids.
    queue_declare_name_overruns_the_frame: method_raw(1, &[0, 50, 0, 10, 0, 0, 200, b'a', b'b', b'c'])
        => (501, "FRAME_ERROR - ", 50, 10);
    queue_declare_without_bits_and_table: method_raw(1, &[0, 50, 0, 10, 0, 0, 1, b'q'])
        => (501, "FRAME_ERROR - ", 50, 10);
    queue_declare_table_longer_than_the_frame:
        method_raw(1, &[0, 50, 0, 10, 0, 0, 0, 4, 0, 0, 3, 232, b'a', b'b', b'c'])
        => (501, "FRAME_ERROR - ", 50, 10);
    queue_declare_with_trailing_garbage:
        method_raw(1, &cat(&[payload_of(&queue_declare(1, "q")), &[1, 2, 3, 4, 5]]))
        => (501, "FRAME_ERROR - ", 50, 10);
    queue_declare_table_with_unknown_field_type:
        method_raw(1, &[0, 50, 0, 10, 0, 0, 1, b'q', 0, 0, 0, 0, 4, 1, b'x', b'Z', 0])
        => (501, "FRAME_ERROR - ", 50, 10);
    truncated_basic_publish: method_raw(1, &[0, 60, 0, 40, 0]) => (501, "FRAME_ERROR - ", 60, 40);
    basic_publish_with_trailing_garbage: method_raw(1, &cat(&[payload_of(&publish(1, "", "q")), &[7]]))
        => (501, "FRAME_ERROR - ", 60, 40);
    truncated_basic_ack: method_raw(1, &[0, 60, 0, 80, 0, 0, 0]) => (501, "FRAME_ERROR - ", 60, 80);
    truncated_basic_qos: method_raw(1, &[0, 60, 0, 10, 0]) => (501, "FRAME_ERROR - ", 60, 10);
    truncated_channel_open: method_raw(3, &[0, 20, 0, 10]) => (501, "FRAME_ERROR - ", 20, 10);

    // Methods on channels that were never opened.
    queue_declare_on_unopened_channel: queue_declare(5, "") => (504, CHANNEL_NOT_OPEN, 50, 10);
    basic_publish_on_unopened_channel: publish(5, "", "q") => (504, CHANNEL_NOT_OPEN, 60, 40);
    channel_close_on_unopened_channel: channel_close(5) => (504, CHANNEL_NOT_OPEN, 20, 40);
    channel_close_ok_on_unopened_channel:
        method(5, AMQPClass::Channel(channel::AMQPMethod::CloseOk(channel::CloseOk {})))
        => (504, CHANNEL_NOT_OPEN, 20, 41);

    // Non-connection methods on channel 0, connection methods elsewhere.
    queue_declare_on_channel_0: queue_declare(0, "") => (504, CHANNEL_0, 50, 10);
    basic_publish_on_channel_0: msg(0, "", "q", b"hello") => (504, CHANNEL_0, 60, 40);
    channel_open_on_channel_0: channel_open(0) => (504, CHANNEL_0, 20, 10);
    second_connection_open: method(
        0,
        AMQPClass::Connection(connection::AMQPMethod::Open(connection::Open { virtual_host: "/".into() })),
    ) => (504, CHANNEL_0, 10, 40);
    connection_close_on_channel_1: method(
        1,
        AMQPClass::Connection(connection::AMQPMethod::Close(connection::Close {
            reply_code: 200,
            reply_text: "bye".into(),
            class_id: 0,
            method_id: 0,
        })),
    ) => (503, "COMMAND_INVALID - ", 10, 50);
    server_method_queue_declare_ok_from_client: method(
        1,
        AMQPClass::Queue(queue::AMQPMethod::DeclareOk(queue::DeclareOk {
            queue: "q".into(),
            message_count: 0,
            consumer_count: 0,
        })),
    ) => (503, "COMMAND_INVALID - ", 50, 11);

    // channel.open misuse.
    channel_open_twice: channel_open(1) => SECOND_OPEN;

    // Unsupported or reused basic features.
    basic_publish_immediate: cat(&[
        &method(
            1,
            AMQPClass::Basic(basic::AMQPMethod::Publish(basic::Publish {
                exchange: "".into(),
                routing_key: "q".into(),
                mandatory: false,
                immediate: true,
            })),
        ),
        &msg(1, "", "q", b"hello")[publish(1, "", "q").len()..],
    ]) => (540, "NOT_IMPLEMENTED - immediate=true", 60, 40);
    basic_qos_prefetch_size: method_raw(1, &[0, 60, 0, 10, 0, 0, 3, 232, 0, 10, 0])
        => (540, "NOT_IMPLEMENTED - prefetch_size!=0 (1000)", 60, 10);
    consumer_tag_reuse: cat(&[&queue_declare(1, "ctag-q"), &consume(1, "ctag-q", "ctag1"), &consume(1, "ctag-q", "ctag1")])
        => (530, "NOT_ALLOWED - attempt to reuse consumer tag 'ctag1'", 60, 20);
    channel_flow_inactive: method(1, AMQPClass::Channel(channel::AMQPMethod::Flow(channel::Flow { active: false })))
        => (540, "NOT_IMPLEMENTED - active=false", 20, 20);
}

channel_errors! {
    ack_of_unknown_tag: ack(1, 99) => (406, "PRECONDITION_FAILED - unknown delivery tag 99", 60, 80);
    ack_of_tag_0: ack(1, 0) => (406, "PRECONDITION_FAILED - unknown delivery tag 0", 60, 80);
    ack_of_same_tag_twice: cat(&[
        &queue_declare(1, "ack-q"),
        &msg(1, "", "ack-q", b"hello"),
        &get_with_ack(1, "ack-q"),
        &ack(1, 1),
        &ack(1, 1),
    ]) => (406, "PRECONDITION_FAILED - unknown delivery tag 1", 60, 80);
    reject_of_unknown_tag: method(
        1,
        AMQPClass::Basic(basic::AMQPMethod::Reject(basic::Reject { delivery_tag: 99, requeue: false })),
    ) => (406, "PRECONDITION_FAILED - unknown delivery tag 99", 60, 90);
    nack_of_unknown_tag: method(
        1,
        AMQPClass::Basic(basic::AMQPMethod::Nack(basic::Nack { delivery_tag: 99, multiple: false, requeue: false })),
    ) => (406, "PRECONDITION_FAILED - unknown delivery tag 99", 60, 120);
    passive_declare_of_missing_queue: queue_declare_with(1, "missing-q", true, false, false, false)
        => (404, "NOT_FOUND - no queue 'missing-q' in vhost '/'", 50, 10);
    passive_declare_of_missing_exchange: exchange_declare(1, "missing-x", "direct", true)
        => (404, "NOT_FOUND - no exchange 'missing-x' in vhost '/'", 40, 10);
    publish_to_missing_exchange: msg(1, "missing-x", "rk", b"hello")
        => (404, "NOT_FOUND - no exchange 'missing-x' in vhost '/'", 60, 40);
    get_from_missing_queue: get_with_ack(1, "missing-q")
        => (404, "NOT_FOUND - no queue 'missing-q' in vhost '/'", 60, 70);
    queue_declare_with_amq_prefix: queue_declare(1, "amq.foo")
        => (403, "ACCESS_REFUSED - queue name 'amq.foo' contains reserved prefix 'amq.*'", 50, 10);
    exchange_declare_with_amq_prefix: exchange_declare(1, "amq.foo", "direct", false)
        => (403, "ACCESS_REFUSED - exchange name 'amq.foo' contains reserved prefix 'amq.*'", 40, 10);
    queue_redeclared_with_other_durability: cat(&[
        &queue_declare_with(1, "ineq-q", false, true, false, false),
        &queue_declare_with(1, "ineq-q", false, false, false, false),
    ]) => (
        406,
        "PRECONDITION_FAILED - inequivalent arg 'durable' for queue 'ineq-q' in vhost '/': \
         received 'false' but current is 'true'",
        50,
        10,
    );
    exchange_redeclared_with_other_type: cat(&[
        &exchange_declare(1, "ineq-x", "direct", false),
        &exchange_declare(1, "ineq-x", "fanout", false),
    ]) => (
        406,
        "PRECONDITION_FAILED - inequivalent arg 'type' for exchange 'ineq-x' in vhost '/': \
         received 'fanout' but current is 'direct'",
        40,
        10,
    );
}

/// Reads up to channel.close on `ch` without answering close-ok.
async fn channel_close_unanswered(raw: &mut Raw, ch: u16) {
    loop {
        match raw.read(TIMEOUT).await {
            Read::Frame(AMQPFrame::Method(id, AMQPClass::Channel(channel::AMQPMethod::Close(_))))
                if id == ch =>
            {
                return
            }
            Read::Frame(_) => continue,
            other => panic!("expected channel.close, got {other:?}"),
        }
    }
}

#[tokio::test]
async fn channel_open_again_before_close_ok() {
    let server = common::start().await;
    let mut raw = Raw::open(server.local_addr).await;
    raw.open_channel(1).await;
    raw.send(&queue_declare_with(1, "missing-q", true, false, false, false)).await;
    channel_close_unanswered(&mut raw, 1).await;
    connection_error_on(raw, server.local_addr, &channel_open(1), SECOND_OPEN).await;
}

#[tokio::test]
async fn method_on_a_channel_the_server_closed() {
    let server = common::start().await;
    let mut raw = Raw::open(server.local_addr).await;
    raw.open_channel(1).await;
    raw.send(&queue_declare_with(1, "missing-q", true, false, false, false)).await;
    raw.expect_channel_close(1).await;
    connection_error_on(raw, server.local_addr, &queue_declare(1, ""), (504, CHANNEL_NOT_OPEN, 50, 10)).await;
}

#[tokio::test]
async fn method_on_a_channel_the_client_closed() {
    let server = common::start().await;
    let mut raw = Raw::open(server.local_addr).await;
    raw.open_channel(1).await;
    raw.send(&channel_close(1)).await;
    let m = raw.expect_method_on(1).await;
    assert!(matches!(m, AMQPClass::Channel(channel::AMQPMethod::CloseOk(_))), "{m:?}");
    connection_error_on(raw, server.local_addr, &queue_declare(1, ""), (504, CHANNEL_NOT_OPEN, 50, 10)).await;
}

/// RabbitMQ's close when one channel more than channel_max would be open.
fn too_many_channels(open: u16, max: u16) -> String {
    format!("NOT_ALLOWED - number of channels opened ({open}) has reached the negotiated channel_max ({max})")
}

#[tokio::test]
async fn channel_open_past_the_client_channel_max() {
    let server = common::start().await;
    let mut raw = Raw::connect(server.local_addr).await;
    raw.handshake_tuned("guest", "guest", 2, 0, 0).await;
    raw.open_channel(1).await;
    raw.open_channel(2).await;
    raw.send(&channel_open(3)).await;
    assert_eq!(raw.expect_connection_close().await, (530, too_many_channels(2, 2), 0, 0));
    raw.expect_socket_closed().await;
    common::assert_serving(server.local_addr).await;
}

#[tokio::test]
async fn channel_max_limits_open_channels_not_their_numbers() {
    let server = common::start_with(|c| c.amqp.channel_max = 5).await;
    let mut raw = Raw::open(server.local_addr).await;
    // Numbers far above channel_max open and work, as on RabbitMQ 3.10.
    for ch in [300, 65535, 5, 1] {
        raw.open_channel(ch).await;
        raw.round_trip(ch).await;
    }
    // A closed channel frees its place.
    raw.send(&channel_close(300)).await;
    let m = raw.expect_method_on(300).await;
    assert!(matches!(m, AMQPClass::Channel(channel::AMQPMethod::CloseOk(_))), "{m:?}");
    raw.open_channel(6).await;
    raw.open_channel(7).await;
    raw.send(&channel_open(8)).await;
    assert_eq!(raw.expect_connection_close().await, (530, too_many_channels(5, 5), 0, 0));
    raw.expect_socket_closed().await;
    common::assert_serving(server.local_addr).await;
}

#[tokio::test]
async fn consumer_tag_may_repeat_on_another_channel() {
    let server = common::start().await;
    let mut raw = Raw::open(server.local_addr).await;
    raw.open_channel(1).await;
    raw.open_channel(2).await;
    let q = raw.declare_queue(1, "").await;
    for ch in [1, 2] {
        raw.send(&consume(ch, &q, "ctag1")).await;
        let m = raw.expect_method_on(ch).await;
        assert!(matches!(m, AMQPClass::Basic(basic::AMQPMethod::ConsumeOk(_))), "{m:?}");
    }
}

#[tokio::test]
async fn message_bigger_than_max_message_size() {
    let server = common::start_with(|c| c.amqp.max_message_size = 100).await;
    let addr = server.local_addr;
    let mut raw = Raw::open(addr).await;
    raw.open_channel(1).await;
    raw.open_channel(2).await;
    // Exactly at the limit is fine.
    let q = raw.declare_queue(1, "").await;
    raw.send(&msg(1, "", &q, &[b'a'; 100])).await;
    assert_eq!(raw.get(1, &q).await.map(|(_, b)| b), Some(vec![b'a'; 100]));
    let input = msg(1, "", &q, &[b'b'; 200]);
    let want = (406, "PRECONDITION_FAILED - message size 200 is larger than configured max size 100", 60, 40);
    channel_error_on(&mut raw, addr, 1, 2, &input, want).await;
    assert_eq!(raw.get(1, &q).await, None, "the refused message was routed");
}

#[tokio::test]
async fn user_id_must_match_the_user() {
    let server = common::start().await;
    let addr = server.local_addr;
    let mut raw = Raw::open(addr).await;
    raw.open_channel(1).await;
    raw.open_channel(2).await;
    let q = raw.declare_queue(1, "").await;
    let props = |user: &str| AMQPProperties::default().with_user_id(user.into());
    raw.send(&message(1, "", &q, props("guest"), b"mine", 4096)).await;
    let (got_props, body) = raw.get(1, &q).await.expect("the guest message");
    assert_eq!((got_props.user_id().as_ref().map(|u| u.as_str()), &body[..]), (Some("guest"), &b"mine"[..]));
    let input = message(1, "", &q, props("bob"), b"forged", 4096);
    let want = (
        406,
        "PRECONDITION_FAILED - user_id property set to 'bob' but authenticated user was 'guest'",
        60,
        40,
    );
    channel_error_on(&mut raw, addr, 1, 2, &input, want).await;
    assert_eq!(raw.get(1, &q).await, None, "the forged message was routed");
}

#[tokio::test]
async fn exclusive_queue_of_another_connection() {
    let server = common::start().await;
    let addr = server.local_addr;
    let mut owner = Raw::open(addr).await;
    owner.open_channel(1).await;
    owner.send(&queue_declare_with(1, "excl-q", false, false, true, false)).await;
    let m = owner.expect_method_on(1).await;
    assert!(matches!(m, AMQPClass::Queue(queue::AMQPMethod::DeclareOk(_))), "{m:?}");

    let mut other = Raw::open(addr).await;
    other.open_channel(1).await;
    other.open_channel(2).await;
    for (input, class, method) in [
        (queue_declare_with(1, "excl-q", false, false, true, false), 50, 10),
        (queue_declare(1, "excl-q"), 50, 10),
        (queue_declare_with(1, "excl-q", true, false, false, false), 50, 10),
        (get_with_ack(1, "excl-q"), 60, 70),
        (consume(1, "excl-q", ""), 60, 20),
    ] {
        channel_error_on(&mut other, addr, 1, 2, &input, (405, LOCKED, class, method)).await;
    }
    // The owner is unaffected.
    owner.send(&msg(1, "", "excl-q", b"still mine")).await;
    assert_eq!(owner.get(1, "excl-q").await.map(|(_, b)| b), Some(b"still mine".to_vec()));
}
