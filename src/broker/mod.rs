//! The broker: vhosts, exchanges, queues, bindings, consumers and routing.
//! It knows nothing of frames or sockets; connections call into it and get
//! deliveries back as values on their outbound queues.
//!
//! Lock order (take left before right, never the reverse; never across `.await`):
//! `Broker.lifecycle` → `Broker.vhosts` → `VHost.topology` → `VHost.exchanges`
//! / `VHost.queues` → `Exchange.routes` → `Queue.state`. `Broker.lifecycle`
//! (vhosts made and deleted) is taken before the access module's own locks
//! when a permission is written beside a vhost (`Broker::with_vhost`).
//! Publishing takes only read locks on the maps and routing tables, then
//! each target queue's own lock in turn.
//! Deduplication (`dedup.rs`): an exchange's `Deduper.window` is held
//! while a message published to it is routed and queued, so it comes before
//! the routing locks and `Queue.state` (dead-lettering never takes an
//! exchange's window); a queue's window is a leaf taken under its own
//! `Queue.state`, or under `VHost.topology` when the queue is deleted.
//! `Delayer.state` (`delayed.rs`) is a leaf: taken by publishers, the
//! delayer's task and the store's reader thread, after `VHost.topology` when
//! an exchange is deleted; only channel sends to the store happen under it.
//! `VHost.policies` and `Exchange.policy` are leaves: held for a lookup or
//! a swap, never while another lock is taken.
//! Totals (`overview.rs`, `vhost/stats.rs`): `Broker.retired` →
//! `Broker.vhosts` → `QueueChurn.retired` → `VHost.queues` → `Queue.state`;
//! a vhost's deletion holds `Broker.retired` (after `Broker.lifecycle`), a
//! queue's removal `QueueChurn.retired`, so totals are read whole.

pub mod alarm;
pub mod args;
mod cluster;
pub mod connections;
pub mod consumer;
pub mod deadletter;
pub mod dedup;
pub mod delayed;
mod durable;
pub mod exchange;
pub mod message;
pub mod names;
pub mod overview;
pub mod policy;
pub mod queue;
pub mod queue_args;
pub mod stats;
pub mod stream;
pub mod vhost;
mod vhost_policy;
mod vhosts;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::RwLock;
use tracing::warn;

use crate::store::recovery::Backlog;
use crate::store::{IndexEntry, Op, Recovered, StoreHandle};
use rustc_hash::FxHashMap;

pub use consumer::{ChannelCredit, ConnectionId, Consumer, ConsumerSpec, Delivery, Outbound};
pub use message::Message;
pub use queue::Queue;
pub use vhost::VHost;
pub use vhosts::VHostError;

#[derive(Debug)]
pub struct Broker {
    vhosts: RwLock<HashMap<String, Arc<VHost>>>,
    next_connection: AtomicU64,
    pub alarms: alarm::Alarms,
    /// True once the broker is shutting down: connections close themselves.
    shutting_down: tokio::sync::watch::Sender<bool>,
    /// Connections being served (handshake included).
    open_connections: std::sync::atomic::AtomicUsize,
    /// Connections past the handshake: who, where, and how to close them.
    pub connections: Arc<connections::Connections>,
    store: Option<StoreHandle>,
    /// Serialises creating and deleting vhosts (and what must not outlive one).
    lifecycle: parking_lot::Mutex<()>,
    /// Message rates, made by the sampler (`overview.rs`).
    pub rates: overview::GlobalRates,
    /// What deleted vhosts counted (`overview.rs`).
    retired: parking_lot::Mutex<overview::Retired>,
    /// As set through the admin API (`cluster.rs`).
    cluster_name: RwLock<Option<String>>,
    started: std::time::Instant,
    /// `[limits]` on each vhost's queues and exchanges, given to every vhost.
    topology_caps: vhost::TopologyCaps,
}

impl Default for Broker {
    fn default() -> Self {
        Self::new()
    }
}

