//! Listeners and the server's lifetime. May use `connection`, `broker`, `config`.

mod memory;

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::{error, info};

use crate::broker::Broker;
use crate::config::Config;
use crate::connection;
use crate::store::rocks::RocksStore;
use crate::store::{Store, StoreHandle};

/// Opens the data directory and rebuilds the broker's durable state.
fn open_store(config: &Config) -> std::io::Result<Broker> {
    let started = std::time::Instant::now();
    let dir = &config.storage.data_dir;
    let store = RocksStore::open(dir).map_err(|e| std::io::Error::other(e.to_string()))?;
    let recovered = store.load().map_err(|e| std::io::Error::other(e.to_string()))?;
    let next_id = recovered
        .messages
        .keys()
        .copied()
        .chain(recovered.queues.iter().map(|(q, _)| q.id))
        .max()
        .unwrap_or(0)
        + 1;
    let (queues, messages) = (recovered.queues.len(), recovered.messages.len());
    let handle = StoreHandle::start(Arc::new(store), config.storage.fsync, next_id);
    let broker = Broker::with_store(Some(handle));
    broker.restore(recovered);
    info!(data_dir = %dir.display(), queues, messages, elapsed_ms = started.elapsed().as_millis() as u64, "recovered durable state");
    Ok(broker)
}

/// A running server.
pub struct Server {
    pub local_addr: SocketAddr,
    pub broker: Arc<Broker>,
    shutdown: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl Server {
    /// Binds the AMQP listener and starts accepting connections.
    pub async fn start(config: Config) -> std::io::Result<Server> {
        std::fs::create_dir_all(&config.storage.data_dir)?;
        let broker = Arc::new(open_store(&config)?);
        let listener = TcpListener::bind(config.amqp.listen).await?;
        let local_addr = listener.local_addr()?;
        info!(%local_addr, "AMQP listener started");
        broker.alarms.set_memory_limit(memory::limit(&config.memory));
        let (shutdown, mut stop) = watch::channel(false);
        let monitor = tokio::spawn(memory::monitor(broker.clone()));
        let config = Arc::new(config);
        let b = broker.clone();
        let task = tokio::spawn(async move {
            loop {
                tokio::select! {
                    accepted = listener.accept() => match accepted {
                        Ok((stream, peer)) => {
                            tokio::spawn(connection::serve(stream, peer, b.clone(), config.clone()));
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
        Ok(Server { local_addr, broker, shutdown, task })
    }

    /// Stops accepting connections and waits until everything submitted
    /// to the store is on disk.
    pub async fn stop(self) {
        let _ = self.shutdown.send(true);
        let _ = self.task.await;
        if let Some(store) = self.broker.vhost("/").and_then(|v| v.store().cloned()) {
            let _ = tokio::task::spawn_blocking(move || store.shutdown()).await;
        }
    }
}
