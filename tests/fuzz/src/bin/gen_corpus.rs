//! Seeds for every fuzz target, made from real client sessions: lapin talks
//! to an in-process Warren (memory store) through a proxy that records what
//! the client sends; each recording is cut into what each target reads.
//! `interop/fuzz.sh gen` runs it, then minimises the result into the
//! committed corpus.
//!
//! Usage: gen-corpus OUT_DIR (writes OUT_DIR/<target>/<name>).

use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_lite::StreamExt;
use lapin::options::*;
use lapin::types::{AMQPValue, FieldArray, FieldTable, LongString};
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties, ExchangeKind};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use warren::protocol::PROTOCOL_HEADER;
use warren_fuzz::to_records;

type Result<T = ()> = std::result::Result<T, Box<dyn std::error::Error + Send + Sync>>;
type Scenario = fn(Connection) -> Pin<Box<dyn Future<Output = Result> + Send>>;

/// Listens once; forwards one client to Warren, recording what it sends.
async fn recorder(warren: SocketAddr) -> (SocketAddr, Arc<Mutex<Vec<u8>>>, tokio::task::JoinHandle<()>) {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let rec = Arc::new(Mutex::new(Vec::new()));
    let r = rec.clone();
    let task = tokio::spawn(async move {
        let (client, _) = l.accept().await.unwrap();
        let server = TcpStream::connect(warren).await.unwrap();
        let (mut cr, mut cw) = client.into_split();
        let (mut sr, mut sw) = server.into_split();
        let up = async move {
            let mut buf = vec![0u8; 65536];
            while let Ok(n) = cr.read(&mut buf).await {
                if n == 0 {
                    break;
                }
                r.lock().unwrap().extend_from_slice(&buf[..n]);
                if sw.write_all(&buf[..n]).await.is_err() {
                    break;
                }
            }
            let _ = sw.shutdown().await;
        };
        let down = async move {
            let _ = tokio::io::copy(&mut sr, &mut cw).await;
            let _ = cw.shutdown().await;
        };
        tokio::join!(up, down);
    });
    (addr, rec, task)
}

fn args(pairs: &[(&str, AMQPValue)]) -> FieldTable {
    let mut t = FieldTable::default();
    for (k, v) in pairs {
        t.insert((*k).into(), v.clone());
    }
    t
}

fn long(s: &str) -> AMQPValue {
    AMQPValue::LongString(LongString::from(s))
}

fn rich_properties() -> BasicProperties {
    let mut death = FieldTable::default();
    death.insert("count".into(), AMQPValue::LongLongInt(1));
    death.insert("queue".into(), long("q"));
    death.insert("reason".into(), long("rejected"));
    let headers = args(&[
        ("x-trace", long("abc")),
        ("n", AMQPValue::LongInt(-7)),
        ("b", AMQPValue::Boolean(true)),
        ("d", AMQPValue::Double(2.5)),
        ("t", AMQPValue::Timestamp(1_700_000_000)),
        ("x-death", AMQPValue::FieldArray(FieldArray::from(vec![AMQPValue::FieldTable(death)]))),
        ("v", AMQPValue::Void),
    ]);
    BasicProperties::default()
        .with_content_type("application/json".into())
        .with_content_encoding("gzip".into())
        .with_headers(headers)
        .with_delivery_mode(2)
        .with_priority(3)
        .with_correlation_id("c-1".into())
        .with_reply_to("replies".into())
        .with_expiration("60000".into())
        .with_message_id("m-1".into())
        .with_timestamp(1_700_000_000)
        .with_type("evt".into())
        .with_user_id("guest".into())
        .with_app_id("gen".into())
}

async fn publish(ch: &Channel, ex: &str, rk: &str, body: &[u8], props: BasicProperties) -> Result {
    ch.basic_publish(ex.into(), rk.into(), BasicPublishOptions::default(), body, props).await?;
    Ok(())
}

