//! The AMQPS listener: TLS (rustls, ring provider) in front of the ordinary
//! connection code, with certificates reloaded on SIGHUP or on request.
//! May use `config` (and the connection code only through the `Serve` given).
//!
//! Each accepted TCP connection is handshaken in its own task; the decrypted
//! bytes then go through a `UnixStream::pair()`: a proxy task copies between
//! the TLS stream and one end, the other end is served as any connection.
//! The driver's writes are non-blocking `try_write`s batched per turn of its
//! loop, which needs a real socket under it; a TLS stream is not one. So TLS
//! pays one extra copy through the kernel, and the plain TCP path, the hot
//! one, pays nothing.

use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use crate::broker::connections::TlsInfo;
use parking_lot::RwLock;
use rustls_pki_types::pem::{self, PemObject};
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UnixStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::timeout;
use tokio_rustls::rustls::crypto::{ring, CryptoProvider};
use tokio_rustls::rustls::server::WebPkiClientVerifier;
use tokio_rustls::rustls::version::{TLS12, TLS13};
use tokio_rustls::rustls::{self, RootCertStore, ServerConfig, SupportedProtocolVersion};
use tokio_rustls::TlsAcceptor;
use tracing::{debug, error, info, warn, Instrument};

use crate::config::TlsConfig;

/// Serves one decrypted connection: gets the broker's end of the socket pair,
/// the client's real address and the address it connected to (those of the
/// TCP connection, not of the socket pair), and returns the connection's task
/// (the proxy stops a little after it ends).
pub type Serve = Arc<dyn Fn(UnixStream, SocketAddr, SocketAddr, TlsInfo) -> JoinHandle<()> + Send + Sync>;

/// One TLS record's worth of plaintext: each proxy read becomes one record.
const PUMP_CHUNK: usize = 16 * 1024;
/// Once the connection's task has ended, the client has this long to take the
/// last bytes and close; a client that neither reads nor closes must not keep
/// the proxy (and its TCP connection) alive.
const CLOSE_GRACE: Duration = Duration::from_secs(5);

/// Why a TLS setup could not be used. Every text names the setting and file.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("tls.{0} is not set")]
    Missing(&'static str),
    #[error("tls.{setting}: cannot read {}: {source}", path.display())]
    Read { setting: &'static str, path: PathBuf, source: io::Error },
    #[error("tls.{setting}: {} holds no PEM {what}", path.display())]
    Empty { setting: &'static str, path: PathBuf, what: &'static str },
    #[error("tls.{setting}: {} is not valid PEM: {message}", path.display())]
    Pem { setting: &'static str, path: PathBuf, message: String },
    #[error("tls.ca_file: {}: {message}", path.display())]
    Ca { path: PathBuf, message: String },
    #[error("tls.cert_file {} with tls.key_file {}: {source}", cert.display(), key.display())]
    Key { cert: PathBuf, key: PathBuf, source: rustls::Error },
    #[error("tls.versions: {0}")]
    Versions(String),
}

impl From<TlsError> for io::Error {
    fn from(e: TlsError) -> io::Error {
        io::Error::new(io::ErrorKind::InvalidInput, e.to_string())
    }
}

/// The certificates in force, and how to read them again.
pub struct Tls {
    settings: TlsConfig,
    local_addr: SocketAddr,
    /// Read once per accepted connection: a reload affects new connections only.
    current: RwLock<Arc<ServerConfig>>,
}

impl Tls {
    /// The address the AMQPS listener is bound to.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Reads the certificate, key and CA files again. On failure the old
    /// certificates stay in force (and the error is logged and returned, for
    /// an admin API to show).
    pub fn reload(&self) -> Result<(), TlsError> {
        match server_config(&self.settings) {
            Ok(c) => {
                *self.current.write() = Arc::new(c);
                info!("TLS certificates reloaded");
                Ok(())
            }
            Err(e) => {
                error!("TLS reload failed, keeping the previous certificates: {e}");
                Err(e)
            }
        }
    }

    fn acceptor(&self) -> TlsAcceptor {
        TlsAcceptor::from(self.current.read().clone())
    }
}

/// Builds the rustls server configuration `settings` describe, reading its files.
pub fn server_config(settings: &TlsConfig) -> Result<ServerConfig, TlsError> {
    let cert_file = settings.cert_file.as_deref().ok_or(TlsError::Missing("cert_file"))?;
    let key_file = settings.key_file.as_deref().ok_or(TlsError::Missing("key_file"))?;
    // Explicitly ring: no process-wide default provider to depend on.
    let provider = Arc::new(ring::default_provider());
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&versions(&settings.versions)?)
        .map_err(|e| TlsError::Versions(e.to_string()))?;
    let builder = if settings.verify_peer {
        let verifier = client_verifier(settings, provider)?;
        builder.with_client_cert_verifier(verifier)
    } else {
        builder.with_no_client_auth()
    };
    let certs = certificates("cert_file", cert_file)?;
    let key = PrivateKeyDer::from_pem_file(key_file).map_err(|e| match e {
        pem::Error::NoItemsFound => TlsError::Empty {
            setting: "key_file",
            path: key_file.to_owned(),
            what: "private key (PKCS#8, PKCS#1 or SEC1; encrypted keys are not supported)",
        },
        e => pem_error("key_file", key_file, e),
    })?;
    // Checks that the key is the certificate's.
    builder.with_single_cert(certs, key).map_err(|source| TlsError::Key {
        cert: cert_file.to_owned(),
        key: key_file.to_owned(),
        source,
    })
}

/// Client certificates must chain to `ca_file`; they are optional unless
/// `fail_if_no_peer_cert` (RabbitMQ's `verify_peer` semantics).
fn client_verifier(
    settings: &TlsConfig,
    provider: Arc<CryptoProvider>,
) -> Result<Arc<dyn rustls::server::danger::ClientCertVerifier>, TlsError> {
    let ca_file = settings.ca_file.as_deref().ok_or(TlsError::Missing("ca_file (needed by verify_peer)"))?;
    let mut roots = RootCertStore::empty();
    for cert in certificates("ca_file", ca_file)? {
        roots.add(cert).map_err(|e| TlsError::Ca { path: ca_file.to_owned(), message: e.to_string() })?;
    }
    let mut verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider);
    if !settings.fail_if_no_peer_cert {
        verifier = verifier.allow_unauthenticated();
    }
    verifier.build().map_err(|e| TlsError::Ca { path: ca_file.to_owned(), message: e.to_string() })
}

