//! `/api/whoami` and `/api/users`: list, show, create or change, delete,
//! bulk-delete. Deleting a user closes its connections with RabbitMQ's
//! text (`user 'u' is deleted`); changing its password closes them too
//! (`user 'u' password changed`; RabbitMQ leaves them open).

use axum::extract::State;
use axum::response::Response;
use serde_json::{json, Value};

use super::auth::Caller;
use super::error::{ApiError, Result};
use super::input::{require, tags, text, JsonBody, Params, QueryPairs};
use super::{blocking, json, listing, no_content, put_answer, store_failed, AdminState};
use crate::access::{AccessError, Algorithm, Credential, UserInfo};

/// A user as RabbitMQ shows it (with its `limits`, `{}` when none).
fn item(u: UserInfo) -> Value {
    serde_json::to_value(u).expect("plain struct serialises")
}

pub async fn whoami(caller: Caller) -> Response {
    json(json!({"name": caller.name(), "tags": caller.tags()}))
}

pub async fn list(State(s): State<AdminState>, caller: Caller, query: QueryPairs) -> Result<Response> {
    caller.require_admin()?;
    let items = s.access.users().into_iter().map(item).collect();
    listing::answer(items, &query, true).map(json)
}

pub async fn show(
    State(s): State<AdminState>,
    caller: Caller,
    Params(name): Params<String>,
) -> Result<Response> {
    caller.require_admin()?;
    let user = s.access.user(&name).ok_or(ApiError::NotFound)?;
    Ok(json(item(UserInfo::of(&user))))
}

/// The password a PUT body gives: `password`, else `password_hash` (with
/// `hashing_algorithm`, SHA-256 by default, as rabbitmqadmin v2 relies on),
/// else none (an existing user keeps its own). A blank one disables
/// password login, as RabbitMQ's blank hash does.
fn credential(body: &serde_json::Map<String, Value>) -> Result<Option<Credential>> {
    if let Some(password) = text(body, "password")? {
        return Ok(Some(if password.is_empty() { Credential::None } else { Credential::Password(password) }));
    }
    let Some(hash) = text(body, "password_hash")? else { return Ok(None) };
    if hash.is_empty() {
        return Ok(Some(Credential::None));
    }
    let algorithm = text(body, "hashing_algorithm")?
        .filter(|a| !a.is_empty())
        .unwrap_or_else(|| Algorithm::Sha256.name().to_owned());
    Ok(Some(Credential::Hash { hash, algorithm }))
}

pub fn access_failed(e: AccessError) -> ApiError {
    match e {
        AccessError::Invalid(reason) => ApiError::BadRequest(reason),
        AccessError::NoSuchUser(_) => ApiError::bad_request("vhost_or_user_not_found"),
        AccessError::Store => store_failed(e),
    }
}

/// Creates or changes a user. Without `tags` a new user has none and an
/// existing one keeps its own (RabbitMQ 3.10 requires `tags`).
pub async fn put(
    State(s): State<AdminState>,
    caller: Caller,
    Params(name): Params<String>,
    JsonBody(body): JsonBody,
) -> Result<Response> {
    caller.require_admin()?;
    let credential = credential(&body)?;
    let tags = tags(&body, "tags")?;
    blocking(move || {
        let (created, password_changed) =
            s.access.put_user(&name, credential, tags).map_err(access_failed)?;
        if password_changed {
            s.broker.connections.close_where(|c| c.user == name, &format!("user '{name}' password changed"));
        }
        Ok(put_answer(created))
    })
    .await
}

/// Deletes a user and its permissions; its connections are closed.
fn delete_one(s: &AdminState, name: &str) -> Result<bool> {
    let deleted = s.access.delete_user(name).map_err(access_failed)?;
    if deleted {
        s.broker.connections.close_where(|c| c.user == name, &format!("user '{name}' is deleted"));
    }
    Ok(deleted)
}

pub async fn delete(
    State(s): State<AdminState>,
    caller: Caller,
    Params(name): Params<String>,
) -> Result<Response> {
    caller.require_admin()?;
    match blocking(move || delete_one(&s, &name)).await? {
        true => Ok(no_content()),
        false => Err(ApiError::NotFound),
    }
}

/// `POST /api/users/bulk-delete {"users":[…]}`: deletes them in order; as
/// RabbitMQ, stops with a 400 at the first that does not exist.
pub async fn bulk_delete(
    State(s): State<AdminState>,
    caller: Caller,
    JsonBody(body): JsonBody,
) -> Result<Response> {
    caller.require_admin()?;
    require(&body, &["users"])?;
    let names: Vec<String> = match &body["users"] {
        Value::Array(items) => items.iter().map(|v| v.as_str().map(str::to_owned)).collect::<Option<_>>(),
        Value::String(s) => {
            Some(s.split(',').map(|n| n.trim().to_owned()).filter(|n| !n.is_empty()).collect())
        }
        _ => None,
    }
    .ok_or_else(|| ApiError::bad_request("users should be a list of user names"))?;
    blocking(move || {
        for name in &names {
            if !delete_one(&s, name)? {
                return Err(ApiError::bad_request(format!("no_such_user: {name}")));
            }
        }
        Ok(())
    })
    .await?;
    Ok(no_content())
}
