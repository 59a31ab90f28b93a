//! Transactions: tx.select / tx.commit / tx.rollback for publishes and for
//! acks, nacks and rejects; commit/rollback on a non-transactional channel.

mod common;

use common::*;
use lapin::{
    options::{BasicAckOptions, BasicNackOptions, BasicRejectOptions},
    Channel,
};

async fn tx_select(ch: &Channel) {
    within("tx.select", ch.tx_select()).await.expect("tx.select");
}

async fn commit(ch: &Channel) {
    within("tx.commit", ch.tx_commit()).await.expect("tx.commit");
}

async fn rollback(ch: &Channel) {
    within("tx.rollback", ch.tx_rollback()).await.expect("tx.rollback");
}

/// Let anything the broker might (wrongly) be doing asynchronously happen.
async fn settle() {
    tokio::time::sleep(QUIET).await;
}

#[tokio::test]
async fn publishes_are_invisible_until_commit() {
    let (conn, ch) = setup().await;
    let q = temp_queue(&ch).await;
    let tch = channel(&conn).await;
    tx_select(&tch).await;
    for i in 0..3 {
        publish(&tch, "", &q, format!("t{i}").as_bytes()).await;
    }
    settle().await;
    assert!(get(&ch, &q).await.is_none(), "uncommitted publish visible to basic.get");
    assert!(get(&tch, &q).await.is_none(), "uncommitted publish visible on its own channel");
    assert_eq!(queue_exists(&conn, &q).await, Some((0, 0)));

    commit(&tch).await;
    // tx.commit-ok means the messages are enqueued.
    for i in 0..3 {
        let m = get(&ch, &q).await.unwrap_or_else(|| panic!("committed message t{i} missing"));
        assert_eq!(m.delivery.data, format!("t{i}").as_bytes());
        assert_eq!(m.message_count, 2 - i);
    }

    // The channel stays transactional: the next publish waits for the next commit.
    publish(&tch, "", &q, b"second").await;
    settle().await;
    assert!(get(&ch, &q).await.is_none(), "channel left tx mode after a commit");
    commit(&tch).await;
    assert_eq!(get(&ch, &q).await.expect("second commit").delivery.data, b"second");
    teardown(conn).await;
}

#[tokio::test]
async fn rollback_discards_publishes() {
    let (conn, ch) = setup().await;
    let q = temp_queue(&ch).await;
    let tch = channel(&conn).await;
    tx_select(&tch).await;
    publish(&tch, "", &q, b"never").await;
    publish(&tch, "", &q, b"never-either").await;
    rollback(&tch).await;
    commit(&tch).await; // an empty commit after the rollback
    settle().await;
    assert!(get(&ch, &q).await.is_none(), "rolled back publish was delivered");

    publish(&tch, "", &q, b"kept").await;
    commit(&tch).await;
    assert_eq!(get(&ch, &q).await.expect("committed").delivery.data, b"kept");
    // Closing a channel with uncommitted publishes discards them too.
    publish(&tch, "", &q, b"dropped-on-close").await;
    within("channel.close", tch.close(200, "bye".into())).await.unwrap();
    settle().await;
    assert!(get(&ch, &q).await.is_none(), "uncommitted publish survived channel close");
    teardown(conn).await;
}

#[tokio::test]
async fn ack_takes_effect_at_commit() {
    let (conn, ch) = setup().await;
    let q = unique("tx-ack");
    named_queue(&ch, &q).await;
    publish(&ch, "", &q, b"a").await;
    wait_ready(&conn, &q, 1).await;

    let tch = channel(&conn).await;
    tx_select(&tch).await;
    let m = get_opts(&tch, &q, false).await.expect("get-ok");
    within("basic.ack", tch.basic_ack(m.delivery.delivery_tag, BasicAckOptions::default())).await.unwrap();
    // Committed: closing the channel requeues nothing. (The opposite case,
    // closing before the commit, follows.)
    commit(&tch).await;
    within("channel.close", tch.close(200, "bye".into())).await.unwrap();
    settle().await;
    assert_eq!(queue_exists(&conn, &q).await, Some((0, 0)));
    assert!(get(&ch, &q).await.is_none(), "committed ack: message must be gone");

    // Ack inside a transaction, channel closed before commit: the ack never happened.
    publish(&ch, "", &q, b"b").await;
    wait_ready(&conn, &q, 1).await;
    let tch = channel(&conn).await;
    tx_select(&tch).await;
    let m = get_opts(&tch, &q, false).await.expect("get-ok");
    within("basic.ack", tch.basic_ack(m.delivery.delivery_tag, BasicAckOptions::default())).await.unwrap();
    settle().await;
    assert_eq!(queue_exists(&conn, &q).await, Some((0, 0)), "message is unacked, not ready");
    within("channel.close", tch.close(200, "bye".into())).await.unwrap();
    let m = get_eventually(&ch, &q).await;
    assert_eq!(m.delivery.data, b"b");
    assert!(m.delivery.redelivered, "uncommitted ack: message comes back redelivered");
    delete_queue(&ch, &q).await;
    teardown(conn).await;
}

