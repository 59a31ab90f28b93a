//! `/api/queues`: list (all, `/api/queues/` as Flower asks, per vhost),
//! show one (with its consumers), declare (201 made, 204 already there as
//! asked, 400 with RabbitMQ's `inequivalent arg` text otherwise), delete
//! (`if-empty`, `if-unused`), purge, its bindings, and `get`
//! (`queue_get`). Lists are sorted by vhost and name; a page is cut from
//! the names (and, sorted by a depth, count or rate, that one figure of
//! each queue) before the rest of any queue's figures are read, so one
//! page of 100,000 queues costs 100 items.

use std::sync::Arc;

use axum::extract::State;
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;

use super::auth::Caller;
use super::error::{ApiError, Result};
use super::input::{JsonBody, Params, QueryPairs};
use super::queue_item::{item, sort_key, Shape};
use super::topology::{
    answer_list, arguments, authorise, flag, refused, short_name, vhost_to_change, vhost_to_read,
    vhosts_to_list, API_CONNECTION,
};
use super::{bindings, blocking, json, messages, no_content, put_answer, AdminState};
use crate::access::session::{Action, Resource};
use crate::broker::queue::Queue;
use crate::broker::vhost::QueueDecl;

pub fn routes() -> Router<AdminState> {
    Router::new()
        .route("/api/queues", get(list))
        .route("/api/queues/", get(list))
        .route("/api/queues/{vhost}", get(list_in))
        .route("/api/queues/{vhost}/{name}", get(show).put(put).delete(delete))
        .route("/api/queues/{vhost}/{name}/contents", axum::routing::delete(purge))
        .route("/api/queues/{vhost}/{name}/bindings", get(bindings::of_queue))
        .route("/api/queues/{vhost}/{name}/get", post(messages::get))
        .route("/api/queues/{vhost}/{name}/move", post(super::move_messages::move_messages))
}

async fn list(State(s): State<AdminState>, caller: Caller, query: QueryPairs) -> Result<Response> {
    // Off the async workers: a list visits every queue.
    blocking(move || answer(&s, &caller, None, &query)).await
}

async fn list_in(
    State(s): State<AdminState>,
    caller: Caller,
    Params(vhost): Params<String>,
    query: QueryPairs,
) -> Result<Response> {
    blocking(move || answer(&s, &caller, Some(&vhost), &query)).await
}

fn answer(s: &AdminState, caller: &Caller, only: Option<&str>, query: &QueryPairs) -> Result<Response> {
    let mut queues: Vec<Arc<Queue>> =
        vhosts_to_list(s, caller, only)?.iter().flat_map(|v| v.queues()).collect();
    queues.sort_unstable_by(|a, b| (&a.vhost, &a.name).cmp(&(&b.vhost, &b.name)));
    let shape = if query.get("disable_stats").is_some_and(|v| v.eq_ignore_ascii_case("true")) {
        Shape::Slim
    } else {
        Shape::Full
    };
    answer_list(&queues, query, |q| item(s, q, shape), |q, key| sort_key(q, shape, key))
}

async fn show(
    State(s): State<AdminState>,
    caller: Caller,
    Params((vhost, name)): Params<(String, String)>,
) -> Result<Response> {
    let v = vhost_to_read(&s, &caller, &vhost)?;
    let q = v.queue(&name).ok_or(ApiError::NotFound)?;
    Ok(json(item(&s, &q, Shape::Detail)))
}

/// `{"durable","auto_delete","arguments"}`, flags as bools or strings;
/// both flags default to false, as in RabbitMQ.
async fn put(
    State(s): State<AdminState>,
    caller: Caller,
    Params((vhost, name)): Params<(String, String)>,
    JsonBody(body): JsonBody,
) -> Result<Response> {
    short_name("queue", &name)?;
    let v = vhost_to_change(&s, &vhost)?;
    authorise(&s, &caller, &vhost, Resource::Queue, &name, Action::Configure)?;
    if name.is_empty() {
        return Err(ApiError::NotFound);
    }
    let decl = QueueDecl {
        name: name.clone(),
        durable: flag(&body, "durable")?.unwrap_or(false),
        auto_delete: flag(&body, "auto_delete")?.unwrap_or(false),
        arguments: arguments(&body)?,
        ..QueueDecl::default()
    };
    blocking(move || {
        let existed = v.queue(&name).is_some();
        v.declare_queue(decl, API_CONNECTION).map_err(refused)?;
        Ok(put_answer(!existed))
    })
    .await
}

fn query_flag(query: &QueryPairs, key: &str) -> bool {
    query.get(key).is_some_and(|v| v.eq_ignore_ascii_case("true"))
}

async fn delete(
    State(s): State<AdminState>,
    caller: Caller,
    Params((vhost, name)): Params<(String, String)>,
    query: QueryPairs,
) -> Result<Response> {
    let v = vhost_to_read(&s, &caller, &vhost)?;
    let q = v.queue(&name).ok_or(ApiError::NotFound)?;
    authorise(&s, &caller, &vhost, Resource::Queue, &name, Action::Configure)?;
    let (if_unused, if_empty) = (query_flag(&query, "if-unused"), query_flag(&query, "if-empty"));
    blocking(move || {
        // The API may delete an exclusive queue, as RabbitMQ's does.
        let owner = q.exclusive_owner.unwrap_or(API_CONNECTION);
        v.delete_queue(&name, if_unused, if_empty, owner).map_err(refused)?;
        Ok(no_content())
    })
    .await
}

async fn purge(
    State(s): State<AdminState>,
    caller: Caller,
    Params((vhost, name)): Params<(String, String)>,
) -> Result<Response> {
    let v = vhost_to_read(&s, &caller, &vhost)?;
    let q = v.queue(&name).ok_or(ApiError::NotFound)?;
    authorise(&s, &caller, &vhost, Resource::Queue, &name, Action::Read)?;
    blocking(move || {
        v.purge_queue(&name, q.exclusive_owner.unwrap_or(API_CONNECTION)).map_err(refused)?;
        Ok(no_content())
    })
    .await
}
