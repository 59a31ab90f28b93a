//! Routing extensions: alternate exchanges, sender-selected distribution
//! (`CC`, `BCC`), queue types and the delivery limit.

mod common;

use common::*;
use lapin::options::{BasicNackOptions, BasicPublishOptions, ExchangeDeclareOptions, QueueDeclareOptions};
use lapin::types::{AMQPValue, FieldArray, FieldTable};
use lapin::{BasicProperties, ExchangeKind};

async fn exchange_with(ch: &lapin::Channel, name: &str, kind: ExchangeKind, args: FieldTable) {
    within(
        "exchange.declare",
        ch.exchange_declare(name.into(), kind, ExchangeDeclareOptions::default(), args),
    )
    .await
    .expect("exchange.declare");
}

#[tokio::test]
async fn unroutable_messages_go_to_the_alternate_exchange_and_are_not_returned() {
    let (conn, ch) = setup().await;
    confirm_select(&ch).await;
    let ae = unique("ae");
    exchange_with(&ch, &ae, ExchangeKind::Fanout, FieldTable::default()).await;
    let caught = unique("caught");
    named_queue(&ch, &caught).await;
    bind(&ch, &caught, &ae, "").await;
    let x = unique("x");
    exchange_with(&ch, &x, ExchangeKind::Direct, table(&[("alternate-exchange", long_str(&ae))])).await;
    let routed = unique("routed");
    named_queue(&ch, &routed).await;
    bind(&ch, &routed, &x, "known").await;

    let mandatory = BasicPublishOptions { mandatory: true, ..Default::default() };
    let c = publish_confirmed(&ch, &x, "unknown", mandatory, b"stray", BasicProperties::default()).await;
    assert!(c.is_ack());
    assert!(c.take_message().is_none(), "a message the alternate exchange took was returned");
    publish(&ch, &x, "known", b"normal").await;
    assert_eq!(get_eventually(&ch, &caught).await.delivery.data, b"stray");
    assert_eq!(get_eventually(&ch, &routed).await.delivery.data, b"normal");
    assert!(get(&ch, &caught).await.is_none(), "a routable message also went to the alternate exchange");
    for q in [&caught, &routed] {
        delete_queue(&ch, q).await;
    }
    for e in [&x, &ae] {
        ch.exchange_delete(e.as_str().into(), Default::default()).await.unwrap();
    }
    teardown(conn).await;
}

fn keys(list: &[&str]) -> AMQPValue {
    AMQPValue::FieldArray(FieldArray::from(list.iter().map(|k| long_str(k)).collect::<Vec<_>>()))
}

#[tokio::test]
async fn cc_and_bcc_add_routing_keys_and_bcc_is_never_seen() {
    let (conn, ch) = setup().await;
    let x = unique("cc");
    exchange_with(&ch, &x, ExchangeKind::Direct, FieldTable::default()).await;
    let (qa, qb, qc) = (unique("a"), unique("b"), unique("c"));
    for (q, key) in [(&qa, "a"), (&qb, "b"), (&qc, "c")] {
        named_queue(&ch, q).await;
        bind(&ch, q, &x, key).await;
    }
    let headers = table(&[("CC", keys(&["b"])), ("BCC", keys(&["c"])), ("other", long_str("kept"))]);
    publish_props(&ch, &x, "a", b"m", BasicProperties::default().with_headers(headers)).await;
    for q in [&qa, &qb, &qc] {
        let d = get_eventually(&ch, q).await.delivery;
        let h = d.properties.headers().clone().expect("headers");
        assert!(h.inner().contains_key("CC"), "CC stays on every copy");
        assert!(!h.inner().contains_key("BCC"), "BCC is removed from every copy");
        assert_eq!(text_of(&h, "other").as_deref(), Some("kept"));
        assert_eq!(d.routing_key.as_str(), "a");
    }
    // Through the default exchange, CC names queues.
    let headers = table(&[("CC", keys(&[&qb]))]);
    publish_props(&ch, "", &qa, b"direct", BasicProperties::default().with_headers(headers)).await;
    assert_eq!(get_eventually(&ch, &qa).await.delivery.data, b"direct");
    assert_eq!(get_eventually(&ch, &qb).await.delivery.data, b"direct");
    for q in [&qa, &qb, &qc] {
        delete_queue(&ch, q).await;
    }
    ch.exchange_delete(x.as_str().into(), Default::default()).await.unwrap();
    teardown(conn).await;
}

