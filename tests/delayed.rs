//! Delayed messages against real RocksDB: more waiting than the in-memory
//! window holds, and persistent ones across SIGKILL.

use std::time::{Duration, Instant};

use futures_lite::StreamExt;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicGetOptions, BasicPublishOptions, ConfirmSelectOptions,
    ExchangeDeclareOptions, QueueDeclareOptions,
};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties, ExchangeKind};

mod common;
use common::process::Warren;

async fn delayed_exchange(ch: &Channel, name: &str, queue: &str) {
    let mut args = FieldTable::default();
    args.insert("x-delayed-type".into(), AMQPValue::LongString("direct".into()));
    let durable = ExchangeDeclareOptions { durable: true, ..Default::default() };
    let kind = ExchangeKind::Custom("x-delayed-message".into());
    ch.exchange_declare(name.into(), kind, durable, args).await.unwrap();
    let durable = QueueDeclareOptions { durable: true, ..Default::default() };
    ch.queue_declare(queue.into(), durable, FieldTable::default()).await.unwrap();
    ch.queue_bind(queue.into(), name.into(), "k".into(), Default::default(), FieldTable::default())
        .await
        .unwrap();
}

fn delayed(ms: i64, mode: u8) -> BasicProperties {
    let mut headers = FieldTable::default();
    headers.insert("x-delay".into(), AMQPValue::LongLongInt(ms));
    BasicProperties::default().with_delivery_mode(mode).with_headers(headers)
}

/// 45,000 messages, over twice what the window keeps in memory, with
/// delays in random order: each arrives, none before its time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn more_than_the_window_holds_all_arrive_and_none_early() {
    let s = common::start().await;
    let conn =
        Connection::connect(&common::url(s.local_addr), ConnectionProperties::default()).await.unwrap();
    let ch = conn.create_channel().await.unwrap();
    delayed_exchange(&ch, "many", "many-q").await;
    ch.confirm_select(ConfirmSelectOptions::default()).await.unwrap();
    const N: usize = 45_000;
    let started = Instant::now();
    let mut sent = Vec::with_capacity(N);
    let mut confirms = Vec::with_capacity(N);
    for i in 0..N {
        let delay = 1_000 + fastrand::i64(0..3_000);
        sent.push((Instant::now(), delay));
        let props = delayed(delay, 2);
        let c = ch
            .basic_publish(
                "many".into(),
                "k".into(),
                BasicPublishOptions::default(),
                i.to_string().as_bytes(),
                props,
            )
            .await
            .unwrap();
        confirms.push(c);
    }
    for c in confirms {
        assert!(c.await.unwrap().is_ack());
    }
    let publishing = started.elapsed();
    let consumer_ch = conn.create_channel().await.unwrap();
    let mut consumer = consumer_ch
        .basic_consume(
            "many-q".into(),
            "c".into(),
            BasicConsumeOptions { no_ack: true, ..Default::default() },
            FieldTable::default(),
        )
        .await
        .unwrap();
    let mut seen = vec![false; N];
    for _ in 0..N {
        let d = tokio::time::timeout(Duration::from_secs(60), consumer.next())
            .await
            .expect("in time")
            .unwrap()
            .unwrap();
        let i: usize = std::str::from_utf8(&d.data).unwrap().parse().unwrap();
        assert!(!seen[i], "message {i} came twice");
        seen[i] = true;
        let (at, delay) = sent[i];
        // Due times are whole milliseconds: a millisecond of slack.
        let waited = at.elapsed().as_millis() as i64;
        assert!(
            waited + 1 >= delay,
            "message {i} came after {waited} ms of {delay} (publishing took {publishing:?})"
        );
    }
    conn.close(200, "done".into()).await.unwrap();
}

/// Persistent delayed messages confirmed before a SIGKILL are routed after
/// the restart, overdue ones at once and in due order; transient ones are gone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn persistent_delayed_messages_survive_sigkill_and_fire_in_due_order() {
    let mut w = Warren::new();
    w.start().await;
    {
        let conn = w.connect().await;
        let ch = conn.create_channel().await.unwrap();
        delayed_exchange(&ch, "later", "due").await;
        ch.confirm_select(ConfirmSelectOptions::default()).await.unwrap();
        // Due 1.0 s .. 2.45 s from now, published out of order (all sent
        // before any confirm is awaited: within a few ms of each other).
        let mut order: Vec<i64> = (0..30).collect();
        fastrand::shuffle(&mut order);
        let mut confirms = Vec::new();
        for i in order {
            let body = format!("p{i:02}");
            let props = delayed(1_000 + i * 50, 2);
            let publish = BasicPublishOptions::default();
            confirms.push(
                ch.basic_publish("later".into(), "k".into(), publish, body.as_bytes(), props).await.unwrap(),
            );
        }
        for c in confirms {
            assert!(c.await.unwrap().is_ack());
        }
        for i in 0..5 {
            let body = format!("t{i}");
            ch.basic_publish(
                "later".into(),
                "k".into(),
                BasicPublishOptions::default(),
                body.as_bytes(),
                delayed(1_000, 1),
            )
            .await
            .unwrap()
            .await
            .unwrap();
        }
        // Still waiting long after the test.
        ch.basic_publish(
            "later".into(),
            "k".into(),
            BasicPublishOptions::default(),
            b"far",
            delayed(3_600_000, 2),
        )
        .await
        .unwrap()
        .await
        .unwrap();
        w.crash();
    }
    // Everything is overdue by the time Warren is back.
    tokio::time::sleep(Duration::from_millis(2_600)).await;
    w.start().await;
    let conn = w.connect().await;
    let ch = conn.create_channel().await.unwrap();
    let mut got = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while got.len() < 30 && Instant::now() < deadline {
        match ch.basic_get("due".into(), BasicGetOptions::default()).await.unwrap() {
            Some(m) => {
                got.push(String::from_utf8(m.delivery.data.clone()).unwrap());
                ch.basic_ack(m.delivery.delivery_tag, BasicAckOptions::default()).await.unwrap();
            }
            None => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    }
    let want: Vec<String> = (0..30).map(|i| format!("p{i:02}")).collect();
    assert_eq!(got, want, "persistent delayed messages lost, repeated or out of due order");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let rest = ch.basic_get("due".into(), BasicGetOptions { no_ack: true }).await.unwrap();
    assert!(rest.is_none(), "a transient or far-off message was routed: {:?}", rest.map(|m| m.delivery.data));
    w.stop();
}
