//! A consumer that stops reading while messages are pushed at it: its socket
//! fills and the broker's writes stall. When it is also silent it misses its
//! heartbeats and is dropped like any silent client (its unacknowledged
//! messages go back to the queue); when it still sends heartbeats it is alive
//! and kept.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use amq_protocol::frame::AMQPFrame;
use amq_protocol::protocol::basic::AMQPProperties;
use amq_protocol::protocol::{basic, queue, AMQPClass};
use amq_protocol::types::FieldTable;
use common::{message, method, raw_frame, Raw, FRAME_END};

const MESSAGES: usize = 600;
const SIZE: usize = 64 * 1024;

/// Declares `q` and fills it with more than a stalled socket can hold.
async fn fill(addr: SocketAddr, q: &str) {
    let mut p = Raw::open(addr).await;
    p.open_channel(1).await;
    p.declare_queue(1, q).await;
    let body = vec![b'x'; SIZE];
    let mut batch = Vec::new();
    for _ in 0..MESSAGES {
        batch.extend(message(1, "", q, AMQPProperties::default(), &body, 131_072));
    }
    p.send(&batch).await;
    p.round_trip(1).await;
}

/// (ready, consumers) of `q`, from a passive declare.
async fn counts(addr: SocketAddr, q: &str) -> (u32, u32) {
    let mut raw = Raw::open(addr).await;
    raw.open_channel(1).await;
    raw.send(&common::queue_declare_with(1, q, true, false, false, false)).await;
    match raw.expect_method_on(1).await {
        AMQPClass::Queue(queue::AMQPMethod::DeclareOk(ok)) => (ok.message_count, ok.consumer_count),
        other => panic!("expected declare-ok, got {other:?}"),
    }
}

/// A consumer with heartbeat 1 s that has started consuming `q` (manual ack, no prefetch limit).
async fn consumer(addr: SocketAddr, q: &str) -> Raw {
    let mut c = Raw::connect(addr).await;
    c.handshake("guest", "guest", 0, 1).await;
    c.open_channel(1).await;
    let consume = basic::Consume {
        queue: q.into(),
        consumer_tag: "stalled".into(),
        no_local: false,
        no_ack: false,
        exclusive: false,
        nowait: false,
        arguments: FieldTable::default(),
    };
    c.send(&method(1, AMQPClass::Basic(basic::AMQPMethod::Consume(consume)))).await;
    c
}

#[tokio::test]
async fn a_consumer_that_neither_reads_nor_sends_is_dropped() {
    let server = common::start().await;
    fill(server.local_addr, "stall-q").await;
    let stalled = consumer(server.local_addr, "stall-q").await;
    // It never reads nor writes again; two missed heartbeats (~2 s) later the
    // broker drops it and its deliveries are ready again.
    let mut back = (0, 1);
    for _ in 0..100 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        back = counts(server.local_addr, "stall-q").await;
        if back == (MESSAGES as u32, 0) {
            break;
        }
    }
    assert_eq!(back, (MESSAGES as u32, 0), "(ready, consumers) 10 s after the consumer stalled");
    drop(stalled);
    common::assert_serving(server.local_addr).await;
}

#[tokio::test]
async fn a_consumer_that_does_not_read_but_sends_heartbeats_is_kept() {
    let server = common::start().await;
    fill(server.local_addr, "slow-q").await;
    let mut slow = consumer(server.local_addr, "slow-q").await;
    // Four heartbeat intervals without reading a byte, but with heartbeats sent.
    for _ in 0..8 {
        tokio::time::sleep(Duration::from_millis(500)).await;
        slow.send(&raw_frame(8, 0, b"", FRAME_END)).await;
    }
    assert_eq!(counts(server.local_addr, "slow-q").await, (0, 1), "the live consumer was dropped");
    // It then reads everything it was sent, and acks it all.
    let mut delivered = 0;
    while delivered < MESSAGES {
        match slow.expect_frame().await {
            AMQPFrame::Method(1, AMQPClass::Basic(basic::AMQPMethod::Deliver(_))) => {
                slow.expect_content(1).await;
                delivered += 1;
            }
            AMQPFrame::Method(1, AMQPClass::Basic(basic::AMQPMethod::ConsumeOk(_))) => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    let ack = basic::Ack { delivery_tag: MESSAGES as u64, multiple: true };
    slow.send(&method(1, AMQPClass::Basic(basic::AMQPMethod::Ack(ack)))).await;
    slow.round_trip(1).await;
    assert_eq!(counts(server.local_addr, "slow-q").await, (0, 1));
}
