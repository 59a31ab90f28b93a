//! Deduplication windows across SIGKILL: a publish confirmed before the
//! crash and retried after it is dropped as a duplicate.

use futures_lite::StreamExt;
use lapin::options::{
    BasicConsumeOptions, BasicGetOptions, BasicPublishOptions, ConfirmSelectOptions, ExchangeDeclareOptions,
    QueueDeclareOptions,
};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, Channel, ExchangeKind};

mod common;
use common::process::Warren;

fn dedup(size: i32) -> FieldTable {
    let mut t = FieldTable::default();
    t.insert("x-message-deduplication".into(), AMQPValue::Boolean(true));
    t.insert("x-cache-size".into(), AMQPValue::LongInt(size));
    t
}

async fn publish_ids(ch: &Channel, exchange: &str, key: &str, ids: &[&str]) {
    for id in ids {
        let mut headers = FieldTable::default();
        headers.insert("x-deduplication-header".into(), AMQPValue::LongString((*id).into()));
        let props = BasicProperties::default().with_delivery_mode(2).with_headers(headers);
        let c = ch
            .basic_publish(exchange.into(), key.into(), BasicPublishOptions::default(), id.as_bytes(), props)
            .await
            .unwrap()
            .await
            .unwrap();
        assert!(c.is_ack());
    }
}

async fn drain(ch: &Channel, q: &str) -> Vec<String> {
    let mut out = Vec::new();
    while let Some(m) = ch.basic_get(q.into(), BasicGetOptions { no_ack: true }).await.unwrap() {
        out.push(String::from_utf8(m.delivery.data.clone()).unwrap());
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn windows_of_durable_queues_and_exchanges_survive_sigkill() {
    let mut w = Warren::new();
    w.start().await;
    let durable = QueueDeclareOptions { durable: true, ..Default::default() };
    {
        let conn = w.connect().await;
        let ch = conn.create_channel().await.unwrap();
        ch.confirm_select(ConfirmSelectOptions::default()).await.unwrap();
        ch.queue_declare("orders".into(), durable, dedup(3)).await.unwrap();
        let opts = ExchangeDeclareOptions { durable: true, ..Default::default() };
        ch.exchange_declare("events".into(), ExchangeKind::Fanout, opts, dedup(100)).await.unwrap();
        ch.queue_declare("events-q".into(), durable, FieldTable::default()).await.unwrap();
        ch.queue_bind(
            "events-q".into(),
            "events".into(),
            "".into(),
            Default::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
        // "a" is pushed out of the queue's window of 3 by b, c, d.
        publish_ids(&ch, "", "orders", &["a", "b", "c", "d"]).await;
        assert_eq!(drain(&ch, "orders").await, ["a", "b", "c", "d"]);
        // Confirmed after the drain: its acks are on disk too.
        publish_ids(&ch, "events", "", &["e1", "e2"]).await;
        w.crash();
    }
    w.start().await;
    let conn = w.connect().await;
    let ch = conn.create_channel().await.unwrap();
    ch.confirm_select(ConfirmSelectOptions::default()).await.unwrap();
    // The producer retries: what is in the window is dropped, what left it
    // comes again (and pushes the oldest out in turn).
    publish_ids(&ch, "", "orders", &["b", "c", "d", "a", "e"]).await;
    assert_eq!(drain(&ch, "orders").await, ["a", "e"]);
    publish_ids(&ch, "events", "", &["e1", "e2", "e3"]).await;
    assert_eq!(drain(&ch, "events-q").await, ["e1", "e2", "e3"], "the first two are from before the crash");
    w.stop();
}

/// A message a deduplicating exchange routes to a no-ack consumer as it is
/// published is never written, but its id is: retried after a crash, it is
/// a duplicate.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_id_of_a_message_consumed_unwritten_survives_sigkill() {
    let mut w = Warren::new();
    w.start().await;
    {
        let conn = w.connect().await;
        let ch = conn.create_channel().await.unwrap();
        let opts = ExchangeDeclareOptions { durable: true, ..Default::default() };
        ch.exchange_declare("taken".into(), ExchangeKind::Fanout, opts, dedup(100)).await.unwrap();
        let durable = QueueDeclareOptions { durable: true, ..Default::default() };
        ch.queue_declare("taken-q".into(), durable, FieldTable::default()).await.unwrap();
        ch.queue_bind("taken-q".into(), "taken".into(), "".into(), Default::default(), FieldTable::default())
            .await
            .unwrap();
        let consumer_ch = conn.create_channel().await.unwrap();
        let no_ack = BasicConsumeOptions { no_ack: true, ..Default::default() };
        let mut c = consumer_ch
            .basic_consume("taken-q".into(), "c".into(), no_ack, FieldTable::default())
            .await
            .unwrap();
        ch.confirm_select(ConfirmSelectOptions::default()).await.unwrap();
        publish_ids(&ch, "taken", "", &["t1", "t2"]).await;
        for id in ["t1", "t2"] {
            assert_eq!(c.next().await.unwrap().unwrap().data, id.as_bytes());
        }
        w.crash();
    }
    w.start().await;
    let conn = w.connect().await;
    let ch = conn.create_channel().await.unwrap();
    ch.confirm_select(ConfirmSelectOptions::default()).await.unwrap();
    publish_ids(&ch, "taken", "", &["t1", "t2", "t3"]).await;
    assert_eq!(drain(&ch, "taken-q").await, ["t3"], "t1 and t2 were consumed before the crash");
    w.stop();
}
