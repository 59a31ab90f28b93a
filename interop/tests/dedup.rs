//! Message deduplication, as LavinMQ's (`x-message-deduplication` on a
//! queue or an exchange). RabbitMQ 3.10.8 does not have it: Warren-only
//! (these tests skip against RabbitMQ).

mod common;

use std::time::Duration;

use common::*;
use lapin::options::{BasicPublishOptions, ExchangeDeclareOptions, QueueDeclareOptions};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, ExchangeKind};

fn dedup(extra: &[(&str, AMQPValue)]) -> FieldTable {
    let mut pairs = vec![("x-message-deduplication", AMQPValue::Boolean(true))];
    pairs.extend(extra.iter().cloned());
    table(&pairs)
}

fn with_id(header: &str, id: &str) -> BasicProperties {
    BasicProperties::default().with_headers(table(&[(header, long_str(id))]))
}

/// Publishes `ids` (body = id) with confirms; every one is acked.
async fn publish_ids(ch: &lapin::Channel, exchange: &str, key: &str, header: &str, ids: &[&str]) {
    for id in ids {
        let c = publish_confirmed(ch, exchange, key, Default::default(), id.as_bytes(), with_id(header, id))
            .await;
        assert!(c.is_ack(), "{id} was not confirmed");
    }
}

async fn bodies(ch: &lapin::Channel, q: &str) -> Vec<String> {
    let mut out = Vec::new();
    while let Some(m) = get(ch, q).await {
        out.push(String::from_utf8(m.delivery.data.clone()).unwrap());
    }
    out
}

#[tokio::test]
async fn a_queue_drops_what_it_has_seen_and_confirms_it() {
    if is_rabbitmq() {
        return;
    }
    let (conn, ch) = setup().await;
    confirm_select(&ch).await;
    let q = unique("dedup");
    queue_with(&ch, &q, dedup(&[])).await;
    let h = "x-deduplication-header";
    publish_ids(&ch, "", &q, h, &["a", "b", "a", "c", "b"]).await;
    // Without the header a message is never a duplicate.
    publish_confirmed(&ch, "", &q, Default::default(), b"plain", BasicProperties::default()).await;
    publish_confirmed(&ch, "", &q, Default::default(), b"plain", BasicProperties::default()).await;
    assert_eq!(bodies(&ch, &q).await, ["a", "b", "c", "plain", "plain"]);
    // Consumed is not forgotten: the window is about ids, not the queue's contents.
    publish_ids(&ch, "", &q, h, &["a"]).await;
    assert!(get(&ch, &q).await.is_none());
    let shown = admin_ok("GET", &format!("/api/queues/%2f/{q}"), None).await;
    assert!(shown.contains("\"messages_deduplicated\":3"), "{shown}");
    delete_queue(&ch, &q).await;
    teardown(conn).await;
}

#[tokio::test]
async fn the_window_has_a_size_a_ttl_and_a_header_name() {
    if is_rabbitmq() {
        return;
    }
    let (conn, ch) = setup().await;
    confirm_select(&ch).await;
    // Two ids at most: the oldest goes first.
    let small = unique("dedup-size");
    queue_with(
        &ch,
        &small,
        dedup(&[("x-cache-size", int(2)), ("x-deduplication-header", long_str("msg-id"))]),
    )
    .await;
    publish_ids(&ch, "", &small, "msg-id", &["a", "b", "c", "a", "c"]).await;
    assert_eq!(bodies(&ch, &small).await, ["a", "b", "c", "a"]);
    // The default header means nothing on this queue.
    publish_ids(&ch, "", &small, "x-deduplication-header", &["z", "z"]).await;
    assert_eq!(bodies(&ch, &small).await, ["z", "z"]);
    // Remembered 1.5 s; a message's own x-cache-ttl wins.
    let ttl = unique("dedup-ttl");
    queue_with(&ch, &ttl, dedup(&[("x-cache-ttl", int(1_500))])).await;
    let h = "x-deduplication-header";
    publish_ids(&ch, "", &ttl, h, &["t", "t"]).await;
    let long = BasicProperties::default()
        .with_headers(table(&[(h, long_str("long")), ("x-cache-ttl", int(60_000))]));
    for _ in 0..2 {
        publish_confirmed(&ch, "", &ttl, Default::default(), b"long", long.clone()).await;
    }
    tokio::time::sleep(Duration::from_millis(1_700)).await;
    publish_ids(&ch, "", &ttl, h, &["t", "long"]).await;
    assert_eq!(bodies(&ch, &ttl).await, ["t", "long", "t"]);
    for q in [&small, &ttl] {
        delete_queue(&ch, q).await;
    }
    teardown(conn).await;
}

