//! Durability against a real `warren` process: clean restarts and SIGKILL.

use std::collections::BTreeSet;
use std::time::Duration;

use futures_lite::StreamExt;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicGetOptions, BasicPublishOptions, BasicQosOptions,
    ConfirmSelectOptions, ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions,
};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Channel, Connection, ExchangeKind};

mod common;
use common::process::Warren;

fn persistent() -> BasicProperties {
    BasicProperties::default().with_delivery_mode(2)
}

async fn declare(ch: &Channel, name: &str, durable: bool) {
    let opts = QueueDeclareOptions { durable, ..Default::default() };
    ch.queue_declare(name.into(), opts, FieldTable::default()).await.unwrap();
}

async fn passive_count(conn: &Connection, name: &str) -> Option<u32> {
    let ch = conn.create_channel().await.unwrap();
    let opts = QueueDeclareOptions { passive: true, ..Default::default() };
    ch.queue_declare(name.into(), opts, FieldTable::default()).await.ok().map(|q| q.message_count())
}

async fn drain(ch: &Channel, queue: &str) -> Vec<(String, bool)> {
    let mut out = Vec::new();
    while let Some(m) = ch.basic_get(queue.into(), BasicGetOptions { no_ack: true }).await.unwrap() {
        out.push((String::from_utf8(m.delivery.data.clone()).unwrap(), m.delivery.redelivered));
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn topology_and_persistent_messages_survive_a_restart() {
    let mut w = Warren::new();
    w.start().await;
    {
        let conn = w.connect().await;
        let ch = conn.create_channel().await.unwrap();
        ch.confirm_select(ConfirmSelectOptions::default()).await.unwrap();
        let durable = ExchangeDeclareOptions { durable: true, ..Default::default() };
        ch.exchange_declare("events".into(), ExchangeKind::Topic, durable, FieldTable::default())
            .await
            .unwrap();
        ch.exchange_declare(
            "scratch".into(),
            ExchangeKind::Fanout,
            Default::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
        declare(&ch, "orders", true).await;
        declare(&ch, "transient-q", false).await;
        ch.queue_bind(
            "orders".into(),
            "events".into(),
            "order.#".into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
        for i in 0..6 {
            let props = if i % 2 == 0 { persistent() } else { BasicProperties::default() };
            let body = format!("m{i}");
            ch.basic_publish(
                "events".into(),
                "order.new".into(),
                BasicPublishOptions::default(),
                body.as_bytes(),
                props,
            )
            .await
            .unwrap()
            .await
            .unwrap();
        }
        ch.basic_publish("".into(), "transient-q".into(), BasicPublishOptions::default(), b"t", persistent())
            .await
            .unwrap()
            .await
            .unwrap();
        // m0 is delivered and left unacked when the broker stops.
        let consumer_ch = conn.create_channel().await.unwrap();
        consumer_ch.basic_qos(1, BasicQosOptions::default()).await.unwrap();
        let mut consumer = consumer_ch
            .basic_consume("orders".into(), "c".into(), BasicConsumeOptions::default(), FieldTable::default())
            .await
            .unwrap();
        let first = consumer.next().await.unwrap().unwrap();
        assert_eq!(first.data, b"m0");
        // m2 is acked: it must not come back.
        let get = ch.basic_get("orders".into(), BasicGetOptions::default()).await.unwrap().unwrap();
        assert_eq!(get.delivery.data, b"m1");
        ch.basic_ack(get.delivery.delivery_tag, BasicAckOptions::default()).await.unwrap();
        let get = ch.basic_get("orders".into(), BasicGetOptions::default()).await.unwrap().unwrap();
        assert_eq!(get.delivery.data, b"m2");
        ch.basic_ack(get.delivery.delivery_tag, BasicAckOptions::default()).await.unwrap();
        // A synchronous call after the acks: they have been processed.
        passive_count(&conn, "orders").await.unwrap();
        w.stop();
    }
    w.start().await;
    let conn = w.connect().await;
    assert_eq!(passive_count(&conn, "transient-q").await, None, "a non-durable queue survived");
    let ch = conn.create_channel().await.unwrap();
    let passive = ExchangeDeclareOptions { passive: true, ..Default::default() };
    assert!(ch
        .exchange_declare("events".into(), ExchangeKind::Topic, passive, FieldTable::default())
        .await
        .is_ok());
    let ch = conn.create_channel().await.unwrap();
    assert!(
        ch.exchange_declare("scratch".into(), ExchangeKind::Fanout, passive, FieldTable::default())
            .await
            .is_err(),
        "a non-durable exchange survived"
    );
    let ch = conn.create_channel().await.unwrap();
    // Persistent m0 (delivered, unacked) and m4 remain; transient ones and acked m2 are gone.
    assert_eq!(drain(&ch, "orders").await, vec![("m0".to_owned(), true), ("m4".to_owned(), false)]);
    // The binding survived too.
    ch.confirm_select(ConfirmSelectOptions::default()).await.unwrap();
    ch.basic_publish(
        "events".into(),
        "order.again".into(),
        BasicPublishOptions::default(),
        b"again",
        persistent(),
    )
    .await
    .unwrap()
    .await
    .unwrap();
    assert_eq!(drain(&ch, "orders").await, vec![("again".to_owned(), false)]);
    w.stop();
}

/// Messages handed to consumers as they are published: one for a no-ack
/// consumer is never written (RabbitMQ's `discard`), one for a manual-ack
/// consumer is written marked delivered. After a crash the unacked ones
/// come back redelivered, the no-ack ones do not come back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_handed_over_at_once_come_back_only_if_unacked() {
    let mut w = Warren::new();
    w.start().await;
    {
        let conn = w.connect().await;
        let ch = conn.create_channel().await.unwrap();
        declare(&ch, "live", true).await;
        declare(&ch, "gone", true).await;
        let manual = conn.create_channel().await.unwrap();
        manual.basic_qos(100, BasicQosOptions::default()).await.unwrap();
        let mut held = manual
            .basic_consume(
                "live".into(),
                "held".into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await
            .unwrap();
        let auto = conn.create_channel().await.unwrap();
        let no_ack = BasicConsumeOptions { no_ack: true, ..Default::default() };
        let mut taken =
            auto.basic_consume("gone".into(), "taken".into(), no_ack, FieldTable::default()).await.unwrap();
        ch.confirm_select(ConfirmSelectOptions::default()).await.unwrap();
        for i in 0..20 {
            let (queue, body) =
                if i % 2 == 0 { ("live", format!("a{i}")) } else { ("gone", format!("b{i}")) };
            let confirm = ch
                .basic_publish(
                    "".into(),
                    queue.into(),
                    BasicPublishOptions::default(),
                    body.as_bytes(),
                    persistent(),
                )
                .await
                .unwrap()
                .await
                .unwrap();
            assert!(confirm.is_ack());
        }
        for i in 0..10 {
            let d = held.next().await.unwrap().unwrap();
            assert_eq!((String::from_utf8(d.data).unwrap(), d.redelivered), (format!("a{}", 2 * i), false));
            let d = taken.next().await.unwrap().unwrap();
            assert_eq!(String::from_utf8(d.data).unwrap(), format!("b{}", 2 * i + 1));
        }
        w.crash();
    }
    w.start().await;
    let conn = w.connect().await;
    let ch = conn.create_channel().await.unwrap();
    let back = drain(&ch, "live").await;
    assert_eq!(back, (0..10).map(|i| (format!("a{}", 2 * i), true)).collect::<Vec<_>>());
    assert_eq!(drain(&ch, "gone").await, Vec::new());
    w.stop();
}

/// Publishers with confirms and transactional consumers while the broker is
/// killed: every confirmed message that was not acked (committed) is there
/// after the restart, and no committed ack comes back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn confirmed_messages_survive_sigkill_and_acked_ones_stay_gone() {
    let mut w = Warren::new();
    w.start().await;
    let queues = ["crash-a", "crash-b"];
    {
        let conn = w.connect().await;
        let ch = conn.create_channel().await.unwrap();
        for q in queues {
            declare(&ch, q, true).await;
        }
    }
    let confirmed = std::sync::Arc::new(parking_lot::Mutex::new(BTreeSet::new()));
    let acked = std::sync::Arc::new(parking_lot::Mutex::new(BTreeSet::new()));
    // Acks whose commit was cut by the crash: they may or may not have taken effect.
    let uncertain = std::sync::Arc::new(parking_lot::Mutex::new(BTreeSet::new()));
    let mut tasks = Vec::new();
    for p in 0..3 {
        let conn = w.connect().await;
        let confirmed = confirmed.clone();
        tasks.push(tokio::spawn(async move {
            let ch = conn.create_channel().await.unwrap();
            ch.confirm_select(ConfirmSelectOptions::default()).await.unwrap();
            for i in 0.. {
                let body = format!("p{p}-{i}");
                let q = ["crash-a", "crash-b"][i % 2];
                let Ok(c) = ch
                    .basic_publish(
                        "".into(),
                        q.into(),
                        BasicPublishOptions::default(),
                        body.as_bytes(),
                        persistent(),
                    )
                    .await
                else {
                    return;
                };
                match c.await {
                    Ok(c) if c.is_ack() => {
                        confirmed.lock().insert(body);
                    }
                    _ => return,
                }
            }
        }));
    }
    for q in queues {
        let conn = w.connect().await;
        let acked = acked.clone();
        let uncertain = uncertain.clone();
        tasks.push(tokio::spawn(async move {
            let ch = conn.create_channel().await.unwrap();
            if ch.tx_select().await.is_err() {
                return;
            }
            loop {
                let mut batch = Vec::new();
                for _ in 0..10 {
                    match ch.basic_get(q.into(), BasicGetOptions::default()).await {
                        Ok(Some(m)) => batch.push(m),
                        Ok(None) => break,
                        Err(_) => return,
                    }
                }
                let Some(last) = batch.last() else {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                    continue;
                };
                let bodies: Vec<String> =
                    batch.iter().map(|m| String::from_utf8(m.delivery.data.clone()).unwrap()).collect();
                uncertain.lock().extend(bodies.iter().cloned());
                if ch.basic_ack(last.delivery.delivery_tag, BasicAckOptions { multiple: true }).await.is_err()
                    || ch.tx_commit().await.is_err()
                {
                    return;
                }
                let mut u = uncertain.lock();
                for b in &bodies {
                    u.remove(b);
                }
                acked.lock().extend(bodies);
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    w.crash();
    for t in tasks {
        let _ = tokio::time::timeout(Duration::from_secs(10), t).await;
    }
    let (confirmed, acked, uncertain) =
        (confirmed.lock().clone(), acked.lock().clone(), uncertain.lock().clone());
    assert!(confirmed.len() > 100, "the publishers barely ran: {} confirms", confirmed.len());
    assert!(!acked.is_empty(), "the consumers never committed an ack");

    w.start().await;
    let conn = w.connect().await;
    let ch = conn.create_channel().await.unwrap();
    let mut recovered = BTreeSet::new();
    for q in queues {
        for (body, _) in drain(&ch, q).await {
            assert!(recovered.insert(body.clone()), "{body} recovered twice");
        }
    }
    let lost: Vec<_> = confirmed
        .iter()
        .filter(|m| !acked.contains(*m) && !uncertain.contains(*m) && !recovered.contains(*m))
        .take(10)
        .collect();
    assert!(lost.is_empty(), "confirmed messages lost in the crash: {lost:?}");
    let back: Vec<_> = acked.intersection(&recovered).take(10).collect();
    assert!(back.is_empty(), "acked (committed) messages came back: {back:?}");
    w.stop();
}

/// A start that fails once the data directory is open (the AMQP port
/// taken; a definitions file that does not parse) exits with status 1 and
/// the reason, not a crash (RocksDB's threads outliving the process), and
/// the data directory is whole for the next start.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_start_that_fails_after_opening_the_store_exits_with_its_reason() {
    let mut w = Warren::new();
    w.start().await;
    {
        let conn = w.connect().await;
        let ch = conn.create_channel().await.unwrap();
        declare(&ch, "kept", true).await;
        ch.confirm_select(ConfirmSelectOptions::default()).await.unwrap();
        let confirm = ch
            .basic_publish(
                "".into(),
                "kept".into(),
                BasicPublishOptions::default(),
                b"still here",
                persistent(),
            )
            .await
            .unwrap()
            .await
            .unwrap();
        assert!(confirm.is_ack());
    }
    w.stop();

    let taken = std::net::TcpListener::bind(("127.0.0.1", w.port)).unwrap();
    let (status, log) = w.start_failing(&[]);
    assert_eq!(status.code(), Some(1), "{status}: {log}");
    assert!(log.contains("cannot start: Address already in use"), "{log}");
    drop(taken);

    let config = w.dir.with_extension("toml");
    let definitions = w.dir.with_extension("json");
    std::fs::write(&definitions, "{not json").unwrap();
    std::fs::write(&config, format!("[access]\ndefinitions = {:?}\n", definitions.display().to_string()))
        .unwrap();
    let (status, log) = w.start_failing(&["--config", config.to_str().unwrap()]);
    let _ = (std::fs::remove_file(&config), std::fs::remove_file(&definitions));
    assert_eq!(status.code(), Some(1), "{status}: {log}");
    assert!(log.contains("cannot import definitions file"), "{log}");

    w.start().await;
    let conn = w.connect().await;
    let ch = conn.create_channel().await.unwrap();
    assert_eq!(drain(&ch, "kept").await, vec![("still here".to_owned(), false)]);
    w.stop();
}
