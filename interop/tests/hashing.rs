//! Hash exchanges: `x-consistent-hash` (RabbitMQ's plugin) and
//! `x-modulus-hash` (RabbitMQ 4.3). Neither is built into RabbitMQ 3.10.8,
//! so these tests are Warren-only (they skip against RabbitMQ).

mod common;

use std::collections::HashMap;

use common::*;
use lapin::options::ExchangeDeclareOptions;
use lapin::types::FieldTable;
use lapin::{BasicProperties, ExchangeKind};

async fn hash_exchange(ch: &lapin::Channel, name: &str, kind: &str, args: FieldTable) -> lapin::Result<()> {
    within(
        "exchange.declare",
        ch.exchange_declare(
            name.into(),
            ExchangeKind::Custom(kind.into()),
            ExchangeDeclareOptions::default(),
            args,
        ),
    )
    .await
}

/// Publishes one message per key (body = key), then reads every queue
/// back: key → the queue it reached.
async fn route_keys(
    ch: &lapin::Channel,
    x: &str,
    queues: &[String],
    keys: &[String],
) -> HashMap<String, String> {
    confirm_select(ch).await;
    for k in keys {
        publish_confirmed(ch, x, k, Default::default(), k.as_bytes(), BasicProperties::default()).await;
    }
    let mut placed = HashMap::new();
    for q in queues {
        while let Some(m) = get(ch, q).await {
            let key = String::from_utf8(m.delivery.data.clone()).unwrap();
            assert!(placed.insert(key, q.clone()).is_none(), "a message reached two queues");
        }
    }
    placed
}

#[tokio::test]
async fn consistent_hash_sends_each_key_to_one_queue_by_weight() {
    if is_rabbitmq() {
        return;
    }
    let (conn, ch) = setup().await;
    let x = unique("chx");
    hash_exchange(&ch, &x, "x-consistent-hash", FieldTable::default()).await.unwrap();
    let queues: Vec<String> = (0..3).map(|i| unique(&format!("chq{i}"))).collect();
    for (q, weight) in queues.iter().zip(["1", "2", "1"]) {
        named_queue(&ch, q).await;
        bind(&ch, q, &x, weight).await;
    }
    let keys: Vec<String> = (0..4000).map(|i| format!("order-{i}")).collect();
    let first = route_keys(&ch, &x, &queues, &keys).await;
    assert_eq!(first.len(), keys.len(), "every message reached exactly one queue");
    let share = |q: &String| first.values().filter(|p| *p == q).count();
    // Weights 1:2:1 over 4000 keys: about 1000, 2000, 1000.
    assert!((850..1150).contains(&share(&queues[0])), "{}", share(&queues[0]));
    assert!((1800..2200).contains(&share(&queues[1])), "{}", share(&queues[1]));
    // The same keys again land where they did.
    let again = route_keys(&ch, &x, &queues, &keys[..500]).await;
    for (k, q) in &again {
        assert_eq!(&first[k], q, "{k} changed queue");
    }
    for q in &queues {
        delete_queue(&ch, q).await;
    }
    teardown(conn).await;
}

#[tokio::test]
async fn consistent_hash_on_a_header_or_a_property() {
    if is_rabbitmq() {
        return;
    }
    let (conn, ch) = setup().await;
    for (arg, value) in [("hash-header", "tenant"), ("hash-property", "message_id")] {
        let x = unique("chx");
        hash_exchange(&ch, &x, "x-consistent-hash", table(&[(arg, long_str(value))])).await.unwrap();
        let queues: Vec<String> = (0..4).map(|i| unique(&format!("hq{i}"))).collect();
        for q in &queues {
            named_queue(&ch, q).await;
            bind(&ch, q, &x, "1").await;
        }
        confirm_select(&ch).await;
        // 20 tenants, 10 messages each, every one with another routing key.
        for i in 0..200 {
            let tenant = format!("tenant-{}", i % 20);
            let props = if arg == "hash-header" {
                BasicProperties::default().with_headers(table(&[("tenant", long_str(&tenant))]))
            } else {
                BasicProperties::default().with_message_id(tenant.as_str().into())
            };
            let key = format!("rk-{i}");
            publish_confirmed(&ch, &x, &key, Default::default(), tenant.as_bytes(), props).await;
        }
        let mut home: HashMap<String, String> = HashMap::new();
        let mut total = 0;
        for q in &queues {
            while let Some(m) = get(&ch, q).await {
                total += 1;
                let tenant = String::from_utf8(m.delivery.data.clone()).unwrap();
                let at = home.entry(tenant.clone()).or_insert_with(|| q.clone());
                assert_eq!(at, q, "{arg}: {tenant} reached two queues");
            }
        }
        assert_eq!(total, 200);
        assert!(home.values().collect::<std::collections::HashSet<_>>().len() > 1, "{arg}: all in one queue");
        for q in &queues {
            delete_queue(&ch, q).await;
        }
    }
    teardown(conn).await;
}

#[tokio::test]
async fn modulus_hash_spreads_keys_over_its_bindings() {
    if is_rabbitmq() {
        return;
    }
    let (conn, ch) = setup().await;
    let x = unique("mhx");
    hash_exchange(&ch, &x, "x-modulus-hash", FieldTable::default()).await.unwrap();
    let queues: Vec<String> = (0..2).map(|i| unique(&format!("mq{i}"))).collect();
    for q in &queues {
        named_queue(&ch, q).await;
        bind(&ch, q, &x, "").await;
    }
    let keys: Vec<String> = (0..1000).map(|i| format!("k{i}")).collect();
    let placed = route_keys(&ch, &x, &queues, &keys).await;
    assert_eq!(placed.len(), 1000);
    let first = placed.values().filter(|q| **q == queues[0]).count();
    assert!((400..600).contains(&first), "{first} of 1000 in the first queue");
    for q in &queues {
        delete_queue(&ch, q).await;
    }
    teardown(conn).await;
}

#[tokio::test]
async fn bad_weights_and_arguments_are_refused_with_the_plugins_errors() {
    if is_rabbitmq() {
        return;
    }
    let conn = connect().await;
    let ch = channel(&conn).await;
    let x = unique("chx");
    hash_exchange(&ch, &x, "x-consistent-hash", FieldTable::default()).await.unwrap();
    let q = temp_queue(&ch).await;
    for (key, text) in [
        ("0", "The binding key must be greater than 0"),
        ("-1", "The binding key must be greater than 0"),
        ("10001", "The binding key must not exceed 10000"),
        ("heavy", "The binding key must be an integer"),
    ] {
        let ch = channel(&conn).await;
        let res = ch.queue_bind(
            q.as_str().into(),
            x.as_str().into(),
            key.into(),
            Default::default(),
            FieldTable::default(),
        );
        let got = expect_soft_error(within("queue.bind", res).await, 406);
        assert!(got.contains(text), "{key}: {got}");
    }
    // The exchange and queue are unharmed: a good weight binds.
    bind(&channel(&conn).await, &q, &x, "3").await;
    let ch = channel(&conn).await;
    let both = table(&[("hash-header", long_str("h")), ("hash-property", long_str("message_id"))]);
    let got = expect_soft_error(hash_exchange(&ch, &unique("chx"), "x-consistent-hash", both).await, 406);
    assert!(got.contains("mutually exclusive"), "{got}");
    let ch = channel(&conn).await;
    let bad = table(&[("hash-property", long_str("app_id"))]);
    let got = expect_soft_error(hash_exchange(&ch, &unique("chx"), "x-consistent-hash", bad).await, 406);
    assert!(got.contains("Unsupported property: app_id"), "{got}");
    teardown(conn).await;
}
