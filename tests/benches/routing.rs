//! Routing microbenchmarks through `VHost::route`, the call a publishing
//! channel makes per message: topic and direct exchanges with 10,000
//! bindings, a fanout to 4 queues, a headers exchange with 100 bindings
//! and the default exchange; and topic bindings built to make matching
//! exponential (many `#` words against a 100-word key).
//!
//! Run with `cargo bench --bench routing`. One element is one routed message.

use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use amq_protocol::protocol::basic::AMQPProperties;
use amq_protocol::types::{AMQPValue, FieldTable, LongString};
use bytes::Bytes;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use warren::broker::exchange::Exchange;
use warren::broker::vhost::{ExchangeDecl, QueueDecl, Router};
use warren::broker::{Message, VHost};
use warren::protocol::properties::{encode_header, ContentHeader};

const CONN: u64 = 1;
/// Queues the 10,000 bindings spread over.
const QUEUES: usize = 1000;

fn declare_queues(vh: &Arc<VHost>, names: impl IntoIterator<Item = String>) {
    for name in names {
        vh.declare_queue(QueueDecl { name, ..Default::default() }, CONN).unwrap();
    }
}

fn declare_exchange(vh: &Arc<VHost>, name: &str, kind: &str) -> Arc<Exchange> {
    vh.declare_exchange(ExchangeDecl { name: name.into(), kind: kind.into(), ..Default::default() }).unwrap();
    vh.exchange(name).unwrap()
}

fn bind(vh: &VHost, queue: &str, exchange: &str, key: &str) {
    vh.bind_queue(queue, exchange, key, FieldTable::default(), CONN).unwrap();
}

fn message(exchange: &str, routing_key: &str, props: &AMQPProperties) -> Message {
    let body = Bytes::from_static(&[b'x'; 128]);
    let header = encode_header(body.len() as u64, props);
    let info = ContentHeader::scan(&header).unwrap();
    Message::new(
        Bytes::copy_from_slice(exchange.as_bytes()),
        Bytes::copy_from_slice(routing_key.as_bytes()),
        header,
        info,
        body,
    )
}

fn plain(exchange: &str, routing_key: &str) -> Message {
    message(exchange, routing_key, &AMQPProperties::default().with_delivery_mode(2))
}

/// 10,000 topic bindings of the shapes real applications use.
fn topic_vhost() -> (Arc<VHost>, Arc<Exchange>) {
    let vh = Arc::new(VHost::new("/", None));
    declare_queues(&vh, (0..QUEUES).map(|i| format!("q{i}")));
    declare_queues(&vh, ["audit0".to_string(), "audit1".to_string()]);
    let ex = declare_exchange(&vh, "events", "topic");
    let mut keys = Vec::with_capacity(10_000);
    for r in 0..100 {
        for s in 0..40 {
            keys.push(format!("region.{r}.service.{s}.#")); // 4,000
        }
    }
    keys.extend((0..3000).map(|n| format!("*.orders.{n}"))); // 3,000
    for a in 0..500 {
        for level in ["debug", "info", "warn", "error"] {
            keys.push(format!("app.{a}.log.{level}")); // 2,000
        }
    }
    keys.extend((0..900).map(|k| format!("#.alert.{k}"))); // 900
    keys.extend((0..98).map(|m| format!("metrics.{m}.*.cpu"))); // 98
    assert_eq!(keys.len(), 9998);
    for (i, key) in keys.iter().enumerate() {
        bind(&vh, &format!("q{}", i % QUEUES), "events", key);
    }
    // Two audit queues see everything: 10,000 bindings in all.
    bind(&vh, "audit0", "events", "#");
    bind(&vh, "audit1", "events", "#");
    (vh, ex)
}

/// 10,000 direct bindings, one key each.
fn direct_vhost() -> (Arc<VHost>, Arc<Exchange>) {
    let vh = Arc::new(VHost::new("/", None));
    declare_queues(&vh, (0..QUEUES).map(|i| format!("q{i}")));
    let ex = declare_exchange(&vh, "tasks", "direct");
    for k in 0..10_000 {
        bind(&vh, &format!("q{}", k % QUEUES), "tasks", &format!("task.{k}"));
    }
    (vh, ex)
}

fn fanout_vhost() -> (Arc<VHost>, Arc<Exchange>) {
    let vh = Arc::new(VHost::new("/", None));
    declare_queues(&vh, (0..4).map(|i| format!("f{i}")));
    let ex = declare_exchange(&vh, "broadcast", "fanout");
    for i in 0..4 {
        bind(&vh, &format!("f{i}"), "broadcast", "");
    }
    (vh, ex)
}

fn long_str(s: &str) -> AMQPValue {
    AMQPValue::LongString(LongString::from(s))
}