/// Queue, publish (plain and with every property), consume, ack, get, close.
fn basic(conn: Connection) -> Pin<Box<dyn Future<Output = Result> + Send>> {
    Box::pin(async move {
        let ch = conn.create_channel().await?;
        ch.queue_declare("q1".into(), QueueDeclareOptions::default(), FieldTable::default()).await?;
        publish(&ch, "", "q1", b"hello", BasicProperties::default()).await?;
        publish(&ch, "", "q1", br#"{"k":1}"#, rich_properties()).await?;
        publish(&ch, "", "q1", &vec![b'x'; 10_000], BasicProperties::default()).await?;
        publish(&ch, "", "q1", b"", BasicProperties::default()).await?;
        ch.basic_qos(10, BasicQosOptions::default()).await?;
        let mut consumer = ch
            .basic_consume("q1".into(), "c1".into(), BasicConsumeOptions::default(), FieldTable::default())
            .await?;
        for _ in 0..2 {
            let d = consumer.next().await.ok_or("no delivery")??;
            d.ack(BasicAckOptions::default()).await?;
        }
        let d = consumer.next().await.ok_or("no delivery")??;
        d.ack(BasicAckOptions { multiple: true }).await?;
        ch.basic_cancel("c1".into(), BasicCancelOptions::default()).await?;
        let _ = ch.basic_get("q1".into(), BasicGetOptions { no_ack: true }).await?;
        ch.queue_delete("q1".into(), QueueDeleteOptions::default()).await?;
        ch.close(200, "bye".into()).await?;
        conn.close(200, "bye".into()).await?;
        Ok(())
    })
}

/// Publisher confirms, mandatory publishes that come back, nack, reject, recover.
fn confirms(conn: Connection) -> Pin<Box<dyn Future<Output = Result> + Send>> {
    Box::pin(async move {
        let ch = conn.create_channel().await?;
        ch.confirm_select(ConfirmSelectOptions::default()).await?;
        let q = ch
            .queue_declare(
                "".into(),
                QueueDeclareOptions { exclusive: true, ..Default::default() },
                args(&[
                    ("x-max-length", AMQPValue::LongInt(100)),
                    ("x-message-ttl", AMQPValue::LongInt(60_000)),
                ]),
            )
            .await?;
        let name = q.name().as_str().to_owned();
        let mut confirms = Vec::new();
        for i in 0..5u8 {
            confirms.push(
                ch.basic_publish(
                    "".into(),
                    name.as_str().into(),
                    BasicPublishOptions::default(),
                    &[i; 10],
                    BasicProperties::default().with_delivery_mode(2),
                )
                .await?,
            );
        }
        let back = ch
            .basic_publish(
                "amq.direct".into(),
                "nowhere".into(),
                BasicPublishOptions { mandatory: true, ..Default::default() },
                b"returned",
                BasicProperties::default(),
            )
            .await?;
        for c in confirms {
            c.await?;
        }
        back.await?;
        let ch2 = conn.create_channel().await?;
        for (tag, _) in (1..=3).zip(0..) {
            let _ = ch2.basic_get(name.as_str().into(), BasicGetOptions::default()).await?;
            match tag {
                1 => ch2.basic_reject(tag, BasicRejectOptions { requeue: true }).await?,
                2 => ch2.basic_nack(tag, BasicNackOptions { multiple: false, requeue: false }).await?,
                _ => {}
            }
        }
        ch2.basic_recover(BasicRecoverOptions { requeue: true }).await?;
        ch2.close(200, "bye".into()).await?;
        conn.close(200, "bye".into()).await?;
        Ok(())
    })
}

/// Exchanges of every type with arguments, bindings, exchange-to-exchange
/// bindings, headers routing, unbinding, purge and deletes.
fn topology(conn: Connection) -> Pin<Box<dyn Future<Output = Result> + Send>> {
    Box::pin(async move {
        let ch = conn.create_channel().await?;
        let durable = ExchangeDeclareOptions { durable: true, ..Default::default() };
        ch.exchange_declare("t".into(), ExchangeKind::Topic, durable, FieldTable::default()).await?;
        ch.exchange_declare(
            "h".into(),
            ExchangeKind::Headers,
            ExchangeDeclareOptions::default(),
            args(&[("alternate-exchange", long("f"))]),
        )
        .await?;
        ch.exchange_declare(
            "f".into(),
            ExchangeKind::Fanout,
            ExchangeDeclareOptions::default(),
            FieldTable::default(),
        )
        .await?;
        let qargs = args(&[
            ("x-max-priority", AMQPValue::ShortShortUInt(5)),
            ("x-dead-letter-exchange", long("f")),
            ("x-queue-mode", long("lazy")),
        ]);
        ch.queue_declare("tq".into(), QueueDeclareOptions { durable: true, ..Default::default() }, qargs)
            .await?;
        ch.queue_bind(
            "tq".into(),
            "t".into(),
            "a.*.#".into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await?;
        let hargs = args(&[("x-match", long("any")), ("k", long("v")), ("n", AMQPValue::LongInt(1))]);
        ch.queue_bind("tq".into(), "h".into(), "".into(), QueueBindOptions::default(), hargs.clone()).await?;
        ch.exchange_bind(
            "f".into(),
            "t".into(),
            "#".into(),
            ExchangeBindOptions::default(),
            FieldTable::default(),
        )
        .await?;
        publish(&ch, "t", "a.b.c", b"topic", BasicProperties::default().with_priority(4)).await?;
        publish(&ch, "h", "", b"headers", BasicProperties::default().with_headers(args(&[("k", long("v"))])))
            .await?;
        ch.queue_unbind("tq".into(), "h".into(), "".into(), hargs).await?;
        ch.exchange_unbind(
            "f".into(),
            "t".into(),
            "#".into(),
            ExchangeUnbindOptions::default(),
            FieldTable::default(),
        )
        .await?;
        ch.queue_purge("tq".into(), QueuePurgeOptions::default()).await?;
        ch.queue_delete("tq".into(), QueueDeleteOptions { if_unused: true, ..Default::default() }).await?;
        for x in ["t", "h", "f"] {
            ch.exchange_delete(x.into(), ExchangeDeleteOptions::default()).await?;
        }
        // A channel error: the channel is closed by the broker.
        let bad = conn.create_channel().await?;
        let _ = bad
            .queue_declare(
                "missing".into(),
                QueueDeclareOptions { passive: true, ..Default::default() },
                FieldTable::default(),
            )
            .await;
        conn.close(200, "bye".into()).await?;
        Ok(())
    })
}

/// Transactions, channel.flow, a consumer with arguments and no-ack.
fn tx(conn: Connection) -> Pin<Box<dyn Future<Output = Result> + Send>> {
    Box::pin(async move {
        let ch = conn.create_channel().await?;
        ch.queue_declare(
            "txq".into(),
            QueueDeclareOptions { auto_delete: true, ..Default::default() },
            FieldTable::default(),
        )
        .await?;
        ch.tx_select().await?;
        publish(&ch, "", "txq", b"one", BasicProperties::default()).await?;
        ch.tx_commit().await?;
        publish(&ch, "", "txq", b"two", BasicProperties::default()).await?;
        ch.tx_rollback().await?;
        ch.channel_flow(ChannelFlowOptions { active: true }).await?;
        let mut c = ch
            .basic_consume(
                "txq".into(),
                "".into(),
                BasicConsumeOptions { no_ack: true, exclusive: true, ..Default::default() },
                args(&[("x-priority", AMQPValue::LongInt(10))]),
            )
            .await?;
        let _ = c.next().await;
        ch.close(200, "bye".into()).await?;
        conn.close(200, "bye".into()).await?;
        Ok(())
    })
}

async fn record(warren: SocketAddr, query: &str, scenario: Scenario) -> Vec<u8> {
    let (addr, rec, task) = recorder(warren).await;
    let url = format!("amqp://guest:guest@{addr}/%2f{query}");
    let props = ConnectionProperties::default().with_connection_name("warren-fuzz-seed".into());
    let conn = Connection::connect(&url, props).await.expect("lapin connects");
    if let Err(e) = tokio::time::timeout(Duration::from_secs(20), scenario(conn)).await.expect("in time") {
        eprintln!("scenario ended with {e}");
    }
    let _ = tokio::time::timeout(Duration::from_secs(5), task).await;
    let v = rec.lock().unwrap().clone();
    v
}

fn write(dir: &Path, target: &str, name: &str, data: &[u8]) {
    let d = dir.join(target);
    std::fs::create_dir_all(&d).unwrap();
    std::fs::write(d.join(name), data).unwrap();
}

/// The frames of a client stream (protocol header already taken off).
fn frames(mut b: &[u8]) -> Vec<(u8, u16, &[u8], &[u8])> {
    let mut out = Vec::new();
    while b.len() >= 8 {
        let size = u32::from_be_bytes([b[3], b[4], b[5], b[6]]) as usize;
        if b.len() < size + 8 {
            break;
        }
        out.push((b[0], u16::from_be_bytes([b[1], b[2]]), &b[7..7 + size], &b[..size + 8]));
        b = &b[size + 8..];
    }
    out
}

/// Cuts one session into each target's inputs.
fn cut(dir: &Path, name: &str, stream: &[u8]) {
    assert!(stream.starts_with(PROTOCOL_HEADER), "{name}: a 0-9-1 session");
    let after_header = &stream[8..];
    write(dir, "handshake", &format!("{name}-raw"), &[&[0u8][..], stream].concat());
    if let Some(r) = to_records(after_header) {
        write(dir, "handshake", &format!("{name}-rec"), &[&[1u8][..], &r].concat());
    }
    write(dir, "frame", name, &[&[1u8, 7][..], after_header].concat());
    let fs = frames(after_header);
    // What follows the handshake: everything after connection.open.
    let open_at = fs.iter().position(|(k, c, p, _)| *k == 1 && *c == 0 && p.starts_with(&[0, 10, 0, 40]));
    if let Some(i) = open_at {
        let rest: Vec<u8> = fs[i + 1..].iter().flat_map(|f| f.3.iter().copied()).collect();
        write(dir, "connection", &format!("{name}-raw"), &[&[0u8][..], &rest].concat());
        if let Some(r) = to_records(&rest) {
            write(dir, "connection", &format!("{name}-rec"), &[&[1u8][..], &r].concat());
            // The same, fed a few bytes at a time.
            write(dir, "connection", &format!("{name}-rec-split"), &[&[1u8 | (3 << 1)][..], &r].concat());
        }
    }
    for (i, (kind, _, payload, _)) in fs.iter().enumerate() {
        let n = format!("{name}-{i:03}");
        match kind {
            1 => {
                write(dir, "method", &n, payload);
                match warren::protocol::method::ids(payload) {
                    (60, 40) => write(dir, "fast_diff", &n, &[&[0u8][..], &payload[4..]].concat()),
                    (60, 80) => write(dir, "fast_diff", &n, &[&[1u8][..], &payload[4..]].concat()),
                    (60, 10) => write(dir, "fast_diff", &n, &[&[2u8][..], &payload[4..]].concat()),
                    (10, 11) => {
                        use amq_protocol::protocol::{connection, parse_class, AMQPClass};
                        if let Ok((_, AMQPClass::Connection(connection::AMQPMethod::StartOk(s)))) =
                            parse_class(&payload[..])
                        {
                            let sel = u8::from(s.mechanism.as_str() == "AMQPLAIN");
                            write(dir, "sasl", &n, &[&[sel][..], s.response.as_bytes()].concat());
                        }
                    }
                    _ => {}
                }
                if let Ok((_, class)) = amq_protocol::protocol::parse_class(&payload[..]) {
                    for (j, t) in warren_fuzz::method_tables(&class).into_iter().enumerate() {
                        if !t.inner().is_empty() {
                            write(dir, "table", &format!("{n}-{j}"), &warren_fuzz::gen_table(t)[4..]);
                        }
                    }
                }
            }
            2 => {
                write(dir, "properties", &n, payload);
                if let Ok(h) = warren::protocol::properties::ContentHeader::scan(payload) {
                    if let Some(span) = h.headers {
                        write(dir, "table", &format!("{n}-headers"), &payload[span.range()]);
                    }
                }
            }
            _ => {}
        }
    }
}

fn main() {
    let out = PathBuf::from(std::env::args().nth(1).expect("usage: gen-corpus OUT_DIR"));
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let mut config = warren::config::Config::default();
        config.amqp.listen = "127.0.0.1:0".parse().unwrap();
        config.admin.listen = None;
        config.metrics.listen = None;
        config.storage.data_dir =
            std::env::temp_dir().join(format!("warren-fuzz-gen-{}", std::process::id()));
        let store = Arc::new(warren::store::memory::MemoryStore::default());
        let server = warren::server::Server::start_with_store(config, store).await.expect("warren starts");
        let scenarios: [(&str, &str, Scenario); 5] = [
            ("basic", "", basic),
            ("confirms", "", confirms),
            ("topology", "", topology),
            ("tx", "", tx),
            ("amqplain", "?auth_mechanism=amqplain&heartbeat=5&frame_max=4096", basic),
        ];
        for (name, query, s) in scenarios {
            let stream = record(server.local_addr, query, s).await;
            println!("{name}: {} bytes from the client", stream.len());
            cut(&out, name, &stream);
        }
        server.stop().await;
    });
    // Hand-made extremes the sessions do not show: nesting at the depth limit and past it.
    let nested = |levels: usize| {
        let mut v = vec![1, b'k'];
        for i in 0..levels - 1 {
            v.push(b'A');
            v.extend(((5 * (levels - 2 - i) + 1) as u32).to_be_bytes());
        }
        v.push(b'V');
        v
    };
    write(&out, "table", "nested-64", &nested(warren::protocol::table::MAX_DEPTH));
    write(&out, "table", "nested-65", &nested(warren::protocol::table::MAX_DEPTH + 1));
    write(&out, "sasl", "plain", b"\0\0guest\0guest");
    write(&out, "frame", "heartbeat", &[0, 0, 8, 0, 0, 0, 0, 0, 0, 0xCE]);
}
