//! Prometheus metrics over HTTP from an in-process Warren: traffic made
//! with lapin, scrapes parsed with a real Prometheus text parser, values
//! checked against what was done, names against RabbitMQ 3.10.8's.

mod common;

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::time::Duration;

use lapin::options::{BasicGetOptions, BasicPublishOptions, ConfirmSelectOptions, QueueDeclareOptions};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties};
use prometheus_parse::{Sample, Scrape, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use warren::server::Server;

/// Every `rabbitmq_*` sample name of RabbitMQ 3.10.8's `/metrics` (with
/// the prometheus plugin, less `erlang_vm_*` and `erlang_mnesia_*`), taken
/// from a live node.
const RABBITMQ_3_10_8: &[&str] = &[
    "alarms_file_descriptor_limit",
    "alarms_free_disk_space_watermark",
    "alarms_memory_used_watermark",
    "auth_attempts_failed_total",
    "auth_attempts_succeeded_total",
    "auth_attempts_total",
    "build_info",
    "channel_acks_uncommitted",
    "channel_consumers",
    "channel_get_ack_total",
    "channel_get_empty_total",
    "channel_get_total",
    "channel_messages_acked_total",
    "channel_messages_confirmed_total",
    "channel_messages_delivered_ack_total",
    "channel_messages_delivered_total",
    "channel_messages_published_total",
    "channel_messages_redelivered_total",
    "channel_messages_unacked",
    "channel_messages_uncommitted",
    "channel_messages_unconfirmed",
    "channel_messages_unroutable_dropped_total",
    "channel_messages_unroutable_returned_total",
    "channel_prefetch",
    "channel_process_reductions_total",
    "channels",
    "channels_closed_total",
    "channels_opened_total",
    "connection_channels",
    "connection_incoming_bytes_total",
    "connection_incoming_packets_total",
    "connection_outgoing_bytes_total",
    "connection_outgoing_packets_total",
    "connection_pending_packets",
    "connection_process_reductions_total",
    "connections",
    "connections_closed_total",
    "connections_opened_total",
    "consumer_prefetch",
    "consumers",
    "disk_space_available_bytes",
    "disk_space_available_limit_bytes",
    "erlang_gc_reclaimed_bytes_total",
    "erlang_gc_runs_total",
    "erlang_net_ticktime_seconds",
    "erlang_processes_limit",
    "erlang_processes_used",
    "erlang_scheduler_context_switches_total",
    "erlang_scheduler_run_queue",
    "erlang_uptime_seconds",
    "global_consumers",
    "global_messages_acknowledged_total",
    "global_messages_confirmed_total",
    "global_messages_dead_lettered_confirmed_total",
    "global_messages_dead_lettered_delivery_limit_total",
    "global_messages_dead_lettered_expired_total",
    "global_messages_dead_lettered_maxlen_total",
    "global_messages_dead_lettered_rejected_total",
    "global_messages_delivered_consume_auto_ack_total",
    "global_messages_delivered_consume_manual_ack_total",
    "global_messages_delivered_get_auto_ack_total",
    "global_messages_delivered_get_manual_ack_total",
    "global_messages_delivered_total",
    "global_messages_get_empty_total",
    "global_messages_received_confirm_total",
    "global_messages_received_total",
    "global_messages_redelivered_total",
    "global_messages_routed_total",
    "global_messages_unroutable_dropped_total",
    "global_messages_unroutable_returned_total",
    "global_publishers",
    "identity_info",
    "io_read_bytes_total",
    "io_read_ops_total",
    "io_read_time_seconds_total",
    "io_reopen_ops_total",
    "io_seek_ops_total",
    "io_seek_time_seconds_total",
    "io_sync_ops_total",
    "io_sync_time_seconds_total",
    "io_write_bytes_total",
    "io_write_ops_total",
    "io_write_time_seconds_total",
    "msg_store_read_total",
    "msg_store_write_total",
    "process_max_fds",
    "process_max_tcp_sockets",
    "process_open_fds",
    "process_open_tcp_sockets",
    "process_resident_memory_bytes",
    "queue_consumer_utilisation",
    "queue_consumers",
    "queue_disk_reads_total",
    "queue_disk_writes_total",
    "queue_index_read_ops_total",
    "queue_index_write_ops_total",
    "queue_messages",
    "queue_messages_bytes",
    "queue_messages_paged_out",
    "queue_messages_paged_out_bytes",
    "queue_messages_persistent",
    "queue_messages_published_total",
    "queue_messages_ram",
    "queue_messages_ram_bytes",
    "queue_messages_ready",
    "queue_messages_ready_bytes",
    "queue_messages_ready_ram",
    "queue_messages_unacked",
    "queue_messages_unacked_bytes",
    "queue_messages_unacked_ram",
    "queue_process_memory_bytes",
    "queue_process_reductions_total",
    "queues",
    "queues_created_total",
    "queues_declared_total",
    "queues_deleted_total",
    "raft_entry_commit_latency_seconds",
    "raft_log_commit_index",
    "raft_log_last_applied_index",
    "raft_log_last_written_index",
    "raft_log_snapshot_index",
    "raft_term_total",
    "resident_memory_limit_bytes",
    "schema_db_disk_tx_total",
    "schema_db_ram_tx_total",
];

/// A scrape: status, content type, body, and the body parsed.
struct Scraped {
    content_type: String,
    body: String,
    parsed: Scrape,
}

impl Scraped {
    fn samples<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Sample> + 'a {
        self.parsed.samples.iter().filter(move |s| s.metric == name)
    }

    /// The one sample of `name` whose labels include `labels`.
    #[track_caller]
    fn value(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        let found: Vec<_> =
            self.samples(name).filter(|s| labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v))).collect();
        assert_eq!(found.len(), 1, "{name}{labels:?} in:\n{}", self.body);
        match &found[0].value {
            Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v) => *v,
            other => panic!("{name} is {other:?}"),
        }
    }
}

