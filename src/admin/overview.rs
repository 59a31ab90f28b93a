//! `/api/overview`, `/api/cluster-name`, `/api/nodes[/{node}]` and the
//! small fixed answers tools ask for (`/api/extensions`). Figures are read
//! from live state when asked (no statistics database); rates are the
//! broker's sampled ones. A management user's overview counts only the
//! vhosts it may use, as in RabbitMQ.

use axum::extract::State;
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use serde_json::{json, Value};

use super::auth::Caller;
use super::error::{ApiError, Result};
use super::input::{text, JsonBody, Params, QueryPairs};
use super::node::{self, max_fds, node_name, open_fds, processors, resident_memory};
use super::{blocking, json, listing, no_content, AdminState};
use crate::broker::overview::{Depth, GlobalRates};
use crate::broker::stats::Rate;

/// The RabbitMQ version Warren answers as: the one whose API it matches.
pub const RABBITMQ_VERSION: &str = "3.10.8";

pub fn routes() -> Router<AdminState> {
    Router::new()
        .route("/api/overview", get(overview))
        .route("/api/cluster-name", get(show_cluster_name).put(set_cluster_name))
        .route("/api/nodes", get(nodes))
        .route("/api/nodes/", get(nodes))
        .route("/api/nodes/{node}", get(node))
        .route("/api/nodes/{node}/memory", get(memory))
        .route("/api/extensions", get(extensions))
        .route("/api/warren/environment", get(environment))
}

/// `{"rate": r}`.
pub fn rate(r: &Rate) -> Value {
    json!({"rate": r.get()})
}

fn message_stats(r: &GlobalRates, t: &crate::broker::stats::MsgTotals) -> Value {
    json!({
        "publish": t.received, "publish_details": rate(&r.publish),
        "confirm": t.confirmed, "confirm_details": rate(&r.confirm),
        "deliver": t.deliver_manual, "deliver_details": rate(&r.deliver),
        "deliver_no_ack": t.deliver_auto, "deliver_no_ack_details": rate(&r.deliver_no_ack),
        "get": t.get_manual, "get_details": rate(&r.get),
        "get_no_ack": t.get_auto, "get_no_ack_details": rate(&r.get_no_ack),
        "deliver_get": t.deliver_get(), "deliver_get_details": rate(&r.deliver_get),
        "get_empty": t.get_empty, "get_empty_details": rate(&r.get_empty),
        "redeliver": t.redelivered, "redeliver_details": rate(&r.redeliver),
        "ack": t.acked, "ack_details": rate(&r.ack),
        "return_unroutable": t.unroutable_returned, "return_unroutable_details": rate(&r.return_unroutable),
        "drop_unroutable": t.unroutable_dropped, "drop_unroutable_details": rate(&r.drop_unroutable),
    })
}

/// Off the async workers: the totals visit every queue.
async fn overview(State(s): State<AdminState>, caller: Caller, query: QueryPairs) -> Result<Response> {
    blocking(move || overview_of(&s, &caller, &query)).await
}

