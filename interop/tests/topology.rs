//! Exchange and queue declaration, deletion, binding, purging.

mod common;

use common::*;
use lapin::{
    options::{
        BasicCancelOptions, ExchangeBindOptions, ExchangeDeclareOptions, ExchangeDeleteOptions,
        ExchangeUnbindOptions, QueueDeclareOptions, QueueDeleteOptions, QueuePurgeOptions,
    },
    types::FieldTable,
    Channel, ExchangeKind,
};

async fn delete_exchange(ch: &Channel, name: &str) {
    within("exchange.delete", ch.exchange_delete(name.into(), ExchangeDeleteOptions::default()))
        .await
        .unwrap_or_else(|e| panic!("exchange.delete {name}: {e}"));
}

fn passive() -> ExchangeDeclareOptions {
    ExchangeDeclareOptions { passive: true, ..Default::default() }
}

#[tokio::test]
async fn exchange_declare_delete_all_types() {
    let (conn, ch) = setup().await;
    for kind in [ExchangeKind::Direct, ExchangeKind::Fanout, ExchangeKind::Topic, ExchangeKind::Headers] {
        let name = unique(&format!("ex-{kind:?}"));
        declare_exchange(&ch, &name, kind.clone(), ExchangeDeclareOptions::default()).await;
        // Redeclaring with identical attributes is a no-op.
        declare_exchange(&ch, &name, kind.clone(), ExchangeDeclareOptions::default()).await;
        // Passive declare succeeds for an existing exchange.
        declare_exchange(&ch, &name, kind.clone(), passive()).await;
        assert!(exchange_exists(&conn, &name).await);

        delete_exchange(&ch, &name).await;
        assert!(!exchange_exists(&conn, &name).await, "{name} survived delete");
    }
    teardown(conn).await;
}

#[tokio::test]
async fn exchange_delete_of_missing_exchange_is_ok() {
    // RabbitMQ (3.x) treats exchange.delete of an unknown exchange as success.
    let (conn, ch) = setup().await;
    delete_exchange(&ch, &unique("never-declared-ex")).await;
    // The channel is still usable.
    temp_queue(&ch).await;
    teardown(conn).await;
}

#[tokio::test]
async fn passive_exchange_declare_ignores_type_and_flags() {
    let (conn, ch) = setup().await;
    let name = unique("passive-ex");
    declare_exchange(
        &ch,
        &name,
        ExchangeKind::Fanout,
        ExchangeDeclareOptions { durable: true, ..Default::default() },
    )
    .await;
    // Passive declare with a different type / flags still succeeds: only existence is checked.
    declare_exchange(&ch, &name, ExchangeKind::Topic, passive()).await;
    delete_exchange(&ch, &name).await;
    teardown(conn).await;
}

#[tokio::test]
async fn durable_exchange_flags() {
    let (conn, ch) = setup().await;
    let name = unique("durable-ex");
    let durable = ExchangeDeclareOptions { durable: true, ..Default::default() };
    declare_exchange(&ch, &name, ExchangeKind::Direct, durable).await;
    declare_exchange(&ch, &name, ExchangeKind::Direct, durable).await;
    delete_exchange(&ch, &name).await;
    teardown(conn).await;
}

#[tokio::test]
async fn auto_delete_exchange_goes_away_with_last_binding() {
    let (conn, ch) = setup().await;
    let ex = unique("autodel-ex");
    declare_exchange(
        &ch,
        &ex,
        ExchangeKind::Direct,
        ExchangeDeclareOptions { auto_delete: true, ..Default::default() },
    )
    .await;
    // Never bound: an auto-delete exchange is not deleted until it loses a binding.
    assert!(exchange_exists(&conn, &ex).await);

    let q1 = temp_queue(&ch).await;
    let q2 = temp_queue(&ch).await;
    bind(&ch, &q1, &ex, "k").await;
    bind(&ch, &q2, &ex, "k").await;

    within(
        "queue.unbind",
        ch.queue_unbind(q1.as_str().into(), ex.as_str().into(), "k".into(), FieldTable::default()),
    )
    .await
    .expect("unbind q1");
    assert!(exchange_exists(&conn, &ex).await, "deleted while a binding remained");

    within(
        "queue.unbind",
        ch.queue_unbind(q2.as_str().into(), ex.as_str().into(), "k".into(), FieldTable::default()),
    )
    .await
    .expect("unbind q2");
    eventually("auto-delete exchange removed", || async { !exchange_exists(&conn, &ex).await }).await;
    teardown(conn).await;
}