#[tokio::test]
async fn quorum_queues_must_be_durable_and_count_redeliveries() {
    let (conn, ch) = setup().await;
    let q = unique("quorum");
    let dlq = unique("dlq");
    named_queue(&ch, &dlq).await;
    let quorum =
        table_dead_lettering_to(&[("x-queue-type", long_str("quorum")), ("x-delivery-limit", int(1))], &dlq);
    let transient = channel(&conn).await;
    let text = expect_error(
        "a non-durable quorum queue",
        transient.queue_declare(q.as_str().into(), QueueDeclareOptions::default(), quorum.clone()),
        PRECONDITION_FAILED,
    )
    .await;
    assert!(text.contains("non-durable"), "{text}");
    let durable = QueueDeclareOptions { durable: true, ..Default::default() };
    ch.queue_declare(q.as_str().into(), durable, quorum).await.expect("a durable quorum queue");
    publish(&ch, "", &q, b"poison").await;
    let nack = BasicNackOptions { requeue: true, multiple: false };
    let first = get_manual_eventually(&ch, &q).await.delivery;
    assert!(header_text(&first.properties, "x-delivery-count").is_none());
    ch.basic_nack(first.delivery_tag, nack).await.unwrap();
    let second = get_manual_eventually(&ch, &q).await.delivery;
    assert!(second.redelivered);
    let count = second.properties.headers().as_ref().and_then(|h| int_of(h, "x-delivery-count"));
    assert_eq!(count, Some(1));
    // Past the delivery limit it is dead-lettered.
    ch.basic_nack(second.delivery_tag, nack).await.unwrap();
    let d = get_eventually(&ch, &dlq).await.delivery;
    assert_eq!(d.data, b"poison");
    assert_eq!(death_reason(&d.properties).as_deref(), Some("delivery_limit"));
    assert!(get(&ch, &q).await.is_none());
    delete_queue(&ch, &q).await;
    delete_queue(&ch, &dlq).await;
    teardown(conn).await;
}

/// Warren-only: RabbitMQ 3.10 has the delivery limit on quorum queues only.
#[tokio::test]
async fn a_classic_queue_with_a_delivery_limit_guards_against_poison_messages() {
    if is_rabbitmq() {
        eprintln!("skipped: x-delivery-limit on classic queues is a Warren extension");
        return;
    }
    let (conn, ch) = setup().await;
    let q = unique("poison");
    let dlq = unique("dlq");
    named_queue(&ch, &dlq).await;
    let args = table_dead_lettering_to(&[("x-delivery-limit", int(2))], &dlq);
    queue_with(&ch, &q, args).await;
    publish(&ch, "", &q, b"poison").await;
    let nack = BasicNackOptions { requeue: true, multiple: false };
    for expected_count in [None, Some(1), Some(2)] {
        let d = get_manual_eventually(&ch, &q).await.delivery;
        assert_eq!(
            d.properties.headers().as_ref().and_then(|h| int_of(h, "x-delivery-count")),
            expected_count
        );
        ch.basic_nack(d.delivery_tag, nack).await.unwrap();
    }
    let d = get_eventually(&ch, &dlq).await.delivery;
    assert_eq!(death_reason(&d.properties).as_deref(), Some("delivery_limit"));
    delete_queue(&ch, &q).await;
    delete_queue(&ch, &dlq).await;
    teardown(conn).await;
}

#[tokio::test]
async fn queue_mode_and_classic_type_are_accepted() {
    let (conn, ch) = setup().await;
    let q = unique("lazy");
    queue_with(&ch, &q, table(&[("x-queue-mode", long_str("lazy")), ("x-queue-type", long_str("classic"))]))
        .await;
    publish(&ch, "", &q, b"m").await;
    assert_eq!(get_eventually(&ch, &q).await.delivery.data, b"m");
    delete_queue(&ch, &q).await;
    teardown(conn).await;
}

#[tokio::test]
async fn cc_that_is_not_an_array_is_refused() {
    let conn = connect().await;
    let ch = channel(&conn).await;
    let mut watch = watch_channel(&ch).await;
    let props = BasicProperties::default().with_headers(table(&[("CC", long_str("b"))]));
    let _ = ch.basic_publish("".into(), "anywhere".into(), BasicPublishOptions::default(), b"x", props).await;
    let text = expect_channel_closed_by_server(&mut watch, PRECONDITION_FAILED).await;
    assert_eq!(text, "PRECONDITION_FAILED - invalid message: {unacceptable_type_in_header,\"CC\",longstr}");
    teardown(conn).await;
}

