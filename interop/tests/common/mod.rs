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
    embedded().0.clone()
}

/// The embedded Warren's AMQP URL and admin API URL.
fn embedded() -> &'static (String, String) {
    static URL: std::sync::OnceLock<(String, String)> = std::sync::OnceLock::new();
    URL.get_or_init(|| {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let rt =
                tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
            rt.block_on(async move {
                let mut config = warren::config::Config::default();
                config.amqp.listen = "127.0.0.1:0".parse().unwrap();
                config.admin.listen = Some("127.0.0.1:0".parse().unwrap());
                // No warrenctl socket: nothing is left in the temporary directory.
                config.admin.socket = Some(std::path::PathBuf::new());
                config.storage.data_dir =
                    std::env::temp_dir().join(format!("warren-interop-{}", std::process::id()));
                // AMQPS too (tests/tls.rs), with a CA and certificate made here.
                let (tls_dir, ca_pem) = embedded_tls_files(&mut config);
                // In memory: this server lives until the test process exits,
                // and durability is tested against the real binary elsewhere.
                let store = std::sync::Arc::new(warren::store::memory::MemoryStore::default());
                let server = warren::server::Server::start_with_store(config, store)
                    .await
                    .expect("embedded Warren starts");
                let admin = server.admin_addr.expect("the embedded Warren's admin API listens");
                // The certificate and key were read at start: nothing is left behind.
                let _ = std::fs::remove_dir_all(&tls_dir);
                let tls = server.tls_addr.expect("the embedded Warren's AMQPS listener");
                let _ =
                    EMBEDDED_TLS.set((format!("amqps://guest:guest@localhost:{}/%2f", tls.port()), ca_pem));
                tx.send((
                    format!("amqp://guest:guest@{}/%2f", server.local_addr),
                    format!("http://guest:guest@{admin}"),
                ))
                .unwrap();
                std::future::pending::<()>().await;
            });
        });
        rx.recv().expect("embedded Warren reports its address")
    })
}

/// The embedded Warren's AMQPS URL and the PEM of the CA that signed its
/// certificate; set by [`embedded`] before it reports its address.
static EMBEDDED_TLS: std::sync::OnceLock<(String, String)> = std::sync::OnceLock::new();

/// Makes a CA and a server certificate for localhost / 127.0.0.1 (rcgen),
/// writes the certificate and key into a temporary directory and points
/// `config.tls` at them (listening on a free loopback port). Returns the
/// directory and the CA's PEM.
fn embedded_tls_files(config: &mut warren::config::Config) -> (std::path::PathBuf, String) {
    use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};
    let mut ca = CertificateParams::new(Vec::<String>::new()).expect("CA parameters");
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name.push(DnType::CommonName, "warren interop CA");
    let ca = CertifiedIssuer::self_signed(ca, KeyPair::generate().expect("CA key")).expect("CA certificate");
    let mut server = CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()])
        .expect("server certificate parameters");
    server.distinguished_name.push(DnType::CommonName, "localhost");
    let key = KeyPair::generate().expect("server key");
    let cert = server.signed_by(&key, &ca).expect("server certificate");
    let dir = std::env::temp_dir().join(format!("warren-interop-tls-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("TLS temporary directory");
    let (cert_file, key_file) = (dir.join("server.pem"), dir.join("server.key"));
    std::fs::write(&cert_file, cert.pem()).expect("write server.pem");
    std::fs::write(&key_file, key.serialize_pem()).expect("write server.key");
    config.tls.listen = "127.0.0.1:0".parse().unwrap();
    config.tls.cert_file = Some(cert_file);
    config.tls.key_file = Some(key_file);
    (dir, ca.pem())
}

fn env_nonempty(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|s| !s.trim().is_empty())
}

/// The AMQPS broker under test: `$AMQPS_URL` (e.g.
/// `amqps://guest:guest@localhost:5671/%2f`); without it, the embedded
/// Warren's AMQPS listener when `AMQP_URL` is unset too. None when
/// `AMQP_URL` names a broker but `AMQPS_URL` does not: TLS is not checked.
pub fn amqps_url() -> Option<String> {
    if let Some(url) = env_nonempty("AMQPS_URL") {
        return Some(url);
    }
    if env_nonempty("AMQP_URL").is_some() {
        return None;
    }
    embedded();
    Some(EMBEDDED_TLS.get().expect("the embedded Warren serves AMQPS").0.clone())
}

/// The PEM of the CA that signed the [`amqps_url`] broker's certificate: the
/// file `$AMQPS_CA` names (None if unset: the client then trusts the webpki
/// roots only), or the embedded Warren's CA.
pub fn amqps_ca() -> Option<String> {
    if env_nonempty("AMQPS_URL").is_some() {
        return env_nonempty("AMQPS_CA").map(|path| {
            std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read AMQPS_CA {path}: {e}"))
        });
    }
    amqps_url()?;
    Some(EMBEDDED_TLS.get().expect("the embedded Warren serves AMQPS").1.clone())
}

