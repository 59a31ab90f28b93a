//! The open connections, as the broker knows them: who, from where, to
//! which vhost, and a way to tell each to close (a user or vhost deleted,
//! an operator's request). Also where per-vhost connection limits are kept
//! honest: a connection is counted in under the same lock that checks it.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, Ordering::Relaxed};
use std::sync::Arc;

use amq_protocol::types::FieldTable;
use parking_lot::RwLock;
use rustc_hash::FxHashMap;
use tokio::sync::mpsc::UnboundedSender;
use tokio::sync::oneshot;

use super::consumer::{ConnectionId, Outbound};
use super::stats::{Counter, IoCounters, MsgCounters, MsgTotals, Rate};

/// How a connection came: its TLS session, when it has one.
#[derive(Debug, Clone)]
pub struct TlsInfo {
    /// `tlsv1.3`, as RabbitMQ names them.
    pub protocol: String,
    pub cipher: String,
}

/// What was settled when the connection opened.
#[derive(Debug, Clone, Default)]
pub struct Opened {
    pub client_properties: FieldTable,
    pub auth_mechanism: String,
    pub frame_max: u32,
    pub channel_max: u16,
    pub heartbeat: u16,
    pub tls: Option<TlsInfo>,
}

/// What a connection counts as it runs (its task is the only writer).
#[derive(Debug, Default)]
pub struct ConnStats {
    pub io: IoCounters,
    pub msgs: MsgCounters,
    /// Channels open now.
    pub channels: AtomicU32,
    pub channels_opened: Counter,
    pub channels_closed: Counter,
    /// Times it stopped reading because a queue it published to was congested (credit flow).
    pub flow_pauses: Counter,
    /// Made by the sampler from `io`.
    pub recv_rate: Rate,
    pub send_rate: Rate,
}

impl ConnStats {
    pub fn channel_opened(&self) {
        self.channels_opened.add(1);
        self.channels.fetch_add(1, Relaxed);
    }

    pub fn channel_closed(&self) {
        self.channels_closed.add(1);
        self.channels.fetch_sub(1, Relaxed);
    }

    pub fn channel_count(&self) -> u32 {
        self.channels.load(Relaxed)
    }
}

/// One channel as its connection describes it when asked.
#[derive(Debug, Clone, Default)]
pub struct ChannelInfo {
    pub number: u16,
    /// `basic.qos` per consumer (global=false).
    pub prefetch: u32,
    /// `basic.qos global=true`.
    pub global_prefetch: u32,
    pub confirm: bool,
    pub transactional: bool,
    /// Waiting for its close-ok.
    pub closing: bool,
    pub consumers: u32,
    pub unacked: u64,
    pub unconfirmed: u64,
    pub uncommitted: u64,
    pub acks_uncommitted: u64,
}

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
    pub local: SocketAddr,
    pub opened: Opened,
    pub stats: ConnStats,
    tx: UnboundedSender<Outbound>,
}

impl ConnectionEntry {
    pub fn new(
        id: ConnectionId,
        user: &str,
        vhost: &str,
        peer: SocketAddr,
        local: SocketAddr,
        opened: Opened,
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
            local,
            opened,
            stats: ConnStats::default(),
            tx,
        }
    }

    /// Asks the connection for its channels; None if it is gone.
    pub fn inspect(&self) -> Option<oneshot::Receiver<Vec<ChannelInfo>>> {
        let (tx, rx) = oneshot::channel();
        self.tx.send(Outbound::Inspect(tx)).ok().map(|()| rx)
    }

    /// Asks the connection to close with 320 CONNECTION_FORCED and `reason`.
    pub fn close(&self, reason: String) {
        let _ = self.tx.send(Outbound::Close(reason));
    }
}

#[derive(Debug, Default)]
pub struct Connections {
    map: RwLock<Listed>,
}

#[derive(Debug, Default)]
struct Listed {
    open: FxHashMap<ConnectionId, Arc<ConnectionEntry>>,
    /// What closed connections counted, so that totals never go back.
    closed: Closed,
}

