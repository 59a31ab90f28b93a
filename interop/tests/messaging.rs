//! Publishing, consuming, basic.get, acknowledgements, properties, large bodies.

mod common;

use common::*;
use futures_lite::StreamExt;
use lapin::{
    options::{
        BasicAckOptions, BasicCancelOptions, BasicConsumeOptions, BasicNackOptions, BasicQosOptions,
        QueueDeleteOptions,
    },
    types::{AMQPValue, ByteArray, DecimalValue, FieldArray, FieldTable, LongString},
    BasicProperties,
};
use std::collections::BTreeSet;

#[tokio::test]
async fn publish_consume_no_ack_in_order() {
    let (conn, ch) = setup().await;
    let q = temp_queue(&ch).await;
    let mut consumer = consume(&ch, &q, true).await;
    for i in 0..10 {
        publish(&ch, "", &q, format!("msg-{i}").as_bytes()).await;
    }
    for i in 0..10u64 {
        let d = next_delivery(&mut consumer).await;
        assert_eq!(body(&d), format!("msg-{i}"));
        assert_eq!(d.delivery_tag, i + 1, "delivery tags count from 1 per channel");
        assert!(!d.redelivered);
        assert_eq!(d.exchange.as_str(), "");
        assert_eq!(d.routing_key.as_str(), q);
    }
    assert_no_delivery(&mut consumer).await;
    assert_eq!(queue_exists(&conn, &q).await, Some((0, 1)));
    teardown(conn).await;
}

#[tokio::test]
async fn manual_ack_single_and_multiple() {
    let (conn, ch) = setup().await;
    let q = unique("manual-ack");
    named_queue(&ch, &q).await;
    for i in 0..4 {
        publish(&ch, "", &q, format!("{i}").as_bytes()).await;
    }
    let cch = channel(&conn).await;
    let mut consumer = consume(&cch, &q, false).await;
    let d: Vec<_> = {
        let mut v = Vec::new();
        for _ in 0..4 {
            v.push(next_delivery(&mut consumer).await);
        }
        v
    };
    assert_eq!(sorted_bodies(&d), vec!["0", "1", "2", "3"]);
    // Ack #2 alone, then everything up to #3 with multiple=true (acks 1 and 3).
    ack(&d[1]).await;
    within("basic.ack multiple", cch.basic_ack(d[2].delivery_tag, BasicAckOptions { multiple: true }))
        .await
        .expect("ack multiple");
    // #4 remains unacked; closing the channel puts it back.
    within("channel.close", cch.close(200, "bye".into())).await.expect("close");
    let m = get_eventually(&ch, &q).await;
    assert_eq!(m.delivery.data, b"3");
    assert!(m.delivery.redelivered, "requeued message must be flagged redelivered");
    assert_eq!(m.message_count, 0);
    assert!(get(&ch, &q).await.is_none(), "acked messages came back");
    delete_queue(&ch, &q).await;
    teardown(conn).await;
}

#[tokio::test]
async fn unacked_messages_requeued_in_order_on_close() {
    let (conn, ch) = setup().await;
    let q = unique("requeue-order");
    named_queue(&ch, &q).await;
    for i in 0..5 {
        publish(&ch, "", &q, format!("{i}").as_bytes()).await;
    }
    let cch = channel(&conn).await;
    let mut consumer = consume(&cch, &q, false).await;
    for i in 0..5 {
        let d = next_delivery(&mut consumer).await;
        assert_eq!(body(&d), i.to_string());
        assert!(!d.redelivered);
    }
    within("channel.close", cch.close(200, "bye".into())).await.expect("close");
    let mut consumer = consume(&ch, &q, true).await;
    for i in 0..5 {
        let d = next_delivery(&mut consumer).await;
        assert_eq!(body(&d), i.to_string(), "requeued messages keep their order");
        assert!(d.redelivered);
    }
    within("queue.delete", ch.queue_delete(q.as_str().into(), QueueDeleteOptions::default()))
        .await
        .expect("delete");
    teardown(conn).await;
}

