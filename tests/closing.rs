//! Close handshakes from both sides at once, as raw frames pipelined so the
//! broker sees them in exactly this order. The rule (AMQP 0-9-1, and what
//! RabbitMQ does): while a channel or the connection is closing, a `close`
//! from the peer is answered with `close-ok`, everything else is ignored until
//! the `close-ok` arrives, and nothing at all is sent after
//! `connection.close-ok`.

mod common;

use std::time::Duration;

use amq_protocol::frame::AMQPFrame;
use amq_protocol::protocol::basic::AMQPProperties;
use amq_protocol::protocol::{basic, channel, confirm, connection, queue, AMQPClass};
use common::{message, method, publish, queue_declare, queue_declare_with, Raw, Read};

fn channel_close(ch: u16) -> Vec<u8> {
    let close = channel::Close { reply_code: 200, reply_text: "bye".into(), class_id: 0, method_id: 0 };
    method(ch, AMQPClass::Channel(channel::AMQPMethod::Close(close)))
}

fn channel_close_ok(ch: u16) -> Vec<u8> {
    method(ch, AMQPClass::Channel(channel::AMQPMethod::CloseOk(channel::CloseOk {})))
}

fn connection_close() -> Vec<u8> {
    let close = connection::Close { reply_code: 200, reply_text: "bye".into(), class_id: 0, method_id: 0 };
    method(0, AMQPClass::Connection(connection::AMQPMethod::Close(close)))
}

fn connection_close_ok() -> Vec<u8> {
    method(0, AMQPClass::Connection(connection::AMQPMethod::CloseOk(connection::CloseOk {})))
}

fn confirm_select(ch: u16) -> Vec<u8> {
    method(ch, AMQPClass::Confirm(confirm::AMQPMethod::Select(confirm::Select { nowait: false })))
}

/// A publish to an exchange that does not exist: the server closes the channel (404).
fn publish_to_missing_exchange(ch: u16) -> Vec<u8> {
    message(ch, "no-such-exchange", "k", AMQPProperties::default(), b"x", 4096)
}

fn basic_ack(ch: u16, tag: u64) -> Vec<u8> {
    method(ch, AMQPClass::Basic(basic::AMQPMethod::Ack(basic::Ack { delivery_tag: tag, multiple: false })))
}

/// Every frame the broker sends until it closes the socket.
async fn frames_until_closed(raw: &mut Raw) -> Vec<AMQPFrame> {
    let mut frames = Vec::new();
    loop {
        match raw.read(Duration::from_secs(10)).await {
            Read::Frame(AMQPFrame::Heartbeat) => {}
            Read::Frame(f) => frames.push(f),
            Read::Closed => return frames,
            Read::Silent => panic!("the broker neither closed the socket nor said more: {frames:?}"),
        }
    }
}

fn is_channel_close(f: &AMQPFrame, ch: u16, code: u16) -> bool {
    matches!(f, AMQPFrame::Method(id, AMQPClass::Channel(channel::AMQPMethod::Close(c)))
        if *id == ch && c.reply_code == code)
}

fn is_channel_close_ok(f: &AMQPFrame, ch: u16) -> bool {
    matches!(f, AMQPFrame::Method(id, AMQPClass::Channel(channel::AMQPMethod::CloseOk(_))) if *id == ch)
}

#[tokio::test]
async fn both_sides_close_a_channel_at_once() {
    let server = common::start().await;
    let mut raw = Raw::open(server.local_addr).await;
    raw.open_channel(1).await;
    raw.open_channel(2).await;
    // The client closes the channel while the server's 404 close is on its way.
    raw.send(&[publish_to_missing_exchange(1), channel_close(1)].concat()).await;
    expect_crossed_closes(&mut raw).await;
    // The client answers the server's close: the channel is gone, nothing else happens.
    raw.send(&channel_close_ok(1)).await;
    expect_both_channels_work(&mut raw).await;
}

