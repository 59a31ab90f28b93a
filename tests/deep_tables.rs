//! Field tables nested far beyond the limit, sent as raw frames on every path
//! where a client's table is parsed or walked: method arguments (each method
//! that carries a table), the handshake's client properties and AMQPLAIN
//! response, and message headers bound for the headers exchange, direct
//! reply-to, dead-lettering and BCC. Before the limit existed, each of these
//! overflowed a worker's stack and aborted the whole broker.
//!
//! Each deep case must get a clear error (the channel's where there is one)
//! while the broker goes on serving; the same paths at exactly the limit work.

mod common;

use amq_protocol::frame::AMQPFrame;
use amq_protocol::protocol::basic::AMQPProperties;
use amq_protocol::protocol::{basic, connection, queue, AMQPClass};
use amq_protocol::types::{AMQPValue, FieldTable, LongString};
use common::{assert_serving, method, publish, raw_frame, Raw, FRAME_END};
use warren::protocol::table::MAX_DEPTH;

/// Far beyond the limit, yet within one 128 KiB frame.
const DEEP: usize = 20_000;

/// `levels` containers nested inside each other (tables and arrays in turn),
/// as the contents of a table whose one key is `key`.
fn nested(key: &str, levels: usize) -> Vec<u8> {
    let mut openings = Vec::with_capacity(levels);
    let mut size = 1; // the innermost value, a void
    for i in (1..levels).rev() {
        let table = i % 2 == 1;
        let content = size + if table { 2 } else { 0 };
        let mut open = vec![if table { b'F' } else { b'A' }];
        open.extend((content as u32).to_be_bytes());
        if table {
            open.extend([1, b'k']);
        }
        openings.push(open);
        size = 5 + content;
    }
    let mut v = vec![key.len() as u8];
    v.extend(key.as_bytes());
    v.extend(openings.iter().rev().flatten());
    v.push(b'V');
    v
}

/// A table's contents with its length prefix.
fn table(contents: &[u8]) -> Vec<u8> {
    [&(contents.len() as u32).to_be_bytes()[..], contents].concat()
}

fn short(s: &str) -> Vec<u8> {
    [&[s.len() as u8][..], s.as_bytes()].concat()
}

/// A method frame: class, method, then the fields as given.
fn method_frame(ch: u16, class: u16, method: u16, fields: &[&[u8]]) -> Vec<u8> {
    let mut p = class.to_be_bytes().to_vec();
    p.extend(method.to_be_bytes());
    for f in fields {
        p.extend_from_slice(f);
    }
    raw_frame(1, ch, &p, FRAME_END)
}

/// Each method that carries a table, with `args` as that table.
fn methods_with(args: &[u8]) -> Vec<(&'static str, u16, u16, Vec<u8>)> {
    let ticket: &[u8] = &[0, 0];
    vec![
        (
            "exchange.declare",
            40,
            10,
            method_frame(1, 40, 10, &[ticket, &short("deep-x"), &short("direct"), &[0], args]),
        ),
        (
            "exchange.bind",
            40,
            30,
            method_frame(
                1,
                40,
                30,
                &[ticket, &short("amq.fanout"), &short("amq.direct"), &short("k"), &[0], args],
            ),
        ),
        (
            "exchange.unbind",
            40,
            40,
            method_frame(
                1,
                40,
                40,
                &[ticket, &short("amq.fanout"), &short("amq.direct"), &short("k"), &[0], args],
            ),
        ),
        ("queue.declare", 50, 10, method_frame(1, 50, 10, &[ticket, &short("deep-q"), &[0], args])),
        (
            "queue.bind",
            50,
            20,
            method_frame(
                1,
                50,
                20,
                &[ticket, &short("deep-q"), &short("amq.direct"), &short("k"), &[0], args],
            ),
        ),
        (
            "queue.unbind",
            50,
            50,
            method_frame(1, 50, 50, &[ticket, &short("deep-q"), &short("amq.direct"), &short("k"), args]),
        ),
        (
            "basic.consume",
            60,
            20,
            method_frame(1, 60, 20, &[ticket, &short("deep-q"), &short(""), &[0], args]),
        ),
        // A server method sent by the client: still parsed, so still checked.
        (
            "connection.start",
            10,
            10,
            method_frame(1, 10, 10, &[&[0, 9], args, &table(b"PLAIN"), &table(b"en_US")]),
        ),
    ]
}

