//! Codec microbenchmarks: the hand-written publish decode and delivery
//! encode paths, side by side with amq-protocol's generic `parse_frame` /
//! `gen_frame` on the same frames.
//!
//! Run with `cargo bench --bench codec`. Throughput is in messages: a
//! message is a method frame, a content header frame and one body frame.

use std::hint::black_box;
use std::time::Duration;

use amq_protocol::frame::{gen_frame, parse_frame, AMQPContentHeader, AMQPFrame, WriteContext};
use amq_protocol::protocol::basic::{self, AMQPProperties};
use amq_protocol::protocol::AMQPClass;
use amq_protocol::types::{AMQPValue, FieldTable, LongString};
use bytes::{Buf, Bytes, BytesMut};
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use warren::protocol::frame::{self, Frame};
use warren::protocol::method::{self, Method};
use warren::protocol::properties::{encode_header, ContentHeader};
use warren::protocol::{encode, CLASS_BASIC};

const FRAME_MAX: u32 = 131_072;
/// Messages per decode iteration (decoding consumes its input buffer).
const BATCH: usize = 1000;
const EXCHANGE: &[u8] = b"orders";
const ROUTING_KEY: &[u8] = b"region.eu.service.billing.created";
const CONSUMER_TAG: &[u8] = b"amq.ctag-Jx2cX9m0c5bQ1r8pLk4w7A";

/// Only `delivery_mode`, as many publishers send.
fn plain_properties() -> AMQPProperties {
    AMQPProperties::default().with_delivery_mode(2)
}

/// A typical service message: content type, ids, timestamp, a small header table.
fn rich_properties() -> AMQPProperties {
    let mut headers = FieldTable::default();
    headers.insert("tenant".into(), AMQPValue::LongString(LongString::from("acme")));
    headers.insert("attempt".into(), AMQPValue::LongInt(1));
    headers.insert(
        "trace-id".into(),
        AMQPValue::LongString(LongString::from("4bf92f3577b34da6a3ce929d0e0e4736")),
    );
    AMQPProperties::default()
        .with_content_type("application/json".into())
        .with_headers(headers)
        .with_delivery_mode(2)
        .with_message_id("msg-0000000001".into())
        .with_timestamp(1_700_000_000)
        .with_app_id("orders-svc".into())
}

fn body(size: usize) -> Vec<u8> {
    (0..size).map(|i| b'a' + (i % 26) as u8).collect()
}

/// `BATCH` publishes as a client puts them on the wire.
fn publish_wire(props: &AMQPProperties, body: &[u8]) -> Vec<u8> {
    let header = encode_header(body.len() as u64, props);
    let mut wire = Vec::new();
    for _ in 0..BATCH {
        encode::basic_publish(&mut wire, 1, EXCHANGE, ROUTING_KEY);
        encode::content(&mut wire, 1, &header, body, FRAME_MAX);
    }
    wire
}

/// The broker's read path: frames read in place at the front of the read
/// buffer, `basic.publish` decoded by hand, the content header scanned in
/// place, the body borrowed; each frame then dropped from the buffer.
fn warren_decode(buf: &mut BytesMut) {
    while let Some(head) = frame::peek(buf, FRAME_MAX).expect("well-formed frame") {
        match head.frame(head.payload(buf)) {
            Frame::Method { payload, .. } => match method::decode(payload).expect("well-formed method") {
                Method::Publish(p) => {
                    black_box(p);
                }
                other => panic!("unexpected method {other:?}"),
            },
            Frame::Header { payload, .. } => {
                let info = ContentHeader::scan(payload).expect("well-formed header");
                black_box((payload, info));
            }
            Frame::Body { payload, .. } => {
                black_box(payload);
            }
            Frame::Heartbeat { .. } => unreachable!(),
        }
        buf.advance(head.total());
    }
}

/// The generic path: every frame parsed into amq-protocol's owned types.
fn amq_protocol_decode(mut wire: &[u8]) {
    while !wire.is_empty() {
        let (rest, f) = parse_frame(wire).expect("well-formed frame");
        black_box(f);
        wire = rest;
    }
}

