//! The queue's own unit tests (the store's link and paging have theirs).

use super::*;
use crate::broker::consumer::{Outbound, WINDOW_BYTES};
use bytes::Bytes;

fn msg(body: &'static [u8]) -> Arc<Message> {
    body_msg(Bytes::from_static(body))
}

fn body_msg(body: Bytes) -> Arc<Message> {
    Arc::new(Message::new(Bytes::new(), Bytes::from_static(b"q"), Bytes::new(), Default::default(), body))
}

fn queue() -> Arc<Queue> {
    Arc::new(Queue::new("q".into(), "/".into(), false, None, false, FieldTable::default()))
}

/// A queue with one no-ack consumer, and what the consumer is handed.
fn no_ack_consumer() -> (Arc<Queue>, Arc<Consumer>, tokio::sync::mpsc::UnboundedReceiver<Outbound>) {
    let q = queue();
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let spec = ConsumerSpec { tag: "c".into(), no_ack: true, ..Default::default() };
    let c = Arc::new(Consumer::new(spec, Default::default(), tx));
    q.add_consumer(c.clone()).unwrap();
    (q, c, rx)
}

#[test]
fn requeue_restores_order_and_marks_redelivered() {
    let q = queue();
    for b in [&b"1"[..], b"2", b"3"] {
        q.publish(msg(b));
    }
    let (first, left) = q.get(false).unwrap();
    assert_eq!((first.seq, left), (1, 2));
    q.requeue(&[first.seq]);
    let (again, _) = q.get(true).unwrap();
    assert_eq!((again.seq, again.redelivered), (1, true));
    assert_eq!(q.message_count(), 2);
}

#[test]
fn prefetch_limits_and_round_robin() {
    let q = queue();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let credit = Arc::new(crate::broker::ChannelCredit::default());
    let spec = |tag: &str| ConsumerSpec {
        tag: tag.into(),
        channel: 1,
        connection: 1,
        prefetch: 1,
        ..Default::default()
    };
    let a = Arc::new(Consumer::new(spec("a"), credit.clone(), tx.clone()));
    let b = Arc::new(Consumer::new(spec("b"), credit, tx));
    q.add_consumer(a.clone()).unwrap();
    q.add_consumer(b.clone()).unwrap();
    for _ in 0..3 {
        q.publish(msg(b"x"));
    }
    let mut got = Vec::new();
    while let Ok(Outbound::Deliver(d)) = rx.try_recv() {
        got.push((d.consumer.tag.clone(), d.entry.seq));
    }
    assert_eq!(got, vec![("a".to_string(), 1), ("b".to_string(), 2)]);
    assert_eq!(q.message_count(), 1);
    // a was passed over, so writing its delivery asks for more; with its
    // one unacked message it still gets nothing until it acks.
    assert!(a.written(1));
    q.kick();
    assert!(rx.try_recv().is_err());
    q.ack(&[1]);
    assert!(a.settled(1));
    q.kick();
    let Ok(Outbound::Deliver(d)) = rx.try_recv() else { panic!("no delivery") };
    assert_eq!((d.consumer.tag.as_str(), d.entry.seq), ("a", 3));
}

#[tokio::test]
async fn congestion_needs_consumers_and_lifts_when_drained() {
    let q = queue();
    for _ in 0..=CONGESTED_ABOVE {
        q.publish(msg(b"x"));
    }
    assert!(!q.is_congested(), "a queue without consumers is a backlog, not congestion");
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let spec = ConsumerSpec { tag: "slow".into(), prefetch: 1, ..Default::default() };
    let slow = Arc::new(Consumer::new(spec, Default::default(), tx));
    q.add_consumer(slow.clone()).unwrap();
    q.publish(msg(b"x"));
    assert!(q.is_congested());
    let waiter = {
        let q = q.clone();
        tokio::spawn(async move { q.drained().await })
    };
    while q.message_count() as usize >= RELIEVED_BELOW {
        q.get(true);
    }
    tokio::time::timeout(std::time::Duration::from_secs(5), waiter).await.unwrap().unwrap();
    assert!(!q.is_congested());
    drop(rx.try_recv());
}

/// A queue whose one consumer holds its prefetch of one (or, no-ack,
/// its window, its deliveries never written) with more than
/// `CONGESTED_ABOVE` ready: congested.
fn congested_queue(no_ack: bool) -> (Arc<Queue>, tokio::sync::mpsc::UnboundedReceiver<Outbound>) {
    let q = queue();
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let spec = ConsumerSpec { tag: "held".into(), prefetch: 1, no_ack, ..Default::default() };
    q.add_consumer(Arc::new(Consumer::new(spec, Default::default(), tx))).unwrap();
    // Empty bodies: the backlog is judged by its messages.
    while !q.is_congested() {
        q.publish(msg(b""));
    }
    (q, rx)
}

