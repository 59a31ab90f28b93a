//! Listeners and the server's lifetime. May use `connection`, `broker`, `config`.

mod monitor;

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::{error, info};

use crate::access::Users;
use crate::broker::queue::QueueConfig;
use crate::broker::Broker;
use crate::config::Config;
use crate::connection;
use crate::store::recovery;
use crate::store::rocks::RocksStore;
use crate::store::writer::HeadLimit;
use crate::store::{Store, StoreHandle};

/// Rebuilds the broker's durable state from `store`: topology, and each
/// queue's head of messages (the rest stays paged out on disk).
fn recover(config: &Config, store: Arc<dyn Store>) -> std::io::Result<(Broker, StoreHandle)> {
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
    // Before anything reads pages back.
    for op in fixes {
        handle.submit(op);
    }
    let broker = Broker::with_store(Some(handle.clone()));
    broker.restore(recovered, &mut b.queues);
    info!(data_dir = %dir.display(), queues, messages, elapsed_ms = started.elapsed().as_millis() as u64, "recovered durable state");
    Ok((broker, handle))
}

/// A running server.
pub struct Server {
    pub local_addr: SocketAddr,
    pub broker: Arc<Broker>,
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

impl Server {
    /// Opens the data directory (RocksDB), binds the AMQP listener and
    /// starts accepting connections.
    pub async fn start(config: Config) -> std::io::Result<Server> {
        std::fs::create_dir_all(&config.storage.data_dir)?;
        let store =
            RocksStore::open(&config.storage.data_dir).map_err(|e| std::io::Error::other(e.to_string()))?;
        Self::start_with_store(config, Arc::new(store)).await
    }

    /// Starts on a store of the embedder's choice (tests that need no disk
    /// use `store::memory::MemoryStore`).
    pub async fn start_with_store(config: Config, store: Arc<dyn Store>) -> std::io::Result<Server> {
        let (broker, store) = recover(&config, store)?;
        let broker = Arc::new(broker);
        let listener = TcpListener::bind(config.amqp.listen).await?;
        let local_addr = listener.local_addr()?;
        info!(%local_addr, "AMQP listener started");
        broker.alarms.set_memory_limit(monitor::memory_limit(&config.memory));
        let (shutdown, mut stop) = watch::channel(false);
        broker.alarms.set_disk_free_limit(config.storage.disk_free_limit);
        let monitor = tokio::spawn(monitor::monitor(
            broker.clone(),
            config.storage.data_dir.clone(),
            config.memory.paging_ratio,
        ));
        let users = Arc::new(Users::from_config(&config.users).map_err(std::io::Error::other)?);
        let config = Arc::new(config);
        let b = broker.clone();
        let task = tokio::spawn(async move {
            loop {
                tokio::select! {
                    accepted = listener.accept() => match accepted {
                        Ok((stream, peer)) => {
                            tokio::spawn(connection::serve(stream, peer, b.clone(), users.clone(), config.clone()));
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
        });
        Ok(Server { local_addr, broker, shutdown, task, store })
    }

    /// Stops accepting connections and closes the store once everything
    /// submitted to it is on disk.
    pub async fn stop(mut self) {
        let _ = self.shutdown.send(true);
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