#[tokio::test]
async fn internal_exchange_routes_only_via_exchange_bindings() {
    let (conn, ch) = setup().await;
    let front = unique("front");
    let internal = unique("internal");
    declare_exchange(&ch, &front, ExchangeKind::Direct, ExchangeDeclareOptions::default()).await;
    declare_exchange(
        &ch,
        &internal,
        ExchangeKind::Fanout,
        ExchangeDeclareOptions { internal: true, ..Default::default() },
    )
    .await;
    let q = temp_queue(&ch).await;
    bind(&ch, &q, &internal, "").await;
    within(
        "exchange.bind",
        ch.exchange_bind(
            internal.as_str().into(),
            front.as_str().into(),
            "via".into(),
            ExchangeBindOptions::default(),
            FieldTable::default(),
        ),
    )
    .await
    .expect("exchange.bind");

    publish(&ch, &front, "via", b"through internal").await;
    let m = get_eventually(&ch, &q).await;
    assert_eq!(m.delivery.data, b"through internal");
    assert_eq!(m.delivery.exchange.as_str(), front, "exchange of delivery is the one published to");

    // Direct publishing to an internal exchange is refused (403, channel closed).
    let pch = channel(&conn).await;
    let mut watch = watch_channel(&pch).await;
    publish(&pch, &internal, "", b"direct").await;
    let text = expect_channel_closed_by_server(&mut watch, ACCESS_REFUSED).await;
    eprintln!("publish to internal exchange: {text}");
    assert!(text.starts_with("ACCESS_REFUSED"), "{text}");
    assert!(text.contains(&internal), "{text}");

    delete_exchange(&ch, &front).await;
    delete_exchange(&ch, &internal).await;
    teardown(conn).await;
}

#[tokio::test]
async fn exchange_to_exchange_bindings() {
    let (conn, ch) = setup().await;
    let src = unique("e2e-src");
    let dst = unique("e2e-dst");
    declare_exchange(&ch, &src, ExchangeKind::Topic, ExchangeDeclareOptions::default()).await;
    declare_exchange(&ch, &dst, ExchangeKind::Direct, ExchangeDeclareOptions::default()).await;
    let q = temp_queue(&ch).await;
    // dst routes by the original routing key.
    bind(&ch, &q, &dst, "orders.eu").await;
    within(
        "exchange.bind",
        ch.exchange_bind(
            dst.as_str().into(),
            src.as_str().into(),
            "orders.*".into(),
            ExchangeBindOptions::default(),
            FieldTable::default(),
        ),
    )
    .await
    .expect("exchange.bind");

    let mut consumer = consume(&ch, &q, true).await;
    publish(&ch, &src, "orders.eu", b"eu").await; // src matches, dst matches
    publish(&ch, &src, "orders.us", b"us").await; // src matches, dst does not
    publish(&ch, &src, "other.eu", b"other").await; // src does not match
    let d = next_delivery(&mut consumer).await;
    assert_eq!(body(&d), "eu");
    assert_eq!(d.exchange.as_str(), src);
    assert_eq!(d.routing_key.as_str(), "orders.eu");
    assert_no_delivery(&mut consumer).await;

    // Unbinding stops the flow.
    within(
        "exchange.unbind",
        ch.exchange_unbind(
            dst.as_str().into(),
            src.as_str().into(),
            "orders.*".into(),
            ExchangeUnbindOptions::default(),
            FieldTable::default(),
        ),
    )
    .await
    .expect("exchange.unbind");
    publish(&ch, &src, "orders.eu", b"after unbind").await;
    assert_no_delivery(&mut consumer).await;

    delete_exchange(&ch, &src).await;
    delete_exchange(&ch, &dst).await;
    teardown(conn).await;
}

