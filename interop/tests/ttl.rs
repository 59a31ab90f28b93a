//! Message TTL (`x-message-ttl`, per-message `expiration`), dead-lettering
//! of expired messages, and `x-expires` for unused queues. Short TTLs; the
//! waits are bounded polls, not fixed sleeps, except where a test checks
//! that something did *not* happen.

mod common;

use std::time::Duration;

use common::*;
use lapin::BasicProperties;

/// A queue `name` whose dead letters go to a fresh queue through the
/// default exchange; returns the dead-letter queue's name.
async fn with_dlq(ch: &lapin::Channel, name: &str, args: Vec<(&str, lapin::types::AMQPValue)>) -> String {
    let dlq = unique("dlq");
    named_queue(ch, &dlq).await;
    queue_with(ch, name, table_dead_lettering_to(&args, &dlq)).await;
    dlq
}

#[tokio::test]
async fn queue_ttl_expires_waiting_messages_by_timer_and_dead_letters_them() {
    let (conn, ch) = setup().await;
    let q = unique("ttl");
    let dlq = with_dlq(&ch, &q, vec![("x-message-ttl", int(100))]).await;
    publish(&ch, "", &q, b"old").await;
    // Nobody consumes or polls `q`: only a timer can move the message.
    wait_ready(&conn, &dlq, 1).await;
    assert_eq!(queue_exists(&conn, &q).await.map(|(m, _)| m), Some(0));
    let m = get(&ch, &dlq).await.expect("the dead letter");
    assert_eq!(m.delivery.data, b"old");
    let deaths = x_death(&m.delivery.properties);
    assert_eq!(deaths.len(), 1);
    assert_eq!(text_of(&deaths[0], "reason").as_deref(), Some("expired"));
    assert_eq!(text_of(&deaths[0], "queue").as_deref(), Some(q.as_str()));
    assert_eq!(int_of(&deaths[0], "count"), Some(1));
    assert_eq!(header_text(&m.delivery.properties, "x-first-death-reason").as_deref(), Some("expired"));
    assert_eq!(header_text(&m.delivery.properties, "x-first-death-queue").as_deref(), Some(q.as_str()));
    delete_queue(&ch, &q).await;
    delete_queue(&ch, &dlq).await;
    teardown(conn).await;
}

#[tokio::test]
async fn per_message_expiration_is_kept_as_original_expiration() {
    let (conn, ch) = setup().await;
    let q = unique("expiration");
    let dlq = with_dlq(&ch, &q, vec![]).await;
    let props = BasicProperties::default().with_expiration("50".into());
    publish_props(&ch, "", &q, b"short-lived", props).await;
    wait_ready(&conn, &dlq, 1).await;
    let m = get(&ch, &dlq).await.expect("the dead letter");
    assert_eq!(m.delivery.properties.expiration(), &None, "a dead letter loses its expiration");
    let deaths = x_death(&m.delivery.properties);
    assert_eq!(text_of(&deaths[0], "original-expiration").as_deref(), Some("50"));
    assert_eq!(text_of(&deaths[0], "reason").as_deref(), Some("expired"));
    delete_queue(&ch, &q).await;
    delete_queue(&ch, &dlq).await;
    teardown(conn).await;
}

#[tokio::test]
async fn the_lower_of_queue_ttl_and_expiration_wins() {
    let (conn, ch) = setup().await;
    // A long queue TTL, a short message TTL.
    let q1 = unique("ttl-long");
    let dlq1 = with_dlq(&ch, &q1, vec![("x-message-ttl", int(60_000))]).await;
    publish_props(&ch, "", &q1, b"a", BasicProperties::default().with_expiration("50".into())).await;
    // A short queue TTL, a long message TTL.
    let q2 = unique("ttl-short");
    let dlq2 = with_dlq(&ch, &q2, vec![("x-message-ttl", int(50))]).await;
    publish_props(&ch, "", &q2, b"b", BasicProperties::default().with_expiration("60000".into())).await;
    wait_ready(&conn, &dlq1, 1).await;
    wait_ready(&conn, &dlq2, 1).await;
    for q in [q1, dlq1, q2, dlq2] {
        delete_queue(&ch, &q).await;
    }
    teardown(conn).await;
}

#[tokio::test]
async fn expired_messages_are_never_delivered() {
    let (conn, ch) = setup().await;
    let q = unique("ttl-never");
    queue_with(&ch, &q, table(&[("x-message-ttl", int(50))])).await;
    publish(&ch, "", &q, b"stale").await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(get(&ch, &q).await.is_none(), "an expired message was handed out by basic.get");
    publish(&ch, "", &q, b"stale too").await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut c = consume(&ch, &q, true).await;
    assert_no_delivery(&mut c).await;
    delete_queue(&ch, &q).await;
    teardown(conn).await;
}