#[tokio::test]
async fn method_arguments_nested_too_deep_close_the_channel() {
    let server = common::start().await;
    let deep = table(&nested("x-deep", DEEP));
    assert!(deep.len() < 131_000, "fits one frame");
    for (name, class, method, frame) in methods_with(&deep) {
        let mut raw = Raw::open(server.local_addr).await;
        raw.open_channel(1).await;
        raw.open_channel(2).await;
        raw.send(&frame).await;
        let got = raw.expect_channel_close(1).await;
        let text =
            format!("PRECONDITION_FAILED - field table in {name} nested more than {MAX_DEPTH} levels deep");
        assert_eq!(got, (406, text, class, method));
        // The connection's other channel, the closed one reopened, and the broker go on.
        raw.round_trip(2).await;
        raw.open_channel(1).await;
        raw.round_trip(1).await;
    }
    assert_serving(server.local_addr).await;
}

#[tokio::test]
async fn deep_method_arguments_on_channel_0_close_the_connection() {
    let server = common::start().await;
    let deep = table(&nested("x-deep", DEEP));
    let frame = method_frame(0, 50, 10, &[&[0, 0], &short("deep-q"), &[0], &deep]);
    common::connection_error(
        server.local_addr,
        &frame,
        (501, "FRAME_ERROR - field table in queue.declare", 50, 10),
    )
    .await;
}

#[tokio::test]
async fn method_arguments_at_the_limit_are_accepted() {
    let server = common::start().await;
    let args = table(&nested("x-deep", MAX_DEPTH));
    let mut raw = Raw::open(server.local_addr).await;
    raw.open_channel(1).await;
    raw.send(&method_frame(1, 50, 10, &[&[0, 0], &short("deep-q"), &[0], &args])).await;
    match raw.expect_method_on(1).await {
        AMQPClass::Queue(queue::AMQPMethod::DeclareOk(ok)) => assert_eq!(ok.queue.as_str(), "deep-q"),
        other => panic!("expected declare-ok, got {other:?}"),
    }
    for (name, _, _, frame) in methods_with(&args) {
        if name == "connection.start" {
            continue; // refused for what it is, not for its table
        }
        raw.send(&frame).await;
        let reply = raw.expect_method_on(1).await;
        assert!(!matches!(reply, AMQPClass::Channel(_)), "{name} at the limit: {reply:?}");
    }
    raw.round_trip(1).await;
}

/// A start-ok with these client properties and this SASL exchange.
fn start_ok(client_properties: &[u8], mechanism: &str, response: &[u8]) -> Vec<u8> {
    method_frame(0, 10, 11, &[client_properties, &short(mechanism), &table(response), &short("en_US")])
}

/// Sends the protocol header and `start_ok`; returns the close the broker answers with.
async fn handshake_close(addr: std::net::SocketAddr, start_ok: &[u8]) -> (u16, String, u16, u16) {
    let mut raw = Raw::connect(addr).await;
    raw.send(b"AMQP\x00\x00\x09\x01").await;
    let start = raw.expect_method().await;
    assert!(matches!(start, AMQPClass::Connection(connection::AMQPMethod::Start(_))));
    raw.send(start_ok).await;
    raw.expect_close_or_eof().await.expect("a connection.close")
}

#[tokio::test]
async fn deep_client_properties_refuse_the_handshake() {
    let server = common::start().await;
    // Before tune, frames are at most 4096 bytes: ~600 levels, still far beyond.
    let props = table(&nested("capabilities", 600));
    let frame = start_ok(&props, "PLAIN", b"\0guest\0guest");
    assert!(frame.len() <= 4096);
    let got = handshake_close(server.local_addr, &frame).await;
    common::check_reply(
        &got,
        (501, "FRAME_ERROR - field table in connection.start-ok nested more than", 10, 11),
    );
    assert_serving(server.local_addr).await;
}

#[tokio::test]
async fn deep_amqplain_response_is_a_refused_login() {
    let server = common::start().await;
    let mut response = nested("LOGIN", 600);
    response.extend(short("PASSWORD"));
    response.push(b'S');
    response.extend(table(b"guest"));
    let mut caps = Vec::new();
    caps.extend(short("authentication_failure_close"));
    caps.extend([b't', 1]);
    let props = table(&[&short("capabilities")[..], b"F", &table(&caps)].concat());
    let got = handshake_close(server.local_addr, &start_ok(&props, "AMQPLAIN", &response)).await;
    common::check_reply(&got, (403, "ACCESS_REFUSED - AMQPLAIN login refused: malformed", 10, 11));
    assert_serving(server.local_addr).await;
}