fn versions(names: &[String]) -> Result<Vec<&'static SupportedProtocolVersion>, TlsError> {
    if names.is_empty() {
        return Err(TlsError::Versions("no TLS version left to offer".into()));
    }
    names
        .iter()
        .map(|v| match v.to_ascii_lowercase().as_str() {
            "tlsv1.3" => Ok(&TLS13),
            "tlsv1.2" => Ok(&TLS12),
            _ => {
                Err(TlsError::Versions(format!("{v:?} is not supported (only \"tlsv1.3\" and \"tlsv1.2\")")))
            }
        })
        .collect()
}

fn certificates(setting: &'static str, path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| pem_error(setting, path, e))?;
    if certs.is_empty() {
        return Err(TlsError::Empty { setting, path: path.to_owned(), what: "certificate" });
    }
    Ok(certs)
}

fn pem_error(setting: &'static str, path: &Path, e: pem::Error) -> TlsError {
    let path = path.to_owned();
    match e {
        pem::Error::Io(source) => TlsError::Read { setting, path, source },
        e => TlsError::Pem { setting, path, message: e.to_string() },
    }
}

/// Starts the AMQPS listener if `settings` has a certificate and key: binds,
/// reads the certificates (a bad file fails the start), and accepts until
/// `stop` changes (or its sender is gone). Returns the bound address and the
/// handle to reload certificates with; None when TLS is not configured.
pub async fn listen(
    settings: &TlsConfig,
    handshake_timeout: Duration,
    serve: Serve,
    mut stop: watch::Receiver<bool>,
) -> io::Result<Option<(SocketAddr, Arc<Tls>)>> {
    if settings.cert_file.is_none() && settings.key_file.is_none() {
        return Ok(None);
    }
    let config = server_config(settings)?;
    let listener = TcpListener::bind(settings.listen).await?;
    let local_addr = listener.local_addr()?;
    let tls =
        Arc::new(Tls { settings: settings.clone(), local_addr, current: RwLock::new(Arc::new(config)) });
    info!(%local_addr, "AMQPS listener started");
    let mut hangup = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
        Ok(s) => Some(s),
        Err(e) => {
            warn!("no certificate reload on SIGHUP: {e}");
            None
        }
    };
    let t = tls.clone();
    tokio::spawn(async move {
        loop {
            tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok((tcp, peer)) => {
                        let span = tracing::info_span!("tls", %peer);
                        tokio::spawn(connection(tcp, peer, t.acceptor(), handshake_timeout, serve.clone()).instrument(span));
                    }
                    Err(e) => {
                        // Out of file descriptors and the like: back off, keep serving.
                        error!("AMQPS accept failed: {e}");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                },
                () = hungup(&mut hangup) => {
                    // Logged by reload; a failure keeps the old certificates.
                    let _ = t.reload();
                }
                _ = stop.changed() => break,
            }
        }
    });
    Ok(Some((local_addr, tls)))
}

