//! `[limits]` and user limits: each at and past its value, with
//! RabbitMQ's refusal where RabbitMQ has the limit, over raw frames
//! against an in-process broker.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use amq_protocol::protocol::{basic, connection, exchange, AMQPClass};
use amq_protocol::types::FieldTable;
use common::{method, queue_declare, Raw, Read};
use warren::access::{Credential, UserLimits};

/// A user `u` (password `pw`) with every permission on `/`.
fn add_user(server: &warren::server::Server, name: &str) {
    server.access.put_user(name, Some(Credential::Password("pw".into())), None).unwrap();
    server.access.set_permission("/", name, ".*", ".*", ".*").unwrap();
}

/// The handshake as `user`; Ok with the open connection, or the close the
/// broker answered `connection.open` with.
async fn try_open(addr: SocketAddr, user: &str, pass: &str) -> Result<Raw, (u16, String, u16, u16)> {
    let mut raw = Raw::connect(addr).await;
    match raw.try_handshake(user, pass, 0, 0, 0).await {
        AMQPClass::Connection(connection::AMQPMethod::OpenOk(_)) => Ok(raw),
        AMQPClass::Connection(connection::AMQPMethod::Close(c)) => {
            Err((c.reply_code, c.reply_text.to_string(), c.class_id, c.method_id))
        }
        other => panic!("unexpected answer to connection.open: {other:?}"),
    }
}

