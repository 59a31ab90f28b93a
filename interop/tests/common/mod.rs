//! Shared helpers for the interop tests.
//!
//! Every test talks to a running broker at `$AMQP_URL`, so the same suite can
//! be pointed at Warren or at RabbitMQ. Without `AMQP_URL` the tests start a
//! Warren of their own, in-process on an ephemeral loopback port. All waits are bounded by [`TIMEOUT`] so a
//! broken broker fails a test instead of hanging it.
#![allow(dead_code)]

use futures_lite::StreamExt;
use lapin::{
    message::{BasicGetMessage, Delivery},
    options::{
        BasicConsumeOptions, BasicGetOptions, BasicPublishOptions, ConfirmSelectOptions, QueueDeclareOptions,
        QueueDeleteOptions,
    },
    protocol::{AMQPError, AMQPErrorKind},
    types::FieldTable,
    BasicProperties, Channel, Confirmation, Connection, ConnectionProperties, Consumer, ErrorKind,
};
use std::{
    fmt::Debug,
    future::Future,
    sync::atomic::{AtomicU64, Ordering},
    time::{Duration, SystemTime, UNIX_EPOCH},
};

/// Upper bound for any single wait on the broker.
pub const TIMEOUT: Duration = Duration::from_secs(10);

/// How long to wait before concluding that a message was *not* delivered.
pub const QUIET: Duration = Duration::from_millis(300);

pub const DEFAULT_URL: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";

// AMQP reply codes used by the tests.
pub const ACCESS_REFUSED: u16 = 403;
pub const NOT_FOUND: u16 = 404;
pub const RESOURCE_LOCKED: u16 = 405;
pub const PRECONDITION_FAILED: u16 = 406;

pub fn amqp_url() -> String {
    std::env::var("AMQP_URL").ok().filter(|s| !s.trim().is_empty()).unwrap_or_else(embedded_warren)
}

/// A Warren shared by every test of this binary, on a runtime of its own
/// (each `#[tokio::test]` has a runtime that ends with the test).
fn embedded_warren() -> String {
    static URL: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    URL.get_or_init(|| {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
            rt.block_on(async move {
                let mut config = warren::config::Config::default();
                config.amqp.listen = "127.0.0.1:0".parse().unwrap();
                config.storage.data_dir = std::env::temp_dir().join(format!("warren-interop-{}", std::process::id()));
                let server = warren::server::Server::start(config).await.expect("embedded Warren starts");
                tx.send(format!("amqp://guest:guest@{}/%2f", server.local_addr)).unwrap();
                std::future::pending::<()>().await;
            });
        });
        rx.recv().expect("embedded Warren reports its address")
    })
    .clone()
}

/// `$AMQP_URL` with extra query parameters (e.g. `frame_max=131072`) appended.
pub fn amqp_url_with_query(query: &str) -> String {
    let url = amqp_url();
    let sep = if url.contains('?') { '&' } else { '?' };
    format!("{url}{sep}{query}")
}

/// Await `fut`, panicking with `what` if it does not finish within [`TIMEOUT`].
pub async fn within<F: Future>(what: &str, fut: F) -> F::Output {
    match tokio::time::timeout(TIMEOUT, fut).await {
        Ok(v) => v,
        Err(_) => panic!("timed out after {TIMEOUT:?} waiting for {what}"),
    }
}

pub async fn connect() -> Connection {
    connect_to(&amqp_url()).await
}

pub async fn connect_to(url: &str) -> Connection {
    let props = ConnectionProperties::default().with_connection_name("warren-interop".into());
    within("connection open", Connection::connect(url, props))
        .await
        .unwrap_or_else(|e| panic!("cannot connect to {url}: {e}"))
}

pub async fn channel(conn: &Connection) -> Channel {
    within("channel open", conn.create_channel()).await.expect("channel.open")
}

/// A connection plus one open channel.
pub async fn setup() -> (Connection, Channel) {
    let conn = connect().await;
    let ch = channel(&conn).await;
    (conn, ch)
}

/// Close the connection politely (bounded, errors ignored).
pub async fn teardown(conn: Connection) {
    let _ = tokio::time::timeout(TIMEOUT, conn.close(200, "bye".into())).await;
}

/// A name that is unique across tests, processes and runs.
pub fn unique(prefix: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().subsec_nanos();
    format!("interop.{prefix}.{}.{nanos:x}.{n}", std::process::id())
}

/// Declare a server-named, exclusive queue and return its name.
pub async fn temp_queue(ch: &Channel) -> String {
    let q = within(
        "queue.declare (server-named)",
        ch.queue_declare(
            "".into(),
            QueueDeclareOptions { exclusive: true, ..Default::default() },
            FieldTable::default(),
        ),
    )
    .await
    .expect("queue.declare");
    q.name().to_string()
}

/// Declare a named, non-exclusive queue that the test must delete.
pub async fn named_queue(ch: &Channel, name: &str) {
    within(
        "queue.declare",
        ch.queue_declare(name.into(), QueueDeclareOptions::default(), FieldTable::default()),
    )
    .await
    .expect("queue.declare");
}