#[tokio::test]
async fn rolled_back_ack_leaves_the_message_unacked() {
    let (conn, ch) = setup().await;
    let q = unique("tx-ack-rollback");
    named_queue(&ch, &q).await;
    publish(&ch, "", &q, b"r").await;
    publish(&ch, "", &q, b"s").await;
    wait_ready(&conn, &q, 2).await;

    let tch = channel(&conn).await;
    tx_select(&tch).await;
    let r = get_opts(&tch, &q, false).await.expect("get-ok");
    let s = get_opts(&tch, &q, false).await.expect("get-ok");
    within("basic.ack", tch.basic_ack(r.delivery.delivery_tag, BasicAckOptions::default())).await.unwrap();
    rollback(&tch).await;
    settle().await;
    // Still unacked (not requeued by the rollback): nothing is ready.
    assert_eq!(queue_exists(&conn, &q).await, Some((0, 0)));
    // The tag is still valid: ack `s` now and commit, leaving `r` unacked.
    within("basic.ack", tch.basic_ack(s.delivery.delivery_tag, BasicAckOptions::default())).await.unwrap();
    commit(&tch).await;
    within("channel.close", tch.close(200, "bye".into())).await.unwrap();
    let m = get_eventually(&ch, &q).await;
    assert_eq!(m.delivery.data, b"r", "the rolled-back ack left `r` unacked; it comes back on close");
    assert!(m.delivery.redelivered);
    assert!(get(&ch, &q).await.is_none(), "`s` was acked by the commit");
    delete_queue(&ch, &q).await;
    teardown(conn).await;
}

#[tokio::test]
async fn reject_and_nack_take_effect_at_commit() {
    let (conn, ch) = setup().await;
    let q = unique("tx-reject");
    named_queue(&ch, &q).await;
    for b in ["requeue-me", "drop-me", "nack-me"] {
        publish(&ch, "", &q, b.as_bytes()).await;
    }
    wait_ready(&conn, &q, 3).await;
    let tch = channel(&conn).await;
    tx_select(&tch).await;
    let a = get_opts(&tch, &q, false).await.expect("get-ok");
    let b = get_opts(&tch, &q, false).await.expect("get-ok");
    let c = get_opts(&tch, &q, false).await.expect("get-ok");
    within("basic.reject", tch.basic_reject(a.delivery.delivery_tag, BasicRejectOptions { requeue: true }))
        .await
        .unwrap();
    within("basic.reject", tch.basic_reject(b.delivery.delivery_tag, BasicRejectOptions { requeue: false }))
        .await
        .unwrap();
    within(
        "basic.nack",
        tch.basic_nack(c.delivery.delivery_tag, BasicNackOptions { multiple: false, requeue: true }),
    )
    .await
    .unwrap();
    settle().await;
    assert_eq!(queue_exists(&conn, &q).await, Some((0, 0)), "requeue before commit");
    commit(&tch).await;
    wait_ready(&conn, &q, 2).await;
    let m = get(&ch, &q).await.expect("requeued");
    assert_eq!((m.delivery.data.as_slice(), m.delivery.redelivered), (b"requeue-me".as_slice(), true));
    let m = get(&ch, &q).await.expect("requeued");
    assert_eq!((m.delivery.data.as_slice(), m.delivery.redelivered), (b"nack-me".as_slice(), true));
    within("channel.close", tch.close(200, "bye".into())).await.unwrap();
    settle().await;
    assert!(get(&ch, &q).await.is_none(), "rejected without requeue at commit: gone");
    delete_queue(&ch, &q).await;
    teardown(conn).await;
}

#[tokio::test]
async fn commit_without_select_is_406() {
    let (conn, ch) = setup().await;
    let text = expect_error("tx.commit", ch.tx_commit(), PRECONDITION_FAILED).await;
    assert_eq!(text, "PRECONDITION_FAILED - channel is not transactional");
    assert!(conn.status().connected(), "channel error only");
    teardown(conn).await;
}

#[tokio::test]
async fn rollback_without_select_is_406() {
    let (conn, ch) = setup().await;
    let text = expect_error("tx.rollback", ch.tx_rollback(), PRECONDITION_FAILED).await;
    assert_eq!(text, "PRECONDITION_FAILED - channel is not transactional");
    assert!(conn.status().connected(), "channel error only");
    // tx.select twice is fine.
    let ch2 = channel(&conn).await;
    tx_select(&ch2).await;
    tx_select(&ch2).await;
    commit(&ch2).await;
    teardown(conn).await;
}
