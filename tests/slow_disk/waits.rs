//! Queues still being written, gets and purges of what is on disk, policies
//! and dead letters waiting for the disk.

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 1)]
async fn a_publish_into_a_queue_still_being_declared_is_confirmed_after_the_queue_is_on_disk() {
    let (server, store) = slow_broker().await;
    let addr = server.local_addr;
    let q = unique("confirm");
    let mut a = Raw::open(addr).await;
    a.open_channel(1).await;
    a.send(&durable_declare(1, &q)).await;
    // Another connection publishes into it before its declare-ok went out.
    let mut b = Raw::open(addr).await;
    b.open_channel(1).await;
    let select = confirm::Select { nowait: false };
    b.send(&method(1, AMQPClass::Confirm(confirm::AMQPMethod::Select(select)))).await;
    b.expect_method_on(1).await;
    b.send(&message(1, "", &q, persistent(), b"early", 4096)).await;
    assert!(matches!(b.expect_method_on(1).await, AMQPClass::Basic(basic::AMQPMethod::Ack(_))));
    // Acked: the queue's record was written no later than the message's place.
    let written = store.written.lock().clone();
    let queue_at = written.iter().position(|op| matches!(op, Op::PutQueue(r) if r.name == q));
    let place_at = written.iter().position(|op| {
        matches!(op, Op::Place { .. } | Op::PlaceWith { .. } | Op::Page { .. } | Op::PutMessage { .. })
    });
    assert!(queue_at.is_some() && queue_at < place_at, "queue at {queue_at:?}, message at {place_at:?}");
    assert_eq!(describe(&a.expect_method_on(1).await), "queue.declare-ok");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 1)]
async fn a_get_of_messages_still_on_disk_waits_for_them_without_stalling_others() {
    let store = Arc::new(SlowStore::default());
    let server = start(store.clone(), |c| c.storage.queue_head_messages = 4).await;
    let addr = server.local_addr;
    let q = unique("paged");
    let mut a = Raw::open(addr).await;
    a.open_channel(1).await;
    a.send(&durable_declare(1, &q)).await;
    a.expect_method_on(1).await;
    const N: usize = 20;
    for i in 0..N {
        a.send(&message(1, "", &q, persistent(), format!("m{i}").as_bytes(), 4096)).await;
    }
    // Every read of paged-out messages now takes its time.
    store.read_ms.store(SLOW.as_millis() as u64, Ordering::Relaxed);
    let mut got = Vec::new();
    let mut overlapped = 0;
    while got.len() < N {
        a.send(&common::basic_get(1, &q)).await;
        match a.read(Duration::from_millis(100)).await {
            Read::Silent => {
                // Waiting for the disk: the others are served meanwhile.
                served_meanwhile(addr).await;
                let mut answer = a.read(Duration::from_millis(50)).await;
                if matches!(answer, Read::Silent) {
                    // ...and were done before the disk was.
                    overlapped += 1;
                    answer = Read::Frame(AMQPFrame::Method(1, a.expect_method_on(1).await));
                }
                match answer {
                    Read::Frame(AMQPFrame::Method(1, AMQPClass::Basic(basic::AMQPMethod::GetOk(_)))) => {}
                    other => panic!("expected get-ok for a message on disk, got {other:?}"),
                }
            }
            Read::Frame(AMQPFrame::Method(1, AMQPClass::Basic(basic::AMQPMethod::GetOk(_)))) => {}
            other => panic!("expected get-ok, got {other:?}"),
        }
        got.push(a.expect_content(1).await.1);
    }
    let want: Vec<Vec<u8>> = (0..N).map(|i| format!("m{i}").into_bytes()).collect();
    assert_eq!(got, want, "every message, in order");
    assert!(overlapped > 0, "no other connection was served while a get waited for the disk");
    assert!(a.get(1, &q).await.is_none());
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 1)]
async fn a_purge_that_looks_at_its_index_answers_once_the_drop_is_on_disk() {
    // A priority queue's paged-out lanes share its index: its purge looks
    // at the index first (slowly here), and purge-ok must wait for that.
    let store = Arc::new(SlowStore::default());
    let server = start(store.clone(), |c| c.storage.queue_head_messages = 4).await;
    let addr = server.local_addr;
    let q = unique("prio");
    let mut a = Raw::open(addr).await;
    a.open_channel(1).await;
    let mut arguments = FieldTable::default();
    arguments.insert("x-max-priority".into(), amq_protocol::types::AMQPValue::ShortShortUInt(5));
    let declare = queue::Declare { queue: q.as_str().into(), durable: true, arguments, ..Default::default() };
    a.send(&method(1, AMQPClass::Queue(queue::AMQPMethod::Declare(declare)))).await;
    assert_eq!(describe(&a.expect_method_on(1).await), "queue.declare-ok");
    a.send(&tx_select(1)).await;
    a.expect_method_on(1).await;
    let mut burst = Vec::new();
    for i in 0..64u8 {
        burst.extend(message(1, "", &q, persistent().with_priority(i % 6), b"deep", 4096));
    }
    burst.extend(tx_commit(1));
    a.send(&burst).await;
    assert_eq!(describe(&a.expect_method_on(1).await), "tx.commit-ok");
    store.scan_ms.store(SLOW.as_millis() as u64, Ordering::Relaxed);
    let purge = queue::Purge { queue: q.as_str().into(), nowait: false };
    a.send(&method(1, AMQPClass::Queue(queue::AMQPMethod::Purge(purge)))).await;
    assert_eq!(describe(&a.expect_method_on(1).await), "queue.purge-ok");
    let dropped = store.written.lock().iter().any(|op| matches!(op, Op::DropPlaces { .. }));
    assert!(dropped, "purge-ok went out before the paged-out places were dropped on disk");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 1)]
