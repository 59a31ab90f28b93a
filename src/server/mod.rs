//! Listeners and the server's lifetime. May use `connection`, `broker`, `config`.

pub mod environment;
pub mod fds;
mod monitor;
pub mod tls;

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::{error, info, warn};

use crate::access::{Access, Credential};
use crate::admin;
use crate::broker::queue::QueueConfig;
use crate::broker::Broker;
use crate::config::Config;
use crate::connection;
use crate::store::recovery;
use crate::store::rocks::RocksStore;
use crate::store::writer::HeadLimit;
use crate::store::{Op, Store, StoreHandle};

/// Rebuilds the broker's durable state from `store`: topology, and each
/// queue's head of messages (the rest stays paged out on disk).
fn recover(config: &Config, store: Arc<dyn Store>) -> std::io::Result<(Broker, Arc<Access>, StoreHandle)> {
    let started = std::time::Instant::now();
    let dir = &config.storage.data_dir;
    let failed = |e: crate::store::StoreError| std::io::Error::other(e.to_string());
    let recovered = store.load().map_err(failed)?;
    let head =
        HeadLimit { messages: config.storage.queue_head_messages, bytes: config.storage.queue_head_bytes };
    // A priority queue's page lanes take the ids after its own.
    let lanes: Vec<(u64, u8)> = recovered
        .queues
        .iter()
        .map(|q| (q.id, QueueConfig::from_args(&q.arguments).max_priority.unwrap_or(0)))
        .collect();
    let mut b = recovery::backlogs(store.as_ref(), &lanes, head).map_err(failed)?;
    let last_queue_id = lanes.iter().map(|(id, last)| id + u64::from(*last)).max().unwrap_or(0);
    let next_id = recovered.max_message_id.max(b.max_message_id).max(last_queue_id) + 1;
    let messages: u64 =
        b.queues.values().map(|q| q.head.len() as u64 + q.paged.iter().map(|p| p.count).sum::<u64>()).sum();
    let queues = recovered.queues.len();
    let fixes = std::mem::take(&mut b.fixes);
    let handle = StoreHandle::start(store, config.storage.fsync, next_id, b.refs, head);
    handle.set_streams_dir(dir.join("streams"));
    // From here the store has a writer: a failed start closes it before
    // returning, or the process would exit with RocksDB's threads running.
    let restored = (|| {
        // Before anything reads pages back, and on disk before any queue takes
        // a delivery: a fix rewrites places already on disk, which an ack
        // meeting it in one batch must not cancel (`annihilate` takes a place
        // written after its message in the batch for the place's first write).
        // A failed write fails the store, which then refuses what needs it.
        if !fixes.is_empty() {
            for group in recovery::fix_groups(fixes) {
                handle.submit_all(group);
            }
            handle.write_durably([]);
        }
        let broker = Broker::with_store(Some(handle.clone()));
        let access = Arc::new(Access::new(Some(handle.clone()), config.access.loopback_users.clone()));
        access.restore(recovered.control.iter().map(|(space, _, value)| (space.as_str(), value.as_slice())));
        // The marker is set once the defaults were made: a data directory whose
        // every vhost and user was deleted stays so, never getting guest/guest
        // back. One with vhosts or users but no marker (written while the marker
        // did not exist yet) counts as set up too.
        let marked = recovered.control.iter().any(|(space, key, _)| space == INIT_SPACE && key == INIT_KEY);
        let fresh = !marked
            && !access.has_users()
            && !recovered.control.iter().any(|(space, _, _)| space == crate::broker::vhost::VHOST_SPACE);
        // A data directory of a Warren from before vhosts were kept: its
        // topology is in `/`, which it keeps, definitions or not.
        let legacy = fresh && !(recovered.exchanges.is_empty() && recovered.queues.is_empty());
        // As RabbitMQ: definitions loaded at boot replace the default vhost and user.
        let make_default = legacy || (fresh && config.access.definitions.is_none());
        broker.restore(recovered, &mut b.queues, make_default, !fresh);
        if !fresh {
            // Permissions of a vhost whose deletion a crash cut short.
            let orphans: std::collections::BTreeSet<_> = access
                .permissions()
                .into_iter()
                .map(|p| p.vhost)
                .filter(|v| broker.vhost(v).is_none())
                .collect();
            for v in orphans {
                warn!(vhost = %v, "deleting the permissions of a deleted vhost");
                access.vhost_deleted(&v).map_err(std::io::Error::other)?;
            }
        }
        match &config.access.definitions {
            Some(path) => load_definitions(path, &broker, &access)?,
            None if fresh => seed_users(config, &broker, &access).map_err(std::io::Error::other)?,
            None => {}
        }
        if !marked {
            let mark =
                Op::PutControl { space: INIT_SPACE.into(), key: INIT_KEY.into(), value: b"1".to_vec() };
            if !handle.write_durably([mark]) {
                return Err(std::io::Error::other("cannot write to the data directory"));
            }
        }
        Ok((broker, access))
    })();
    let (broker, access) = match restored {
        Ok(r) => r,
        Err(e) => {
            handle.shutdown();
            return Err(e);
        }
    };
    info!(data_dir = %dir.display(), queues, messages, elapsed_ms = started.elapsed().as_millis() as u64, "recovered durable state");
    Ok((broker, access, handle))
}

