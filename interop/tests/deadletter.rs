//! Dead-lettering on rejection: where the message goes, its `x-death`
//! history (counts merged per queue and reason, newest first), the
//! `x-first-death-*` headers, and the cycle rule.

mod common;

use std::time::Duration;

use common::*;
use lapin::options::{BasicNackOptions, BasicRejectOptions, ExchangeDeclareOptions};
use lapin::types::AMQPValue;
use lapin::{BasicProperties, ExchangeKind};

#[tokio::test]
async fn a_rejected_message_goes_to_the_dlx_with_its_routing_key_and_x_death() {
    let (conn, ch) = setup().await;
    let dlx = unique("dlx");
    declare_exchange(&ch, &dlx, ExchangeKind::Fanout, ExchangeDeclareOptions::default()).await;
    let dlq = unique("dlq");
    named_queue(&ch, &dlq).await;
    bind(&ch, &dlq, &dlx, "").await;
    let q = unique("work");
    queue_with(&ch, &q, table(&[("x-dead-letter-exchange", long_str(&dlx))])).await;
    let props = BasicProperties::default().with_correlation_id("c-1".into()).with_delivery_mode(2);
    publish_props(&ch, "", &q, b"poison", props).await;
    let m = get_opts(&ch, &q, false).await.expect("the message");
    ch.basic_reject(m.delivery.delivery_tag, BasicRejectOptions { requeue: false }).await.unwrap();

    let d = get_eventually(&ch, &dlq).await.delivery;
    assert_eq!(d.data, b"poison");
    assert_eq!(d.exchange.as_str(), dlx, "delivered from the dead-letter exchange");
    assert_eq!(d.routing_key.as_str(), q, "with its original routing key");
    assert_eq!(d.properties.correlation_id().as_ref().map(|c| c.as_str()), Some("c-1"));
    assert_eq!(d.properties.delivery_mode(), &Some(2));
    let deaths = x_death(&d.properties);
    assert_eq!(deaths.len(), 1);
    let death = &deaths[0];
    assert_eq!(text_of(death, "reason").as_deref(), Some("rejected"));
    assert_eq!(text_of(death, "queue").as_deref(), Some(q.as_str()));
    assert_eq!(text_of(death, "exchange").as_deref(), Some(""));
    assert_eq!(int_of(death, "count"), Some(1));
    assert!(matches!(death.inner().get("time"), Some(AMQPValue::Timestamp(_))), "{death:?}");
    match death.inner().get("routing-keys") {
        Some(AMQPValue::FieldArray(keys)) => {
            assert_eq!(keys.as_slice(), &[AMQPValue::LongString(q.as_str().into())]);
        }
        other => panic!("routing-keys: {other:?}"),
    }
    assert_eq!(header_text(&d.properties, "x-first-death-queue").as_deref(), Some(q.as_str()));
    assert_eq!(header_text(&d.properties, "x-first-death-reason").as_deref(), Some("rejected"));
    assert_eq!(header_text(&d.properties, "x-first-death-exchange").as_deref(), Some(""));
    for name in [&q, &dlq] {
        delete_queue(&ch, name).await;
    }
    ch.exchange_delete(dlx.as_str().into(), Default::default()).await.unwrap();
    teardown(conn).await;
}

#[tokio::test]
async fn a_dead_letter_routing_key_replaces_the_original() {
    let (conn, ch) = setup().await;
    let dlq = unique("dlq");
    named_queue(&ch, &dlq).await;
    let q = unique("work");
    let args = table(&dead_letter_to(&dlq));
    queue_with(&ch, &q, args).await;
    publish(&ch, "", &q, b"m").await;
    let m = get_opts(&ch, &q, false).await.expect("the message");
    ch.basic_nack(m.delivery.delivery_tag, BasicNackOptions { requeue: false, multiple: false })
        .await
        .unwrap();
    let d = get_eventually(&ch, &dlq).await.delivery;
    assert_eq!(d.routing_key.as_str(), dlq);
    assert_eq!(death_reason(&d.properties).as_deref(), Some("rejected"));
    delete_queue(&ch, &q).await;
    delete_queue(&ch, &dlq).await;
    teardown(conn).await;
}

