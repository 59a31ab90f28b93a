//! Publisher confirms: confirm.select, an ack for every publish, per-channel
//! numbering from 1, basic.return before the ack of an unroutable mandatory
//! message, and the tx/confirm exclusion.
//!
//! lapin numbers confirms itself and hides the delivery tags, so the exact
//! tags and frame order are also checked with the raw client of `common`.

mod common;

use common::*;
use futures_lite::StreamExt;
use lapin::{
    options::{BasicPublishOptions, ConfirmSelectOptions, ExchangeDeclareOptions, ExchangeDeleteOptions},
    BasicProperties, Channel, Confirmation, ExchangeKind, PublisherConfirm,
};
use std::time::Duration;

async fn publish_nowait(
    ch: &Channel,
    exchange: &str,
    key: &str,
    mandatory: bool,
    body: &[u8],
) -> PublisherConfirm {
    within(
        "basic.publish",
        ch.basic_publish(
            exchange.into(),
            key.into(),
            BasicPublishOptions { mandatory, ..Default::default() },
            body,
            BasicProperties::default(),
        ),
    )
    .await
    .expect("basic.publish")
}

#[tokio::test]
async fn every_one_of_100k_publishes_is_acked() {
    const N: usize = 100_000;
    let (conn, ch) = setup().await;
    let q = temp_queue(&ch).await;
    let pch = channel(&conn).await;
    confirm_select(&pch).await;
    assert!(pch.status().confirm());
    let res = tokio::time::timeout(Duration::from_secs(120), async {
        let mut confirms = Vec::with_capacity(N);
        for i in 0..N {
            confirms.push(publish_nowait(&pch, "", &q, false, &(i as u32).to_be_bytes()).await);
        }
        for (i, c) in confirms.into_iter().enumerate() {
            let c = c.await.unwrap_or_else(|e| panic!("confirm of publish {i}: {e}"));
            assert_eq!(c, Confirmation::Ack(None), "publish {i}");
        }
        let returned = pch.wait_for_confirms().await.expect("wait_for_confirms");
        assert!(returned.is_empty(), "nothing was returned");
    })
    .await;
    assert!(res.is_ok(), "100k confirmed publishes did not finish within 120 s");
    // Confirmed means enqueued: all of them are in the queue right away.
    assert_eq!(queue_exists(&conn, &q).await, Some((N as u32, 0)));
    teardown(conn).await;
}

#[tokio::test]
async fn confirms_are_numbered_per_channel() {
    let (conn, ch) = setup().await;
    let q = temp_queue(&ch).await;
    let a = channel(&conn).await;
    let b = channel(&conn).await;
    confirm_select(&a).await;
    confirm_select(&b).await;
    // A second confirm.select is harmless (confirm-ok again, numbering goes on).
    confirm_select(&a).await;
    let mut pending = Vec::new();
    for i in 0..50 {
        pending.push(publish_nowait(&a, "", &q, false, format!("a{i}").as_bytes()).await);
        if i % 2 == 0 {
            pending.push(publish_nowait(&b, "", &q, false, format!("b{i}").as_bytes()).await);
        }
    }
    for c in pending {
        assert_eq!(within("confirm", c).await.expect("confirm"), Confirmation::Ack(None));
    }
    // Without confirm.select a channel gets no confirms.
    let plain = channel(&conn).await;
    let c = publish_nowait(&plain, "", &q, false, b"plain").await;
    assert_eq!(within("no confirm", c).await.unwrap(), Confirmation::NotRequested);
    eventually("75 + 1 messages", || async { queue_exists(&conn, &q).await == Some((76, 0)) }).await;
    teardown(conn).await;
}

/// Read basic.ack frames on `channel` until `last` is confirmed; checks that
/// tags only grow and returns every tag seen as acked.
async fn raw_acks_until(raw: &mut RawAmqp, channel: u16, last: u64) -> Vec<u64> {
    let mut acked = Vec::new();
    let mut high = 0;
    while high < last {
        let f = raw.expect_method(channel, 60, 80).await;
        let mut a = f.args();
        let (tag, multiple) = (a.u64(), a.u8() & 1 == 1);
        assert!(tag > high, "confirm tags must grow: {tag} after {high}");
        if multiple {
            acked.extend(high + 1..=tag);
        } else {
            acked.push(tag);
        }
        high = tag;
    }
    acked
}

#[tokio::test]
async fn raw_confirm_tags_start_at_1_per_channel() {
    let mut raw = RawAmqp::connect().await;
    raw.open_channel(1).await;
    raw.open_channel(2).await;
    // queue.declare "" exclusive
    raw.send_method(1, 50, 10, ArgWriter::default().u16(0).shortstr("").u8(0b100).u32(0).0).await;
    let ok = raw.expect_method(1, 50, 11).await;
    let q = ok.args().shortstr();
    for ch in [1, 2] {
        raw.send_method(ch, 85, 10, ArgWriter::default().u8(0).0).await;
        raw.expect_method(ch, 85, 11).await;
    }
    for i in 0..3 {
        raw.publish(1, "", &q, false, format!("one-{i}").as_bytes()).await;
    }
    assert_eq!(raw_acks_until(&mut raw, 1, 3).await, [1, 2, 3]);
    for i in 0..2 {
        raw.publish(2, "", &q, false, format!("two-{i}").as_bytes()).await;
    }
    assert_eq!(raw_acks_until(&mut raw, 2, 2).await, [1, 2], "channel 2 counts from 1 too");
    raw.publish(1, "", &q, false, b"one-3").await;
    assert_eq!(raw_acks_until(&mut raw, 1, 4).await, [4]);

    // An unroutable message (no mandatory flag) is simply acked.
    raw.publish(1, "", "interop.no-such-queue", false, b"lost").await;
    assert_eq!(raw_acks_until(&mut raw, 1, 5).await, [5]);

    // Mandatory and unroutable: basic.return (with its content) comes first,
    // then the ack.
    raw.publish(1, "", "interop.no-such-queue", true, b"bounce").await;
    let ret = raw.expect_method(1, 60, 50).await;
    let mut a = ret.args();
    let (code, text, exchange, key) = (a.u16(), a.shortstr(), a.shortstr(), a.shortstr());
    assert_eq!(
        (code, text.as_str(), exchange.as_str(), key.as_str()),
        (312, "NO_ROUTE", "", "interop.no-such-queue")
    );
    let header = raw.read_frame().await.expect("content header");
    assert_eq!((header.kind, header.channel), (2, 1), "content header of the returned message");
    let body = raw.read_frame().await.expect("content body");
    assert_eq!((body.kind, body.channel, body.payload.as_slice()), (3, 1, b"bounce".as_slice()));
    assert_eq!(raw_acks_until(&mut raw, 1, 6).await, [6], "the return is followed by the ack of publish 6");
    raw.close().await;
}

