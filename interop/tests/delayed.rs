//! Delayed messages: the `x-delayed-message` exchange of RabbitMQ's
//! plugin. RabbitMQ 3.10.8 does not have it built in: Warren-only (these
//! tests skip against RabbitMQ).

mod common;

use std::time::{Duration, Instant};

use common::*;
use lapin::options::{BasicPublishOptions, ExchangeDeclareOptions};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, ExchangeKind};

async fn delayed_exchange(ch: &lapin::Channel, name: &str, args: FieldTable) -> lapin::Result<()> {
    let opts = ExchangeDeclareOptions { durable: true, ..Default::default() };
    within(
        "exchange.declare",
        ch.exchange_declare(name.into(), ExchangeKind::Custom("x-delayed-message".into()), opts, args),
    )
    .await
}

fn delayed_type(kind: &str) -> FieldTable {
    table(&[("x-delayed-type", long_str(kind))])
}

fn delay(ms: AMQPValue) -> BasicProperties {
    BasicProperties::default().with_delivery_mode(2).with_headers(table(&[("x-delay", ms)]))
}

#[tokio::test]
async fn messages_wait_for_their_delay_then_route_in_due_order() {
    if is_rabbitmq() {
        return;
    }
    let (conn, ch) = setup().await;
    let x = unique("dx");
    delayed_exchange(&ch, &x, delayed_type("direct")).await.unwrap();
    let q = unique("dq");
    named_queue(&ch, &q).await;
    bind(&ch, &q, &x, "k").await;
    confirm_select(&ch).await;
    let started = Instant::now();
    for (body, ms) in [("late", 3_000), ("early", 1_200), ("now", 0)] {
        let c = publish_confirmed(&ch, &x, "k", Default::default(), body.as_bytes(), delay(int(ms))).await;
        assert!(c.is_ack(), "{body} was not confirmed");
    }
    // Not delayed (x-delay 0): routed at once; the others wait.
    assert_eq!(get_eventually(&ch, &q).await.delivery.data, b"now");
    assert!(get(&ch, &q).await.is_none(), "a delayed message came early");
    let early = get_eventually(&ch, &q).await;
    let waited = started.elapsed();
    assert_eq!(early.delivery.data, b"early");
    assert!(waited >= Duration::from_millis(1_200), "came after {waited:?}");
    // As the plugin: the delay is negated on the way out.
    let headers = early.delivery.properties.headers().clone().expect("headers");
    assert_eq!(headers.inner().get("x-delay").and_then(|v| v.as_long_long_int()), Some(-1_200));
    assert_eq!(early.delivery.properties.delivery_mode(), &Some(2));
    // One still waits: the management API counts it, as the plugin's info item.
    let shown = admin_ok("GET", &format!("/api/exchanges/%2f/{x}"), None).await;
    assert!(shown.contains("\"type\":\"x-delayed-message\""), "{shown}");
    assert!(shown.contains("\"messages_delayed\":1"), "{shown}");
    let late = get_eventually(&ch, &q).await;
    assert_eq!(late.delivery.data, b"late");
    assert!(started.elapsed() >= Duration::from_millis(3_000));
    delete_queue(&ch, &q).await;
    ch.exchange_delete(x.as_str().into(), Default::default()).await.unwrap();
    teardown(conn).await;
}

#[tokio::test]
async fn the_delayed_type_decides_the_routing() {
    if is_rabbitmq() {
        return;
    }
    let (conn, ch) = setup().await;
    let x = unique("dtopic");
    delayed_exchange(&ch, &x, delayed_type("topic")).await.unwrap();
    let (orders, all) = (unique("orders"), unique("all"));
    for (q, key) in [(&orders, "orders.*"), (&all, "#")] {
        named_queue(&ch, q).await;
        bind(&ch, q, &x, key).await;
    }
    for (key, body) in [("orders.new", "o"), ("users.new", "u")] {
        publish_props(&ch, &x, key, body.as_bytes(), delay(long_str("150"))).await;
    }
    assert_eq!(get_eventually(&ch, &orders).await.delivery.data, b"o");
    let mut seen = vec![get_eventually(&ch, &all).await.delivery.data];
    seen.push(get_eventually(&ch, &all).await.delivery.data);
    seen.sort();
    assert_eq!(seen, vec![b"o".to_vec(), b"u".to_vec()]);
    assert!(get(&ch, &orders).await.is_none());
    for q in [&orders, &all] {
        delete_queue(&ch, q).await;
    }
    teardown(conn).await;
}

