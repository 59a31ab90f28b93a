//! `/api/connections`: list (all, per vhost, per user), one, and closing
//! them (`DELETE`, with RabbitMQ's `X-Reason` header: the client gets 320
//! CONNECTION_FORCED with that text). Monitoring users see every
//! connection, management users their own; closing takes an administrator
//! or the connection's own user.

use std::sync::Arc;

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use serde_json::{json, Value};

use super::auth::Caller;
use super::error::{ApiError, Result};
use super::input::{Params, QueryPairs};
use super::overview::rate;
use super::topology::vhost_to_read;
use super::{json, listing, no_content, node_name, AdminState};
use crate::broker::connections::ConnectionEntry;
use crate::protocol::json::table_to_json;

/// What the client sees when no `X-Reason` is given (RabbitMQ's text).
const DEFAULT_REASON: &str = "Closed via management plugin";

pub fn routes() -> Router<AdminState> {
    Router::new()
        .route("/api/connections", get(list))
        .route("/api/connections/", get(list))
        .route("/api/connections/{name}", get(show).delete(close))
        .route("/api/connections/username/{user}", get(of_user).delete(close_of_user))
        .route("/api/vhosts/{vhost}/connections", get(in_vhost))
}

/// A connection as RabbitMQ's API shows it.
pub fn item(c: &ConnectionEntry) -> Value {
    let s = &c.stats;
    let o = &c.opened;
    let props = table_to_json(&o.client_properties);
    let provided = props.get("connection_name").cloned().unwrap_or(Value::Null);
    let tls = o.tls.as_ref();
    json!({
        "name": c.name,
        "node": node_name(),
        "type": "network",
        "protocol": "AMQP 0-9-1",
        "state": "running",
        "user": c.user,
        "user_who_performed_action": c.user,
        "vhost": c.vhost,
        "auth_mechanism": o.auth_mechanism,
        "client_properties": props,
        "user_provided_name": provided,
        "connected_at": c.connected_at,
        "host": c.local.ip().to_string(),
        "port": c.local.port(),
        "peer_host": c.peer.ip().to_string(),
        "peer_port": c.peer.port(),
        "channels": s.channel_count(),
        "channel_max": o.channel_max,
        "frame_max": o.frame_max,
        "timeout": o.heartbeat,
        "recv_oct": s.io.recv_oct.get(),
        "recv_oct_details": rate(&s.recv_rate),
        "recv_cnt": s.io.recv_cnt.get(),
        "send_oct": s.io.send_oct.get(),
        "send_oct_details": rate(&s.send_rate),
        "send_cnt": s.io.send_cnt.get(),
        "send_pend": 0,
        "ssl": tls.is_some(),
        "ssl_protocol": tls.map(|t| t.protocol.clone()),
        "ssl_cipher": tls.map(|t| t.cipher.clone()),
        "ssl_key_exchange": Value::Null,
        "ssl_hash": Value::Null,
        "peer_cert_subject": Value::Null,
        "peer_cert_issuer": Value::Null,
        "peer_cert_validity": Value::Null,
    })
}

/// Whether the caller may see this connection.
pub fn sees(caller: &Caller, c: &ConnectionEntry) -> bool {
    caller.is_monitoring() || caller.user() == Some(c.user.as_str())
}

/// The connections the caller may see, `which` of them.
pub fn visible(
    s: &AdminState,
    caller: &Caller,
    which: impl Fn(&ConnectionEntry) -> bool,
) -> Vec<Arc<ConnectionEntry>> {
    let mut all: Vec<_> =
        s.broker.connections.list().into_iter().filter(|c| sees(caller, c) && which(c)).collect();
    all.sort_by_key(|c| c.id);
    all
}

async fn list(State(s): State<AdminState>, caller: Caller, query: QueryPairs) -> Result<Response> {
    let items = visible(&s, &caller, |_| true).iter().map(|c| item(c)).collect();
    listing::answer(items, &query, true).map(json)
}

async fn in_vhost(
    State(s): State<AdminState>,
    caller: Caller,
    Params(vhost): Params<String>,
    query: QueryPairs,
) -> Result<Response> {
    vhost_to_read(&s, &caller, &vhost)?;
    let items = visible(&s, &caller, |c| c.vhost == vhost).iter().map(|c| item(c)).collect();
    listing::answer(items, &query, true).map(json)
}

/// The connection named so, if the caller may see it.
fn find(s: &AdminState, caller: &Caller, name: &str) -> Result<Arc<ConnectionEntry>> {
    visible(s, caller, |c| c.name == name).into_iter().next().ok_or(ApiError::NotFound)
}

async fn show(
    State(s): State<AdminState>,
    caller: Caller,
    Params(name): Params<String>,
    query: QueryPairs,
) -> Result<Response> {
    let c = find(&s, &caller, &name)?;
    Ok(json(listing::answer_one(item(&c), &query)))
}

/// The `X-Reason` header's text, or RabbitMQ's default.
fn reason(headers: &HeaderMap) -> String {
    // UTF-8 is taken as such (a reason in any language); control
    // characters cannot arrive in a header value.
    headers
        .get("x-reason")
        .map(|v| String::from_utf8_lossy(v.as_bytes()).trim().to_owned())
        .filter(|r| !r.is_empty())
        .unwrap_or_else(|| DEFAULT_REASON.to_owned())
}

fn may_close(caller: &Caller, c: &ConnectionEntry) -> bool {
    caller.is_admin() || caller.user() == Some(c.user.as_str())
}

async fn close(
    State(s): State<AdminState>,
    caller: Caller,
    Params(name): Params<String>,
    headers: HeaderMap,
) -> Result<Response> {
    let c = find(&s, &caller, &name)?;
    if !may_close(&caller, &c) {
        return Err(ApiError::NOT_AUTHORISED_OBJECT);
    }
    c.close(reason(&headers));
    Ok(no_content())
}

async fn of_user(
    State(s): State<AdminState>,
    caller: Caller,
    Params(user): Params<String>,
    query: QueryPairs,
) -> Result<Response> {
    let items = visible(&s, &caller, |c| c.user == user).iter().map(|c| item(c)).collect();
    listing::answer(items, &query, false).map(json)
}

/// Closes every connection of a user (administrators, or the user itself).
async fn close_of_user(
    State(s): State<AdminState>,
    caller: Caller,
    Params(user): Params<String>,
    headers: HeaderMap,
) -> Result<Response> {
    if !(caller.is_admin() || caller.user() == Some(user.as_str())) {
        return Err(ApiError::NOT_AUTHORISED_OBJECT);
    }
    let why = reason(&headers);
    for c in visible(&s, &caller, |c| c.user == user) {
        c.close(why.clone());
    }
    Ok(no_content())
}