/// The overview as `caller` may see it: a management user's counts and
/// message figures cover the vhosts it may use (its open connections' for
/// messages; the churn of connections and channels is for monitoring users).
fn overview_of(s: &AdminState, caller: &Caller, query: &QueryPairs) -> Result<Response> {
    let b = &s.broker;
    let visible: Vec<_> = b.vhosts().into_iter().filter(|v| caller.sees_vhost(&s.access, &v.name)).collect();
    let mut depth = Depth::default();
    let (mut exchanges, mut queues) = (0u64, 0u64);
    for v in &visible {
        let d = b.depth(Some(v));
        depth.ready += d.ready;
        depth.unacked += d.unacked;
        depth.consumers += d.consumers;
        queues += d.queues;
        exchanges += v.exchange_count() as u64;
    }
    let all = caller.is_monitoring();
    let conns = b.connections.list();
    let mine = |user: &str| all || caller.user() == Some(user);
    let connections = conns.iter().filter(|c| mine(&c.user)).count();
    let channels: u64 =
        conns.iter().filter(|c| mine(&c.user)).map(|c| u64::from(c.stats.channel_count())).sum();
    let mut totals = b.connections.totals();
    let (mut declared, mut created, mut deleted) = b.queue_churn();
    if !all {
        let mut mine = crate::broker::connections::Totals::default();
        for c in conns.iter().filter(|c| visible.iter().any(|v| v.name == c.vhost)) {
            mine.msgs += c.stats.msgs.snapshot();
        }
        totals = mine;
        (declared, created, deleted) = visible.iter().fold((0, 0, 0), |(d, c, x), v| {
            (d + v.churn.declared.get(), c + v.churn.created.get(), x + v.churn.deleted.get())
        });
    }
    let r = &b.rates;
    let mut churn = json!({
        "connection_created": totals.connections_opened,
        "connection_closed": totals.connections_closed,
        "channel_created": totals.channels_opened,
        "channel_closed": totals.channels_closed,
        "queue_declared": declared,
        "queue_created": created,
        "queue_deleted": deleted,
    });
    // The broker's churn rates, for those who see the whole broker.
    if all {
        for (key, rate_of) in [
            ("connection_created_details", &r.connection_created),
            ("connection_closed_details", &r.connection_closed),
            ("channel_created_details", &r.channel_created),
            ("channel_closed_details", &r.channel_closed),
            ("queue_declared_details", &r.queue_declared),
            ("queue_created_details", &r.queue_created),
            ("queue_deleted_details", &r.queue_deleted),
        ] {
            churn[key] = rate(rate_of);
        }
    }
    let node = node_name();
    let mut listeners = s.node.listeners_json();
    let contexts: Vec<Value> = s
        .node
        .listeners()
        .iter()
        .filter(|l| l.protocol == "http")
        .map(|l| json!({"node": node, "description": "RabbitMQ Management", "path": "/", "port": l.port.to_string()}))
        .collect();
    if !all {
        // Listener addresses are for operators.
        listeners = Value::Array(Vec::new());
    }
    let body = json!({
        "management_version": RABBITMQ_VERSION,
        "rates_mode": "basic",
        "sample_retention_policies": {"global": [600, 3600, 28800, 86400], "basic": [600, 3600], "detailed": [600]},
        "exchange_types": exchange_types(),
        "product_version": env!("CARGO_PKG_VERSION"),
        "product_name": "Warren",
        "rabbitmq_version": RABBITMQ_VERSION,
        "cluster_name": node::cluster_name(&s.broker),
        "erlang_version": "none (Warren is written in Rust)",
        "erlang_full_version": "none (Warren is written in Rust)",
        "release_series_support_status": "supported",
        "disable_stats": false,
        "enable_queue_totals": false,
        "message_stats": message_stats(r, &totals.msgs),
        "churn_rates": churn,
        "queue_totals": {
            "messages": depth.messages(), "messages_details": rate(&r.messages),
            "messages_ready": depth.ready, "messages_ready_details": rate(&r.ready),
            "messages_unacknowledged": depth.unacked, "messages_unacknowledged_details": rate(&r.unacked),
        },
        "object_totals": {
            "channels": channels,
            "connections": connections,
            "consumers": depth.consumers,
            "exchanges": exchanges,
            "queues": queues,
        },
        "statistics_db_event_queue": 0,
        "node": node,
        "listeners": listeners,
        "contexts": contexts,
    });
    // `columns` works on an object as on list items.
    Ok(json(listing::answer_one(body, query)))
}

fn exchange_types() -> Value {
    let t =
        |name: &str, description: &str| json!({"name": name, "description": description, "enabled": true});
    json!([
        t("direct", "AMQP direct exchange, as per the AMQP specification"),
        t("fanout", "AMQP fanout exchange, as per the AMQP specification"),
        t("headers", "AMQP headers exchange, as per the AMQP specification"),
        t("topic", "AMQP topic exchange, as per the AMQP specification"),
    ])
}

async fn show_cluster_name(State(s): State<AdminState>) -> Response {
    json(json!({"name": node::cluster_name(&s.broker)}))
}

