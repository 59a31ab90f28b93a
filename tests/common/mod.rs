//! Shared test harness: an in-process Warren on 127.0.0.1:0 and a raw AMQP
//! client that speaks frames byte for byte.
#![allow(dead_code)]

pub mod process;

use std::net::SocketAddr;
use std::time::Duration;

use amq_protocol::frame::AMQPContentHeader;
use amq_protocol::frame::{gen_frame, parse_frame, AMQPFrame, WriteContext};
use amq_protocol::protocol::basic::AMQPProperties;
use amq_protocol::protocol::{basic, channel, connection, queue, AMQPClass};
use amq_protocol::types::{FieldTable, LongString};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use warren::config::Config;
use warren::server::Server;

pub const TIMEOUT: Duration = Duration::from_secs(10);

/// Waits (polling every 20 ms, at most [`TIMEOUT`]) until `cond` holds.
pub async fn wait_for(what: &str, cond: impl Fn() -> bool) {
    tokio::time::timeout(TIMEOUT, async {
        while !cond() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("timed out waiting for {what}"));
}

/// Starts a broker on an ephemeral loopback port with its own data directory.
pub async fn start() -> Server {
    start_with(|_| {}).await
}

pub async fn start_with(tweak: impl FnOnce(&mut Config)) -> Server {
    let mut config = Config::default();
    config.amqp.listen = "127.0.0.1:0".parse().unwrap();
    config.admin.listen = Some("127.0.0.1:0".parse().unwrap());
    config.metrics.listen = Some("127.0.0.1:0".parse().unwrap());
    let dir = std::env::temp_dir().join(format!("warren-test-{}-{}", std::process::id(), fastrand::u64(..)));
    config.storage.data_dir = dir;
    tweak(&mut config);
    Server::start(config).await.expect("server starts")
}

pub fn url(addr: SocketAddr) -> String {
    format!("amqp://guest:guest@{addr}/%2f")
}

/// A client that writes and reads raw frames.
pub struct Raw {
    pub stream: TcpStream,
    buf: Vec<u8>,
}

/// What a read turned up.
#[derive(Debug)]
#[allow(clippy::large_enum_variant)]
pub enum Read {
    Frame(AMQPFrame),
    /// The server closed the socket.
    Closed,
    /// Nothing arrived in time.
    Silent,
}

pub fn encode(frame: &AMQPFrame) -> Vec<u8> {
    gen_frame(frame)(WriteContext::from(Vec::new())).unwrap().into_inner().0
}

pub fn method(channel: u16, class: AMQPClass) -> Vec<u8> {
    encode(&AMQPFrame::Method(channel, class))
}

/// A frame from its parts, with any type, size and end octet.
pub fn raw_frame(kind: u8, channel: u16, payload: &[u8], end: u8) -> Vec<u8> {
    let mut v = vec![kind];
    v.extend_from_slice(&channel.to_be_bytes());
    v.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    v.extend_from_slice(payload);
    v.push(end);
    v
}

impl Raw {
    pub async fn connect(addr: SocketAddr) -> Raw {
        Raw { stream: TcpStream::connect(addr).await.unwrap(), buf: Vec::new() }
    }

    /// Connects and completes the handshake (heartbeats off), ready for channel.open.
    pub async fn open(addr: SocketAddr) -> Raw {
        let mut raw = Raw::connect(addr).await;
        raw.handshake("guest", "guest", 0, 0).await;
        raw
    }

    pub async fn handshake(&mut self, user: &str, pass: &str, frame_max: u32, heartbeat: u16) {
        self.handshake_tuned(user, pass, 0, frame_max, heartbeat).await;
    }

    /// The handshake with the client's own `channel_max` / `frame_max` in
    /// tune-ok (0 takes the server's proposal).
    pub async fn handshake_tuned(
        &mut self,
        user: &str,
        pass: &str,
        channel_max: u16,
        frame_max: u32,
        heartbeat: u16,
    ) {
        let ok = self.try_handshake(user, pass, channel_max, frame_max, heartbeat).await;
        assert!(matches!(ok, AMQPClass::Connection(connection::AMQPMethod::OpenOk(_))), "{ok:?}");
    }

    /// The handshake up to `connection.open`; returns the broker's answer to it.
    pub async fn try_handshake(
        &mut self,
        user: &str,
        pass: &str,
        channel_max: u16,
        frame_max: u32,
        heartbeat: u16,
    ) -> AMQPClass {
        self.send(b"AMQP\x00\x00\x09\x01").await;
        let start = self.expect_method().await;
        assert!(matches!(start, AMQPClass::Connection(connection::AMQPMethod::Start(_))), "{start:?}");
        let mut caps = FieldTable::default();
        caps.insert("authentication_failure_close".into(), true.into());
        caps.insert("consumer_cancel_notify".into(), true.into());
        caps.insert("connection.blocked".into(), true.into());
        let mut props = FieldTable::default();
        props.insert("capabilities".into(), amq_protocol::types::AMQPValue::FieldTable(caps));
        let start_ok = connection::StartOk {
            client_properties: props,
            mechanism: "PLAIN".into(),
            response: LongString::from(format!("\0{user}\0{pass}").into_bytes()),
            locale: "en_US".into(),
        };
        self.send(&method(0, AMQPClass::Connection(connection::AMQPMethod::StartOk(start_ok)))).await;
        let tune = self.expect_method().await;
        let AMQPClass::Connection(connection::AMQPMethod::Tune(tune)) = tune else {
            panic!("expected tune, got {tune:?}");
        };
        let tune_ok = connection::TuneOk {
            channel_max: if channel_max == 0 { tune.channel_max } else { channel_max },
            frame_max: if frame_max == 0 { tune.frame_max } else { frame_max },
            heartbeat,
        };
        self.send(&method(0, AMQPClass::Connection(connection::AMQPMethod::TuneOk(tune_ok)))).await;
        let open = connection::Open { virtual_host: "/".into() };
        self.send(&method(0, AMQPClass::Connection(connection::AMQPMethod::Open(open)))).await;
        self.expect_method().await
    }

    pub async fn open_channel(&mut self, id: u16) {
        self.send(&method(id, AMQPClass::Channel(channel::AMQPMethod::Open(channel::Open {})))).await;
        let ok = self.expect_method().await;
        assert!(matches!(ok, AMQPClass::Channel(channel::AMQPMethod::OpenOk(_))), "{ok:?}");
    }

    /// The socket and what was read but not parsed yet, to use the two
    /// halves apart; `from_parts` puts them back.
    pub fn into_parts(self) -> (TcpStream, Vec<u8>) {
        (self.stream, self.buf)
    }

    pub fn from_parts(stream: TcpStream, buf: Vec<u8>) -> Raw {
        Raw { stream, buf }
    }

    pub async fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).await.unwrap();
    }

    /// The next frame (heartbeats included), the close of the socket, or silence.
    pub async fn read(&mut self, wait: Duration) -> Read {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            if !self.buf.is_empty() {
                match parse_frame(&self.buf[..]) {
                    Ok((rest, frame)) => {
                        let used = self.buf.len() - rest.len();
                        self.buf.drain(..used);
                        return Read::Frame(frame);
                    }
                    Err(e) if e.is_incomplete() => {}
                    Err(e) => panic!("server sent an unparsable frame: {e:?} {:?}", self.buf),
                }
            }
            // Read straight into the heap buffer: a 64 KiB array held across the
            // await would make every future built on this one overflow the stack.
            self.buf.reserve(65536);
            match tokio::time::timeout_at(deadline, self.stream.read_buf(&mut self.buf)).await {
                Err(_) => return Read::Silent,
                Ok(Ok(0)) | Ok(Err(_)) => return Read::Closed,
                Ok(Ok(_)) => {}
            }
        }
    }

    /// The next method frame, skipping heartbeats; panics on anything else.
    pub async fn expect_method(&mut self) -> AMQPClass {
        loop {
            match self.read(TIMEOUT).await {
                Read::Frame(AMQPFrame::Method(_, m)) => return m,
                Read::Frame(AMQPFrame::Heartbeat) => continue,
                other => panic!("expected a method, got {other:?}"),
            }
        }
    }

    /// Reads until the server sends connection.close; returns (code, text, class, method)
    /// after answering close-ok.
    pub async fn expect_connection_close(&mut self) -> (u16, String, u16, u16) {
        loop {
            match self.read(TIMEOUT).await {
                Read::Frame(AMQPFrame::Method(
                    0,
                    AMQPClass::Connection(connection::AMQPMethod::Close(c)),
                )) => {
                    let ok = connection::AMQPMethod::CloseOk(connection::CloseOk {});
                    let _ = self.stream.write_all(&method(0, AMQPClass::Connection(ok))).await;
                    return (c.reply_code, c.reply_text.to_string(), c.class_id, c.method_id);
                }
                Read::Frame(_) => continue,
                other => panic!("expected connection.close, got {other:?}"),
            }
        }
    }

    /// Reads until the server sends channel.close on `ch`; answers close-ok.
    pub async fn expect_channel_close(&mut self, ch: u16) -> (u16, String, u16, u16) {
        loop {
            match self.read(TIMEOUT).await {
                Read::Frame(AMQPFrame::Method(id, AMQPClass::Channel(channel::AMQPMethod::Close(c))))
                    if id == ch =>
                {
                    let ok = channel::AMQPMethod::CloseOk(channel::CloseOk {});
                    self.send(&method(ch, AMQPClass::Channel(ok))).await;
                    return (c.reply_code, c.reply_text.to_string(), c.class_id, c.method_id);
                }
                Read::Frame(_) => continue,
                other => panic!("expected channel.close, got {other:?}"),
            }
        }
    }

    /// After the server closed the connection, the socket ends.
    pub async fn expect_socket_closed(&mut self) {
        loop {
            match self.read(TIMEOUT).await {
                Read::Closed => return,
                Read::Frame(_) => continue,
                Read::Silent => panic!("socket still open"),
            }
        }
    }
}