#[tokio::test]
async fn exchange_to_exchange_cycle_delivers_once() {
    let (conn, ch) = setup().await;
    let a = unique("cycle-a");
    let b = unique("cycle-b");
    declare_exchange(&ch, &a, ExchangeKind::Fanout, ExchangeDeclareOptions::default()).await;
    declare_exchange(&ch, &b, ExchangeKind::Fanout, ExchangeDeclareOptions::default()).await;
    for (dst, src) in [(&b, &a), (&a, &b)] {
        within(
            "exchange.bind",
            ch.exchange_bind(
                dst.as_str().into(),
                src.as_str().into(),
                "".into(),
                Default::default(),
                FieldTable::default(),
            ),
        )
        .await
        .expect("exchange.bind");
    }
    let q = temp_queue(&ch).await;
    bind(&ch, &q, &a, "").await;
    bind(&ch, &q, &b, "").await;
    let mut consumer = consume(&ch, &q, true).await;
    publish(&ch, &a, "", b"once").await;
    let ds = drain(&mut consumer).await;
    assert_eq!(sorted_bodies(&ds), vec!["once"], "a queue gets a message at most once per publish");
    delete_exchange(&ch, &a).await;
    delete_exchange(&ch, &b).await;
    teardown(conn).await;
}

#[tokio::test]
async fn queue_declare_named_and_counts() {
    let (conn, ch) = setup().await;
    let q = unique("named-q");
    let declared = within(
        "queue.declare",
        ch.queue_declare(q.as_str().into(), QueueDeclareOptions::default(), FieldTable::default()),
    )
    .await
    .expect("queue.declare");
    assert_eq!(declared.name().as_str(), q);
    assert_eq!(declared.message_count(), 0);
    assert_eq!(declared.consumer_count(), 0);

    for i in 0..3 {
        publish(&ch, "", &q, format!("m{i}").as_bytes()).await;
    }
    eventually("3 messages counted", || async { queue_exists(&conn, &q).await == Some((3, 0)) }).await;

    // Active redeclare with identical attributes reports the same counts.
    let again = within(
        "queue.declare",
        ch.queue_declare(q.as_str().into(), QueueDeclareOptions::default(), FieldTable::default()),
    )
    .await
    .expect("redeclare");
    assert_eq!(again.name().as_str(), q);
    assert_eq!(again.message_count(), 3);
    assert_eq!(again.consumer_count(), 0);

    // A consumer shows up in consumer_count; messages handed to it (unacked) are not counted.
    let cch = channel(&conn).await;
    let mut consumer = consume(&cch, &q, false).await;
    let _first = next_delivery(&mut consumer).await;
    eventually("consumer counted, ready messages drained", || async {
        queue_exists(&conn, &q).await == Some((0, 1))
    })
    .await;

    let deleted = within("queue.delete", ch.queue_delete(q.as_str().into(), QueueDeleteOptions::default()))
        .await
        .expect("queue.delete");
    assert_eq!(deleted, 0, "delete-ok counts ready messages only (all were delivered)");
    teardown(conn).await;
}

#[tokio::test]
async fn queue_declare_server_named() {
    let (conn, ch) = setup().await;
    let a = within(
        "queue.declare",
        ch.queue_declare(
            "".into(),
            QueueDeclareOptions { exclusive: true, ..Default::default() },
            FieldTable::default(),
        ),
    )
    .await
    .expect("declare");
    let b = within(
        "queue.declare",
        ch.queue_declare(
            "".into(),
            QueueDeclareOptions { exclusive: true, ..Default::default() },
            FieldTable::default(),
        ),
    )
    .await
    .expect("declare");
    assert!(a.name().as_str().starts_with("amq.gen-"), "{}", a.name());
    assert!(b.name().as_str().starts_with("amq.gen-"), "{}", b.name());
    assert_ne!(a.name(), b.name());
    assert_eq!(a.message_count(), 0);
    assert_eq!(a.consumer_count(), 0);
    // It is a real queue, reachable through the default exchange.
    publish(&ch, "", a.name().as_str(), b"hi").await;
    assert_eq!(get_eventually(&ch, a.name().as_str()).await.delivery.data, b"hi");
    teardown(conn).await;
}

