//! What the queue, exchange and binding handlers share: who may touch a
//! resource (the caller's permissions in its vhost, as RabbitMQ checks
//! them), finding the vhost a path names, reading the flags and arguments
//! of a declare body leniently, and showing the broker's refusals as the
//! HTTP answers RabbitMQ's management API gives. May use `broker`, `access`.

use std::sync::Arc;

use amq_protocol::types::FieldTable;
use serde_json::{json, Map, Value};

use super::auth::Caller;
use super::error::{ApiError, Result};
use super::input::QueryPairs;
use super::{json, listing, AdminState};
use crate::access::session::{Action, Resource};
use crate::broker::consumer::ConnectionId;
use crate::broker::VHost;
use crate::protocol::json::json_to_table;
use crate::protocol::{AmqpError, ErrorKind};
use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};

/// The connection the API acts as: none (real connections count from 1),
/// so it owns no exclusive queue.
pub const API_CONNECTION: ConnectionId = 0;

/// RabbitMQ's answer when a permission is missing.
pub const ACCESS_REFUSED: ApiError = ApiError::NotAuthorised("Access refused.");

/// The exchange a URL segment names: the default exchange is `amq.default`.
pub fn exchange_name(segment: &str) -> &str {
    if segment == "amq.default" {
        ""
    } else {
        segment
    }
}

/// Refuses unless the caller holds `action` on the resource in `vhost`.
/// The local socket's administrator may do anything.
pub fn authorise(
    s: &AdminState,
    caller: &Caller,
    vhost: &str,
    resource: Resource,
    name: &str,
    action: Action,
) -> Result<()> {
    let Some(user) = caller.user() else { return Ok(()) };
    s.access.session(user, vhost).check(resource, name, action).map_err(|_| ACCESS_REFUSED)
}

/// The vhost a read or a delete names: 404 if it is not there, 401 if the
/// caller may not see it.
pub fn vhost_to_read(s: &AdminState, caller: &Caller, name: &str) -> Result<Arc<VHost>> {
    let v = s.broker.vhost(name).ok_or(ApiError::NotFound)?;
    if caller.sees_vhost(&s.access, name) {
        Ok(v)
    } else {
        Err(ApiError::NOT_AUTHORISED_VHOST)
    }
}

/// The vhost a declare names: RabbitMQ's `vhost_not_found` if it is not there.
pub fn vhost_to_change(s: &AdminState, name: &str) -> Result<Arc<VHost>> {
    s.broker.vhost(name).ok_or(ApiError::VhostNotFound)
}

/// The vhosts a list covers: one (404 / 401 as for a read) or every one the
/// caller sees.
pub fn vhosts_to_list(s: &AdminState, caller: &Caller, only: Option<&str>) -> Result<Vec<Arc<VHost>>> {
    match only {
        Some(name) => Ok(vec![vhost_to_read(s, caller, name)?]),
        None => Ok(s.broker.vhosts().into_iter().filter(|v| caller.sees_vhost(&s.access, &v.name)).collect()),
    }
}

/// Refuses a queue or exchange name AMQP cannot carry (a short string:
/// at most 255 bytes), with RabbitMQ's text (its trailing newline too).
pub fn short_name(what: &str, name: &str) -> Result<()> {
    if name.len() > 255 {
        return Err(ApiError::BadRequest(format!(
            "{what} should be less than 255 bytes, actually was {}\n",
            name.len()
        )));
    }
    Ok(())
}

/// A flag of a declare body: a bool or v1's `"true"` / `"false"`.
pub fn flag(body: &Map<String, Value>, key: &str) -> Result<Option<bool>> {
    match body.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(Value::String(s)) if s.eq_ignore_ascii_case("true") => Ok(Some(true)),
        Some(Value::String(s)) if s.eq_ignore_ascii_case("false") => Ok(Some(false)),
        Some(v) => Err(ApiError::bad_request(format!("{key} should be true or false, not {v}"))),
    }
}

/// The `arguments` of a body as a field table (missing: empty).
pub fn arguments(body: &Map<String, Value>) -> Result<FieldTable> {
    match body.get("arguments") {
        None | Some(Value::Null) => Ok(FieldTable::default()),
        // v1 and some scripts send `""` for "no arguments".
        Some(Value::String(s)) if s.is_empty() => Ok(FieldTable::default()),
        Some(v @ Value::Object(_)) => json_to_table(v)
            .ok_or_else(|| ApiError::bad_request("arguments cannot be held in a field table (too deep?)")),
        Some(v) => Err(ApiError::bad_request(format!("arguments should be an object, not {v}"))),
    }
}

/// What the broker refused, as RabbitMQ's API shows it: permission
/// refusals 401 "Access refused.", missing objects 404, the rest a 400
/// with the reply text after its code (`inequivalent arg 'durable' …`).
pub fn refused(e: AmqpError) -> ApiError {
    match e.kind {
        ErrorKind::AccessRefused => ACCESS_REFUSED,
        ErrorKind::NotFound => ApiError::NotFound,
        _ => ApiError::BadRequest(detail(&e).to_owned()),
    }
}

/// A reply text without its `CODE - ` prefix.
pub fn detail(e: &AmqpError) -> &str {
    e.text.split_once(" - ").map_or(e.text.as_str(), |(_, d)| d)
}

