//! Messages a client starts and does not finish: the memory they hold is
//! bounded per connection, and during a memory alarm a publisher is blocked
//! half-way through a message instead of being read until it finishes.

mod common;

use std::time::Duration;

use amq_protocol::frame::AMQPFrame;
use amq_protocol::protocol::basic::AMQPProperties;
use amq_protocol::protocol::{connection, AMQPClass};
use common::{content_body, content_header, publish, Raw};

const MIB: u64 = 1 << 20;

/// basic.publish and a content header announcing `size` bytes, then `sent`
/// bytes of body in frames of at most 128 KiB.
fn started(ch: u16, queue: &str, size: u64, sent: usize) -> Vec<u8> {
    let mut v = publish(ch, "", queue);
    v.extend(content_header(ch, size, AMQPProperties::default()));
    for part in vec![7u8; sent].chunks(131_064) {
        v.extend(content_body(ch, part));
    }
    v
}

#[tokio::test]
async fn unfinished_messages_are_bounded_per_connection() {
    // One message may be 1 MiB; a connection may hold 2 MiB of unfinished ones.
    let server = common::start_with(|c| {
        c.amqp.max_message_size = MIB;
        c.amqp.max_unfinished_bytes = 2 * MIB;
    })
    .await;
    let mut other = Raw::open(server.local_addr).await;
    other.open_channel(1).await;
    let q = other.declare_queue(1, "").await;
    // Another connection's unfinished message is not its business.
    other.send(&started(1, &q, 300_000, 200_000)).await;

    let mut raw = Raw::open(server.local_addr).await;
    // Channel after channel, each with a message announced at 1 MiB and 200 KB of it sent.
    for ch in 1..=20u16 {
        raw.open_channel(ch).await;
    }
    for ch in 1..=20u16 {
        raw.send(&started(ch, &q, MIB, 200_000)).await;
    }
    let (code, text, class, method) = raw.expect_connection_close().await;
    assert_eq!((code, class, method), (506, 0, 0), "{text}");
    assert!(text.starts_with("RESOURCE_ERROR - unfinished messages on this connection hold "), "{text}");
    raw.expect_socket_closed().await;

    // The other connection finishes its message, which arrives whole.
    other.send(&content_body(1, &[7u8; 100_000])).await;
    let (_, body) = other.get(1, &q).await.expect("the other connection's message");
    assert_eq!(body.len(), 300_000);
    common::assert_serving(server.local_addr).await;
}

#[tokio::test]
async fn a_whole_message_of_max_size_is_never_refused_by_the_bound() {
    // The bound is raised to one whole message whatever the setting.
    let server = common::start_with(|c| {
        c.amqp.max_message_size = MIB;
        c.amqp.max_unfinished_bytes = 1;
    })
    .await;
    let mut raw = Raw::open(server.local_addr).await;
    raw.open_channel(1).await;
    let q = raw.declare_queue(1, "").await;
    raw.send(&started(1, &q, MIB, MIB as usize)).await;
    let (_, body) = raw.get(1, &q).await.expect("the message");
    assert_eq!(body.len() as u64, MIB);
}

#[tokio::test]
async fn a_publisher_is_blocked_half_way_through_a_message_during_an_alarm() {
    // A 1-byte watermark: the alarm is raised at the first reading.
    let server = common::start_with(|c| c.memory.high_watermark_bytes = 1).await;
    let alarms = &server.broker.alarms;
    tokio::time::timeout(common::TIMEOUT, async {
        while !alarms.is_raised() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("the memory alarm");

    let mut raw = Raw::open(server.local_addr).await;
    raw.open_channel(1).await;
    let q = raw.declare_queue(1, "").await;
    // A 100 MiB message: its header and first frames go out...
    let size = 100 * MIB;
    raw.send(&started(1, &q, size, 1 << 20)).await;
    match raw.expect_frame().await {
        AMQPFrame::Method(0, AMQPClass::Connection(connection::AMQPMethod::Blocked(_))) => {}
        other => panic!("expected connection.blocked, got {other:?}"),
    }
    // ...and the rest is no longer read: the socket's buffers fill and the write stalls.
    let rest: Vec<u8> =
        vec![7u8; (size - MIB) as usize].chunks(131_064).flat_map(|part| content_body(1, part)).collect();
    let (stream, buf) = raw.into_parts();
    let (rd, mut wr) = stream.into_split();
    let writer = tokio::spawn(async move {
        use tokio::io::AsyncWriteExt;
        wr.write_all(&rest).await.unwrap();
        wr
    });
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(!writer.is_finished(), "the broker went on reading a blocked publisher");

    // When the alarm clears, the message completes.
    alarms.set_memory_limit(u64::MAX);
    let wr = tokio::time::timeout(Duration::from_secs(30), writer).await.expect("the rest is read").unwrap();
    let mut raw = Raw::from_parts(rd.reunite(wr).unwrap(), buf);
    match raw.expect_frame().await {
        AMQPFrame::Method(0, AMQPClass::Connection(connection::AMQPMethod::Unblocked(_))) => {}
        other => panic!("expected connection.unblocked, got {other:?}"),
    }
    let (_, body) = raw.get(1, &q).await.expect("the message, complete");
    assert_eq!(body.len() as u64, size);
}
