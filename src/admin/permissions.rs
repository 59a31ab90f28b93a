//! `/api/permissions` and `/api/topic-permissions` (and the per-user and
//! per-vhost lists under `/api/users/{u}` and `/api/vhosts/{vh}`), all for
//! administrators, as in RabbitMQ. Setting one for a user or vhost that
//! does not exist is RabbitMQ's 400 `vhost_or_user_not_found`; a pattern
//! that does not compile is a 400 saying why.

use axum::extract::State;
use axum::response::Response;
use serde_json::{Map, Value};

use super::auth::Caller;
use super::error::{ApiError, Result};
use super::input::{require, text, JsonBody, Params, QueryPairs};
use super::users::access_failed;
use super::{blocking, json, listing, no_content, put_answer, AdminState};
use crate::access::PermissionInfo;

fn rows<T: serde::Serialize>(items: impl IntoIterator<Item = T>) -> Vec<Value> {
    items.into_iter().map(|i| serde_json::to_value(i).expect("plain struct serialises")).collect()
}

/// A list that is 404 when `exists` is false (the user or vhost asked about).
fn answer_for<T: serde::Serialize>(exists: bool, items: Vec<T>, query: &QueryPairs) -> Result<Response> {
    if !exists {
        return Err(ApiError::NotFound);
    }
    listing::answer(rows(items), query, false).map(json)
}

/// A field that must be there, as text.
fn field(body: &Map<String, Value>, key: &str) -> Result<String> {
    text(body, key)?.ok_or_else(|| ApiError::bad_request(format!("[{{key_missing,{key}}}]")))
}

/// Both the vhost and the user must exist (RabbitMQ's one 400 for either).
fn check_pair(s: &AdminState, vhost: &str, user: &str) -> Result<()> {
    if s.broker.vhost(vhost).is_none() || s.access.user(user).is_none() {
        return Err(ApiError::bad_request("vhost_or_user_not_found"));
    }
    Ok(())
}

pub async fn list(State(s): State<AdminState>, caller: Caller, query: QueryPairs) -> Result<Response> {
    caller.require_admin()?;
    answer_for(true, s.access.permissions(), &query)
}

pub async fn of_user(
    State(s): State<AdminState>,
    caller: Caller,
    Params(user): Params<String>,
    query: QueryPairs,
) -> Result<Response> {
    caller.require_admin()?;
    let items: Vec<_> = s.access.permissions().into_iter().filter(|p| p.user == user).collect();
    answer_for(s.access.user(&user).is_some(), items, &query)
}

pub async fn in_vhost(
    State(s): State<AdminState>,
    caller: Caller,
    Params(vhost): Params<String>,
    query: QueryPairs,
) -> Result<Response> {
    caller.require_admin()?;
    let items: Vec<_> = s.access.permissions().into_iter().filter(|p| p.vhost == vhost).collect();
    answer_for(s.broker.vhost(&vhost).is_some(), items, &query)
}

pub async fn show(
    State(s): State<AdminState>,
    caller: Caller,
    Params((vhost, user)): Params<(String, String)>,
) -> Result<Response> {
    caller.require_admin()?;
    let p = s.access.permission(&vhost, &user).ok_or(ApiError::NotFound)?;
    Ok(json(serde_json::to_value(PermissionInfo::of(&vhost, &user, &p)).expect("plain struct serialises")))
}

/// `{"configure","write","read"}`, all three required.
pub async fn put(
    State(s): State<AdminState>,
    caller: Caller,
    Params((vhost, user)): Params<(String, String)>,
    JsonBody(body): JsonBody,
) -> Result<Response> {
    caller.require_admin()?;
    require(&body, &["configure", "write", "read"])?;
    let (configure, write, read) =
        (field(&body, "configure")?, field(&body, "write")?, field(&body, "read")?);
    blocking(move || {
        check_pair(&s, &vhost, &user)?;
        // Under the vhost's life: a permission must not outlive a vhost deleted meanwhile.
        let created = s
            .broker
            .with_vhost(&vhost, |_| s.access.set_permission(&vhost, &user, &configure, &write, &read))
            .ok_or(ApiError::NotFound)?
            .map_err(access_failed)?;
        Ok(put_answer(created))
    })
    .await
}

pub async fn delete(
    State(s): State<AdminState>,
    caller: Caller,
    Params((vhost, user)): Params<(String, String)>,
) -> Result<Response> {
    caller.require_admin()?;
    match blocking(move || s.access.clear_permission(&vhost, &user).map_err(access_failed)).await? {
        true => Ok(no_content()),
        false => Err(ApiError::NotFound),
    }
}