/// The server's 404 close of channel 1, then its close-ok for the client's close.
async fn expect_crossed_closes(raw: &mut Raw) {
    let first = raw.expect_frame().await;
    assert!(is_channel_close(&first, 1, 404), "{first:?}");
    let second = raw.expect_frame().await;
    assert!(is_channel_close_ok(&second, 1), "the client's close is answered: {second:?}");
}

/// Channel 2 was never disturbed; channel 1 reopens and works.
async fn expect_both_channels_work(raw: &mut Raw) {
    raw.round_trip(2).await;
    raw.open_channel(1).await;
    raw.round_trip(1).await;
}

#[tokio::test]
async fn both_sides_close_a_channel_and_the_close_oks_cross() {
    let server = common::start().await;
    let mut raw = Raw::open(server.local_addr).await;
    raw.open_channel(1).await;
    raw.open_channel(2).await;
    // Close and close-ok pipelined in one write, before reading anything.
    raw.send(&[publish_to_missing_exchange(1), channel_close(1), channel_close_ok(1)].concat()).await;
    expect_crossed_closes(&mut raw).await;
    expect_both_channels_work(&mut raw).await;
}

#[tokio::test]
async fn a_closing_channel_ignores_everything_but_close_and_close_ok() {
    let server = common::start().await;
    let mut raw = Raw::open(server.local_addr).await;
    raw.open_channel(1).await;
    raw.open_channel(2).await;
    let q = raw.declare_queue(2, "").await;
    raw.send(
        &[
            publish_to_missing_exchange(1),
            // All of this arrives after the server closed the channel: ignored.
            message(1, "", &q, AMQPProperties::default(), b"ignored", 4096),
            queue_declare(1, "ignored-q"),
            basic_ack(1, 99),
            publish(1, "", &q),
            channel_close_ok(1),
        ]
        .concat(),
    )
    .await;
    let first = raw.expect_frame().await;
    assert!(is_channel_close(&first, 1, 404), "{first:?}");
    // Nothing else came on channel 1, nothing reached the queue.
    raw.round_trip(2).await;
    assert_eq!(raw.get(2, &q).await, None);
    raw.send(&queue_declare_with(2, "ignored-q", true, false, false, false)).await;
    let m = raw.expect_frame().await;
    assert!(is_channel_close(&m, 2, 404), "ignored-q was declared: {m:?}");
    raw.send(&channel_close_ok(2)).await;
    raw.open_channel(1).await;
    raw.round_trip(1).await;
}

#[tokio::test]
async fn client_closes_the_connection_while_the_server_closes_it() {
    let server = common::start().await;
    let mut raw = Raw::open(server.local_addr).await;
    raw.open_channel(1).await;
    // basic.publish with immediate=true is a connection error (540); the
    // client's own connection.close is right behind it.
    let p =
        basic::Publish { exchange: "".into(), routing_key: "q".into(), mandatory: false, immediate: true };
    raw.send(&[method(1, AMQPClass::Basic(basic::AMQPMethod::Publish(p))), connection_close()].concat())
        .await;
    match raw.expect_frame().await {
        AMQPFrame::Method(0, AMQPClass::Connection(connection::AMQPMethod::Close(c))) => {
            assert_eq!(c.reply_code, 540)
        }
        other => panic!("expected connection.close, got {other:?}"),
    }
    match raw.expect_frame().await {
        AMQPFrame::Method(0, AMQPClass::Connection(connection::AMQPMethod::CloseOk(_))) => {}
        other => panic!("the client's close is answered with close-ok, got {other:?}"),
    }
    // The server still waits for the close-ok of its own close; then the socket ends.
    raw.send(&connection_close_ok()).await;
    assert!(frames_until_closed(&mut raw).await.is_empty());
    common::assert_serving(server.local_addr).await;
}

