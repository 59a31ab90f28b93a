//! Queue features that need a broker of their own: the consumer timeout
//! (a setting), and queue features surviving a restart (durable queues
//! keep their arguments, their messages' expiry and their priorities).

mod common;

use std::time::Duration;

use futures_lite::StreamExt;
use lapin::options::{
    BasicConsumeOptions, BasicGetOptions, BasicPublishOptions, BasicQosOptions, ConfirmSelectOptions,
    QueueDeclareOptions,
};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties};
use warren::config::Config;
use warren::server::Server;

async fn connect(s: &Server) -> (Connection, Channel) {
    let conn =
        Connection::connect(&common::url(s.local_addr), ConnectionProperties::default()).await.unwrap();
    let ch = conn.create_channel().await.unwrap();
    (conn, ch)
}

fn args(pairs: &[(&str, AMQPValue)]) -> FieldTable {
    let mut t = FieldTable::default();
    for (k, v) in pairs {
        t.insert((*k).into(), v.clone());
    }
    t
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delivery_unacked_past_the_consumer_timeout_closes_its_channel() {
    let s = common::start_with(|c| c.amqp.consumer_timeout = 200).await;
    let (conn, ch) = connect(&s).await;
    ch.queue_declare("slow".into(), QueueDeclareOptions::default(), FieldTable::default()).await.unwrap();
    let consumer_ch = conn.create_channel().await.unwrap();
    let mut c = consumer_ch
        .basic_consume("slow".into(), "".into(), BasicConsumeOptions::default(), FieldTable::default())
        .await
        .unwrap();
    ch.basic_publish(
        "".into(),
        "slow".into(),
        BasicPublishOptions::default(),
        b"m",
        BasicProperties::default(),
    )
    .await
    .unwrap();
    let d = tokio::time::timeout(Duration::from_secs(5), c.next()).await.unwrap().unwrap().unwrap();
    assert!(!d.redelivered);
    // Not acked: after the timeout the channel is closed and the message requeued.
    let closed = tokio::time::timeout(Duration::from_secs(5), async {
        while consumer_ch.status().connected() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    assert!(closed.is_ok(), "the channel stayed open");
    let again = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            if let Some(m) = ch.basic_get("slow".into(), BasicGetOptions { no_ack: true }).await.unwrap() {
                return m;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .unwrap();
    assert!(again.delivery.redelivered);
    // A prompt consumer is left alone.
    let ok_ch = conn.create_channel().await.unwrap();
    ok_ch.basic_qos(1, BasicQosOptions::default()).await.unwrap();
    let mut c = ok_ch
        .basic_consume("slow".into(), "".into(), BasicConsumeOptions::default(), FieldTable::default())
        .await
        .unwrap();
    for i in 0..5u8 {
        ch.basic_publish(
            "".into(),
            "slow".into(),
            BasicPublishOptions::default(),
            &[i],
            BasicProperties::default(),
        )
        .await
        .unwrap();
        let d = tokio::time::timeout(Duration::from_secs(5), c.next()).await.unwrap().unwrap().unwrap();
        tokio::time::sleep(Duration::from_millis(60)).await;
        d.ack(Default::default()).await.unwrap();
    }
    assert!(ok_ch.status().connected());
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn durable_queue_features_survive_a_restart() {
    let dir =
        std::env::temp_dir().join(format!("warren-features-{}-{}", std::process::id(), fastrand::u64(..)));
    let config = || {
        let mut c = Config::default();
        c.metrics.listen = None;
        c.amqp.listen = "127.0.0.1:0".parse().unwrap();
        c.storage.data_dir = dir.clone();
        c
    };
    let durable = QueueDeclareOptions { durable: true, ..Default::default() };
    let persistent = |p: u8| BasicProperties::default().with_delivery_mode(2).with_priority(p);
    let s = Server::start(config()).await.unwrap();
    {
        let (_conn, ch) = connect(&s).await;
        ch.confirm_select(ConfirmSelectOptions::default()).await.unwrap();
        ch.queue_declare("dead".into(), durable, FieldTable::default()).await.unwrap();
        let ttl = args(&[
            ("x-message-ttl", AMQPValue::LongInt(1500)),
            ("x-dead-letter-exchange", AMQPValue::LongString("".into())),
            ("x-dead-letter-routing-key", AMQPValue::LongString("dead".into())),
        ]);
        ch.queue_declare("expiring".into(), durable, ttl).await.unwrap();
        ch.queue_declare("ranked".into(), durable, args(&[("x-max-priority", AMQPValue::LongInt(9))]))
            .await
            .unwrap();
        for (q, body, p) in
            [("expiring", "soon", 0), ("ranked", "low", 1), ("ranked", "high", 9), ("ranked", "mid", 5)]
        {
            ch.basic_publish(
                "".into(),
                q.into(),
                BasicPublishOptions::default(),
                body.as_bytes(),
                persistent(p),
            )
            .await
            .unwrap()
            .await
            .unwrap();
        }
    }
    s.stop().await;

    let s = Server::start(config()).await.unwrap();
    let (_conn, ch) = connect(&s).await;
    // Priorities hold across the restart.
    let mut ranked = Vec::new();
    while let Some(m) = ch.basic_get("ranked".into(), BasicGetOptions { no_ack: true }).await.unwrap() {
        ranked.push(String::from_utf8(m.delivery.data.clone()).unwrap());
    }
    assert_eq!(ranked, vec!["high", "mid", "low"]);
    // The message expires on its original schedule and is dead-lettered by the restarted broker.
    let dead = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            if let Some(m) = ch.basic_get("dead".into(), BasicGetOptions { no_ack: true }).await.unwrap() {
                return m;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    })
    .await
    .expect("the expired message was dead-lettered after the restart");
    assert_eq!(dead.delivery.data, b"soon");
    let q = ch.queue_declare("expiring".into(), durable, {
        args(&[
            ("x-message-ttl", AMQPValue::LongInt(1500)),
            ("x-dead-letter-exchange", AMQPValue::LongString("".into())),
            ("x-dead-letter-routing-key", AMQPValue::LongString("dead".into())),
        ])
    });
    assert_eq!(q.await.unwrap().message_count(), 0, "the queue kept its arguments (an equivalent redeclare)");
    s.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_delivery_limit_holds_across_a_restart() {
    let dir = std::env::temp_dir().join(format!("warren-limit-{}-{}", std::process::id(), fastrand::u64(..)));
    let config = || {
        let mut c = Config::default();
        c.metrics.listen = None;
        c.amqp.listen = "127.0.0.1:0".parse().unwrap();
        c.storage.data_dir = dir.clone();
        c
    };
    let durable = QueueDeclareOptions { durable: true, ..Default::default() };
    let limited = || {
        args(&[
            ("x-delivery-limit", AMQPValue::LongInt(2)),
            ("x-dead-letter-exchange", AMQPValue::LongString("".into())),
            ("x-dead-letter-routing-key", AMQPValue::LongString("poison".into())),
        ])
    };
    let nack = lapin::options::BasicNackOptions { requeue: true, multiple: false };
    let get = |ch: Channel, q: &'static str| async move {
        tokio::time::timeout(Duration::from_secs(5), async {
            loop {
                if let Some(m) = ch.basic_get(q.into(), BasicGetOptions { no_ack: false }).await.unwrap() {
                    return m;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
        .await
        .unwrap()
    };
    let count = |m: &lapin::message::BasicGetMessage| match m
        .delivery
        .properties
        .headers()
        .as_ref()
        .and_then(|h| h.inner().get("x-delivery-count").cloned())
    {
        Some(AMQPValue::LongLongInt(n)) => n,
        other => panic!("x-delivery-count: {other:?}"),
    };
    let s = Server::start(config()).await.unwrap();
    {
        let (_conn, ch) = connect(&s).await;
        ch.confirm_select(ConfirmSelectOptions::default()).await.unwrap();
        ch.queue_declare("poison".into(), durable, FieldTable::default()).await.unwrap();
        ch.queue_declare("jobs".into(), durable, limited()).await.unwrap();
        let props = BasicProperties::default().with_delivery_mode(2);
        ch.basic_publish("".into(), "jobs".into(), BasicPublishOptions::default(), b"bad", props)
            .await
            .unwrap()
            .await
            .unwrap();
        for _ in 0..2 {
            let m = get(ch.clone(), "jobs").await;
            ch.basic_nack(m.delivery.delivery_tag, nack).await.unwrap();
        }
        // A synchronous call: the nacks were processed.
        ch.queue_declare("jobs".into(), durable, limited()).await.unwrap();
    }
    s.stop().await;

    let s = Server::start(config()).await.unwrap();
    let (_conn, ch) = connect(&s).await;
    let m = get(ch.clone(), "jobs").await;
    assert!(m.delivery.redelivered);
    assert_eq!(count(&m), 2, "the count survived the restart");
    ch.basic_nack(m.delivery.delivery_tag, nack).await.unwrap();
    let dead = get(ch.clone(), "poison").await;
    assert_eq!(dead.delivery.data, b"bad");
    s.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
}