const PAUSE: std::time::Duration = std::time::Duration::from_millis(2);

/// Long enough after the last judgement for `pause_expired(PAUSE)` to judge again.
fn after_pauses() {
    std::thread::sleep(PAUSE * 10);
}

#[test]
fn pauses_stop_when_the_consumers_are_held_by_their_own_prefetch() {
    let (q, _rx) = congested_queue(false);
    // Judged too soon after congestion began: nothing changes.
    q.pause_expired(std::time::Duration::from_secs(3600));
    assert!(q.is_congested());
    // A backlog that shrank by a thirty-second or more: pausing helps.
    for _ in 0..=CONGESTED_ABOVE / 32 {
        q.get(true);
    }
    after_pauses();
    q.pause_expired(PAUSE);
    assert!(q.is_congested());
    // Then no progress, its consumer held by its prefetch: no more pauses,
    // however deep the queue gets (as with RabbitMQ).
    after_pauses();
    q.pause_expired(PAUSE);
    assert!(!q.is_congested());
    for _ in 0..CONGESTED_ABOVE {
        q.publish(msg(b""));
    }
    assert!(!q.is_congested());
    // A consumer that comes is judged afresh.
    let (tx, _rx2) = tokio::sync::mpsc::unbounded_channel();
    let spec = ConsumerSpec { tag: "new".into(), prefetch: 1, ..Default::default() };
    q.add_consumer(Arc::new(Consumer::new(spec, Default::default(), tx))).unwrap();
    q.publish(msg(b""));
    assert!(q.is_congested());
    after_pauses();
    q.pause_expired(PAUSE);
    assert!(!q.is_congested());
    // Once it is below the lower marks, pauses may begin again.
    while q.message_count() as usize >= RELIEVED_BELOW {
        q.get(true);
    }
    while !q.is_congested() {
        q.publish(msg(b""));
        assert!(q.message_count() as usize <= CONGESTED_ABOVE + 1, "not congested again");
    }
}

#[test]
fn pauses_go_on_while_a_consumer_waits_on_the_broker_side_of_its_socket() {
    let (q, rx) = congested_queue(true);
    assert!(q.state.lock().consumers[0].window_full());
    after_pauses();
    q.pause_expired(PAUSE);
    after_pauses();
    q.pause_expired(PAUSE);
    assert!(q.is_congested(), "a full window is the broker's backlog: pausing helps");
    drop(rx);
}

#[test]
fn large_bodies_congest_by_bytes_and_a_consumer_takes_a_few_mib_at_a_time() {
    let (q, c, mut rx) = no_ack_consumer();
    let big = Bytes::from(vec![7u8; 1 << 20]);
    let mut sent = 0;
    while !q.is_congested() {
        q.publish(body_msg(big.clone()));
        sent += 1;
        assert!(sent < 200, "1 MiB bodies never congested the queue");
    }
    // The consumer holds its window's worth (one body past it at most);
    // the rest waits in the queue, which pauses its publishers.
    let mut window = Vec::new();
    while let Ok(o) = rx.try_recv() {
        window.extend(o.into_deliveries());
    }
    let held = window.len() as u64 * (1 << 20);
    assert!(!window.is_empty() && held <= WINDOW_BYTES + (1 << 20), "{held} bytes in flight");
    assert!(q.message_count() as usize * (1 << 20) > CONGESTED_BYTES);
    assert_eq!(sent, window.len() + q.message_count() as usize);
    // Writing them lets the next ones through.
    let n = window.len() as u32;
    c.written_n(n, held);
    q.kick();
    assert!(!handed(&mut rx).1.is_empty());
    // Draining below the lower mark lifts the congestion.
    while q.message_count() as usize * (1 << 20) >= RELIEVED_BYTES {
        q.get(true);
    }
    assert!(!q.is_congested());
}