#[tokio::test]
async fn reject_and_nack() {
    let (conn, ch) = setup().await;
    let q = temp_queue(&ch).await;
    for b in ["requeue-me", "drop-me", "nack-1", "nack-2"] {
        publish(&ch, "", &q, b.as_bytes()).await;
    }
    let m = get_eventually_ack(&ch, &q).await;
    assert_eq!(m.delivery.data, b"requeue-me");
    reject(&m.delivery, true).await;
    // Requeued at the head of the queue, marked redelivered.
    let m = get_eventually_ack(&ch, &q).await;
    assert_eq!(m.delivery.data, b"requeue-me");
    assert!(m.delivery.redelivered);
    ack(&m.delivery).await;

    let m = get_eventually_ack(&ch, &q).await;
    assert_eq!(m.delivery.data, b"drop-me");
    reject(&m.delivery, false).await;

    let a = get_eventually_ack(&ch, &q).await;
    let b = get_eventually_ack(&ch, &q).await;
    assert_eq!(a.delivery.data, b"nack-1");
    assert_eq!(b.delivery.data, b"nack-2");
    // nack multiple + requeue covers both.
    within(
        "basic.nack",
        ch.basic_nack(b.delivery.delivery_tag, BasicNackOptions { multiple: true, requeue: true }),
    )
    .await
    .unwrap();
    let mut seen = Vec::new();
    for _ in 0..2 {
        let m = get_eventually(&ch, &q).await;
        assert!(m.delivery.redelivered);
        seen.push(String::from_utf8(m.delivery.data).unwrap());
    }
    seen.sort();
    assert_eq!(seen, vec!["nack-1", "nack-2"]);
    assert!(get(&ch, &q).await.is_none(), "rejected without requeue must be gone");
    teardown(conn).await;
}