/// Open an AMQPS connection to `url` trusting `ca` (PEM; None: the webpki
/// roots), bounded by [`TIMEOUT`].
pub async fn connect_tls(url: &str, ca: Option<&str>) -> Result<Connection, lapin::Error> {
    let props = ConnectionProperties::default().with_connection_name("warren-interop".into());
    let tls = lapin::tcp::OwnedTLSConfig { identity: None, cert_chain: ca.map(str::to_owned) };
    let builder = lapin::DefaultConnectionBuilder::new()?
        .with_uri_str(url.to_owned())
        .with_properties(props)
        .with_tls_config(tls);
    within(&format!("AMQPS connection to {url}"), builder.connect()).await
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

pub async fn declare_exchange(
    ch: &Channel,
    name: &str,
    kind: lapin::ExchangeKind,
    opts: lapin::options::ExchangeDeclareOptions,
) {
    within("exchange.declare", ch.exchange_declare(name.into(), kind, opts, FieldTable::default()))
        .await
        .unwrap_or_else(|e| panic!("exchange.declare {name}: {e}"));
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

/// Like [`get_eventually`], but the message stays unacked (to be acked,
/// rejected or nacked by the test).
pub async fn get_manual_eventually(ch: &Channel, queue: &str) -> BasicGetMessage {
    within("message to arrive via basic.get", async {
        loop {
            if let Some(m) = get_opts(ch, queue, false).await {
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
    expect_error_kind(res, code, false)
}

#[track_caller]
fn expect_error_kind<T: Debug>(res: lapin::Result<T>, code: u16, hard: bool) -> String {
    let tier = if hard { "connection (hard)" } else { "channel (soft)" };
    let err = match res {
        Ok(v) => panic!("expected {tier} AMQP error {code}, got Ok({v:?})"),
        Err(e) => e,
    };
    let amqp = amqp_error(&err)
        .unwrap_or_else(|| panic!("expected AMQP error {code}, got non-protocol error: {err:?}"));
    assert_eq!(amqp.get_id(), code, "wrong reply code; reply text: {}", amqp.get_message());
    let is_hard = matches!(amqp.kind(), AMQPErrorKind::Hard(_));
    assert_eq!(is_hard, hard, "expected a {tier} error, got {:?}", amqp.kind());
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

/// Wait for the server to close the whole connection with hard error `code`,
/// as seen by a consumer on one of its channels (see [`watch_channel`]);
/// returns the reply text.
pub async fn expect_connection_closed_by_server(
    conn: &Connection,
    watch: &mut Consumer,
    code: u16,
) -> String {
    let err = match within("server connection.close", watch.next()).await {
        Some(Err(e)) => e,
        Some(Ok(d)) => {
            panic!("expected connection.close {code}, got a delivery {:?}", String::from_utf8_lossy(&d.data))
        }
        None => panic!("expected connection.close {code}, consumer ended without error"),
    };
    let amqp = amqp_error(&err)
        .unwrap_or_else(|| panic!("expected AMQP error {code}, got non-protocol error: {err:?}"));
    assert_eq!(amqp.get_id(), code, "wrong reply code; reply text: {}", amqp.get_message());
    assert!(
        matches!(amqp.kind(), AMQPErrorKind::Hard(_)),
        "expected a connection (hard) error, got {:?}",
        amqp.kind()
    );
    wait_connection_closed(conn).await;
    amqp.get_message().to_string()
}

/// Assert that `res` failed with a connection-level (hard) AMQP error `code`;
/// returns the reply text.
#[track_caller]
pub fn expect_hard_error<T: Debug>(res: lapin::Result<T>, code: u16) -> String {
    expect_error_kind(res, code, true)
}

/// Wait (bounded) until lapin considers the connection gone.
pub async fn wait_connection_closed(conn: &Connection) {
    within("connection to close", async {
        while conn.status().connected() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
}

/// Wait (bounded) until lapin considers the channel gone.
pub async fn wait_channel_closed(ch: &Channel) {
    within("channel to close", async {
        while ch.status().connected() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
}

/// The parts of `$AMQP_URL` that a raw client or a proxy needs.
#[derive(Debug, Clone)]
pub struct UrlParts {
    pub user: String,
    pub password: String,
    /// `host:port` of the broker.
    pub addr: String,
    pub vhost: String,
    /// Everything from `?` on (may be empty).
    pub query: String,
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok();
            if let Some(b) = hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8(out).expect("utf-8 URL component")
}

/// Split an `amqp://user:pass@host:port/vhost?query` URL.
pub fn url_parts(url: &str) -> UrlParts {
    let rest = url.strip_prefix("amqp://").unwrap_or_else(|| panic!("not an amqp:// URL: {url}"));
    let (rest, query) = match rest.find('?') {
        Some(i) => (&rest[..i], rest[i..].to_string()),
        None => (rest, String::new()),
    };
    let (authority, vhost) = match rest.find('/') {
        Some(i) => (&rest[..i], percent_decode(&rest[i + 1..])),
        None => (rest, "/".to_string()),
    };
    let (userinfo, hostport) = match authority.rfind('@') {
        Some(i) => (&authority[..i], &authority[i + 1..]),
        None => ("guest:guest", authority),
    };
    let (user, password) = userinfo.split_once(':').unwrap_or((userinfo, ""));
    let addr = if hostport.rsplit_once(':').is_some_and(|(_, p)| p.parse::<u16>().is_ok()) {
        hostport.to_string()
    } else {
        format!("{hostport}:5672")
    };
    UrlParts { user: percent_decode(user), password: percent_decode(password), addr, vhost, query }
}

/// A TCP proxy in front of the broker whose connections can be cut abruptly
/// (sockets closed without any AMQP close handshake), to simulate a client
/// that dies or a network that fails.
pub struct KillableProxy {
    /// `$AMQP_URL` rewritten to go through the proxy.
    pub url: String,
    tasks: std::sync::Arc<std::sync::Mutex<Vec<tokio::task::JoinHandle<()>>>>,
}

impl KillableProxy {
    pub async fn start() -> KillableProxy {
        let parts = url_parts(&amqp_url());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("proxy bind");
        let local = listener.local_addr().unwrap();
        let original = amqp_url();
        let url = original.replacen(&original_authority_host(&original), &local.to_string(), 1);
        let tasks = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let tasks2 = tasks.clone();
        let upstream = parts.addr.clone();
        let accept = tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                let upstream = upstream.clone();
                let handle = tokio::spawn(async move {
                    if let Ok(mut server) = tokio::net::TcpStream::connect(&upstream).await {
                        let _ = client.set_nodelay(true);
                        let _ = server.set_nodelay(true);
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                    }
                });
                tasks2.lock().unwrap().push(handle);
            }
        });
        tasks.lock().unwrap().push(accept);
        KillableProxy { url, tasks }
    }

    /// Cut every proxied connection (and stop accepting new ones): both sides
    /// see their socket closed with no AMQP-level goodbye.
    pub fn kill(&self) {
        for t in self.tasks.lock().unwrap().drain(..) {
            t.abort();
        }
    }
}

impl Drop for KillableProxy {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The `host:port` text as written in `url` (what the proxy replaces).
fn original_authority_host(url: &str) -> String {
    let rest = url.strip_prefix("amqp://").expect("amqp:// URL");
    let authority = rest.split(['/', '?']).next().unwrap();
    authority.rsplit_once('@').map(|(_, h)| h).unwrap_or(authority).to_string()
}

/// One frame read by [`RawAmqp`].
#[derive(Debug, Clone)]
pub struct RawFrame {
    pub kind: u8,
    pub channel: u16,
    pub payload: Vec<u8>,
}

impl RawFrame {
    /// `(class_id, method_id)` of a method frame.
    pub fn method(&self) -> Option<(u16, u16)> {
        (self.kind == 1 && self.payload.len() >= 4).then(|| {
            (
                u16::from_be_bytes([self.payload[0], self.payload[1]]),
                u16::from_be_bytes([self.payload[2], self.payload[3]]),
            )
        })
    }

    /// Arguments of a method frame.
    pub fn args(&self) -> ArgReader<'_> {
        ArgReader { buf: &self.payload[4..] }
    }
}

/// Reads AMQP method arguments in order.
pub struct ArgReader<'a> {
    buf: &'a [u8],
}

impl ArgReader<'_> {
    fn take(&mut self, n: usize) -> &[u8] {
        assert!(self.buf.len() >= n, "method arguments too short");
        let (head, tail) = self.buf.split_at(n);
        self.buf = tail;
        head
    }
    pub fn u8(&mut self) -> u8 {
        self.take(1)[0]
    }
    pub fn u16(&mut self) -> u16 {
        u16::from_be_bytes(self.take(2).try_into().unwrap())
    }
    pub fn u32(&mut self) -> u32 {
        u32::from_be_bytes(self.take(4).try_into().unwrap())
    }
    pub fn u64(&mut self) -> u64 {
        u64::from_be_bytes(self.take(8).try_into().unwrap())
    }
    pub fn shortstr(&mut self) -> String {
        let n = self.u8() as usize;
        String::from_utf8_lossy(self.take(n)).into_owned()
    }
    pub fn longstr(&mut self) -> Vec<u8> {
        let n = self.u32() as usize;
        self.take(n).to_vec()
    }
}

/// Encodes AMQP method arguments.
#[derive(Default)]
pub struct ArgWriter(pub Vec<u8>);

impl ArgWriter {
    pub fn u8(mut self, v: u8) -> Self {
        self.0.push(v);
        self
    }
    pub fn u16(mut self, v: u16) -> Self {
        self.0.extend_from_slice(&v.to_be_bytes());
        self
    }
    pub fn u32(mut self, v: u32) -> Self {
        self.0.extend_from_slice(&v.to_be_bytes());
        self
    }
    pub fn u64(mut self, v: u64) -> Self {
        self.0.extend_from_slice(&v.to_be_bytes());
        self
    }
    pub fn shortstr(mut self, s: &str) -> Self {
        assert!(s.len() < 256);
        self.0.push(s.len() as u8);
        self.0.extend_from_slice(s.as_bytes());
        self
    }
    pub fn longstr(mut self, s: &[u8]) -> Self {
        self.0.extend_from_slice(&(s.len() as u32).to_be_bytes());
        self.0.extend_from_slice(s);
        self
    }
}

/// A bare-bones AMQP 0-9-1 client on a plain socket, for what lapin cannot
/// express (e.g. basic.qos with prefetch_size != 0) or hides (the exact order
/// of frames, confirm delivery tags). Every read is bounded by [`TIMEOUT`].
pub struct RawAmqp {
    stream: tokio::net::TcpStream,
    buf: Vec<u8>,
}

impl RawAmqp {
    /// Connect to `$AMQP_URL`, authenticate with PLAIN, open the vhost
    /// (heartbeats off, frame_max as proposed by the server).
    pub async fn connect() -> RawAmqp {
        use tokio::io::AsyncWriteExt;
        let parts = url_parts(&amqp_url());
        let stream = within("raw TCP connect", tokio::net::TcpStream::connect(&parts.addr))
            .await
            .expect("raw TCP connect");
        let _ = stream.set_nodelay(true);
        let mut raw = RawAmqp { stream, buf: Vec::new() };
        raw.stream.write_all(b"AMQP\x00\x00\x09\x01").await.expect("protocol header");
        raw.expect_method(0, 10, 10).await; // connection.start
        let mut response = vec![0u8];
        response.extend_from_slice(parts.user.as_bytes());
        response.push(0);
        response.extend_from_slice(parts.password.as_bytes());
        let start_ok = ArgWriter::default().u32(0).shortstr("PLAIN").longstr(&response).shortstr("en_US");
        raw.send_method(0, 10, 11, start_ok.0).await;
        let tune = raw.expect_method(0, 10, 30).await;
        let mut args = tune.args();
        let (channel_max, frame_max) = (args.u16(), args.u32());
        raw.send_method(0, 10, 31, ArgWriter::default().u16(channel_max).u32(frame_max).u16(0).0).await;
        raw.send_method(0, 10, 40, ArgWriter::default().shortstr(&parts.vhost).shortstr("").u8(0).0).await;
        raw.expect_method(0, 10, 41).await; // connection.open-ok
        raw
    }

    pub async fn send_frame(&mut self, kind: u8, channel: u16, payload: &[u8]) {
        use tokio::io::AsyncWriteExt;
        let mut f = Vec::with_capacity(payload.len() + 8);
        f.push(kind);
        f.extend_from_slice(&channel.to_be_bytes());
        f.extend_from_slice(&(payload.len() as u32).to_be_bytes());
        f.extend_from_slice(payload);
        f.push(0xCE);
        within("raw write", self.stream.write_all(&f)).await.expect("raw write");
    }

    pub async fn send_method(&mut self, channel: u16, class: u16, method: u16, args: Vec<u8>) {
        let mut p = Vec::with_capacity(args.len() + 4);
        p.extend_from_slice(&class.to_be_bytes());
        p.extend_from_slice(&method.to_be_bytes());
        p.extend_from_slice(&args);
        self.send_frame(1, channel, &p).await;
    }

    /// The next non-heartbeat frame, or `None` if the server closed the socket.
    pub async fn read_frame(&mut self) -> Option<RawFrame> {
        use tokio::io::AsyncReadExt;
        loop {
            if self.buf.len() >= 7 {
                let size = u32::from_be_bytes(self.buf[3..7].try_into().unwrap()) as usize;
                if self.buf.len() >= size + 8 {
                    let frame: Vec<u8> = self.buf.drain(..size + 8).collect();
                    assert_eq!(frame[size + 7], 0xCE, "bad frame end");
                    let f = RawFrame {
                        kind: frame[0],
                        channel: u16::from_be_bytes([frame[1], frame[2]]),
                        payload: frame[7..size + 7].to_vec(),
                    };
                    if f.kind == 8 {
                        continue;
                    }
                    return Some(f);
                }
            }
            let mut chunk = [0u8; 4096];
            let n = within("raw read", self.stream.read(&mut chunk)).await.unwrap_or(0);
            if n == 0 {
                return None;
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }

    /// Read the next frame and assert it is method `class.method` on `channel`.
    pub async fn expect_method(&mut self, channel: u16, class: u16, method: u16) -> RawFrame {
        let f = self.read_frame().await.unwrap_or_else(|| {
            panic!("socket closed while waiting for method {class}.{method} on channel {channel}")
        });
        if f.method() == Some((10, 50)) && (class, method) != (10, 50) {
            let mut a = f.args();
            let (code, text) = (a.u16(), a.shortstr());
            panic!("expected method {class}.{method}, got connection.close {code} {text}");
        }
        assert_eq!(
            (f.channel, f.method()),
            (channel, Some((class, method))),
            "unexpected frame {f:?} (wanted method {class}.{method} on channel {channel})"
        );
        f
    }

    pub async fn open_channel(&mut self, channel: u16) {
        self.send_method(channel, 20, 10, ArgWriter::default().shortstr("").0).await;
        self.expect_method(channel, 20, 11).await;
    }

    /// basic.publish with an empty property set.
    pub async fn publish(&mut self, channel: u16, exchange: &str, key: &str, mandatory: bool, body: &[u8]) {
        let args = ArgWriter::default().u16(0).shortstr(exchange).shortstr(key).u8(mandatory as u8);
        self.send_method(channel, 60, 40, args.0).await;
        let header = ArgWriter::default().u16(60).u16(0).u64(body.len() as u64).u16(0);
        self.send_frame(2, channel, &header.0).await;
        if !body.is_empty() {
            self.send_frame(3, channel, body).await;
        }
    }

    /// Read frames until the server's connection.close; reply close-ok and
    /// return `(reply_code, reply_text, class_id, method_id)`.
    pub async fn expect_connection_close(&mut self) -> (u16, String, u16, u16) {
        loop {
            let f = self.read_frame().await.expect("socket closed before connection.close");
            if f.channel == 0 && f.method() == Some((10, 50)) {
                let mut a = f.args();
                let res = (a.u16(), a.shortstr(), a.u16(), a.u16());
                self.send_method(0, 10, 51, Vec::new()).await;
                return res;
            }
        }
    }

    /// Close the connection politely (bounded, errors ignored).
    pub async fn close(mut self) {
        let args = ArgWriter::default().u16(200).shortstr("bye").u16(0).u16(0);
        self.send_method(0, 10, 50, args.0).await;
        let _ = tokio::time::timeout(TIMEOUT, async {
            while let Some(f) = self.read_frame().await {
                if f.method() == Some((10, 51)) {
                    break;
                }
            }
        })
        .await;
    }
}

/// basic.ack of `tag` (and, with `multiple`, everything before it).
pub async fn ack_tag(ch: &Channel, tag: u64, multiple: bool) {
    within("basic.ack", ch.basic_ack(tag, lapin::options::BasicAckOptions { multiple }))
        .await
        .expect("basic.ack");
}

/// Publishes `n` messages with bodies "0", "1", … to queue `q`.
pub async fn fill(ch: &Channel, q: &str, n: usize) {
    for i in 0..n {
        publish(ch, "", q, format!("{i}").as_bytes()).await;
    }
}

/// Waits until the queue has `n` ready messages (publishes are asynchronous).
pub async fn wait_ready(conn: &Connection, q: &str, n: u32) {
    eventually(&format!("{n} messages ready in {q}"), || async {
        queue_exists(conn, q).await.map(|(m, _)| m) == Some(n)
    })
    .await;
}

/// Whether the broker under test is RabbitMQ (`.ci/rabbitmq-interop.sh`
/// sets `AMQP_BROKER=rabbitmq`): tests of Warren's extensions skip then.
pub fn is_rabbitmq() -> bool {
    std::env::var("AMQP_BROKER").is_ok_and(|b| b == "rabbitmq")
}

/// A field table from `(key, value)` pairs.
pub fn table(pairs: &[(&str, lapin::types::AMQPValue)]) -> FieldTable {
    let mut t = FieldTable::default();
    for (k, v) in pairs {
        t.insert((*k).into(), v.clone());
    }
    t
}

pub fn long_str(s: &str) -> lapin::types::AMQPValue {
    lapin::types::AMQPValue::LongString(s.into())
}

pub fn int(n: i64) -> lapin::types::AMQPValue {
    lapin::types::AMQPValue::LongLongInt(n)
}

/// Arguments that dead-letter a queue's messages to `queue` through the
/// default exchange.
pub fn dead_letter_to(queue: &str) -> [(&'static str, lapin::types::AMQPValue); 2] {
    [("x-dead-letter-exchange", long_str("")), ("x-dead-letter-routing-key", long_str(queue))]
}

/// A field table of `pairs` plus [`dead_letter_to`] `queue`.
pub fn table_dead_lettering_to(pairs: &[(&str, lapin::types::AMQPValue)], queue: &str) -> FieldTable {
    let mut t = table(pairs);
    for (k, v) in dead_letter_to(queue) {
        t.insert(k.into(), v);
    }
    t
}

/// The reason of a dead letter's newest `x-death` entry.
pub fn death_reason(props: &BasicProperties) -> Option<String> {
    text_of(x_death(props).first()?, "reason")
}

/// Declares a named queue with arguments (deleted by the test, or by `x-expires`).
pub async fn queue_with(ch: &Channel, name: &str, args: FieldTable) {
    within("queue.declare", ch.queue_declare(name.into(), QueueDeclareOptions::default(), args))
        .await
        .unwrap_or_else(|e| panic!("queue.declare {name}: {e}"));
}

/// The `x-death` entries of a message's headers, newest first.
pub fn x_death(props: &BasicProperties) -> Vec<FieldTable> {
    let Some(h) = props.headers() else { return Vec::new() };
    match h.inner().get("x-death") {
        Some(lapin::types::AMQPValue::FieldArray(a)) => a
            .as_slice()
            .iter()
            .filter_map(|v| match v {
                lapin::types::AMQPValue::FieldTable(t) => Some(t.clone()),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    }
}

/// A header (or table entry) as text, if it is a string.
pub fn text_of(t: &FieldTable, key: &str) -> Option<String> {
    match t.inner().get(key)? {
        lapin::types::AMQPValue::LongString(s) => Some(String::from_utf8_lossy(s.as_bytes()).into_owned()),
        lapin::types::AMQPValue::ShortString(s) => Some(s.to_string()),
        _ => None,
    }
}

/// A header (or table entry) as an integer, if it is one.
pub fn int_of(t: &FieldTable, key: &str) -> Option<i64> {
    use lapin::types::AMQPValue as V;
    Some(match t.inner().get(key)? {
        V::LongLongInt(n) => *n,
        V::LongInt(n) => i64::from(*n),
        V::ShortInt(n) => i64::from(*n),
        V::ShortShortInt(n) => i64::from(*n),
        V::LongUInt(n) => i64::from(*n),
        V::ShortUInt(n) => i64::from(*n),
        V::ShortShortUInt(n) => i64::from(*n),
        _ => return None,
    })
}

/// The message's header `key` as text.
pub fn header_text(props: &BasicProperties, key: &str) -> Option<String> {
    text_of(props.headers().as_ref()?, key)
}

// ---------------------------------------------------------------------------
// Management HTTP API: users, vhosts, permissions, limits, policies.
//
// A tiny HTTP/1.1 client (Basic auth, JSON body, `Connection: close`) so the
// same setup code drives RabbitMQ's management plugin and Warren's admin API.
// ---------------------------------------------------------------------------

/// The management HTTP API of the broker under test, from `$ADMIN_URL`
/// (e.g. `http://guest:guest@127.0.0.1:15672`).
pub fn admin_url() -> String {
    admin_url_opt().unwrap_or_else(|| {
        panic!(
            "AMQP_URL is set, so set ADMIN_URL too (the same broker's management API, \
             e.g. ADMIN_URL=http://guest:guest@127.0.0.1:15672)"
        )
    })
}

/// `$ADMIN_URL`, or else the embedded Warren's admin API (when `AMQP_URL`
/// is unset too).
fn admin_url_opt() -> Option<String> {
    let env = |k: &str| std::env::var(k).ok().filter(|s| !s.trim().is_empty());
    env("ADMIN_URL").or_else(|| env("AMQP_URL").is_none().then(|| embedded().1.clone()))
}

/// `$ADMIN_URL` split into what a request needs.
struct AdminTarget {
    /// `host:port` to connect to.
    addr: String,
    /// `Basic …` credentials.
    authorization: String,
    /// Path prefix (without trailing `/`), usually empty.
    prefix: String,
}

fn admin_target() -> AdminTarget {
    let url = admin_url();
    parse_admin_url(&url)
        .unwrap_or_else(|| panic!("ADMIN_URL must look like http://user:pass@host:port: {url}"))
}

fn parse_admin_url(url: &str) -> Option<AdminTarget> {
    let rest = url.strip_prefix("http://")?;
    let (authority, prefix) = match rest.find('/') {
        Some(i) => (&rest[..i], rest[i..].trim_end_matches('/').to_string()),
        None => (rest, String::new()),
    };
    let (userinfo, hostport) = match authority.rfind('@') {
        Some(i) => (&authority[..i], &authority[i + 1..]),
        None => ("guest:guest", authority),
    };
    let (user, password) = userinfo.split_once(':').unwrap_or((userinfo, ""));
    let credentials = format!("{}:{}", percent_decode(user), percent_decode(password));
    let addr = if hostport.rsplit_once(':').is_some_and(|(_, p)| p.parse::<u16>().is_ok()) {
        hostport.to_string()
    } else {
        format!("{hostport}:80")
    };
    Some(AdminTarget { addr, authorization: format!("Basic {}", base64(credentials.as_bytes())), prefix })
}

/// Standard base64 with padding.
pub fn base64(data: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i)) as usize & 63] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Percent-encode one URL path segment (everything but unreserved
/// characters), so the vhost `/` becomes `%2F`.
pub fn enc(segment: &str) -> String {
    let mut out = String::with_capacity(segment.len());
    for b in segment.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A JSON string literal (quoted and escaped).
pub fn json_str(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Escape regex metacharacters, for permission and policy patterns built
/// from [`unique`] names (which contain dots).
pub fn re_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if "\\.+*?()|[]{}^$".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

// No `Accept` header: RabbitMQ 3.10.8 answers PUT/DELETE /api/vhost-limits/…
// with 406 Not Acceptable when the request carries `Accept: application/json`.
fn admin_request(target: &AdminTarget, method: &str, path: &str, json: Option<&str>) -> Vec<u8> {
    let body = json.unwrap_or("");
    let mut req = format!(
        "{method} {}{path} HTTP/1.1\r\nHost: {}\r\nAuthorization: {}\r\n\
         Connection: close\r\nContent-Length: {}\r\n",
        target.prefix,
        target.addr,
        target.authorization,
        body.len()
    );
    if json.is_some() {
        req.push_str("Content-Type: application/json\r\n");
    }
    req.push_str("\r\n");
    req.push_str(body);
    req.into_bytes()
}

/// `(status, body)` of a complete HTTP/1.1 response.
fn parse_admin_response(raw: &[u8]) -> (u16, String) {
    let text = String::from_utf8_lossy(raw);
    let (head, rest) =
        text.split_once("\r\n\r\n").unwrap_or_else(|| panic!("truncated HTTP response: {text:?}"));
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse::<u16>().ok())
        .unwrap_or_else(|| panic!("bad HTTP status line: {status_line:?}"));
    let mut chunked = false;
    let mut length = None;
    for line in lines {
        let Some((name, value)) = line.split_once(':') else { continue };
        let (name, value) = (name.trim().to_ascii_lowercase(), value.trim());
        if name == "transfer-encoding" && value.to_ascii_lowercase().contains("chunked") {
            chunked = true;
        } else if name == "content-length" {
            length = value.parse::<usize>().ok();
        }
    }
    let body = if chunked {
        let mut out = String::new();
        let mut rest = rest;
        while let Some((size, tail)) = rest.split_once("\r\n") {
            let size = usize::from_str_radix(size.split(';').next().unwrap().trim(), 16).unwrap_or(0);
            if size == 0 || tail.len() < size {
                break;
            }
            out.push_str(&tail[..size]);
            rest = tail[size..].strip_prefix("\r\n").unwrap_or(&tail[size..]);
        }
        out
    } else {
        match length {
            Some(n) if n <= rest.len() => rest[..n].to_string(),
            _ => rest.to_string(),
        }
    };
    (status, body)
}

/// One request to the management API: `path` starts with `/api/`, its
/// segments already [`enc`]oded. Returns `(status, body)`.
pub async fn admin(method: &str, path: &str, json: Option<&str>) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let target = admin_target();
    let request = admin_request(&target, method, path, json);
    let raw = within(&format!("admin API {method} {path}"), async {
        let mut stream = tokio::net::TcpStream::connect(&target.addr)
            .await
            .unwrap_or_else(|e| panic!("cannot connect to the admin API at {}: {e}", target.addr));
        stream.write_all(&request).await.expect("admin API write");
        let mut raw = Vec::new();
        stream.read_to_end(&mut raw).await.expect("admin API read");
        raw
    })
    .await;
    parse_admin_response(&raw)
}

/// Like [`admin`], but panics unless the status is 2xx; returns the body.
pub async fn admin_ok(method: &str, path: &str, json: Option<&str>) -> String {
    let (status, body) = admin(method, path, json).await;
    assert!((200..300).contains(&status), "admin API {method} {path} {json:?}: {status} {body}");
    body
}

/// Blocking DELETE (for [`Cleanup`]'s `Drop`); errors are ignored.
fn admin_delete_blocking(path: &str) {
    use std::io::{Read, Write};
    // Never panics: this runs in `Drop`, possibly while a test unwinds.
    let Some(target) = admin_url_opt().as_deref().and_then(parse_admin_url) else { return };
    let request = admin_request(&target, "DELETE", path, None);
    let Ok(addr) = std::net::ToSocketAddrs::to_socket_addrs(&target.addr).map(|mut a| a.next()) else {
        return;
    };
    let Some(addr) = addr else { return };
    let Ok(mut stream) = std::net::TcpStream::connect_timeout(&addr, TIMEOUT) else { return };
    let _ = stream.set_read_timeout(Some(TIMEOUT));
    let _ = stream.set_write_timeout(Some(TIMEOUT));
    if stream.write_all(&request).is_ok() {
        let mut raw = Vec::new();
        let _ = stream.read_to_end(&mut raw);
    }
}

pub async fn add_user(user: &str, password: &str, tags: &str) {
    let body = format!("{{\"password\":{},\"tags\":{}}}", json_str(password), json_str(tags));
    admin_ok("PUT", &format!("/api/users/{}", enc(user)), Some(&body)).await;
}

pub async fn delete_user(user: &str) {
    admin_ok("DELETE", &format!("/api/users/{}", enc(user)), None).await;
}

pub async fn add_vhost(vhost: &str) {
    admin_ok("PUT", &format!("/api/vhosts/{}", enc(vhost)), None).await;
}

pub async fn delete_vhost(vhost: &str) {
    admin_ok("DELETE", &format!("/api/vhosts/{}", enc(vhost)), None).await;
}

/// Grant `user` the regexes `configure`, `write`, `read` on `vhost`.
pub async fn set_permissions(vhost: &str, user: &str, configure: &str, write: &str, read: &str) {
    let body = format!(
        "{{\"configure\":{},\"write\":{},\"read\":{}}}",
        json_str(configure),
        json_str(write),
        json_str(read)
    );
    admin_ok("PUT", &format!("/api/permissions/{}/{}", enc(vhost), enc(user)), Some(&body)).await;
}

pub async fn clear_permissions(vhost: &str, user: &str) {
    admin_ok("DELETE", &format!("/api/permissions/{}/{}", enc(vhost), enc(user)), None).await;
}

/// Topic permissions of `user` on the topic exchange `exchange` in `vhost`.
pub async fn set_topic_permissions(vhost: &str, user: &str, exchange: &str, write: &str, read: &str) {
    let body = format!(
        "{{\"exchange\":{},\"write\":{},\"read\":{}}}",
        json_str(exchange),
        json_str(write),
        json_str(read)
    );
    admin_ok("PUT", &format!("/api/topic-permissions/{}/{}", enc(vhost), enc(user)), Some(&body)).await;
}

/// `limit` is `max-connections` or `max-queues`.
pub async fn set_vhost_limit(vhost: &str, limit: &str, value: i64) {
    let body = format!("{{\"value\":{value}}}");
    admin_ok("PUT", &format!("/api/vhost-limits/{}/{}", enc(vhost), enc(limit)), Some(&body)).await;
}

pub async fn clear_vhost_limit(vhost: &str, limit: &str) {
    admin_ok("DELETE", &format!("/api/vhost-limits/{}/{}", enc(vhost), enc(limit)), None).await;
}

fn policy_body(pattern: &str, definition: &str, priority: i64, apply_to: &str) -> String {
    format!(
        "{{\"pattern\":{},\"definition\":{definition},\"priority\":{priority},\"apply-to\":{}}}",
        json_str(pattern),
        json_str(apply_to)
    )
}

/// A user policy; `definition` is a JSON object, e.g. `{"max-length":3}`;
/// `apply_to` is `queues`, `exchanges` or `all`.
pub async fn set_policy(
    vhost: &str,
    name: &str,
    pattern: &str,
    definition: &str,
    priority: i64,
    apply_to: &str,
) {
    let body = policy_body(pattern, definition, priority, apply_to);
    admin_ok("PUT", &format!("/api/policies/{}/{}", enc(vhost), enc(name)), Some(&body)).await;
}

pub async fn clear_policy(vhost: &str, name: &str) {
    admin_ok("DELETE", &format!("/api/policies/{}/{}", enc(vhost), enc(name)), None).await;
}

/// An operator policy (same shape as [`set_policy`]).
pub async fn set_operator_policy(
    vhost: &str,
    name: &str,
    pattern: &str,
    definition: &str,
    priority: i64,
    apply_to: &str,
) {
    let body = policy_body(pattern, definition, priority, apply_to);
    admin_ok("PUT", &format!("/api/operator-policies/{}/{}", enc(vhost), enc(name)), Some(&body)).await;
}

pub async fn clear_operator_policy(vhost: &str, name: &str) {
    admin_ok("DELETE", &format!("/api/operator-policies/{}/{}", enc(vhost), enc(name)), None).await;
}

/// Deletes what a test created through the admin API when dropped (also when
/// the test panics), newest first; errors (already deleted) are ignored.
#[derive(Default)]
pub struct Cleanup {
    paths: Vec<String>,
}

impl Cleanup {
    pub fn path(&mut self, path: String) -> &mut Self {
        self.paths.push(path);
        self
    }
    pub fn user(&mut self, user: &str) -> &mut Self {
        self.path(format!("/api/users/{}", enc(user)))
    }
    pub fn vhost(&mut self, vhost: &str) -> &mut Self {
        self.path(format!("/api/vhosts/{}", enc(vhost)))
    }
    pub fn policy(&mut self, vhost: &str, name: &str) -> &mut Self {
        self.path(format!("/api/policies/{}/{}", enc(vhost), enc(name)))
    }
    pub fn operator_policy(&mut self, vhost: &str, name: &str) -> &mut Self {
        self.path(format!("/api/operator-policies/{}/{}", enc(vhost), enc(name)))
    }
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        for path in self.paths.drain(..).rev() {
            admin_delete_blocking(&path);
        }
    }
}

/// `$AMQP_URL`'s broker, as `user`/`password` on `vhost`.
pub fn amqp_uri_as(user: &str, password: &str, vhost: &str) -> lapin::uri::AMQPUri {
    let mut uri: lapin::uri::AMQPUri = amqp_url().parse().expect("AMQP_URL parses");
    uri.authority.userinfo.username = user.to_string();
    uri.authority.userinfo.password = password.to_string();
    uri.vhost = vhost.to_string();
    uri
}

/// Open a connection as `user`/`password` on `vhost` (bounded by [`TIMEOUT`]).
pub async fn connect_as(user: &str, password: &str, vhost: &str) -> Result<Connection, lapin::Error> {
    let props = ConnectionProperties::default().with_connection_name("warren-interop".into());
    within(
        &format!("connection.open as {user} on vhost {vhost}"),
        Connection::connect_uri(amqp_uri_as(user, password, vhost), props),
    )
    .await
}

/// `$AMQP_URL`'s own user (normally guest, an administrator) on `vhost`.
pub async fn connect_vhost(vhost: &str) -> Connection {
    let parts = url_parts(&amqp_url());
    connect_as(&parts.user, &parts.password, vhost)
        .await
        .unwrap_or_else(|e| panic!("cannot connect as {} to vhost {vhost}: {e}", parts.user))
}

/// Assert that opening a connection failed with AMQP reply `code` (login and
/// vhost refusals arrive as connection.close); returns the reply text.
#[track_caller]
pub fn expect_connect_refused(res: Result<Connection, lapin::Error>, code: u16) -> String {
    let err = match res {
        Ok(_) => panic!("expected the connection to be refused with {code}, but it opened"),
        Err(e) => e,
    };
    let amqp = amqp_error(&err)
        .unwrap_or_else(|| panic!("expected connection refusal {code}, got non-protocol error: {err:?}"));
    assert_eq!(amqp.get_id(), code, "wrong reply code; reply text: {}", amqp.get_message());
    amqp.get_message().to_string()
}

/// Connects as `user` expecting a refusal with `code` because a connection
/// limit is reached; returns the reply text. Warren counts a connection
/// under the lock that checks the limits, before `connection.open-ok`, so
/// the first attempt must be refused. RabbitMQ counts it after it opened,
/// from an event handler, so one made right after others may still slip
/// through there: against RabbitMQ such a connection is closed and the
/// attempt repeated until refused.
pub async fn expect_limit_refused(user: &str, password: &str, vhost: &str, code: u16) -> String {
    if !is_rabbitmq() {
        return expect_connect_refused(connect_as(user, password, vhost).await, code);
    }
    within("RabbitMQ to count the open connections", async {
        loop {
            match connect_as(user, password, vhost).await {
                Ok(slipped) => {
                    teardown(slipped).await;
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                res => return expect_connect_refused(res, code),
            }
        }
    })
    .await
}

/// A connection's lapin events; subscribe (with [`connection_events`])
/// before doing what should close the connection.
pub type ConnectionEvents = std::pin::Pin<Box<dyn futures_lite::Stream<Item = lapin::Event> + Send>>;

pub fn connection_events(conn: &Connection) -> ConnectionEvents {
    Box::pin(conn.events_listener())
}

/// Wait for the server to close the connection with hard error `code`, as
/// reported on its event stream (works when no channel survives to report
/// it, e.g. when the queues a consumer watched are deleted first); returns
/// the reply text.
pub async fn expect_connection_error_event(
    conn: &Connection,
    events: &mut ConnectionEvents,
    code: u16,
) -> String {
    let err = within("connection error event", async {
        loop {
            match events.next().await {
                Some(lapin::Event::Error(e)) => return e,
                Some(_) => continue,
                None => panic!("connection event stream ended without an error (expected {code})"),
            }
        }
    })
    .await;
    let amqp = amqp_error(&err)
        .unwrap_or_else(|| panic!("expected AMQP error {code}, got non-protocol error: {err:?}"));
    assert_eq!(amqp.get_id(), code, "wrong reply code; reply text: {}", amqp.get_message());
    assert!(
        matches!(amqp.kind(), AMQPErrorKind::Hard(_)),
        "expected a connection (hard) error, got {:?}",
        amqp.kind()
    );
    wait_connection_closed(conn).await;
    amqp.get_message().to_string()
}

impl RawAmqp {
    /// Like [`RawAmqp::connect`], but as `user`/`password` on `vhost`.
    pub async fn connect_as(user: &str, password: &str, vhost: &str) -> RawAmqp {
        use tokio::io::AsyncWriteExt;
        let parts = url_parts(&amqp_url());
        let stream = within("raw TCP connect", tokio::net::TcpStream::connect(&parts.addr))
            .await
            .expect("raw TCP connect");
        let _ = stream.set_nodelay(true);
        let mut raw = RawAmqp { stream, buf: Vec::new() };
        raw.stream.write_all(b"AMQP\x00\x00\x09\x01").await.expect("protocol header");
        raw.expect_method(0, 10, 10).await; // connection.start
        let mut response = vec![0u8];
        response.extend_from_slice(user.as_bytes());
        response.push(0);
        response.extend_from_slice(password.as_bytes());
        let start_ok = ArgWriter::default().u32(0).shortstr("PLAIN").longstr(&response).shortstr("en_US");
        raw.send_method(0, 10, 11, start_ok.0).await;
        let tune = raw.expect_method(0, 10, 30).await;
        let mut args = tune.args();
        let (channel_max, frame_max) = (args.u16(), args.u32());
        raw.send_method(0, 10, 31, ArgWriter::default().u16(channel_max).u32(frame_max).u16(0).0).await;
        raw.send_method(0, 10, 40, ArgWriter::default().shortstr(vhost).shortstr("").u8(0).0).await;
        raw.expect_method(0, 10, 41).await; // connection.open-ok
        raw
    }

    /// Read frames until the server's connection.close and return
    /// `(reply_code, reply_text)`, without answering: unlike
    /// [`RawAmqp::expect_connection_close`] this copes with a server that
    /// resets the socket right after its connection.close.
    pub async fn expect_connection_close_no_reply(&mut self) -> (u16, String) {
        loop {
            let f = self.read_frame().await.expect("socket closed before connection.close");
            if f.channel == 0 && f.method() == Some((10, 50)) {
                let mut a = f.args();
                return (a.u16(), a.shortstr());
            }
        }
    }
}
