//! Routing through the default, direct, fanout, topic and headers exchanges,
//! and mandatory returns.

mod common;

use common::*;
use lapin::{
    options::{BasicPublishOptions, ExchangeDeclareOptions, ExchangeDeleteOptions},
    types::{AMQPValue, FieldTable, LongString},
    BasicProperties, Channel, ExchangeKind,
};
use std::collections::BTreeSet;

/// Auto-delete: goes away with the temp queues even if a test panics.
async fn declare_auto_delete_exchange(ch: &Channel, name: &str, kind: ExchangeKind) {
    declare_exchange(ch, name, kind, ExchangeDeclareOptions { auto_delete: true, ..Default::default() })
        .await;
}

async fn delete_exchange(ch: &Channel, name: &str) {
    within("exchange.delete", ch.exchange_delete(name.into(), ExchangeDeleteOptions::default()))
        .await
        .unwrap_or_else(|e| panic!("exchange.delete {name}: {e}"));
}

/// Every message currently in `queue`, fetched with basic.get until get-empty.
async fn get_all(ch: &Channel, queue: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    while let Some(m) = get(ch, queue).await {
        let s = String::from_utf8(m.delivery.data).unwrap();
        assert!(out.insert(s.clone()), "duplicate delivery {s:?} in {queue}");
    }
    out
}

fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| s.to_string()).collect()
}

fn s(v: &str) -> AMQPValue {
    AMQPValue::LongString(LongString::from(v))
}

#[tokio::test]
async fn default_exchange_routes_by_queue_name() {
    let (conn, ch) = setup().await;
    let q = temp_queue(&ch).await;
    let mut consumer = consume(&ch, &q, true).await;
    publish(&ch, "", &q, b"direct to queue").await;
    publish(&ch, "", &unique("no-such-queue"), b"dropped").await;
    let d = next_delivery(&mut consumer).await;
    assert_eq!(body(&d), "direct to queue");
    assert_eq!(d.exchange.as_str(), "", "default exchange is reported as empty name");
    assert_eq!(d.routing_key.as_str(), q);
    assert_no_delivery(&mut consumer).await;

    // RabbitMQ refuses every exchange.* method on the default exchange, even a
    // passive declare: 403 "ACCESS_REFUSED - operation not permitted on the default exchange".
    let pch = channel(&conn).await;
    let text = expect_error(
        "passive exchange.declare of \"\"",
        pch.exchange_declare(
            "".into(),
            ExchangeKind::Direct,
            ExchangeDeclareOptions { passive: true, ..Default::default() },
            FieldTable::default(),
        ),
        ACCESS_REFUSED,
    )
    .await;
    assert!(text.starts_with("ACCESS_REFUSED"), "{text}");
    teardown(conn).await;
}

#[tokio::test]
async fn direct_exchange_routing() {
    let (conn, ch) = setup().await;
    let ex = unique("direct");
    declare_auto_delete_exchange(&ch, &ex, ExchangeKind::Direct).await;
    let q1 = temp_queue(&ch).await;
    let q2 = temp_queue(&ch).await;
    bind(&ch, &q1, &ex, "red").await;
    bind(&ch, &q2, &ex, "red").await;
    bind(&ch, &q2, &ex, "green").await;
    bind(&ch, &q1, &ex, "").await; // empty binding key matches empty routing key only

    for key in ["red", "green", "blue", "", "RED", "red.x"] {
        publish(&ch, &ex, key, format!("k={key}").as_bytes()).await;
    }
    tokio::time::sleep(QUIET).await;
    assert_eq!(get_all(&ch, &q1).await, set(&["k=red", "k="]));
    assert_eq!(get_all(&ch, &q2).await, set(&["k=red", "k=green"]));
    delete_exchange(&ch, &ex).await;
    teardown(conn).await;
}

#[tokio::test]
async fn fanout_to_several_queues() {
    let (conn, ch) = setup().await;
    let ex = unique("fanout");
    declare_auto_delete_exchange(&ch, &ex, ExchangeKind::Fanout).await;
    let mut consumers = Vec::new();
    for i in 0..4 {
        let q = temp_queue(&ch).await;
        // The binding key is ignored by fanout.
        bind(&ch, &q, &ex, &format!("ignored-{i}")).await;
        consumers.push(consume(&ch, &q, true).await);
    }
    publish(&ch, &ex, "whatever", b"m1").await;
    publish(&ch, &ex, "", b"m2").await;
    for c in &mut consumers {
        let a = next_delivery(c).await;
        let b = next_delivery(c).await;
        assert_eq!((body(&a).as_str(), body(&b).as_str()), ("m1", "m2"), "order per queue");
        assert_eq!(a.routing_key.as_str(), "whatever");
        assert_eq!(a.exchange.as_str(), ex);
        assert_no_delivery(c).await;
    }
    delete_exchange(&ch, &ex).await;
    teardown(conn).await;
}