async fn get(addr: SocketAddr, path: &str) -> (u16, String, String) {
    let mut s = TcpStream::connect(addr).await.unwrap();
    let req = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    tokio::time::timeout(common::TIMEOUT, s.read_to_end(&mut raw)).await.unwrap().unwrap();
    let text = String::from_utf8(raw).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    let content_type = head
        .lines()
        .find_map(|l| l.to_ascii_lowercase().strip_prefix("content-type: ").map(str::to_owned))
        .unwrap_or_default();
    (status, content_type, body.to_owned())
}

async fn scrape(s: &Server, path: &str) -> Scraped {
    let (status, content_type, body) = get(s.metrics_addr.expect("metrics listening"), path).await;
    assert_eq!(status, 200, "{path}: {body}");
    well_formed(&body);
    let parsed = Scrape::parse(body.lines().map(|l| Ok(l.to_owned()))).unwrap();
    Scraped { content_type, body, parsed }
}

/// What the parser forgives and Prometheus does not: a sample before its
/// family's TYPE line, a family's samples split up, a family twice.
#[track_caller]
fn well_formed(body: &str) {
    let mut seen = HashSet::new();
    let mut current: Option<(String, String)> = None;
    for line in body.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap();
            assert!(seen.insert(name.to_owned()), "{name} twice");
            current = Some((name.to_owned(), kind.to_owned()));
        } else if let Some(rest) = line.strip_prefix("# HELP ") {
            let name = rest.split(' ').next().unwrap();
            assert_eq!(
                Some(name),
                current.as_ref().map(|c| c.0.as_str()),
                "HELP of {name} apart from its TYPE"
            );
        } else {
            assert!(!line.is_empty() && !line.starts_with('#'), "odd line {line:?}");
            let name = line.split(['{', ' ']).next().unwrap();
            let (family, kind) = current.as_ref().unwrap_or_else(|| panic!("{name} before any TYPE"));
            let fits = match kind.as_str() {
                "histogram" => ["_bucket", "_sum", "_count"].iter().any(|s| name == format!("{family}{s}")),
                _ => name == family,
            };
            assert!(fits, "{name} under the TYPE of {family}");
        }
    }
}