/// Answers a list query over `objects` (sorted by vhost and name): a whole
/// list in that order is written item by item; a page is cut from stubs
/// (name, vhost and, unless it is sorted by name or vhost, the sort key as
/// `sort_key` reads it cheaply) and only its items are made in full; a page
/// sorted by a key `sort_key` does not know (None), and a whole list in
/// another order, makes every item.
pub fn answer_list<T: Named>(
    objects: &[T],
    query: &QueryPairs,
    full: impl Fn(&T) -> Value,
    sort_key: impl Fn(&T, &str) -> Option<Value>,
) -> Result<Response> {
    if listing::streamable(query) {
        let body = listing::stream(objects.iter().map(full), query)?;
        return Ok(([(CONTENT_TYPE, "application/json")], body).into_response());
    }
    paged(objects, query, full, sort_key).map(json)
}

fn paged<T: Named>(
    objects: &[T],
    query: &QueryPairs,
    full: impl Fn(&T) -> Value,
    sort_key: impl Fn(&T, &str) -> Option<Value>,
) -> Result<Value> {
    let Some(stubs) =
        query.get("page").and_then(|_| stubs(objects, query.get("sort").unwrap_or(""), sort_key))
    else {
        return listing::answer(objects.iter().map(full).collect(), query, true);
    };
    let without_columns = QueryPairs(query.0.iter().filter(|(k, _)| k != "columns").cloned().collect());
    let mut page = listing::answer(stubs, &without_columns, true)?;
    let Some(wrapper) = page.as_object_mut() else { return Ok(page) };
    let picked: Vec<Value> = wrapper
        .get("items")
        .and_then(Value::as_array)
        .map(|items| {
            items
                .iter()
                .filter_map(|stub| stub["#"].as_u64().and_then(|i| objects.get(i as usize)))
                .map(&full)
                .collect()
        })
        .unwrap_or_default();
    let only_columns = QueryPairs(query.0.iter().filter(|(k, _)| k == "columns").cloned().collect());
    wrapper.insert("items".to_owned(), listing::answer(picked, &only_columns, false)?);
    Ok(page)
}

/// `{name, vhost, #: index}` of each object, with the sort key at its
/// dot-path unless that is the name or vhost; None if `sort_key` does not
/// know the key (for any object).
fn stubs<T: Named>(
    objects: &[T],
    key: &str,
    sort_key: impl Fn(&T, &str) -> Option<Value>,
) -> Option<Vec<Value>> {
    let by_name = matches!(key, "" | "name" | "vhost");
    objects
        .iter()
        .enumerate()
        .map(|(i, o)| {
            let mut stub = Map::with_capacity(4);
            if !by_name {
                let value = sort_key(o, key)?;
                // `a.b.c` = v → {"a": {"b": {"c": v}}}, as `listing` picks it.
                let nested = key.rsplit('.').fold(value, |inner, k| {
                    let mut m = Map::with_capacity(1);
                    m.insert(k.to_owned(), inner);
                    Value::Object(m)
                });
                if let Value::Object(top) = nested {
                    stub.extend(top);
                }
            }
            stub.insert("name".to_owned(), json!(o.name()));
            stub.insert("vhost".to_owned(), json!(o.vhost()));
            stub.insert("#".to_owned(), json!(i));
            Some(Value::Object(stub))
        })
        .collect()
}

/// What a cheap page is cut by.
pub trait Named {
    fn name(&self) -> &str;
    fn vhost(&self) -> &str;
}

impl Named for Arc<crate::broker::queue::Queue> {
    fn name(&self) -> &str {
        &self.name
    }
    fn vhost(&self) -> &str {
        &self.vhost
    }
}

/// An exchange with the vhost it is in.
impl Named for (Arc<VHost>, Arc<crate::broker::exchange::Exchange>) {
    fn name(&self) -> &str {
        &self.1.name
    }
    fn vhost(&self) -> &str {
        &self.0.name
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn flags_and_arguments_are_read_leniently() {
        let body = json!({"a": "true", "b": false, "c": "FALSE", "d": 1, "arguments": {"x-max-length": 3}});
        let body = body.as_object().unwrap();
        assert_eq!(flag(body, "a").unwrap(), Some(true));
        assert_eq!(flag(body, "b").unwrap(), Some(false));
        assert_eq!(flag(body, "c").unwrap(), Some(false));
        assert_eq!(flag(body, "none").unwrap(), None);
        assert!(flag(body, "d").is_err());
        assert_eq!(arguments(body).unwrap().inner().len(), 1);
        assert!(arguments(json!({"arguments": [1]}).as_object().unwrap()).is_err());
        assert!(arguments(json!({"arguments": ""}).as_object().unwrap()).unwrap().inner().is_empty());
    }

    #[test]
    fn refusals_are_shown_as_rabbitmq_does() {
        assert_eq!(refused(AmqpError::access_refused("x")), ACCESS_REFUSED);
        assert_eq!(refused(AmqpError::not_found("x")), ApiError::NotFound);
        assert_eq!(
            refused(AmqpError::precondition_failed("queue 'q' in vhost '/' in use")),
            ApiError::bad_request("queue 'q' in vhost '/' in use")
        );
        assert_eq!(exchange_name("amq.default"), "");
        assert_eq!(exchange_name("x"), "x");
    }
}
