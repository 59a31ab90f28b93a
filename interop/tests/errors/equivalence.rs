//! Redeclares that differ (406), reserved `amq.` names (403) and the default
//! exchange, which cannot be bound or deleted.

use super::*;

#[tokio::test]
async fn inequivalent_queue_redeclare_is_406() {
    let conn = connect().await;
    let q = unique("ineq-q");
    let ch = channel(&conn).await;
    named_queue(&ch, &q).await;

    let cases: Vec<(&str, QueueDeclareOptions, FieldTable)> = vec![
        ("durable", QueueDeclareOptions { durable: true, ..Default::default() }, FieldTable::default()),
        (
            "auto_delete",
            QueueDeclareOptions { auto_delete: true, ..Default::default() },
            FieldTable::default(),
        ),
        ("x-message-ttl", QueueDeclareOptions::default(), {
            let mut t = FieldTable::default();
            t.insert("x-message-ttl".into(), AMQPValue::LongInt(1000));
            t
        }),
    ];
    for (arg, opts, args) in cases {
        let ch = channel(&conn).await;
        let text = expect_error(
            "inequivalent queue.declare",
            ch.queue_declare(q.as_str().into(), opts, args),
            PRECONDITION_FAILED,
        )
        .await;
        eprintln!("inequivalent queue {arg}: {text}");
        assert!(text.starts_with("PRECONDITION_FAILED - inequivalent arg"), "{text}");
        assert!(text.contains(arg), "{text}");
        assert!(text.contains(&q), "{text}");
        assert_channel_closed(&ch).await;
    }
    // The queue itself is unchanged.
    let ch = channel(&conn).await;
    named_queue(&ch, &q).await;
    delete_queue(&ch, &q).await;
    assert_connection_usable(&conn).await;
    teardown(conn).await;
}

#[tokio::test]
async fn inequivalent_exchange_redeclare_is_406() {
    let conn = connect().await;
    let x = unique("ineq-x");
    let ch = channel(&conn).await;
    within(
        "exchange.declare",
        ch.exchange_declare(
            x.as_str().into(),
            ExchangeKind::Direct,
            ExchangeDeclareOptions::default(),
            FieldTable::default(),
        ),
    )
    .await
    .unwrap();

    let cases: Vec<(&str, ExchangeKind, ExchangeDeclareOptions)> = vec![
        ("type", ExchangeKind::Fanout, ExchangeDeclareOptions::default()),
        ("durable", ExchangeKind::Direct, ExchangeDeclareOptions { durable: true, ..Default::default() }),
        (
            "auto_delete",
            ExchangeKind::Direct,
            ExchangeDeclareOptions { auto_delete: true, ..Default::default() },
        ),
        ("internal", ExchangeKind::Direct, ExchangeDeclareOptions { internal: true, ..Default::default() }),
    ];
    for (arg, kind, opts) in cases {
        let ch = channel(&conn).await;
        let text = expect_error(
            "inequivalent exchange.declare",
            ch.exchange_declare(x.as_str().into(), kind, opts, FieldTable::default()),
            PRECONDITION_FAILED,
        )
        .await;
        eprintln!("inequivalent exchange {arg}: {text}");
        assert!(text.starts_with("PRECONDITION_FAILED - inequivalent arg"), "{text}");
        assert!(text.contains(arg), "{text}");
        assert!(text.contains(&x), "{text}");
        assert_channel_closed(&ch).await;
    }
    let ch = channel(&conn).await;
    within("exchange.delete", ch.exchange_delete(x.as_str().into(), ExchangeDeleteOptions::default()))
        .await
        .unwrap();
    teardown(conn).await;
}

