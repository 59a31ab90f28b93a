//! Queues: named, server-named, passive, auto-delete and durable declares,
//! bindings, purge and conditional deletes.

use super::*;

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
