//! Facts about this node that the API reports: its name, the cluster's
//! name, its listeners, and readings of the process (file descriptors).
//! The server fills in the listeners as it binds them. Readings of the
//! process come from Linux's /proc (elsewhere a reading is None); the
//! Prometheus collector reads them here too.

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
        let c =
            CertFile { protocol: protocol.to_owned(), ip: addr.ip().to_string(), port: addr.port(), path };
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

/// The cluster's name: as set through the API, else the node's name
/// (RabbitMQ's default).
pub fn cluster_name(broker: &crate::broker::Broker) -> String {
    broker.cluster_name().unwrap_or_else(|| node_name().to_owned())
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
pub fn open_fds() -> Option<u64> {
    // Counting entries allocates nothing per entry beyond the iterator's
    // buffer; the directory handle itself is one of them, so not counted.
    let n = std::fs::read_dir("/proc/self/fd").ok()?.count() as u64;
    Some(n.saturating_sub(1))
}

/// The soft limit on open file descriptors (`ulimit -n`).
pub fn max_fds() -> Option<u64> {
    let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit only writes the struct it is given.
    let rc = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) };
    (rc == 0).then_some(lim.rlim_cur)
}

/// This process's resident memory in bytes, from /proc/self/statm.
pub fn resident_memory() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = text.split_whitespace().nth(1)?.parse().ok()?;
    // SAFETY: sysconf has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    Some(pages * u64::try_from(page).ok().filter(|p| *p > 0).unwrap_or(4096))
}

/// Processors available to the process.
pub fn processors() -> u64 {
    std::thread::available_parallelism().map_or(1, |n| n.get() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readings_of_this_process_are_plausible() {
        if cfg!(target_os = "linux") {
            let (open, max) = (open_fds().unwrap(), max_fds().unwrap());
            assert!(open >= 3 && open <= max, "{open} of {max}");
            assert!(resident_memory().unwrap() > 1 << 20);
        }
    }
}