async fn get_eventually_ack(ch: &lapin::Channel, q: &str) -> lapin::message::BasicGetMessage {
    within("basic.get (manual ack)", async {
        loop {
            if let Some(m) = get_opts(ch, q, false).await {
                return m;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    })
    .await
}

#[tokio::test]
async fn basic_get_ok_and_empty() {
    let (conn, ch) = setup().await;
    let q = temp_queue(&ch).await;
    assert!(get(&ch, &q).await.is_none(), "get-empty on a fresh queue");

    for i in 0..3 {
        publish(&ch, "", &q, format!("g{i}").as_bytes()).await;
    }
    eventually("3 ready", || async { queue_exists(&conn, &q).await == Some((3, 0)) }).await;

    let m = get_opts(&ch, &q, false).await.expect("get-ok");
    assert_eq!(m.delivery.data, b"g0");
    assert_eq!(m.message_count, 2, "message_count excludes the fetched message");
    assert_eq!(m.delivery.exchange.as_str(), "");
    assert_eq!(m.delivery.routing_key.as_str(), q);
    assert!(!m.delivery.redelivered);
    assert_eq!(m.delivery.delivery_tag, 1);
    ack(&m.delivery).await;

    let m = get(&ch, &q).await.expect("get-ok");
    assert_eq!(m.delivery.data, b"g1");
    assert_eq!(m.message_count, 1);
    assert_eq!(m.delivery.delivery_tag, 2);

    // Fetched-but-unacked messages are not ready: message_count counts ready only.
    let m = get_opts(&ch, &q, false).await.expect("get-ok");
    assert_eq!(m.delivery.data, b"g2");
    assert_eq!(m.message_count, 0);
    assert!(get(&ch, &q).await.is_none(), "get-empty while the last one is unacked");
    nack(&m.delivery, true).await;
    let m = get(&ch, &q).await.expect("requeued message");
    assert_eq!(m.delivery.data, b"g2");
    assert!(m.delivery.redelivered);
    assert!(get(&ch, &q).await.is_none());
    teardown(conn).await;
}

#[tokio::test]
async fn prefetch_limits_unacked_deliveries() {
    let (conn, ch) = setup().await;
    let q = temp_queue(&ch).await;
    within("basic.qos", ch.basic_qos(1, BasicQosOptions::default())).await.expect("qos");
    for i in 0..3 {
        publish(&ch, "", &q, format!("p{i}").as_bytes()).await;
    }
    let mut consumer = consume(&ch, &q, false).await;
    let d0 = next_delivery(&mut consumer).await;
    assert_eq!(body(&d0), "p0");
    assert_no_delivery(&mut consumer).await;
    ack(&d0).await;
    let d1 = next_delivery(&mut consumer).await;
    assert_eq!(body(&d1), "p1");
    assert_no_delivery(&mut consumer).await;
    ack(&d1).await;
    let d2 = next_delivery(&mut consumer).await;
    assert_eq!(body(&d2), "p2");
    ack(&d2).await;
    teardown(conn).await;
}

#[tokio::test]
async fn consumers_share_a_queue() {
    let (conn, ch) = setup().await;
    let q = temp_queue(&ch).await;
    let mut c1 = consume(&ch, &q, true).await;
    let mut c2 = consume(&ch, &q, true).await;
    assert_eq!(queue_exists(&conn, &q).await, Some((0, 2)));
    for i in 0..10 {
        publish(&ch, "", &q, format!("{i:02}").as_bytes()).await;
    }
    let a = drain(&mut c1).await;
    let b = drain(&mut c2).await;
    assert!(!a.is_empty() && !b.is_empty(), "round robin: {} / {}", a.len(), b.len());
    let mut all: Vec<String> = a.iter().chain(b.iter()).map(body).collect();
    all.sort();
    let want: Vec<String> = (0..10).map(|i| format!("{i:02}")).collect();
    assert_eq!(all, want, "each message delivered exactly once");
    teardown(conn).await;
}

#[tokio::test]
async fn consumer_tags_server_generated_and_explicit() {
    let (conn, ch) = setup().await;
    let q = temp_queue(&ch).await;
    let c1 = consume(&ch, &q, true).await;
    let c2 = consume(&ch, &q, true).await;
    assert!(c1.tag().as_str().starts_with("amq.ctag-"), "{}", c1.tag());
    assert!(c2.tag().as_str().starts_with("amq.ctag-"), "{}", c2.tag());
    assert_ne!(c1.tag(), c2.tag());

    let explicit = unique("my-tag");
    let c3 = within(
        "basic.consume with tag",
        ch.basic_consume(
            q.as_str().into(),
            explicit.as_str().into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        ),
    )
    .await
    .expect("consume");
    assert_eq!(c3.tag().as_str(), explicit);
    teardown(conn).await;
}

#[tokio::test]
async fn basic_cancel_stops_delivery() {
    let (conn, ch) = setup().await;
    let q = temp_queue(&ch).await;
    let mut consumer = consume(&ch, &q, true).await;
    publish(&ch, "", &q, b"before").await;
    assert_eq!(body(&next_delivery(&mut consumer).await), "before");

    within("basic.cancel", ch.basic_cancel(consumer.tag(), BasicCancelOptions::default()))
        .await
        .expect("cancel");
    let end = within("consumer stream end", consumer.next()).await;
    assert!(end.is_none(), "stream must end after cancel, got {end:?}");
    assert_eq!(queue_exists(&conn, &q).await, Some((0, 0)));

    publish(&ch, "", &q, b"after").await;
    let m = get_eventually(&ch, &q).await;
    assert_eq!(m.delivery.data, b"after", "message published after cancel stays queued");
    teardown(conn).await;
}

#[tokio::test]
async fn deleting_queue_cancels_consumers() {
    let (conn, ch) = setup().await;
    let q = unique("delete-cancels");
    named_queue(&ch, &q).await;
    let cch = channel(&conn).await;
    let mut consumer = consume(&cch, &q, true).await;
    delete_queue(&ch, &q).await;
    // The broker sends basic.cancel (consumer_cancel_notify capability), so the stream ends.
    let end = within("server-initiated basic.cancel", consumer.next()).await;
    assert!(end.is_none(), "expected stream end, got {end:?}");
    // The consumer's channel stays open.
    temp_queue(&cch).await;
    teardown(conn).await;
}

fn all_properties(user: &str) -> BasicProperties {
    let mut deepest = FieldTable::default();
    deepest.insert("leaf".into(), AMQPValue::LongString(LongString::from("bottom")));
    let mut nested = FieldTable::default();
    nested.insert("inner".into(), AMQPValue::LongString(LongString::from("deep")));
    nested.insert("n".into(), AMQPValue::LongInt(-5));
    nested.insert("deeper".into(), AMQPValue::FieldTable(deepest));

    let array = FieldArray::from(vec![
        AMQPValue::LongInt(1),
        AMQPValue::LongString(LongString::from("two")),
        AMQPValue::Boolean(true),
        AMQPValue::FieldArray(FieldArray::from(vec![AMQPValue::LongLongInt(3)])),
        AMQPValue::FieldTable(nested.clone()),
    ]);

    let long_string: String = "ünïcødé-long-string/".repeat(200); // > 255 bytes
    let mut h = FieldTable::default();
    h.insert("bool-true".into(), AMQPValue::Boolean(true));
    h.insert("bool-false".into(), AMQPValue::Boolean(false));
    h.insert("i8".into(), AMQPValue::ShortShortInt(-8));
    h.insert("u8".into(), AMQPValue::ShortShortUInt(200));
    h.insert("i16".into(), AMQPValue::ShortInt(-1600));
    h.insert("u16".into(), AMQPValue::ShortUInt(60000));
    h.insert("i32".into(), AMQPValue::LongInt(-320_000));
    h.insert("u32".into(), AMQPValue::LongUInt(4_000_000_000));
    h.insert("i64".into(), AMQPValue::LongLongInt(-64_000_000_000_000));
    h.insert("i64-max".into(), AMQPValue::LongLongInt(i64::MAX));
    h.insert("f32".into(), AMQPValue::Float(1.5));
    h.insert("f64".into(), AMQPValue::Double(-2.25));
    h.insert("decimal".into(), AMQPValue::DecimalValue(DecimalValue { scale: 2, value: 12345 }));
    h.insert("long-string".into(), AMQPValue::LongString(LongString::from(long_string)));
    h.insert("empty-string".into(), AMQPValue::LongString(LongString::from("")));
    h.insert("timestamp".into(), AMQPValue::Timestamp(1_700_000_000));
    h.insert("array".into(), AMQPValue::FieldArray(array));
    h.insert("empty-array".into(), AMQPValue::FieldArray(FieldArray::default()));
    h.insert("nested".into(), AMQPValue::FieldTable(nested));
    h.insert("empty-table".into(), AMQPValue::FieldTable(FieldTable::default()));
    h.insert("bytes".into(), AMQPValue::ByteArray(ByteArray::from(vec![0u8, 1, 2, 255])));
    h.insert("void".into(), AMQPValue::Void);

    BasicProperties::default()
        .with_content_type("application/json".into())
        .with_content_encoding("gzip".into())
        .with_headers(h)
        .with_delivery_mode(2)
        .with_priority(5)
        .with_correlation_id("corr-42".into())
        .with_reply_to("reply.queue".into())
        .with_expiration("600000".into())
        .with_message_id("msg-7".into())
        .with_timestamp(1_650_000_000)
        .with_type("order.created".into())
        .with_user_id(user.into())
        .with_app_id("warren-interop".into())
        .with_cluster_id("cluster-x".into())
}

fn assert_same_properties(got: &BasicProperties, want: &BasicProperties) {
    assert_eq!(got.content_type(), want.content_type(), "content_type");
    assert_eq!(got.content_encoding(), want.content_encoding(), "content_encoding");
    assert_eq!(got.delivery_mode(), want.delivery_mode(), "delivery_mode");
    assert_eq!(got.priority(), want.priority(), "priority");
    assert_eq!(got.correlation_id(), want.correlation_id(), "correlation_id");
    assert_eq!(got.reply_to(), want.reply_to(), "reply_to");
    assert_eq!(got.expiration(), want.expiration(), "expiration");
    assert_eq!(got.message_id(), want.message_id(), "message_id");
    assert_eq!(got.timestamp(), want.timestamp(), "timestamp");
    assert_eq!(got.kind(), want.kind(), "type");
    assert_eq!(got.user_id(), want.user_id(), "user_id");
    assert_eq!(got.app_id(), want.app_id(), "app_id");
    assert_eq!(got.cluster_id(), want.cluster_id(), "cluster_id");
    match (got.headers(), want.headers()) {
        (Some(g), Some(w)) => {
            for (k, v) in w {
                assert_eq!(g.inner().get(k), Some(v), "header {k}");
            }
            let extra: Vec<_> = g.inner().keys().filter(|k| !w.contains_key(k.as_str())).collect();
            assert!(extra.is_empty(), "unexpected extra headers {extra:?}");
        }
        (g, w) => assert_eq!(g, w, "headers"),
    }
    assert_eq!(got, want);
}

#[tokio::test]
async fn all_properties_and_header_table_round_trip() {
    let (conn, ch) = setup().await;
    let q = temp_queue(&ch).await;
    let user = conn.status().username();
    let props = all_properties(&user);

    // Via a consumer.
    let mut consumer = consume(&ch, &q, true).await;
    publish_props(&ch, "", &q, b"{\"k\":1}", props.clone()).await;
    let d = next_delivery(&mut consumer).await;
    assert_eq!(d.data, b"{\"k\":1}");
    assert_same_properties(&d.properties, &props);
    within("basic.cancel", ch.basic_cancel(consumer.tag(), BasicCancelOptions::default())).await.unwrap();

    // Via basic.get.
    publish_props(&ch, "", &q, b"again", props.clone()).await;
    let m = get_eventually(&ch, &q).await;
    assert_eq!(m.delivery.data, b"again");
    assert_same_properties(&m.delivery.properties, &props);

    // A message without any properties comes back without any.
    publish_props(&ch, "", &q, b"bare", BasicProperties::default()).await;
    let m = get_eventually(&ch, &q).await;
    assert_eq!(m.delivery.properties, BasicProperties::default());
    teardown(conn).await;
}

#[tokio::test]
async fn empty_body_round_trips() {
    let (conn, ch) = setup().await;
    let q = temp_queue(&ch).await;
    let mut consumer = consume(&ch, &q, true).await;
    publish_props(&ch, "", &q, b"", BasicProperties::default().with_message_id("empty".into())).await;
    let d = next_delivery(&mut consumer).await;
    assert!(d.data.is_empty());
    assert_eq!(d.properties.message_id().as_ref().map(|s| s.as_str()), Some("empty"));
    teardown(conn).await;
}

fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| ((i * 31 + 7) % 251) as u8).collect()
}

