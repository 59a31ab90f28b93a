//! Queue microbenchmarks: a message in and settled again, through
//! `basic.get` and through a consumer, and requeued.
//!
//! Run with `cargo bench --bench queue`. One element is one message
//! published and acknowledged (or requeued and taken again).

use std::collections::VecDeque;
use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use amq_protocol::protocol::basic::AMQPProperties;
use amq_protocol::types::FieldTable;
use bytes::Bytes;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver};
use warren::broker::{ChannelCredit, Consumer, ConsumerSpec, Delivery, Message, Outbound, Queue};
use warren::protocol::properties::{encode_header, ContentHeader};

fn queue() -> Arc<Queue> {
    Arc::new(Queue::new("bench".into(), "/".into(), false, None, false, FieldTable::default()))
}

/// One message, shared by every publish (routing hands queues an `Arc`).
fn message() -> Arc<Message> {
    let body = Bytes::from_static(&[b'x'; 256]);
    let header = encode_header(body.len() as u64, &AMQPProperties::default().with_delivery_mode(2));
    let info = ContentHeader::scan(&header).unwrap();
    Arc::new(Message::new(Bytes::from_static(b"ex"), Bytes::from_static(b"rk"), header, info, body))
}

fn consumer(q: &Arc<Queue>, no_ack: bool, prefetch: u32) -> (Arc<Consumer>, UnboundedReceiver<Outbound>) {
    let (tx, rx) = unbounded_channel();
    let spec = ConsumerSpec {
        tag: "amq.ctag-bench".into(),
        channel: 1,
        connection: 1,
        no_ack,
        prefetch,
        ..Default::default()
    };
    let c = Arc::new(Consumer::new(spec, Arc::new(ChannelCredit::default()), tx));
    q.add_consumer(c.clone()).unwrap();
    (c, rx)
}

fn next_delivery(rx: &mut UnboundedReceiver<Outbound>) -> Delivery {
    match rx.try_recv() {
        Ok(Outbound::Deliver(d)) => d,
        other => panic!("expected a delivery, got {other:?}"),
    }
}

/// `basic.publish` → `basic.get` → `basic.ack`, no consumer.
fn get_ack(c: &mut Criterion) {
    let mut g = c.benchmark_group("queue/publish_get_ack");
    g.throughput(Throughput::Elements(1));
    let msg = message();

    let q = queue();
    g.bench_function("empty_queue", |b| {
        b.iter(|| {
            q.publish(msg.clone());
            let (e, _) = q.get(false).unwrap();
            q.ack(&[e.seq]);
        })
    });

    // 10,000 ready messages ahead of each publish.
    let q = queue();
    for _ in 0..10_000 {
        q.publish(msg.clone());
    }
    g.bench_function("backlog_10k", |b| {
        b.iter(|| {
            q.publish(msg.clone());
            let (e, left) = q.get(false).unwrap();
            q.ack(&[e.seq]);
            black_box(left)
        })
    });

    // 1,000 messages delivered and not yet acknowledged; the oldest is acked.
    let q = queue();
    let mut window: VecDeque<u64> = VecDeque::new();
    for _ in 0..1000 {
        q.publish(msg.clone());
        window.push_back(q.get(false).unwrap().0.seq);
    }
    g.bench_function("unacked_1k", |b| {
        b.iter(|| {
            q.publish(msg.clone());
            window.push_back(q.get(false).unwrap().0.seq);
            let oldest = window.pop_front().unwrap();
            q.ack(&[oldest]);
        })
    });
    g.finish();
}

/// `basic.publish` straight to a consumer: the delivery is taken off the
/// outbound queue, written (`Consumer::written`), then acked.
fn consume(c: &mut Criterion) {
    let mut g = c.benchmark_group("queue/publish_consume");
    g.throughput(Throughput::Elements(1));
    let msg = message();

    let q = queue();
    let (cons, mut rx) = consumer(&q, false, 100);
    g.bench_function("manual_ack_prefetch_100", |b| {
        b.iter(|| {
            q.publish(msg.clone());
            let d = next_delivery(&mut rx);
            if cons.written(d.entry.message.body().len()) {
                q.kick();
            }
            q.ack(&[d.entry.seq]);
            if cons.settled(1) {
                q.kick();
            }
            black_box(d);
        })
    });

    let q = queue();
    let (cons, mut rx) = consumer(&q, true, 0);
    g.bench_function("no_ack", |b| {
        b.iter(|| {
            q.publish(msg.clone());
            let d = next_delivery(&mut rx);
            if cons.written(d.entry.message.body().len()) {
                q.kick();
            }
            black_box(d);
        })
    });

    // Prefetch 1: every publish waits in the queue until the previous
    // message is acked, and the ack's kick delivers it.
    let q = queue();
    let (cons, mut rx) = consumer(&q, false, 1);
    q.publish(msg.clone());
    let mut held = next_delivery(&mut rx);
    g.bench_function("manual_ack_prefetch_1", |b| {
        b.iter(|| {
            q.publish(msg.clone());
            if cons.written(held.entry.message.body().len()) {
                q.kick();
            }
            q.ack(&[held.entry.seq]);
            if cons.settled(1) {
                q.kick();
            }
            held = next_delivery(&mut rx);
        })
    });
    g.finish();
}

/// `basic.reject requeue=true`: the message goes back to its place and is
/// taken again.
fn requeue(c: &mut Criterion) {
    let mut g = c.benchmark_group("queue/requeue");
    g.throughput(Throughput::Elements(1));
    let msg = message();

    // get → requeue (to the front of an empty queue) → get → ack.
    let q = queue();
    g.bench_function("get_requeue_get_ack", |b| {
        b.iter(|| {
            q.publish(msg.clone());
            let (e, _) = q.get(false).unwrap();
            q.requeue(&[e.seq]);
            let (e, _) = q.get(false).unwrap();
            assert!(e.redelivered);
            q.ack(&[e.seq]);
        })
    });

    // The head of a 1,000-message backlog, taken and put back.
    let q = queue();
    for _ in 0..1000 {
        q.publish(msg.clone());
    }
    g.bench_function("head_of_backlog_1k", |b| {
        b.iter(|| {
            let (e, _) = q.get(false).unwrap();
            q.requeue(&[e.seq]);
        })
    });

    // A consumer rejects with requeue: redelivered to it at once.
    let q = queue();
    let (cons, mut rx) = consumer(&q, false, 100);
    q.publish(msg.clone());
    g.bench_function("consumer_reject_redeliver", |b| {
        b.iter(|| {
            let d = next_delivery(&mut rx);
            cons.written(d.entry.message.body().len());
            cons.settled(1);
            q.requeue(&[d.entry.seq]);
        })
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .sample_size(20);
    targets = get_ack, consume, requeue
}
criterion_main!(benches);
