//! The open connections, as the broker knows them: who, from where, to
//! which vhost, and a way to tell each to close (a user or vhost deleted,
//! an operator's request). Also where per-vhost connection limits are kept
//! honest: a connection is counted in under the same lock that checks it.

use std::net::SocketAddr;
use std::sync::Arc;

use parking_lot::RwLock;
use rustc_hash::FxHashMap;
use tokio::sync::mpsc::UnboundedSender;

use super::consumer::{ConnectionId, Outbound};

/// One open connection.
#[derive(Debug)]
pub struct ConnectionEntry {
    pub id: ConnectionId,
    pub user: String,
    pub vhost: String,
    pub peer: SocketAddr,
    /// RabbitMQ's name for it: `"peer -> local"`.
    pub name: String,
    /// Milliseconds since the Unix epoch.
    pub connected_at: u64,
    tx: UnboundedSender<Outbound>,
}

impl ConnectionEntry {
    pub fn new(
        id: ConnectionId,
        user: &str,
        vhost: &str,
        peer: SocketAddr,
        local: SocketAddr,
        tx: UnboundedSender<Outbound>,
    ) -> ConnectionEntry {
        let connected_at = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        ConnectionEntry {
            id,
            user: user.to_owned(),
            vhost: vhost.to_owned(),
            peer,
            name: format!("{peer} -> {local}"),
            connected_at,
            tx,
        }
    }

    /// Asks the connection to close with 320 CONNECTION_FORCED and `reason`.
    pub fn close(&self, reason: String) {
        let _ = self.tx.send(Outbound::Close(reason));
    }
}

#[derive(Debug, Default)]
pub struct Connections {
    map: RwLock<FxHashMap<ConnectionId, Arc<ConnectionEntry>>>,
}

/// Keeps a connection listed until dropped.
#[derive(Debug)]
pub struct Registered {
    connections: Arc<Connections>,
    id: ConnectionId,
}

impl Drop for Registered {
    fn drop(&mut self) {
        self.connections.map.write().remove(&self.id);
    }
}

impl Connections {
    /// Lists a connection, unless its vhost already has `limit` of them;
    /// then returns the limit.
    pub fn register(self: &Arc<Self>, entry: ConnectionEntry, limit: Option<u64>) -> Result<Registered, u64> {
        let mut map = self.map.write();
        if let Some(limit) = limit {
            let n = map.values().filter(|c| c.vhost == entry.vhost).count() as u64;
            if n >= limit {
                return Err(limit);
            }
        }
        let id = entry.id;
        map.insert(id, Arc::new(entry));
        Ok(Registered { connections: self.clone(), id })
    }

    pub fn list(&self) -> Vec<Arc<ConnectionEntry>> {
        self.map.read().values().cloned().collect()
    }

    pub fn count_in(&self, vhost: &str) -> usize {
        self.map.read().values().filter(|c| c.vhost == vhost).count()
    }

    /// Tells every connection `which` picks to close; returns how many.
    pub fn close_where(&self, which: impl Fn(&ConnectionEntry) -> bool, reason: &str) -> usize {
        let picked: Vec<_> = self.map.read().values().filter(|c| which(c)).cloned().collect();
        for c in &picked {
            c.close(reason.to_owned());
        }
        picked.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_count_per_vhost_and_entries_leave_when_dropped() {
        let c = Arc::new(Connections::default());
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let addr: SocketAddr = "127.0.0.1:1".parse().unwrap();
        let entry = |id, vhost: &str| ConnectionEntry::new(id, "u", vhost, addr, addr, tx.clone());
        let a = c.register(entry(1, "v"), Some(1)).unwrap();
        assert_eq!(c.register(entry(2, "v"), Some(1)).unwrap_err(), 1);
        let _b = c.register(entry(3, "w"), Some(1)).unwrap();
        assert_eq!(c.count_in("v"), 1);
        assert_eq!(c.close_where(|e| e.vhost == "w", "vhost 'w' is deleted"), 1);
        assert!(matches!(rx.try_recv(), Ok(Outbound::Close(r)) if r == "vhost 'w' is deleted"));
        drop(a);
        assert!(c.register(entry(4, "v"), Some(1)).is_ok());
    }
}