#[tokio::test]
async fn queue_declare_passive() {
    let (conn, ch) = setup().await;
    let q = unique("passive-q");
    named_queue(&ch, &q).await;
    publish(&ch, "", &q, b"x").await;
    let p = within(
        "queue.declare passive",
        ch.queue_declare(
            q.as_str().into(),
            QueueDeclareOptions { passive: true, ..Default::default() },
            FieldTable::default(),
        ),
    )
    .await
    .expect("passive declare");
    assert_eq!(p.name().as_str(), q);
    // Passive declare with different flags than the original is fine.
    let p2 = within(
        "queue.declare passive",
        ch.queue_declare(
            q.as_str().into(),
            QueueDeclareOptions { passive: true, durable: true, auto_delete: true, ..Default::default() },
            FieldTable::default(),
        ),
    )
    .await
    .expect("passive declare with other flags");
    assert_eq!(p2.message_count(), 1);
    delete_queue(&ch, &q).await;
    teardown(conn).await;
}

#[tokio::test]
async fn auto_delete_queue_goes_away_after_last_consumer() {
    let (conn, ch) = setup().await;
    let q = unique("autodel-q");
    within(
        "queue.declare",
        ch.queue_declare(
            q.as_str().into(),
            QueueDeclareOptions { auto_delete: true, ..Default::default() },
            FieldTable::default(),
        ),
    )
    .await
    .expect("declare");
    // No consumer yet: it stays.
    assert!(queue_exists(&conn, &q).await.is_some());

    let c1 = consume(&ch, &q, true).await;
    let c2 = consume(&ch, &q, true).await;
    within("basic.cancel", ch.basic_cancel(c1.tag(), BasicCancelOptions::default()))
        .await
        .expect("cancel c1");
    assert_eq!(queue_exists(&conn, &q).await, Some((0, 1)), "deleted while a consumer remained");
    within("basic.cancel", ch.basic_cancel(c2.tag(), BasicCancelOptions::default()))
        .await
        .expect("cancel c2");
    eventually("auto-delete queue removed", || async { queue_exists(&conn, &q).await.is_none() }).await;
    teardown(conn).await;
}

#[tokio::test]
async fn durable_queue_declare_and_delete() {
    let (conn, ch) = setup().await;
    let q = unique("durable-q");
    let opts = QueueDeclareOptions { durable: true, ..Default::default() };
    within("queue.declare", ch.queue_declare(q.as_str().into(), opts, FieldTable::default()))
        .await
        .expect("declare durable");
    within("queue.declare", ch.queue_declare(q.as_str().into(), opts, FieldTable::default()))
        .await
        .expect("redeclare durable");
    delete_queue(&ch, &q).await;
    assert!(queue_exists(&conn, &q).await.is_none());
    teardown(conn).await;
}

#[tokio::test]
async fn bind_unbind_controls_routing() {
    let (conn, ch) = setup().await;
    let ex = unique("bind-ex");
    declare_exchange(&ch, &ex, ExchangeKind::Direct, ExchangeDeclareOptions::default()).await;
    let q = temp_queue(&ch).await;
    bind(&ch, &q, &ex, "k1").await;
    bind(&ch, &q, &ex, "k2").await;
    // Binding twice is idempotent (no duplicate delivery).
    bind(&ch, &q, &ex, "k1").await;

    let mut consumer = consume(&ch, &q, true).await;
    publish(&ch, &ex, "k1", b"one").await;
    publish(&ch, &ex, "k2", b"two").await;
    publish(&ch, &ex, "k3", b"three").await;
    let ds = drain(&mut consumer).await;
    assert_eq!(sorted_bodies(&ds), vec!["one", "two"]);

    within(
        "queue.unbind",
        ch.queue_unbind(q.as_str().into(), ex.as_str().into(), "k1".into(), FieldTable::default()),
    )
    .await
    .expect("unbind");
    // Unbinding a binding that does not exist is not an error.
    within(
        "queue.unbind",
        ch.queue_unbind(q.as_str().into(), ex.as_str().into(), "never-bound".into(), FieldTable::default()),
    )
    .await
    .expect("unbind of missing binding");

    // Unbinding from a missing exchange or a missing queue is not an error either.
    within(
        "queue.unbind (missing exchange)",
        ch.queue_unbind(
            q.as_str().into(),
            unique("no-such-ex").as_str().into(),
            "k".into(),
            FieldTable::default(),
        ),
    )
    .await
    .expect("unbind from missing exchange");
    within(
        "queue.unbind (missing queue)",
        ch.queue_unbind(
            unique("no-such-q").as_str().into(),
            ex.as_str().into(),
            "k".into(),
            FieldTable::default(),
        ),
    )
    .await
    .expect("unbind of missing queue");

    publish(&ch, &ex, "k1", b"one again").await;
    publish(&ch, &ex, "k2", b"two again").await;
    let ds = drain(&mut consumer).await;
    assert_eq!(sorted_bodies(&ds), vec!["two again"]);

    delete_exchange(&ch, &ex).await;
    teardown(conn).await;
}