pub async fn topic_list(State(s): State<AdminState>, caller: Caller, query: QueryPairs) -> Result<Response> {
    caller.require_admin()?;
    answer_for(true, s.access.topic_permissions(), &query)
}

pub async fn topic_of_user(
    State(s): State<AdminState>,
    caller: Caller,
    Params(user): Params<String>,
    query: QueryPairs,
) -> Result<Response> {
    caller.require_admin()?;
    let items: Vec<_> = s.access.topic_permissions().into_iter().filter(|p| p.user == user).collect();
    answer_for(s.access.user(&user).is_some(), items, &query)
}

pub async fn topic_in_vhost(
    State(s): State<AdminState>,
    caller: Caller,
    Params(vhost): Params<String>,
    query: QueryPairs,
) -> Result<Response> {
    caller.require_admin()?;
    let items: Vec<_> = s.access.topic_permissions().into_iter().filter(|p| p.vhost == vhost).collect();
    answer_for(s.broker.vhost(&vhost).is_some(), items, &query)
}

/// A user's topic permissions in a vhost (for one exchange, or all); 404 if none.
fn topic_rows(s: &AdminState, vhost: &str, user: &str, exchange: Option<&str>) -> Result<Response> {
    let items: Vec<_> = s
        .access
        .topic_permissions()
        .into_iter()
        .filter(|p| p.vhost == vhost && p.user == user && exchange.is_none_or(|x| p.exchange == x))
        .collect();
    answer_for(!items.is_empty(), items, &QueryPairs::default())
}

pub async fn topic_show(
    State(s): State<AdminState>,
    caller: Caller,
    Params((vhost, user)): Params<(String, String)>,
) -> Result<Response> {
    caller.require_admin()?;
    topic_rows(&s, &vhost, &user, None)
}

pub async fn topic_show_one(
    State(s): State<AdminState>,
    caller: Caller,
    Params((vhost, user, exchange)): Params<(String, String, String)>,
) -> Result<Response> {
    caller.require_admin()?;
    topic_rows(&s, &vhost, &user, Some(&exchange))
}

/// `{"exchange","write","read"}`, all three required. As RabbitMQ, 201 only
/// when the user had no topic permissions in the vhost before.
pub async fn topic_put(
    State(s): State<AdminState>,
    caller: Caller,
    Params((vhost, user)): Params<(String, String)>,
    JsonBody(body): JsonBody,
) -> Result<Response> {
    caller.require_admin()?;
    require(&body, &["exchange", "write", "read"])?;
    let (exchange, write, read) = (field(&body, "exchange")?, field(&body, "write")?, field(&body, "read")?);
    blocking(move || {
        check_pair(&s, &vhost, &user)?;
        let first = s.access.topic_permissions_of(&vhost, &user).is_none_or(|l| l.is_empty());
        s.broker
            .with_vhost(&vhost, |_| s.access.set_topic_permission(&vhost, &user, &exchange, &write, &read))
            .ok_or(ApiError::NotFound)?
            .map_err(access_failed)?;
        Ok(put_answer(first))
    })
    .await
}

/// Clears a user's topic permissions in a vhost: all of them, or those of
/// the exchange named by `?exchange=` (what warrenctl sends).
pub async fn topic_delete(
    State(s): State<AdminState>,
    caller: Caller,
    Params((vhost, user)): Params<(String, String)>,
    query: QueryPairs,
) -> Result<Response> {
    caller.require_admin()?;
    let exchange = query.get("exchange").map(str::to_owned);
    clear_topic(s, vhost, user, exchange).await
}

pub async fn topic_delete_one(
    State(s): State<AdminState>,
    caller: Caller,
    Params((vhost, user, exchange)): Params<(String, String, String)>,
) -> Result<Response> {
    caller.require_admin()?;
    clear_topic(s, vhost, user, Some(exchange)).await
}

async fn clear_topic(
    s: AdminState,
    vhost: String,
    user: String,
    exchange: Option<String>,
) -> Result<Response> {
    let cleared = blocking(move || {
        s.access.clear_topic_permissions(&vhost, &user, exchange.as_deref()).map_err(access_failed)
    })
    .await?;
    if cleared {
        Ok(no_content())
    } else {
        Err(ApiError::NotFound)
    }
}
