//! Length limits: `x-max-length`, `x-max-length-bytes`, and `x-overflow`
//! (drop-head, reject-publish, reject-publish-dlx).

mod common;

use common::*;
use lapin::options::BasicPublishOptions;
use lapin::BasicProperties;

async fn bodies(ch: &lapin::Channel, q: &str) -> Vec<String> {
    let mut out = Vec::new();
    while let Some(m) = get_opts(ch, q, true).await {
        out.push(String::from_utf8(m.delivery.data).unwrap());
    }
    out
}

#[tokio::test]
async fn max_length_drops_the_oldest_and_dead_letters_it_as_maxlen() {
    let (conn, ch) = setup().await;
    let dlq = unique("dlq");
    named_queue(&ch, &dlq).await;
    let q = unique("max-length");
    let args = table_dead_lettering_to(&[("x-max-length", int(2))], &dlq);
    queue_with(&ch, &q, args).await;
    for b in ["1", "2", "3"] {
        publish(&ch, "", &q, b.as_bytes()).await;
    }
    wait_ready(&conn, &dlq, 1).await;
    assert_eq!(bodies(&ch, &q).await, vec!["2", "3"]);
    let d = get(&ch, &dlq).await.expect("the dropped message").delivery;
    assert_eq!(d.data, b"1");
    assert_eq!(death_reason(&d.properties).as_deref(), Some("maxlen"));
    delete_queue(&ch, &q).await;
    delete_queue(&ch, &dlq).await;
    teardown(conn).await;
}

#[tokio::test]
async fn max_length_bytes_counts_body_bytes() {
    let (conn, ch) = setup().await;
    let q = unique("max-bytes");
    queue_with(&ch, &q, table(&[("x-max-length-bytes", int(10))])).await;
    for b in ["12345", "67890", "abc"] {
        publish(&ch, "", &q, b.as_bytes()).await;
    }
    wait_ready(&conn, &q, 2).await;
    assert_eq!(bodies(&ch, &q).await, vec!["67890", "abc"]);
    delete_queue(&ch, &q).await;
    teardown(conn).await;
}

#[tokio::test]
async fn reject_publish_nacks_what_does_not_fit() {
    let (conn, ch) = setup().await;
    confirm_select(&ch).await;
    let q = unique("reject-publish");
    queue_with(&ch, &q, table(&[("x-max-length", int(1)), ("x-overflow", long_str("reject-publish"))])).await;
    let opts = BasicPublishOptions::default();
    let first = publish_confirmed(&ch, "", &q, opts, b"in", BasicProperties::default()).await;
    assert!(first.is_ack(), "{first:?}");
    let second = publish_confirmed(&ch, "", &q, opts, b"out", BasicProperties::default()).await;
    assert!(second.is_nack(), "{second:?}");
    assert_eq!(bodies(&ch, &q).await, vec!["in"]);
    delete_queue(&ch, &q).await;
    teardown(conn).await;
}

#[tokio::test]
async fn reject_publish_counts_ready_messages_only() {
    let (conn, ch) = setup().await;
    confirm_select(&ch).await;
    let q = unique("reject-ready");
    queue_with(&ch, &q, table(&[("x-max-length", int(1)), ("x-overflow", long_str("reject-publish"))])).await;
    let opts = BasicPublishOptions::default();
    assert!(publish_confirmed(&ch, "", &q, opts, b"a", BasicProperties::default()).await.is_ack());
    // Delivered and unacknowledged: no longer ready, so there is room again.
    let held = get_opts(&ch, &q, false).await.expect("a");
    assert!(publish_confirmed(&ch, "", &q, opts, b"b", BasicProperties::default()).await.is_ack());
    assert!(publish_confirmed(&ch, "", &q, opts, b"c", BasicProperties::default()).await.is_nack());
    ack_tag(&ch, held.delivery.delivery_tag, false).await;
    delete_queue(&ch, &q).await;
    teardown(conn).await;
}

#[tokio::test]
async fn reject_publish_dlx_nacks_and_dead_letters() {
    let (conn, ch) = setup().await;
    confirm_select(&ch).await;
    let dlq = unique("dlq");
    named_queue(&ch, &dlq).await;
    let q = unique("reject-dlx");
    let args = table_dead_lettering_to(
        &[("x-max-length", int(1)), ("x-overflow", long_str("reject-publish-dlx"))],
        &dlq,
    );
    queue_with(&ch, &q, args).await;
    let opts = BasicPublishOptions::default();
    assert!(publish_confirmed(&ch, "", &q, opts, b"in", BasicProperties::default()).await.is_ack());
    assert!(publish_confirmed(&ch, "", &q, opts, b"out", BasicProperties::default()).await.is_nack());
    let d = get_eventually(&ch, &dlq).await.delivery;
    assert_eq!(d.data, b"out");
    assert_eq!(death_reason(&d.properties).as_deref(), Some("maxlen"));
    assert_eq!(bodies(&ch, &q).await, vec!["in"]);
    delete_queue(&ch, &q).await;
    delete_queue(&ch, &dlq).await;
    teardown(conn).await;
}

#[tokio::test]
async fn a_zero_length_queue_still_hands_messages_to_a_waiting_consumer_with_drop_head() {
    let (conn, ch) = setup().await;
    confirm_select(&ch).await;
    let (drop, reject) = (unique("zero-drop"), unique("zero-reject"));
    queue_with(&ch, &drop, table(&[("x-max-length", int(0))])).await;
    queue_with(&ch, &reject, table(&[("x-max-length", int(0)), ("x-overflow", long_str("reject-publish"))]))
        .await;
    let consumer_ch = channel(&conn).await;
    let mut to_drop = consume(&consumer_ch, &drop, true).await;
    let mut to_reject = consume(&consumer_ch, &reject, true).await;
    let opts = BasicPublishOptions::default();
    assert!(publish_confirmed(&ch, "", &drop, opts, b"passes", BasicProperties::default()).await.is_ack());
    assert_eq!(next_delivery(&mut to_drop).await.data, b"passes");
    assert!(publish_confirmed(&ch, "", &reject, opts, b"refused", BasicProperties::default())
        .await
        .is_nack());
    assert_no_delivery(&mut to_reject).await;
    delete_queue(&ch, &drop).await;
    delete_queue(&ch, &reject).await;
    teardown(conn).await;
}

#[tokio::test]
async fn drop_head_in_a_priority_queue_drops_the_next_message_to_deliver() {
    let (conn, ch) = setup().await;
    let q = unique("prio-limit");
    queue_with(&ch, &q, table(&[("x-max-priority", int(5)), ("x-max-length", int(2))])).await;
    for (body, p) in [("a", 1), ("b", 5), ("c", 1)] {
        publish_props(&ch, "", &q, body.as_bytes(), BasicProperties::default().with_priority(p)).await;
    }
    wait_ready(&conn, &q, 2).await;
    // RabbitMQ drops the head: the highest priority, not the oldest overall.
    assert_eq!(bodies(&ch, &q).await, vec!["a", "c"]);
    delete_queue(&ch, &q).await;
    teardown(conn).await;
}
