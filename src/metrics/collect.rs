//! Reads the broker's live state when scraped and writes it as the three
//! endpoints of RabbitMQ's prometheus plugin: aggregated (no per-object
//! labels), per-object (`{vhost,queue}`, `{channel}`) and detailed (the
//! families asked for, prefixed `rabbitmq_detailed_`). Each queue is read
//! once per scrape; the text goes straight into one reserved `String`.
//! May use `broker`, `access`, `store` and the admin API's node facts.

use std::sync::Arc;

use base64::Engine as _;
use sha2::{Digest, Sha256};

use super::families::{self as fam, ConnFigure, Detailed, QueueFigure, QUEUE_FIGURES};
use super::render::{Buckets, Family, Text};
use super::MetricsState;
use crate::admin::node;
use crate::broker::connections::ConnectionEntry;
use crate::broker::stats::QueueTotals;
use crate::broker::Queue;

/// Which endpoint a text is for (`rabbitmq_endpoint` of `identity_info`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    Aggregated,
    PerObject,
    Detailed,
}

impl Endpoint {
    fn as_str(self) -> &'static str {
        match self {
            Endpoint::Aggregated => "aggregated",
            Endpoint::PerObject => "per-object",
            Endpoint::Detailed => "detailed",
        }
    }
}

const PREFIX: &str = "rabbitmq_";
const DETAILED_PREFIX: &str = "rabbitmq_detailed_";
const WARREN_PREFIX: &str = "warren_";
const AMQP: (&str, &str) = ("protocol", "amqp091");
const CLASSIC: (&str, &str) = ("queue_type", "rabbit_classic_queue");
/// Warren's dead letters are not confirmed by their target queues.
const AT_MOST_ONCE: (&str, &str) = ("dead_letter_strategy", "at_most_once");

/// The RabbitMQ version Warren answers as (its management API's too).
const RABBITMQ_VERSION: &str = "3.10.8";

/// One queue's figures, read once.
struct QueueRow {
    queue: Arc<Queue>,
    figures: [u64; QUEUE_FIGURES],
}

/// What one pass over the queues gives.
#[derive(Default)]
struct QueueScan {
    /// Every queue's figures, when per-object output wants them.
    rows: Vec<QueueRow>,
    sums: [u64; QUEUE_FIGURES],
    totals: QueueTotals,
    queues: u64,
}

fn figures(q: &Queue) -> ([u64; QUEUE_FIGURES], QueueTotals) {
    let i = q.info();
    let mut f = [0; QUEUE_FIGURES];
    let mut set = |k: QueueFigure, v: u64| f[k as usize] = v;
    set(QueueFigure::Ready, i.ready);
    set(QueueFigure::Unacked, i.unacked);
    set(QueueFigure::Messages, i.messages());
    set(QueueFigure::Consumers, i.consumers);
    // Unacknowledged messages are always held in memory.
    set(QueueFigure::Ram, i.ready_ram + i.unacked);
    set(QueueFigure::RamBytes, i.ready_ram_bytes + i.unacked_bytes);
    set(QueueFigure::ReadyRam, i.ready_ram);
    set(QueueFigure::UnackedRam, i.unacked);
    set(QueueFigure::Bytes, i.bytes());
    set(QueueFigure::ReadyBytes, i.ready_bytes);
    set(QueueFigure::UnackedBytes, i.unacked_bytes);
    set(QueueFigure::PagedOut, i.paged_out);
    set(QueueFigure::PagedOutBytes, i.paged_out_bytes);
    set(QueueFigure::Published, i.totals.published);
    (f, i.totals)
}

/// Reads every queue (of `vhosts` only, if any are named) once.
fn scan_queues(state: &MetricsState, keep_rows: bool, vhosts: &[String]) -> QueueScan {
    let mut scan = QueueScan::default();
    for v in state.broker.vhosts() {
        if !vhosts.is_empty() && !vhosts.contains(&v.name) {
            continue;
        }
        let queues = v.queues();
        if keep_rows {
            scan.rows.reserve(queues.len());
        }
        for q in queues {
            let (f, totals) = figures(&q);
            for (s, x) in scan.sums.iter_mut().zip(f) {
                *s = s.wrapping_add(x);
            }
            scan.totals += totals;
            scan.queues += 1;
            if keep_rows {
                scan.rows.push(QueueRow { queue: q, figures: f });
            }
        }
    }
    scan
}

fn conn_figure(c: &ConnectionEntry, k: ConnFigure) -> u64 {
    let io = &c.stats.io;
    match k {
        ConnFigure::RecvOct => io.recv_oct.get(),
        ConnFigure::SendOct => io.send_oct.get(),
        ConnFigure::RecvCnt => io.recv_cnt.get(),
        ConnFigure::SendCnt => io.send_cnt.get(),
        ConnFigure::Channels => u64::from(c.stats.channel_count()),
    }
}

