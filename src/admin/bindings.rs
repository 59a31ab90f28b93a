//! `/api/bindings`: list (all, per vhost, between one source and one
//! destination), create (201 with a `Location` naming its properties key),
//! show and delete one by properties key; also the bindings of a queue and
//! of an exchange as source or destination. Every queue's implicit binding
//! from the default exchange is listed, as RabbitMQ does. The properties
//! key is RabbitMQ's: the url-quoted routing key (`~` for an empty one), and
//! with arguments `key~hash` (our own stable hash of them).

use amq_protocol::types::FieldTable;
use axum::extract::State;
use axum::http::header::LOCATION;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde_json::{json, Value};

use super::auth::Caller;
use super::error::{ApiError, Result};
use super::input::{text, JsonBody, Params, QueryPairs};
use super::topology::{
    arguments, authorise, exchange_name, refused, vhost_to_read, vhosts_to_list, API_CONNECTION,
};
use super::{blocking, json, listing, no_content, AdminState};
use crate::access::session::{Action, Resource};
use crate::broker::exchange::Destination;
use crate::broker::VHost;
use crate::protocol::json::table_to_json;

pub fn routes() -> Router<AdminState> {
    Router::new()
        .route("/api/bindings", get(list))
        .route("/api/bindings/", get(list))
        .route("/api/bindings/{vhost}", get(list_in))
        .route("/api/bindings/{vhost}/e/{source}/{kind}/{destination}", get(between).post(create))
        .route("/api/bindings/{vhost}/e/{source}/{kind}/{destination}/{props}", get(show).delete(delete))
}

/// One binding, with names.
#[derive(Debug, Clone)]
struct Row {
    source: String,
    destination: String,
    to_queue: bool,
    key: String,
    arguments: FieldTable,
}

impl Row {
    fn properties_key(&self) -> String {
        properties_key(&self.key, &self.arguments)
    }

    fn item(&self, vhost: &str) -> Value {
        json!({
            "source": self.source,
            "vhost": vhost,
            "destination": self.destination,
            "destination_type": if self.to_queue { "queue" } else { "exchange" },
            "routing_key": self.key,
            "arguments": table_to_json(&self.arguments),
            "properties_key": self.properties_key(),
        })
    }
}

