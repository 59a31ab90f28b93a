//! Messages through the API: `POST /api/queues/{vhost}/{name}/get` (fetch
//! up to `count`, at most about 64 MiB of payloads, then ack, requeue or
//! reject them as `ackmode` says) and
//! `POST /api/exchanges/{vhost}/{name}/publish` (`{"routed":bool}`), with
//! message properties as RabbitMQ renders and reads them in JSON. A publish
//! goes through the same routing as `basic.publish`. May use `broker`.

use std::sync::Arc;

use amq_protocol::protocol::basic::AMQPProperties;
use amq_protocol::types::ShortString;
use axum::extract::State;
use axum::response::Response;
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use bytes::Bytes;
use serde_json::{json, Map, Value};

use super::auth::Caller;
use super::error::{ApiError, Result};
use super::input::{integer, require, text, JsonBody, Params};
use super::topology::{authorise, exchange_name, refused, vhost_to_read, API_CONNECTION};
use super::{blocking, json, AdminState};
use crate::access::session::{Action, Resource};
use crate::broker::queue::Queue;
use crate::broker::vhost::Router;
use crate::broker::Message;
use crate::protocol::json::{json_to_table, table_to_json};
use crate::protocol::properties::{encode_header, ContentHeader};
use crate::protocol::AmqpError;

/// What `get` does with what it fetched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum AckMode {
    Ack,
    AckRequeue,
    Reject,
    RejectRequeue,
}

fn ack_mode(s: &str) -> Result<AckMode> {
    Ok(match s {
        "ack_requeue_false" => AckMode::Ack,
        "ack_requeue_true" => AckMode::AckRequeue,
        "reject_requeue_false" => AckMode::Reject,
        "reject_requeue_true" => AckMode::RejectRequeue,
        other => {
            return Err(ApiError::bad_request(format!(
                "Unsupported ackmode '{other}'. Please use ack_requeue_true, ack_requeue_false, \
                 reject_requeue_true or reject_requeue_false."
            )))
        }
    })
}

/// `{"count","ackmode","encoding":"auto"|"base64","truncate"?}`.
pub async fn get(
    State(s): State<AdminState>,
    caller: Caller,
    Params((vhost, name)): Params<(String, String)>,
    JsonBody(body): JsonBody,
) -> Result<Response> {
    let v = vhost_to_read(&s, &caller, &vhost)?;
    let q = v.queue(&name).ok_or(ApiError::NotFound)?;
    require(&body, &["count", "ackmode", "encoding"])?;
    let count = integer(&body, "count")?.unwrap_or(1).max(0);
    let mode = ack_mode(&text(&body, "ackmode")?.unwrap_or_default())?;
    let base64_only = match text(&body, "encoding")?.as_deref() {
        Some("auto") => false,
        Some("base64") => true,
        _ => return Err(ApiError::bad_request("Unsupported encoding. Please use auto or base64.")),
    };
    let truncate = integer(&body, "truncate")?.map(|n| n.max(0) as usize);
    authorise(&s, &caller, &vhost, Resource::Queue, &name, Action::Read)?;
    q.check_access(API_CONNECTION).map_err(refused)?;
    blocking(move || {
        let (items, seqs) = take(&q, count, GET_BUDGET, |m, redelivered, remaining| {
            fetched(m, redelivered, remaining, base64_only, truncate)
        });
        // Settled together, so a requeued message is not fetched twice.
        match mode {
            AckMode::Ack => q.ack(&seqs),
            AckMode::Reject => q.reject(&seqs),
            AckMode::AckRequeue | AckMode::RejectRequeue => q.requeue(&seqs),
        }
        Ok(json(Value::Array(items)))
    })
    .await
}

/// How much one `get` answers with at most: once the payloads it took
/// (as shown, after `truncate` and base64) and their properties pass this,
/// it takes no more (it always takes one, if there is one), so `count`
/// cannot make an answer the size of the queue.
const GET_BUDGET: usize = 64 << 20;

/// What a message costs beyond its payload: the item's fields and keys.
const ITEM_OVERHEAD: usize = 256;

/// Takes up to `count` messages (unsettled), each shown by `show`, until
/// what was shown passes `budget`; the rest stay in the queue untouched.
/// Returns the items and the delivery tags to settle.
fn take(
    q: &Arc<Queue>,
    count: i64,
    budget: usize,
    show: impl Fn(&Message, bool, u32) -> Value,
) -> (Vec<Value>, Vec<u64>) {
    let (mut items, mut seqs, mut used) = (Vec::new(), Vec::new(), 0usize);
    for _ in 0..count {
        if used > budget {
            break;
        }
        let Some((entry, remaining)) = q.get(false) else { break };
        let item = show(&entry.message, entry.redelivered, remaining);
        let payload = item["payload"].as_str().map_or(0, str::len);
        used = used.saturating_add(payload + entry.message.header().len() + ITEM_OVERHEAD);
        seqs.push(entry.seq);
        items.push(item);
    }
    (items, seqs)
}