#[tokio::test]
async fn rejections_in_a_loop_count_up_one_x_death_entry() {
    let (conn, ch) = setup().await;
    // Rejected messages come straight back to the same queue: a cycle with
    // a rejection in it is allowed.
    let q = unique("loop");
    let args = table(&dead_letter_to(&q));
    queue_with(&ch, &q, args).await;
    publish(&ch, "", &q, b"m").await;
    for round in 1..=3 {
        let m = get_manual_eventually(&ch, &q).await;
        let deaths = x_death(&m.delivery.properties);
        if round == 1 {
            assert!(deaths.is_empty());
        } else {
            assert_eq!(deaths.len(), 1, "one entry per (queue, reason)");
            assert_eq!(int_of(&deaths[0], "count"), Some(round - 1));
        }
        ch.basic_reject(m.delivery.delivery_tag, BasicRejectOptions { requeue: false }).await.unwrap();
    }
    let m = get_eventually(&ch, &q).await;
    assert_eq!(int_of(&x_death(&m.delivery.properties)[0], "count"), Some(3));
    assert_eq!(header_text(&m.delivery.properties, "x-first-death-reason").as_deref(), Some("rejected"));
    delete_queue(&ch, &q).await;
    teardown(conn).await;
}

#[tokio::test]
async fn x_death_lists_the_newest_death_first() {
    let (conn, ch) = setup().await;
    // q1 (TTL) expires into q2; q2 rejects back into... a third queue.
    let q3 = unique("end");
    named_queue(&ch, &q3).await;
    let q2 = unique("middle");
    let args2 = table(&dead_letter_to(&q3));
    queue_with(&ch, &q2, args2).await;
    let q1 = unique("start");
    let args1 = table_dead_lettering_to(&[("x-message-ttl", int(20))], &q2);
    queue_with(&ch, &q1, args1).await;
    publish(&ch, "", &q1, b"m").await;
    let m = get_manual_eventually(&ch, &q2).await;
    ch.basic_reject(m.delivery.delivery_tag, BasicRejectOptions { requeue: false }).await.unwrap();
    let d = get_eventually(&ch, &q3).await.delivery;
    let deaths = x_death(&d.properties);
    let order: Vec<_> =
        deaths.iter().map(|t| (text_of(t, "queue").unwrap(), text_of(t, "reason").unwrap())).collect();
    assert_eq!(order, vec![(q2.clone(), "rejected".to_owned()), (q1.clone(), "expired".to_owned())]);
    assert_eq!(header_text(&d.properties, "x-first-death-queue").as_deref(), Some(q1.as_str()));
    assert_eq!(header_text(&d.properties, "x-first-death-reason").as_deref(), Some("expired"));
    for q in [&q1, &q2, &q3] {
        delete_queue(&ch, q).await;
    }
    teardown(conn).await;
}

#[tokio::test]
async fn an_expiry_cycle_without_a_rejection_is_dropped() {
    let (conn, ch) = setup().await;
    let q = unique("ttl-loop");
    let args = table_dead_lettering_to(&[("x-message-ttl", int(20))], &q);
    queue_with(&ch, &q, args).await;
    publish(&ch, "", &q, b"m").await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(queue_exists(&conn, &q).await.map(|(m, _)| m), Some(0), "the message kept cycling");
    delete_queue(&ch, &q).await;
    teardown(conn).await;
}

#[tokio::test]
async fn a_missing_dead_letter_exchange_drops_the_message() {
    let (conn, ch) = setup().await;
    let q = unique("no-dlx");
    queue_with(&ch, &q, table(&[("x-dead-letter-exchange", long_str(&unique("missing")))])).await;
    publish(&ch, "", &q, b"m").await;
    let m = get_opts(&ch, &q, false).await.expect("the message");
    ch.basic_reject(m.delivery.delivery_tag, BasicRejectOptions { requeue: false }).await.unwrap();
    // The channel stays usable; the message is gone.
    assert!(get(&ch, &q).await.is_none());
    delete_queue(&ch, &q).await;
    teardown(conn).await;
}