/// The counts of connections that are gone.
#[derive(Debug, Default, Clone, Copy)]
pub struct Closed {
    pub msgs: MsgTotals,
    pub flow_pauses: u64,
    pub connections: u64,
    pub channels_opened: u64,
    pub channels_closed: u64,
}

/// Everything connections counted, open and closed, read at once.
#[derive(Debug, Default, Clone, Copy)]
pub struct Totals {
    pub msgs: MsgTotals,
    pub flow_pauses: u64,
    pub connections_opened: u64,
    pub connections_closed: u64,
    pub channels_opened: u64,
    pub channels_closed: u64,
    pub connections: u64,
    pub channels: u64,
}

/// Keeps a connection listed until dropped.
#[derive(Debug)]
pub struct Registered {
    connections: Arc<Connections>,
    pub entry: Arc<ConnectionEntry>,
}

impl Drop for Registered {
    fn drop(&mut self) {
        let mut listed = self.connections.map.write();
        if listed.open.remove(&self.entry.id).is_some() {
            let s = &self.entry.stats;
            let closed = &mut listed.closed;
            closed.msgs += s.msgs.snapshot();
            closed.flow_pauses += s.flow_pauses.get();
            closed.connections += 1;
            closed.channels_opened += s.channels_opened.get();
            // Its channels that were open closed with it.
            closed.channels_closed += s.channels_opened.get();
        }
    }
}

impl Connections {
    /// Lists a connection, unless its vhost already has `limit` of them;
    /// then returns the limit.
    pub fn register(self: &Arc<Self>, entry: ConnectionEntry, limit: Option<u64>) -> Result<Registered, u64> {
        let mut listed = self.map.write();
        if let Some(limit) = limit {
            let n = listed.open.values().filter(|c| c.vhost == entry.vhost).count() as u64;
            if n >= limit {
                return Err(limit);
            }
        }
        let entry = Arc::new(entry);
        listed.open.insert(entry.id, entry.clone());
        Ok(Registered { connections: self.clone(), entry })
    }

    pub fn list(&self) -> Vec<Arc<ConnectionEntry>> {
        self.map.read().open.values().cloned().collect()
    }

    pub fn get(&self, id: ConnectionId) -> Option<Arc<ConnectionEntry>> {
        self.map.read().open.get(&id).cloned()
    }

    pub fn count(&self) -> usize {
        self.map.read().open.len()
    }

    pub fn count_in(&self, vhost: &str) -> usize {
        self.map.read().open.values().filter(|c| c.vhost == vhost).count()
    }

    /// What every connection counted, open and closed; under one lock, so
    /// the totals never go back.
    pub fn totals(&self) -> Totals {
        let listed = self.map.read();
        let c = listed.closed;
        let mut t = Totals {
            msgs: c.msgs,
            flow_pauses: c.flow_pauses,
            connections_opened: c.connections + listed.open.len() as u64,
            connections_closed: c.connections,
            channels_opened: c.channels_opened,
            channels_closed: c.channels_closed,
            connections: listed.open.len() as u64,
            channels: 0,
        };
        for e in listed.open.values() {
            let s = &e.stats;
            t.msgs += s.msgs.snapshot();
            t.flow_pauses += s.flow_pauses.get();
            t.channels_opened += s.channels_opened.get();
            t.channels_closed += s.channels_closed.get();
            t.channels += u64::from(s.channel_count());
        }
        t
    }

    /// Takes a sample of every connection's byte counts for their rates.
    pub fn sample_rates(&self, secs: f64) {
        for e in self.list() {
            e.stats.recv_rate.sample(e.stats.io.recv_oct.get(), secs);
            e.stats.send_rate.sample(e.stats.io.send_oct.get(), secs);
        }
    }

    /// Tells every connection `which` picks to close; returns how many.
    pub fn close_where(&self, which: impl Fn(&ConnectionEntry) -> bool, reason: &str) -> usize {
        let picked: Vec<_> = self.map.read().open.values().filter(|c| which(c)).cloned().collect();
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
        let entry =
            |id, vhost: &str| ConnectionEntry::new(id, "u", vhost, addr, addr, Opened::default(), tx.clone());
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