/// A content header whose `headers` property is `headers` (a table's
/// contents), with `reply_to` when given.
fn header_with(ch: u16, body_size: u64, headers: &[u8], reply_to: Option<&str>) -> Vec<u8> {
    let mut flags: u16 = 1 << 13;
    if reply_to.is_some() {
        flags |= 1 << 9;
    }
    let mut p = vec![0, 60, 0, 0];
    p.extend(body_size.to_be_bytes());
    p.extend(flags.to_be_bytes());
    p.extend(table(headers));
    if let Some(r) = reply_to {
        p.extend(short(r));
    }
    raw_frame(2, ch, &p, FRAME_END)
}

fn message_with(ch: u16, exchange: &str, key: &str, headers: &[u8], reply_to: Option<&str>) -> Vec<u8> {
    let body = b"deep";
    [
        publish(ch, exchange, key),
        header_with(ch, body.len() as u64, headers, reply_to),
        raw_frame(3, ch, body, FRAME_END),
    ]
    .concat()
}

fn declare_args(ch: u16, name: &str, args: FieldTable) -> Vec<u8> {
    let d = queue::Declare {
        queue: name.into(),
        passive: false,
        durable: false,
        exclusive: false,
        auto_delete: false,
        nowait: false,
        arguments: args,
    };
    method(ch, AMQPClass::Queue(queue::AMQPMethod::Declare(d)))
}

fn bind(ch: u16, queue: &str, exchange: &str, args: FieldTable) -> Vec<u8> {
    let b = queue::Bind {
        queue: queue.into(),
        exchange: exchange.into(),
        routing_key: "".into(),
        nowait: false,
        arguments: args,
    };
    method(ch, AMQPClass::Queue(queue::AMQPMethod::Bind(b)))
}

fn consume(ch: u16, queue: &str) -> Vec<u8> {
    let c = basic::Consume {
        queue: queue.into(),
        consumer_tag: "".into(),
        no_local: false,
        no_ack: true,
        exclusive: false,
        nowait: false,
        arguments: FieldTable::default(),
    };
    method(ch, AMQPClass::Basic(basic::AMQPMethod::Consume(c)))
}

/// Sets up every path a message's headers are walked on: a headers-exchange
/// binding, a queue that dead-letters at once (max-length 0), a direct
/// reply-to consumer. Returns the reply-to consumer's channel (3).
async fn paths(raw: &mut Raw) {
    raw.open_channel(1).await;
    raw.open_channel(2).await;
    raw.open_channel(3).await;
    for q in ["hq", "dlq", "plain", "bcc-target"] {
        raw.declare_queue(2, q).await;
    }
    let mut dl = FieldTable::default();
    dl.insert("x-max-length".into(), AMQPValue::LongInt(0));
    dl.insert("x-dead-letter-exchange".into(), AMQPValue::LongString(LongString::from("")));
    dl.insert("x-dead-letter-routing-key".into(), AMQPValue::LongString(LongString::from("dlq")));
    raw.send(&declare_args(2, "dead", dl)).await;
    raw.expect_method_on(2).await;
    let mut match_any = FieldTable::default();
    match_any.insert("x-match".into(), AMQPValue::LongString(LongString::from("any")));
    match_any.insert("route".into(), AMQPValue::LongString(LongString::from("yes")));
    raw.send(&bind(2, "hq", "amq.headers", match_any)).await;
    raw.expect_method_on(2).await;
    raw.send(&consume(3, "amq.rabbitmq.reply-to")).await;
    raw.expect_method_on(3).await;
}

/// Headers: the nested value under "deep", the headers exchange's routing
/// header, and for the BCC path a BCC list.
fn headers(levels: usize, bcc: bool) -> Vec<u8> {
    let mut h = nested("deep", levels);
    h.extend(short("route"));
    h.push(b'S');
    h.extend(table(b"yes"));
    if !bcc {
        return h;
    }
    h.extend(short("BCC"));
    h.push(b'A');
    let mut bcc = vec![b'S'];
    bcc.extend(table(b"bcc-target"));
    h.extend(table(&bcc));
    h
}

