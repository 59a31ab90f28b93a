//! A consumer killed mid-stream, basic.recover and basic.get.

use super::*;

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
