//! Commits and durable declares waiting for the disk stall no other
//! connection; answers keep their order; a channel closed behind a pending
//! commit is closed after its commit-ok, and a connection gone while waiting
//! leaves its change in place; refused writes give 541.

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 1)]
async fn a_commit_waiting_for_the_disk_stalls_no_other_connection() {
    let (server, _store) = slow_broker().await;
    let addr = server.local_addr;
    let q = unique("commit");
    let mut a = Raw::open(addr).await;
    a.open_channel(1).await;
    a.send(&durable_declare(1, &q)).await;
    assert!(matches!(a.expect_method_on(1).await, AMQPClass::Queue(queue::AMQPMethod::DeclareOk(_))));
    a.send(&tx_select(1)).await;
    assert!(matches!(a.expect_method_on(1).await, AMQPClass::Tx(tx::AMQPMethod::SelectOk(_))));
    a.send(&message(1, "", &q, persistent(), b"held", 4096)).await;
    a.send(&tx_commit(1)).await;
    served_meanwhile(addr).await;
    still_waiting(&mut a).await;
    assert!(matches!(a.expect_method_on(1).await, AMQPClass::Tx(tx::AMQPMethod::CommitOk(_))));
    // What was committed is there.
    let mut b = Raw::open(addr).await;
    b.open_channel(1).await;
    assert_eq!(b.get(1, &q).await.map(|(_, body)| body).as_deref(), Some(&b"held"[..]));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 1)]
async fn a_durable_declare_waiting_for_the_disk_stalls_no_other_connection() {
    let (server, store) = slow_broker().await;
    let addr = server.local_addr;
    let (q, ex) = (unique("declare"), unique("exchange"));
    let mut a = Raw::open(addr).await;
    a.open_channel(1).await;
    a.send(&durable_declare(1, &q)).await;
    served_meanwhile(addr).await;
    still_waiting(&mut a).await;
    assert!(matches!(a.expect_method_on(1).await, AMQPClass::Queue(queue::AMQPMethod::DeclareOk(_))));
    a.send(&exchange_declare(1, &ex)).await;
    served_meanwhile(addr).await;
    still_waiting(&mut a).await;
    assert!(matches!(a.expect_method_on(1).await, AMQPClass::Exchange(exchange::AMQPMethod::DeclareOk(_))));
    a.send(&bind(1, &q, &ex)).await;
    served_meanwhile(addr).await;
    still_waiting(&mut a).await;
    assert!(matches!(a.expect_method_on(1).await, AMQPClass::Queue(queue::AMQPMethod::BindOk(_))));
    // Each answer came once its record was written.
    let written = store.written.lock().clone();
    assert!(written.iter().any(|op| matches!(op, Op::PutQueue(r) if r.name == q)));
    assert!(written.iter().any(|op| matches!(op, Op::PutExchange(r) if r.name == ex)));
    assert!(written.iter().any(|op| matches!(op, Op::PutBinding(r) if r.destination == q)));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 1)]
async fn answers_keep_their_order_and_nothing_runs_ahead_of_an_owed_one() {
    let (server, _store) = slow_broker().await;
    let addr = server.local_addr;
    let (q1, q2) = (unique("order-1"), unique("order-2"));
    let mut a = Raw::open(addr).await;
    a.open_channel(1).await;
    a.open_channel(2).await;
    // All sent at once: each waits for the one before it to be answered.
    let mut burst = durable_declare(1, &q1);
    burst.extend(durable_declare(2, &q2));
    burst.extend(bind(1, &q1, "amq.direct"));
    burst.extend(tx_select(2));
    burst.extend(message(2, "", &q1, persistent(), b"one", 4096));
    burst.extend(tx_commit(2));
    // A get on the other channel, after the commit: it must see the message.
    burst.extend(common::basic_get(1, &q1));
    a.send(&burst).await;
    let answers = [
        (1, "queue.declare-ok"),
        (2, "queue.declare-ok"),
        (1, "queue.bind-ok"),
        (2, "tx.select-ok"),
        (2, "tx.commit-ok"),
        (1, "basic.get-ok"),
    ];
    for (ch, want) in answers {
        let got = match a.expect_frame().await {
            AMQPFrame::Method(id, m) => (id, describe(&m)),
            other => panic!("expected {want} on channel {ch}, got {other:?}"),
        };
        assert_eq!(got, (ch, want));
    }
    assert_eq!(a.expect_content(1).await.1, b"one");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 1)]
