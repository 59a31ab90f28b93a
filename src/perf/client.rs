//! A minimal, fast AMQP client for benchmarking: raw frames over one
//! socket, the handshake done by hand, hot frames pre-encoded.

use std::time::Duration;

use amq_protocol::frame::{parse_frame, AMQPFrame};
use amq_protocol::protocol::{basic, channel, confirm, connection, exchange, queue, AMQPClass};
use amq_protocol::types::{FieldTable, LongString};
use bytes::BytesMut;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;

use crate::protocol::encode;
use crate::protocol::frame::{decode, Frame};

pub type Error = Box<dyn std::error::Error + Send + Sync>;
pub type Result<T> = std::result::Result<T, Error>;

/// `amqp://user:pass@host:port/vhost`, the parts a benchmark needs.
#[derive(Debug, Clone)]
pub struct Uri {
    pub host: String,
    pub port: u16,
    pub user: String,
    pub password: String,
    pub vhost: String,
    /// The floor relay (`super::floor`), not a broker: no handshake, no
    /// topology, and the sender's frames are deliveries already.
    pub relay: bool,
}

/// Which end of a pair a connection to the floor relay is: the relay joins
/// each sender (producer, requester) to the next receiver (consumer,
/// responder) and closes every other connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Sender = b'S' as isize,
    Receiver = b'R' as isize,
    Control = b'C' as isize,
}

impl Uri {
    pub fn parse(s: &str) -> Result<Uri> {
        let rest = s.strip_prefix("amqp://").ok_or("the URI must start with amqp://")?;
        let (auth, rest) = rest.rsplit_once('@').unwrap_or(("guest:guest", rest));
        let (user, password) = auth.split_once(':').unwrap_or((auth, ""));
        let (hostport, vhost) = rest.split_once('/').unwrap_or((rest, ""));
        let (host, port) = match hostport.rsplit_once(':') {
            Some((h, p)) => (h.to_owned(), p.parse()?),
            None => (hostport.to_owned(), 5672),
        };
        let vhost = match vhost.split('?').next().unwrap_or("") {
            "" => "/".to_owned(),
            v => v.replace("%2f", "/").replace("%2F", "/"),
        };
        Ok(Uri { host, port, user: user.to_owned(), password: password.to_owned(), vhost, relay: false })
    }
}

/// One connection. Reading and writing halves can be driven by different tasks.
pub struct Client {
    pub rd: Reader,
    pub wr: OwnedWriteHalf,
    pub frame_max: u32,
    /// Connected to the floor relay: methods that would wait for a broker's
    /// reply do nothing.
    pub relay: bool,
}

pub struct Reader {
    half: OwnedReadHalf,
    buf: BytesMut,
}

impl Reader {
    /// The next frame (raw payload), reading as needed.
    pub async fn next(&mut self) -> Result<Frame> {
        loop {
            if let Some(f) = decode(&mut self.buf, u32::MAX).map_err(|e| e.to_string())? {
                return Ok(f);
            }
            if self.buf.capacity() - self.buf.len() < 16 * 1024 {
                self.buf.reserve(256 * 1024);
            }
            if self.half.read_buf(&mut self.buf).await? == 0 {
                return Err("the broker closed the connection".into());
            }
        }
    }

    /// The next method, fully decoded (for the slow, synchronous replies).
    pub async fn method(&mut self) -> Result<AMQPClass> {
        loop {
            match self.next().await? {
                Frame::Method { payload, .. } => {
                    let mut framed = vec![1, 0, 0];
                    framed.extend_from_slice(&(payload.len() as u32).to_be_bytes());
                    framed.extend_from_slice(&payload);
                    framed.push(0xCE);
                    match parse_frame(&framed[..]) {
                        Ok((_, AMQPFrame::Method(_, m))) => return Ok(m),
                        _ => return Err("unparsable method".into()),
                    }
                }
                Frame::Heartbeat { .. } => continue,
                other => return Err(format!("expected a method, got {other:?}").into()),
            }
        }
    }
}

fn close_text(m: &AMQPClass) -> Option<String> {
    match m {
        AMQPClass::Connection(connection::AMQPMethod::Close(c)) => {
            Some(format!("{} {}", c.reply_code, c.reply_text))
        }
        AMQPClass::Channel(channel::AMQPMethod::Close(c)) => {
            Some(format!("{} {}", c.reply_code, c.reply_text))
        }
        _ => None,
    }
}

impl Client {
    pub async fn connect(uri: &Uri) -> Result<Client> {
        Client::connect_as(uri, Role::Control).await
    }