/// Topic matching: `*` is exactly one word, `#` is zero or more words, words
/// are separated by `.` and may be empty.
#[tokio::test]
async fn topic_matching_edge_cases() {
    let (conn, ch) = setup().await;
    let ex = unique("topic");
    declare_auto_delete_exchange(&ch, &ex, ExchangeKind::Topic).await;

    let keys = [
        "", "a", "b", "c", "a.b", "a.c", "b.c", "a.b.c", "a..c", "a.", ".b", "a.x.b", "a.x.y.b", "a.b.b",
        "x.b", "x.b.y.z", "b.a", "ab.c",
    ];
    // (binding pattern, routing keys it must match; every other key must not match)
    let cases: &[(&str, &[&str])] = &[
        ("a.b", &["a.b"]),
        ("*", &["a", "b", "c"]),
        ("#", &keys),
        ("#.#", &keys),
        ("a.*", &["a.b", "a.c", "a."]),
        ("*.c", &["a.c", "b.c", "ab.c"]),
        ("a.#", &["a", "a.b", "a.c", "a.b.c", "a..c", "a.", "a.x.b", "a.x.y.b", "a.b.b"]),
        ("#.c", &["c", "a.c", "b.c", "a.b.c", "a..c", "ab.c"]),
        ("#.b", &["b", "a.b", ".b", "a.x.b", "a.x.y.b", "a.b.b", "x.b"]),
        ("a.#.b", &["a.b", "a.x.b", "a.x.y.b", "a.b.b"]),
        ("a.*.c", &["a.b.c", "a..c"]),
        ("a..c", &["a..c"]),
        ("*.*", &["a.b", "a.c", "b.c", "a.", ".b", "x.b", "b.a", "ab.c"]),
        ("*.b.#", &["a.b", ".b", "a.b.c", "a.b.b", "x.b", "x.b.y.z"]),
        ("#.x.#", &["a.x.b", "a.x.y.b", "x.b", "x.b.y.z"]),
        ("", &[""]),
    ];

    let mut queues = Vec::new();
    for (pattern, _) in cases {
        let q = temp_queue(&ch).await;
        bind(&ch, &q, &ex, pattern).await;
        queues.push(q);
    }
    for key in keys {
        publish(&ch, &ex, key, format!("<{key}>").as_bytes()).await;
    }
    tokio::time::sleep(QUIET).await;

    let mut failures = Vec::new();
    for ((pattern, expected), q) in cases.iter().zip(&queues) {
        let want: BTreeSet<String> = expected.iter().map(|k| format!("<{k}>")).collect();
        let got = get_all(&ch, q).await;
        if got != want {
            failures.push(format!("pattern {pattern:?}: expected {want:?}, got {got:?}"));
        }
    }
    assert!(failures.is_empty(), "topic routing mismatches:\n{}", failures.join("\n"));
    delete_exchange(&ch, &ex).await;
    teardown(conn).await;
}

#[tokio::test]
async fn topic_overlapping_bindings_deliver_once() {
    let (conn, ch) = setup().await;
    let ex = unique("topic-overlap");
    declare_auto_delete_exchange(&ch, &ex, ExchangeKind::Topic).await;
    let q = temp_queue(&ch).await;
    for pattern in ["a.b", "a.*", "#", "a.#", "*.b"] {
        bind(&ch, &q, &ex, pattern).await;
    }
    let mut consumer = consume(&ch, &q, true).await;
    publish(&ch, &ex, "a.b", b"once").await;
    assert_eq!(sorted_bodies(&drain(&mut consumer).await), vec!["once"]);
    delete_exchange(&ch, &ex).await;
    teardown(conn).await;
}

fn table(entries: &[(&str, AMQPValue)]) -> FieldTable {
    let mut t = FieldTable::default();
    for (k, v) in entries {
        t.insert((*k).into(), v.clone());
    }
    t
}

/// Publishes each (label, headers) message and returns, for each binding, the
/// labels that arrived.
async fn headers_routing(
    ch: &Channel,
    bindings: &[FieldTable],
    messages: &[(&str, Option<FieldTable>)],
) -> Vec<BTreeSet<String>> {
    let ex = unique("headers");
    declare_auto_delete_exchange(ch, &ex, ExchangeKind::Headers).await;
    let mut queues = Vec::new();
    for args in bindings {
        let q = temp_queue(ch).await;
        bind_args(ch, &q, &ex, "", args.clone()).await;
        queues.push(q);
    }
    for (label, headers) in messages {
        let mut props = BasicProperties::default();
        if let Some(h) = headers {
            props = props.with_headers(h.clone());
        }
        // The routing key is irrelevant for a headers exchange.
        publish_props(ch, &ex, "some.routing.key", label.as_bytes(), props).await;
    }
    tokio::time::sleep(QUIET).await;
    let mut out = Vec::new();
    for q in &queues {
        out.push(get_all(ch, q).await);
    }
    delete_exchange(ch, &ex).await;
    out
}