/// Renames the cluster (administrators; kept across restarts).
async fn set_cluster_name(
    State(s): State<AdminState>,
    caller: Caller,
    JsonBody(body): JsonBody,
) -> Result<Response> {
    caller.require_admin()?;
    let name = text(&body, "name")?
        .filter(|n| !n.is_empty())
        .ok_or_else(|| ApiError::bad_request("name is required"))?;
    if name.len() > 255 {
        return Err(ApiError::bad_request("the cluster name is longer than 255 bytes"));
    }
    let b = s.broker.clone();
    blocking(move || {
        b.set_cluster_name(&name)
            .then_some(())
            .ok_or_else(|| ApiError::Internal("the store could not take the change".into()))
    })
    .await?;
    Ok(no_content())
}

/// This node in RabbitMQ's `/api/nodes` shape. Every "used" figure is real
/// and non-zero on a running node (Nagios reads a zero as a failure).
fn node_item(s: &AdminState) -> Value {
    let b = &s.broker;
    let a = &b.alarms;
    let fd_total = max_fds().unwrap_or(0);
    let sockets_used = b.open_connections() as u64 + s.node.listeners().len() as u64;
    let tasks = tokio::runtime::Handle::try_current().map_or(1, |h| h.metrics().num_alive_tasks() as u64);
    let enabled = ["rabbitmq_management", "rabbitmq_prometheus"];
    json!({
        "name": node_name(),
        "type": "disc",
        "running": true,
        "being_drained": false,
        "uptime": b.uptime_ms().min(u64::from(u32::MAX)),
        "os_pid": std::process::id().to_string(),
        "fd_used": open_fds().unwrap_or(0),
        "fd_total": fd_total,
        "sockets_used": sockets_used,
        "sockets_total": fd_total,
        "proc_used": tasks.max(1),
        "proc_total": 1_048_576,
        "mem_used": if a.memory_used() > 0 { a.memory_used() } else { resident_memory().unwrap_or(0) },
        "mem_limit": a.memory_limit(),
        "mem_alarm": a.memory_alarm(),
        "mem_calculation_strategy": "rss",
        "disk_free": a.disk_free(),
        "disk_free_limit": a.disk_free_limit(),
        "disk_free_alarm": a.disk_alarm(),
        "partitions": [],
        "rates_mode": "basic",
        "processors": processors(),
        "run_queue": 0,
        "enabled_plugins": enabled,
        "applications": [],
        "exchange_types": exchange_types(),
        "net_ticktime": 60,
        "cluster_links": [],
        "config_files": [],
        "log_files": [],
    })
}

fn require_monitor(caller: &Caller) -> Result<()> {
    caller.is_monitoring().then_some(()).ok_or(ApiError::NotAuthorised("Not monitor user"))
}

async fn nodes(State(s): State<AdminState>, caller: Caller, query: QueryPairs) -> Result<Response> {
    require_monitor(&caller)?;
    listing::answer(vec![node_item(&s)], &query, false).map(json)
}

async fn node(
    State(s): State<AdminState>,
    caller: Caller,
    Params(name): Params<String>,
    query: QueryPairs,
) -> Result<Response> {
    require_monitor(&caller)?;
    if name != node_name() {
        return Err(ApiError::NotFound);
    }
    Ok(json(listing::answer_one(node_item(&s), &query)))
}

/// Warren knows its resident size, not where each byte of it goes: the
/// breakdown is RabbitMQ's `not_available` (the node's `mem_used` has the total).
async fn memory(caller: Caller, Params(name): Params<String>) -> Result<Response> {
    require_monitor(&caller)?;
    if name != node_name() {
        return Err(ApiError::NotFound);
    }
    Ok(json(json!({"memory": "not_available"})))
}

/// The effective configuration and each value's source (Warren's own;
/// administrators only, as `rabbitmqctl environment` needs node access).
async fn environment(State(s): State<AdminState>, caller: Caller) -> Result<Response> {
    caller.require_admin()?;
    let env = s.node.environment();
    Ok(json(if env.is_null() { json!({"settings": []}) } else { env }))
}

async fn extensions() -> Response {
    json(json!([]))
}
