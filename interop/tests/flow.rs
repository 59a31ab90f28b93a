//! Flow-related behaviour: basic.publish immediate=true (unsupported),
//! channel.flow, and a publisher much faster than its consumer.

mod common;

use common::*;
use lapin::{
    options::{BasicAckOptions, BasicPublishOptions, BasicQosOptions, ChannelFlowOptions},
    BasicProperties, Confirmation,
};
use std::time::Duration;

#[tokio::test]
async fn publish_immediate_is_a_connection_error_540() {
    let (conn, ch) = setup().await;
    let q = temp_queue(&ch).await;
    let mut watch = watch_channel(&ch).await;
    let pch = channel(&conn).await;
    within(
        "basic.publish immediate",
        pch.basic_publish(
            "".into(),
            q.as_str().into(),
            BasicPublishOptions { immediate: true, ..Default::default() },
            b"now",
            BasicProperties::default(),
        ),
    )
    .await
    .expect("basic.publish is asynchronous");
    let text = expect_connection_closed_by_server(&conn, &mut watch, 540).await;
    assert_eq!(text, "NOT_IMPLEMENTED - immediate=true");
}

#[tokio::test]
async fn publish_immediate_close_names_basic_publish() {
    // lapin does not expose the class/method of a connection.close.
    let mut raw = RawAmqp::connect().await;
    raw.open_channel(1).await;
    // basic.publish: reserved, exchange "", routing key "k", mandatory 0, immediate 1
    raw.send_method(1, 60, 40, ArgWriter::default().u16(0).shortstr("").shortstr("k").u8(0b10).0).await;
    raw.send_frame(2, 1, &ArgWriter::default().u16(60).u16(0).u64(1).u16(0).0).await;
    raw.send_frame(3, 1, b"x").await;
    let (code, text, class, method) = raw.expect_connection_close().await;
    assert_eq!((code, text.as_str(), class, method), (540, "NOT_IMPLEMENTED - immediate=true", 60, 40));
}

#[tokio::test]
async fn channel_flow_active_true_is_acknowledged() {
    let (conn, ch) = setup().await;
    let active = within("channel.flow", ch.channel_flow(ChannelFlowOptions { active: true }))
        .await
        .expect("channel.flow-ok");
    assert!(active, "flow-ok echoes active=true");
    // The channel still works both ways.
    let q = temp_queue(&ch).await;
    let mut consumer = consume(&ch, &q, true).await;
    publish(&ch, "", &q, b"flowing").await;
    assert_eq!(body(&next_delivery(&mut consumer).await), "flowing");
    teardown(conn).await;
}

#[tokio::test]
async fn channel_flow_active_false_is_a_connection_error_540() {
    // RabbitMQ does not let clients pause deliveries with channel.flow.
    let (conn, ch) = setup().await;
    let res =
        within("channel.flow active=false", ch.channel_flow(ChannelFlowOptions { active: false })).await;
    let text = expect_hard_error(res, 540);
    assert_eq!(text, "NOT_IMPLEMENTED - active=false");
    wait_connection_closed(&conn).await;
}

#[tokio::test]
async fn fast_publisher_slow_consumer_loses_nothing() {
    const N: u32 = 20_000;
    const SIZE: usize = 1024;
    let (conn, ch) = setup().await;
    let q = temp_queue(&ch).await;

    let cch = channel(&conn).await;
    within("basic.qos", cch.basic_qos(50, BasicQosOptions::default())).await.unwrap();
    let mut consumer = consume(&cch, &q, false).await;

    let publisher_conn = connect().await;
    let pch = channel(&publisher_conn).await;
    confirm_select(&pch).await;
    let q2 = q.clone();
    let publisher = tokio::spawn(async move {
        let mut confirms = Vec::with_capacity(N as usize);
        for i in 0..N {
            let confirm = pch
                .basic_publish(
                    "".into(),
                    q2.as_str().into(),
                    BasicPublishOptions::default(),
                    &payload(i, SIZE),
                    BasicProperties::default(),
                )
                .await
                .expect("basic.publish");
            confirms.push(confirm);
        }
        for c in confirms {
            assert_eq!(c.await.expect("confirm"), Confirmation::Ack(None));
        }
    });

    let res = tokio::time::timeout(Duration::from_secs(120), async {
        for i in 0..N {
            let d = next_delivery(&mut consumer).await;
            assert!(d.data == payload(i, SIZE), "message {i} missing, reordered or corrupted");
            // Slow consumer: ack in batches of 25, pausing before each.
            if i % 25 == 24 {
                tokio::time::sleep(Duration::from_millis(2)).await;
                within("basic.ack", cch.basic_ack(d.delivery_tag, BasicAckOptions { multiple: true }))
                    .await
                    .expect("basic.ack");
            }
        }
        within("publisher", publisher).await.expect("publisher task");
    })
    .await;
    assert!(res.is_ok(), "20k messages did not go through within 120 s");
    assert_no_delivery(&mut consumer).await;
    assert_eq!(queue_exists(&conn, &q).await, Some((0, 1)));
    teardown(publisher_conn).await;
    teardown(conn).await;
}

/// A consumer that holds its prefetch and acks nothing (an application
/// busy with one message) lets a backlog build up; its publisher goes on
/// at its own pace, as with RabbitMQ, however deep the queue gets (Warren
/// pauses publishers only while that lets consumers catch up). Past
/// 20,000 messages a publisher held to a message per pause would take
/// hours over these; the liveness bound is minutes.
#[tokio::test]
async fn a_stuck_consumers_backlog_does_not_hold_up_its_publisher() {
    const N: u32 = 30_000;
    let (conn, ch) = setup().await;
    let q = temp_queue(&ch).await;
    let cch = channel(&conn).await;
    within("basic.qos", cch.basic_qos(1, BasicQosOptions::default())).await.unwrap();
    let mut consumer = consume(&cch, &q, false).await;

    let publisher_conn = connect().await;
    let pch = channel(&publisher_conn).await;
    confirm_select(&pch).await;
    let published = tokio::time::timeout(Duration::from_secs(180), async {
        let mut confirms = Vec::with_capacity(N as usize);
        for i in 0..N {
            let body = payload(i, 16);
            let c = pch.basic_publish(
                "".into(),
                q.as_str().into(),
                BasicPublishOptions::default(),
                &body,
                BasicProperties::default(),
            );
            confirms.push(c.await.expect("basic.publish"));
        }
        for c in confirms {
            assert_eq!(c.await.expect("confirm"), Confirmation::Ack(None));
        }
    })
    .await;
    assert!(published.is_ok(), "the publisher was held up behind the stuck consumer's backlog");
    // The consumer holds the first; the rest wait in the queue.
    let first = next_delivery(&mut consumer).await;
    assert!(first.data == payload(0, 16));
    assert_eq!(queue_exists(&conn, &q).await, Some((N - 1, 1)));
    within("basic.ack", first.ack(BasicAckOptions::default())).await.unwrap();
    teardown(publisher_conn).await;
    teardown(conn).await;
}

/// `size` bytes: the sequence number, then a pattern derived from it.
fn payload(i: u32, size: usize) -> Vec<u8> {
    let mut v = i.to_be_bytes().to_vec();
    v.extend((4..size).map(|k| (k as u32).wrapping_mul(31).wrapping_add(i) as u8));
    v
}
