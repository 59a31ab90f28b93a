//! Channel and connection errors: reply codes, reply texts, and what stays usable.

mod common;

use common::*;
use futures_lite::StreamExt;
use lapin::{
    options::{
        BasicAckOptions, BasicConsumeOptions, BasicGetOptions, ExchangeDeclareOptions, ExchangeDeleteOptions,
        QueueBindOptions, QueueDeclareOptions, QueueDeleteOptions, QueuePurgeOptions,
    },
    protocol::AMQPErrorKind,
    types::{AMQPValue, FieldTable, LongString},
    Channel, Connection, ErrorKind, ExchangeKind,
};

fn exclusive() -> QueueDeclareOptions {
    QueueDeclareOptions { exclusive: true, ..Default::default() }
}

fn passive_q() -> QueueDeclareOptions {
    QueueDeclareOptions { passive: true, ..Default::default() }
}

fn passive_x() -> ExchangeDeclareOptions {
    ExchangeDeclareOptions { passive: true, ..Default::default() }
}

/// Assert the channel is closed locally and further use fails without a round trip.
async fn assert_channel_closed(ch: &Channel) {
    within("channel closed state", async {
        while ch.status().connected() {
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    })
    .await;
    let err = within(
        "declare on a closed channel",
        ch.queue_declare("".into(), exclusive(), FieldTable::default()),
    )
    .await
    .expect_err("a closed channel must refuse commands");
    assert!(
        matches!(err.kind(), ErrorKind::InvalidChannelState(..)),
        "unexpected error on closed channel: {err:?}"
    );
}

/// Assert the connection is still fully usable on a fresh channel.
async fn assert_connection_usable(conn: &Connection) {
    assert!(conn.status().connected(), "connection should survive a channel error");
    let ch = channel(conn).await;
    let q = temp_queue(&ch).await;
    publish(&ch, "", &q, b"still works").await;
    assert_eq!(get_eventually(&ch, &q).await.delivery.data, b"still works");
    within("channel.close", ch.close(200, "ok".into())).await.unwrap();
}

#[tokio::test]
async fn passive_declare_of_missing_queue_is_404() {
    let (conn, ch) = setup().await;
    let q = unique("missing-q");
    let text = expect_error(
        "passive queue.declare",
        ch.queue_declare(q.as_str().into(), passive_q(), FieldTable::default()),
        NOT_FOUND,
    )
    .await;
    eprintln!("missing queue: {text}");
    assert!(text.starts_with(&format!("NOT_FOUND - no queue '{q}'")), "{text}");
    assert_channel_closed(&ch).await;
    assert_connection_usable(&conn).await;
    teardown(conn).await;
}

#[tokio::test]
async fn passive_declare_of_missing_exchange_is_404() {
    let (conn, ch) = setup().await;
    let x = unique("missing-x");
    let text = expect_error(
        "passive exchange.declare",
        ch.exchange_declare(x.as_str().into(), ExchangeKind::Direct, passive_x(), FieldTable::default()),
        NOT_FOUND,
    )
    .await;
    eprintln!("missing exchange: {text}");
    assert!(text.starts_with(&format!("NOT_FOUND - no exchange '{x}'")), "{text}");
    assert_channel_closed(&ch).await;
    assert_connection_usable(&conn).await;
    teardown(conn).await;
}

#[tokio::test]
async fn publish_to_missing_exchange_closes_channel_404() {
    let (conn, ch) = setup().await;
    let x = unique("missing-x-pub");
    let mut watch = watch_channel(&ch).await;
    publish(&ch, &x, "rk", b"into the void").await;
    let text = expect_channel_closed_by_server(&mut watch, NOT_FOUND).await;
    eprintln!("publish to missing exchange: {text}");
    assert!(text.starts_with(&format!("NOT_FOUND - no exchange '{x}'")), "{text}");
    assert_channel_closed(&ch).await;
    assert_connection_usable(&conn).await;
    teardown(conn).await;
}

#[tokio::test]
async fn publish_to_missing_exchange_in_confirm_mode_fails_the_confirm() {
    let (conn, ch) = setup().await;
    confirm_select(&ch).await;
    let x = unique("missing-x-confirm");
    let confirm = within(
        "basic.publish",
        ch.basic_publish(x.as_str().into(), "rk".into(), Default::default(), b"lost", Default::default()),
    )
    .await
    .expect("basic.publish is asynchronous");
    // No basic.ack/nack comes back: the channel.close fails the pending confirm.
    let res = within("publisher confirm", confirm).await;
    let text = expect_soft_error(res, NOT_FOUND);
    assert!(text.starts_with(&format!("NOT_FOUND - no exchange '{x}'")), "{text}");
    assert_channel_closed(&ch).await;
    assert_connection_usable(&conn).await;
    teardown(conn).await;
}

#[tokio::test]
async fn channel_error_leaves_other_channels_alone() {
    let (conn, ch) = setup().await;
    let q = temp_queue(&ch).await;
    let mut consumer = consume(&ch, &q, true).await;

    let bad = channel(&conn).await;
    expect_error(
        "passive queue.declare",
        bad.queue_declare(unique("nope").as_str().into(), passive_q(), FieldTable::default()),
        NOT_FOUND,
    )
    .await;
    assert_channel_closed(&bad).await;

    // The consumer on the healthy channel keeps working.
    publish(&ch, "", &q, b"unaffected").await;
    assert_eq!(body(&next_delivery(&mut consumer).await), "unaffected");
    assert_connection_usable(&conn).await;
    teardown(conn).await;
}

#[tokio::test]
async fn missing_entities_in_bind_consume_get_purge_are_404() {
    let conn = connect().await;
    let missing_q = unique("missing-q2");
    let missing_x = unique("missing-x2");

    let ch = channel(&conn).await;
    let q = temp_queue(&ch).await;
    let text = expect_error(
        "queue.bind to missing exchange",
        ch.queue_bind(
            q.as_str().into(),
            missing_x.as_str().into(),
            "k".into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        ),
        NOT_FOUND,
    )
    .await;
    eprintln!("bind to missing exchange: {text}");
    assert!(text.starts_with("NOT_FOUND - no exchange"), "{text}");

    let ch = channel(&conn).await;
    let text = expect_error(
        "queue.bind of missing queue",
        ch.queue_bind(
            missing_q.as_str().into(),
            "amq.direct".into(),
            "k".into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        ),
        NOT_FOUND,
    )
    .await;
    eprintln!("bind missing queue: {text}");
    assert!(text.starts_with("NOT_FOUND - no queue"), "{text}");

    let ch = channel(&conn).await;
    let text = expect_error(
        "exchange.bind to missing destination",
        ch.exchange_bind(
            missing_x.as_str().into(),
            "amq.direct".into(),
            "k".into(),
            Default::default(),
            FieldTable::default(),
        ),
        NOT_FOUND,
    )
    .await;
    assert!(text.starts_with(&format!("NOT_FOUND - no exchange '{missing_x}'")), "{text}");

    let ch = channel(&conn).await;
    let text = expect_error(
        "exchange.bind from missing source",
        ch.exchange_bind(
            "amq.direct".into(),
            missing_x.as_str().into(),
            "k".into(),
            Default::default(),
            FieldTable::default(),
        ),
        NOT_FOUND,
    )
    .await;
    assert!(text.starts_with(&format!("NOT_FOUND - no exchange '{missing_x}'")), "{text}");

    let ch = channel(&conn).await;
    let text = expect_error(
        "basic.consume on missing queue",
        ch.basic_consume(
            missing_q.as_str().into(),
            "".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        ),
        NOT_FOUND,
    )
    .await;
    assert!(text.starts_with(&format!("NOT_FOUND - no queue '{missing_q}'")), "{text}");

    let ch = channel(&conn).await;
    let text = expect_error(
        "basic.get on missing queue",
        ch.basic_get(missing_q.as_str().into(), BasicGetOptions::default()),
        NOT_FOUND,
    )
    .await;
    assert!(text.starts_with(&format!("NOT_FOUND - no queue '{missing_q}'")), "{text}");

    let ch = channel(&conn).await;
    let text = expect_error(
        "queue.purge on missing queue",
        ch.queue_purge(missing_q.as_str().into(), QueuePurgeOptions::default()),
        NOT_FOUND,
    )
    .await;
    assert!(text.starts_with(&format!("NOT_FOUND - no queue '{missing_q}'")), "{text}");

    assert_connection_usable(&conn).await;
    teardown(conn).await;
}

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

#[tokio::test]
async fn exclusive_queue_of_another_connection_is_405() {
    let owner = connect().await;
    let och = channel(&owner).await;
    let q = unique("excl-405");
    within(
        "queue.declare exclusive",
        och.queue_declare(q.as_str().into(), exclusive(), FieldTable::default()),
    )
    .await
    .unwrap();

    let other = connect().await;

    let ch = channel(&other).await;
    let text = expect_error(
        "queue.declare of someone else's exclusive queue",
        ch.queue_declare(q.as_str().into(), QueueDeclareOptions::default(), FieldTable::default()),
        RESOURCE_LOCKED,
    )
    .await;
    eprintln!("exclusive (declare): {text}");
    assert!(text.starts_with("RESOURCE_LOCKED"), "{text}");
    assert!(text.contains(&q), "{text}");

    let ch = channel(&other).await;
    expect_error(
        "passive queue.declare",
        ch.queue_declare(q.as_str().into(), passive_q(), FieldTable::default()),
        RESOURCE_LOCKED,
    )
    .await;

    let ch = channel(&other).await;
    let text = expect_error(
        "basic.consume",
        ch.basic_consume(q.as_str().into(), "".into(), BasicConsumeOptions::default(), FieldTable::default()),
        RESOURCE_LOCKED,
    )
    .await;
    eprintln!("exclusive (consume): {text}");

    let ch = channel(&other).await;
    expect_error("basic.get", ch.basic_get(q.as_str().into(), BasicGetOptions::default()), RESOURCE_LOCKED)
        .await;

    let ch = channel(&other).await;
    expect_error(
        "queue.purge",
        ch.queue_purge(q.as_str().into(), QueuePurgeOptions::default()),
        RESOURCE_LOCKED,
    )
    .await;

    let ch = channel(&other).await;
    expect_error(
        "queue.delete",
        ch.queue_delete(q.as_str().into(), QueueDeleteOptions::default()),
        RESOURCE_LOCKED,
    )
    .await;

    // Publishing into it from another connection is allowed.
    let ch = channel(&other).await;
    publish(&ch, "", &q, b"for the owner").await;
    assert_eq!(get_eventually(&och, &q).await.delivery.data, b"for the owner");

    assert_connection_usable(&other).await;
    teardown(other).await;
    teardown(owner).await;
}

#[tokio::test]
async fn exclusive_flag_mismatch_is_405() {
    // Redeclaring a shared queue as exclusive (even on the declaring connection)
    // is RESOURCE_LOCKED, not PRECONDITION_FAILED.
    let conn = connect().await;
    let ch = channel(&conn).await;
    let q = unique("excl-mismatch");
    named_queue(&ch, &q).await;
    let ch2 = channel(&conn).await;
    let text = expect_error(
        "exclusive redeclare of a shared queue",
        ch2.queue_declare(q.as_str().into(), exclusive(), FieldTable::default()),
        RESOURCE_LOCKED,
    )
    .await;
    eprintln!("exclusive mismatch: {text}");
    delete_queue(&ch, &q).await;
    teardown(conn).await;
}

#[tokio::test]
async fn exclusive_consumer_locks_out_other_consumers_403() {
    let conn = connect().await;
    let ch = channel(&conn).await;
    let q = temp_queue(&ch).await;
    let _excl = within(
        "exclusive basic.consume",
        ch.basic_consume(
            q.as_str().into(),
            "".into(),
            BasicConsumeOptions { exclusive: true, ..Default::default() },
            FieldTable::default(),
        ),
    )
    .await
    .unwrap();
    let ch2 = channel(&conn).await;
    let text = expect_error(
        "second consumer on exclusively consumed queue",
        ch2.basic_consume(
            q.as_str().into(),
            "".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        ),
        ACCESS_REFUSED,
    )
    .await;
    eprintln!("exclusive consumer: {text}");
    assert!(text.starts_with("ACCESS_REFUSED"), "{text}");
    assert_connection_usable(&conn).await;
    teardown(conn).await;
}

#[tokio::test]
async fn ack_of_unknown_delivery_tag_is_406() {
    let (conn, ch) = setup().await;
    let mut watch = watch_channel(&ch).await;
    within("basic.ack", ch.basic_ack(9999, BasicAckOptions::default()))
        .await
        .expect("basic.ack is asynchronous");
    let text = expect_channel_closed_by_server(&mut watch, PRECONDITION_FAILED).await;
    eprintln!("unknown delivery tag: {text}");
    assert!(text.starts_with("PRECONDITION_FAILED - unknown delivery tag 9999"), "{text}");
    assert_connection_usable(&conn).await;
    teardown(conn).await;
}

#[tokio::test]
async fn unknown_exchange_type_is_a_connection_error_503() {
    let (conn, ch) = setup().await;
    let x = unique("bad-type");
    let res = within(
        "exchange.declare with unknown type",
        ch.exchange_declare(
            x.as_str().into(),
            ExchangeKind::Custom("x-no-such-type".into()),
            ExchangeDeclareOptions::default(),
            FieldTable::default(),
        ),
    )
    .await;
    let err = res.expect_err("unknown exchange type must fail");
    let amqp = amqp_error(&err).unwrap_or_else(|| panic!("not a protocol error: {err:?}"));
    eprintln!("unknown exchange type: {}", amqp.get_message());
    assert_eq!(amqp.get_id(), 503, "{}", amqp.get_message());
    assert!(matches!(amqp.kind(), AMQPErrorKind::Hard(_)));
    assert!(amqp.get_message().as_str().starts_with("COMMAND_INVALID"), "{}", amqp.get_message());
    within("connection to close", async {
        while conn.status().connected() {
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    })
    .await;
}

#[tokio::test]
async fn reused_consumer_tag_is_a_connection_error_530() {
    let (conn, ch) = setup().await;
    let q = temp_queue(&ch).await;
    let tag = unique("dup-tag");
    let mut first = within(
        "basic.consume",
        ch.basic_consume(
            q.as_str().into(),
            tag.as_str().into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        ),
    )
    .await
    .unwrap();
    let res = within(
        "basic.consume with a reused tag",
        ch.basic_consume(
            q.as_str().into(),
            tag.as_str().into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        ),
    )
    .await;
    let err = res.expect_err("reusing a consumer tag on a channel must fail");
    let amqp = amqp_error(&err).unwrap_or_else(|| panic!("not a protocol error: {err:?}"));
    eprintln!("reused consumer tag: {}", amqp.get_message());
    assert_eq!(amqp.get_id(), 530, "{}", amqp.get_message());
    assert!(matches!(amqp.kind(), AMQPErrorKind::Hard(_)));
    assert!(amqp.get_message().as_str().starts_with("NOT_ALLOWED"), "{}", amqp.get_message());
    // The whole connection goes down; the first consumer ends with an error or end of stream.
    let _ = tokio::time::timeout(TIMEOUT, first.next()).await;
    within("connection to close", async {
        while conn.status().connected() {
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    })
    .await;
}

#[tokio::test]
async fn string_header_arg_type_errors_do_not_leak_between_channels() {
    // A bad x-message-ttl type is a 406 on that channel only.
    let conn = connect().await;
    let ch = channel(&conn).await;
    let mut args = FieldTable::default();
    args.insert("x-message-ttl".into(), AMQPValue::LongString(LongString::from("soon")));
    let text = expect_error(
        "queue.declare with bad x-message-ttl",
        ch.queue_declare(unique("bad-ttl").as_str().into(), QueueDeclareOptions::default(), args),
        PRECONDITION_FAILED,
    )
    .await;
    eprintln!("bad x-message-ttl: {text}");
    assert!(text.starts_with("PRECONDITION_FAILED"), "{text}");
    assert_connection_usable(&conn).await;
    teardown(conn).await;
}

#[tokio::test]
async fn invalid_x_match_is_406() {
    let conn = connect().await;
    let ch = channel(&conn).await;
    let q = temp_queue(&ch).await;
    let mut args = FieldTable::default();
    args.insert("x-match".into(), AMQPValue::LongString(LongString::from("bogus")));
    let text = expect_error(
        "queue.bind with x-match=bogus",
        ch.queue_bind(q.as_str().into(), "amq.headers".into(), "".into(), QueueBindOptions::default(), args),
        PRECONDITION_FAILED,
    )
    .await;
    eprintln!("bad x-match: {text}");
    assert!(text.starts_with("PRECONDITION_FAILED"), "{text}");
    assert!(text.contains("x-match"), "{text}");
    assert_connection_usable(&conn).await;
    teardown(conn).await;
}
