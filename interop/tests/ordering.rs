//! Message ordering: one publishing channel's messages reach a consumer in
//! publish order (100k messages), and fanout copies reach every bound queue
//! in the same order.

mod common;

use common::*;
use lapin::{
    options::{BasicAckOptions, BasicQosOptions, ExchangeDeclareOptions, ExchangeDeleteOptions},
    Consumer, ExchangeKind,
};
use std::time::Duration;

/// Bound for the 100k-message tests.
const LONG: Duration = Duration::from_secs(120);

fn seq_of(d: &lapin::message::Delivery) -> u64 {
    u64::from_be_bytes(d.data.as_slice().try_into().expect("8-byte sequence number body"))
}

/// Consume `n` messages from `consumer`, acking every 100 with `multiple`,
/// asserting they carry 0, 1, 2, ... in order.
async fn expect_sequence(ch: &lapin::Channel, consumer: &mut Consumer, n: u64, what: &str) {
    for want in 0..n {
        let d = next_delivery(consumer).await;
        let got = seq_of(&d);
        assert_eq!(got, want, "{what}: message {got} arrived where {want} was expected");
        assert!(!d.redelivered);
        if want % 100 == 99 || want == n - 1 {
            within("basic.ack", ch.basic_ack(d.delivery_tag, BasicAckOptions { multiple: true }))
                .await
                .expect("basic.ack");
        }
    }
    assert_no_delivery(consumer).await;
}

#[tokio::test]
async fn one_channel_keeps_order_for_100k_messages() {
    const N: u64 = 100_000;
    let (conn, ch) = setup().await;
    let q = temp_queue(&ch).await;
    let cch = channel(&conn).await;
    within("basic.qos", cch.basic_qos(1000, BasicQosOptions::default())).await.unwrap();
    let mut consumer = consume(&cch, &q, false).await;

    let publisher_conn = connect().await;
    let pch = channel(&publisher_conn).await;
    let q2 = q.clone();
    let res = tokio::time::timeout(LONG, async {
        let publisher = tokio::spawn(async move {
            for i in 0..N {
                publish(&pch, "", &q2, &i.to_be_bytes()).await;
            }
            pch
        });
        expect_sequence(&cch, &mut consumer, N, "single queue").await;
        publisher.await.expect("publisher task")
    })
    .await;
    assert!(res.is_ok(), "100k messages did not go through within {LONG:?}");
    assert_eq!(queue_exists(&conn, &q).await, Some((0, 1)));
    teardown(publisher_conn).await;
    teardown(conn).await;
}

#[tokio::test]
async fn fanout_queues_see_the_same_order() {
    const N: u64 = 20_000;
    let (conn, ch) = setup().await;
    let x = unique("order-fanout");
    declare_exchange(&ch, &x, ExchangeKind::Fanout, ExchangeDeclareOptions::default()).await;
    let q1 = temp_queue(&ch).await;
    let q2 = temp_queue(&ch).await;
    bind(&ch, &q1, &x, "").await;
    bind(&ch, &q2, &x, "").await;

    let c1ch = channel(&conn).await;
    let c2ch = channel(&conn).await;
    let mut c1 = consume(&c1ch, &q1, false).await;
    let mut c2 = consume(&c2ch, &q2, false).await;
    let pch = channel(&conn).await;
    let x2 = x.clone();
    let res = tokio::time::timeout(LONG, async {
        let publisher = tokio::spawn(async move {
            for i in 0..N {
                publish(&pch, &x2, "", &i.to_be_bytes()).await;
            }
        });
        // Both consumers run at once so neither queue has to hold everything.
        tokio::join!(
            expect_sequence(&c1ch, &mut c1, N, "fanout queue 1"),
            expect_sequence(&c2ch, &mut c2, N, "fanout queue 2")
        );
        publisher.await.expect("publisher task");
    })
    .await;
    assert!(res.is_ok(), "fanout of {N} messages did not go through within {LONG:?}");
    within("exchange.delete", ch.exchange_delete(x.as_str().into(), ExchangeDeleteOptions::default()))
        .await
        .unwrap();
    teardown(conn).await;
}