#[test]
fn a_ttl_of_zero_reaches_a_waiting_consumer_behind_an_expired_head() {
    let mut args = FieldTable::default();
    args.insert("x-message-ttl".into(), amq_protocol::types::AMQPValue::LongInt(0));
    let q = Arc::new(Queue::new("q".into(), "/".into(), false, None, false, args));
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let spec = ConsumerSpec { tag: "c".into(), no_ack: true, ..Default::default() };
    q.add_consumer(Arc::new(Consumer::new(spec, Default::default(), tx))).unwrap();
    // A message past its expiry at the head, as a timer not yet fired leaves it.
    {
        let mut st = q.state.lock();
        let seq = st.next_seq;
        st.next_seq += 1;
        let stale = Entry {
            seq,
            message: msg(b"stale"),
            expires: 1,
            returns: 0,
            priority: 0,
            redelivered: false,
            stored: false,
            paged: false,
        };
        st.ready.push_back(stale);
    }
    q.publish(msg(b"fresh"));
    let mut got = Vec::new();
    while let Ok(Outbound::Deliver(d)) = rx.try_recv() {
        got.push(d.entry.message.body_bytes());
    }
    // The stale one expires; the one arriving behind it is not taken along.
    assert_eq!(got, [Bytes::from_static(b"fresh")]);
    assert_eq!(q.message_count(), 0);
}

/// A no-ack consumer whose window is full gets its next deliveries as a
/// run once half the window is written, not one per write; one held back by
/// its window of bytes with few deliveries in flight is asked at each write
/// with room, and with many (3 KiB bodies) at the mark.
#[test]
fn a_full_window_is_refilled_in_runs() {
    use crate::broker::consumer::{WINDOW, WINDOW_REFILL};
    let (q, c, mut rx) = no_ack_consumer();
    let total = WINDOW as usize * 2;
    for _ in 0..total {
        q.publish(msg(b"x"));
    }
    let take = |rx: &mut tokio::sync::mpsc::UnboundedReceiver<Outbound>| {
        let mut n = 0;
        while let Ok(o) = rx.try_recv() {
            n += match o {
                Outbound::Deliver(_) => 1,
                Outbound::Deliveries(ds) => ds.len(),
                _ => 0,
            };
        }
        n
    };
    assert_eq!(take(&mut rx), WINDOW as usize);
    // Writes down to the refill mark ask for nothing.
    for _ in 0..WINDOW - WINDOW_REFILL - 1 {
        assert!(!c.written(1));
    }
    assert!(c.written(1), "half the window written asks for more");
    assert!(!c.written(1), "asked once");
    q.kick();
    assert_eq!(take(&mut rx), (WINDOW - WINDOW_REFILL) as usize + 1, "the window is filled again at once");
    assert_eq!(q.message_count() as usize, total - WINDOW as usize - (WINDOW - WINDOW_REFILL) as usize - 1);

    // Bodies that fill the window of bytes: each write with room asks again.
    let (q, c, mut rx) = no_ack_consumer();
    let big = Bytes::from(vec![1u8; (WINDOW_BYTES / 4) as usize]);
    for _ in 0..8 {
        q.publish(body_msg(big.clone()));
    }
    assert_eq!(take(&mut rx), 4);
    assert!(c.written(big.len()), "room in the window of bytes asks for more");
    q.kick();
    assert_eq!(take(&mut rx), 1);

    // Bodies of 3 KiB fill the window of bytes with more than the refill
    // mark in flight: those wait for the mark like a full window.
    let (q, c, mut rx) = no_ack_consumer();
    let body = Bytes::from(vec![2u8; 3 << 10]);
    for _ in 0..WINDOW {
        q.publish(body_msg(body.clone()));
    }
    let held = take(&mut rx) as u32;
    assert_eq!(held as u64, WINDOW_BYTES.div_ceil(body.len() as u64));
    assert!(held > WINDOW_REFILL);
    for _ in 0..held - WINDOW_REFILL - 1 {
        assert!(!c.written(body.len()));
    }
    assert!(c.written(body.len()));
}

/// What a consumer's connection was handed, one delivery or a run at a
/// time: the runs' lengths and the sequence numbers in order.
fn handed(rx: &mut tokio::sync::mpsc::UnboundedReceiver<Outbound>) -> (Vec<usize>, Vec<u64>) {
    let (mut runs, mut seqs) = (Vec::new(), Vec::new());
    while let Ok(o) = rx.try_recv() {
        assert!(matches!(o, Outbound::Deliver(_) | Outbound::Deliveries(_)), "{o:?}");
        let ds = o.into_deliveries();
        runs.push(ds.len());
        seqs.extend(ds.iter().map(|d| d.entry.seq));
    }
    (runs, seqs)
}