fn decode_benches(c: &mut Criterion) {
    let mut g = c.benchmark_group("codec/decode_publish");
    g.throughput(Throughput::Elements(BATCH as u64));
    for (name, props) in [("plain_props", plain_properties()), ("rich_props", rich_properties())] {
        let wire = publish_wire(&props, &body(256));
        // Both paths must see the same frames.
        let mut check = BytesMut::from(&wire[..]);
        warren_decode(&mut check);
        assert!(check.is_empty());
        amq_protocol_decode(&wire);

        g.bench_function(format!("warren/{name}/256B"), |b| {
            b.iter_batched_ref(|| BytesMut::from(&wire[..]), warren_decode, BatchSize::LargeInput)
        });
        g.bench_function(format!("amq_protocol/{name}/256B"), |b| b.iter(|| amq_protocol_decode(&wire)));
    }
    g.finish();
}

/// What a consumer's channel has in hand when it writes a delivery.
struct Delivery {
    header: Bytes,
    body: Bytes,
    props: AMQPProperties,
}

impl Delivery {
    fn new(body_size: usize) -> Self {
        let props = rich_properties();
        let body = Bytes::from(body(body_size));
        Delivery { header: encode_header(body.len() as u64, &props), body, props }
    }

    fn amq_frames(&self, tag: u64) -> [AMQPFrame; 3] {
        let deliver = basic::Deliver {
            consumer_tag: std::str::from_utf8(CONSUMER_TAG).unwrap().into(),
            delivery_tag: tag,
            redelivered: false,
            exchange: std::str::from_utf8(EXCHANGE).unwrap().into(),
            routing_key: std::str::from_utf8(ROUTING_KEY).unwrap().into(),
        };
        [
            AMQPFrame::Method(1, AMQPClass::Basic(basic::AMQPMethod::Deliver(deliver))),
            AMQPFrame::Header(
                1,
                AMQPContentHeader {
                    class_id: CLASS_BASIC,
                    body_size: self.body.len() as u64,
                    properties: self.props.clone(),
                },
            ),
            AMQPFrame::Body(1, self.body.to_vec()),
        ]
    }
}

fn gen_all(out: &mut Vec<u8>, frames: &[AMQPFrame]) {
    let mut buf = std::mem::take(out);
    for f in frames {
        buf = gen_frame(f)(WriteContext::from(buf)).expect("a Vec grows as needed").into_inner().0;
    }
    *out = buf;
}

fn encode_benches(c: &mut Criterion) {
    let mut g = c.benchmark_group("codec/encode_deliver");
    g.throughput(Throughput::Elements(1));
    for size in [256, 4096] {
        let d = Delivery::new(size);
        // The hand-written frames are the ones amq-protocol writes.
        let (mut ours, mut theirs) = (Vec::new(), Vec::new());
        encode::deliver(&mut ours, 1, CONSUMER_TAG, 7, false, EXCHANGE, ROUTING_KEY);
        encode::content(&mut ours, 1, &d.header, &d.body, FRAME_MAX);
        gen_all(&mut theirs, &d.amq_frames(7));
        assert_eq!(ours, theirs);

        let mut out = Vec::with_capacity(8192);
        let mut tag = 0u64;
        g.bench_function(format!("warren/{size}B"), |b| {
            b.iter(|| {
                out.clear();
                tag += 1;
                encode::deliver(&mut out, 1, CONSUMER_TAG, tag, false, EXCHANGE, ROUTING_KEY);
                encode::content(&mut out, 1, &d.header, &d.body, FRAME_MAX);
                black_box(&out);
            })
        });
        // Serialisation alone, frames built once.
        let frames = d.amq_frames(7);
        g.bench_function(format!("amq_protocol_gen_only/{size}B"), |b| {
            b.iter(|| {
                out.clear();
                gen_all(&mut out, black_box(&frames));
                black_box(&out);
            })
        });
        // What a broker on the generic path pays: build the frames, then write them.
        g.bench_function(format!("amq_protocol_build_gen/{size}B"), |b| {
            b.iter(|| {
                out.clear();
                tag += 1;
                gen_all(&mut out, &d.amq_frames(tag));
                black_box(&out);
            })
        });
    }
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .sample_size(20);
    targets = decode_benches, encode_benches
}
criterion_main!(benches);