/// `/metrics`: everything, queues and connections summed.
pub fn aggregated(state: &MetricsState) -> String {
    let scan = scan_queues(state, false, &[]);
    let conns = state.broker.connections.list();
    let mut out = String::with_capacity(32 * 1024);
    let mut t = Text::new(&mut out, PREFIX);
    common(state, &mut t, &scan, &conns, Endpoint::Aggregated);
    let queue_families = fam::QUEUE_COARSE.iter().chain(fam::QUEUE_METRICS).chain([&fam::Q_PUBLISHED]);
    for (f, k) in queue_families {
        t.single(f, &[], scan.sums[*k as usize]);
    }
    for (f, k) in fam::CONNECTION_COARSE.iter().chain(fam::CONNECTION_METRICS) {
        let sum = conns.iter().fold(0u64, |s, c| s.wrapping_add(conn_figure(c, *k)));
        t.single(f, &[], sum);
    }
    warren(state, &mut t);
    out
}

/// `/metrics/per-object`: queues labelled `{vhost,queue}`, connections
/// `{channel}` (RabbitMQ's label, holding the connection's name).
pub fn per_object(state: &MetricsState) -> String {
    let scan = scan_queues(state, true, &[]);
    let conns = state.broker.connections.list();
    let queue_families: Vec<_> =
        fam::QUEUE_COARSE.iter().chain(fam::QUEUE_METRICS).chain([&fam::Q_PUBLISHED]).collect();
    let conn_families: Vec<_> = fam::CONNECTION_COARSE.iter().chain(fam::CONNECTION_METRICS).collect();
    let mut out = String::with_capacity(
        32 * 1024 + scan.rows.len() * queue_families.len() * 100 + conns.len() * conn_families.len() * 110,
    );
    let mut t = Text::new(&mut out, PREFIX);
    common(state, &mut t, &scan, &conns, Endpoint::PerObject);
    queue_samples(&mut t, &scan.rows, &queue_families);
    conn_samples(&mut t, &conns, &conn_families);
    warren(state, &mut t);
    out
}

/// `/metrics/detailed`: only the families named (RabbitMQ's names; others
/// give nothing), queues of `vhosts` only if any are named, then the build
/// and identity info.
pub fn detailed(state: &MetricsState, families: &[String], vhosts: &[String]) -> String {
    let (mut queue_families, mut conn_families) = (Vec::new(), Vec::new());
    for name in families {
        match fam::detailed(name) {
            Some(Detailed::Queues(fs)) => queue_families.extend(fs),
            Some(Detailed::Connections(fs)) => conn_families.extend(fs),
            None => {}
        }
    }
    // A family asked for twice (queue_consumers is in two) is written once.
    dedup_by_name(&mut queue_families);
    dedup_by_name(&mut conn_families);
    let scan = match queue_families.is_empty() {
        true => QueueScan::default(),
        false => scan_queues(state, true, vhosts),
    };
    let conns = match conn_families.is_empty() {
        true => Vec::new(),
        false => state.broker.connections.list(),
    };
    let mut out = String::with_capacity(
        4096 + scan.rows.len() * queue_families.len() * 100 + conns.len() * conn_families.len() * 110,
    );
    let mut t = Text::new(&mut out, DETAILED_PREFIX);
    queue_samples(&mut t, &scan.rows, &queue_families);
    conn_samples(&mut t, &conns, &conn_families);
    identity(state, &mut t.with_prefix(PREFIX), Endpoint::Detailed);
    out
}

fn dedup_by_name<K>(families: &mut Vec<&(Family, K)>) {
    let mut i = 0;
    while i < families.len() {
        if families[..i].iter().any(|(f, _)| f.name == families[i].0.name) {
            families.remove(i);
        } else {
            i += 1;
        }
    }
}

fn queue_samples(t: &mut Text<'_>, rows: &[QueueRow], families: &[&(Family, QueueFigure)]) {
    for (f, k) in families {
        t.header(f);
        for r in rows {
            t.sample(f, &[("vhost", &r.queue.vhost), ("queue", &r.queue.name)], r.figures[*k as usize]);
        }
    }
}

fn conn_samples(t: &mut Text<'_>, conns: &[Arc<ConnectionEntry>], families: &[&(Family, ConnFigure)]) {
    for (f, k) in families {
        t.header(f);
        for c in conns {
            t.sample(f, &[("channel", &c.name)], conn_figure(c, *k));
        }
    }
}