#[tokio::test]
async fn multi_frame_bodies_round_trip() {
    let conn = connect_to(&amqp_url_with_query("frame_max=131072")).await;
    assert_eq!(conn.configuration().frame_max(), 131072);
    let ch = channel(&conn).await;
    let q = temp_queue(&ch).await;
    // A body frame carries at most frame_max - 8 = 131064 bytes: probe around that.
    let sizes = [1usize, 131_063, 131_064, 131_065, 262_128, 262_129, 1 << 20, (1 << 20) + 1];
    let mut consumer = consume(&ch, &q, true).await;
    for &n in &sizes {
        let body = pattern(n);
        publish_props(&ch, "", &q, &body, BasicProperties::default().with_message_id(format!("{n}").into()))
            .await;
    }
    for &n in &sizes {
        let d = next_delivery(&mut consumer).await;
        assert_eq!(d.properties.message_id().as_ref().unwrap().as_str(), n.to_string());
        assert_eq!(d.data.len(), n, "body length for {n}");
        assert!(d.data == pattern(n), "body content differs for size {n}");
    }
    within("basic.cancel", ch.basic_cancel(consumer.tag(), BasicCancelOptions::default())).await.unwrap();

    // And through basic.get.
    let big = pattern(1 << 20);
    publish(&ch, "", &q, &big).await;
    let m = get_eventually(&ch, &q).await;
    assert!(m.delivery.data == big, "1 MiB body via basic.get differs");
    teardown(conn).await;
}

