//! Shared test harness: an in-process Warren on 127.0.0.1:0 and a raw AMQP
//! client that speaks frames byte for byte.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::time::Duration;

use amq_protocol::frame::{gen_frame, parse_frame, AMQPFrame, WriteContext};
use amq_protocol::protocol::{channel, connection, AMQPClass};
use amq_protocol::types::{FieldTable, LongString};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use warren::config::Config;
use warren::server::Server;

pub const TIMEOUT: Duration = Duration::from_secs(10);

/// Starts a broker on an ephemeral loopback port with its own data directory.
pub async fn start() -> Server {
    start_with(|_| {}).await
}

pub async fn start_with(tweak: impl FnOnce(&mut Config)) -> Server {
    let mut config = Config::default();
    config.amqp.listen = "127.0.0.1:0".parse().unwrap();
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
        self.send(b"AMQP\x00\x00\x09\x01").await;
        let start = self.expect_method().await;
        assert!(matches!(start, AMQPClass::Connection(connection::AMQPMethod::Start(_))), "{start:?}");
        let mut caps = FieldTable::default();
        caps.insert("authentication_failure_close".into(), true.into());
        caps.insert("consumer_cancel_notify".into(), true.into());
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
            channel_max: tune.channel_max,
            frame_max: if frame_max == 0 { tune.frame_max } else { frame_max },
            heartbeat,
        };
        self.send(&method(0, AMQPClass::Connection(connection::AMQPMethod::TuneOk(tune_ok)))).await;
        let open = connection::Open { virtual_host: "/".into() };
        self.send(&method(0, AMQPClass::Connection(connection::AMQPMethod::Open(open)))).await;
        let ok = self.expect_method().await;
        assert!(matches!(ok, AMQPClass::Connection(connection::AMQPMethod::OpenOk(_))), "{ok:?}");
    }

    pub async fn open_channel(&mut self, id: u16) {
        self.send(&method(id, AMQPClass::Channel(channel::AMQPMethod::Open(channel::Open {})))).await;
        let ok = self.expect_method().await;
        assert!(matches!(ok, AMQPClass::Channel(channel::AMQPMethod::OpenOk(_))), "{ok:?}");
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
            let mut chunk = [0u8; 65536];
            match tokio::time::timeout_at(deadline, self.stream.read(&mut chunk)).await {
                Err(_) => return Read::Silent,
                Ok(Ok(0)) | Ok(Err(_)) => return Read::Closed,
                Ok(Ok(n)) => self.buf.extend_from_slice(&chunk[..n]),
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
                Read::Frame(AMQPFrame::Method(0, AMQPClass::Connection(connection::AMQPMethod::Close(c)))) => {
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
                Read::Frame(AMQPFrame::Method(id, AMQPClass::Channel(channel::AMQPMethod::Close(c)))) if id == ch => {
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