/// The frame-end octet.
pub const FRAME_END: u8 = 0xCE;

/// `queue.declare` with the given flags (no arguments, waits for declare-ok).
pub fn queue_declare_with(
    channel: u16,
    name: &str,
    passive: bool,
    durable: bool,
    exclusive: bool,
    auto_delete: bool,
) -> Vec<u8> {
    let declare = queue::Declare {
        queue: name.into(),
        passive,
        durable,
        exclusive,
        auto_delete,
        nowait: false,
        arguments: FieldTable::default(),
    };
    method(channel, AMQPClass::Queue(queue::AMQPMethod::Declare(declare)))
}

/// A plain (non-durable, non-exclusive) `queue.declare`.
pub fn queue_declare(channel: u16, name: &str) -> Vec<u8> {
    queue_declare_with(channel, name, false, false, false, false)
}

pub fn publish(channel: u16, exchange: &str, routing_key: &str) -> Vec<u8> {
    let p = basic::Publish {
        exchange: exchange.into(),
        routing_key: routing_key.into(),
        mandatory: false,
        immediate: false,
    };
    method(channel, AMQPClass::Basic(basic::AMQPMethod::Publish(p)))
}

pub fn content_header(channel: u16, body_size: u64, properties: AMQPProperties) -> Vec<u8> {
    encode(&AMQPFrame::Header(channel, AMQPContentHeader { class_id: 60, body_size, properties }))
}