#[tokio::test]
async fn ttl_zero_reaches_a_waiting_consumer_and_nobody_else() {
    let (conn, ch) = setup().await;
    let q = unique("ttl-zero");
    queue_with(&ch, &q, table(&[("x-message-ttl", int(0))])).await;
    publish(&ch, "", &q, b"nobody waits").await;
    assert!(get(&ch, &q).await.is_none());
    let consumer_ch = channel(&conn).await;
    let mut c = consume(&consumer_ch, &q, true).await;
    publish(&ch, "", &q, b"someone waits").await;
    assert_eq!(next_delivery(&mut c).await.data, b"someone waits");
    delete_queue(&ch, &q).await;
    teardown(conn).await;
}

#[tokio::test]
async fn requeued_messages_keep_their_expiry() {
    let (conn, ch) = setup().await;
    let q = unique("ttl-requeue");
    let dlq = with_dlq(&ch, &q, vec![("x-message-ttl", int(300))]).await;
    publish(&ch, "", &q, b"m").await;
    let m = get_opts(&ch, &q, false).await.expect("the message");
    ch.basic_nack(
        m.delivery.delivery_tag,
        lapin::options::BasicNackOptions { requeue: true, ..Default::default() },
    )
    .await
    .unwrap();
    // It expires 300 ms after it first arrived, requeued or not.
    wait_ready(&conn, &dlq, 1).await;
    delete_queue(&ch, &q).await;
    delete_queue(&ch, &dlq).await;
    teardown(conn).await;
}

#[tokio::test]
async fn x_expires_deletes_a_queue_nobody_uses() {
    let (conn, ch) = setup().await;
    let q = unique("expires");
    queue_with(&ch, &q, table(&[("x-expires", int(200))])).await;
    // Any declare (passive too) counts as use, so look only once it is due.
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert!(queue_exists(&conn, &q).await.is_none(), "the unused queue is still there");
    teardown(conn).await;
}

#[tokio::test]
async fn x_expires_spares_a_queue_with_a_consumer() {
    let (conn, ch) = setup().await;
    let q = unique("expires-used");
    queue_with(&ch, &q, table(&[("x-expires", int(200))])).await;
    let _c = consume(&ch, &q, true).await;
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert!(queue_exists(&conn, &q).await.is_some(), "a queue with a consumer expired");
    delete_queue(&ch, &q).await;
    teardown(conn).await;
}

#[tokio::test]
async fn invalid_expirations_close_the_channel_like_rabbitmq() {
    let conn = connect().await;
    let q = unique("bad-expiration");
    let setup_ch = channel(&conn).await;
    named_queue(&setup_ch, &q).await;
    let cases = [
        ("abc", "PRECONDITION_FAILED - invalid expiration 'abc': no_integer"),
        ("-1", "PRECONDITION_FAILED - invalid expiration '-1': {value_negative,-1}"),
        ("1.5", "PRECONDITION_FAILED - invalid expiration '1.5': {leftover_string,\".5\"}"),
        (
            "315360000001",
            "PRECONDITION_FAILED - invalid expiration '315360000001': {value_too_large,315360000001}",
        ),
    ];
    for (value, want) in cases {
        let ch = channel(&conn).await;
        let mut watch = watch_channel(&ch).await;
        let props = BasicProperties::default().with_expiration(value.into());
        let _ = ch.basic_publish("".into(), q.as_str().into(), Default::default(), b"x", props).await;
        let text = expect_channel_closed_by_server(&mut watch, PRECONDITION_FAILED).await;
        assert_eq!(text, want, "expiration {value:?}");
    }
    // A sign and leading zeros are fine.
    for value in ["+60000", "0060000"] {
        publish_props(&setup_ch, "", &q, b"ok", BasicProperties::default().with_expiration(value.into()))
            .await;
    }
    wait_ready(&conn, &q, 2).await;
    delete_queue(&setup_ch, &q).await;
    teardown(conn).await;
}

#[tokio::test]
async fn a_missing_exchange_is_reported_before_a_bad_expiration() {
    let conn = connect().await;
    let ch = channel(&conn).await;
    let mut watch = watch_channel(&ch).await;
    let props = BasicProperties::default().with_expiration("abc".into());
    let missing = unique("missing");
    let _ = ch.basic_publish(missing.as_str().into(), "k".into(), Default::default(), b"x", props).await;
    let text = expect_channel_closed_by_server(&mut watch, NOT_FOUND).await;
    assert_eq!(text, format!("NOT_FOUND - no exchange '{missing}' in vhost '/'"));
    teardown(conn).await;
}