/// One fetched message as RabbitMQ shows it.
fn fetched(
    m: &Message,
    redelivered: bool,
    remaining: u32,
    base64_only: bool,
    truncate: Option<usize>,
) -> Value {
    let all = m.body();
    let body = &all[..truncate.map_or(all.len(), |n| n.min(all.len()))];
    let (payload, encoding) = match std::str::from_utf8(body) {
        Ok(text) if !base64_only => (text.to_owned(), "string"),
        _ => (STANDARD.encode(body), "base64"),
    };
    json!({
        "payload_bytes": all.len(),
        "redelivered": redelivered,
        "exchange": String::from_utf8_lossy(m.exchange()),
        "routing_key": String::from_utf8_lossy(m.routing_key()),
        "message_count": remaining,
        "properties": properties_to_json(&m.properties()),
        "payload": payload,
        "payload_encoding": encoding,
    })
}

/// The properties that are set; none is `[]`, as RabbitMQ renders it.
pub fn properties_to_json(p: &AMQPProperties) -> Value {
    let mut out = Map::new();
    let mut text = |key: &str, v: &Option<ShortString>| {
        if let Some(v) = v {
            out.insert(key.to_owned(), json!(v.as_str()));
        }
    };
    text("content_type", p.content_type());
    text("content_encoding", p.content_encoding());
    text("correlation_id", p.correlation_id());
    text("reply_to", p.reply_to());
    text("expiration", p.expiration());
    text("message_id", p.message_id());
    text("type", p.kind());
    text("user_id", p.user_id());
    text("app_id", p.app_id());
    text("cluster_id", p.cluster_id());
    if let Some(h) = p.headers() {
        out.insert("headers".to_owned(), table_to_json(h));
    }
    if let Some(d) = p.delivery_mode() {
        out.insert("delivery_mode".to_owned(), json!(d));
    }
    if let Some(n) = p.priority() {
        out.insert("priority".to_owned(), json!(n));
    }
    if let Some(t) = p.timestamp() {
        out.insert("timestamp".to_owned(), json!(t));
    }
    if out.is_empty() {
        json!([])
    } else {
        Value::Object(out)
    }
}

/// Properties from JSON; numbers may come as strings, unknown keys are ignored.
pub fn properties_from_json(props: &Map<String, Value>) -> Result<AMQPProperties> {
    let short = |key: &str| -> Result<Option<ShortString>> {
        match text(props, key)? {
            Some(s) if s.len() > 255 => Err(ApiError::bad_request(format!("{key} is longer than 255 bytes"))),
            Some(s) => Ok(Some(ShortString::from(s))),
            None => Ok(None),
        }
    };
    let octet = |key: &str| -> Result<Option<u8>> {
        match integer(props, key)? {
            Some(n) => u8::try_from(n)
                .map(Some)
                .map_err(|_| ApiError::bad_request(format!("{key} should be between 0 and 255, not {n}"))),
            None => Ok(None),
        }
    };
    let mut p = AMQPProperties::default();
    macro_rules! set {
        ($value:expr, $with:ident) => {
            if let Some(v) = $value {
                p = p.$with(v);
            }
        };
    }
    set!(short("content_type")?, with_content_type);
    set!(short("content_encoding")?, with_content_encoding);
    set!(short("correlation_id")?, with_correlation_id);
    set!(short("reply_to")?, with_reply_to);
    set!(short("expiration")?, with_expiration);
    set!(short("message_id")?, with_message_id);
    set!(short("type")?, with_type);
    set!(short("user_id")?, with_user_id);
    set!(short("app_id")?, with_app_id);
    set!(short("cluster_id")?, with_cluster_id);
    set!(octet("delivery_mode")?, with_delivery_mode);
    set!(octet("priority")?, with_priority);
    match integer(props, "timestamp")? {
        Some(t) if t >= 0 => p = p.with_timestamp(t as u64),
        Some(t) => return Err(ApiError::bad_request(format!("timestamp should not be negative, not {t}"))),
        None => {}
    }
    match props.get("headers") {
        None | Some(Value::Null) => {}
        Some(h @ Value::Object(_)) => {
            let table = json_to_table(h).ok_or_else(|| ApiError::bad_request("headers nest too deep"))?;
            p = p.with_headers(table);
        }
        Some(other) => {
            return Err(ApiError::bad_request(format!("headers should be an object, not {other}")))
        }
    }
    Ok(p)
}

/// A channel's refusal as RabbitMQ's publish endpoint shows it: `406 PRECONDITION_FAILED - …`.
fn channel_refused(e: AmqpError) -> ApiError {
    ApiError::BadRequest(format!("{} {}", e.code(), e.text))
}