pub fn content_body(channel: u16, body: &[u8]) -> Vec<u8> {
    raw_frame(3, channel, body, FRAME_END)
}

/// basic.publish, its content header and the body cut into frames of at most `frame_max`.
pub fn message(
    channel: u16,
    exchange: &str,
    routing_key: &str,
    properties: AMQPProperties,
    body: &[u8],
    frame_max: u32,
) -> Vec<u8> {
    let mut v = publish(channel, exchange, routing_key);
    v.extend(content_header(channel, body.len() as u64, properties));
    for part in body.chunks(frame_max as usize - 8) {
        v.extend(content_body(channel, part));
    }
    v
}

pub fn basic_get(channel: u16, queue: &str) -> Vec<u8> {
    let get = basic::Get { queue: queue.into(), no_ack: true };
    method(channel, AMQPClass::Basic(basic::AMQPMethod::Get(get)))
}

impl Raw {
    /// The next frame other than a heartbeat; panics on a closed or silent socket.
    pub async fn expect_frame(&mut self) -> AMQPFrame {
        loop {
            match self.read(TIMEOUT).await {
                Read::Frame(AMQPFrame::Heartbeat) => continue,
                Read::Frame(f) => return f,
                other => panic!("expected a frame, got {other:?}"),
            }
        }
    }

