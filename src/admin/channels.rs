//! `/api/channels` and `/api/consumers`. Channels live in their
//! connections' tasks: each visible connection is asked to describe its
//! channels, all at once, and what answers within `INSPECT_WAIT` is listed
//! (a connection whose socket is full answers once it drains). Consumers
//! are read from the queues.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use serde_json::{json, Map, Value};
use tokio::time::{timeout_at, Instant};

use super::auth::Caller;
use super::connections::visible;
use super::error::{ApiError, Result};
use super::input::{Params, QueryPairs};
use super::topology::vhost_to_read;
use super::{blocking, json, listing, node_name, AdminState};
use crate::broker::connections::{ChannelInfo, ConnectionEntry};
use crate::broker::{Consumer, Queue};

/// How long a listing waits for connections to describe their channels.
const INSPECT_WAIT: Duration = Duration::from_millis(500);

pub fn routes() -> Router<AdminState> {
    Router::new()
        .route("/api/channels", get(list))
        .route("/api/channels/", get(list))
        .route("/api/channels/{name}", get(show))
        .route("/api/vhosts/{vhost}/channels", get(in_vhost))
        .route("/api/connections/{name}/channels", get(of_connection))
        .route("/api/consumers", get(consumers))
        .route("/api/consumers/", get(consumers))
        .route("/api/consumers/{vhost}", get(consumers_in))
}

/// A channel's name, as RabbitMQ's: `"<connection name> (<number>)"`.
pub fn channel_name(c: &ConnectionEntry, number: u16) -> String {
    format!("{} ({number})", c.name)
}

fn connection_details(c: &ConnectionEntry) -> Value {
    json!({"name": c.name, "peer_host": c.peer.ip().to_string(), "peer_port": c.peer.port()})
}

fn item(c: &ConnectionEntry, ch: &ChannelInfo) -> Value {
    json!({
        "name": channel_name(c, ch.number),
        "number": ch.number,
        "node": node_name(),
        "user": c.user,
        "user_who_performed_action": c.user,
        "vhost": c.vhost,
        "connection_details": connection_details(c),
        "state": if ch.closing { "closing" } else { "running" },
        "confirm": ch.confirm,
        "transactional": ch.transactional,
        "prefetch_count": ch.prefetch,
        "global_prefetch_count": ch.global_prefetch,
        "consumer_count": ch.consumers,
        "messages_unacknowledged": ch.unacked,
        "messages_unconfirmed": ch.unconfirmed,
        "messages_uncommitted": ch.uncommitted,
        "acks_uncommitted": ch.acks_uncommitted,
    })
}

/// Asks `conns` for their channels, all at once; lists what answers in time.
async fn channels_of(conns: &[Arc<ConnectionEntry>]) -> Vec<Value> {
    let asked: Vec<_> = conns.iter().filter_map(|c| c.inspect().map(|rx| (c, rx))).collect();
    let deadline = Instant::now() + INSPECT_WAIT;
    let mut items = Vec::new();
    for (c, rx) in asked {
        if let Ok(Ok(mut chans)) = timeout_at(deadline, rx).await {
            chans.sort_by_key(|ch| ch.number);
            items.extend(chans.iter().map(|ch| item(c, ch)));
        }
    }
    items
}

async fn list(State(s): State<AdminState>, caller: Caller, query: QueryPairs) -> Result<Response> {
    let items = channels_of(&visible(&s, &caller, |_| true)).await;
    listing::answer(items, &query, true).map(json)
}

async fn in_vhost(
    State(s): State<AdminState>,
    caller: Caller,
    Params(vhost): Params<String>,
    query: QueryPairs,
) -> Result<Response> {
    vhost_to_read(&s, &caller, &vhost)?;
    let items = channels_of(&visible(&s, &caller, |c| c.vhost == vhost)).await;
    listing::answer(items, &query, true).map(json)
}

async fn of_connection(
    State(s): State<AdminState>,
    caller: Caller,
    Params(name): Params<String>,
    query: QueryPairs,
) -> Result<Response> {
    let conns = visible(&s, &caller, |c| c.name == name);
    if conns.is_empty() {
        return Err(ApiError::NotFound);
    }
    let items = channels_of(&conns).await;
    listing::answer(items, &query, false).map(json)
}

async fn show(
    State(s): State<AdminState>,
    caller: Caller,
    Params(name): Params<String>,
    query: QueryPairs,
) -> Result<Response> {
    // "<connection> (<n>)": the connection is everything before the last " (".
    let (conn, number) = name
        .strip_suffix(')')
        .and_then(|n| n.rsplit_once(" ("))
        .and_then(|(c, n)| Some((c.to_owned(), n.parse::<u16>().ok()?)))
        .ok_or(ApiError::NotFound)?;
    let conns = visible(&s, &caller, |c| c.name == conn);
    let found =
        channels_of(&conns).await.into_iter().find(|ch| ch["number"] == number).ok_or(ApiError::NotFound)?;
    Ok(json(listing::answer_one(found, &query)))
}

pub(super) fn consumer_item(s: &AdminState, q: &Queue, c: &Consumer, active: bool) -> Value {
    let channel_details = match s.broker.connections.get(c.connection) {
        Some(conn) => json!({
            "connection_name": conn.name,
            "name": channel_name(&conn, c.channel),
            "node": node_name(),
            "number": c.channel,
            "peer_host": conn.peer.ip().to_string(),
            "peer_port": conn.peer.port(),
            "user": conn.user,
        }),
        None => json!({}),
    };
    let mut arguments = Map::new();
    if c.priority != 0 {
        arguments.insert("x-priority".into(), json!(c.priority));
    }
    json!({
        "consumer_tag": c.tag,
        "queue": {"name": q.name, "vhost": q.vhost},
        "channel_details": channel_details,
        "ack_required": !c.no_ack,
        "prefetch_count": c.prefetch,
        "exclusive": c.exclusive,
        "active": active,
        "activity_status": if active { "up" } else { "waiting" },
        "arguments": arguments,
        "consumer_timeout": s.node.consumer_timeout(),
    })
}

/// Every consumer of the vhosts `which` picks that the caller may see.
fn consumer_items(s: &AdminState, caller: &Caller, which: impl Fn(&str) -> bool) -> Vec<Value> {
    let mut items = Vec::new();
    for v in s.broker.vhosts() {
        if !which(&v.name) || !caller.sees_vhost(&s.access, &v.name) {
            continue;
        }
        for q in v.queues() {
            let single = q.config.single_active_consumer;
            for (i, c) in q.consumers().iter().enumerate() {
                items.push(consumer_item(s, &q, c, !single || i == 0));
            }
        }
    }
    items
}

/// Off the async workers: consumers are found by visiting every queue.
async fn consumers(State(s): State<AdminState>, caller: Caller, query: QueryPairs) -> Result<Response> {
    blocking(move || listing::answer(consumer_items(&s, &caller, |_| true), &query, false).map(json)).await
}

async fn consumers_in(
    State(s): State<AdminState>,
    caller: Caller,
    Params(vhost): Params<String>,
    query: QueryPairs,
) -> Result<Response> {
    vhost_to_read(&s, &caller, &vhost)?;
    blocking(move || listing::answer(consumer_items(&s, &caller, |v| v == vhost), &query, false).map(json))
        .await
}