/// What both `/metrics` and `/metrics/per-object` have: node, churn,
/// object counts, authentication, identity and the global counters.
fn common(
    state: &MetricsState,
    t: &mut Text<'_>,
    scan: &QueueScan,
    conns: &[Arc<ConnectionEntry>],
    endpoint: Endpoint,
) {
    let b = &state.broker;
    let alarms = &b.alarms;
    let (open_fds, max_fds) = (node::open_fds().unwrap_or(0), node::max_fds().unwrap_or(0));
    t.single(&fam::ALARMS_FD, &[], max_fds > 0 && open_fds >= max_fds);
    t.single(&fam::ALARMS_DISK, &[], alarms.disk_alarm());
    t.single(&fam::ALARMS_MEMORY, &[], alarms.memory_alarm());
    let totals = b.connections.totals();
    let (declared, created, deleted) = b.queue_churn();
    t.single(&fam::CONNECTIONS_OPENED, &[], totals.connections_opened);
    t.single(&fam::CONNECTIONS_CLOSED, &[], totals.connections_closed);
    t.single(&fam::CHANNELS_OPENED, &[], totals.channels_opened);
    t.single(&fam::CHANNELS_CLOSED, &[], totals.channels_closed);
    t.single(&fam::QUEUES_DECLARED, &[], declared);
    t.single(&fam::QUEUES_CREATED, &[], created);
    t.single(&fam::QUEUES_DELETED, &[], deleted);
    t.single(&fam::OPEN_FDS, &[], open_fds);
    t.single(&fam::OPEN_TCP, &[], b.open_connections() as u64);
    let resident = match alarms.memory_used() {
        0 => node::resident_memory().unwrap_or(0),
        used => used,
    };
    t.single(&fam::RESIDENT, &[], resident);
    t.single(&fam::DISK_FREE, &[], alarms.disk_free());
    t.single(&fam::MAX_FDS, &[], max_fds);
    // Warren's only bound on sockets is the descriptor limit.
    t.single(&fam::MAX_TCP, &[], max_fds);
    t.single(&fam::MEMORY_LIMIT, &[], alarms.memory_limit());
    t.single(&fam::DISK_LIMIT, &[], alarms.disk_free_limit());
    t.single(&fam::UPTIME, &[], b.uptime_ms() as f64 / 1000.0);
    let (logins_ok, logins_failed) = state.access.amqp_logins();
    t.single(&fam::AUTH_TOTAL, &[AMQP], logins_ok + logins_failed);
    t.single(&fam::AUTH_SUCCEEDED, &[AMQP], logins_ok);
    t.single(&fam::AUTH_FAILED, &[AMQP], logins_failed);
    t.single(&fam::CONNECTIONS, &[], totals.connections);
    t.single(&fam::CHANNELS, &[], totals.channels);
    let consumers = scan.sums[QueueFigure::Consumers as usize];
    t.single(&fam::CONSUMERS, &[], consumers);
    t.single(&fam::QUEUES, &[], scan.queues);
    identity(state, t, endpoint);
    let m = &totals.msgs;
    // Deleted queues' dead letters too: counters never go back.
    let q = &b.queue_totals();
    let by_queue_type = [AMQP, CLASSIC];
    let dead = [CLASSIC, AT_MOST_ONCE];
    t.single(&fam::G_CONSUMERS, &[AMQP], consumers);
    t.single(&fam::G_ACKED, &by_queue_type, m.acked);
    t.single(&fam::G_CONFIRMED, &[AMQP], m.confirmed);
    t.single(&fam::G_DL_DELIVERY_LIMIT, &dead, q.delivery_limit);
    t.single(&fam::G_DL_EXPIRED, &dead, q.expired);
    t.single(&fam::G_DL_MAXLEN, &dead, q.maxlen);
    t.single(&fam::G_DL_REJECTED, &dead, q.rejected);
    t.single(&fam::G_DELIVERED_CONSUME_AUTO, &by_queue_type, m.deliver_auto);
    t.single(&fam::G_DELIVERED_CONSUME_MANUAL, &by_queue_type, m.deliver_manual);
    t.single(&fam::G_DELIVERED_GET_AUTO, &by_queue_type, m.get_auto);
    t.single(&fam::G_DELIVERED_GET_MANUAL, &by_queue_type, m.get_manual);
    t.single(&fam::G_DELIVERED, &by_queue_type, m.deliver_get());
    t.single(&fam::G_GET_EMPTY, &by_queue_type, m.get_empty);
    t.single(&fam::G_RECEIVED_CONFIRM, &[AMQP], m.received_confirm);
    t.single(&fam::G_RECEIVED, &[AMQP], m.received);
    t.single(&fam::G_REDELIVERED, &by_queue_type, m.redelivered);
    t.single(&fam::G_ROUTED, &[AMQP], m.routed);
    t.single(&fam::G_UNROUTABLE_DROPPED, &[AMQP], m.unroutable_dropped);
    t.single(&fam::G_UNROUTABLE_RETURNED, &[AMQP], m.unroutable_returned);
    // Publishers: connections that have published (RabbitMQ counts channels).
    let publishers = conns.iter().filter(|c| c.stats.msgs.received.get() > 0).count() as u64;
    t.single(&fam::G_PUBLISHERS, &[AMQP], publishers);
}

