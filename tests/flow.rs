//! Resource alarms: while the memory or disk alarm is raised, a connection that
//! publishes gets `connection.blocked` and is no longer read; when it clears,
//! `connection.unblocked`, and what it sent meanwhile is processed.

mod common;

use std::time::Duration;

use amq_protocol::frame::AMQPFrame;
use amq_protocol::protocol::basic::AMQPProperties;
use amq_protocol::protocol::{connection, AMQPClass};
use common::{message, wait_for, Raw};

#[tokio::test]
async fn publishers_are_blocked_during_a_memory_alarm() {
    // A 1-byte watermark: the alarm is raised at the first reading.
    let server = common::start_with(|c| c.memory.high_watermark_bytes = 1).await;
    blocked_then_released(&server, || server.broker.alarms.set_memory_limit(u64::MAX)).await;
}

#[tokio::test]
async fn publishers_are_blocked_while_the_disk_is_short_of_space() {
    // No disk has that much free space: the alarm is raised at the first reading.
    let server = common::start_with(|c| c.storage.disk_free_limit = u64::MAX).await;
    blocked_then_released(&server, || server.broker.alarms.set_disk_free_limit(0)).await;
}

async fn blocked_then_released(server: &warren::server::Server, release: impl Fn()) {
    let alarms = &server.broker.alarms;
    wait_for("the memory alarm", || alarms.is_raised()).await;

    let mut publisher = Raw::open(server.local_addr).await;
    publisher.open_channel(1).await;
    let q = publisher.declare_queue(1, "").await;
    let mut reader = Raw::open(server.local_addr).await;
    reader.open_channel(1).await;

    // Declaring is fine; publishing blocks the connection at its content
    // header, before the body is read (as RabbitMQ does): unfinished messages
    // are memory too.
    publisher.send(&message(1, "", &q, AMQPProperties::default(), b"first", 4096)).await;
    match publisher.expect_frame().await {
        AMQPFrame::Method(0, AMQPClass::Connection(connection::AMQPMethod::Blocked(b))) => {
            assert_eq!(b.reason.as_str(), "low on memory")
        }
        other => panic!("expected connection.blocked, got {other:?}"),
    }
    publisher.send(&message(1, "", &q, AMQPProperties::default(), b"second", 4096)).await;
    // Other connections are served; the blocked one's messages wait.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(reader.get(1, &q).await, None, "a blocked connection's publish went through");

    release();
    match publisher.expect_frame().await {
        AMQPFrame::Method(0, AMQPClass::Connection(connection::AMQPMethod::Unblocked(_))) => {}
        other => panic!("expected connection.unblocked, got {other:?}"),
    }
    wait_for("the alarm to clear", || !alarms.is_raised()).await;
    for want in [&b"first"[..], b"second"] {
        let got = reader.get_eventually(1, &q).await;
        assert_eq!(got.map(|(_, b)| b).as_deref(), Some(want));
    }
    publisher.round_trip(1).await;
}
