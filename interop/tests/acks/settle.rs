//! Acks, nacks and rejects: single, multiple, tag 0, unknown tags, requeue
//! position, and unacked messages of closed channels, connections and sockets.

use super::*;

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

/// By a channel's close-ok every message it held is back in its queue
/// (RabbitMQ's channel tells its queues before answering): a purge sent
/// after it, on another channel of the same connection, takes them all.
#[tokio::test]
async fn a_closed_channels_messages_are_back_by_its_close_ok() {
    const N: usize = 300;
    let (conn, ch) = setup().await;
    let q = temp_queue(&ch).await;
    fill(&ch, &q, N).await;
    let ch2 = channel(&conn).await;
    within("basic.qos", ch2.basic_qos(100, BasicQosOptions::default())).await.unwrap();
    let mut consumer = consume(&ch2, &q, false).await;
    take(&mut consumer, 10).await;
    within("channel.close", ch2.close(200, "bye".into())).await.expect("channel.close");
    let purged = within("queue.purge", ch.queue_purge(q.as_str().into(), QueuePurgeOptions::default())).await;
    assert_eq!(purged.expect("queue.purge"), N as u32);
    teardown(conn).await;
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