    /// Connects; to the floor relay, as `role`.
    pub async fn connect_as(uri: &Uri, role: Role) -> Result<Client> {
        let stream =
            tokio::time::timeout(Duration::from_secs(10), TcpStream::connect((uri.host.as_str(), uri.port)))
                .await
                .map_err(|_| "connect timed out")??;
        stream.set_nodelay(true)?;
        let (half, wr) = stream.into_split();
        let mut c = Client {
            rd: Reader { half, buf: BytesMut::with_capacity(256 * 1024) },
            wr,
            frame_max: 131072,
            relay: uri.relay,
        };
        if c.relay {
            c.wr.write_all(&[role as u8]).await?;
            return Ok(c);
        }
        c.wr.write_all(b"AMQP\x00\x00\x09\x01").await?;
        let AMQPClass::Connection(connection::AMQPMethod::Start(_)) = c.rd.method().await? else {
            return Err("expected connection.start".into());
        };
        let mut caps = FieldTable::default();
        for cap in ["publisher_confirms", "consumer_cancel_notify", "connection.blocked", "basic.nack"] {
            caps.insert(cap.into(), true.into());
        }
        let mut props = FieldTable::default();
        props.insert("capabilities".into(), amq_protocol::types::AMQPValue::FieldTable(caps));
        props.insert("product".into(), amq_protocol::types::AMQPValue::LongString("warren-perf".into()));
        let start_ok = connection::StartOk {
            client_properties: props,
            mechanism: "PLAIN".into(),
            response: LongString::from(format!("\0{}\0{}", uri.user, uri.password).into_bytes()),
            locale: "en_US".into(),
        };
        c.send(0, AMQPClass::Connection(connection::AMQPMethod::StartOk(start_ok))).await?;
        let tune = match c.rd.method().await? {
            AMQPClass::Connection(connection::AMQPMethod::Tune(t)) => t,
            m => return Err(close_text(&m).unwrap_or_else(|| "expected connection.tune".into()).into()),
        };
        c.frame_max = tune.frame_max.min(131072);
        let tune_ok =
            connection::TuneOk { channel_max: tune.channel_max, frame_max: c.frame_max, heartbeat: 0 };
        c.send(0, AMQPClass::Connection(connection::AMQPMethod::TuneOk(tune_ok))).await?;
        let open = connection::Open { virtual_host: uri.vhost.as_str().into() };
        c.send(0, AMQPClass::Connection(connection::AMQPMethod::Open(open))).await?;
        c.expect(|m| matches!(m, AMQPClass::Connection(connection::AMQPMethod::OpenOk(_)))).await?;
        c.send(1, AMQPClass::Channel(channel::AMQPMethod::Open(channel::Open {}))).await?;
        c.expect(|m| matches!(m, AMQPClass::Channel(channel::AMQPMethod::OpenOk(_)))).await?;
        Ok(c)
    }

    pub async fn send(&mut self, ch: u16, m: AMQPClass) -> Result<()> {
        let mut out = Vec::new();
        encode::method(&mut out, ch, &m);
        self.wr.write_all(&out).await?;
        Ok(())
    }

    async fn expect(&mut self, ok: impl Fn(&AMQPClass) -> bool) -> Result<AMQPClass> {
        let m = self.rd.method().await?;
        if ok(&m) {
            return Ok(m);
        }
        Err(close_text(&m).unwrap_or_else(|| format!("unexpected reply {m:?}")).into())
    }

    /// Sends a method on channel 1 and waits for its reply.
    /// Over the floor relay nothing answers: the method is not sent and its
    /// own reply is returned (callers that read a reply's fields check
    /// `relay` themselves).
    pub async fn call(&mut self, m: AMQPClass) -> Result<AMQPClass> {
        if self.relay {
            return Ok(m);
        }
        self.send(1, m).await?;
        self.expect(|_| true).await.and_then(|m| match close_text(&m) {
            Some(t) => Err(t.into()),
            None => Ok(m),
        })
    }

    pub async fn declare_queue(&mut self, name: &str, durable: bool, exclusive: bool) -> Result<String> {
        self.declare_queue_with(name, durable, exclusive, FieldTable::default()).await
    }

    /// Messages ready in a queue (a passive declare).
    pub async fn message_count(&mut self, name: &str) -> Result<u32> {
        let d = queue::Declare { queue: name.into(), passive: true, ..Default::default() };
        match self.call(AMQPClass::Queue(queue::AMQPMethod::Declare(d))).await? {
            AMQPClass::Queue(queue::AMQPMethod::DeclareOk(ok)) => Ok(ok.message_count),
            m => Err(format!("unexpected reply {m:?}").into()),
        }
    }

    pub async fn declare_queue_with(
        &mut self,
        name: &str,
        durable: bool,
        exclusive: bool,
        arguments: FieldTable,
    ) -> Result<String> {
        let d = queue::Declare {
            queue: name.into(),
            passive: false,
            durable,
            exclusive,
            auto_delete: false,
            nowait: false,
            arguments,
        };
        if self.relay {
            return Ok(if name.is_empty() { "floor-reply".to_owned() } else { name.to_owned() });
        }
        match self.call(AMQPClass::Queue(queue::AMQPMethod::Declare(d))).await? {
            AMQPClass::Queue(queue::AMQPMethod::DeclareOk(ok)) => Ok(ok.queue.to_string()),
            m => Err(format!("unexpected reply {m:?}").into()),
        }
    }

    pub async fn delete_exchange(&mut self, name: &str) -> Result<()> {
        let d = exchange::Delete { exchange: name.into(), if_unused: false, nowait: false };
        self.call(AMQPClass::Exchange(exchange::AMQPMethod::Delete(d))).await.map(drop)
    }