/// 100 headers bindings: half `x-match=all` on two keys, half `any` on two keys.
fn headers_vhost() -> (Arc<VHost>, Arc<Exchange>) {
    let vh = Arc::new(VHost::new("/", None));
    declare_queues(&vh, (0..100).map(|i| format!("h{i}")));
    let ex = declare_exchange(&vh, "docs", "headers");
    for i in 0..100 {
        let mut args = FieldTable::default();
        if i % 2 == 0 {
            let j = i / 2;
            args.insert("x-match".into(), long_str("all"));
            args.insert("region".into(), long_str(&format!("r{}", j % 10)));
            args.insert("type".into(), long_str(&format!("t{}", j / 10)));
        } else {
            args.insert("x-match".into(), long_str("any"));
            args.insert("customer".into(), long_str(&format!("c{i}")));
            args.insert("priority-class".into(), long_str(&format!("p{i}")));
        }
        vh.bind_queue(&format!("h{i}"), "docs", "", args, CONN).unwrap();
    }
    (vh, ex)
}

fn headers_message() -> Message {
    let mut headers = FieldTable::default();
    headers.insert("region".into(), long_str("r3"));
    headers.insert("type".into(), long_str("t4"));
    headers.insert("customer".into(), long_str("c7"));
    headers.insert("trace-id".into(), long_str("4bf92f3577b34da6a3ce929d0e0e4736"));
    let props = AMQPProperties::default().with_delivery_mode(2).with_headers(headers);
    message("docs", "", &props)
}

/// Routes `msg` once per iteration with reused scratch space, as a channel does.
fn bench_route(c: &mut Criterion, name: &str, vh: &VHost, ex: &Arc<Exchange>, msg: &Message, queues: usize) {
    let mut router = Router::default();
    vh.route(ex, msg, &[], &mut router);
    let out = &router.queues;
    assert_eq!(out.len(), queues, "{name}: routed to {:?}", out.iter().map(|q| &q.name).collect::<Vec<_>>());
    let mut g = c.benchmark_group("routing");
    g.throughput(Throughput::Elements(1));
    g.bench_function(name, |b| {
        b.iter(|| {
            vh.route(ex, black_box(msg), &[], &mut router);
            black_box(router.queues.len())
        })
    });
    g.finish();
}

fn topic(c: &mut Criterion) {
    let (vh, ex) = topic_vhost();
    // Each key matches one application binding plus the two `#` audit bindings.
    for (case, key) in [
        ("hash_suffix", "region.42.service.7.created"),
        ("star_prefix", "eu.orders.1234"),
        ("exact", "app.17.log.error"),
        ("hash_prefix", "eu.host-9.alert.321"),
    ] {
        bench_route(c, &format!("topic_10k/{case}"), &vh, &ex, &plain("events", key), 3);
    }
    // Matches the audit bindings only.
    bench_route(c, "topic_10k/audit_only", &vh, &ex, &plain("events", "billing.invoice.paid.v2"), 2);
}

/// Bindings that make a naive trie walk exponential, against a 100-word key:
/// 40 `#` words, and 40 words alternating `#` and `a` (ending in `.b`, so no
/// split of the key matches and every one would be tried).
fn topic_pathological(c: &mut Criterion) {
    let vh = Arc::new(VHost::new("/", None));
    declare_queues(&vh, ["p0".to_string(), "p1".to_string()]);
    let hashes = ["#"; 40].join(".");
    let alternating = ["#", "a"].repeat(20).join(".") + ".b";
    for (case, key, queue, queues) in [("hash_40", &hashes, "p0", 1), ("hash_a_40", &alternating, "p1", 0)] {
        let ex = declare_exchange(&vh, case, "topic");
        bind(&vh, queue, case, key);
        let msg = plain(case, &["a"; 100].join("."));
        bench_route(c, &format!("topic_pathological/{case}"), &vh, &ex, &msg, queues);
    }
}

fn direct(c: &mut Criterion) {
    let (vh, ex) = direct_vhost();
    bench_route(c, "direct_10k/hit", &vh, &ex, &plain("tasks", "task.4321"), 1);
}

fn fanout(c: &mut Criterion) {
    let (vh, ex) = fanout_vhost();
    bench_route(c, "fanout_4", &vh, &ex, &plain("broadcast", ""), 4);
}

fn headers(c: &mut Criterion) {
    let (vh, ex) = headers_vhost();
    // One `all` binding (h86) and one `any` binding (h7) match.
    bench_route(c, "headers_100", &vh, &ex, &headers_message(), 2);
}

fn default_exchange(c: &mut Criterion) {
    let vh = Arc::new(VHost::new("/", None));
    declare_queues(&vh, (0..QUEUES).map(|i| format!("q{i}")));
    let ex = vh.exchange("").unwrap();
    bench_route(c, "default_1k_queues", &vh, &ex, &plain("", "q512"), 1);
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .sample_size(20);
    targets = topic, topic_pathological, direct, fanout, headers, default_exchange
}
criterion_main!(benches);