async fn a_policy_waiting_for_the_disk_holds_up_no_declare() {
    use warren::broker::policy::{ApplyTo, Kind, Policy};
    let (server, _store) = slow_broker().await;
    let addr = server.local_addr;
    let vhost = server.broker.vhost("/").unwrap();
    let definition = serde_json::json!({"max-length": 10});
    let policy = Policy::parse("slow", "^slow-", ApplyTo::Queues, 0, &definition, Kind::User).unwrap();
    let setting = {
        let vhost = vhost.clone();
        std::thread::spawn(move || vhost.set_policy(policy, Kind::User).map(|_| ()))
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    // A declare takes the topology lock: the policy's disk wait must not hold it.
    let mut b = Raw::open(addr).await;
    b.open_channel(1).await;
    b.send(&queue_declare_with(1, &unique("slow-"), false, false, false, false)).await;
    assert_eq!(describe(&b.expect_method_on(1).await), "queue.declare-ok");
    assert!(!setting.is_finished(), "the policy's write was not slow: the test proves nothing");
    setting.join().unwrap().unwrap();
    assert!(vhost.policy("slow", Kind::User).is_some());
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 1)]
async fn a_dead_letter_is_written_before_its_source_is_removed() {
    // At-least-once dead-lettering: a crash between the two writes must
    // leave the message in both queues, never in neither.
    use amq_protocol::types::AMQPValue;
    let store = Arc::new(SlowStore::default());
    let server = start(store.clone(), |_| {}).await;
    let addr = server.local_addr;
    let (src, dlq) = (unique("expiring"), unique("dead"));
    let mut a = Raw::open(addr).await;
    a.open_channel(1).await;
    a.send(&durable_declare(1, &dlq)).await;
    assert_eq!(describe(&a.expect_method_on(1).await), "queue.declare-ok");
    let mut arguments = FieldTable::default();
    arguments.insert("x-message-ttl".into(), AMQPValue::LongInt(1));
    arguments.insert("x-dead-letter-exchange".into(), AMQPValue::LongString("".into()));
    arguments.insert("x-dead-letter-routing-key".into(), AMQPValue::LongString(dlq.as_str().into()));
    let declare =
        queue::Declare { queue: src.as_str().into(), durable: true, arguments, ..Default::default() };
    a.send(&method(1, AMQPClass::Queue(queue::AMQPMethod::Declare(declare)))).await;
    assert_eq!(describe(&a.expect_method_on(1).await), "queue.declare-ok");
    a.send(&tx_select(1)).await;
    a.expect_method_on(1).await;
    let mut publish = message(1, "", &src, persistent(), b"doomed", 4096);
    publish.extend(tx_commit(1));
    a.send(&publish).await;
    assert_eq!(describe(&a.expect_method_on(1).await), "tx.commit-ok");
    let got = a.get_eventually(1, &dlq).await.map(|(_, body)| body);
    assert_eq!(got.as_deref(), Some(&b"doomed"[..]));
    let vhost = server.broker.vhost("/").unwrap();
    let id = |name: &str| vhost.queue(name).and_then(|q| q.store_id()).unwrap();
    let (src_id, dlq_id) = (id(&src), id(&dlq));
    let mut order = None;
    for _ in 0..100 {
        let (placed, removed) = {
            let written = store.written.lock();
            (
                written.iter().position(
                    |op| matches!(op, Op::Place { queue, .. } | Op::PlaceWith { queue, .. } if *queue == dlq_id),
                ),
                written.iter().position(|op| matches!(op, Op::Remove { queue, .. } if *queue == src_id)),
            )
        };
        if let (Some(p), Some(r)) = (placed, removed) {
            order = Some((p, r));
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (placed, removed) = order.expect("both the dead letter's place and the source's removal are written");
    assert!(
        placed < removed,
        "the source's removal ({removed}) was written before the dead letter ({placed})"
    );
    server.stop().await;
}