#[tokio::test]
async fn queue_purge_returns_count() {
    let (conn, ch) = setup().await;
    let q = temp_queue(&ch).await;
    assert_eq!(
        within("queue.purge", ch.queue_purge(q.as_str().into(), QueuePurgeOptions::default()))
            .await
            .expect("purge empty"),
        0
    );
    for i in 0..5 {
        publish(&ch, "", &q, format!("{i}").as_bytes()).await;
    }
    eventually("5 messages enqueued", || async { queue_exists(&conn, &q).await == Some((5, 0)) }).await;
    let purged = within("queue.purge", ch.queue_purge(q.as_str().into(), QueuePurgeOptions::default()))
        .await
        .expect("purge");
    assert_eq!(purged, 5);
    assert!(get(&ch, &q).await.is_none(), "queue not empty after purge");
    teardown(conn).await;
}

#[tokio::test]
async fn queue_delete_if_unused_and_if_empty() {
    let (conn, ch) = setup().await;
    let q = unique("del-cond-q");
    named_queue(&ch, &q).await;
    publish(&ch, "", &q, b"keep me").await;
    eventually("message enqueued", || async { queue_exists(&conn, &q).await == Some((1, 0)) }).await;

    // if-empty on a non-empty queue: 406, channel closed.
    let text = expect_error(
        "queue.delete if-empty",
        ch.queue_delete(q.as_str().into(), QueueDeleteOptions { if_empty: true, ..Default::default() }),
        PRECONDITION_FAILED,
    )
    .await;
    assert!(text.starts_with("PRECONDITION_FAILED"), "{text}");
    assert!(text.contains(&q), "{text}");

    // if-unused with a consumer attached: 406.
    let cch = channel(&conn).await;
    let _consumer = consume(&cch, &q, false).await;
    let ch2 = channel(&conn).await;
    let text = expect_error(
        "queue.delete if-unused",
        ch2.queue_delete(q.as_str().into(), QueueDeleteOptions { if_unused: true, ..Default::default() }),
        PRECONDITION_FAILED,
    )
    .await;
    assert!(text.starts_with("PRECONDITION_FAILED"), "{text}");
    assert!(queue_exists(&conn, &q).await.is_some());

    // Once the consumer is gone (and the message back in the queue) if-unused succeeds
    // and delete-ok reports the message count.
    within("channel.close", cch.close(200, "bye".into())).await.expect("close consumer channel");
    let ch3 = channel(&conn).await;
    let count = within(
        "queue.delete if-unused",
        ch3.queue_delete(q.as_str().into(), QueueDeleteOptions { if_unused: true, ..Default::default() }),
    )
    .await
    .expect("delete if-unused");
    assert_eq!(count, 1);
    assert!(queue_exists(&conn, &q).await.is_none());

    // Deleting a queue that does not exist is not an error (delete-ok, 0).
    let count =
        within("queue.delete missing", ch3.queue_delete(q.as_str().into(), QueueDeleteOptions::default()))
            .await
            .expect("delete missing queue");
    assert_eq!(count, 0);

    // if-empty on an empty queue succeeds.
    let q2 = unique("del-empty-q");
    named_queue(&ch3, &q2).await;
    within(
        "queue.delete if-empty",
        ch3.queue_delete(q2.as_str().into(), QueueDeleteOptions { if_empty: true, ..Default::default() }),
    )
    .await
    .expect("delete if-empty on empty queue");
    teardown(conn).await;
}