#[tokio::test]
async fn an_exchange_routes_an_id_once_and_never_returns_a_duplicate() {
    if is_rabbitmq() {
        return;
    }
    let (conn, ch) = setup().await;
    confirm_select(&ch).await;
    let x = unique("dedup-x");
    let opts = ExchangeDeclareOptions::default();
    within(
        "exchange.declare",
        ch.exchange_declare(x.as_str().into(), ExchangeKind::Fanout, opts, dedup(&[])),
    )
    .await
    .unwrap();
    let (q1, q2) = (unique("dq1"), unique("dq2"));
    for q in [&q1, &q2] {
        named_queue(&ch, q).await;
        bind(&ch, q, &x, "").await;
    }
    publish_ids(&ch, &x, "", "x-deduplication-header", &["o-1", "o-2", "o-1"]).await;
    let mandatory = BasicPublishOptions { mandatory: true, ..Default::default() };
    let c = publish_confirmed(&ch, &x, "", mandatory, b"o-2", with_id("x-deduplication-header", "o-2")).await;
    assert!(c.is_ack() && c.take_message().is_none(), "a duplicate was returned");
    for q in [&q1, &q2] {
        assert_eq!(bodies(&ch, q).await, ["o-1", "o-2"]);
        delete_queue(&ch, q).await;
    }
    let shown = admin_ok("GET", &format!("/api/exchanges/%2f/{x}"), None).await;
    assert!(shown.contains("\"messages_deduplicated\":2"), "{shown}");
    teardown(conn).await;
}

#[tokio::test]
async fn bad_deduplication_arguments_are_refused() {
    if is_rabbitmq() {
        return;
    }
    let conn = connect().await;
    for (args, text) in [
        (table(&[("x-message-deduplication", long_str("yes"))]), "expected a boolean"),
        (dedup(&[("x-cache-size", int(-5))]), "is negative"),
        (dedup(&[("x-cache-size", AMQPValue::LongLongInt(1 << 40))]), "over the largest window"),
        (dedup(&[("x-cache-ttl", long_str("1m"))]), "expected an integer"),
        (dedup(&[("x-deduplication-header", int(3))]), "expected a header name"),
    ] {
        let ch = channel(&conn).await;
        let res = ch
            .queue_declare(unique("bad").as_str().into(), QueueDeclareOptions::default(), args.clone())
            .await;
        let got = expect_soft_error(res, 406);
        assert!(got.contains(text), "{got}");
        let ch = channel(&conn).await;
        let res = ch
            .exchange_declare(unique("bad").as_str().into(), ExchangeKind::Direct, Default::default(), args)
            .await;
        let got = expect_soft_error(res, 406);
        assert!(got.contains(text) && got.contains("for exchange"), "{got}");
    }
    teardown(conn).await;
}

#[tokio::test]
async fn a_message_a_full_queue_refused_may_be_published_again() {
    if is_rabbitmq() {
        return;
    }
    let (conn, ch) = setup().await;
    confirm_select(&ch).await;
    let q = unique("dedup-full");
    queue_with(&ch, &q, dedup(&[("x-max-length", int(1)), ("x-overflow", long_str("reject-publish"))])).await;
    let h = "x-deduplication-header";
    publish_ids(&ch, "", &q, h, &["first"]).await;
    let c = publish_confirmed(&ch, "", &q, Default::default(), b"second", with_id(h, "second")).await;
    assert!(c.is_nack(), "the full queue refused it");
    assert_eq!(bodies(&ch, &q).await, ["first"]);
    // The producer retries the refused one: it is not a duplicate.
    publish_ids(&ch, "", &q, h, &["second"]).await;
    assert_eq!(bodies(&ch, &q).await, ["second"]);
    delete_queue(&ch, &q).await;
    teardown(conn).await;
}

/// Two queues that dead-letter into each other, one deduplicating: the
/// dead letters a publish sets off reach the deduplicating queue again
/// while that publish is under way. Nothing hangs; the broker answers.
#[tokio::test]
async fn dead_letters_back_into_a_deduplicating_queue_do_not_hang() {
    if is_rabbitmq() {
        return;
    }
    let (conn, ch) = setup().await;
    confirm_select(&ch).await;
    let (q1, q2) = (unique("dd-loop1"), unique("dd-loop2"));
    let full_to = |next: &str| {
        vec![
            ("x-max-length", int(1)),
            ("x-dead-letter-exchange", long_str("")),
            ("x-dead-letter-routing-key", long_str(next)),
        ]
    };
    queue_with(&ch, &q1, dedup(&full_to(&q2))).await;
    queue_with(&ch, &q2, table(&full_to(&q1))).await;
    let h = "x-deduplication-header";
    publish_ids(&ch, "", &q2, h, &["a"]).await;
    publish_ids(&ch, "", &q1, h, &["b", "c"]).await;
    // Still answering: each queue holds one message.
    assert_eq!(queue_exists(&conn, &q1).await.map(|(m, _)| m), Some(1));
    assert_eq!(queue_exists(&conn, &q2).await.map(|(m, _)| m), Some(1));
    for q in [&q1, &q2] {
        delete_queue(&ch, q).await;
    }
    teardown(conn).await;
}
