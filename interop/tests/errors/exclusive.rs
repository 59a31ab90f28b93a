//! Exclusive queues and consumers (405, 403), unknown delivery tags, exchange
//! types and consumer tags, and bad arguments.

use super::*;

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
