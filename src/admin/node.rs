//! Facts about this node that the API reports: its name, the cluster's
//! name, its listeners, and readings of the process (file descriptors).
//! The server fills in the listeners as it binds them.

use std::sync::OnceLock;

use parking_lot::RwLock;
use serde_json::{json, Value};

/// One listening socket, as RabbitMQ's overview lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listener {
    /// `amqp`, `amqp/ssl`, `http`, `http/prometheus`, …
    pub protocol: String,
    pub ip: String,
    pub port: u16,
}

/// A certificate file a listener serves (checked for expiry).
#[derive(Debug, Clone)]
pub struct CertFile {
    pub protocol: String,
    pub ip: String,
    pub port: u16,
    pub path: std::path::PathBuf,
}

/// What the server tells the API about itself.
#[derive(Debug, Default)]
pub struct NodeFacts {
    listeners: RwLock<Vec<Listener>>,
    cluster_name: RwLock<Option<String>>,
    certificates: RwLock<Vec<CertFile>>,
    /// The effective configuration with each value's source (secrets redacted).
    environment: RwLock<Value>,
    /// `amqp.consumer_timeout`, in ms (0: none).
    consumer_timeout: std::sync::atomic::AtomicU64,
}

impl NodeFacts {
    pub fn add_listener(&self, protocol: &str, addr: std::net::SocketAddr) {
        let l = Listener { protocol: protocol.to_owned(), ip: addr.ip().to_string(), port: addr.port() };
        let mut all = self.listeners.write();
        if !all.contains(&l) {
            all.push(l);
        }
    }

    /// Makes the certificates in `path` (served on `addr`) checked for expiry.
    pub fn add_certificate(&self, protocol: &str, addr: std::net::SocketAddr, path: std::path::PathBuf) {
        let c = CertFile { protocol: protocol.to_owned(), ip: addr.ip().to_string(), port: addr.port(), path };
        self.certificates.write().push(c);
    }

    pub fn certificates(&self) -> Vec<CertFile> {
        self.certificates.read().clone()
    }

    pub fn set_environment(&self, settings: Value) {
        *self.environment.write() = settings;
    }

    pub fn environment(&self) -> Value {
        self.environment.read().clone()
    }

    pub fn set_consumer_timeout(&self, ms: u64) {
        self.consumer_timeout.store(ms, std::sync::atomic::Ordering::Relaxed);
    }

    pub fn consumer_timeout(&self) -> u64 {
        self.consumer_timeout.load(std::sync::atomic::Ordering::Relaxed)
    }

    pub fn listeners(&self) -> Vec<Listener> {
        self.listeners.read().clone()
    }

    /// The cluster's name: as set, else the node's name (RabbitMQ's default).
    pub fn cluster_name(&self) -> String {
        self.cluster_name.read().clone().unwrap_or_else(|| node_name().to_owned())
    }

    pub fn set_cluster_name(&self, name: String) {
        *self.cluster_name.write() = Some(name);
    }

    /// The listeners in the overview's shape.
    pub fn listeners_json(&self) -> Value {
        let node = node_name();
        Value::Array(
            self.listeners()
                .iter()
                .map(|l| json!({"node": node, "protocol": l.protocol, "ip_address": l.ip, "port": l.port, "socket_opts": []}))
                .collect(),
        )
    }
}

/// This node's name: `rabbit@<short host name>`, the name RabbitMQ's tools
/// (Nagios checks, `rabbitmqadmin`) address a node by; `WARREN_NODE_NAME`
/// sets another.
pub fn node_name() -> &'static str {
    static NAME: OnceLock<String> = OnceLock::new();
    NAME.get_or_init(|| {
        if let Some(name) = std::env::var("WARREN_NODE_NAME").ok().filter(|n| !n.trim().is_empty()) {
            return name.trim().to_owned();
        }
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .or_else(|_| std::fs::read_to_string("/etc/hostname"))
            .unwrap_or_default();
        let short = host.trim().split('.').next().unwrap_or("").to_owned();
        format!("rabbit@{}", if short.is_empty() { "localhost" } else { &short })
    })
}

/// File descriptors this process has open.
pub fn open_fds() -> u64 {
    std::fs::read_dir("/proc/self/fd").map_or(0, |d| d.count() as u64)
}

/// How many file descriptors this process may open.
pub fn max_fds() -> u64 {
    let mut l = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit only writes the struct it is given.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut l) } == 0 {
        l.rlim_cur
    } else {
        0
    }
}

/// Processors available to the process.
pub fn processors() -> u64 {
    std::thread::available_parallelism().map_or(1, |n| n.get() as u64)
}