/// The admin API on its TCP port and on warrenctl's unix socket. Neither
/// stops the broker if it cannot start (a port taken by a RabbitMQ beside
/// it, say): AMQP is what clients need; the error is logged.
async fn start_admin(
    config: &Config,
    broker: &Arc<Broker>,
    access: &Arc<Access>,
    node: &Arc<admin::NodeFacts>,
    stop: &watch::Receiver<bool>,
) -> (Option<SocketAddr>, Option<std::path::PathBuf>) {
    let state = admin::AdminState::new(broker.clone(), access.clone()).with_node(node.clone());
    let mut addr = None;
    if let Some(listen) = config.admin.listen {
        match TcpListener::bind(listen).await {
            Ok(l) => {
                addr = l.local_addr().ok();
                if let Some(a) = addr {
                    node.add_listener("http", a);
                }
                info!(local_addr = ?addr, "admin API listener started");
                let (state, stop) = (state.clone(), stop.clone());
                tokio::spawn(async move {
                    if let Err(e) = admin::serve_admin(l, state, stop).await {
                        error!("admin API stopped: {e}");
                    }
                });
            }
            Err(e) => error!("admin API not started: cannot listen on {listen}: {e}"),
        }
    }
    let mut socket = None;
    if let Some(path) = config.admin.socket_path(&config.storage.data_dir) {
        let bound =
            path.parent().map_or(Ok(()), std::fs::create_dir_all).and_then(|()| admin::bind_socket(&path));
        match bound {
            Ok(l) => {
                info!(path = %path.display(), "warrenctl socket ready");
                socket = Some(path);
                let stop = stop.clone();
                tokio::spawn(async move {
                    if let Err(e) = admin::serve_socket(l, state, stop).await {
                        error!("warrenctl socket stopped: {e}");
                    }
                });
            }
            Err(e) => error!("warrenctl socket not started at {}: {e}", path.display()),
        }
    }
    (addr, socket)
}

/// The Prometheus listener; like the admin API's, a port it cannot bind
/// is logged and the broker starts all the same.
async fn start_metrics(
    config: &Config,
    state: crate::metrics::MetricsState,
    stop: &watch::Receiver<bool>,
) -> Option<SocketAddr> {
    let listen = config.metrics.listen?;
    match TcpListener::bind(listen).await {
        Ok(l) => {
            let addr = l.local_addr().ok();
            if let Some(a) = addr {
                state.node.add_listener("http/prometheus", a);
            }
            info!(local_addr = ?addr, "metrics listener started");
            let stop = stop.clone();
            tokio::spawn(async move {
                if let Err(e) = crate::metrics::serve(l, state, stop).await {
                    error!("metrics listener stopped: {e}");
                }
            });
            addr
        }
        Err(e) => {
            error!("metrics not started: cannot listen on {listen}: {e}");
            None
        }
    }
}

/// Imports the definitions file at start-up, as RabbitMQ's
/// `load_definitions`: a file that cannot be read or imported stops the
/// start, naming the file (never quoting it: it may hold password hashes).
fn load_definitions(path: &std::path::Path, broker: &Broker, access: &Access) -> std::io::Result<()> {
    let body = std::fs::read(path).map_err(|e| {
        std::io::Error::new(e.kind(), format!("cannot read definitions file {}: {e}", path.display()))
    })?;
    let report = crate::admin::definitions::import(broker, access, &body, None).map_err(|e| {
        std::io::Error::other(format!("cannot import definitions file {}: {e}", path.display()))
    })?;
    info!(file = %path.display(), skipped = report.skipped.len(), "imported definitions");
    Ok(())
}