#[tokio::test]
async fn mandatory_messages_nothing_would_take_are_returned_at_once() {
    if is_rabbitmq() {
        return;
    }
    let (conn, ch) = setup().await;
    confirm_select(&ch).await;
    let x = unique("dx");
    delayed_exchange(&ch, &x, delayed_type("direct")).await.unwrap();
    let mandatory = BasicPublishOptions { mandatory: true, ..Default::default() };
    let c = publish_confirmed(&ch, &x, "nowhere", mandatory, b"m", delay(int(200))).await;
    let returned = c.take_message().expect("returned");
    assert_eq!(returned.reply_code, 312);
    // With a queue bound, a mandatory delayed message is kept and routed later.
    let q = unique("dq");
    named_queue(&ch, &q).await;
    bind(&ch, &q, &x, "k").await;
    let c = publish_confirmed(&ch, &x, "k", mandatory, b"kept", delay(int(200))).await;
    assert!(c.is_ack() && c.take_message().is_none());
    assert_eq!(get_eventually(&ch, &q).await.delivery.data, b"kept");
    delete_queue(&ch, &q).await;
    teardown(conn).await;
}

#[tokio::test]
async fn bad_declarations_and_delays_are_refused() {
    if is_rabbitmq() {
        return;
    }
    let conn = connect().await;
    let ch = channel(&conn).await;
    let got = expect_soft_error(delayed_exchange(&ch, &unique("dx"), FieldTable::default()).await, 406);
    assert!(got.contains("'x-delayed-type' must be an existing exchange type"), "{got}");
    let ch = channel(&conn).await;
    let got =
        expect_soft_error(delayed_exchange(&ch, &unique("dx"), delayed_type("x-delayed-message")).await, 406);
    assert!(got.contains("can't be used for 'x-delayed-type'"), "{got}");
    // An unknown type is a connection error, as in RabbitMQ.
    let other = connect().await;
    let got = expect_hard_error(
        delayed_exchange(&channel(&other).await, &unique("dx"), delayed_type("x-nope")).await,
        503,
    );
    assert!(got.contains("unknown exchange type 'x-nope'"), "{got}");

    let ch = channel(&conn).await;
    let x = unique("dx");
    delayed_exchange(&ch, &x, delayed_type("fanout")).await.unwrap();
    for (bad, text) in [
        (long_str("soon"), "invalid x-delay"),
        (AMQPValue::Boolean(true), "invalid x-delay"),
        (AMQPValue::LongLongInt(1 << 40), "the longest delay is"),
    ] {
        let ch = channel(&conn).await;
        let mut watch = watch_channel(&ch).await;
        publish_props(&ch, &x, "", b"bad", delay(bad)).await;
        let got = expect_channel_closed_by_server(&mut watch, 406).await;
        assert!(got.contains(text), "{got}");
    }
    // The exchange is unharmed.
    let ch = channel(&conn).await;
    let q = temp_queue(&ch).await;
    bind(&ch, &q, &x, "").await;
    publish_props(&ch, &x, "", b"fine", delay(int(50))).await;
    assert_eq!(get_eventually(&ch, &q).await.delivery.data, b"fine");
    teardown(conn).await;
}

#[tokio::test]
async fn any_exchange_delays_with_lavinmqs_argument() {
    if is_rabbitmq() {
        return;
    }
    let (conn, ch) = setup().await;
    let x = unique("lavin");
    let args = table(&[("x-delayed-exchange", AMQPValue::Boolean(true))]);
    within(
        "exchange.declare",
        ch.exchange_declare(x.as_str().into(), ExchangeKind::Topic, Default::default(), args),
    )
    .await
    .unwrap();
    let q = temp_queue(&ch).await;
    bind(&ch, &q, &x, "jobs.#").await;
    let started = Instant::now();
    publish_props(&ch, &x, "jobs.mail", b"later", delay(int(1_500))).await;
    publish_props(&ch, &x, "jobs.mail", b"now", BasicProperties::default()).await;
    assert_eq!(get_eventually(&ch, &q).await.delivery.data, b"now");
    assert_eq!(get_eventually(&ch, &q).await.delivery.data, b"later");
    assert!(started.elapsed() >= Duration::from_millis(1_500));
    let bad = table(&[("x-delayed-exchange", long_str("yes"))]);
    let ch = channel(&conn).await;
    let res = ch
        .exchange_declare(unique("lavin").as_str().into(), ExchangeKind::Direct, Default::default(), bad)
        .await;
    assert!(expect_soft_error(res, 406).contains("x-delayed-exchange"));
    teardown(conn).await;
}
