//! Acknowledgements: ack/nack/reject (single, multiple, tag 0), bad tags,
//! requeue position, unacked messages of closed channels/connections and of a
//! consumer whose socket dies, basic.recover, basic.get, competing consumers,
//! exclusive consumers, auto-delete on last cancel, server-initiated cancel.

mod common;

use common::*;
use futures_lite::StreamExt;
use lapin::{
    message::Delivery,
    options::{
        BasicAckOptions, BasicCancelOptions, BasicConsumeOptions, BasicNackOptions, BasicQosOptions,
        BasicRecoverAsyncOptions, BasicRecoverOptions, BasicRejectOptions, QueueDeclareOptions,
    },
    types::FieldTable,
    Channel, Consumer,
};
use std::{
    collections::{BTreeMap, BTreeSet},
    sync::{Arc, Mutex},
    time::Duration,
};

async fn nack_tag(ch: &Channel, tag: u64, multiple: bool, requeue: bool) {
    within("basic.nack", ch.basic_nack(tag, BasicNackOptions { multiple, requeue }))
        .await
        .expect("basic.nack");
}

async fn reject_tag(ch: &Channel, tag: u64, requeue: bool) {
    within("basic.reject", ch.basic_reject(tag, BasicRejectOptions { requeue })).await.expect("basic.reject");
}

async fn take(consumer: &mut Consumer, n: usize) -> Vec<Delivery> {
    let mut v = Vec::with_capacity(n);
    for _ in 0..n {
        v.push(next_delivery(consumer).await);
    }
    v
}