/// The control record saying a data directory got its defaults.
const INIT_SPACE: &str = "broker";
const INIT_KEY: &str = "initialised";

/// A new data directory gets the configured users (RabbitMQ's
/// `default_user`), each with every permission on `/`; a user already there
/// (from a data directory of an older Warren) is left as it is.
fn seed_users(config: &Config, broker: &Broker, access: &Access) -> Result<(), crate::access::AccessError> {
    for u in &config.users {
        if access.user(&u.name).is_some() {
            continue;
        }
        let credential = match (&u.password, &u.password_hash) {
            (Some(p), _) => Credential::Password(p.clone()),
            (None, Some(h)) => Credential::Hash {
                hash: h.clone(),
                algorithm: u
                    .hashing_algorithm
                    .clone()
                    .unwrap_or_else(|| crate::access::Algorithm::Sha256.name().to_owned()),
            },
            (None, None) => Credential::None,
        };
        access.put_user(&u.name, Some(credential), Some(u.tags.clone()))?;
        if broker.vhost("/").is_some() {
            access.set_permission("/", &u.name, ".*", ".*", ".*")?;
        }
        info!(user = %u.name, "created default user");
    }
    Ok(())
}

/// A running server.
pub struct Server {
    /// The plain AMQP listener's address; the AMQPS one when `amqp.tcp_listener` is off.
    pub local_addr: SocketAddr,
    /// The AMQPS listener's address, when TLS is configured.
    pub tls_addr: Option<SocketAddr>,
    /// Reloads the AMQPS certificates (as SIGHUP does); None without TLS.
    pub tls: Option<Arc<tls::Tls>>,
    pub broker: Arc<Broker>,
    pub access: Arc<Access>,
    /// Where the admin API listens (None: off, or its port was taken).
    pub admin_addr: Option<SocketAddr>,
    /// Where Prometheus metrics are served (None: off, or its port was taken).
    pub metrics_addr: Option<SocketAddr>,
    /// warrenctl's socket, removed at stop.
    pub socket: Option<std::path::PathBuf>,
    /// What the admin API reports about this node (listeners, cluster name).
    pub node: Arc<admin::NodeFacts>,
    shutdown: watch::Sender<bool>,
    task: JoinHandle<()>,
    store: StoreHandle,
}

impl Drop for Server {
    /// Closes the store (writing what is pending): RocksDB must be closed
    /// before the process exits.
    fn drop(&mut self) {
        self.store.shutdown();
    }
}

/// Free space below which the store is not opened.
const MIN_FREE_TO_OPEN: u64 = 16 << 20;

impl Server {
    /// Opens the data directory (RocksDB), binds the AMQP listener and
    /// starts accepting connections.
    pub async fn start(config: Config) -> std::io::Result<Server> {
        std::fs::create_dir_all(&config.storage.data_dir)?;
        let dir = &config.storage.data_dir;
        // RocksDB writes its log header and replays its write-ahead log at
        // open; a write failing there aborts the process (Debian's build
        // asserts on the write after a failed one). Refused cleanly instead.
        if let Some(free) = monitor::disk_free(dir).filter(|free| *free < MIN_FREE_TO_OPEN) {
            return Err(std::io::Error::other(format!(
                "only {free} bytes are free on the file system of {}: Warren needs {} MiB to open its \
                 store; free some space and start it again",
                dir.display(),
                MIN_FREE_TO_OPEN >> 20
            )));
        }
        let store =
            RocksStore::open(&config.storage.data_dir).map_err(|e| std::io::Error::other(e.to_string()))?;
        Self::start_with_store(config, Arc::new(store)).await
    }

    /// Starts on a store of the embedder's choice (tests that need no disk
    /// use `store::memory::MemoryStore`).
    pub async fn start_with_store(config: Config, store: Arc<dyn Store>) -> std::io::Result<Server> {
        let (broker, access, store) = recover(&config, store)?;
        match Self::serve(config, broker, access, store.clone()).await {
            Ok(server) => Ok(server),
            Err(e) => {
                // Closed on its writer's thread before the process can exit
                // (RocksDB's threads must not outlive it): exit 1, not a crash.
                let _ = tokio::task::spawn_blocking(move || store.shutdown()).await;
                Err(e)
            }
        }
    }

