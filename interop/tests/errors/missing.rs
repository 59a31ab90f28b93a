//! What is missing: 404 on passive declares, publishes, binds, consumes, gets
//! and purges, each closing its channel only.

use super::*;

#[tokio::test]
async fn passive_declare_of_missing_queue_is_404() {
    let (conn, ch) = setup().await;
    let q = unique("missing-q");
    let text = expect_error(
        "passive queue.declare",
        ch.queue_declare(q.as_str().into(), passive_q(), FieldTable::default()),
        NOT_FOUND,
    )
    .await;
    eprintln!("missing queue: {text}");
    assert!(text.starts_with(&format!("NOT_FOUND - no queue '{q}'")), "{text}");
    assert_channel_closed(&ch).await;
    assert_connection_usable(&conn).await;
    teardown(conn).await;
}

#[tokio::test]
async fn passive_declare_of_missing_exchange_is_404() {
    let (conn, ch) = setup().await;
    let x = unique("missing-x");
    let text = expect_error(
        "passive exchange.declare",
        ch.exchange_declare(x.as_str().into(), ExchangeKind::Direct, passive_x(), FieldTable::default()),
        NOT_FOUND,
    )
    .await;
    eprintln!("missing exchange: {text}");
    assert!(text.starts_with(&format!("NOT_FOUND - no exchange '{x}'")), "{text}");
    assert_channel_closed(&ch).await;
    assert_connection_usable(&conn).await;
    teardown(conn).await;
}

#[tokio::test]
async fn publish_to_missing_exchange_closes_channel_404() {
    let (conn, ch) = setup().await;
    let x = unique("missing-x-pub");
    let mut watch = watch_channel(&ch).await;
    publish(&ch, &x, "rk", b"into the void").await;
    let text = expect_channel_closed_by_server(&mut watch, NOT_FOUND).await;
    eprintln!("publish to missing exchange: {text}");
    assert!(text.starts_with(&format!("NOT_FOUND - no exchange '{x}'")), "{text}");
    assert_channel_closed(&ch).await;
    assert_connection_usable(&conn).await;
    teardown(conn).await;
}

#[tokio::test]
async fn publish_to_missing_exchange_in_confirm_mode_fails_the_confirm() {
    let (conn, ch) = setup().await;
    confirm_select(&ch).await;
    let x = unique("missing-x-confirm");
    let confirm = within(
        "basic.publish",
        ch.basic_publish(x.as_str().into(), "rk".into(), Default::default(), b"lost", Default::default()),
    )
    .await
    .expect("basic.publish is asynchronous");
    // No basic.ack/nack comes back: the channel.close fails the pending confirm.
    let res = within("publisher confirm", confirm).await;
    let text = expect_soft_error(res, NOT_FOUND);
    assert!(text.starts_with(&format!("NOT_FOUND - no exchange '{x}'")), "{text}");
    assert_channel_closed(&ch).await;
    assert_connection_usable(&conn).await;
    teardown(conn).await;
}

#[tokio::test]
async fn channel_error_leaves_other_channels_alone() {
    let (conn, ch) = setup().await;
    let q = temp_queue(&ch).await;
    let mut consumer = consume(&ch, &q, true).await;

    let bad = channel(&conn).await;
    expect_error(
        "passive queue.declare",
        bad.queue_declare(unique("nope").as_str().into(), passive_q(), FieldTable::default()),
        NOT_FOUND,
    )
    .await;
    assert_channel_closed(&bad).await;

    // The consumer on the healthy channel keeps working.
    publish(&ch, "", &q, b"unaffected").await;
    assert_eq!(body(&next_delivery(&mut consumer).await), "unaffected");
    assert_connection_usable(&conn).await;
    teardown(conn).await;
}

#[tokio::test]
async fn missing_entities_in_bind_consume_get_purge_are_404() {
    let conn = connect().await;
    let missing_q = unique("missing-q2");
    let missing_x = unique("missing-x2");

    let ch = channel(&conn).await;
    let q = temp_queue(&ch).await;
    let text = expect_error(
        "queue.bind to missing exchange",
        ch.queue_bind(
            q.as_str().into(),
            missing_x.as_str().into(),
            "k".into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        ),
        NOT_FOUND,
    )
    .await;
    eprintln!("bind to missing exchange: {text}");
    assert!(text.starts_with("NOT_FOUND - no exchange"), "{text}");

    let ch = channel(&conn).await;
    let text = expect_error(
        "queue.bind of missing queue",
        ch.queue_bind(
            missing_q.as_str().into(),
            "amq.direct".into(),
            "k".into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        ),
        NOT_FOUND,
    )
    .await;
    eprintln!("bind missing queue: {text}");
    assert!(text.starts_with("NOT_FOUND - no queue"), "{text}");

    let ch = channel(&conn).await;
    let text = expect_error(
        "exchange.bind to missing destination",
        ch.exchange_bind(
            missing_x.as_str().into(),
            "amq.direct".into(),
            "k".into(),
            Default::default(),
            FieldTable::default(),
        ),
        NOT_FOUND,
    )
    .await;
    assert!(text.starts_with(&format!("NOT_FOUND - no exchange '{missing_x}'")), "{text}");

    let ch = channel(&conn).await;
    let text = expect_error(
        "exchange.bind from missing source",
        ch.exchange_bind(
            "amq.direct".into(),
            missing_x.as_str().into(),
            "k".into(),
            Default::default(),
            FieldTable::default(),
        ),
        NOT_FOUND,
    )
    .await;
    assert!(text.starts_with(&format!("NOT_FOUND - no exchange '{missing_x}'")), "{text}");

    let ch = channel(&conn).await;
    let text = expect_error(
        "basic.consume on missing queue",
        ch.basic_consume(
            missing_q.as_str().into(),
            "".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        ),
        NOT_FOUND,
    )
    .await;
    assert!(text.starts_with(&format!("NOT_FOUND - no queue '{missing_q}'")), "{text}");

    let ch = channel(&conn).await;
    let text = expect_error(
        "basic.get on missing queue",
        ch.basic_get(missing_q.as_str().into(), BasicGetOptions::default()),
        NOT_FOUND,
    )
    .await;
    assert!(text.starts_with(&format!("NOT_FOUND - no queue '{missing_q}'")), "{text}");

    let ch = channel(&conn).await;
    let text = expect_error(
        "queue.purge on missing queue",
        ch.queue_purge(missing_q.as_str().into(), QueuePurgeOptions::default()),
        NOT_FOUND,
    )
    .await;
    assert!(text.starts_with(&format!("NOT_FOUND - no queue '{missing_q}'")), "{text}");

    assert_connection_usable(&conn).await;
    teardown(conn).await;
}
