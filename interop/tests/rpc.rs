//! RPC: direct reply-to (`amq.rabbitmq.reply-to`) and classic reply queues.

mod common;

use common::*;
use lapin::options::{BasicConsumeOptions, BasicPublishOptions, QueueDeclareOptions};
use lapin::types::FieldTable;
use lapin::BasicProperties;

const REPLY_TO: &str = "amq.rabbitmq.reply-to";

#[tokio::test]
async fn direct_reply_to_round_trip() {
    let (conn, ch) = setup().await;
    let requests = temp_queue(&ch).await;
    let mut replies = consume(&ch, REPLY_TO, true).await;
    let props = BasicProperties::default().with_reply_to(REPLY_TO.into()).with_correlation_id("req-7".into());
    publish_props(&ch, "", &requests, b"ping", props).await;

    // The responder sees a routable reply_to and answers through the default exchange.
    let responder = channel(&conn).await;
    let request = get_eventually(&responder, &requests).await;
    let reply_to = request.delivery.properties.reply_to().clone().expect("reply_to").to_string();
    assert!(reply_to.starts_with("amq.rabbitmq.reply-to."), "{reply_to}");
    assert_eq!(request.delivery.properties.correlation_id().as_ref().map(|c| c.as_str()), Some("req-7"));
    let reply = BasicProperties::default().with_correlation_id("req-7".into());
    publish_props(&responder, "", &reply_to, b"pong", reply).await;

    let d = next_delivery(&mut replies).await;
    assert_eq!(d.data, b"pong");
    assert_eq!(d.routing_key.as_str(), reply_to);
    assert_eq!(d.properties.correlation_id().as_ref().map(|c| c.as_str()), Some("req-7"));
    teardown(conn).await;
}

#[tokio::test]
async fn direct_reply_to_rules() {
    let conn = connect().await;
    // Publishing with reply_to = amq.rabbitmq.reply-to needs a reply consumer on the channel.
    let ch = channel(&conn).await;
    let q = temp_queue(&ch).await;
    let props = BasicProperties::default().with_reply_to(REPLY_TO.into());
    let mut watch = watch_channel(&ch).await;
    let _ = ch.basic_publish("".into(), q.as_str().into(), BasicPublishOptions::default(), b"x", props).await;
    let text = expect_channel_closed_by_server(&mut watch, PRECONDITION_FAILED).await;
    assert_eq!(text, "PRECONDITION_FAILED - fast reply consumer does not exist");

    // The reply consumer must be no-ack, and there is one per channel.
    let ch = channel(&conn).await;
    let text = expect_error(
        "manual-ack consume of amq.rabbitmq.reply-to",
        ch.basic_consume(REPLY_TO.into(), "".into(), BasicConsumeOptions::default(), FieldTable::default()),
        PRECONDITION_FAILED,
    )
    .await;
    assert_eq!(text, "PRECONDITION_FAILED - reply consumer cannot acknowledge");
    let ch = channel(&conn).await;
    let _first = consume(&ch, REPLY_TO, true).await;
    let no_ack = BasicConsumeOptions { no_ack: true, ..Default::default() };
    let text = expect_error(
        "second consume of amq.rabbitmq.reply-to",
        ch.basic_consume(REPLY_TO.into(), "".into(), no_ack, FieldTable::default()),
        PRECONDITION_FAILED,
    )
    .await;
    assert_eq!(text, "PRECONDITION_FAILED - reply consumer already set");

    // The pseudo-queue can be declared passively.
    let ch = channel(&conn).await;
    let passive = QueueDeclareOptions { passive: true, ..Default::default() };
    let ok = within("passive declare", ch.queue_declare(REPLY_TO.into(), passive, FieldTable::default()))
        .await
        .expect("passive declare of amq.rabbitmq.reply-to");
    assert_eq!(ok.name().as_str(), REPLY_TO);

    // A reply to a requester that is gone is dropped; the responder's channel is fine.
    let responder = channel(&conn).await;
    publish_props(&responder, "", "amq.rabbitmq.reply-to.gone", b"late", BasicProperties::default()).await;
    let q = temp_queue(&responder).await;
    assert_eq!(queue_exists(&conn, &q).await, Some((0, 0)));
    teardown(conn).await;
}

#[tokio::test]
async fn reply_queue_round_trip_keeps_correlation_id() {
    let (conn, ch) = setup().await;
    let requests = temp_queue(&ch).await;
    let reply_queue = temp_queue(&ch).await;
    let mut replies = consume(&ch, &reply_queue, true).await;
    for i in 0..5 {
        let props = BasicProperties::default()
            .with_reply_to(reply_queue.as_str().into())
            .with_correlation_id(format!("c{i}").into());
        publish_props(&ch, "", &requests, b"req", props).await;
    }
    let responder = channel(&conn).await;
    for _ in 0..5 {
        let req = get_eventually(&responder, &requests).await;
        let p = &req.delivery.properties;
        let reply = BasicProperties::default().with_correlation_id(p.correlation_id().clone().unwrap());
        publish_props(&responder, "", p.reply_to().as_ref().unwrap().as_str(), b"rep", reply).await;
    }
    for i in 0..5 {
        let d = next_delivery(&mut replies).await;
        assert_eq!(d.properties.correlation_id().as_ref().map(|c| c.to_string()), Some(format!("c{i}")));
    }
    teardown(conn).await;
}
