//! basic.qos: per-consumer and per-channel prefetch limits, prefetch 0,
//! changing qos mid-stream, and the unsupported prefetch_size.
//!
//! "Outstanding" below is counted on the client: deliveries received minus
//! acks sent. The broker's own count is never lower (an ack it has not read
//! yet still counts on its side), so `outstanding <= limit` observed here is
//! a necessary condition of the broker honouring the limit.

mod common;

use common::*;
use futures_lite::StreamExt;
use lapin::{message::Delivery, options::BasicQosOptions, Channel, Consumer};
use std::time::Duration;

async fn qos(ch: &Channel, prefetch: u16, global: bool) {
    within("basic.qos", ch.basic_qos(prefetch, BasicQosOptions { global })).await.expect("basic.qos");
}

/// Collect deliveries from two consumers until both are quiet for [`QUIET`].
async fn drain_two(a: &mut Consumer, b: &mut Consumer) -> (Vec<Delivery>, Vec<Delivery>) {
    let (mut da, mut db) = (Vec::new(), Vec::new());
    within("two consumers to go quiet", async {
        loop {
            tokio::select! {
                d = next_delivery(a) => da.push(d),
                d = next_delivery(b) => db.push(d),
                _ = tokio::time::sleep(QUIET) => break,
            }
        }
    })
    .await;
    (da, db)
}

#[tokio::test]
async fn per_consumer_prefetch_never_exceeded_under_load() {
    const TOTAL: usize = 2000;
    const PREFETCH: usize = 10;
    let (conn, ch) = setup().await;
    let q = temp_queue(&ch).await;
    fill(&ch, &q, TOTAL).await;
    wait_ready(&conn, &q, TOTAL as u32).await;

    let cch = channel(&conn).await;
    qos(&cch, PREFETCH as u16, false).await;
    let mut consumer = consume(&cch, &q, false).await;
    let mut unacked: Vec<u64> = Vec::new(); // delivery tags, ascending
    let mut received = 0usize;
    let mut round = 0usize;
    while received < TOTAL {
        let d = next_delivery(&mut consumer).await;
        assert_eq!(body(&d), received.to_string(), "single consumer without requeue keeps queue order");
        assert!(!d.redelivered);
        received += 1;
        unacked.push(d.delivery_tag);
        assert!(
            unacked.len() <= PREFETCH,
            "consumer holds {} unacked deliveries with prefetch {PREFETCH} (after {received} deliveries)",
            unacked.len()
        );
        if unacked.len() < PREFETCH {
            continue;
        }
        // The window is full: give the broker a chance to overshoot now and then.
        if round.is_multiple_of(40) {
            assert_no_delivery(&mut consumer).await;
        } else if round.is_multiple_of(7) {
            if let Ok(Some(extra)) = tokio::time::timeout(Duration::from_millis(30), consumer.next()).await {
                panic!("delivery beyond prefetch {PREFETCH}: {:?}", extra.map(|d| body(&d)));
            }
        }
        // Free a varying amount of the window, in varying ways; after each
        // the loop's next_delivery checks that more messages do arrive.
        match round % 4 {
            0 => {
                let t = unacked.remove(0);
                ack_tag(&cch, t, false).await; // oldest
            }
            1 => {
                let t = unacked.pop().unwrap();
                ack_tag(&cch, t, false).await; // newest, out of order
            }
            2 => {
                let t = unacked[PREFETCH / 2 - 1];
                unacked.retain(|&x| x > t);
                ack_tag(&cch, t, true).await; // half the window at once
            }
            _ => {
                let t = *unacked.last().unwrap();
                unacked.clear();
                ack_tag(&cch, t, true).await; // everything
            }
        }
        round += 1;
    }
    if let Some(&t) = unacked.last() {
        ack_tag(&cch, t, true).await;
    }
    assert_no_delivery(&mut consumer).await;
    wait_ready(&conn, &q, 0).await;
    // Nothing is left unacked either: closing the channel requeues nothing.
    within("channel.close", cch.close(200, "bye".into())).await.expect("channel.close");
    assert!(get(&ch, &q).await.is_none(), "a message came back after every one was acked");
    teardown(conn).await;
}

