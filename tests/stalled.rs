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
use amq_protocol::protocol::{basic, connection, queue, AMQPClass};
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
    c.send(&consume(q)).await;
    c
}

fn consume(q: &str) -> Vec<u8> {
    let consume = basic::Consume {
        queue: q.into(),
        consumer_tag: "stalled".into(),
        no_local: false,
        no_ack: false,
        exclusive: false,
        nowait: false,
        arguments: FieldTable::default(),
    };
    method(1, AMQPClass::Basic(basic::AMQPMethod::Consume(consume)))
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
    // (What was not pushed at its socket waits in the queue: the broker
    // holds a few MiB of bodies towards a consumer, not the backlog.)
    let (ready, consumers) = counts(server.local_addr, "slow-q").await;
    assert_eq!(consumers, 1, "the live consumer was dropped");
    assert!(ready < MESSAGES as u32, "nothing was pushed at the consumer: {ready} ready");
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

/// This process's resident memory (the broker runs in it).
fn resident() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap();
    statm.split_whitespace().nth(1).unwrap().parse::<u64>().unwrap() * 4096
}

fn get(ch: u16, q: &str) -> Vec<u8> {
    method(ch, AMQPClass::Basic(basic::AMQPMethod::Get(basic::Get { queue: q.into(), no_ack: false })))
}

fn reject(ch: u16, tag: u64) -> Vec<u8> {
    method(
        ch,
        AMQPClass::Basic(basic::AMQPMethod::Reject(basic::Reject { delivery_tag: tag, requeue: true })),
    )
}

#[tokio::test]
async fn input_that_multiplies_output_waits_for_the_socket() {
    let server = common::start().await;
    let mut raw = Raw::open(server.local_addr).await;
    raw.open_channel(1).await;
    let q = raw.declare_queue(1, "").await;
    let big = vec![b'b'; 4 << 20];
    raw.send(&message(1, "", &q, AMQPProperties::default(), &big, 131_072)).await;
    raw.round_trip(1).await;
    // 200 gets of the 4 MiB message, each put back at once: 800 MiB of answers
    // to a client that reads none of them yet.
    let rounds = 200u64;
    let before = resident();
    raw.open_channel(2).await;
    let mut input = Vec::new();
    for tag in 1..=rounds {
        input.extend(get(2, &q));
        input.extend(reject(2, tag));
    }
    raw.send(&input).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let grown = resident().saturating_sub(before);
    assert!(grown < 200 << 20, "the broker buffered {} MiB for a client that does not read", grown >> 20);
    // Read, it gets every answer, in order.
    for _ in 1..=rounds {
        match raw.expect_frame().await {
            AMQPFrame::Method(2, AMQPClass::Basic(basic::AMQPMethod::GetOk(_))) => {}
            other => panic!("expected get-ok, got {other:?}"),
        }
        assert_eq!(raw.expect_content(2).await.1.len(), big.len());
    }
    raw.round_trip(2).await;
}

/// A connection with queue "side-q" declared on channel 1, to see what
/// another client published.
async fn side_queue(addr: SocketAddr) -> Raw {
    let mut side = Raw::open(addr).await;
    side.open_channel(1).await;
    side.declare_queue(1, "side-q").await;
    side
}

/// Waits until the broker's memory alarm is `raised`.
async fn alarm(server: &warren::server::Server, raised: bool) {
    server.broker.alarms.set_memory_limit(if raised { 1 } else { u64::MAX });
    tokio::time::timeout(common::TIMEOUT, async {
        while server.broker.alarms.is_raised() != raised {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("the alarm changes");
}

#[tokio::test]
async fn a_blocked_publisher_that_stops_reading_is_kept_and_released() {
    let server = common::start().await;
    fill(server.local_addr, "blocked-q").await;
    let mut side = side_queue(server.local_addr).await;
    // A consumer of the full queue that also publishes, during an alarm: it
    // is blocked (not read), and it does not read its deliveries either.
    alarm(&server, true).await;
    let mut c = Raw::connect(server.local_addr).await;
    c.handshake("guest", "guest", 0, 1).await;
    c.open_channel(1).await;
    c.send(
        &[consume("blocked-q"), message(1, "", "side-q", AMQPProperties::default(), b"while blocked", 4096)]
            .concat(),
    )
    .await;
    // It still sends heartbeats: alive, and not dropped while we do not read it.
    for _ in 0..8 {
        tokio::time::sleep(Duration::from_millis(500)).await;
        c.send(&raw_frame(8, 0, b"", FRAME_END)).await;
    }
    assert_eq!(counts(server.local_addr, "blocked-q").await.1, 1, "the blocked consumer was dropped");
    assert_eq!(side.get(1, "side-q").await, None, "a blocked publish went through");
    // The alarm clears; as it reads its deliveries, it hears of it and its
    // publish goes through.
    alarm(&server, false).await;
    let (mut unblocked, mut delivered) = (false, 0);
    let mut beat = std::time::Instant::now();
    while !unblocked || delivered < MESSAGES {
        if beat.elapsed() > Duration::from_millis(300) {
            c.send(&raw_frame(8, 0, b"", FRAME_END)).await;
            beat = std::time::Instant::now();
        }
        match c.expect_frame().await {
            AMQPFrame::Method(0, AMQPClass::Connection(connection::AMQPMethod::Unblocked(_))) => {
                unblocked = true
            }
            AMQPFrame::Method(1, AMQPClass::Basic(basic::AMQPMethod::Deliver(_))) => {
                c.expect_content(1).await;
                delivered += 1;
            }
            _ => {}
        }
    }
    let got = side.get_eventually(1, "side-q").await;
    assert_eq!(got.map(|(_, b)| b).as_deref(), Some(&b"while blocked"[..]));
}

#[tokio::test]
async fn what_a_stalled_client_sent_before_half_closing_still_counts() {
    let server = common::start().await;
    fill(server.local_addr, "half-q").await;
    let mut side = side_queue(server.local_addr).await;
    let mut c = consumer(server.local_addr, "half-q").await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    // Its socket is full of deliveries; it publishes, then closes its side.
    c.send(&message(1, "", "side-q", AMQPProperties::default(), b"last words", 4096)).await;
    let (mut stream, _) = c.into_parts();
    tokio::io::AsyncWriteExt::shutdown(&mut stream).await.unwrap();
    let got = side.get_eventually(1, "side-q").await;
    assert_eq!(got.map(|(_, b)| b).as_deref(), Some(&b"last words"[..]));
    drop(stream);
}