#[tokio::test]
async fn mandatory_unroutable_is_returned_before_its_ack() {
    let (conn, ch) = setup().await;
    let q = temp_queue(&ch).await;
    confirm_select(&ch).await;
    let missing = unique("nowhere");
    let c = publish_confirmed(
        &ch,
        "",
        &missing,
        BasicPublishOptions { mandatory: true, ..Default::default() },
        b"bounce",
        BasicProperties::default().with_message_id("m-1".into()),
    )
    .await;
    // lapin attaches a basic.return to the confirm that follows it, so the
    // return arrived before the ack.
    let returned = match c {
        Confirmation::Ack(Some(r)) => r,
        other => panic!("expected Ack(Some(returned message)), got {other:?}"),
    };
    assert_eq!(returned.reply_code, 312);
    assert_eq!(returned.reply_text.as_str(), "NO_ROUTE");
    assert_eq!(returned.routing_key.as_str(), missing);
    assert_eq!(returned.delivery.data, b"bounce");
    assert_eq!(returned.delivery.properties.message_id().as_ref().map(|s| s.as_str()), Some("m-1"));

    // Routable mandatory, and unroutable non-mandatory: plain acks.
    let opts = BasicPublishOptions { mandatory: true, ..Default::default() };
    let c = publish_confirmed(&ch, "", &q, opts, b"ok", BasicProperties::default()).await;
    assert_eq!(c, Confirmation::Ack(None));
    let c = publish_confirmed(
        &ch,
        "",
        &missing,
        BasicPublishOptions::default(),
        b"lost",
        BasicProperties::default(),
    )
    .await;
    assert_eq!(c, Confirmation::Ack(None));

    // Through a fanout exchange without bindings too.
    let x = unique("confirm-fanout");
    declare_exchange(&ch, &x, ExchangeKind::Fanout, ExchangeDeclareOptions::default()).await;
    let c = publish_confirmed(&ch, &x, "k", opts, b"fan", BasicProperties::default()).await;
    assert!(matches!(&c, Confirmation::Ack(Some(r)) if r.reply_code == 312), "got {c:?}");
    within("exchange.delete", ch.exchange_delete(x.as_str().into(), ExchangeDeleteOptions::default()))
        .await
        .unwrap();
    assert!(within("wait_for_confirms", ch.wait_for_confirms()).await.unwrap().is_empty());
    teardown(conn).await;
}

#[tokio::test]
async fn publish_to_missing_exchange_in_confirm_mode_closes_the_channel() {
    let (conn, ch) = setup().await;
    confirm_select(&ch).await;
    let mut watch = watch_channel(&ch).await;
    let x = unique("missing-x");
    let c = publish_nowait(&ch, &x, "k", false, b"x").await;
    let text = expect_channel_closed_by_server(&mut watch, NOT_FOUND).await;
    assert_eq!(text, format!("NOT_FOUND - no exchange '{x}' in vhost '/'"));
    let res = within("confirm of the failed publish", c).await;
    assert!(res.is_err(), "no ack for a publish that closed the channel: {res:?}");
    teardown(conn).await;
}

#[tokio::test]
async fn confirm_select_after_tx_select_is_406() {
    let (conn, ch) = setup().await;
    within("tx.select", ch.tx_select()).await.expect("tx.select");
    let text = expect_error(
        "confirm.select",
        ch.confirm_select(ConfirmSelectOptions::default()),
        PRECONDITION_FAILED,
    )
    .await;
    assert_eq!(text, "PRECONDITION_FAILED - cannot switch from tx to confirm mode");
    assert!(conn.status().connected(), "channel error only");
    teardown(conn).await;
}

#[tokio::test]
async fn tx_select_after_confirm_select_is_406() {
    let (conn, ch) = setup().await;
    confirm_select(&ch).await;
    let text = expect_error("tx.select", ch.tx_select(), PRECONDITION_FAILED).await;
    assert_eq!(text, "PRECONDITION_FAILED - cannot switch from confirm to tx mode");
    assert!(conn.status().connected(), "channel error only");
    // The connection is fine; another channel can use either mode.
    let ch2 = channel(&conn).await;
    within("tx.select", ch2.tx_select()).await.expect("tx.select");
    let mut watch = watch_channel(&ch2).await;
    assert!(tokio::time::timeout(QUIET, watch.next()).await.is_err(), "channel 2 must stay open");
    teardown(conn).await;
}