#[tokio::test]
async fn headers_exchange_all_and_any() {
    let (conn, ch) = setup().await;
    let all = table(&[("x-match", s("all")), ("color", s("red")), ("size", AMQPValue::LongInt(3))]);
    let any = table(&[("x-match", s("any")), ("color", s("red")), ("size", AMQPValue::LongInt(3))]);
    // No x-match at all means "all".
    let implicit_all = table(&[("color", s("red")), ("size", AMQPValue::LongInt(3))]);
    // A binding with no header arguments (x-match all) matches every message.
    let empty_all = table(&[("x-match", s("all"))]);
    let empty_any = table(&[("x-match", s("any"))]);

    let messages = [
        ("both", Some(table(&[("color", s("red")), ("size", AMQPValue::LongInt(3))]))),
        (
            "both+extra",
            Some(table(&[("color", s("red")), ("size", AMQPValue::LongInt(3)), ("shape", s("round"))])),
        ),
        ("color-only", Some(table(&[("color", s("red"))]))),
        ("size-only", Some(table(&[("size", AMQPValue::LongInt(3))]))),
        ("wrong-color", Some(table(&[("color", s("blue")), ("size", AMQPValue::LongInt(3))]))),
        ("unrelated", Some(table(&[("weight", AMQPValue::LongInt(9))]))),
        ("empty-table", Some(FieldTable::default())),
        ("no-headers", None),
    ];
    let got = headers_routing(&ch, &[all, any, implicit_all, empty_all, empty_any], &messages).await;
    assert_eq!(got[0], set(&["both", "both+extra"]), "x-match=all");
    assert_eq!(got[1], set(&["both", "both+extra", "color-only", "size-only", "wrong-color"]), "x-match=any");
    assert_eq!(got[2], set(&["both", "both+extra"]), "implicit x-match=all");
    assert_eq!(
        got[3],
        set(&[
            "both",
            "both+extra",
            "color-only",
            "size-only",
            "wrong-color",
            "unrelated",
            "empty-table",
            "no-headers"
        ]),
        "x-match=all with no keys matches everything"
    );
    assert_eq!(got[4], set(&[]), "x-match=any with no keys matches nothing");
    teardown(conn).await;
}

#[tokio::test]
async fn headers_exchange_x_prefixed_headers() {
    let (conn, ch) = setup().await;
    // Plain all/any ignore binding arguments that start with "x-";
    // all-with-x / any-with-x (RabbitMQ >= 3.10) take them into account.
    let all = table(&[("x-match", s("all")), ("x-tenant", s("acme")), ("kind", s("order"))]);
    let any = table(&[("x-match", s("any")), ("x-tenant", s("acme"))]);
    let all_x = table(&[("x-match", s("all-with-x")), ("x-tenant", s("acme")), ("kind", s("order"))]);
    let any_x = table(&[("x-match", s("any-with-x")), ("x-tenant", s("acme"))]);

    let messages = [
        ("tenant+kind", Some(table(&[("x-tenant", s("acme")), ("kind", s("order"))]))),
        ("kind-only", Some(table(&[("kind", s("order"))]))),
        ("tenant-only", Some(table(&[("x-tenant", s("acme"))]))),
        ("other-tenant", Some(table(&[("x-tenant", s("evil")), ("kind", s("order"))]))),
    ];
    let got = headers_routing(&ch, &[all, any, all_x, any_x], &messages).await;
    assert_eq!(got[0], set(&["tenant+kind", "kind-only", "other-tenant"]), "all ignores x- args");
    assert_eq!(got[1], set(&[]), "any with only x- args matches nothing");
    assert_eq!(got[2], set(&["tenant+kind"]), "all-with-x");
    assert_eq!(got[3], set(&["tenant+kind", "tenant-only"]), "any-with-x");
    teardown(conn).await;
}