    /// The next method, which must arrive on channel `ch`.
    pub async fn expect_method_on(&mut self, ch: u16) -> AMQPClass {
        match self.expect_frame().await {
            AMQPFrame::Method(id, m) if id == ch => m,
            other => panic!("expected a method on channel {ch}, got {other:?}"),
        }
    }

    /// Declares a plain queue on `ch` (empty name: server-named) and returns its name.
    pub async fn declare_queue(&mut self, ch: u16, name: &str) -> String {
        self.send(&queue_declare(ch, name)).await;
        match self.expect_method_on(ch).await {
            AMQPClass::Queue(queue::AMQPMethod::DeclareOk(ok)) => ok.queue.to_string(),
            other => panic!("expected queue.declare-ok, got {other:?}"),
        }
    }

    /// A content header and its body frames on `ch`.
    pub async fn expect_content(&mut self, ch: u16) -> (AMQPProperties, Vec<u8>) {
        let header = match self.expect_frame().await {
            AMQPFrame::Header(id, h) if id == ch => h,
            other => panic!("expected a content header on channel {ch}, got {other:?}"),
        };
        let mut body = Vec::new();
        while (body.len() as u64) < header.body_size {
            match self.expect_frame().await {
                AMQPFrame::Body(id, part) if id == ch => body.extend(part),
                other => panic!("expected a content body on channel {ch}, got {other:?}"),
            }
        }
        assert_eq!(body.len() as u64, header.body_size, "body longer than announced");
        (header.properties, body)
    }

    /// basic.get (no_ack) on `ch`: the message's properties and body, or None if empty.
    pub async fn get(&mut self, ch: u16, queue: &str) -> Option<(AMQPProperties, Vec<u8>)> {
        self.send(&basic_get(ch, queue)).await;
        match self.expect_method_on(ch).await {
            AMQPClass::Basic(basic::AMQPMethod::GetOk(_)) => Some(self.expect_content(ch).await),
            AMQPClass::Basic(basic::AMQPMethod::GetEmpty(_)) => None,
            other => panic!("expected basic.get-ok or get-empty, got {other:?}"),
        }
    }

