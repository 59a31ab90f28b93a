//! `/api/vhosts`: list (management users see the vhosts they have
//! permissions in, monitoring users all), show, create or change, delete.
//! Creating a vhost grants the acting user `.* .* .*` in it, as RabbitMQ
//! does; deleting one closes its connections and drops its permissions and
//! policies.

use axum::extract::State;
use axum::response::Response;
use serde_json::{json, Value};

use super::auth::Caller;
use super::error::{ApiError, Result};
use super::input::{tags, text, JsonBody, Params, QueryPairs};
use super::users::access_failed;
use super::{
    blocking, json, listing, meta_lock, no_content, node_name, put_answer, store_failed, AdminState,
};
use crate::broker::vhost::VHostMeta;
use crate::broker::VHost;

/// A vhost as RabbitMQ shows it.
pub fn item(v: &VHost) -> Value {
    let m = v.meta();
    let mut metadata = json!({"description": m.description, "tags": m.tags});
    if let Some(t) = &m.default_queue_type {
        metadata["default_queue_type"] = json!(t);
    }
    // Ready messages only: unacknowledged ones are not counted per queue yet.
    let ready: u64 =
        v.queue_names().iter().filter_map(|n| v.queue(n)).map(|q| u64::from(q.message_count())).sum();
    json!({
        "name": v.name,
        "description": m.description,
        "tags": m.tags,
        "default_queue_type": m.default_queue_type.as_deref().unwrap_or("classic"),
        "metadata": metadata,
        "tracing": false,
        "cluster_state": {node_name(): "running"},
        "messages": ready,
        "messages_ready": ready,
    })
}

pub async fn list(State(s): State<AdminState>, caller: Caller, query: QueryPairs) -> Result<Response> {
    let items =
        s.broker.vhosts().iter().filter(|v| caller.sees_vhost(&s.access, &v.name)).map(|v| item(v)).collect();
    listing::answer(items, &query, true).map(json)
}

/// RabbitMQ 3.10 shows a single vhost to administrators only.
pub async fn show(
    State(s): State<AdminState>,
    caller: Caller,
    Params(name): Params<String>,
) -> Result<Response> {
    caller.require_admin()?;
    let v = s.broker.vhost(&name).ok_or(ApiError::NotFound)?;
    Ok(json(item(&v)))
}

/// `default_queue_type` (or 3.10's `defaultqueuetype`): classic, quorum or stream.
fn queue_type(body: &serde_json::Map<String, Value>) -> Result<Option<String>> {
    let given = match text(body, "default_queue_type")? {
        Some(t) => Some(t),
        None => text(body, "defaultqueuetype")?,
    };
    match given.as_deref() {
        None | Some("" | "undefined") => Ok(None),
        Some(t @ ("classic" | "quorum" | "stream")) => Ok(Some(t.to_owned())),
        Some(other) => Err(ApiError::bad_request(format!(
            "default queue type '{other}' is not supported (classic, quorum or stream)"
        ))),
    }
}

/// Creates a vhost or replaces its description, tags and default queue
/// type (missing ones reset, as in RabbitMQ; limits are kept).
pub async fn put(
    State(s): State<AdminState>,
    caller: Caller,
    Params(name): Params<String>,
    JsonBody(body): JsonBody,
) -> Result<Response> {
    caller.require_admin()?;
    let description = text(&body, "description")?.unwrap_or_default();
    let tags = tags(&body, "tags")?.unwrap_or_default();
    let default_queue_type = queue_type(&body)?;
    blocking(move || {
        let created = {
            let _serial = meta_lock();
            let limits = s.broker.vhost(&name).map(|v| v.limits()).unwrap_or_default();
            let meta = VHostMeta { description, tags, default_queue_type, limits };
            s.broker.put_vhost(&name, meta).map_err(store_failed)?
        };
        if let (true, Some(user)) = (created, caller.user()) {
            let granted =
                s.broker.with_vhost(&name, |_| s.access.set_permission(&name, user, ".*", ".*", ".*"));
            if let Some(done) = granted {
                done.map_err(access_failed)?;
            }
        }
        Ok(put_answer(created))
    })
    .await
}

pub async fn delete(
    State(s): State<AdminState>,
    caller: Caller,
    Params(name): Params<String>,
) -> Result<Response> {
    caller.require_admin()?;
    blocking(move || {
        // Its permissions go first, under the vhost's lock (they must never
        // outlive it); its policies go with it (`Broker::delete_vhost_with`).
        let mut dropped = Ok(());
        if !s.broker.delete_vhost_with(&name, || dropped = s.access.vhost_deleted(&name)) {
            return Err(ApiError::NotFound);
        }
        dropped.map_err(access_failed)?;
        Ok(no_content())
    })
    .await
}