/// basic.get with manual ack, polling until a message shows up.
async fn get_ack_eventually(ch: &Channel, q: &str) -> lapin::message::BasicGetMessage {
    within("basic.get (manual ack)", async {
        loop {
            if let Some(m) = get_opts(ch, q, false).await {
                return m;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
}

async fn consume_opts(
    ch: &Channel,
    q: &str,
    tag: &str,
    options: BasicConsumeOptions,
) -> lapin::Result<Consumer> {
    within("basic.consume", ch.basic_consume(q.into(), tag.into(), options, FieldTable::default())).await
}

#[tokio::test]
async fn ack_nack_reject_single_and_multiple() {
    let (conn, ch) = setup().await;
    let q = temp_queue(&ch).await;
    fill(&ch, &q, 8).await;
    let mut consumer = consume(&ch, &q, false).await;
    let d = take(&mut consumer, 8).await;
    for (i, d) in d.iter().enumerate() {
        assert_eq!((body(d), d.delivery_tag), (i.to_string(), i as u64 + 1));
    }
    ack_tag(&ch, 3, true).await; // 0, 1, 2
    nack_tag(&ch, 5, true, true).await; // 3, 4 back to the queue
                                        // The only consumer gets them again, in order, flagged, with new tags.
    let again = take(&mut consumer, 2).await;
    assert_eq!(sorted_bodies(&again), vec!["3", "4"]);
    assert_eq!(body(&again[0]), "3", "multiple nack requeues in order");
    assert!(again.iter().all(|d| d.redelivered));
    assert_eq!((again[0].delivery_tag, again[1].delivery_tag), (9, 10), "redeliveries get fresh tags");
    reject_tag(&ch, 6, false).await; // 5 dropped
    nack_tag(&ch, 7, false, false).await; // 6 dropped
    ack_tag(&ch, 8, false).await; // 7
    nack_tag(&ch, 10, true, false).await; // 3, 4 dropped (9 and 10)
    assert_no_delivery(&mut consumer).await;
    assert_eq!(queue_exists(&conn, &q).await, Some((0, 1)));
    within("basic.cancel", ch.basic_cancel(consumer.tag(), BasicCancelOptions::default())).await.unwrap();
    within("channel.close", ch.close(200, "bye".into())).await.unwrap();
    // Nothing was left unacked on the closed channel.
    let ch = channel(&conn).await;
    assert!(get(&ch, &q).await.is_none());
    teardown(conn).await;
}

#[tokio::test]
async fn multiple_with_tag_zero_covers_everything_outstanding() {
    let (conn, ch) = setup().await;
    let q = temp_queue(&ch).await;
    fill(&ch, &q, 6).await;
    let mut consumer = consume(&ch, &q, false).await;
    take(&mut consumer, 3).await;
    // lapin drops not-yet-read deliveries on a multiple ack/nack of tag 0, so
    // read all six first.
    let rest = take(&mut consumer, 3).await;
    assert_eq!(body(&rest[2]), "5");
    nack_tag(&ch, 0, true, true).await; // all six back
    let again = take(&mut consumer, 6).await;
    let bodies: Vec<String> = again.iter().map(body).collect();
    assert_eq!(bodies, ["0", "1", "2", "3", "4", "5"], "nack(0, multiple) requeues all, in order");
    assert!(again.iter().all(|d| d.redelivered));
    ack_tag(&ch, 0, true).await; // ack all
    assert_no_delivery(&mut consumer).await;
    within("channel.close", ch.close(200, "bye".into())).await.unwrap();
    let ch = channel(&conn).await;
    assert!(get(&ch, &q).await.is_none(), "ack(0, multiple) acked everything");
    teardown(conn).await;
}

#[tokio::test]
async fn settling_unknown_or_settled_tags_is_406() {
    let conn = connect().await;
    let setup_ch = channel(&conn).await;
    let q = unique("bad-tags");
    named_queue(&setup_ch, &q).await;
    fill(&setup_ch, &q, 20).await;
    wait_ready(&conn, &q, 20).await;

    let cases = [
        ("ack twice", "PRECONDITION_FAILED - unknown delivery tag 1"),
        ("nack after ack", "PRECONDITION_FAILED - unknown delivery tag 2"),
        ("reject after reject", "PRECONDITION_FAILED - unknown delivery tag 1"),
        ("ack multiple beyond the last tag", "PRECONDITION_FAILED - unknown delivery tag 3"),
        ("nack unknown", "PRECONDITION_FAILED - unknown delivery tag 77"),
        ("reject unknown", "PRECONDITION_FAILED - unknown delivery tag 78"),
        ("single ack of tag 0", "PRECONDITION_FAILED - unknown delivery tag 0"),
    ];
    for (what, want) in cases {
        let ch = channel(&conn).await;
        let a = get_ack_eventually(&ch, &q).await;
        let b = get_ack_eventually(&ch, &q).await;
        assert_eq!((a.delivery.delivery_tag, b.delivery.delivery_tag), (1, 2));
        let mut watch = watch_channel(&ch).await;
        match what {
            "ack twice" => {
                ack_tag(&ch, 1, false).await;
                ack_tag(&ch, 1, false).await;
            }
            "nack after ack" => {
                ack_tag(&ch, 2, false).await;
                nack_tag(&ch, 2, false, true).await;
            }
            "reject after reject" => {
                reject_tag(&ch, 1, false).await;
                reject_tag(&ch, 1, true).await;
            }
            "ack multiple beyond the last tag" => ack_tag(&ch, 3, true).await,
            "nack unknown" => nack_tag(&ch, 77, false, false).await,
            "reject unknown" => reject_tag(&ch, 78, true).await,
            "single ack of tag 0" => ack_tag(&ch, 0, false).await,
            _ => unreachable!(),
        }
        let text = expect_channel_closed_by_server(&mut watch, PRECONDITION_FAILED).await;
        eprintln!("{what}: {text}");
        assert_eq!(text, want, "{what}");
    }
    assert!(conn.status().connected(), "bad tags are channel errors only");
    delete_queue(&setup_ch, &q).await;
    teardown(conn).await;
}

#[tokio::test]
async fn requeue_restores_original_position() {
    let (conn, ch) = setup().await;
    let q = temp_queue(&ch).await;
    fill(&ch, &q, 10).await;
    wait_ready(&conn, &q, 10).await;
    let gch = channel(&conn).await;
    let mut got = Vec::new();
    for _ in 0..4 {
        got.push(get_opts(&gch, &q, false).await.expect("get-ok"));
    }
    let bodies: Vec<&[u8]> = got.iter().map(|m| m.delivery.data.as_slice()).collect();
    assert_eq!(bodies, [b"0", b"1", b"2", b"3"]);
    // Requeue out of order, one at a time and with different methods.
    reject_tag(&gch, got[2].delivery.delivery_tag, true).await;
    nack_tag(&gch, got[0].delivery.delivery_tag, false, true).await;
    reject_tag(&gch, got[3].delivery.delivery_tag, true).await;
    nack_tag(&gch, got[1].delivery.delivery_tag, false, true).await;
    // Each went back to where it was, ahead of the never-delivered ones.
    // Consume on the channel that requeued: settlements carry no reply, and
    // only one channel's methods reach the queue in the order they were sent
    // (RabbitMQ runs each channel as its own process).
    let mut consumer = consume(&gch, &q, true).await;
    for i in 0..10 {
        let d = next_delivery(&mut consumer).await;
        assert_eq!(body(&d), i.to_string(), "requeued messages return to their original position");
        assert_eq!(d.redelivered, i < 4, "redelivered flag of message {i}");
    }
    teardown(conn).await;
}

#[tokio::test]
async fn requeued_message_goes_ahead_of_the_rest_for_a_live_consumer() {
    let (conn, ch) = setup().await;
    let q = temp_queue(&ch).await;
    fill(&ch, &q, 5).await;
    wait_ready(&conn, &q, 5).await;
    within("basic.qos", ch.basic_qos(2, BasicQosOptions::default())).await.unwrap();
    let mut consumer = consume(&ch, &q, false).await;
    let d = take(&mut consumer, 2).await;
    nack_tag(&ch, d[0].delivery_tag, false, true).await;
    let d2 = next_delivery(&mut consumer).await;
    assert_eq!(body(&d2), "0", "requeued head message is redelivered before message 2");
    assert!(d2.redelivered);
    ack_tag(&ch, d2.delivery_tag, false).await;
    ack_tag(&ch, d[1].delivery_tag, false).await;
    for i in 2..5 {
        let d = next_delivery(&mut consumer).await;
        assert_eq!(body(&d), i.to_string());
        assert!(!d.redelivered);
        ack(&d).await;
    }
    teardown(conn).await;
}

#[tokio::test]
async fn nack_and_reject_without_requeue_drop() {
    let (conn, ch) = setup().await;
    let q = temp_queue(&ch).await;
    fill(&ch, &q, 5).await;
    wait_ready(&conn, &q, 5).await;
    let gch = channel(&conn).await;
    let mut tags = Vec::new();
    for _ in 0..5 {
        tags.push(get_opts(&gch, &q, false).await.expect("get-ok").delivery.delivery_tag);
    }
    reject_tag(&gch, tags[4], false).await;
    nack_tag(&gch, tags[1], true, false).await; // 0 and 1
    nack_tag(&gch, tags[2], false, false).await;
    nack_tag(&gch, tags[3], false, false).await;
    // Everything settled: closing the channel returns nothing.
    within("channel.close", gch.close(200, "bye".into())).await.unwrap();
    assert_eq!(queue_exists(&conn, &q).await, Some((0, 0)));
    assert!(get(&ch, &q).await.is_none(), "dropped messages must not come back");
    teardown(conn).await;
}

/// Consume 6 messages on a channel of `conn2`, ack #1 and #4, then `close`.
/// The other four come back, in order, flagged redelivered.
async fn unacked_come_back(close_connection: bool) {
    let (conn, ch) = setup().await;
    let q = unique("unacked-back");
    named_queue(&ch, &q).await;
    fill(&ch, &q, 6).await;
    let conn2 = connect().await;
    let ch2 = channel(&conn2).await;
    let mut consumer = consume(&ch2, &q, false).await;
    let d = take(&mut consumer, 6).await;
    ack(&d[1]).await;
    ack(&d[4]).await;
    if close_connection {
        within("connection.close", conn2.close(200, "bye".into())).await.expect("connection.close");
    } else {
        within("channel.close", ch2.close(200, "bye".into())).await.expect("channel.close");
    }
    wait_ready(&conn, &q, 4).await;
    let mut consumer = consume(&ch, &q, true).await;
    for want in ["0", "2", "3", "5"] {
        let d = next_delivery(&mut consumer).await;
        assert_eq!(body(&d), want);
        assert!(d.redelivered, "message {want} must be flagged redelivered");
    }
    assert_no_delivery(&mut consumer).await;
    delete_queue(&ch, &q).await;
    teardown(conn).await;
    if !close_connection {
        teardown(conn2).await;
    }
}

#[tokio::test]
async fn unacked_messages_of_a_closed_channel_are_requeued() {
    unacked_come_back(false).await;
}

#[tokio::test]
async fn unacked_messages_of_a_closed_connection_are_requeued() {
    unacked_come_back(true).await;
}

#[tokio::test]
async fn unacked_messages_of_a_dead_socket_are_requeued() {
    let (conn, ch) = setup().await;
    let q = unique("dead-socket");
    named_queue(&ch, &q).await;
    fill(&ch, &q, 3).await;
    let proxy = KillableProxy::start().await;
    let doomed = connect_to(&proxy.url).await;
    let dch = channel(&doomed).await;
    let mut consumer = consume(&dch, &q, false).await;
    let d = take(&mut consumer, 3).await;
    ack(&d[1]).await;
    // A synchronous round trip on the same channel: the ack has been processed.
    within("basic.qos", dch.basic_qos(0, BasicQosOptions::default())).await.unwrap();
    proxy.kill();
    wait_ready(&conn, &q, 2).await;
    let m = get(&ch, &q).await.expect("requeued");
    assert_eq!((m.delivery.data.as_slice(), m.delivery.redelivered), (b"0".as_slice(), true));
    let m = get(&ch, &q).await.expect("requeued");
    assert_eq!((m.delivery.data.as_slice(), m.delivery.redelivered), (b"2".as_slice(), true));
    delete_queue(&ch, &q).await;
    teardown(conn).await;
}

#[tokio::test]
async fn killed_consumer_loses_nothing() {
    const TOTAL: u32 = 5000;
    const VICTIM_ACKS: usize = 400;
    const VICTIM_HOLDS: usize = 60;
    let (conn, ch) = setup().await;
    let q = unique("killed-consumer");
    named_queue(&ch, &q).await;
    confirm_select(&ch).await;
    let mut confirms = Vec::new();
    for i in 0..TOTAL {
        let c = within(
            "basic.publish",
            ch.basic_publish(
                "".into(),
                q.as_str().into(),
                Default::default(),
                format!("{i}").as_bytes(),
                Default::default(),
            ),
        )
        .await
        .expect("basic.publish");
        confirms.push(c);
    }
    for c in confirms {
        assert!(within("publisher confirm", c).await.expect("confirm").is_ack());
    }

    // The victim talks through a proxy whose sockets we can cut.
    let proxy = KillableProxy::start().await;
    let victim_conn = connect_to(&proxy.url).await;
    let vch = channel(&victim_conn).await;
    within("basic.qos", vch.basic_qos(100, BasicQosOptions::default())).await.unwrap();
    let mut victim = consume(&vch, &q, false).await;

    // The survivor consumes (and acks) concurrently on a normal connection.
    let survivor_conn = connect().await;
    let sch = channel(&survivor_conn).await;
    within("basic.qos", sch.basic_qos(100, BasicQosOptions::default())).await.unwrap();
    let mut survivor = consume(&sch, &q, false).await;
    let survived: Arc<Mutex<Vec<(u32, bool)>>> = Arc::default();
    let survived2 = survived.clone();
    let survivor_task = tokio::spawn(async move {
        while let Some(d) = survivor.next().await {
            let d = d.expect("survivor delivery");
            let n: u32 = body(&d).parse().unwrap();
            d.acker.ack(BasicAckOptions::default()).await.expect("survivor ack");
            survived2.lock().unwrap().push((n, d.redelivered));
        }
    });

    // The victim acks its first VICTIM_ACKS deliveries, makes sure the broker
    // has processed those acks, then takes VICTIM_HOLDS more without acking.
    let mut victim_acked = BTreeSet::new();
    for _ in 0..VICTIM_ACKS {
        let d = next_delivery(&mut victim).await;
        assert!(!d.redelivered);
        ack(&d).await;
        victim_acked.insert(body(&d).parse::<u32>().unwrap());
    }
    within("basic.qos round trip", vch.basic_qos(100, BasicQosOptions::default())).await.unwrap();
    let mut victim_held = BTreeSet::new();
    for _ in 0..VICTIM_HOLDS {
        let d = next_delivery(&mut victim).await;
        victim_held.insert(body(&d).parse::<u32>().unwrap());
    }
    proxy.kill();
    drop(victim);

    // Everything must end up acked by somebody.
    within("survivor to ack the rest", async {
        loop {
            if survived.lock().unwrap().len() + victim_acked.len() >= TOTAL as usize {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    assert_no_delivery_for(QUIET, &survived).await;
    survivor_task.abort();

    let survived = survived.lock().unwrap().clone();
    let mut count: BTreeMap<u32, usize> = BTreeMap::new();
    for &(n, _) in &survived {
        *count.entry(n).or_default() += 1;
        assert!(!victim_acked.contains(&n), "message {n} acked by the victim was delivered again");
    }
    assert!(count.values().all(|&c| c == 1), "the survivor got a message twice");
    let redelivered: BTreeSet<u32> = survived.iter().filter(|(_, r)| *r).map(|(n, _)| *n).collect();
    assert!(
        victim_held.is_subset(&redelivered),
        "messages the victim held unacked must come back flagged redelivered: missing {:?}",
        victim_held.difference(&redelivered).collect::<Vec<_>>()
    );
    // Besides what it had read, the victim may have had deliveries in flight,
    // but never more than its prefetch of 100 unacked.
    assert!(
        redelivered.len() <= 100,
        "{} redeliveries but the victim held at most 100 unacked",
        redelivered.len()
    );
    eprintln!(
        "victim acked {}, held {}; survivor got {} ({} redelivered)",
        victim_acked.len(),
        victim_held.len(),
        survived.len(),
        redelivered.len()
    );
    let all: BTreeSet<u32> = survived.iter().map(|(n, _)| *n).chain(victim_acked.iter().copied()).collect();
    assert_eq!(all.len(), TOTAL as usize, "every message acked exactly once overall");
    assert_eq!(all.iter().next_back(), Some(&(TOTAL - 1)));
    wait_ready(&conn, &q, 0).await;
    teardown(survivor_conn).await;
    delete_queue(&ch, &q).await;
    teardown(conn).await;
}

/// Assert the shared list stops growing for `quiet`.
async fn assert_no_delivery_for(quiet: Duration, list: &Arc<Mutex<Vec<(u32, bool)>>>) {
    let before = list.lock().unwrap().len();
    tokio::time::sleep(quiet).await;
    let after = list.lock().unwrap().len();
    assert_eq!(before, after, "deliveries beyond the total");
}

#[tokio::test]
async fn basic_recover_requeue_true_redelivers_unacked() {
    let (conn, ch) = setup().await;
    let q = temp_queue(&ch).await;
    fill(&ch, &q, 4).await;
    let mut consumer = consume(&ch, &q, false).await;
    let d = take(&mut consumer, 4).await;
    ack(&d[1]).await;
    within("basic.recover", ch.basic_recover(BasicRecoverOptions { requeue: true }))
        .await
        .expect("recover-ok");
    let again = take(&mut consumer, 3).await;
    let bodies: Vec<String> = again.iter().map(body).collect();
    assert_eq!(bodies, ["0", "2", "3"], "unacked messages redelivered in order");
    assert!(again.iter().all(|d| d.redelivered));
    assert!(again.iter().all(|d| d.delivery_tag > 4), "redeliveries get fresh tags");
    assert_no_delivery(&mut consumer).await;

    // The async flavour does the same, without a reply.
    ack(&again[0]).await;
    within("basic.recover-async", ch.basic_recover_async(BasicRecoverAsyncOptions { requeue: true }))
        .await
        .expect("recover-async");
    let third = take(&mut consumer, 2).await;
    let bodies: Vec<String> = third.iter().map(body).collect();
    assert_eq!(bodies, ["2", "3"]);
    assert!(third.iter().all(|d| d.redelivered));

    // The tags of the requeued deliveries are dead now.
    let mut watch = watch_channel(&ch).await;
    ack_tag(&ch, again[1].delivery_tag, false).await;
    let text = expect_channel_closed_by_server(&mut watch, PRECONDITION_FAILED).await;
    assert_eq!(text, format!("PRECONDITION_FAILED - unknown delivery tag {}", again[1].delivery_tag));
    teardown(conn).await;
}

#[tokio::test]
async fn basic_recover_requeue_false_is_a_connection_error_540() {
    // RabbitMQ does not implement redelivery to the original consumer.
    let (admin, ach) = setup().await;
    let q = unique("recover-false");
    named_queue(&ach, &q).await;
    publish(&ach, "", &q, b"held").await;

    let (conn, ch) = setup().await;
    let mut consumer = consume(&ch, &q, false).await;
    assert_eq!(body(&next_delivery(&mut consumer).await), "held");
    let res =
        within("basic.recover requeue=false", ch.basic_recover(BasicRecoverOptions { requeue: false })).await;
    let text = expect_hard_error(res, 540);
    assert_eq!(text, "NOT_IMPLEMENTED - requeue=false");
    wait_connection_closed(&conn).await;
    // The connection's unacked message went back to the queue.
    let m = get_eventually(&ach, &q).await;
    assert_eq!((m.delivery.data.as_slice(), m.delivery.redelivered), (b"held".as_slice(), true));

    let (conn, ch) = setup().await;
    let mut watch = watch_channel(&ch).await;
    within(
        "basic.recover-async requeue=false",
        ch.basic_recover_async(BasicRecoverAsyncOptions { requeue: false }),
    )
    .await
    .expect("recover-async is fire and forget");
    let text = expect_connection_closed_by_server(&conn, &mut watch, 540).await;
    assert_eq!(text, "NOT_IMPLEMENTED - requeue=false");
    delete_queue(&ach, &q).await;
    teardown(admin).await;
}

#[tokio::test]
async fn basic_get_manual_ack_and_no_ack() {
    let (conn, ch) = setup().await;
    let q = unique("get");
    named_queue(&ch, &q).await;
    fill(&ch, &q, 5).await;
    wait_ready(&conn, &q, 5).await;

    let gch = channel(&conn).await;
    let m = get_opts(&gch, &q, true).await.expect("get-ok");
    assert_eq!(
        (m.delivery.data.as_slice(), m.message_count, m.delivery.delivery_tag),
        (b"0".as_slice(), 4, 1)
    );
    let m1 = get_opts(&gch, &q, false).await.expect("get-ok");
    assert_eq!(
        (m1.delivery.data.as_slice(), m1.message_count, m1.delivery.delivery_tag),
        (b"1".as_slice(), 3, 2)
    );
    let m2 = get_opts(&gch, &q, false).await.expect("get-ok");
    assert_eq!((m2.delivery.data.as_slice(), m2.message_count), (b"2".as_slice(), 2));
    ack(&m2.delivery).await;
    // Closing the channel returns only the unacked manual-ack get.
    within("channel.close", gch.close(200, "bye".into())).await.unwrap();
    wait_ready(&conn, &q, 3).await;
    let m = get_opts(&ch, &q, true).await.expect("get-ok");
    assert_eq!(
        (m.delivery.data.as_slice(), m.delivery.redelivered, m.message_count),
        (b"1".as_slice(), true, 2)
    );
    let m = get_opts(&ch, &q, true).await.expect("get-ok");
    assert_eq!(
        (m.delivery.data.as_slice(), m.delivery.redelivered, m.message_count),
        (b"3".as_slice(), false, 1)
    );

    // basic.get shares the channel's delivery-tag sequence with consumers.
    let cch = channel(&conn).await;
    publish(&ch, "", &q, b"5").await;
    let tmp = temp_queue(&cch).await;
    let mut consumer = consume(&cch, &tmp, false).await;
    publish(&ch, "", &tmp, b"c").await;
    assert_eq!(next_delivery(&mut consumer).await.delivery_tag, 1);
    let m = get_ack_eventually(&cch, &q).await;
    assert_eq!(m.delivery.delivery_tag, 2);
    assert_eq!(m.delivery.data, b"4");
    publish(&ch, "", &tmp, b"d").await;
    assert_eq!(next_delivery(&mut consumer).await.delivery_tag, 3);
    ack_tag(&cch, 3, true).await;
    assert_eq!(get_opts(&cch, &q, false).await.expect("get-ok").message_count, 0);
    delete_queue(&ch, &q).await;
    teardown(conn).await;
}

/// Three consumers on one queue, registered before the publishes.
async fn three_consumers(conn: &lapin::Connection, q: &str, prefetch: u16) -> Vec<(Channel, Consumer)> {
    let mut v = Vec::new();
    for _ in 0..3 {
        let ch = channel(conn).await;
        within("basic.qos", ch.basic_qos(prefetch, BasicQosOptions::default())).await.unwrap();
        let c = consume(&ch, q, false).await;
        v.push((ch, c));
    }
    v
}

#[tokio::test]
async fn round_robin_among_competing_consumers_unlimited_prefetch() {
    let (conn, ch) = setup().await;
    let q = temp_queue(&ch).await;
    let mut cs = three_consumers(&conn, &q, 0).await;
    fill(&ch, &q, 30).await;
    let mut all = Vec::new();
    for (i, (_, c)) in cs.iter_mut().enumerate() {
        let got = drain(c).await;
        assert_eq!(got.len(), 10, "consumer {i} got {:?}", got.iter().map(body).collect::<Vec<_>>());
        let nums: Vec<u32> = got.iter().map(|d| body(d).parse().unwrap()).collect();
        assert!(nums.windows(2).all(|w| w[0] < w[1]), "consumer {i} saw {nums:?} out of order");
        all.extend(nums);
    }
    all.sort();
    assert_eq!(all, (0..30).collect::<Vec<_>>());
    teardown(conn).await;
}

#[tokio::test]
async fn round_robin_among_competing_consumers_prefetch_1() {
    let (conn, ch) = setup().await;
    let q = temp_queue(&ch).await;
    let mut cs = three_consumers(&conn, &q, 1).await;
    fill(&ch, &q, 30).await;
    let mut all = Vec::new();
    let mut per = [0usize; 3];
    // In lock step: each consumer holds one; each ack frees exactly that
    // consumer, so each gets exactly one message per round.
    for round in 0..10 {
        let mut held = Vec::new();
        for (i, (_, c)) in cs.iter_mut().enumerate() {
            let d = next_delivery(c).await;
            per[i] += 1;
            all.push(body(&d).parse::<u32>().unwrap());
            held.push(d);
        }
        if round == 0 {
            for (_, c) in cs.iter_mut() {
                assert_no_delivery(c).await;
            }
        }
        for d in &held {
            ack(d).await;
        }
    }
    assert_eq!(per, [10, 10, 10]);
    all.sort();
    assert_eq!(all, (0..30).collect::<Vec<_>>());
    for (_, c) in cs.iter_mut() {
        assert_no_delivery(c).await;
    }
    teardown(conn).await;
}

#[tokio::test]
async fn exclusive_consumer_rules() {
    let (conn, ch) = setup().await;
    let q = unique("excl-consumer");
    named_queue(&ch, &q).await;
    let exclusive = BasicConsumeOptions { exclusive: true, ..Default::default() };
    within("basic.qos", ch.basic_qos(1, BasicQosOptions::default())).await.unwrap();

    // An exclusive consumer refuses any other consumer, exclusive or not.
    let mut c = consume_opts(&ch, &q, "", exclusive).await.expect("exclusive consume");
    let want = format!("ACCESS_REFUSED - queue '{q}' in vhost '/' in exclusive use");
    for opts in [BasicConsumeOptions::default(), exclusive] {
        let other = channel(&conn).await;
        let text = expect_soft_error(consume_opts(&other, &q, "", opts).await, ACCESS_REFUSED);
        assert_eq!(text, want);
    }
    // basic.get is not a consumer: it is allowed. (The exclusive consumer
    // holds one message under prefetch 1, so the second one stays ready.)
    publish(&ch, "", &q, b"first").await;
    publish(&ch, "", &q, b"second").await;
    assert_eq!(body(&next_delivery(&mut c).await), "first");
    let probe = channel(&conn).await;
    assert_eq!(
        get_eventually(&probe, &q).await.delivery.data,
        b"second",
        "basic.get beside an exclusive consumer"
    );
    within("basic.cancel", ch.basic_cancel(c.tag(), BasicCancelOptions::default())).await.unwrap();

    // Once it is cancelled, others may consume again.
    let ch2 = channel(&conn).await;
    let _c2 = consume(&ch2, &q, false).await;
    // And an exclusive consumer is refused while another consumer exists.
    let ch3 = channel(&conn).await;
    let text = expect_soft_error(consume_opts(&ch3, &q, "", exclusive).await, ACCESS_REFUSED);
    assert_eq!(text, want);
    assert!(conn.status().connected(), "403 on basic.consume is a channel error");
    delete_queue(&ch, &q).await;
    teardown(conn).await;
}

#[tokio::test]
async fn auto_delete_queue_goes_with_its_last_consumer() {
    let (conn, ch) = setup().await;
    let q = unique("auto-delete");
    let auto_delete = QueueDeclareOptions { auto_delete: true, ..Default::default() };
    within("queue.declare", ch.queue_declare(q.as_str().into(), auto_delete, FieldTable::default()))
        .await
        .expect("declare");
    // Never consumed: stays.
    tokio::time::sleep(QUIET).await;
    assert_eq!(queue_exists(&conn, &q).await, Some((0, 0)), "auto-delete queue without consumers ever stays");

    let c1 = consume(&ch, &q, false).await;
    let ch2 = channel(&conn).await;
    let c2 = consume(&ch2, &q, false).await;
    within("basic.cancel", ch.basic_cancel(c1.tag(), BasicCancelOptions::default())).await.unwrap();
    assert_eq!(queue_exists(&conn, &q).await, Some((0, 1)), "one consumer left: queue stays");
    within("basic.cancel", ch2.basic_cancel(c2.tag(), BasicCancelOptions::default())).await.unwrap();
    eventually("auto-delete queue to go", || async { queue_exists(&conn, &q).await.is_none() }).await;
    let probe = channel(&conn).await;
    let text = expect_error(
        "passive declare",
        probe.queue_declare(
            q.as_str().into(),
            QueueDeclareOptions { passive: true, ..Default::default() },
            FieldTable::default(),
        ),
        NOT_FOUND,
    )
    .await;
    assert_eq!(text, format!("NOT_FOUND - no queue '{q}' in vhost '/'"));

    // Same when the last consumer goes with its channel.
    let q = unique("auto-delete-ch");
    within("queue.declare", ch.queue_declare(q.as_str().into(), auto_delete, FieldTable::default()))
        .await
        .expect("declare");
    let ch3 = channel(&conn).await;
    let _c3 = consume(&ch3, &q, false).await;
    within("channel.close", ch3.close(200, "bye".into())).await.unwrap();
    eventually("auto-delete queue to go with the channel", || async {
        queue_exists(&conn, &q).await.is_none()
    })
    .await;
    teardown(conn).await;
}

#[tokio::test]
async fn deleting_the_queue_cancels_its_consumers() {
    let (conn, ch) = setup().await;
    let q = unique("server-cancel");
    named_queue(&ch, &q).await;
    fill(&ch, &q, 4).await;
    let ch1 = channel(&conn).await;
    let ch2 = channel(&conn).await;
    within("basic.qos", ch1.basic_qos(2, BasicQosOptions::default())).await.unwrap();
    within("basic.qos", ch2.basic_qos(2, BasicQosOptions::default())).await.unwrap();
    let mut c1 = consume(&ch1, &q, false).await;
    let mut c2 = consume(&ch2, &q, false).await;
    let d1 = take(&mut c1, 2).await;
    let _d2 = take(&mut c2, 2).await;
    delete_queue(&ch, &q).await;
    for c in [&mut c1, &mut c2] {
        let end = within("server-initiated basic.cancel", c.next()).await;
        assert!(end.is_none(), "consumer stream must end, got {end:?}");
    }
    // The channels stay open and acking a delivery of the deleted queue is fine.
    ack(&d1[0]).await;
    let tmp = temp_queue(&ch1).await;
    publish(&ch1, "", &tmp, b"alive").await;
    assert_eq!(get_eventually(&ch1, &tmp).await.delivery.data, b"alive");
    assert!(ch2.status().connected());
    teardown(conn).await;
}