/// Resolves at the next SIGHUP; never without a signal stream.
async fn hungup(signal: &mut Option<tokio::signal::unix::Signal>) {
    let got = match signal {
        Some(s) => s.recv().await,
        None => None,
    };
    if got.is_none() {
        std::future::pending::<()>().await;
    }
}

/// One client: the TLS handshake (bounded like the AMQP one), then the
/// connection proper, proxied.
async fn connection(tcp: TcpStream, peer: SocketAddr, acceptor: TlsAcceptor, limit: Duration, serve: Serve) {
    let _ = tcp.set_nodelay(true);
    let local = match tcp.local_addr() {
        Ok(local) => local,
        Err(e) => return debug!("connection gone at once: {e}"),
    };
    let tls = match timeout(limit, acceptor.accept(tcp)).await {
        Err(_) => return warn!("TLS handshake timed out"),
        // A port probe or a health check: connected, sent nothing, left.
        Ok(Err(e)) if e.kind() == io::ErrorKind::UnexpectedEof => return debug!("TLS handshake: {e}"),
        // A plain AMQP client, a scanner, a wrong CA: the client sees why; we log it.
        Ok(Err(e)) => return warn!("TLS handshake failed: {e}"),
        Ok(Ok(s)) => s,
    };
    let session = tls.get_ref().1;
    let info = TlsInfo {
        protocol: match session.protocol_version() {
            Some(rustls::ProtocolVersion::TLSv1_3) => "tlsv1.3".to_owned(),
            Some(rustls::ProtocolVersion::TLSv1_2) => "tlsv1.2".to_owned(),
            Some(v) => format!("{v:?}").to_lowercase(),
            None => String::new(),
        },
        cipher: session.negotiated_cipher_suite().map(|s| format!("{:?}", s.suite())).unwrap_or_default(),
    };
    debug!(version = %info.protocol, suite = %info.cipher, "TLS established");
    let (ours, theirs) = match UnixStream::pair() {
        Ok(pair) => pair,
        Err(e) => return error!("cannot create a socket pair for a TLS connection: {e}"),
    };
    let task = serve(theirs, peer, local, info);
    proxy(tls, ours, task).await;
}

/// Copies both ways until both directions are done, or until `CLOSE_GRACE`
/// after the connection's task ended. A side that finishes shuts down the
/// other's writing (TLS close_notify towards the client, EOF towards the
/// broker), so each end sees the other close as it would on plain TCP.
async fn proxy<T>(tls: T, ours: UnixStream, task: JoinHandle<()>)
where
    T: AsyncRead + AsyncWrite + Unpin,
{
    let (mut tls_rd, mut tls_wr) = tokio::io::split(tls);
    let (mut our_rd, mut our_wr) = ours.into_split();
    let upstream = async {
        if let Err(e) = pump(&mut tls_rd, &mut our_wr).await {
            debug!("from client: {e}");
        }
        let _ = our_wr.shutdown().await;
    };
    let downstream = async {
        if let Err(e) = pump(&mut our_rd, &mut tls_wr).await {
            debug!("to client: {e}");
        }
        let _ = tls_wr.shutdown().await;
    };
    tokio::select! {
        _ = async { tokio::join!(upstream, downstream) } => {}
        _ = async {
            let _ = task.await;
            tokio::time::sleep(CLOSE_GRACE).await;
        } => debug!("client did not close in time after the connection ended"),
    }
}

async fn pump<R, W>(rd: &mut R, wr: &mut W) -> io::Result<()>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut buf = vec![0u8; PUMP_CHUNK];
    loop {
        let n = rd.read(&mut buf).await?;
        if n == 0 {
            return Ok(());
        }
        wr.write_all(&buf[..n]).await?;
        // TLS buffers records until flushed.
        wr.flush().await?;
    }
}