async fn a_channel_closed_behind_a_pending_commit_is_closed_after_commit_ok() {
    let (server, _store) = slow_broker().await;
    let addr = server.local_addr;
    let q = unique("close");
    let mut a = Raw::open(addr).await;
    a.open_channel(1).await;
    a.send(&durable_declare(1, &q)).await;
    a.expect_method_on(1).await;
    a.send(&tx_select(1)).await;
    a.expect_method_on(1).await;
    let mut burst = message(1, "", &q, persistent(), b"kept", 4096);
    burst.extend(tx_commit(1));
    let close = channel::Close { reply_code: 200, reply_text: "bye".into(), class_id: 0, method_id: 0 };
    burst.extend(method(1, AMQPClass::Channel(channel::AMQPMethod::Close(close))));
    a.send(&burst).await;
    assert_eq!(describe(&a.expect_method_on(1).await), "tx.commit-ok");
    assert_eq!(describe(&a.expect_method_on(1).await), "channel.close-ok");
    let mut b = Raw::open(addr).await;
    b.open_channel(1).await;
    assert_eq!(b.get(1, &q).await.map(|(_, body)| body).as_deref(), Some(&b"kept"[..]));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 1)]
async fn a_connection_gone_while_waiting_leaves_its_change_in_place() {
    let (server, _store) = slow_broker().await;
    let addr = server.local_addr;
    let q = unique("gone");
    let mut a = Raw::open(addr).await;
    a.open_channel(1).await;
    a.send(&durable_declare(1, &q)).await;
    drop(a);
    served_meanwhile(addr).await;
    // The declare was made (as it would have been with the worker blocked).
    let mut b = Raw::open(addr).await;
    b.open_channel(1).await;
    b.send(&queue_declare_with(1, &q, true, false, false, false)).await;
    assert_eq!(describe(&b.expect_method_on(1).await), "queue.declare-ok");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 1)]
async fn a_declare_the_disk_refuses_gives_541_and_leaves_nothing_behind() {
    let (server, store) = slow_broker().await;
    let addr = server.local_addr;
    let q = unique("failed");
    store.failing.store(true, Ordering::Relaxed);
    let mut a = Raw::open(addr).await;
    a.open_channel(1).await;
    a.send(&durable_declare(1, &q)).await;
    let (code, text, class, method_id) = a.expect_connection_close().await;
    assert_eq!((code, class, method_id), (541, 50, 10), "{text}");
    assert!(text.contains("could not be written to disk"), "{text}");
    // The queue the store did not take is gone again; the broker still
    // serves, though it writes nothing more until a restart.
    store.failing.store(false, Ordering::Relaxed);
    let mut b = Raw::open(addr).await;
    b.open_channel(1).await;
    b.send(&queue_declare_with(1, &q, true, false, false, false)).await;
    let (code, _, _, _) = b.expect_channel_close(1).await;
    assert_eq!(code, 404);
    b.open_channel(2).await;
    b.send(&durable_declare(2, &q)).await;
    let (code, text, _, _) = b.expect_connection_close().await;
    assert_eq!(code, 541, "a store that failed once takes nothing more: {text}");
    serving_with_a_failed_store(&server).await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 1)]
async fn a_commit_the_disk_refuses_gives_541() {
    let (server, store) = slow_broker().await;
    let addr = server.local_addr;
    let q = unique("failed");
    let mut b = Raw::open(addr).await;
    b.open_channel(2).await;
    b.send(&durable_declare(2, &q)).await;
    b.expect_method_on(2).await;
    b.send(&tx_select(2)).await;
    b.expect_method_on(2).await;
    store.failing.store(true, Ordering::Relaxed);
    b.send(&message(2, "", &q, persistent(), b"lost", 4096)).await;
    b.send(&tx_commit(2)).await;
    let (code, text, class, method_id) = b.expect_connection_close().await;
    assert_eq!((code, class, method_id), (541, 90, 20), "{text}");
    assert!(text.contains("transaction could not be written to disk"), "{text}");
    serving_with_a_failed_store(&server).await;
    server.stop().await;
}
