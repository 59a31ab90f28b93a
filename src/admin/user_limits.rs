//! `/api/user-limits`: `max-connections` and `max-channels` per user, in
//! RabbitMQ's shape (`[{"user":"u","value":{"max-connections":10}}]`).
//! Lists are for any management user, as in RabbitMQ; changes are for
//! administrators. A negative value means no limit and is kept as given.

use axum::extract::State;
use axum::response::Response;
use serde_json::{json, Value};

use super::auth::Caller;
use super::error::{ApiError, Result};
use super::input::{integer, require, JsonBody, Params};
use super::{blocking, json, no_content, store_failed, AdminState};
use crate::access::{AccessError, UserInfo, UserLimits};
use crate::broker::policy::erlang_term;

fn row(u: &UserInfo) -> Option<Value> {
    (!u.limits.is_empty()).then(|| json!({"user": u.name, "value": u.limits}))
}

pub async fn list(State(s): State<AdminState>, _caller: Caller) -> Result<Response> {
    let mut users = s.access.users();
    users.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(json(Value::Array(users.iter().filter_map(row).collect())))
}

pub async fn show(
    State(s): State<AdminState>,
    _caller: Caller,
    Params(user): Params<String>,
) -> Result<Response> {
    let u = s.access.user(&user).ok_or(ApiError::NotFound)?;
    Ok(json(Value::Array(row(&UserInfo::of(&u)).into_iter().collect())))
}

/// Sets or clears (`value` None) one limit of `user`.
fn change(s: &AdminState, user: &str, name: &str, value: Option<i64>) -> Result<()> {
    let found = s
        .access
        .update_user_limits(user, |limits| {
            if let Some(slot) = limits.slot(name) {
                *slot = value;
            }
        })
        .map_err(|e| match e {
            AccessError::Store => store_failed("the change could not be written to disk"),
            other => ApiError::bad_request(other.to_string()),
        })?;
    if found {
        Ok(())
    } else {
        Err(ApiError::bad_request(format!("no_such_user: {user}")))
    }
}

/// `PUT /api/user-limits/{user}/{name} {"value": N}`: 204, new or not.
pub async fn put(
    State(s): State<AdminState>,
    caller: Caller,
    Params((user, name)): Params<(String, String)>,
    JsonBody(body): JsonBody,
) -> Result<Response> {
    caller.require_admin()?;
    require(&body, &["value"])?;
    if UserLimits::default().slot(&name).is_none() {
        let term = erlang_term(&body["value"]);
        return Err(ApiError::bad_request(format!(
            "Unrecognised terms [{{<<\"{name}\">>,{term}}}] in user-limits"
        )));
    }
    let value = integer(&body, "value").map_err(|_| {
        ApiError::bad_request(format!(
            "{name} should be a number, actually was {}",
            erlang_term(&body["value"])
        ))
    })?;
    blocking(move || change(&s, &user, &name, value).map(|()| no_content())).await
}

/// Removes one limit; 204 whether or not it was set.
pub async fn delete(
    State(s): State<AdminState>,
    caller: Caller,
    Params((user, name)): Params<(String, String)>,
) -> Result<Response> {
    caller.require_admin()?;
    if s.access.user(&user).is_none() {
        return Err(ApiError::NotFound);
    }
    blocking(move || change(&s, &user, &name, None).map(|()| no_content())).await
}