/// `{"routing_key","properties","payload","payload_encoding":"string"|"base64"}`.
pub async fn publish(
    State(s): State<AdminState>,
    caller: Caller,
    Params((vhost, segment)): Params<(String, String)>,
    JsonBody(body): JsonBody,
) -> Result<Response> {
    let v = vhost_to_read(&s, &caller, &vhost)?;
    let name = exchange_name(&segment).to_owned();
    require(&body, &["routing_key", "properties", "payload", "payload_encoding"])?;
    let routing_key = text(&body, "routing_key")?.unwrap_or_default();
    if routing_key.len() > 255 {
        return Err(ApiError::bad_request("routing_key is longer than 255 bytes"));
    }
    let payload = text(&body, "payload")?.unwrap_or_default();
    let payload = match text(&body, "payload_encoding")?.as_deref() {
        Some("string") => Bytes::from(payload),
        Some("base64") => Bytes::from(
            STANDARD
                .decode(payload.trim())
                .map_err(|_| ApiError::bad_request("payload is not valid base64"))?,
        ),
        Some(other) => return Err(ApiError::bad_request(format!("unsupported payload_encoding '{other}'"))),
        None => return Err(ApiError::bad_request("[{key_missing,payload_encoding}]")),
    };
    let props = match body.get("properties") {
        Some(Value::Object(m)) => properties_from_json(m)?,
        Some(Value::Array(a)) if a.is_empty() => AMQPProperties::default(),
        _ => return Err(ApiError::bad_request("properties should be an object")),
    };
    if v.exchange(&name).is_none() {
        return Err(ApiError::NotFound);
    }
    authorise(&s, &caller, &vhost, Resource::Exchange, &name, Action::Write)?;
    if let (Some(id), Some(user)) = (props.user_id(), caller.user()) {
        if id.as_str() != user {
            return Err(ApiError::BadRequest(format!(
                "406 PRECONDITION_FAILED - user_id property set to '{id}' but authenticated user was '{user}'"
            )));
        }
    }
    if let Some(e) = props.expiration() {
        crate::broker::queue_args::parse_expiration(e.as_str().as_bytes()).map_err(|why| {
            ApiError::BadRequest(format!("406 PRECONDITION_FAILED - invalid expiration '{e}': {why}"))
        })?;
    }
    let header = encode_header(payload.len() as u64, &props);
    let info = ContentHeader::scan(&header).map_err(channel_refused)?;
    let message =
        Arc::new(Message::new(Bytes::from(name.clone()), Bytes::from(routing_key), header, info, payload));
    blocking(move || {
        let mut router = Router::default();
        let exchange = v.publish_exchange(name.as_bytes(), &mut router).map_err(channel_refused)?;
        let dedup = exchange.dedup().cloned();
        let key = dedup.as_ref().map(|d| d.key_of(&message));
        // The message moves in: the store's id is set on it only while it
        // has one owner.
        let delay = match exchange.delayer() {
            Some(d) => {
                crate::broker::delayed::delay_of(&message).map_err(channel_refused)?.map(|ms| (d.clone(), ms))
            }
            None => None,
        };
        let hand_on = move || {
            v.route(&exchange, &message, &[], &mut router);
            let routed = !router.queues.is_empty();
            // A delayed exchange keeps the message until it is due, as over AMQP.
            if let Some((d, ms)) = delay {
                return (routed, Some(d.schedule(message, ms)));
            }
            if !routed {
                return (false, None);
            }
            let done = v.enqueue(message, &router.queues);
            (true, (!done.rejected).then_some(done.on_disk || done.discarded))
        };
        // A duplicate on a deduplicating exchange is not routed, as over AMQP.
        let routed = match (dedup, key) {
            (Some(d), Some(key)) => d.admit(key, hand_on).unwrap_or(false),
            _ => hand_on().0,
        };
        Ok(json(json!({ "routed": routed })))
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::broker::vhost::QueueDecl;
    use crate::broker::VHost;

    fn queue_of(bodies: &[usize]) -> Arc<Queue> {
        let v = Arc::new(VHost::new("/", None));
        let decl = QueueDecl { name: "q".into(), ..QueueDecl::default() };
        let q = v.declare_queue(decl, API_CONNECTION).unwrap().queue;
        for &n in bodies {
            let header = encode_header(n as u64, &AMQPProperties::default());
            let info = ContentHeader::scan(&header).unwrap();
            let body = Bytes::from(vec![b'x'; n]);
            let m = Arc::new(Message::new(Bytes::new(), Bytes::from("q"), header, info, body));
            v.enqueue(m, std::slice::from_ref(&q));
        }
        q
    }

    fn show(m: &Message, redelivered: bool, remaining: u32) -> Value {
        fetched(m, redelivered, remaining, false, None)
    }

    #[test]
    fn get_stops_once_the_payloads_pass_the_budget() {
        let q = queue_of(&[1000, 1000, 1000, 1000]);
        // 1000 + overhead, then 2 × that passes 1500: two taken, two left.
        let (items, seqs) = take(&q, 1_000_000_000, 1500, show);
        assert_eq!((items.len(), seqs.len()), (2, 2));
        assert_eq!(items[1]["message_count"], 2);
        let info = q.info();
        assert_eq!((info.ready, info.unacked), (2, 2), "the rest untouched");
        q.requeue(&seqs);
        // At least one, however small the budget; `count` still bounds it.
        assert_eq!(take(&q, 10, 0, show).0.len(), 1);
        assert_eq!(take(&q, 2, usize::MAX, show).0.len(), 2);
        let (_, seqs) = take(&q, 0, usize::MAX, show);
        assert!(seqs.is_empty());
    }
}