#[tokio::test]
async fn quorum_queues_refuse_auto_delete_and_priorities() {
    let conn = connect().await;
    let durable = QueueDeclareOptions { durable: true, ..Default::default() };
    let auto_delete = QueueDeclareOptions { durable: true, auto_delete: true, ..Default::default() };
    let quorum = table(&[("x-queue-type", long_str("quorum"))]);
    let q = unique("quorum-bad");
    let ch = channel(&conn).await;
    let text = expect_error(
        "auto-delete quorum",
        ch.queue_declare(q.as_str().into(), auto_delete, quorum.clone()),
        PRECONDITION_FAILED,
    )
    .await;
    assert_eq!(
        text,
        format!("PRECONDITION_FAILED - invalid property 'auto-delete' for queue '{q}' in vhost '/'")
    );
    let ch = channel(&conn).await;
    let prio = table(&[("x-queue-type", long_str("quorum")), ("x-max-priority", int(5))]);
    let text = expect_error(
        "quorum with priorities",
        ch.queue_declare(q.as_str().into(), durable, prio),
        PRECONDITION_FAILED,
    )
    .await;
    assert_eq!(
        text,
        format!("PRECONDITION_FAILED - invalid arg 'x-max-priority' for queue '{q}' in vhost '/' of queue type rabbit_quorum_queue")
    );
    teardown(conn).await;
}

#[tokio::test]
async fn the_alternate_exchange_is_not_used_when_a_cc_key_routes() {
    let (conn, ch) = setup().await;
    let ae = unique("ae");
    exchange_with(&ch, &ae, ExchangeKind::Fanout, FieldTable::default()).await;
    let caught = unique("caught");
    named_queue(&ch, &caught).await;
    bind(&ch, &caught, &ae, "").await;
    let x = unique("x");
    exchange_with(&ch, &x, ExchangeKind::Direct, table(&[("alternate-exchange", long_str(&ae))])).await;
    let via_cc = unique("via-cc");
    named_queue(&ch, &via_cc).await;
    bind(&ch, &via_cc, &x, "cc-key").await;
    let headers = table(&[("CC", keys(&["cc-key"]))]);
    publish_props(&ch, &x, "no-such-key", b"m", BasicProperties::default().with_headers(headers)).await;
    assert_eq!(get_eventually(&ch, &via_cc).await.delivery.data, b"m");
    assert!(get(&ch, &caught).await.is_none(), "routed by CC, yet also sent to the alternate exchange");
    for q in [&caught, &via_cc] {
        delete_queue(&ch, q).await;
    }
    for e in [&x, &ae] {
        ch.exchange_delete(e.as_str().into(), Default::default()).await.unwrap();
    }
    teardown(conn).await;
}

#[tokio::test]
async fn the_default_exchange_follows_a_queue_deleted_and_declared_again() {
    let (conn, ch) = setup().await;
    confirm_select(&ch).await;
    let (q, other) = (unique("again"), unique("again-cc"));
    named_queue(&ch, &q).await;
    named_queue(&ch, &other).await;
    let mandatory = BasicPublishOptions { mandatory: true, ..Default::default() };
    let props = BasicProperties::default;
    let c = publish_confirmed(&ch, "", &q, mandatory, b"first", props()).await;
    assert!(c.is_ack() && c.take_message().is_none(), "the first message was returned");
    // The same queue again, now with a CC: both queues take it.
    let cc = props().with_headers(table(&[("CC", keys(&[&other]))]));
    let c = publish_confirmed(&ch, "", &q, mandatory, b"second", cc).await;
    assert!(c.is_ack() && c.take_message().is_none(), "the CC'd message was returned");
    assert_eq!(get_eventually(&ch, &other).await.delivery.data, b"second");
    publish(&ch, "", &q, b"last").await;
    delete_queue(&ch, &q).await;
    // Gone: a mandatory message to its name comes back.
    let c = publish_confirmed(&ch, "", &q, mandatory, b"unroutable", props()).await;
    let returned = c.take_message().expect("a message to a deleted queue was not returned");
    assert_eq!(returned.data, b"unroutable");
    // Declared again: the new queue takes what follows, and nothing of before.
    named_queue(&ch, &q).await;
    let c = publish_confirmed(&ch, "", &q, mandatory, b"third", props()).await;
    assert!(c.is_ack() && c.take_message().is_none(), "a message to the new queue was returned");
    assert_eq!(get_eventually(&ch, &q).await.delivery.data, b"third");
    assert!(get(&ch, &q).await.is_none(), "the new queue holds more than was sent to it");
    for name in [&q, &other] {
        delete_queue(&ch, name).await;
    }
    teardown(conn).await;
}
