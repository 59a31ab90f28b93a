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
        let listener = TcpListener::bind(config.amqp.listen).await?;
        let local_addr = listener.local_addr()?;
        info!(%local_addr, "AMQP listener started");
        let broker = Arc::new(Broker::new());
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

    /// Stops accepting connections.
    pub async fn stop(self) {
        let _ = self.shutdown.send(true);
        let _ = self.task.await;
    }
}
