//! AMQPS: the TLS listener with certificates made on the fly (rcgen), driven
//! by lapin over amqps and by a bare rustls client where the test must see
//! the TLS side itself (served certificate, version, client certificates).

mod common;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use futures_lite::StreamExt;
use lapin::options::{BasicConsumeOptions, BasicPublishOptions, QueueDeclareOptions};
use lapin::tcp::{OwnedIdentity, OwnedTLSConfig};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Connection, DefaultConnectionBuilder};
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::rustls::{self, ClientConfig, RootCertStore, SupportedProtocolVersion};
use tokio_rustls::TlsConnector;
use warren::config::{Config, TlsConfig};
use warren::server::tls::{server_config, TlsError};
use warren::server::Server;

use common::TIMEOUT;

/// A certificate authority that issues server and client certificates.
struct Ca {
    issuer: CertifiedIssuer<'static, KeyPair>,
}

/// A certificate and its key, PEM.
struct Issued {
    cert: String,
    key: String,
}

impl Ca {
    fn new(name: &str) -> Ca {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(rcgen::DnType::CommonName, name);
        Ca { issuer: CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap() }
    }

    fn pem(&self) -> String {
        self.issuer.pem()
    }

    fn issue(&self, names: &[&str]) -> Issued {
        let mut params =
            CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>()).unwrap();
        params.distinguished_name.push(rcgen::DnType::CommonName, names[0]);
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        Issued { cert: cert.pem(), key: key.serialize_pem() }
    }
}

/// Files in a directory of their own: the broker's certificate, key and client CA.
struct Files {
    dir: PathBuf,
}