async fn connect(s: &Server) -> (Connection, Channel) {
    let conn =
        Connection::connect(&common::url(s.local_addr), ConnectionProperties::default()).await.unwrap();
    let ch = conn.create_channel().await.unwrap();
    (conn, ch)
}

async fn publish(ch: &Channel, queue: &str, n: usize) {
    for i in 0..n {
        let props = BasicProperties::default().with_delivery_mode(2);
        let confirm = ch
            .basic_publish(
                "".into(),
                queue.into(),
                BasicPublishOptions::default(),
                format!("m{i}").as_bytes(),
                props,
            )
            .await
            .unwrap();
        assert!(confirm.await.unwrap().is_ack());
    }
}

async fn start() -> Server {
    common::start_with(|c| c.metrics.listen = Some("127.0.0.1:0".parse().unwrap())).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_three_endpoints_show_what_was_done() {
    let s = start().await;
    let (conn, ch) = connect(&s).await;
    ch.confirm_select(ConfirmSelectOptions::default()).await.unwrap();
    let durable = QueueDeclareOptions { durable: true, ..QueueDeclareOptions::default() };
    for q in ["m.one", "m.two"] {
        ch.queue_declare(q.into(), durable, FieldTable::default()).await.unwrap();
    }
    publish(&ch, "m.one", 5).await;
    publish(&ch, "m.two", 3).await;
    let got = ch.basic_get("m.two".into(), BasicGetOptions { no_ack: true }).await.unwrap();
    assert!(got.is_some());

    // Aggregated: RabbitMQ's global counters, summed queue figures, identity.
    let agg = scrape(&s, "/metrics").await;
    assert_eq!(agg.content_type, "text/plain; version=0.0.4");
    let amqp = [("protocol", "amqp091")];
    assert_eq!(agg.value("rabbitmq_global_messages_received_total", &amqp), 8.0);
    assert_eq!(agg.value("rabbitmq_global_messages_received_confirm_total", &amqp), 8.0);
    assert_eq!(agg.value("rabbitmq_global_messages_confirmed_total", &amqp), 8.0);
    assert_eq!(agg.value("rabbitmq_global_messages_routed_total", &amqp), 8.0);
    assert_eq!(agg.value("rabbitmq_global_messages_delivered_get_auto_ack_total", &amqp), 1.0);
    assert_eq!(agg.value("rabbitmq_global_messages_delivered_total", &amqp), 1.0);
    assert_eq!(agg.value("rabbitmq_global_publishers", &amqp), 1.0);
    assert_eq!(agg.value("rabbitmq_queue_messages_ready", &[]), 7.0);
    assert_eq!(agg.value("rabbitmq_queue_messages", &[]), 7.0);
    assert_eq!(agg.value("rabbitmq_queue_messages_published_total", &[]), 8.0);
    assert_eq!(agg.value("rabbitmq_queue_messages_ready_bytes", &[]), 14.0);
    assert_eq!(agg.value("rabbitmq_queues", &[]), 2.0);
    assert_eq!(agg.value("rabbitmq_connections", &[]), 1.0);
    assert_eq!(agg.value("rabbitmq_channels", &[]), 1.0);
    assert_eq!(agg.value("rabbitmq_queues_created_total", &[]), 2.0);
    assert!(agg.value("rabbitmq_connection_incoming_bytes_total", &[]) > 0.0);
    assert!(agg.value("rabbitmq_process_open_fds", &[]) > 0.0);
    assert!(agg.value("rabbitmq_erlang_uptime_seconds", &[]) > 0.0);
    let id = agg.samples("rabbitmq_identity_info").next().unwrap();
    assert_eq!(id.labels.get("rabbitmq_node"), Some(warren::admin::node_name()));
    assert_eq!(
        id.labels.get("rabbitmq_cluster"),
        Some(warren::admin::node::cluster_name(&s.broker).as_str())
    );
    assert!(id.labels.get("rabbitmq_cluster_permanent_id").unwrap().starts_with("rabbitmq-cluster-id-"));
    assert_eq!(id.labels.get("rabbitmq_endpoint"), Some("aggregated"));
    let build = agg.samples("rabbitmq_build_info").next().unwrap();
    assert_eq!(build.labels.get("rabbitmq_version"), Some("3.10.8"));
    assert_eq!(build.labels.get("product_name"), Some("Warren"));
    // No per-object labels on /metrics.
    assert!(!agg.body.contains("queue=\"") && !agg.body.contains("channel=\""));
    // The store's group commits: the confirms waited for synced batches.
    assert!(agg.body.contains("warren_store_sync_duration_seconds_bucket{le=\"+Inf\"}"));
    let synced = agg.parsed.samples.iter().find(|s| s.metric == "warren_store_sync_duration_seconds_count");
    match synced.map(|s| &s.value) {
        Some(Value::Untyped(n)) | Some(Value::Counter(n)) => assert!(*n >= 1.0, "{}", agg.body),
        other => panic!("sync count {other:?}"),
    }

    // Per-object: each queue and connection on its own.
    let per = scrape(&s, "/metrics/per-object").await;
    let q = |name: &'static str| [("vhost", "/"), ("queue", name)];
    assert_eq!(per.value("rabbitmq_queue_messages_ready", &q("m.one")), 5.0);
    assert_eq!(per.value("rabbitmq_queue_messages_ready", &q("m.two")), 2.0);
    assert_eq!(per.value("rabbitmq_queue_messages_published_total", &q("m.two")), 3.0);
    assert_eq!(per.value("rabbitmq_queue_consumers", &q("m.one")), 0.0);
    let conns: Vec<_> = per.samples("rabbitmq_connection_channels").collect();
    assert_eq!(conns.len(), 1);
    assert!(conns[0].labels.get("channel").unwrap().contains(" -> "));
    assert_eq!(per.value("rabbitmq_global_messages_received_total", &amqp), 8.0);
    let id = per.samples("rabbitmq_identity_info").next().unwrap();
    assert_eq!(id.labels.get("rabbitmq_endpoint"), Some("per-object"));

    // Detailed: only the families asked for, prefixed; queues of the vhost.
    let det =
        scrape(&s, "/metrics/detailed?family=queue_coarse_metrics&family=queue_consumer_count&vhost=%2F")
            .await;
    assert_eq!(det.value("rabbitmq_detailed_queue_messages_ready", &q("m.one")), 5.0);
    assert_eq!(det.value("rabbitmq_detailed_queue_messages", &q("m.two")), 2.0);
    assert_eq!(det.value("rabbitmq_detailed_queue_consumers", &q("m.two")), 0.0);
    let names: HashSet<_> = det.parsed.samples.iter().map(|s| s.metric.as_str()).collect();
    let want: HashSet<_> = [
        "rabbitmq_detailed_queue_messages_ready",
        "rabbitmq_detailed_queue_messages_unacked",
        "rabbitmq_detailed_queue_messages",
        "rabbitmq_detailed_queue_consumers",
        "rabbitmq_build_info",
        "rabbitmq_identity_info",
    ]
    .into();
    assert_eq!(names, want);
    let id = det.samples("rabbitmq_identity_info").next().unwrap();
    assert_eq!(id.labels.get("rabbitmq_endpoint"), Some("detailed"));
    // Another vhost's queues, or a family Warren does not know: nothing.
    let other = scrape(&s, "/metrics/detailed?family=queue_coarse_metrics&vhost=elsewhere").await;
    assert_eq!(other.samples("rabbitmq_detailed_queue_messages_ready").count(), 0);
    let unknown = scrape(&s, "/metrics/detailed?family=no_such_family").await;
    assert_eq!(unknown.parsed.samples.len(), 2, "{}", unknown.body);
    let conn_fams =
        scrape(&s, "/metrics/detailed?family=connection_coarse_metrics&family=connection_metrics").await;
    assert!(conn_fams.samples("rabbitmq_detailed_connection_incoming_bytes_total").count() == 1);
    assert!(conn_fams.samples("rabbitmq_detailed_connection_outgoing_packets_total").count() == 1);

    // Counters do not go back when a connection closes.
    conn.close(200, "bye".into()).await.unwrap();
    let mut after = scrape(&s, "/metrics").await;
    for _ in 0..100 {
        if after.value("rabbitmq_connections", &[]) == 0.0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        after = scrape(&s, "/metrics").await;
    }
    assert_eq!(after.value("rabbitmq_connections", &[]), 0.0);
    assert_eq!(after.value("rabbitmq_connections_closed_total", &[]), 1.0);
    assert_eq!(after.value("rabbitmq_global_messages_received_total", &amqp), 8.0);
    assert_eq!(after.value("rabbitmq_global_messages_delivered_get_auto_ack_total", &amqp), 1.0);
    assert_eq!(after.value("rabbitmq_channels_closed_total", &[]), 1.0);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn names_are_rabbitmqs_or_warrens_own() {
    let s = start().await;
    let (_conn, ch) = connect(&s).await;
    ch.queue_declare("n.q".into(), QueueDeclareOptions::default(), FieldTable::default()).await.unwrap();
    let known: HashSet<&str> = RABBITMQ_3_10_8.iter().copied().collect();
    let mut kinds: HashMap<String, String> = HashMap::new();
    for path in ["/metrics", "/metrics/per-object"] {
        let scraped = scrape(&s, path).await;
        for line in scraped.body.lines().filter(|l| !l.starts_with('#')) {
            let name = line.split(['{', ' ']).next().unwrap();
            if name.starts_with("warren_") {
                continue;
            }
            let short = name
                .strip_prefix("rabbitmq_")
                .unwrap_or_else(|| panic!("{name}: neither rabbitmq_ nor warren_"));
            assert!(known.contains(short), "{name} is not a RabbitMQ 3.10.8 name");
        }
        for line in scraped.body.lines().filter_map(|l| l.strip_prefix("# TYPE ")) {
            let (name, kind) = line.split_once(' ').unwrap();
            if let Some(before) = kinds.insert(name.to_owned(), kind.to_owned()) {
                assert_eq!(before, kind, "{name} changes type between endpoints");
            }
        }
    }
    // RabbitMQ's types where RabbitMQ has them.
    assert_eq!(kinds["rabbitmq_global_messages_received_total"], "counter");
    assert_eq!(kinds["rabbitmq_queue_messages_ready"], "gauge");
    assert_eq!(kinds["rabbitmq_identity_info"], "untyped");
    assert_eq!(kinds["warren_store_batch_operations"], "histogram");
    // Everything Grafana's RabbitMQ-Overview dashboard reads is there.
    for name in [
        "queue_messages_ready",
        "queue_messages_unacked",
        "global_messages_received_total",
        "global_messages_delivered_total",
        "global_messages_routed_total",
        "global_messages_confirmed_total",
        "global_messages_received_confirm_total",
        "global_messages_unroutable_dropped_total",
        "global_messages_unroutable_returned_total",
        "global_messages_redelivered_total",
        "global_messages_acknowledged_total",
        "global_messages_get_empty_total",
        "global_publishers",
        "global_consumers",
        "connections",
        "channels",
        "queues",
        "connections_opened_total",
        "connections_closed_total",
        "channels_opened_total",
        "channels_closed_total",
        "queues_declared_total",
        "queues_created_total",
        "queues_deleted_total",
        "process_resident_memory_bytes",
        "resident_memory_limit_bytes",
        "disk_space_available_bytes",
        "disk_space_available_limit_bytes",
        "process_open_fds",
        "process_max_fds",
        "erlang_uptime_seconds",
        "build_info",
        "identity_info",
    ] {
        assert!(kinds.contains_key(&format!("rabbitmq_{name}")), "{name} missing");
    }
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn other_paths_are_not_found_and_an_empty_listen_turns_metrics_off() {
    let s = start().await;
    let (status, _, _) = get(s.metrics_addr.unwrap(), "/api/overview").await;
    assert_eq!(status, 404);
    s.stop().await;
    let off = common::start_with(|c| c.metrics.listen = None).await;
    assert_eq!(off.metrics_addr, None);
    off.stop().await;
}