    /// Listens and serves a recovered broker.
    async fn serve(
        config: Config,
        broker: Broker,
        access: Arc<Access>,
        store: StoreHandle,
    ) -> std::io::Result<Server> {
        let broker = Arc::new(broker);
        // After recovery: what is on disk (and boot definitions) is kept whole.
        broker.set_topology_caps(config.limits.max_queues_per_vhost, config.limits.max_exchanges_per_vhost);
        let listener = match config.amqp.tcp_listener {
            true => Some(TcpListener::bind(config.amqp.listen).await?),
            false => None,
        };
        if let Some(l) = &listener {
            info!(local_addr = %l.local_addr()?, "AMQP listener started");
        }
        broker.alarms.set_memory_limit(monitor::memory_limit(&config.memory));
        let (shutdown, mut stop) = watch::channel(false);
        broker.alarms.set_disk_free_limit(config.storage.disk_free_limit);
        let monitor = tokio::spawn(monitor::monitor(
            broker.clone(),
            config.storage.data_dir.clone(),
            config.memory.paging_ratio,
        ));
        let sampler = tokio::spawn(monitor::sample(broker.clone()));
        let config = Arc::new(config);
        let serve: tls::Serve = {
            let (b, a, config) = (broker.clone(), access.clone(), config.clone());
            Arc::new(move |s, peer, local, tls| {
                tokio::spawn(connection::serve(
                    s,
                    (peer, local, Some(tls)),
                    b.clone(),
                    a.clone(),
                    config.clone(),
                ))
            })
        };
        let handshake_timeout = std::time::Duration::from_secs(config.amqp.handshake_timeout);
        let tls = match tls::listen(&config.tls, handshake_timeout, serve, stop.clone()).await {
            Ok(tls) => tls,
            Err(e) => {
                monitor.abort();
                sampler.abort();
                return Err(e);
            }
        };
        let local_addr = match (&listener, &tls) {
            (Some(l), _) => l.local_addr()?,
            (None, Some((addr, _))) => *addr,
            (None, None) => {
                monitor.abort();
                sampler.abort();
                return Err(std::io::Error::other("amqp.tcp_listener is off and TLS is not configured"));
            }
        };
        let (tls_addr, tls) = tls.unzip();
        let node = Arc::new(admin::NodeFacts::default());
        node.set_consumer_timeout(config.amqp.consumer_timeout);
        if listener.is_some() {
            node.add_listener("amqp", local_addr);
        }
        if let Some(a) = tls_addr {
            node.add_listener("amqp/ssl", a);
            if let Some(path) = &config.tls.cert_file {
                node.add_certificate("amqp/ssl", a, path.clone());
            }
        }
        let (admin_addr, socket) = start_admin(&config, &broker, &access, &node, &stop).await;
        let metrics = crate::metrics::MetricsState::new(broker.clone(), access.clone())
            .with_node(node.clone())
            .with_store(store.clone());
        let metrics_addr = start_metrics(&config, metrics, &stop).await;
        let (b, a) = (broker.clone(), access.clone());
        let task = tokio::spawn(async move {
            loop {
                tokio::select! {
                    accepted = accept(listener.as_ref()) => match accepted {
                        Ok((stream, peer)) => {
                            let local = stream.local_addr().unwrap_or(local_addr);
                            tokio::spawn(connection::serve(stream, (peer, local, None), b.clone(), a.clone(), config.clone()));
                        }
                        Err(e) => {
                            // Out of file descriptors and the like: back off, keep serving.
                            error!("accept failed: {e}");
                            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                        }
                    },
                    _ = stop.changed() => break,
                }
            }
            monitor.abort();
            sampler.abort();
        });
        Ok(Server {
            local_addr,
            tls_addr,
            tls,
            broker,
            access,
            admin_addr,
            metrics_addr,
            socket,
            node,
            shutdown,
            task,
            store,
        })
    }

    /// Stops accepting connections and closes the store once everything
    /// submitted to it is on disk.
    pub async fn stop(mut self) {
        let _ = self.shutdown.send(true);
        if let Some(path) = self.socket.take() {
            let _ = std::fs::remove_file(path);
        }
        let _ = (&mut self.task).await;
        // Every client gets connection.close 320 and a moment to answer.
        self.broker.begin_shutdown();
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(3);
        while self.broker.open_connections() > 0 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        let store = self.store.clone();
        let _ = tokio::task::spawn_blocking(move || store.shutdown()).await;
    }
}

/// The next plain AMQP connection; never, without the plain listener.
async fn accept(listener: Option<&TcpListener>) -> std::io::Result<(TcpStream, SocketAddr)> {
    match listener {
        Some(l) => l.accept().await,
        None => std::future::pending().await,
    }
}
