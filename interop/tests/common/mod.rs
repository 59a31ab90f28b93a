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

mod access;
mod admin;
mod client;
mod errors;
mod raw;
mod tables;

// Each test binary uses some of these.
#[allow(unused_imports)]
pub use access::*;
#[allow(unused_imports)]
pub use admin::*;
#[allow(unused_imports)]
pub use client::*;
#[allow(unused_imports)]
pub use errors::*;
#[allow(unused_imports)]
pub use raw::*;
#[allow(unused_imports)]
pub use tables::*;

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

/// Whether the broker under test is RabbitMQ (`.ci/rabbitmq-interop.sh`
/// sets `AMQP_BROKER=rabbitmq`): tests of Warren's extensions skip then.
pub fn is_rabbitmq() -> bool {
    std::env::var("AMQP_BROKER").is_ok_and(|b| b == "rabbitmq")
}