impl Broker {
    /// A broker with the default vhost `/`, all in memory.
    pub fn new() -> Self {
        Self::with_store(None)
    }

    /// A broker keeping durable state in `store`.
    pub fn with_store(store: Option<StoreHandle>) -> Self {
        let mut vhosts = HashMap::new();
        let default = Arc::new(VHost::new("/", store.clone()));
        default.set_meta_unsaved(vhosts::default_meta());
        vhosts.insert("/".to_owned(), default);
        Broker {
            vhosts: RwLock::new(vhosts),
            next_connection: AtomicU64::new(1),
            alarms: alarm::Alarms::new(u64::MAX, 0),
            shutting_down: tokio::sync::watch::Sender::new(false),
            open_connections: std::sync::atomic::AtomicUsize::new(0),
            connections: Arc::default(),
            store,
            lifecycle: parking_lot::Mutex::new(()),
            rates: overview::GlobalRates::default(),
            retired: parking_lot::Mutex::default(),
            cluster_name: RwLock::new(None),
            started: std::time::Instant::now(),
            topology_caps: vhost::TopologyCaps::default(),
        }
    }

    /// Rebuilds durable state read from the store at start-up: the vhosts
    /// recorded (or `/` alone on a `fresh` data directory, which it
    /// records), then each one's policies, exchanges, queues and bindings.
    ///
    /// With `clean`, what belongs to no vhost (left by a deletion a crash cut
    /// short) is deleted; without it (a data directory seen for the first
    /// time by a Warren that keeps vhosts), it is only reported.
    pub fn restore(
        &self,
        recovered: Recovered,
        backlogs: &mut FxHashMap<u64, Backlog>,
        make_default: bool,
        clean: bool,
    ) {
        let Recovered { exchanges, queues, bindings, control, delayed, max_delayed_seq, dedup, .. } =
            recovered;
        // Every stream on record, opened or not: the files of one that
        // failed to open are kept for the next start.
        let stream_ids: std::collections::HashSet<u64> =
            queues.iter().filter(|q| queue_args::is_stream(&q.arguments)).map(|q| q.id).collect();
        delayed::seqs_after(max_delayed_seq);
        self.restore_vhosts(&control, make_default);
        self.restore_cluster_name(&control);
        if clean {
            self.drop_orphan_policies(&control);
        }
        // Policies first: restored queues and exchanges get theirs as they come back.
        let vhosts: Vec<_> = self.vhosts.read().values().cloned().collect();
        for v in vhosts {
            v.restore_policies(control.iter().map(|(space, _, value)| (space.as_str(), value.as_slice())));
        }
        let mut by_vhost: HashMap<String, (Vec<_>, Vec<_>, Vec<_>)> = HashMap::new();
        for e in exchanges {
            by_vhost.entry(e.vhost.clone()).or_default().0.push(e);
        }
        for q in queues {
            by_vhost.entry(q.vhost.clone()).or_default().1.push(q);
        }
        for b in bindings {
            by_vhost.entry(b.vhost.clone()).or_default().2.push(b);
        }
        for (name, (ex, qs, bs)) in by_vhost {
            match self.vhost(&name) {
                Some(vhost) => vhost.restore(ex, qs, bs, backlogs),
                None if !clean => {
                    warn!(vhost = %name, queues = qs.len(), "keeping the topology of an unknown vhost")
                }
                // Left by a vhost deletion cut short by a crash: finish it.
                None => {
                    warn!(vhost = %name, queues = qs.len(), "deleting what is left of a deleted vhost");
                    let Some(store) = &self.store else { continue };
                    for b in bs {
                        store.submit(Op::DeleteBinding(Box::new(b)));
                    }
                    for e in ex {
                        store.submit(Op::DeleteExchange { vhost: e.vhost, name: e.name });
                    }
                    for q in qs {
                        let last_lane = queue::QueueConfig::from_args(&q.arguments).max_priority.unwrap_or(0);
                        // Its head's messages are released, then its paged-out
                        // places (a shared message's reference among them).
                        let backlog = backlogs.remove(&q.id).unwrap_or_default();
                        for (place, _) in backlog.head.iter().filter(|(p, _)| p.apart()) {
                            store.release(place.message, place.has(IndexEntry::SHARED));
                        }
                        for (lane, p) in backlog.paged.iter().enumerate() {
                            if p.count > 0 {
                                store.drop_range(q.id, lane as u8, p.from_seq, backlog.next_seq);
                            }
                        }
                        store.submit(Op::DeleteQueue { vhost: q.vhost, name: q.name, id: q.id, last_lane });
                    }
                }
            }
        }
        self.restore_streams(&control, &stream_ids, clean);
        // Windows before delayed messages: an overdue one may fire at once
        // into a deduplicating queue.
        self.restore_dedup(dedup);
        self.restore_delayed(delayed);
    }