/// Where each path sends the message: (what, exchange, routing key, reply_to).
const PATHS: [(&str, &str, &str, Option<&str>); 4] = [
    ("headers exchange", "amq.headers", "", None),
    ("dead-lettering", "", "dead", None),
    ("direct reply-to request", "", "plain", Some("amq.rabbitmq.reply-to")),
    ("BCC", "", "plain", None),
];

#[tokio::test]
async fn message_headers_nested_too_deep_close_the_channel() {
    let server = common::start().await;
    for (what, exchange, key, reply_to) in PATHS {
        let deep = headers(DEEP, what == "BCC");
        let mut raw = Raw::open(server.local_addr).await;
        paths(&mut raw).await;
        raw.send(&message_with(1, exchange, key, &deep, reply_to)).await;
        let got = raw.expect_channel_close(1).await;
        assert_eq!(
            got,
            (
                406,
                format!(
                    "PRECONDITION_FAILED - field table in the headers property nested more than {MAX_DEPTH} levels deep"
                ),
                60,
                40
            ),
            "{what}"
        );
        raw.round_trip(2).await;
        raw.open_channel(1).await;
        raw.round_trip(1).await;
    }
    // A reply to a direct reply-to requester with deep headers.
    let mut raw = Raw::open(server.local_addr).await;
    paths(&mut raw).await;
    raw.send(&message_with(1, "", "amq.rabbitmq.reply-to.nobody", &headers(DEEP, false), None)).await;
    let got = raw.expect_channel_close(1).await;
    assert_eq!((got.0, got.2, got.3), (406, 60, 40));
    assert_serving(server.local_addr).await;
}

/// The "deep" header of a received message, parsed: it nests `levels` deep.
fn depth_of(props: &AMQPProperties) -> usize {
    fn depth(v: &AMQPValue) -> usize {
        match v {
            AMQPValue::FieldTable(t) => 1 + t.inner().values().map(depth).max().unwrap_or(0),
            AMQPValue::FieldArray(a) => 1 + a.as_slice().iter().map(depth).max().unwrap_or(0),
            _ => 0,
        }
    }
    let h = props.headers().as_ref().expect("headers");
    1 + depth(h.inner().get("deep").expect("the deep header"))
}

#[tokio::test]
async fn message_headers_at_the_limit_travel_every_path() {
    let server = common::start().await;
    let mut raw = Raw::open(server.local_addr).await;
    paths(&mut raw).await;
    for (what, exchange, key, reply_to) in PATHS {
        let at_limit = headers(MAX_DEPTH, what == "BCC");
        // A direct reply-to request goes out on the channel consuming the replies.
        let ch = if reply_to.is_some() { 3 } else { 1 };
        raw.send(&message_with(ch, exchange, key, &at_limit, reply_to)).await;
        let queue = match what {
            "headers exchange" => "hq",
            "dead-lettering" => "dlq",
            _ => "plain",
        };
        let (props, body) = raw.get(2, queue).await.unwrap_or_else(|| panic!("{what}: nothing routed"));
        assert_eq!((depth_of(&props), &body[..]), (MAX_DEPTH, &b"deep"[..]), "{what}");
        match what {
            "dead-lettering" => assert!(props.headers().as_ref().unwrap().inner().contains_key("x-death")),
            "direct reply-to request" => {
                // Answer it: the reply, deep headers and all, reaches the requester.
                let to = props.reply_to().clone().expect("a rewritten reply_to");
                assert!(to.as_str().starts_with("amq.rabbitmq.reply-to."));
                raw.send(&message_with(2, "", to.as_str(), &at_limit, None)).await;
                match raw.expect_frame().await {
                    AMQPFrame::Method(3, AMQPClass::Basic(basic::AMQPMethod::Deliver(_))) => {}
                    other => panic!("expected the reply's delivery, got {other:?}"),
                }
                let (reply, _) = raw.expect_content(3).await;
                assert_eq!(depth_of(&reply), MAX_DEPTH);
            }
            "BCC" => {
                let (copy, _) = raw.get(2, "bcc-target").await.expect("the BCC copy");
                assert_eq!(depth_of(&copy), MAX_DEPTH);
                assert!(!copy.headers().as_ref().unwrap().inner().contains_key("BCC"));
            }
            _ => {}
        }
    }
    raw.round_trip(1).await;
}
