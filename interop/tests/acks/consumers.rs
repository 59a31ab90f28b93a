//! Competing, exclusive and auto-deleting consumers, and consumers of a
//! deleted queue.

use super::*;

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
