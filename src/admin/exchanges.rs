//! `/api/exchanges`: list (all, per vhost; the default exchange shows as
//! `""` and is `amq.default` in URLs), show one, declare (201 / 204, 400
//! with RabbitMQ's `inequivalent arg` text, 401 "Access refused." for
//! `amq.*` names), delete (`if-unused`), publish (`messages`), and the
//! bindings an exchange is the source or destination of (`bindings`).

use std::sync::Arc;

use axum::extract::State;
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;
use serde_json::{json, Value};

use super::auth::Caller;
use super::error::{ApiError, Result};
use super::input::{text, JsonBody, Params, QueryPairs};
use super::topology::{
    answer_list, arguments, authorise, exchange_name, flag, refused, short_name, vhost_to_change,
    vhost_to_read, vhosts_to_list,
};
use super::{bindings, blocking, json, messages, no_content, put_answer, AdminState};
use crate::access::session::{Action, Resource};
use crate::broker::exchange::{Exchange, ExchangeKind};
use crate::broker::vhost::ExchangeDecl;
use crate::broker::VHost;
use crate::protocol::json::table_to_json;

pub fn routes() -> Router<AdminState> {
    Router::new()
        .route("/api/exchanges", get(list))
        .route("/api/exchanges/", get(list))
        .route("/api/exchanges/{vhost}", get(list_in))
        .route("/api/exchanges/{vhost}/{name}", get(show).put(put).delete(delete))
        .route("/api/exchanges/{vhost}/{name}/publish", post(messages::publish))
        .route("/api/exchanges/{vhost}/{name}/bindings/source", get(bindings::of_source))
        .route("/api/exchanges/{vhost}/{name}/bindings/destination", get(bindings::of_destination))
}

/// The exchanges every vhost starts with were declared by the broker.
fn predeclared(name: &str) -> bool {
    name.is_empty() || matches!(name, "amq.direct" | "amq.fanout" | "amq.topic" | "amq.headers" | "amq.match")
}

pub fn item(vhost: &str, x: &Exchange) -> Value {
    let mut out = json!({
        "name": x.name,
        "vhost": vhost,
        "type": x.kind.as_str(),
        "durable": x.durable,
        "auto_delete": x.auto_delete,
        "internal": x.internal,
        "arguments": table_to_json(&x.arguments),
        // Warren does not record who declared an exchange.
        "user_who_performed_action": if predeclared(&x.name) { "rmq-internal" } else { "" },
    });
    if let Some(p) = x.policy() {
        out["policy"] = json!(p.name);
    }
    // The plugin's info item: messages waiting for their delay.
    if let Some(d) = x.delayer() {
        out["messages_delayed"] = json!(d.pending());
    }
    if let Some(d) = x.dedup() {
        out["messages_deduplicated"] = json!(d.hits());
        out["deduplication_ids"] = json!(d.remembered());
    }
    out
}

async fn list(State(s): State<AdminState>, caller: Caller, query: QueryPairs) -> Result<Response> {
    // Off the async workers: a list visits every exchange.
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
    let mut all: Vec<(Arc<VHost>, Arc<Exchange>)> = vhosts_to_list(s, caller, only)?
        .into_iter()
        .flat_map(|v| v.exchanges().into_iter().map(move |x| (v.clone(), x)))
        .collect();
    all.sort_unstable_by(|a, b| (&a.0.name, &a.1.name).cmp(&(&b.0.name, &b.1.name)));
    // No figure of an exchange is cheaper to sort by than its item.
    answer_list(&all, query, |(v, x)| item(&v.name, x), |_, _| None)
}

async fn show(
    State(s): State<AdminState>,
    caller: Caller,
    Params((vhost, segment)): Params<(String, String)>,
) -> Result<Response> {
    let v = vhost_to_read(&s, &caller, &vhost)?;
    let x = v.exchange(exchange_name(&segment)).ok_or(ApiError::NotFound)?;
    let mut out = item(&vhost, &x);
    out["incoming"] = json!([]);
    out["outgoing"] = json!([]);
    Ok(json(out))
}

/// `{"type","durable","auto_delete","internal","arguments"}`; the type
/// defaults to direct and the flags to false, as in RabbitMQ.
async fn put(
    State(s): State<AdminState>,
    caller: Caller,
    Params((vhost, segment)): Params<(String, String)>,
    JsonBody(body): JsonBody,
) -> Result<Response> {
    let name = exchange_name(&segment).to_owned();
    short_name("exchange", &name)?;
    let v = vhost_to_change(&s, &vhost)?;
    authorise(&s, &caller, &vhost, Resource::Exchange, &name, Action::Configure)?;
    let kind = text(&body, "type")?.unwrap_or_else(|| "direct".to_owned());
    let decl = ExchangeDecl {
        name: name.clone(),
        kind,
        passive: false,
        durable: flag(&body, "durable")?.unwrap_or(false),
        auto_delete: flag(&body, "auto_delete")?.unwrap_or(false),
        internal: flag(&body, "internal")?.unwrap_or(false),
        arguments: arguments(&body)?,
    };
    let existed = v.exchange(&name).is_some();
    if !existed && !name.is_empty() && ExchangeKind::parse(&decl.kind).is_none() {
        return Err(ApiError::BadRequest(format!("unknown exchange type '{}'", decl.kind)));
    }
    blocking(move || {
        v.declare_exchange(decl).map_err(refused)?;
        Ok(put_answer(!existed))
    })
    .await
}

async fn delete(
    State(s): State<AdminState>,
    caller: Caller,
    Params((vhost, segment)): Params<(String, String)>,
    query: QueryPairs,
) -> Result<Response> {
    let v = vhost_to_read(&s, &caller, &vhost)?;
    let name = exchange_name(&segment).to_owned();
    if v.exchange(&name).is_none() {
        return Err(ApiError::NotFound);
    }
    authorise(&s, &caller, &vhost, Resource::Exchange, &name, Action::Configure)?;
    let if_unused = query.get("if-unused").is_some_and(|v| v.eq_ignore_ascii_case("true"));
    blocking(move || {
        v.delete_exchange(&name, if_unused).map_err(refused)?;
        Ok(no_content())
    })
    .await
}
