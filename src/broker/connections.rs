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
    /// Open connections by vhost and by user, for their limits.
    per_vhost: FxHashMap<String, u64>,
    per_user: FxHashMap<String, u64>,
    /// What closed connections counted, so that totals never go back.
    closed: Closed,
}

/// The limits a new connection is checked against (None: no limit).
#[derive(Debug, Default, Clone, Copy)]
pub struct ConnectionCaps {
    pub node: Option<u64>,
    pub vhost: Option<u64>,
    pub user: Option<u64>,
}

/// The limit that refused a connection, and its value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CapReached {
    Node(u64),
    Vhost(u64),
    User(u64),
}

/// One down from a count kept by name; the name goes at zero.
fn count_down(counts: &mut FxHashMap<String, u64>, name: &str) {
    if let Some(n) = counts.get_mut(name) {
        *n -= 1;
        if *n == 0 {
            counts.remove(name);
        }
    }
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

impl Registered {
    /// Channels open on all connections of this one's user.
    pub fn user_channels(&self) -> u64 {
        self.connections.user_channels(&self.entry.user)
    }
}

impl Drop for Registered {
    fn drop(&mut self) {
        let mut listed = self.connections.map.write();
        if listed.open.remove(&self.entry.id).is_some() {
            count_down(&mut listed.per_vhost, &self.entry.vhost);
            count_down(&mut listed.per_user, &self.entry.user);
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
    /// Lists a connection, unless the node, its vhost or its user already
    /// has as many as `caps` allow (checked in RabbitMQ's order); checked
    /// and counted under one lock, so racing connections cannot overshoot.
    pub fn register(
        self: &Arc<Self>,
        entry: ConnectionEntry,
        caps: ConnectionCaps,
    ) -> Result<Registered, CapReached> {
        let mut listed = self.map.write();
        let held = |counts: &FxHashMap<String, u64>, name: &str| counts.get(name).copied().unwrap_or(0);
        if let Some(n) = caps.node.filter(|&n| listed.open.len() as u64 >= n) {
            return Err(CapReached::Node(n));
        }
        if let Some(n) = caps.vhost.filter(|&n| held(&listed.per_vhost, &entry.vhost) >= n) {
            return Err(CapReached::Vhost(n));
        }
        if let Some(n) = caps.user.filter(|&n| held(&listed.per_user, &entry.user) >= n) {
            return Err(CapReached::User(n));
        }
        *listed.per_vhost.entry(entry.vhost.clone()).or_default() += 1;
        *listed.per_user.entry(entry.user.clone()).or_default() += 1;
        let entry = Arc::new(entry);
        listed.open.insert(entry.id, entry.clone());
        Ok(Registered { connections: self.clone(), entry })
    }

    /// Channels open on all of `user`'s connections (for its `max-channels`).
    pub fn user_channels(&self, user: &str) -> u64 {
        let listed = self.map.read();
        listed.open.values().filter(|c| c.user == user).map(|c| u64::from(c.stats.channel_count())).sum()
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
        self.map.read().per_vhost.get(vhost).map_or(0, |&n| n as usize)
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
    fn limits_count_per_node_vhost_and_user_and_entries_leave_when_dropped() {
        let c = Arc::new(Connections::default());
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let addr: SocketAddr = "127.0.0.1:1".parse().unwrap();
        let entry = |id, user: &str, vhost: &str| {
            ConnectionEntry::new(id, user, vhost, addr, addr, Opened::default(), tx.clone())
        };
        let vhost = ConnectionCaps { vhost: Some(1), ..Default::default() };
        let a = c.register(entry(1, "u", "v"), vhost).unwrap();
        assert_eq!(c.register(entry(2, "u", "v"), vhost).unwrap_err(), CapReached::Vhost(1));
        let _b = c.register(entry(3, "u", "w"), vhost).unwrap();
        assert_eq!(c.count_in("v"), 1);
        assert_eq!(c.close_where(|e| e.vhost == "w", "vhost 'w' is deleted"), 1);
        assert!(matches!(rx.try_recv(), Ok(Outbound::Close(r)) if r == "vhost 'w' is deleted"));
        drop(a);
        assert_eq!(c.count_in("v"), 0);
        let _d = c.register(entry(4, "u", "v"), vhost).unwrap();
        // u holds 2 now; the node 2 as well.
        let user = ConnectionCaps { user: Some(2), ..Default::default() };
        assert_eq!(c.register(entry(5, "u", "x"), user).unwrap_err(), CapReached::User(2));
        let node = ConnectionCaps { node: Some(2), ..user };
        assert_eq!(c.register(entry(6, "u", "x"), node).unwrap_err(), CapReached::Node(2));
        let other = c.register(entry(7, "o", "x"), user).unwrap();
        other.entry.stats.channel_opened();
        other.entry.stats.channel_opened();
        assert_eq!((c.user_channels("o"), c.user_channels("u")), (2, 0));
        drop(other);
        assert_eq!(c.user_channels("o"), 0);
    }
}