    pub async fn delete_queue(&mut self, name: &str) -> Result<()> {
        let d = queue::Delete { queue: name.into(), if_unused: false, if_empty: false, nowait: false };
        self.call(AMQPClass::Queue(queue::AMQPMethod::Delete(d))).await.map(drop)
    }

    pub async fn declare_exchange(&mut self, name: &str, kind: &str, durable: bool) -> Result<()> {
        self.declare_exchange_with(name, kind, durable, FieldTable::default()).await
    }

    pub async fn declare_exchange_with(
        &mut self,
        name: &str,
        kind: &str,
        durable: bool,
        arguments: FieldTable,
    ) -> Result<()> {
        let d = exchange::Declare {
            exchange: name.into(),
            kind: kind.into(),
            passive: false,
            durable,
            auto_delete: false,
            internal: false,
            nowait: false,
            arguments,
        };
        self.call(AMQPClass::Exchange(exchange::AMQPMethod::Declare(d))).await.map(drop)
    }

    pub async fn bind(&mut self, queue: &str, exchange: &str, key: &str) -> Result<()> {
        let b = queue::Bind {
            queue: queue.into(),
            exchange: exchange.into(),
            routing_key: key.into(),
            nowait: false,
            arguments: FieldTable::default(),
        };
        self.call(AMQPClass::Queue(queue::AMQPMethod::Bind(b))).await.map(drop)
    }

    pub async fn qos(&mut self, prefetch: u16) -> Result<()> {
        let q = basic::Qos { prefetch_count: prefetch, global: false };
        self.call(AMQPClass::Basic(basic::AMQPMethod::Qos(q))).await.map(drop)
    }

    pub async fn confirm_select(&mut self) -> Result<()> {
        let s = confirm::Select { nowait: false };
        self.call(AMQPClass::Confirm(confirm::AMQPMethod::Select(s))).await.map(drop)
    }

    pub async fn consume(&mut self, queue: &str, no_ack: bool) -> Result<()> {
        self.consume_with(queue, no_ack, FieldTable::default()).await
    }

    pub async fn consume_with(&mut self, queue: &str, no_ack: bool, arguments: FieldTable) -> Result<()> {
        let c = basic::Consume {
            queue: queue.into(),
            consumer_tag: "".into(),
            no_local: false,
            no_ack,
            exclusive: false,
            nowait: false,
            arguments,
        };
        self.call(AMQPClass::Basic(basic::AMQPMethod::Consume(c))).await.map(drop)
    }

    pub async fn close(mut self) {
        if self.relay {
            return;
        }
        let c = connection::Close { reply_code: 200, reply_text: "bye".into(), class_id: 0, method_id: 0 };
        let _ = self.send(0, AMQPClass::Connection(connection::AMQPMethod::Close(c))).await;
        let _ = tokio::time::timeout(Duration::from_secs(2), self.rd.method()).await;
    }
}

/// `basic.publish` + header + body, encoded once and written many times.
pub fn encode_publish(
    exchange: &str,
    routing_key: &str,
    body_len: usize,
    persistent: bool,
    headers: Option<&FieldTable>,
    frame_max: u32,
    as_delivery: bool,
) -> (Vec<u8>, usize) {
    let mut out = Vec::new();
    if as_delivery {
        // What the floor relay's receiver gets: what a broker would deliver.
        encode::deliver(&mut out, 1, b"floor", 1, false, exchange.as_bytes(), routing_key.as_bytes());
    } else {
        let p = basic::Publish {
            exchange: exchange.into(),
            routing_key: routing_key.into(),
            mandatory: false,
            immediate: false,
        };
        encode::method(&mut out, 1, &AMQPClass::Basic(basic::AMQPMethod::Publish(p)));
    }
    let mut props = if persistent {
        basic::AMQPProperties::default().with_delivery_mode(2)
    } else {
        basic::AMQPProperties::default()
    };
    if let Some(h) = headers {
        props = props.with_headers(h.clone());
    }
    let header = crate::protocol::properties::encode_header(body_len as u64, &props);
    let body = vec![0u8; body_len];
    let body_at = out.len() + 7 + header.len() + 1 + 7;
    encode::content(&mut out, 1, &header, &body, frame_max);
    (out, body_at)
}

/// `basic.ack` (multiple) on channel 1.
pub fn encode_ack(out: &mut Vec<u8>, tag: u64, multiple: bool) {
    out.extend_from_slice(&[1, 0, 1, 0, 0, 0, 13, 0, 60, 0, 80]);
    out.extend_from_slice(&tag.to_be_bytes());
    out.push(u8::from(multiple));
    out.push(0xCE);
}

/// The delivery tag of a `basic.deliver` payload.
pub fn deliver_tag(payload: &[u8]) -> Option<u64> {
    let tag_len = *payload.get(4)? as usize;
    let at = 5 + tag_len;
    Some(u64::from_be_bytes(payload.get(at..at + 8)?.try_into().ok()?))
}