#[tokio::test]
async fn exchange_delete_if_unused() {
    let (conn, ch) = setup().await;
    let ex = unique("del-if-unused-ex");
    declare_exchange(&ch, &ex, ExchangeKind::Fanout, ExchangeDeclareOptions::default()).await;
    let q = temp_queue(&ch).await;
    bind(&ch, &q, &ex, "").await;

    let ch2 = channel(&conn).await;
    let text = expect_error(
        "exchange.delete if-unused",
        ch2.exchange_delete(
            ex.as_str().into(),
            ExchangeDeleteOptions { if_unused: true, ..Default::default() },
        ),
        PRECONDITION_FAILED,
    )
    .await;
    assert!(text.starts_with("PRECONDITION_FAILED"), "{text}");
    assert!(text.contains(&ex), "{text}");
    assert!(exchange_exists(&conn, &ex).await);

    within(
        "queue.unbind",
        ch.queue_unbind(q.as_str().into(), ex.as_str().into(), "".into(), FieldTable::default()),
    )
    .await
    .expect("unbind");
    within(
        "exchange.delete if-unused",
        ch.exchange_delete(
            ex.as_str().into(),
            ExchangeDeleteOptions { if_unused: true, ..Default::default() },
        ),
    )
    .await
    .expect("delete unused exchange");
    assert!(!exchange_exists(&conn, &ex).await);
    teardown(conn).await;
}

#[tokio::test]
async fn deleting_exchange_removes_its_bindings() {
    let (conn, ch) = setup().await;
    let ex = unique("del-bindings-ex");
    declare_exchange(&ch, &ex, ExchangeKind::Fanout, ExchangeDeclareOptions::default()).await;
    let q = temp_queue(&ch).await;
    bind(&ch, &q, &ex, "").await;
    delete_exchange(&ch, &ex).await;
    // Recreate under the same name: the old binding must not come back.
    declare_exchange(&ch, &ex, ExchangeKind::Fanout, ExchangeDeclareOptions::default()).await;
    publish(&ch, &ex, "", b"nobody home").await;
    tokio::time::sleep(QUIET).await;
    assert!(get(&ch, &q).await.is_none(), "binding survived exchange deletion");
    delete_exchange(&ch, &ex).await;
    teardown(conn).await;
}

#[tokio::test]
async fn predeclared_exchanges_exist() {
    let conn = connect().await;
    for name in ["amq.direct", "amq.fanout", "amq.topic", "amq.headers", "amq.match"] {
        assert!(exchange_exists(&conn, name).await, "{name} missing");
    }
    teardown(conn).await;
}

#[tokio::test]
async fn predeclared_exchanges_route() {
    use lapin::types::{AMQPValue, LongString};
    let (conn, ch) = setup().await;
    let tag = unique("predeclared");

    let qd = temp_queue(&ch).await;
    bind(&ch, &qd, "amq.direct", &tag).await;
    let qf = temp_queue(&ch).await;
    bind(&ch, &qf, "amq.fanout", "").await;
    let qt = temp_queue(&ch).await;
    bind(&ch, &qt, "amq.topic", &format!("{tag}.#")).await;

    let mut hargs = FieldTable::default();
    hargs.insert("x-match".into(), AMQPValue::LongString(LongString::from("all")));
    hargs.insert("interop-tag".into(), AMQPValue::LongString(LongString::from(tag.as_str())));
    let qh = temp_queue(&ch).await;
    bind_args(&ch, &qh, "amq.headers", "", hargs.clone()).await;
    let qm = temp_queue(&ch).await;
    bind_args(&ch, &qm, "amq.match", "", hargs).await;

    publish(&ch, "amq.direct", &tag, b"direct").await;
    publish(&ch, "amq.topic", &format!("{tag}.x.y"), b"topic").await;
    let mut headers = FieldTable::default();
    headers.insert("interop-tag".into(), AMQPValue::LongString(LongString::from(tag.as_str())));
    let props = lapin::BasicProperties::default().with_headers(headers);
    publish_props(&ch, "amq.headers", "", b"headers", props.clone()).await;
    publish_props(&ch, "amq.match", "", b"match", props).await;
    publish(&ch, "amq.fanout", "", tag.as_bytes()).await;

    assert_eq!(get_eventually(&ch, &qd).await.delivery.data, b"direct");
    assert_eq!(get_eventually(&ch, &qt).await.delivery.data, b"topic");
    assert_eq!(get_eventually(&ch, &qh).await.delivery.data, b"headers");
    assert_eq!(get_eventually(&ch, &qm).await.delivery.data, b"match");
    // amq.fanout is shared with anyone else using this broker: look for our message.
    within("our fanout message", async {
        loop {
            let m = get_eventually(&ch, &qf).await;
            if m.delivery.data == tag.as_bytes() {
                return;
            }
        }
    })
    .await;
    teardown(conn).await;
}
