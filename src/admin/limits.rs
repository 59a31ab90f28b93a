//! `/api/vhost-limits`: `max-connections` and `max-queues` per vhost, in
//! RabbitMQ's shape (`[{"vhost":"/","value":{"max-connections":10}}]`).
//! A negative value removes the limit (RabbitMQ keeps it as -1, meaning
//! the same). Lists show the vhosts the caller sees; changes are for
//! administrators.

use axum::extract::State;
use axum::response::Response;
use serde_json::{json, Value};

use super::auth::Caller;
use super::error::{ApiError, Result};
use super::input::{integer, require, JsonBody, Params};
use super::{blocking, json, meta_lock, no_content, store_failed, AdminState};
use crate::broker::policy::erlang_term;
use crate::broker::vhost::Limits;
use crate::broker::VHost;

fn row(v: &VHost) -> Option<Value> {
    let limits = v.limits();
    (!limits.is_empty()).then(|| json!({"vhost": v.name, "value": limits}))
}

pub async fn list(State(s): State<AdminState>, caller: Caller) -> Result<Response> {
    let vhosts = s.broker.vhosts();
    let rows: Vec<_> =
        vhosts.iter().filter(|v| caller.sees_vhost(&s.access, &v.name)).filter_map(|v| row(v)).collect();
    Ok(json(Value::Array(rows)))
}

pub async fn show(
    State(s): State<AdminState>,
    caller: Caller,
    Params(vhost): Params<String>,
) -> Result<Response> {
    // Authorised first: a caller who may not see the vhost cannot tell
    // whether it exists.
    if !caller.sees_vhost(&s.access, &vhost) {
        return Err(ApiError::NOT_AUTHORISED_VHOST);
    }
    let v = s.broker.vhost(&vhost).ok_or(ApiError::NotFound)?;
    Ok(json(Value::Array(row(&v).into_iter().collect())))
}

/// The limit a name stands for.
fn slot<'a>(limits: &'a mut Limits, name: &str) -> Option<&'a mut Option<u64>> {
    match name {
        "max-connections" => Some(&mut limits.max_connections),
        "max-queues" => Some(&mut limits.max_queues),
        _ => None,
    }
}

/// Sets or clears one limit (`value` None) under the settings lock.
fn change(s: &AdminState, vhost: &str, name: &str, value: Option<u64>) -> Result<()> {
    let _serial = meta_lock();
    let v = s.broker.vhost(vhost).ok_or(ApiError::VhostNotFound)?;
    let mut meta = v.meta();
    let Some(limit) = slot(&mut meta.limits, name) else { return Ok(()) };
    if *limit == value {
        return Ok(());
    }
    *limit = value;
    if v.set_meta(meta) {
        Ok(())
    } else {
        Err(store_failed("the change could not be written to disk"))
    }
}

/// `PUT /api/vhost-limits/{vhost}/{name} {"value": N}`: 204 (RabbitMQ's
/// answer, new or not).
pub async fn put(
    State(s): State<AdminState>,
    caller: Caller,
    Params((vhost, name)): Params<(String, String)>,
    JsonBody(body): JsonBody,
) -> Result<Response> {
    caller.require_admin()?;
    if s.broker.vhost(&vhost).is_none() {
        return Err(ApiError::VhostNotFound);
    }
    require(&body, &["value"])?;
    let validation = |reason: String| ApiError::BadRequest(format!("Validation failed\n\n{reason}\n"));
    if slot(&mut Limits::default(), &name).is_none() {
        let term = erlang_term(&body["value"]);
        return Err(validation(format!("Unrecognised terms [{{<<\"{name}\">>,{term}}}] in limits")));
    }
    let value = integer(&body, "value")
        .map_err(|_| {
            validation(format!("{name} should be a number, actually was {}", erlang_term(&body["value"])))
        })?
        .and_then(|n| u64::try_from(n).ok());
    blocking(move || change(&s, &vhost, &name, value).map(|()| no_content())).await
}

/// Removes one limit; 204 whether or not it was set.
pub async fn delete(
    State(s): State<AdminState>,
    caller: Caller,
    Params((vhost, name)): Params<(String, String)>,
) -> Result<Response> {
    caller.require_admin()?;
    blocking(move || change(&s, &vhost, &name, None).map(|()| no_content())).await
}