pub async fn delete_queue(ch: &Channel, name: &str) {
    within("queue.delete", ch.queue_delete(name.into(), QueueDeleteOptions::default()))
        .await
        .expect("queue.delete");
}

pub async fn bind(ch: &Channel, queue: &str, exchange: &str, key: &str) {
    bind_args(ch, queue, exchange, key, FieldTable::default()).await
}

pub async fn bind_args(ch: &Channel, queue: &str, exchange: &str, key: &str, args: FieldTable) {
    within("queue.bind", ch.queue_bind(queue.into(), exchange.into(), key.into(), Default::default(), args))
        .await
        .unwrap_or_else(|e| panic!("queue.bind {queue} -> {exchange} ({key:?}): {e}"));
}

/// Publish without confirms.
pub async fn publish(ch: &Channel, exchange: &str, key: &str, body: &[u8]) {
    publish_props(ch, exchange, key, body, BasicProperties::default()).await
}

pub async fn publish_props(ch: &Channel, exchange: &str, key: &str, body: &[u8], props: BasicProperties) {
    let confirm = within(
        "basic.publish",
        ch.basic_publish(exchange.into(), key.into(), BasicPublishOptions::default(), body, props),
    )
    .await
    .expect("basic.publish");
    within("publisher confirm", confirm).await.expect("publisher confirm");
}

/// Put the channel in confirm mode.
pub async fn confirm_select(ch: &Channel) {
    within("confirm.select", ch.confirm_select(ConfirmSelectOptions::default()))
        .await
        .expect("confirm.select");
}

/// Publish on a channel in confirm mode and return the broker's confirmation.
pub async fn publish_confirmed(
    ch: &Channel,
    exchange: &str,
    key: &str,
    options: BasicPublishOptions,
    body: &[u8],
    props: BasicProperties,
) -> Confirmation {
    let confirm =
        within("basic.publish", ch.basic_publish(exchange.into(), key.into(), options, body, props))
            .await
            .expect("basic.publish");
    within("publisher confirm", confirm).await.expect("publisher confirm")
}

/// Start a consumer with a server-generated tag.
pub async fn consume(ch: &Channel, queue: &str, no_ack: bool) -> Consumer {
    within(
        "basic.consume",
        ch.basic_consume(
            queue.into(),
            "".into(),
            BasicConsumeOptions { no_ack, ..Default::default() },
            FieldTable::default(),
        ),
    )
    .await
    .expect("basic.consume")
}

/// Next delivery of a consumer, bounded by [`TIMEOUT`].
pub async fn next_delivery(consumer: &mut Consumer) -> Delivery {
    within("basic.deliver", consumer.next())
        .await
        .expect("consumer stream ended (cancelled?)")
        .expect("delivery error")
}

/// Assert that no delivery arrives for [`QUIET`].
pub async fn assert_no_delivery(consumer: &mut Consumer) {
    if let Ok(item) = tokio::time::timeout(QUIET, consumer.next()).await {
        match item {
            Some(Ok(d)) => panic!(
                "unexpected delivery: routing key {:?}, body {:?}",
                d.routing_key.as_str(),
                String::from_utf8_lossy(&d.data)
            ),
            Some(Err(e)) => panic!("unexpected consumer error: {e}"),
            None => panic!("consumer unexpectedly cancelled"),
        }
    }
}

/// Collect every delivery that arrives until the consumer is quiet for [`QUIET`].
pub async fn drain(consumer: &mut Consumer) -> Vec<Delivery> {
    let mut out = Vec::new();
    let deadline = tokio::time::Instant::now() + TIMEOUT;
    while let Ok(Some(item)) = tokio::time::timeout(QUIET, consumer.next()).await {
        out.push(item.expect("delivery error"));
        assert!(tokio::time::Instant::now() < deadline, "consumer never went quiet");
    }
    out
}

/// basic.get with auto-ack.
pub async fn get(ch: &Channel, queue: &str) -> Option<BasicGetMessage> {
    get_opts(ch, queue, true).await
}

pub async fn get_opts(ch: &Channel, queue: &str, no_ack: bool) -> Option<BasicGetMessage> {
    within("basic.get", ch.basic_get(queue.into(), BasicGetOptions { no_ack })).await.expect("basic.get")
}