/// Opens as `user`, retrying while a connection just closed may still be
/// counted (it leaves the registry when its task ends).
async fn open_eventually(addr: SocketAddr, user: &str, pass: &str) -> Raw {
    for _ in 0..100 {
        if let Ok(raw) = try_open(addr, user, pass).await {
            return raw;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("connection still refused after its peer closed");
}

async fn close(mut raw: Raw) {
    let close = connection::Close { reply_code: 200, reply_text: "bye".into(), class_id: 0, method_id: 0 };
    raw.send(&method(0, AMQPClass::Connection(connection::AMQPMethod::Close(close)))).await;
    raw.expect_socket_closed().await;
}

fn consume(ch: u16, queue: &str, tag: &str, no_ack: bool) -> Vec<u8> {
    let c = basic::Consume {
        queue: queue.into(),
        consumer_tag: tag.into(),
        no_local: false,
        no_ack,
        exclusive: false,
        nowait: false,
        arguments: FieldTable::default(),
    };
    method(ch, AMQPClass::Basic(basic::AMQPMethod::Consume(c)))
}

/// A consumer with acknowledgements on `ch`, its consume-ok read.
async fn start_consumer(raw: &mut Raw, ch: u16, queue: &str, tag: &str) {
    raw.send(&consume(ch, queue, tag, false)).await;
    let ok = raw.expect_method_on(ch).await;
    assert!(matches!(ok, AMQPClass::Basic(basic::AMQPMethod::ConsumeOk(_))), "{ok:?}");
}

fn get(ch: u16, queue: &str, no_ack: bool) -> Vec<u8> {
    method(ch, AMQPClass::Basic(basic::AMQPMethod::Get(basic::Get { queue: queue.into(), no_ack })))
}

fn ack(ch: u16, delivery_tag: u64) -> Vec<u8> {
    method(ch, AMQPClass::Basic(basic::AMQPMethod::Ack(basic::Ack { delivery_tag, multiple: false })))
}

fn exchange_declare(ch: u16, name: &str) -> Vec<u8> {
    let d = exchange::Declare {
        exchange: name.into(),
        kind: "fanout".into(),
        passive: false,
        durable: false,
        auto_delete: false,
        internal: false,
        nowait: false,
        arguments: FieldTable::default(),
    };
    method(ch, AMQPClass::Exchange(exchange::AMQPMethod::Declare(d)))
}

/// Deliveries that arrive on `ch` until it is quiet for a while: their tags.
async fn deliveries(raw: &mut Raw, ch: u16) -> Vec<u64> {
    let mut tags = Vec::new();
    loop {
        match raw.read(Duration::from_millis(300)).await {
            Read::Frame(amq_protocol::frame::AMQPFrame::Method(
                c,
                AMQPClass::Basic(basic::AMQPMethod::Deliver(d)),
            )) if c == ch => tags.push(d.delivery_tag),
            Read::Frame(_) => {} // content header and body
            Read::Silent => return tags,
            Read::Closed => panic!("the broker closed the connection"),
        }
    }
}

#[tokio::test]
async fn node_connection_limit_refuses_with_rabbitmq_text_and_frees_on_close() {
    let server = common::start_with(|c| c.limits.max_connections = 2).await;
    let addr = server.local_addr;
    let a = try_open(addr, "guest", "guest").await.expect("first");
    let _b = try_open(addr, "guest", "guest").await.expect("second");
    let refused = try_open(addr, "guest", "guest").await.err().expect("third refused");
    common::check_reply(
        &refused,
        (530, "NOT_ALLOWED - connection refused: node connection limit (2) is reached", 10, 40),
    );
    close(a).await;
    let _c = open_eventually(addr, "guest", "guest").await;
}

#[tokio::test]
async fn user_limits_cap_connections_and_channels_and_changes_apply_live() {
    let server = common::start().await;
    let addr = server.local_addr;
    add_user(&server, "app");
    let limits = UserLimits { max_connections: Some(1), max_channels: Some(2) };
    assert!(server.access.set_user_limits("app", limits).unwrap());
    let mut a = try_open(addr, "app", "pw").await.expect("first connection");
    let refused = try_open(addr, "app", "pw").await.err().expect("second refused");
    common::check_reply(
        &refused,
        (
            530,
            "NOT_ALLOWED - connection refused for user 'app': user connection limit (1) is reached",
            10,
            40,
        ),
    );
    // Other users are not limited by app's limits.
    let mut guest = Raw::open(addr).await;
    for ch in 1..=3 {
        guest.open_channel(ch).await;
    }
    a.open_channel(1).await;
    a.open_channel(7).await;
    // A raised limit applies to the connection already open.
    let raised = UserLimits { max_connections: Some(2), max_channels: Some(3) };
    server.access.set_user_limits("app", raised).unwrap();
    let mut b = try_open(addr, "app", "pw").await.expect("second connection after the raise");
    b.open_channel(1).await; // app's third channel, over both connections
    b.send(&method(
        2,
        AMQPClass::Channel(amq_protocol::protocol::channel::AMQPMethod::Open(Default::default())),
    ))
    .await;
    let got = b.expect_connection_close().await;
    common::check_reply(
        &got,
        (530, "NOT_ALLOWED - number of channels opened for user 'app' has reached the maximum allowed user limit of (3)", 0, 0),
    );
    b.expect_socket_closed().await;
    // Its channels were given back (once its task ended): the other
    // connection may open one more.
    for _ in 0..100 {
        if server.broker.connections.user_channels("app") == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    a.open_channel(2).await;
    // A negative limit is no limit.
    server
        .access
        .set_user_limits("app", UserLimits { max_connections: Some(-1), max_channels: None })
        .unwrap();
    let mut held = Vec::new();
    for _ in 0..3 {
        held.push(try_open(addr, "app", "pw").await.expect("no connection limit"));
    }
}

#[tokio::test]
async fn consumers_per_channel_are_capped_with_rabbitmq_text() {
    let server = common::start_with(|c| c.limits.consumer_max_per_channel = 2).await;
    let addr = server.local_addr;
    let mut raw = Raw::open(addr).await;
    raw.open_channel(1).await;
    raw.open_channel(2).await;
    let q = raw.declare_queue(1, "capped").await;
    start_consumer(&mut raw, 1, &q, "c1").await;
    start_consumer(&mut raw, 1, &q, "c2").await;
    // Another channel has its own count.
    start_consumer(&mut raw, 2, &q, "c3").await;
    common::connection_error_on(
        raw,
        addr,
        &consume(1, &q, "c4", false),
        (530, "NOT_ALLOWED - reached maximum (2) of consumers per channel", 60, 20),
    )
    .await;
}

#[tokio::test]
async fn unacked_per_channel_pauses_consumers_and_refuses_get() {
    let server = common::start_with(|c| c.limits.max_unacked_per_channel = 3).await;
    let addr = server.local_addr;
    let mut raw = Raw::open(addr).await;
    raw.open_channel(1).await;
    raw.open_channel(2).await;
    let q = raw.declare_queue(1, "deep").await;
    for i in 0..10 {
        raw.send(&common::message(1, "", &q, Default::default(), format!("m{i}").as_bytes(), 131_072)).await;
    }
    raw.round_trip(1).await;
    // No prefetch asked for: the cap stops deliveries at 3.
    start_consumer(&mut raw, 2, &q, "c").await;
    let first = deliveries(&mut raw, 2).await;
    assert_eq!(first.len(), 3, "deliveries up to the cap: {first:?}");
    raw.send(&ack(2, first[0])).await;
    let next = deliveries(&mut raw, 2).await;
    assert_eq!(next.len(), 1, "one settled, one more delivered: {next:?}");
    // basic.get past the cap is refused; without ack it is not limited.
    raw.send(&get(2, &q, true)).await;
    assert!(matches!(raw.expect_method_on(2).await, AMQPClass::Basic(basic::AMQPMethod::GetOk(_))));
    let _ = raw.expect_content(2).await;
    common::channel_error_on(
        &mut raw,
        addr,
        2,
        1,
        &get(2, &q, false),
        (406, "PRECONDITION_FAILED - unacknowledged messages on this channel reached the limit (3)", 60, 70),
    )
    .await;
}

/// Sends `input` on channel 1, expects it closed with `want`, reopens it.
async fn refused(raw: &mut Raw, input: &[u8], want: common::Reply) {
    raw.send(input).await;
    common::check_reply(&raw.expect_channel_close(1).await, want);
    raw.open_channel(1).await;
}

#[tokio::test]
async fn queues_and_exchanges_per_vhost_are_capped() {
    let server = common::start_with(|c| {
        c.limits.max_queues_per_vhost = 2;
        // `/` starts with the 6 predeclared exchanges.
        c.limits.max_exchanges_per_vhost = 7;
    })
    .await;
    let mut raw = Raw::open(server.local_addr).await;
    raw.open_channel(1).await;
    raw.declare_queue(1, "q1").await;
    raw.declare_queue(1, "q2").await;
    raw.declare_queue(1, "q1").await; // redeclaring is no new queue
    refused(
        &mut raw,
        &queue_declare(1, "q3"),
        (
            406,
            "PRECONDITION_FAILED - cannot declare queue 'q3': queue limit in vhost '/' (2) is reached",
            50,
            10,
        ),
    )
    .await;
    raw.send(&exchange_declare(1, "x1")).await;
    assert!(matches!(raw.expect_method_on(1).await, AMQPClass::Exchange(exchange::AMQPMethod::DeclareOk(_))));
    refused(
        &mut raw,
        &exchange_declare(1, "x2"),
        (
            406,
            "PRECONDITION_FAILED - cannot declare exchange 'x2': exchange limit in vhost '/' (7) is reached",
            40,
            10,
        ),
    )
    .await;
    // A vhost's own max-queues, when lower, wins.
    let v = server.broker.vhost("/").unwrap();
    let mut meta = v.meta();
    meta.limits.max_queues = Some(1);
    assert!(v.set_meta(meta));
    refused(
        &mut raw,
        &queue_declare(1, "q4"),
        (
            406,
            "PRECONDITION_FAILED - cannot declare queue 'q4': queue limit in vhost '/' (1) is reached",
            50,
            10,
        ),
    )
    .await;
}