#[tokio::test]
async fn many_messages_many_channels() {
    let (conn, ch) = setup().await;
    let q = temp_queue(&ch).await;
    let mut consumer = consume(&ch, &q, true).await;
    let mut pubs = Vec::new();
    for c in 0..4 {
        let conn_ch = channel(&conn).await;
        let q = q.clone();
        pubs.push(tokio::spawn(async move {
            for i in 0..250 {
                publish(&conn_ch, "", &q, format!("{c}-{i}").as_bytes()).await;
            }
            conn_ch
        }));
    }
    for p in pubs {
        within("publisher task", p).await.unwrap();
    }
    let mut seen = BTreeSet::new();
    let mut last_per_publisher = [-1i64; 4];
    for _ in 0..1000 {
        let d = next_delivery(&mut consumer).await;
        let s = body(&d);
        let (c, i) = s.split_once('-').unwrap();
        let (c, i): (usize, i64) = (c.parse().unwrap(), i.parse().unwrap());
        assert!(i > last_per_publisher[c], "per-channel publish order violated: {s}");
        last_per_publisher[c] = i;
        assert!(seen.insert(s));
    }
    assert_eq!(seen.len(), 1000);
    teardown(conn).await;
}

/// A publish whose exchange and routing key are as long as a short string
/// allows (255 bytes each) arrives with both intact, and one through the
/// default exchange (an empty name) with the queue's name as its key.
#[tokio::test]
async fn names_of_255_bytes_arrive_intact() {
    let (conn, ch) = setup().await;
    let pad = |prefix: String| format!("{prefix}{}", "x".repeat(255 - prefix.len()));
    let (ex, key) = (pad(unique("long-ex")), pad(unique("long-key")));
    assert_eq!((ex.len(), key.len()), (255, 255));
    declare_exchange(&ch, &ex, lapin::ExchangeKind::Direct, Default::default()).await;
    let q = temp_queue(&ch).await;
    bind(&ch, &q, &ex, &key).await;
    let mut consumer = consume(&ch, &q, true).await;
    publish(&ch, &ex, &key, b"long names").await;
    publish(&ch, "", &q, b"default exchange").await;
    let d = next_delivery(&mut consumer).await;
    assert_eq!(
        (d.exchange.as_str(), d.routing_key.as_str(), body(&d).as_str()),
        (&ex[..], &key[..], "long names")
    );
    let d = next_delivery(&mut consumer).await;
    assert_eq!(
        (d.exchange.as_str(), d.routing_key.as_str(), body(&d).as_str()),
        ("", &q[..], "default exchange")
    );
    within("exchange.delete", ch.exchange_delete(ex.as_str().into(), Default::default()))
        .await
        .expect("exchange.delete");
    teardown(conn).await;
}