    /// basic.get until a message comes (for up to 5 s): for messages that
    /// arrive through another connection, some time after it sent them.
    pub async fn get_eventually(&mut self, ch: u16, queue: &str) -> Option<(AMQPProperties, Vec<u8>)> {
        for _ in 0..100 {
            if let Some(got) = self.get(ch, queue).await {
                return Some(got);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        None
    }

    /// Proves channel `ch` works: declares a queue, publishes to it and gets the message back.
    pub async fn round_trip(&mut self, ch: u16) {
        let q = self.declare_queue(ch, "").await;
        let body = format!("ping {ch} {}", fastrand::u64(..)).into_bytes();
        self.send(&message(ch, "", &q, AMQPProperties::default(), &body, 4096)).await;
        let got = self.get(ch, &q).await.map(|(_, b)| b);
        assert_eq!(got.as_deref(), Some(&body[..]), "round trip on channel {ch}");
    }

    /// For input the broker refuses during the handshake: reads until the socket
    /// closes, answering a connection.close on the way. Returns the close, if any.
    pub async fn expect_close_or_eof(&mut self) -> Option<(u16, String, u16, u16)> {
        let mut close = None;
        loop {
            match self.read(TIMEOUT).await {
                Read::Closed => return close,
                Read::Frame(AMQPFrame::Method(
                    0,
                    AMQPClass::Connection(connection::AMQPMethod::Close(c)),
                )) => {
                    let ok = connection::AMQPMethod::CloseOk(connection::CloseOk {});
                    let _ = self.stream.write_all(&method(0, AMQPClass::Connection(ok))).await;
                    close = Some((c.reply_code, c.reply_text.to_string(), c.class_id, c.method_id));
                }
                Read::Frame(_) => continue,
                Read::Silent => panic!("the broker neither closed the socket nor sent connection.close"),
            }
        }
    }
}

/// The broker still serves: a fresh connection opens a channel, declares a
/// queue, publishes and gets the message back.
pub async fn assert_serving(addr: SocketAddr) {
    let mut raw = Raw::open(addr).await;
    raw.open_channel(1).await;
    raw.round_trip(1).await;
}

/// An expected error reply: code, text prefix, class-id, method-id.
pub type Reply = (u16, &'static str, u16, u16);

/// Compares a close (as returned by `expect_*_close`) with what is expected.
pub fn check_reply(got: &(u16, String, u16, u16), want: Reply) {
    let (code, text, class, method) = got;
    assert!(
        *code == want.0 && text.starts_with(want.1) && *class == want.2 && *method == want.3,
        "got ({code}, {text:?}, {class}, {method}), expected ({}, {:?}..., {}, {})",
        want.0,
        want.1,
        want.2,
        want.3
    );
}

/// Sends `input` on a fresh connection with channels 1 and 2 open and
/// expects the connection to be closed with `want`.
pub async fn connection_error(addr: SocketAddr, input: &[u8], want: Reply) {
    let mut raw = Raw::open(addr).await;
    raw.open_channel(1).await;
    raw.open_channel(2).await;
    connection_error_on(raw, addr, input, want).await;
}

/// Sends `input` on `raw` and expects connection.close with `want`, then the
/// end of the socket; then checks the broker still serves new connections.
pub async fn connection_error_on(mut raw: Raw, addr: SocketAddr, input: &[u8], want: Reply) {
    raw.send(input).await;
    let got = raw.expect_connection_close().await;
    check_reply(&got, want);
    raw.expect_socket_closed().await;
    assert_serving(addr).await;
}

/// Sends `input` on a fresh connection with channels 1 and 2 open and
/// expects channel 1 to be closed with `want`.
pub async fn channel_error(addr: SocketAddr, input: &[u8], want: Reply) {
    let mut raw = Raw::open(addr).await;
    raw.open_channel(1).await;
    raw.open_channel(2).await;
    channel_error_on(&mut raw, addr, 1, 2, input, want).await;
}

/// Sends `input` on `raw` and expects channel.close on `ch` with `want`.
/// Then: channel `other` (open) still works, `ch` can be reopened after
/// close-ok and works, and the broker serves new connections.
pub async fn channel_error_on(
    raw: &mut Raw,
    addr: SocketAddr,
    ch: u16,
    other: u16,
    input: &[u8],
    want: Reply,
) {
    raw.send(input).await;
    let got = raw.expect_channel_close(ch).await;
    check_reply(&got, want);
    raw.round_trip(other).await;
    raw.open_channel(ch).await;
    raw.round_trip(ch).await;
    assert_serving(addr).await;
}

/// Stored messages and index entries a stopped broker left in `dir` (a
/// message held by one queue is kept in its place, and counted there).
pub fn stored(dir: &std::path::Path) -> (usize, usize) {
    use warren::store::{IndexEntry, Store};
    let store = warren::store::rocks::RocksStore::open(dir).unwrap();
    let max = store.load().unwrap().max_message_id;
    let ids: Vec<u64> = (1..=max).collect();
    let mut messages = store.read_messages(&ids).unwrap().iter().filter(|m| m.is_some()).count();
    let mut places = Vec::new();
    store.scan_index(&mut |queue, e| places.push((queue, e))).unwrap();
    for (queue, e) in places.iter().filter(|(_, e)| e.has(IndexEntry::INLINE)) {
        messages += usize::from(store.read_places(*queue, &[e.seq]).unwrap()[0].is_some());
    }
    (messages, places.len())
}