/// Poll a queue with basic.get until a message shows up (messages routed by a
/// publish on another channel are not necessarily enqueued yet).
pub async fn get_eventually(ch: &Channel, queue: &str) -> BasicGetMessage {
    within("message to arrive via basic.get", async {
        loop {
            if let Some(m) = get(ch, queue).await {
                return m;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
}

/// basic.ack of one delivery (bounded).
pub async fn ack(d: &Delivery) {
    let ok = within("basic.ack", d.acker.ack(lapin::options::BasicAckOptions::default()))
        .await
        .expect("basic.ack");
    assert!(ok, "acker already used or poisoned");
}

/// basic.reject of one delivery (bounded).
pub async fn reject(d: &Delivery, requeue: bool) {
    let ok = within("basic.reject", d.acker.reject(lapin::options::BasicRejectOptions { requeue }))
        .await
        .expect("basic.reject");
    assert!(ok, "acker already used or poisoned");
}

/// basic.nack of one delivery (bounded).
pub async fn nack(d: &Delivery, requeue: bool) {
    let ok =
        within("basic.nack", d.acker.nack(lapin::options::BasicNackOptions { requeue, multiple: false }))
            .await
            .expect("basic.nack");
    assert!(ok, "acker already used or poisoned");
}

/// Body of a delivery as a UTF-8 string.
pub fn body(d: &Delivery) -> String {
    String::from_utf8(d.data.clone()).expect("utf-8 body")
}

/// Sorted bodies of deliveries.
pub fn sorted_bodies(ds: &[Delivery]) -> Vec<String> {
    let mut v: Vec<String> = ds.iter().map(body).collect();
    v.sort();
    v
}

/// The AMQP error carried by a lapin error, if it is one.
pub fn amqp_error(err: &lapin::Error) -> Option<&AMQPError> {
    match err.kind() {
        ErrorKind::ProtocolError(e) => Some(e),
        _ => None,
    }
}

/// Assert that `res` failed with a channel-level (soft) AMQP error `code`;
/// returns the reply text.
#[track_caller]
pub fn expect_soft_error<T: Debug>(res: lapin::Result<T>, code: u16) -> String {
    let err = match res {
        Ok(v) => panic!("expected AMQP error {code}, got Ok({v:?})"),
        Err(e) => e,
    };
    let amqp = amqp_error(&err)
        .unwrap_or_else(|| panic!("expected AMQP error {code}, got non-protocol error: {err:?}"));
    assert_eq!(amqp.get_id(), code, "wrong reply code; reply text: {}", amqp.get_message());
    assert!(
        matches!(amqp.kind(), AMQPErrorKind::Soft(_)),
        "expected a channel (soft) error, got {:?}",
        amqp.kind()
    );
    amqp.get_message().to_string()
}

/// Await a broker operation bounded by [`TIMEOUT`] and assert it fails with a
/// soft error `code`; returns the reply text.
pub async fn expect_error<T: Debug, F: Future<Output = lapin::Result<T>>>(
    what: &str,
    fut: F,
    code: u16,
) -> String {
    let res = within(what, fut).await;
    expect_soft_error(res, code)
}

/// A consumer on a fresh private queue of `ch`. The server's asynchronous
/// channel.close (e.g. after a bad publish or ack) reaches it as an error,
/// without racing against the next command we might send.
pub async fn watch_channel(ch: &Channel) -> Consumer {
    let q = temp_queue(ch).await;
    consume(ch, &q, true).await
}

/// Wait for the channel watched by `watch` to be closed by the server with
/// soft error `code`; returns the reply text.
pub async fn expect_channel_closed_by_server(watch: &mut Consumer, code: u16) -> String {
    match within("server channel.close", watch.next()).await {
        Some(Err(e)) => expect_soft_error::<()>(Err(e), code),
        Some(Ok(d)) => {
            panic!("expected channel.close {code}, got a delivery {:?}", String::from_utf8_lossy(&d.data))
        }
        None => panic!("expected channel.close {code}, consumer ended without error"),
    }
}

/// Does an exchange exist? (Uses a throwaway channel, since a failed passive
/// declare closes the channel.)
pub async fn exchange_exists(conn: &Connection, name: &str) -> bool {
    let ch = channel(conn).await;
    let res = within(
        "exchange.declare passive",
        ch.exchange_declare(
            name.into(),
            lapin::ExchangeKind::Direct,
            lapin::options::ExchangeDeclareOptions { passive: true, ..Default::default() },
            FieldTable::default(),
        ),
    )
    .await;
    match res {
        Ok(()) => {
            let _ = tokio::time::timeout(TIMEOUT, ch.close(200, "ok".into())).await;
            true
        }
        Err(e) => {
            let code = amqp_error(&e).map(|a| a.get_id());
            assert_eq!(code, Some(NOT_FOUND), "passive exchange.declare: {e}");
            false
        }
    }
}

/// Does a queue exist? Returns (message_count, consumer_count) if so.
pub async fn queue_exists(conn: &Connection, name: &str) -> Option<(u32, u32)> {
    let ch = channel(conn).await;
    let res = within(
        "queue.declare passive",
        ch.queue_declare(
            name.into(),
            QueueDeclareOptions { passive: true, ..Default::default() },
            FieldTable::default(),
        ),
    )
    .await;
    match res {
        Ok(q) => {
            let _ = tokio::time::timeout(TIMEOUT, ch.close(200, "ok".into())).await;
            Some((q.message_count(), q.consumer_count()))
        }
        Err(e) => {
            let code = amqp_error(&e).map(|a| a.get_id());
            assert_eq!(code, Some(NOT_FOUND), "passive queue.declare: {e}");
            None
        }
    }
}

/// Wait until `cond` holds, polling, bounded by [`TIMEOUT`].
pub async fn eventually<F, Fut>(what: &str, mut cond: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    within(what, async {
        loop {
            if cond().await {
                return;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    })
    .await
}