/// RabbitMQ's `pack_binding_props`: `~` for an empty key without
/// arguments, else the quoted key, then `~` and a hash of any arguments.
pub fn properties_key(key: &str, args: &FieldTable) -> String {
    if args.inner().is_empty() {
        return if key.is_empty() { "~".to_owned() } else { quote_plus(key) };
    }
    // serde_json's maps are sorted: the same arguments always hash alike.
    let text = table_to_json(args).to_string();
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for b in text.bytes() {
        hash = (hash ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
    }
    format!("{}~{}", quote_plus(key), URL_SAFE_NO_PAD.encode(&hash.to_be_bytes()[..6]))
}

/// Python's `quote_plus` as RabbitMQ uses it (`~` quoted too).
fn quote_plus(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' => out.push(b as char),
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// A path segment, percent-encoded (`~` kept, as RabbitMQ's `Location`).
fn path_segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => out.push(b as char),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// Every binding in `v`, the default exchange's first, sorted as RabbitMQ lists them.
fn rows(v: &VHost) -> Vec<Row> {
    let mut rows: Vec<Row> = v
        .queues()
        .iter()
        .map(|q| Row {
            source: String::new(),
            destination: q.name.clone(),
            to_queue: true,
            key: q.name.clone(),
            arguments: FieldTable::default(),
        })
        .collect();
    for x in v.exchanges().iter().filter(|x| !x.name.is_empty()) {
        rows.extend(x.bindings().into_iter().map(|b| {
            let (destination, to_queue) = match &b.destination {
                Destination::Queue(q) => (q.name.clone(), true),
                Destination::Exchange(e) => (e.name.clone(), false),
            };
            Row { source: x.name.clone(), destination, to_queue, key: b.key, arguments: b.arguments }
        }));
    }
    rows.sort_by(|a, b| {
        (&a.source, &a.destination, !a.to_queue, &a.key).cmp(&(
            &b.source,
            &b.destination,
            !b.to_queue,
            &b.key,
        ))
    });
    rows
}

fn answer(rows: &[Row], vhost: &str, keep: impl Fn(&Row) -> bool, query: &QueryPairs) -> Result<Response> {
    let items = rows.iter().filter(|r| keep(r)).map(|r| r.item(vhost)).collect();
    listing::answer(items, query, false).map(json)
}

async fn list(State(s): State<AdminState>, caller: Caller, query: QueryPairs) -> Result<Response> {
    // Off the async workers: every queue has a binding to list.
    blocking(move || {
        let items = vhosts_to_list(&s, &caller, None)?
            .iter()
            .flat_map(|v| rows(v).into_iter().map(|r| r.item(&v.name)).collect::<Vec<_>>())
            .collect();
        listing::answer(items, &query, false).map(json)
    })
    .await
}

async fn list_in(
    State(s): State<AdminState>,
    caller: Caller,
    Params(vhost): Params<String>,
    query: QueryPairs,
) -> Result<Response> {
    blocking(move || {
        let v = vhost_to_read(&s, &caller, &vhost)?;
        answer(&rows(&v), &vhost, |_| true, &query)
    })
    .await
}

/// `GET /api/queues/{vhost}/{name}/bindings`.
pub async fn of_queue(
    State(s): State<AdminState>,
    caller: Caller,
    Params((vhost, name)): Params<(String, String)>,
    query: QueryPairs,
) -> Result<Response> {
    let v = vhost_to_read(&s, &caller, &vhost)?;
    v.queue(&name).ok_or(ApiError::NotFound)?;
    answer(&rows(&v), &vhost, |r| r.to_queue && r.destination == name, &query)
}

/// `GET /api/exchanges/{vhost}/{name}/bindings/source`.
pub async fn of_source(
    State(s): State<AdminState>,
    caller: Caller,
    Params((vhost, segment)): Params<(String, String)>,
    query: QueryPairs,
) -> Result<Response> {
    let v = vhost_to_read(&s, &caller, &vhost)?;
    let name = exchange_name(&segment);
    v.exchange(name).ok_or(ApiError::NotFound)?;
    answer(&rows(&v), &vhost, |r| r.source == name, &query)
}

/// `GET /api/exchanges/{vhost}/{name}/bindings/destination`.
pub async fn of_destination(
    State(s): State<AdminState>,
    caller: Caller,
    Params((vhost, segment)): Params<(String, String)>,
    query: QueryPairs,
) -> Result<Response> {
    let v = vhost_to_read(&s, &caller, &vhost)?;
    let name = exchange_name(&segment);
    v.exchange(name).ok_or(ApiError::NotFound)?;
    answer(&rows(&v), &vhost, |r| !r.to_queue && r.destination == name, &query)
}

/// The two ends a path names: `q` or `e` for the destination; both must exist.
fn ends(v: &VHost, source: &str, kind: &str, destination: &str) -> Result<(String, bool)> {
    let to_queue = match kind {
        "q" => true,
        "e" => false,
        _ => return Err(ApiError::NotFound),
    };
    let source = exchange_name(source).to_owned();
    let found = if to_queue {
        v.queue(destination).is_some()
    } else {
        v.exchange(exchange_name(destination)).is_some()
    };
    if v.exchange(&source).is_none() || !found {
        return Err(ApiError::NotFound);
    }
    Ok((source, to_queue))
}

fn matching(v: &VHost, source: &str, destination: &str, to_queue: bool) -> Vec<Row> {
    let mut all = rows(v);
    all.retain(|r| r.source == source && r.destination == destination && r.to_queue == to_queue);
    all
}

type Path4 = (String, String, String, String);

async fn between(
    State(s): State<AdminState>,
    caller: Caller,
    Params((vhost, source, kind, destination)): Params<Path4>,
    query: QueryPairs,
) -> Result<Response> {
    let v = vhost_to_read(&s, &caller, &vhost)?;
    let (source, to_queue) = ends(&v, &source, &kind, &destination)?;
    let destination = if to_queue { destination } else { exchange_name(&destination).to_owned() };
    answer(&matching(&v, &source, &destination, to_queue), &vhost, |_| true, &query)
}

/// Write on the destination and read on the source, as `queue.bind` needs.
fn authorise_binding(s: &AdminState, caller: &Caller, vhost: &str, row: &Row) -> Result<()> {
    let kind = if row.to_queue { Resource::Queue } else { Resource::Exchange };
    authorise(s, caller, vhost, kind, &row.destination, Action::Write)?;
    authorise(s, caller, vhost, Resource::Exchange, &row.source, Action::Read)
}

/// `{"routing_key","arguments"}` → 201, `Location: <destination>/<properties key>`.
async fn create(
    State(s): State<AdminState>,
    caller: Caller,
    Params((vhost, source, kind, destination)): Params<Path4>,
    JsonBody(body): JsonBody,
) -> Result<Response> {
    let v = vhost_to_read(&s, &caller, &vhost)?;
    let (source, to_queue) = ends(&v, &source, &kind, &destination)?;
    let destination = if to_queue { destination } else { exchange_name(&destination).to_owned() };
    let row = Row {
        source,
        destination,
        to_queue,
        key: text(&body, "routing_key")?.unwrap_or_default(),
        arguments: arguments(&body)?,
    };
    if row.key.len() > 255 {
        return Err(ApiError::bad_request("routing_key is longer than 255 bytes"));
    }
    authorise_binding(&s, &caller, &vhost, &row)?;
    let location = format!("{}/{}", path_segment(&row.destination), path_segment(&row.properties_key()));
    blocking(move || {
        let Row { source, destination, key, arguments, .. } = row;
        if to_queue {
            let owner = v.queue(&destination).and_then(|q| q.exclusive_owner).unwrap_or(API_CONNECTION);
            v.bind_queue(&destination, &source, &key, arguments, owner)
        } else {
            v.bind_exchange(&destination, &source, &key, arguments)
        }
        .map_err(refused)?;
        let mut response = StatusCode::CREATED.into_response();
        if let Ok(value) = HeaderValue::from_str(&location) {
            response.headers_mut().insert(LOCATION, value);
        }
        Ok(response)
    })
    .await
}

type Path5 = (String, String, String, String, String);

/// The binding a full path names, with its vhost.
fn one(s: &AdminState, caller: &Caller, path: &Path5) -> Result<(std::sync::Arc<VHost>, Row)> {
    let (vhost, source, kind, destination, props) = path;
    let v = vhost_to_read(s, caller, vhost)?;
    let (source, to_queue) = ends(&v, source, kind, destination)?;
    let destination = if to_queue { destination.clone() } else { exchange_name(destination).to_owned() };
    let row = matching(&v, &source, &destination, to_queue)
        .into_iter()
        .find(|r| r.properties_key() == *props)
        .ok_or(ApiError::NotFound)?;
    Ok((v, row))
}

async fn show(State(s): State<AdminState>, caller: Caller, Params(path): Params<Path5>) -> Result<Response> {
    let (v, row) = one(&s, &caller, &path)?;
    Ok(json(row.item(&v.name)))
}

async fn delete(
    State(s): State<AdminState>,
    caller: Caller,
    Params(path): Params<Path5>,
) -> Result<Response> {
    let (v, row) = one(&s, &caller, &path)?;
    authorise_binding(&s, &caller, &v.name, &row)?;
    blocking(move || {
        let Row { source, destination, to_queue, key, arguments } = row;
        if to_queue {
            v.unbind_queue(&destination, &source, &key, arguments)
        } else {
            v.unbind_exchange(&destination, &source, &key, arguments)
        }
        .map_err(refused)?;
        Ok(no_content())
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use amq_protocol::types::AMQPValue;

    #[test]
    fn properties_keys_are_rabbitmqs() {
        let none = FieldTable::default();
        assert_eq!(properties_key("", &none), "~");
        assert_eq!(properties_key("a.#", &none), "a.%23");
        assert_eq!(properties_key("a b~c", &none), "a+b%7Ec");
        let mut args = FieldTable::default();
        args.insert("x".into(), AMQPValue::LongLongInt(1));
        let k = properties_key("", &args);
        assert!(k.starts_with('~') && k.len() > 1);
        assert_eq!(k, properties_key("", &args.clone()));
        assert!(properties_key("k", &args).starts_with("k~"));
        assert_eq!(path_segment("a.%23"), "a.%2523");
        assert_eq!(path_segment("~x"), "~x");
    }
}
