//! Exchanges: declare and delete of every type, passive, durable, auto-delete
//! and internal ones, exchange-to-exchange bindings.

use super::*;

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