#[tokio::test]
async fn nothing_is_sent_after_connection_close_ok() {
    let server = common::start().await;
    for durable in [false, true] {
        let mut raw = Raw::open(server.local_addr).await;
        raw.open_channel(1).await;
        let q = format!("after-close-{durable}");
        raw.send(&queue_declare_with(1, &q, false, durable, false, false)).await;
        raw.expect_method_on(1).await;
        raw.send(&confirm_select(1)).await;
        raw.expect_method_on(1).await;
        // Publishes with confirms pending and the close, in one write.
        let props = AMQPProperties::default().with_delivery_mode(if durable { 2 } else { 1 });
        let mut input = Vec::new();
        for i in 0..200 {
            input.extend(message(1, "", &q, props.clone(), format!("m{i}").as_bytes(), 4096));
        }
        input.extend(connection_close());
        raw.send(&input).await;
        let frames = frames_until_closed(&mut raw).await;
        let close_ok = frames
            .iter()
            .position(|f| {
                matches!(f, AMQPFrame::Method(0, AMQPClass::Connection(connection::AMQPMethod::CloseOk(_))))
            })
            .unwrap_or_else(|| panic!("no close-ok in {frames:?}"));
        assert_eq!(close_ok, frames.len() - 1, "frames after close-ok (durable {durable}): {frames:?}");
        // Whatever came before close-ok are confirms for these publishes; the
        // transient ones, confirmed at once, are all confirmed before it.
        let acked = frames[..close_ok].iter().map(|f| match f {
            AMQPFrame::Method(1, AMQPClass::Basic(basic::AMQPMethod::Ack(a))) => a.delivery_tag,
            other => panic!("only confirms may come before close-ok, got {other:?}"),
        });
        let last = acked.max();
        if !durable {
            assert_eq!(last, Some(200), "transient publishes confirmed before close-ok");
        }
    }
    common::assert_serving(server.local_addr).await;
}

/// Deliveries the broker had already handed the connection for a channel
/// the client then closes go back to their queue before close-ok: a purge
/// sent right after finds every message. Pipelined in one write, so the
/// deliveries are still on their way to the socket when the close is read.
#[tokio::test]
async fn a_closed_channels_deliveries_on_their_way_are_ready_again_at_once() {
    let server = common::start().await;
    let mut raw = Raw::open(server.local_addr).await;
    raw.open_channel(1).await;
    raw.open_channel(2).await;
    let q = raw.declare_queue(1, "").await;
    let mut input = Vec::new();
    for i in 0..100 {
        input.extend(message(1, "", &q, AMQPProperties::default(), format!("m{i}").as_bytes(), 4096));
    }
    raw.send(&input).await;
    raw.round_trip(1).await;
    let consume = basic::Consume {
        queue: q.as_str().into(),
        consumer_tag: "c".into(),
        no_local: false,
        no_ack: false,
        exclusive: false,
        nowait: true,
        arguments: Default::default(),
    };
    let purge = queue::Purge { queue: q.as_str().into(), nowait: false };
    raw.send(
        &[
            method(2, AMQPClass::Basic(basic::AMQPMethod::Consume(consume))),
            channel_close(2),
            method(1, AMQPClass::Queue(queue::AMQPMethod::Purge(purge))),
        ]
        .concat(),
    )
    .await;
    let purged = loop {
        match raw.expect_frame().await {
            AMQPFrame::Method(1, AMQPClass::Queue(queue::AMQPMethod::PurgeOk(ok))) => break ok.message_count,
            AMQPFrame::Method(2, AMQPClass::Channel(channel::AMQPMethod::CloseOk(_))) => {}
            // Deliveries written before the close count as unacked: back too.
            AMQPFrame::Method(2, AMQPClass::Basic(basic::AMQPMethod::Deliver(_))) => {}
            AMQPFrame::Header(2, ..) | AMQPFrame::Body(2, _) => {}
            other => panic!("unexpected {other:?}"),
        }
    };
    assert_eq!(purged, 100);
}