/// `build_info` and `identity_info`: without the latter every panel of
/// RabbitMQ's Grafana dashboards is empty.
fn identity(state: &MetricsState, t: &mut Text<'_>, endpoint: Endpoint) {
    let version = env!("CARGO_PKG_VERSION");
    t.single(
        &fam::BUILD_INFO,
        &[
            ("rabbitmq_version", RABBITMQ_VERSION),
            ("prometheus_plugin_version", RABBITMQ_VERSION),
            ("prometheus_client_version", "none"),
            ("erlang_version", "none"),
            ("product_name", "Warren"),
            ("product_version", version),
        ],
        1u64,
    );
    let node = crate::admin::node_name();
    let cluster = crate::admin::node::cluster_name(&state.broker);
    let id = permanent_id(&cluster);
    t.single(
        &fam::IDENTITY_INFO,
        &[
            ("rabbitmq_node", node),
            ("rabbitmq_cluster", &cluster),
            ("rabbitmq_cluster_permanent_id", &id),
            ("rabbitmq_endpoint", endpoint.as_str()),
        ],
        1u64,
    );
}

/// A stable id in RabbitMQ's shape (`rabbitmq-cluster-id-` and 22
/// base64url characters), made from the cluster's name.
pub fn permanent_id(cluster: &str) -> String {
    let digest = Sha256::digest(cluster.as_bytes());
    let tail = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&digest[..16]);
    format!("rabbitmq-cluster-id-{tail}")
}

/// Warren's own figures: the store's group commits.
fn warren(state: &MetricsState, t: &mut Text<'_>) {
    let mut t = t.with_prefix(WARREN_PREFIX);
    t.single(&fam::W_FLOW_PAUSES, &[], state.broker.connections.totals().flow_pauses);
    let vhosts = state.broker.vhosts();
    t.header(&fam::W_DELAYED);
    for v in &vhosts {
        for x in v.exchanges() {
            if let Some(d) = x.delayer() {
                t.sample(&fam::W_DELAYED, &[("vhost", &v.name), ("exchange", &x.name)], d.pending());
            }
        }
    }
    t.header(&fam::W_DEDUPLICATED);
    for v in &vhosts {
        for x in v.exchanges() {
            if let Some(d) = x.dedup() {
                t.sample(&fam::W_DEDUPLICATED, &[("vhost", &v.name), ("exchange", &x.name)], d.hits());
            }
        }
        for q in v.queues() {
            if let Some(d) = q.dedup.get() {
                t.sample(&fam::W_DEDUPLICATED, &[("vhost", &v.name), ("queue", &q.name)], d.hits());
            }
        }
    }
    let Some(store) = &state.store else { return };
    let m = store.metrics();
    let batch = m.batch_ops.snapshot();
    t.header(&fam::W_BATCH_OPS);
    t.histogram(
        &fam::W_BATCH_OPS,
        &[],
        &Buckets {
            bounds: batch.bounds,
            cumulative: &batch.cumulative,
            divisor: 1.0,
            sum: batch.sum as f64,
            count: batch.count,
        },
    );
    let sync = m.sync_ns.snapshot();
    t.header(&fam::W_SYNC_SECONDS);
    t.histogram(
        &fam::W_SYNC_SECONDS,
        &[],
        &Buckets {
            bounds: sync.bounds,
            cumulative: &sync.cumulative,
            divisor: 1e9,
            sum: sync.sum as f64 / 1e9,
            count: sync.count,
        },
    );
    t.single(&fam::W_WRITE_ERRORS, &[], m.write_errors.load(std::sync::atomic::Ordering::Relaxed));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_permanent_id_is_stable_and_shaped_like_rabbitmqs() {
        let id = permanent_id("rabbit@vm");
        assert_eq!(id, permanent_id("rabbit@vm"));
        assert_ne!(id, permanent_id("rabbit@other"));
        assert_eq!(id.len(), "rabbitmq-cluster-id-".len() + 22);
    }
}