#[tokio::test]
async fn headers_exchange_value_types() {
    let (conn, ch) = setup().await;
    let bindings = [
        table(&[("flag", AMQPValue::Boolean(true))]),
        table(&[("n", AMQPValue::LongLongInt(1 << 40))]),
        table(&[("name", s("Zoë"))]),
        // Integers of different widths compare by value.
        table(&[("i", AMQPValue::LongInt(7))]),
        // A void binding value means "header present, any value".
        table(&[("present", AMQPValue::Void)]),
    ];
    let messages = [
        ("flag-true", Some(table(&[("flag", AMQPValue::Boolean(true))]))),
        ("flag-false", Some(table(&[("flag", AMQPValue::Boolean(false))]))),
        ("n-big", Some(table(&[("n", AMQPValue::LongLongInt(1 << 40))]))),
        ("n-other", Some(table(&[("n", AMQPValue::LongLongInt(1))]))),
        ("name-utf8", Some(table(&[("name", s("Zoë"))]))),
        ("name-case", Some(table(&[("name", s("zoë"))]))),
        ("i-i8", Some(table(&[("i", AMQPValue::ShortShortInt(7))]))),
        ("i-i64", Some(table(&[("i", AMQPValue::LongLongInt(7))]))),
        ("i-u16", Some(table(&[("i", AMQPValue::ShortUInt(7))]))),
        ("i-other", Some(table(&[("i", AMQPValue::LongInt(8))]))),
        ("i-string", Some(table(&[("i", s("7"))]))),
        ("present-str", Some(table(&[("present", s("anything"))]))),
        ("present-int", Some(table(&[("present", AMQPValue::LongInt(0))]))),
    ];
    let got = headers_routing(&ch, &bindings, &messages).await;
    assert_eq!(got[0], set(&["flag-true"]), "bool");
    assert_eq!(got[1], set(&["n-big"]), "i64");
    assert_eq!(got[2], set(&["name-utf8"]), "long string");
    assert_eq!(got[3], set(&["i-i8", "i-i64", "i-u16"]), "integers across widths");
    assert_eq!(got[4], set(&["present-str", "present-int"]), "void = presence");
    teardown(conn).await;
}

#[tokio::test]
async fn mandatory_unroutable_is_returned() {
    let (conn, ch) = setup().await;
    confirm_select(&ch).await;
    let ex = unique("mandatory");
    declare_auto_delete_exchange(&ch, &ex, ExchangeKind::Direct).await;

    let props = BasicProperties::default()
        .with_content_type("text/plain".into())
        .with_message_id("m-1".into())
        .with_headers(table(&[("h", s("v"))]));
    let confirmation = publish_confirmed(
        &ch,
        &ex,
        "nowhere",
        BasicPublishOptions { mandatory: true, ..Default::default() },
        b"come back",
        props.clone(),
    )
    .await;
    assert!(confirmation.is_ack(), "unroutable messages are still acked: {confirmation:?}");
    let ret = confirmation.take_message().expect("basic.return for mandatory unroutable");
    assert_eq!(ret.reply_code, 312);
    assert_eq!(ret.reply_text.as_str(), "NO_ROUTE");
    assert_eq!(ret.delivery.exchange.as_str(), ex);
    assert_eq!(ret.delivery.routing_key.as_str(), "nowhere");
    assert_eq!(ret.delivery.data, b"come back");
    assert_eq!(ret.delivery.properties, props);

    // Mandatory to the default exchange with no such queue: returned too.
    let missing = unique("no-such-queue");
    let confirmation = publish_confirmed(
        &ch,
        "",
        &missing,
        BasicPublishOptions { mandatory: true, ..Default::default() },
        b"nobody",
        BasicProperties::default(),
    )
    .await;
    let ret = confirmation.take_message().expect("basic.return via default exchange");
    assert_eq!(ret.reply_code, 312);
    assert_eq!(ret.delivery.exchange.as_str(), "");
    assert_eq!(ret.delivery.routing_key.as_str(), missing);

    // Not mandatory: silently dropped, still acked, nothing returned.
    let confirmation = publish_confirmed(
        &ch,
        &ex,
        "nowhere",
        BasicPublishOptions::default(),
        b"dropped",
        BasicProperties::default(),
    )
    .await;
    assert!(confirmation.is_ack());
    assert!(confirmation.take_message().is_none());

    // Mandatory and routable: delivered, not returned.
    let q = temp_queue(&ch).await;
    bind(&ch, &q, &ex, "somewhere").await;
    let confirmation = publish_confirmed(
        &ch,
        &ex,
        "somewhere",
        BasicPublishOptions { mandatory: true, ..Default::default() },
        b"routed",
        BasicProperties::default(),
    )
    .await;
    assert!(confirmation.is_ack());
    assert!(confirmation.take_message().is_none());
    assert_eq!(get_eventually(&ch, &q).await.delivery.data, b"routed");

    delete_exchange(&ch, &ex).await;
    teardown(conn).await;
}
