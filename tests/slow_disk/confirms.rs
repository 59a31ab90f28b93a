//! Confirms and the disk: messages consumed, delivered or acked as they are
//! published, and which of them are written.

use super::*;

/// A persistent message a durable queue hands at once to a no-ack consumer
/// is never written: its confirm does not wait for the (slow) disk, and
/// nothing of it reaches the store. One nobody takes is written first.
#[tokio::test(flavor = "multi_thread", worker_threads = 1)]
async fn a_message_consumed_as_it_is_published_is_confirmed_without_the_disk() {
    let (server, store) = slow_broker().await;
    let addr = server.local_addr;
    let (taken, kept) = (unique("taken"), unique("kept"));
    let mut a = Raw::open(addr).await;
    a.open_channel(1).await;
    a.open_channel(2).await;
    for q in [&taken, &kept] {
        a.send(&durable_declare(1, q)).await;
        assert_eq!(describe(&a.expect_method_on(1).await), "queue.declare-ok");
    }
    consumer_and_confirms(&mut a, &taken, true).await;
    let syncs = store.syncs.load(Ordering::Relaxed);
    a.send(&message(1, "", &taken, persistent(), b"taken", 4096)).await;
    let (mut acked, mut delivered) = (false, false);
    while !(acked && delivered) {
        match a.expect_frame().await {
            AMQPFrame::Method(1, AMQPClass::Basic(basic::AMQPMethod::Ack(ack))) => {
                assert_eq!(ack.delivery_tag, 1);
                // Confirmed with no sync since the publish.
                assert_eq!(store.syncs.load(Ordering::Relaxed), syncs, "the confirm waited for the disk");
                acked = true;
            }
            AMQPFrame::Method(2, AMQPClass::Basic(basic::AMQPMethod::Deliver(_))) => {
                assert_eq!(a.expect_content(2).await.1, b"taken");
                delivered = true;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    a.send(&message(1, "", &kept, persistent(), b"kept", 4096)).await;
    assert!(matches!(a.expect_method_on(1).await, AMQPClass::Basic(basic::AMQPMethod::Ack(_))));
    assert!(store.syncs.load(Ordering::Relaxed) > syncs, "a message nobody took was confirmed before a sync");
    let messages = store.written.lock().iter().filter(|op| message_write(op).is_some()).count();
    assert_eq!(messages, 1, "only the message nobody took is written");
    server.stop().await;
}

/// A consumer on `queue` (channel 2, tag "c"), and confirms on channel 1.
async fn consumer_and_confirms(a: &mut Raw, queue: &str, no_ack: bool) {
    let consume = basic::Consume {
        queue: queue.into(),
        consumer_tag: "c".into(),
        no_local: false,
        no_ack,
        exclusive: false,
        nowait: false,
        arguments: FieldTable::default(),
    };
    a.send(&method(2, AMQPClass::Basic(basic::AMQPMethod::Consume(consume)))).await;
    a.expect_method_on(2).await;
    let select = confirm::Select { nowait: false };
    a.send(&method(1, AMQPClass::Confirm(confirm::AMQPMethod::Select(select)))).await;
    a.expect_method_on(1).await;
}

/// The message a write puts on disk first: kept apart (shared), or in
/// its place (held by one queue; not a rewrite of the place's flags).
fn message_write(op: &Op) -> Option<&warren::store::SharedRecord> {
    match op {
        Op::PutMessage { record, .. } | Op::PlaceWith { record, first: true, .. } => Some(record),
        _ => None,
    }
}

fn written_bodies(store: &SlowStore, body: &[u8]) -> usize {
    let written = store.written.lock();
    written.iter().filter_map(message_write).filter(|record| record.parts().body == body).count()
}

/// A message handed at once to a manual-ack consumer may wait for its ack
/// before it is written (`store/writer/hold.rs`), but its confirm does not
/// come before it is on disk while the ack does not come.
#[tokio::test(flavor = "multi_thread", worker_threads = 1)]
async fn a_message_delivered_as_it_is_written_is_confirmed_once_on_disk_if_not_acked() {
    let (server, store) = slow_broker().await;
    store.sync_ms.store(20, Ordering::Relaxed);
    let mut a = Raw::open(server.local_addr).await;
    a.open_channel(1).await;
    a.open_channel(2).await;
    for round in 0..3 {
        // A queue each: one whose write was due unacked is held no more.
        let q = unique("unacked");
        a.send(&durable_declare(1, &q)).await;
        assert_eq!(describe(&a.expect_method_on(1).await), "queue.declare-ok");
        consumer_and_confirms(&mut a, &q, false).await;
        let body = format!("unacked {round}");
        a.send(&message(1, "", &q, persistent(), body.as_bytes(), 4096)).await;
        let (mut confirmed, mut delivered) = (false, false);
        while !(confirmed && delivered) {
            match a.expect_frame().await {
                AMQPFrame::Method(1, AMQPClass::Basic(basic::AMQPMethod::Ack(_))) => {
                    assert_eq!(written_bodies(&store, body.as_bytes()), 1, "confirmed before it was written");
                    confirmed = true;
                }
                AMQPFrame::Method(2, AMQPClass::Basic(basic::AMQPMethod::Deliver(_))) => {
                    assert_eq!(a.expect_content(2).await.1, body.as_bytes());
                    delivered = true;
                }
                other => panic!("unexpected {other:?}"),
            }
        }
        cancel_consumer(&mut a).await;
    }
    server.stop().await;
}

async fn cancel_consumer(a: &mut Raw) {
    let cancel = basic::Cancel { consumer_tag: "c".into(), nowait: false };
    a.send(&method(2, AMQPClass::Basic(basic::AMQPMethod::Cancel(cancel)))).await;
    assert_eq!(describe(&a.expect_method_on(2).await), "basic.cancel-ok");
}

/// The same message acked as it is delivered is confirmed without the
/// disk: its write met its deletion and neither was written. (The hold
/// lasts about a sync, 2 ms at most: a round may miss it on a loaded
/// machine, so each round takes a queue of its own and one must hit.)
#[tokio::test(flavor = "multi_thread", worker_threads = 1)]
async fn a_message_acked_as_it_is_delivered_is_confirmed_without_the_disk() {
    let (server, store) = slow_broker().await;
    store.sync_ms.store(20, Ordering::Relaxed);
    let mut a = Raw::open(server.local_addr).await;
    a.open_channel(1).await;
    a.open_channel(2).await;
    let mut hits = 0;
    for round in 0..10 {
        let q = unique("acked");
        a.send(&durable_declare(1, &q)).await;
        assert_eq!(describe(&a.expect_method_on(1).await), "queue.declare-ok");
        consumer_and_confirms(&mut a, &q, false).await;
        let body = format!("acked {round}");
        let syncs = store.syncs.load(Ordering::Relaxed);
        a.send(&message(1, "", &q, persistent(), body.as_bytes(), 4096)).await;
        let (mut confirmed, mut delivered) = (false, false);
        while !(confirmed && delivered) {
            match a.expect_frame().await {
                AMQPFrame::Method(1, AMQPClass::Basic(basic::AMQPMethod::Ack(_))) => confirmed = true,
                AMQPFrame::Method(2, AMQPClass::Basic(basic::AMQPMethod::Deliver(d))) => {
                    assert_eq!(a.expect_content(2).await.1, body.as_bytes());
                    let ack = basic::Ack { delivery_tag: d.delivery_tag, multiple: false };
                    a.send(&method(2, AMQPClass::Basic(basic::AMQPMethod::Ack(ack)))).await;
                    delivered = true;
                }
                other => panic!("unexpected {other:?}"),
            }
        }
        let unwritten = written_bodies(&store, body.as_bytes()) == 0;
        hits += usize::from(unwritten && store.syncs.load(Ordering::Relaxed) == syncs);
        // The next round's consumer is on another queue.
        cancel_consumer(&mut a).await;
        if hits > 0 {
            break;
        }
    }
    assert!(hits > 0, "every acked message was written, its confirm waiting for a sync");
    server.stop().await;
}