#[test]
fn deliveries_chosen_one_after_another_for_a_consumer_reach_it_as_one_run() {
    use crate::broker::consumer::WINDOW;
    let q = queue();
    for _ in 0..100 {
        q.publish(msg(b"x"));
    }
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let spec = ConsumerSpec { tag: "c".into(), no_ack: true, ..Default::default() };
    let c = Arc::new(Consumer::new(spec, Default::default(), tx));
    q.add_consumer(c.clone()).unwrap();
    assert_eq!(handed(&mut rx), (vec![100], (1..=100).collect()));
    // Their credit is taken: the window holds the run.
    assert_eq!(c.room(), WINDOW - 100);
    // One at a time as they come.
    q.publish(msg(b"y"));
    assert_eq!(handed(&mut rx), (vec![1], vec![101]));
}

#[test]
fn a_run_for_a_connection_gone_goes_back_in_order_and_the_next_consumer_takes_it() {
    let q = queue();
    let consumer = |tag: &str| {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let spec = ConsumerSpec { tag: tag.into(), no_ack: true, ..Default::default() };
        (Arc::new(Consumer::new(spec, Default::default(), tx)), rx)
    };
    let ((gone, rx), (live, mut live_rx)) = (consumer("gone"), consumer("live"));
    drop(rx);
    // Ten messages ready and both registered before the queue chooses:
    // the first goes to `gone`, the second to `live`, when the one handed
    // to `gone` comes back.
    for _ in 0..10 {
        q.publish(msg(b"x"));
    }
    q.state.lock().consumers.extend([gone.clone(), live.clone()]);
    q.kick();
    assert_eq!(handed(&mut live_rx), (vec![10], (1..=10).collect()));
    assert_eq!(q.consumer_count(), 1);
    assert_eq!(gone.room(), crate::broker::consumer::WINDOW, "its credit given back");
    // With only the consumer whose connection is gone, everything stays.
    let q2 = queue();
    let (gone2, rx2) = consumer("gone2");
    drop(rx2);
    for _ in 0..10 {
        q2.publish(msg(b"x"));
    }
    q2.add_consumer(gone2).unwrap();
    assert_eq!((q2.message_count(), q2.consumer_count()), (10, 0));
    let seqs: Vec<_> = (0..10).map(|_| q2.get(true).map(|(e, _)| (e.seq, e.redelivered))).collect();
    assert_eq!(seqs, (1..=10).map(|s| Some((s, false))).collect::<Vec<_>>());
}

#[test]
fn a_last_run_that_comes_back_goes_to_the_next_consumer_at_once() {
    let q = queue();
    let consumer = |tag: &str, no_ack: bool| {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let spec = ConsumerSpec { tag: tag.into(), no_ack, ..Default::default() };
        (Arc::new(Consumer::new(spec, Default::default(), tx)), rx)
    };
    let ((live, mut live_rx), (gone, rx)) = (consumer("live", true), consumer("gone", true));
    drop(rx);
    for _ in 0..2 {
        q.publish(msg(b"x"));
    }
    // Round-robin: 1 to `live`, 2 to `gone`, the last run, which comes back.
    q.state.lock().consumers.extend([live, gone]);
    q.kick();
    assert_eq!(handed(&mut live_rx), (vec![1, 1], vec![1, 2]));
    assert_eq!((q.message_count(), q.consumer_count()), (0, 1));
}

/// The credit side of a run that comes back (prefetch, the channel's
/// limit, the queue's unacked entries); in memory only: the store's side
/// (a manual-ack delivery's mark) is as for one delivery handed back.
#[test]
fn a_manual_ack_run_that_comes_back_gives_back_its_prefetch_and_channel_credit() {
    let q = queue();
    let credit = Arc::new(crate::broker::ChannelCredit::default());
    credit.set_limit(3);
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    drop(rx);
    let spec = ConsumerSpec { tag: "gone".into(), prefetch: 5, ..Default::default() };
    let gone = Arc::new(Consumer::new(spec, credit.clone(), tx));
    for _ in 0..4 {
        q.publish(msg(b"x"));
    }
    q.add_consumer(gone.clone()).unwrap();
    // Nothing unacked anywhere: the channel's limit of 3 is whole again.
    assert_eq!(gone.room(), 3);
    assert_eq!((q.message_count(), q.consumer_count()), (4, 0));
    assert_eq!(q.state.lock().unacked.len(), 0);
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let spec = ConsumerSpec { tag: "live".into(), prefetch: 5, ..Default::default() };
    q.add_consumer(Arc::new(Consumer::new(spec, credit, tx))).unwrap();
    assert_eq!(handed(&mut rx), (vec![3], vec![1, 2, 3]));
}