#[tokio::test]
async fn global_prefetch_is_shared_by_the_consumers_of_a_channel() {
    const LIMIT: usize = 5;
    let (conn, ch) = setup().await;
    let q1 = temp_queue(&ch).await;
    let q2 = temp_queue(&ch).await;
    fill(&ch, &q1, 20).await;
    fill(&ch, &q2, 20).await;
    wait_ready(&conn, &q1, 20).await;
    wait_ready(&conn, &q2, 20).await;

    let cch = channel(&conn).await;
    qos(&cch, LIMIT as u16, true).await;
    let mut c1 = consume(&cch, &q1, false).await;
    let mut c2 = consume(&cch, &q2, false).await;

    let (a, b) = drain_two(&mut c1, &mut c2).await;
    assert_eq!(
        a.len() + b.len(),
        LIMIT,
        "channel-wide prefetch {LIMIT}: consumers got {} + {} before any ack",
        a.len(),
        b.len()
    );
    let mut outstanding: Vec<u64> = a.iter().chain(b.iter()).map(|d| d.delivery_tag).collect();
    outstanding.sort();

    // Ack one: exactly one more delivery, to either consumer.
    let t = outstanding.remove(0);
    ack_tag(&cch, t, false).await;
    let (a, b) = drain_two(&mut c1, &mut c2).await;
    assert_eq!(a.len() + b.len(), 1, "one ack frees exactly one slot of the channel limit");
    outstanding.extend(a.iter().chain(b.iter()).map(|d| d.delivery_tag));

    // Then consume everything, acking one at a time, checking the shared limit.
    let mut total = LIMIT + 1;
    while total < 40 {
        outstanding.sort();
        let t = outstanding.remove(0);
        ack_tag(&cch, t, false).await;
        let d = within("next delivery on either consumer", async {
            tokio::select! {
                d = next_delivery(&mut c1) => d,
                d = next_delivery(&mut c2) => d,
            }
        })
        .await;
        total += 1;
        outstanding.push(d.delivery_tag);
        assert!(
            outstanding.len() <= LIMIT,
            "{} unacked on a channel with global prefetch {LIMIT}",
            outstanding.len()
        );
    }
    let (a, b) = drain_two(&mut c1, &mut c2).await;
    assert!(a.is_empty() && b.is_empty(), "more than 40 deliveries");
    outstanding.sort();
    ack_tag(&cch, *outstanding.last().unwrap(), true).await;
    wait_ready(&conn, &q1, 0).await;
    wait_ready(&conn, &q2, 0).await;
    teardown(conn).await;
}

#[tokio::test]
async fn per_consumer_and_per_channel_limits_both_apply() {
    let (conn, ch) = setup().await;
    let q1 = temp_queue(&ch).await;
    let q2 = temp_queue(&ch).await;
    let q3 = temp_queue(&ch).await;
    for q in [&q1, &q2, &q3] {
        fill(&ch, q, 10).await;
        wait_ready(&conn, q, 10).await;
    }
    let cch = channel(&conn).await;
    // RabbitMQ: each consumer at most 3, all consumers of the channel at most 5.
    qos(&cch, 3, false).await;
    qos(&cch, 5, true).await;
    let mut c1 = consume(&cch, &q1, false).await;
    let a = drain(&mut c1).await;
    assert_eq!(a.len(), 3, "per-consumer limit 3 applies while the channel limit 5 is not reached");
    let mut c2 = consume(&cch, &q2, false).await;
    let (a2, b) = drain_two(&mut c1, &mut c2).await;
    assert!(a2.is_empty(), "first consumer is at its own limit");
    assert_eq!(b.len(), 2, "second consumer only gets what is left of the channel limit 5");
    let mut c3 = consume(&cch, &q3, false).await;
    assert_no_delivery(&mut c3).await;

    // Free one slot of the first consumer: exactly one more delivery in total,
    // to whichever consumer (each is below its own limit of 3).
    ack(&a[0]).await;
    let extra = drain(&mut c1).await.len() + drain(&mut c2).await.len() + drain(&mut c3).await.len();
    assert_eq!(extra, 1, "one ack frees exactly one slot of the channel limit");
    teardown(conn).await;
}