    /// Hands each deduplicating queue and exchange the ids it remembered;
    /// the windows of owners that are gone are dropped.
    fn restore_dedup(&self, backlogs: Vec<crate::store::DedupBacklog>) {
        let Some(store) = &self.store else { return };
        for b in backlogs {
            let v = self.vhost(&b.vhost);
            let owner = match b.queue {
                true => v.and_then(|v| v.queue(&b.name)).and_then(|q| q.dedup.get().cloned()),
                false => v.and_then(|v| v.exchange(&b.name)).and_then(|x| x.dedup().cloned()),
            };
            match owner {
                Some(d) => d.recovered(&b.entries),
                None => store.submit(Op::DropDedup(crate::store::DedupScope {
                    vhost: b.vhost.into(),
                    name: b.name.into(),
                    queue: b.queue,
                })),
            }
        }
    }

    /// Hands each delayed exchange what waits for it on disk; what waits
    /// for an exchange that is gone (transient, or its deletion cut short)
    /// is dropped.
    fn restore_delayed(&self, backlogs: Vec<crate::store::DelayedBacklog>) {
        let Some(store) = &self.store else { return };
        for b in backlogs {
            let exchange = self.vhost(&b.vhost).and_then(|v| v.exchange(&b.exchange));
            match exchange.as_ref().and_then(|x| x.delayer().filter(|_| x.durable)) {
                Some(d) => d.recovered(b.count),
                None => store.submit(Op::DropDelayed { vhost: b.vhost.into(), exchange: b.exchange.into() }),
            }
        }
    }

    /// True once the store failed a write (it takes no more until a restart).
    pub fn store_failed(&self) -> bool {
        self.store.as_ref().is_some_and(StoreHandle::failed)
    }

    pub fn vhost(&self, name: &str) -> Option<Arc<VHost>> {
        self.vhosts.read().get(name).cloned()
    }

    /// Followed by every connection: true once the broker shuts down.
    pub fn shutdown_signal(&self) -> tokio::sync::watch::Receiver<bool> {
        self.shutting_down.subscribe()
    }

    pub fn begin_shutdown(&self) {
        self.shutting_down.send_replace(true);
    }

    /// Counts a connection in until the returned guard is dropped.
    pub fn connection_opened(self: &Arc<Self>) -> ConnectionGuard {
        self.open_connections.fetch_add(1, Ordering::Relaxed);
        ConnectionGuard(self.clone())
    }

    pub fn open_connections(&self) -> usize {
        self.open_connections.load(Ordering::Relaxed)
    }

    pub fn next_connection_id(&self) -> ConnectionId {
        self.next_connection.fetch_add(1, Ordering::Relaxed)
    }
}

/// Keeps a connection counted in `Broker::open_connections`.
#[derive(Debug)]
pub struct ConnectionGuard(Arc<Broker>);

impl Drop for ConnectionGuard {
    fn drop(&mut self) {
        self.0.open_connections.fetch_sub(1, Ordering::Relaxed);
    }
}