impl Files {
    fn new() -> Files {
        let dir =
            std::env::temp_dir().join(format!("warren-tls-{}-{}", std::process::id(), fastrand::u64(..)));
        std::fs::create_dir_all(&dir).unwrap();
        Files { dir }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    fn write(&self, name: &str, text: &str) -> PathBuf {
        let path = self.path(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    /// TLS settings serving `server`, with `ca` for client certificates.
    fn settings(&self, server: &Issued, ca: &Ca) -> TlsConfig {
        TlsConfig {
            listen: "127.0.0.1:0".parse().unwrap(),
            cert_file: Some(self.write("server.pem", &server.cert)),
            key_file: Some(self.write("server.key", &server.key)),
            ca_file: Some(self.write("ca.pem", &ca.pem())),
            ..TlsConfig::default()
        }
    }
}

impl Drop for Files {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A CA, a server certificate for 127.0.0.1/localhost, and a broker serving it.
struct Setup {
    ca: Ca,
    files: Files,
    server: Server,
}

async fn setup(tweak: impl FnOnce(&mut Config)) -> Setup {
    let ca = Ca::new("warren test CA");
    let files = Files::new();
    let settings = files.settings(&ca.issue(&["localhost", "127.0.0.1"]), &ca);
    let server = common::start_with(|c| {
        c.tls = settings;
        tweak(c);
    })
    .await;
    Setup { ca, files, server }
}

impl Setup {
    fn tls_addr(&self) -> SocketAddr {
        self.server.tls_addr.expect("AMQPS listener")
    }
}

fn amqps_url(addr: SocketAddr) -> String {
    format!("amqps://guest:guest@localhost:{}/%2f", addr.port())
}

/// lapin over amqps, trusting `ca`, with an optional client certificate.
async fn lapin_tls(addr: SocketAddr, ca: &str, client: Option<&Issued>) -> lapin::Result<Connection> {
    let tls = OwnedTLSConfig {
        identity: client
            .map(|c| OwnedIdentity::PKCS8 { pem: c.cert.clone().into(), key: c.key.clone().into() }),
        cert_chain: Some(ca.to_owned()),
    };
    let connect = DefaultConnectionBuilder::new()?.with_uri_str(amqps_url(addr)).with_tls_config(tls);
    let connect = connect.connect();
    tokio::time::timeout(TIMEOUT, connect).await.expect("connect does not hang")
}

/// Publishes one message to a fresh queue and consumes it back.
async fn round_trip(conn: &Connection, body: &[u8]) {
    let ch = conn.create_channel().await.unwrap();
    let name = format!("tls-{}", fastrand::u64(..));
    let q = ch
        .queue_declare(
            name.as_str().into(),
            QueueDeclareOptions { exclusive: true, ..Default::default() },
            FieldTable::default(),
        )
        .await
        .unwrap();
    publish(conn, q.name().as_str(), body).await;
    let mut consumer = ch
        .basic_consume(
            q.name().clone(),
            "".into(),
            BasicConsumeOptions { no_ack: true, ..Default::default() },
            FieldTable::default(),
        )
        .await
        .unwrap();
    let got = tokio::time::timeout(TIMEOUT, consumer.next()).await.unwrap().unwrap().unwrap();
    assert_eq!(got.data, body);
    ch.close(200, "bye".into()).await.unwrap();
}

async fn publish(conn: &Connection, queue: &str, body: &[u8]) {
    let ch = conn.create_channel().await.unwrap();
    ch.basic_publish(
        "".into(),
        queue.into(),
        BasicPublishOptions::default(),
        body,
        BasicProperties::default(),
    )
    .await
    .unwrap();
    ch.close(200, "bye".into()).await.unwrap();
}

/// A bare rustls client, for what lapin does not show.
fn client_config(
    ca: &str,
    client: Option<&Issued>,
    versions: &[&'static SupportedProtocolVersion],
) -> Arc<ClientConfig> {
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(ca.as_bytes()) {
        roots.add(cert.unwrap()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(versions)
        .unwrap()
        .with_root_certificates(roots);
    Arc::new(match client {
        None => builder.with_no_client_auth(),
        Some(c) => {
            let certs = CertificateDer::pem_slice_iter(c.cert.as_bytes()).map(Result::unwrap).collect();
            let key = PrivateKeyDer::from_pem_slice(c.key.as_bytes()).unwrap();
            builder.with_client_auth_cert(certs, key).unwrap()
        }
    })
}

async fn tls_connect(addr: SocketAddr, config: Arc<ClientConfig>) -> std::io::Result<TlsStream<TcpStream>> {
    let tcp = TcpStream::connect(addr).await?;
    let name = ServerName::try_from("localhost").unwrap();
    tokio::time::timeout(TIMEOUT, TlsConnector::from(config).connect(name, tcp)).await.expect("no hang")
}

/// Sends the protocol header and says whether `connection.start` came back.
async fn amqp_starts(stream: &mut TlsStream<TcpStream>) -> bool {
    if stream.write_all(b"AMQP\x00\x00\x09\x01").await.is_err() {
        return false;
    }
    let mut frame = [0u8; 7];
    let read = tokio::time::timeout(TIMEOUT, stream.read_exact(&mut frame)).await.expect("no hang");
    // A method frame on channel 0.
    read.is_ok() && frame[0] == 1 && frame[1..3] == [0, 0]
}

/// The certificate the broker served on a new connection.
async fn served_cert(addr: SocketAddr, ca: &str) -> Vec<u8> {
    let stream = tls_connect(addr, client_config(ca, None, rustls::ALL_VERSIONS)).await.unwrap();
    stream.get_ref().1.peer_certificates().unwrap()[0].to_vec()
}

fn der_of(pem: &str) -> Vec<u8> {
    CertificateDer::from_pem_slice(pem.as_bytes()).unwrap().to_vec()
}

#[tokio::test]
async fn amqps_publish_and_consume_next_to_plain() {
    let s = setup(|_| {}).await;
    let tls = lapin_tls(s.tls_addr(), &s.ca.pem(), None).await.expect("amqps connects");
    round_trip(&tls, b"over tls").await;

    // Plain and TLS at once, into the same broker: a plain publisher, a TLS consumer.
    let plain = Connection::connect(&common::url(s.server.local_addr), Default::default()).await.unwrap();
    let ch = tls.create_channel().await.unwrap();
    ch.queue_declare("shared".into(), QueueDeclareOptions::default(), FieldTable::default()).await.unwrap();
    let mut consumer = ch
        .basic_consume(
            "shared".into(),
            "".into(),
            BasicConsumeOptions { no_ack: true, ..Default::default() },
            FieldTable::default(),
        )
        .await
        .unwrap();
    let big = vec![7u8; 1 << 20];
    publish(&plain, "shared", &big).await;
    publish(&plain, "shared", b"small").await;
    let first = tokio::time::timeout(TIMEOUT, consumer.next()).await.unwrap().unwrap().unwrap();
    assert_eq!(first.data, big, "a message larger than many TLS records arrives whole");
    let second = tokio::time::timeout(TIMEOUT, consumer.next()).await.unwrap().unwrap().unwrap();
    assert_eq!(second.data, b"small");
    tls.close(200, "bye".into()).await.unwrap();
    plain.close(200, "bye".into()).await.unwrap();
    closed_everywhere(&s.server).await;
}

/// Every connection's task has ended (a TLS one's proxy hands the close on).
async fn closed_everywhere(server: &Server) {
    let deadline = tokio::time::Instant::now() + TIMEOUT;
    while server.broker.open_connections() > 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{} connections left",
            server.broker.open_connections()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_client_that_does_not_trust_the_ca_fails() {
    let s = setup(|_| {}).await;
    let other = Ca::new("some other CA");
    assert!(lapin_tls(s.tls_addr(), &other.pem(), None).await.is_err());
    // The broker is fine.
    let ok = lapin_tls(s.tls_addr(), &s.ca.pem(), None).await.unwrap();
    round_trip(&ok, b"still fine").await;
}

#[tokio::test]
async fn verify_peer_with_fail_if_no_peer_cert() {
    let s = setup(|c| {
        c.tls.verify_peer = true;
        c.tls.fail_if_no_peer_cert = true;
    })
    .await;
    let ca = s.ca.pem();
    // No certificate: refused (with TLS 1.3 the client learns it at its first read).
    let bare = tls_connect(s.tls_addr(), client_config(&ca, None, rustls::ALL_VERSIONS)).await;
    if let Ok(mut stream) = bare {
        assert!(!amqp_starts(&mut stream).await, "a client without a certificate got connection.start");
    }
    assert!(lapin_tls(s.tls_addr(), &ca, None).await.is_err());
    // A certificate from another CA: refused.
    let stranger = Ca::new("stranger").issue(&["client"]);
    let wrong = tls_connect(s.tls_addr(), client_config(&ca, Some(&stranger), rustls::ALL_VERSIONS)).await;
    if let Ok(mut stream) = wrong {
        assert!(!amqp_starts(&mut stream).await, "a client with a foreign certificate got connection.start");
    }
    // A certificate from our CA: in, through lapin too.
    let client = s.ca.issue(&["client"]);
    let mut ok =
        tls_connect(s.tls_addr(), client_config(&ca, Some(&client), rustls::ALL_VERSIONS)).await.unwrap();
    assert!(amqp_starts(&mut ok).await);
    let conn = lapin_tls(s.tls_addr(), &ca, Some(&client)).await.expect("a CA-signed client certificate");
    round_trip(&conn, b"mutual").await;
}

#[tokio::test]
async fn verify_peer_alone_makes_the_client_certificate_optional() {
    let s = setup(|c| c.tls.verify_peer = true).await;
    let ca = s.ca.pem();
    let mut bare = tls_connect(s.tls_addr(), client_config(&ca, None, rustls::ALL_VERSIONS)).await.unwrap();
    assert!(amqp_starts(&mut bare).await);
    // But one that is sent must be good.
    let stranger = Ca::new("stranger").issue(&["client"]);
    let wrong = tls_connect(s.tls_addr(), client_config(&ca, Some(&stranger), rustls::ALL_VERSIONS)).await;
    if let Ok(mut stream) = wrong {
        assert!(!amqp_starts(&mut stream).await);
    }
}

#[tokio::test]
async fn a_tls12_only_server() {
    let s = setup(|c| c.tls.versions = vec!["tlsv1.2".into()]).await;
    let ca = s.ca.pem();
    let mut v12 =
        tls_connect(s.tls_addr(), client_config(&ca, None, &[&rustls::version::TLS12])).await.unwrap();
    assert_eq!(v12.get_ref().1.protocol_version(), Some(rustls::ProtocolVersion::TLSv1_2));
    assert!(amqp_starts(&mut v12).await);
    let v13 = tls_connect(s.tls_addr(), client_config(&ca, None, &[&rustls::version::TLS13])).await;
    assert!(v13.is_err(), "a TLS 1.3-only client cannot connect");
    let conn = lapin_tls(s.tls_addr(), &ca, None).await.expect("lapin negotiates 1.2");
    round_trip(&conn, b"v1.2").await;
}

#[tokio::test]
async fn certificates_reload_for_new_connections_only() {
    let s = setup(|_| {}).await;
    let ca = s.ca.pem();
    let handle = s.server.tls.clone().expect("reload handle");
    let first = std::fs::read_to_string(s.files.path("server.pem")).unwrap();
    assert_eq!(served_cert(s.tls_addr(), &ca).await, der_of(&first));
    let old = lapin_tls(s.tls_addr(), &ca, None).await.unwrap();

    let second = s.ca.issue(&["localhost", "127.0.0.1"]);
    s.files.write("server.pem", &second.cert);
    // The certificate alone does not match the key in force: kept as it was.
    let err = handle.reload().unwrap_err();
    assert!(matches!(err, TlsError::Key { .. }), "{err}");
    assert_eq!(served_cert(s.tls_addr(), &ca).await, der_of(&first));
    s.files.write("server.key", &second.key);
    handle.reload().unwrap();
    assert_eq!(served_cert(s.tls_addr(), &ca).await, der_of(&second.cert));
    round_trip(&old, b"the old connection goes on").await;

    // A bad file keeps the certificates in force.
    s.files.write("server.pem", "-----BEGIN CERTIFICATE-----\nnot base64!\n-----END CERTIFICATE-----\n");
    let err = handle.reload().unwrap_err();
    assert!(err.to_string().contains("server.pem"), "{err}");
    assert_eq!(served_cert(s.tls_addr(), &ca).await, der_of(&second.cert));
    round_trip(&lapin_tls(s.tls_addr(), &ca, None).await.unwrap(), b"new").await;

    // SIGHUP reloads too, as an operator would ask.
    let third = s.ca.issue(&["localhost", "127.0.0.1"]);
    s.files.write("server.pem", &third.cert);
    s.files.write("server.key", &third.key);
    // SAFETY: kill(2) on our own pid; the broker installed a SIGHUP handler.
    assert_eq!(unsafe { libc::kill(libc::getpid(), libc::SIGHUP) }, 0);
    let deadline = tokio::time::Instant::now() + TIMEOUT;
    while served_cert(s.tls_addr(), &ca).await != der_of(&third.cert) {
        assert!(tokio::time::Instant::now() < deadline, "SIGHUP did not reload");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    round_trip(&old, b"still going").await;
}

#[tokio::test]
async fn without_the_tcp_listener_only_amqps_is_served() {
    let s = setup(|c| c.amqp.tcp_listener = false).await;
    assert_eq!(s.server.local_addr, s.tls_addr(), "local_addr is the AMQPS address");
    let conn = lapin_tls(s.tls_addr(), &s.ca.pem(), None).await.unwrap();
    round_trip(&conn, b"tls only").await;
    // The plain port of the configuration (127.0.0.1:0) was never bound: plain AMQP to
    // the TLS port gets no AMQP answer.
    let mut plain = TcpStream::connect(s.tls_addr()).await.unwrap();
    plain.write_all(b"AMQP\x00\x00\x09\x01").await.unwrap();
    let mut buf = [0u8; 64];
    let n = tokio::time::timeout(TIMEOUT, plain.read(&mut buf)).await.unwrap().unwrap_or(0);
    assert!(!buf[..n].starts_with(&[1, 0, 0]), "a plain AMQP answer on the TLS port");
}

#[tokio::test]
async fn garbage_on_the_tls_port_harms_no_one() {
    let s = setup(|c| c.amqp.handshake_timeout = 1).await;
    let ca = s.ca.pem();
    let conn = lapin_tls(s.tls_addr(), &ca, None).await.unwrap();
    let junk: Vec<Vec<u8>> = vec![
        b"AMQP\x00\x00\x09\x01".to_vec(),
        (0..4096).map(|_| fastrand::u8(..)).collect(),
        // A TLS record header that promises more than it sends.
        vec![0x16, 0x03, 0x01, 0x40, 0x00, 0x01],
        vec![0x16, 0x03, 0x03, 0xff, 0xff],
        b"GET / HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(),
    ];
    for bytes in &junk {
        let mut tcp = TcpStream::connect(s.tls_addr()).await.unwrap();
        let _ = tcp.write_all(bytes).await;
        let mut buf = [0u8; 256];
        // The broker answers with an alert or closes, within the handshake timeout.
        tokio::time::timeout(Duration::from_secs(5), async {
            while matches!(tcp.read(&mut buf).await, Ok(n) if n > 0) {}
        })
        .await
        .expect("the broker closes the connection");
    }
    // A client that opens TLS and says nothing is let go after the handshake timeout.
    let mut silent = TcpStream::connect(s.tls_addr()).await.unwrap();
    let mut buf = [0u8; 16];
    let closed = tokio::time::timeout(Duration::from_secs(5), silent.read(&mut buf)).await;
    assert!(matches!(closed, Ok(Ok(0)) | Ok(Err(_))), "a silent client is closed: {closed:?}");
    // A TLS client that drops mid-AMQP-handshake.
    let mut half = tls_connect(s.tls_addr(), client_config(&ca, None, rustls::ALL_VERSIONS)).await.unwrap();
    half.write_all(b"AMQP\x00\x00").await.unwrap();
    drop(half);
    round_trip(&conn, b"unharmed").await;
    let new = lapin_tls(s.tls_addr(), &ca, None).await.unwrap();
    round_trip(&new, b"new").await;
    // Clients that vanish without a word (no close, no close_notify) are noticed too.
    drop(new);
    drop(conn);
    closed_everywhere(&s.server).await;
}

#[tokio::test]
async fn bad_files_are_named_in_the_error() {
    let ca = Ca::new("ca");
    let files = Files::new();
    let good = files.settings(&ca.issue(&["localhost"]), &ca);
    assert!(server_config(&good).is_ok());
    let check = |settings: TlsConfig, wanted: &str| {
        let err = server_config(&settings).unwrap_err().to_string();
        assert!(err.contains(wanted), "{err:?} should mention {wanted:?}");
    };
    let missing = files.path("nowhere.pem");
    check(TlsConfig { cert_file: Some(missing.clone()), ..good.clone() }, "nowhere.pem");
    check(TlsConfig { key_file: Some(missing.clone()), ..good.clone() }, "nowhere.pem");
    let empty = files.write("empty.pem", "");
    check(TlsConfig { cert_file: Some(empty.clone()), ..good.clone() }, "empty.pem");
    check(TlsConfig { key_file: Some(empty.clone()), ..good.clone() }, "empty.pem");
    let other_key = files.write("other.key", &KeyPair::generate().unwrap().serialize_pem());
    check(TlsConfig { key_file: Some(other_key), ..good.clone() }, "other.key");
    let verify = TlsConfig { verify_peer: true, ..good.clone() };
    assert!(server_config(&verify).is_ok());
    check(TlsConfig { ca_file: None, ..verify.clone() }, "ca_file");
    check(TlsConfig { ca_file: Some(empty), ..verify }, "empty.pem");
    check(TlsConfig { versions: vec!["tlsv1.1".into()], ..good.clone() }, "tlsv1.1");
    check(TlsConfig { versions: vec![], ..good.clone() }, "versions");

    // And the broker does not start on them.
    let bad = TlsConfig { cert_file: Some(missing), ..good };
    let dir = files.path("data");
    let mut config = Config::default();
    config.metrics.listen = None;
    config.amqp.listen = "127.0.0.1:0".parse().unwrap();
    config.storage.data_dir = dir;
    config.tls = bad;
    let err = Server::start(config).await.err().expect("no start with a missing certificate");
    assert!(err.to_string().contains("nowhere.pem"), "{err}");
}

#[test]
fn config_validation_of_tls() {
    let mut c = Config::default();
    c.metrics.listen = None;
    c.tls.cert_file = Some("/x/cert.pem".into());
    assert!(c.validate().is_err(), "a certificate without a key");
    c.tls.key_file = Some("/x/key.pem".into());
    assert!(c.validate().is_ok());
    c.tls.verify_peer = true;
    assert!(c.validate().is_err(), "verify_peer without ca_file");
    c.tls.ca_file = Some("/x/ca.pem".into());
    assert!(c.validate().is_ok());
    c.tls.versions = vec!["sslv3".into()];
    assert!(c.validate().is_err());
    let mut none = Config::default();
    none.metrics.listen = None;
    none.amqp.tcp_listener = false;
    assert!(none.validate().is_err(), "no listener at all");
}

/// GET `path` on the server's admin API as guest, in process.
async fn api(server: &Server, path: &str) -> (u16, serde_json::Value) {
    use http_body_util::BodyExt;
    use tower::ServiceExt;
    let state = warren::admin::AdminState::new(server.broker.clone(), server.access.clone())
        .with_node(server.node.clone());
    let app = warren::admin::router(state)
        .layer(axum::extract::connect_info::MockConnectInfo(SocketAddr::from(([127, 0, 0, 1], 40000))));
    let req = axum::http::Request::builder()
        .uri(path)
        .header("authorization", "Basic Z3Vlc3Q6Z3Vlc3Q=")
        .body(axum::body::Body::empty())
        .unwrap();
    let resp = app.oneshot(req).await.unwrap();
    let status = resp.status().as_u16();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    (status, serde_json::from_slice(&bytes).unwrap_or_default())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_shows_tls_connections_and_certificates_about_to_expire() {
    let s = setup(|_| {}).await;
    let tls = lapin_tls(s.tls_addr(), &s.ca.pem(), None).await.expect("amqps connects");
    let plain = Connection::connect(&common::url(s.server.local_addr), Default::default()).await.unwrap();
    let (_, conns) = api(&s.server, "/api/connections?sort=ssl").await;
    let conns = conns.as_array().unwrap();
    assert_eq!(conns.len(), 2, "{conns:?}");
    assert_eq!(
        (&conns[0]["ssl"], &conns[0]["ssl_protocol"]),
        (&serde_json::json!(false), &serde_json::Value::Null)
    );
    assert_eq!(conns[1]["ssl"], true);
    assert_eq!(conns[1]["ssl_protocol"], "tlsv1.3");
    assert_eq!(conns[1]["port"], s.tls_addr().port());
    assert!(conns[1]["ssl_cipher"].as_str().is_some_and(|c| c.starts_with("TLS13_")), "{}", conns[1]);
    let (status, _) =
        api(&s.server, &format!("/api/health/checks/port-listener/{}", s.tls_addr().port())).await;
    assert_eq!(status, 200);
    assert_eq!(api(&s.server, "/api/health/checks/protocol-listener/amqps").await.0, 200);

    // rcgen's default certificate lasts for centuries.
    assert_eq!(api(&s.server, "/api/health/checks/certificate-expiration/1/years").await.0, 200);
    // A certificate expiring in ten days, put in place (as before a SIGHUP):
    // the check reads the file, so it is what a reload would serve.
    let soon = {
        let mut params = CertificateParams::new(vec!["localhost".to_string()]).unwrap();
        let in_ten_days = std::time::SystemTime::now() + Duration::from_secs(10 * 86_400);
        params.not_after = in_ten_days.into();
        params.self_signed(&KeyPair::generate().unwrap()).unwrap().pem()
    };
    s.files.write("server.pem", &soon);
    let (status, body) = api(&s.server, "/api/health/checks/certificate-expiration/1/months").await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["status"], "failed");
    assert_eq!(body["expired"][0]["port"], s.tls_addr().port());
    assert_eq!(api(&s.server, "/api/health/checks/certificate-expiration/1/days").await.0, 200);
    tls.close(200, "bye".into()).await.unwrap();
    plain.close(200, "bye".into()).await.unwrap();
}