#[tokio::test]
async fn prefetch_zero_means_unlimited() {
    let (conn, ch) = setup().await;
    let q = temp_queue(&ch).await;
    fill(&ch, &q, 500).await;
    wait_ready(&conn, &q, 500).await;

    let cch = channel(&conn).await;
    // A limit set earlier and then reset to 0 is gone, for both flavours.
    qos(&cch, 1, false).await;
    qos(&cch, 1, true).await;
    qos(&cch, 0, false).await;
    qos(&cch, 0, true).await;
    let mut consumer = consume(&cch, &q, false).await;
    let mut last = 0;
    for i in 0..500 {
        let d = next_delivery(&mut consumer).await;
        assert_eq!(body(&d), i.to_string());
        last = d.delivery_tag;
    }
    assert_no_delivery(&mut consumer).await;
    ack_tag(&cch, last, true).await;
    wait_ready(&conn, &q, 0).await;
    within("channel.close", cch.close(200, "bye".into())).await.expect("channel.close");
    assert!(get(&ch, &q).await.is_none(), "multiple ack of the last tag acks all 500");
    teardown(conn).await;
}

#[tokio::test]
async fn changing_per_consumer_qos_affects_only_new_consumers() {
    let (conn, ch) = setup().await;
    let q1 = temp_queue(&ch).await;
    let q2 = temp_queue(&ch).await;
    fill(&ch, &q1, 20).await;
    fill(&ch, &q2, 20).await;
    wait_ready(&conn, &q1, 20).await;
    wait_ready(&conn, &q2, 20).await;

    let cch = channel(&conn).await;
    qos(&cch, 2, false).await;
    let mut old = consume(&cch, &q1, false).await;
    let first = drain(&mut old).await;
    assert_eq!(first.len(), 2, "prefetch 2");

    qos(&cch, 5, false).await;
    // The existing consumer keeps its limit of 2.
    assert_no_delivery(&mut old).await;
    ack(&first[0]).await;
    let more = drain(&mut old).await;
    assert_eq!(more.len(), 1, "existing consumer still limited to 2 after qos changed to 5");
    // A consumer started afterwards gets the new limit.
    let mut new = consume(&cch, &q2, false).await;
    let got = drain(&mut new).await;
    assert_eq!(got.len(), 5, "new consumer gets the new prefetch 5");

    // Lowering it does not cut the existing consumers either.
    qos(&cch, 1, false).await;
    ack(&got[0]).await;
    ack(&got[1]).await;
    let refill = drain(&mut new).await;
    assert_eq!(refill.len(), 2, "consumer started with prefetch 5 keeps 5 after qos changed to 1");
    teardown(conn).await;
}

/// lapin's `basic_qos` has no prefetch_size argument (it always sends 0), so
/// this test speaks raw AMQP.
#[tokio::test]
async fn nonzero_prefetch_size_is_a_connection_error_540() {
    let mut raw = RawAmqp::connect().await;
    raw.open_channel(1).await;
    // basic.qos: prefetch-size 1, prefetch-count 0, global false
    raw.send_method(1, 60, 10, ArgWriter::default().u32(1).u16(0).u8(0).0).await;
    let (code, text, class, method) = raw.expect_connection_close().await;
    eprintln!("prefetch_size=1: {code} {text} ({class}.{method})");
    assert_eq!(code, 540, "{text}");
    assert_eq!(text, "NOT_IMPLEMENTED - prefetch_size!=0 (1)");
    assert_eq!((class, method), (60, 10), "close names basic.qos");
    assert!(raw.read_frame().await.is_none(), "socket closed after close-ok");

    // prefetch_size 0 (what lapin sends) is fine.
    let mut raw = RawAmqp::connect().await;
    raw.open_channel(1).await;
    raw.send_method(1, 60, 10, ArgWriter::default().u32(0).u16(7).u8(0).0).await;
    raw.expect_method(1, 60, 11).await;
    raw.close().await;
}