#[tokio::test]
async fn reserved_amq_prefix_is_403() {
    let conn = connect().await;

    let ch = channel(&conn).await;
    let name = format!("amq.{}", unique("reserved-x"));
    let text = expect_error(
        "exchange.declare amq.*",
        ch.exchange_declare(
            name.as_str().into(),
            ExchangeKind::Direct,
            ExchangeDeclareOptions::default(),
            FieldTable::default(),
        ),
        ACCESS_REFUSED,
    )
    .await;
    eprintln!("reserved exchange name: {text}");
    assert!(text.starts_with("ACCESS_REFUSED"), "{text}");
    assert!(text.contains(&name), "{text}");

    let ch = channel(&conn).await;
    let name = format!("amq.{}", unique("reserved-q"));
    let text = expect_error(
        "queue.declare amq.*",
        ch.queue_declare(name.as_str().into(), QueueDeclareOptions::default(), FieldTable::default()),
        ACCESS_REFUSED,
    )
    .await;
    eprintln!("reserved queue name: {text}");
    assert!(text.starts_with("ACCESS_REFUSED"), "{text}");
    assert!(text.contains(&name), "{text}");

    // A server-named queue cannot be redeclared (actively) by its amq.gen- name,
    // not even by the connection that owns it.
    let ch = channel(&conn).await;
    let gen = temp_queue(&ch).await;
    let text = expect_error(
        "queue.declare of own amq.gen- queue by name",
        ch.queue_declare(gen.as_str().into(), exclusive(), FieldTable::default()),
        ACCESS_REFUSED,
    )
    .await;
    eprintln!("redeclare amq.gen- queue: {text}");
    assert!(text.contains(&gen), "{text}");

    // Passive declares of missing amq.* names are plain 404s.
    let ch = channel(&conn).await;
    let name = format!("amq.{}", unique("missing-q"));
    expect_error(
        "passive queue.declare amq.*",
        ch.queue_declare(name.as_str().into(), passive_q(), FieldTable::default()),
        NOT_FOUND,
    )
    .await;
    let ch = channel(&conn).await;
    let name = format!("amq.{}", unique("missing-x"));
    expect_error(
        "passive exchange.declare amq.*",
        ch.exchange_declare(name.as_str().into(), ExchangeKind::Topic, passive_x(), FieldTable::default()),
        NOT_FOUND,
    )
    .await;

    // An existing predeclared exchange may be redeclared with equivalent
    // attributes (the prefix check only applies when creating) ...
    let ch = channel(&conn).await;
    within(
        "exchange.declare amq.direct (equivalent)",
        ch.exchange_declare(
            "amq.direct".into(),
            ExchangeKind::Direct,
            ExchangeDeclareOptions { durable: true, ..Default::default() },
            FieldTable::default(),
        ),
    )
    .await
    .expect("equivalent redeclare of amq.direct");
    // ... but not with different ones.
    let text = expect_error(
        "exchange.declare amq.direct (non-durable)",
        ch.exchange_declare(
            "amq.direct".into(),
            ExchangeKind::Direct,
            ExchangeDeclareOptions::default(),
            FieldTable::default(),
        ),
        PRECONDITION_FAILED,
    )
    .await;
    eprintln!("inequivalent amq.direct: {text}");
    assert!(text.starts_with("PRECONDITION_FAILED - inequivalent arg 'durable'"), "{text}");

    // Deleting a predeclared exchange is refused.
    let ch = channel(&conn).await;
    let text = expect_error(
        "exchange.delete amq.fanout",
        ch.exchange_delete("amq.fanout".into(), ExchangeDeleteOptions::default()),
        ACCESS_REFUSED,
    )
    .await;
    eprintln!("delete amq.fanout: {text}");
    assert!(text.starts_with("ACCESS_REFUSED"), "{text}");
    assert!(text.contains("amq.fanout"), "{text}");

    assert!(exchange_exists(&conn, "amq.fanout").await);
    assert_connection_usable(&conn).await;
    teardown(conn).await;
}

#[tokio::test]
async fn default_exchange_cannot_be_bound_or_deleted() {
    let conn = connect().await;
    let ch = channel(&conn).await;
    let q = temp_queue(&ch).await;
    let text = expect_error(
        "queue.bind to default exchange",
        ch.queue_bind(
            q.as_str().into(),
            "".into(),
            "k".into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        ),
        ACCESS_REFUSED,
    )
    .await;
    eprintln!("bind to default exchange: {text}");
    assert!(text.starts_with("ACCESS_REFUSED"), "{text}");

    let ch = channel(&conn).await;
    let text = expect_error(
        "exchange.declare of default exchange",
        ch.exchange_declare(
            "".into(),
            ExchangeKind::Direct,
            ExchangeDeclareOptions { durable: true, ..Default::default() },
            FieldTable::default(),
        ),
        ACCESS_REFUSED,
    )
    .await;
    eprintln!("declare default exchange: {text}");
    assert!(text.starts_with("ACCESS_REFUSED"), "{text}");

    let ch = channel(&conn).await;
    let text = expect_error(
        "exchange.delete of default exchange",
        ch.exchange_delete("".into(), ExchangeDeleteOptions::default()),
        ACCESS_REFUSED,
    )
    .await;
    eprintln!("delete default exchange: {text}");
    assert!(text.starts_with("ACCESS_REFUSED"), "{text}");
    assert_connection_usable(&conn).await;
    teardown(conn).await;
}
