//! Dead-lettering: the copy of a message a queue republishes to its
//! dead-letter exchange, with the `x-death` history RabbitMQ keeps, and
//! the cycle rule that drops messages dead-lettered in a loop that no
//! client ever rejected.

use amq_protocol::protocol::basic::AMQPProperties;
use amq_protocol::types::{AMQPValue, FieldArray, FieldTable, LongString, ShortString};

use super::message::Message;
use crate::protocol::properties::{encode_header, ContentHeader};
use crate::protocol::table::as_str;

/// Why a message was dead-lettered (the `reason` of its `x-death` entry).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    Rejected,
    Expired,
    Maxlen,
    DeliveryLimit,
}

impl Reason {
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Rejected => "rejected",
            Reason::Expired => "expired",
            Reason::Maxlen => "maxlen",
            Reason::DeliveryLimit => "delivery_limit",
        }
    }
}

/// Where a queue sends its dead letters.
#[derive(Debug, Clone)]
pub struct DeadLetterTarget<'a> {
    pub queue: &'a str,
    pub exchange: &'a str,
    pub routing_key: Option<&'a str>,
}

/// The copy of `m` dead-lettered from `target.queue` for `reason`: its
/// `x-death` entry for (queue, reason) counted up and moved first (or a
/// new one added first), `x-first-death-*` set once, `x-last-death-*`
/// each time, `expiration` removed (kept as `original-expiration`), and
/// with a dead-letter routing key, `CC` removed. `now` is in seconds.
pub fn dead_letter(m: &Message, target: &DeadLetterTarget<'_>, reason: Reason, now: u64) -> Message {
    let props = m.properties();
    let mut headers = props.headers().clone().unwrap_or_default();
    let routing_key = String::from_utf8_lossy(m.routing_key()).into_owned();
    let exchange = String::from_utf8_lossy(m.exchange()).into_owned();
    let mut keys = vec![AMQPValue::LongString(routing_key.clone().into())];
    if let Some(AMQPValue::FieldArray(cc)) = headers.inner().get("CC") {
        keys.extend(cc.as_slice().iter().filter(|v| as_str(v).is_some()).cloned());
    }
    let mut deaths: Vec<AMQPValue> = match headers.inner().get("x-death") {
        Some(AMQPValue::FieldArray(a)) => a.as_slice().to_vec(),
        _ => Vec::new(),
    };
    let same = |d: &AMQPValue| match d {
        AMQPValue::FieldTable(t) => {
            text(t, "queue") == Some(target.queue) && text(t, "reason") == Some(reason.as_str())
        }
        _ => false,
    };
    let entry = match deaths.iter().position(same) {
        Some(at) => {
            let AMQPValue::FieldTable(mut t) = deaths.remove(at) else { unreachable!("matched a table") };
            let count = t.inner().get("count").and_then(crate::protocol::table::as_int).unwrap_or(0);
            t.insert("count".into(), AMQPValue::LongLongInt(count.saturating_add(1)));
            t
        }
        None => {
            let mut t = FieldTable::default();
            t.insert("count".into(), AMQPValue::LongLongInt(1));
            t.insert("reason".into(), long(reason.as_str()));
            t.insert("queue".into(), long(target.queue));
            t.insert("time".into(), AMQPValue::Timestamp(now));
            t.insert("exchange".into(), long(&exchange));
            t.insert("routing-keys".into(), AMQPValue::FieldArray(FieldArray::from(keys)));
            if let Some(e) = props.expiration() {
                t.insert("original-expiration".into(), long(e.as_str()));
            }
            t
        }
    };
    deaths.insert(0, AMQPValue::FieldTable(entry));
    headers.insert("x-death".into(), AMQPValue::FieldArray(FieldArray::from(deaths)));
    for (what, value) in
        [("queue", target.queue), ("reason", reason.as_str()), ("exchange", exchange.as_str())]
    {
        let first = ShortString::from(format!("x-first-death-{what}"));
        if !headers.contains_key(first.as_str()) {
            headers.insert(first, long(value));
        }
        headers.insert(format!("x-last-death-{what}").into(), long(value));
    }
    // A dead-letter routing key replaces the CC keys; the delivery count
    // belongs to the queue the message left.
    let drop: &[&str] =
        if target.routing_key.is_some() { &["CC", "x-delivery-count"] } else { &["x-delivery-count"] };
    if drop.iter().any(|k| headers.contains_key(k)) {
        let mut map = headers.inner().clone();
        map.retain(|k, _| !drop.contains(&k.as_str()));
        headers = FieldTable::from(map);
    }
    let routing_key = target.routing_key.map_or(routing_key, str::to_owned);
    let props = without_expiration(&props).with_headers(headers);
    let header = encode_header(m.body().len() as u64, &props);
    let info = ContentHeader::scan(&header).expect("a header we encoded scans");
    Message::remade(target.exchange.as_bytes(), routing_key.as_bytes(), &header, info, m)
}

/// RabbitMQ's cycle rule: a message dead-lettered for any reason but a
/// rejection is dropped for a queue it already died in, if nothing in
/// between was a rejection.
pub fn is_cycle(m: &Message, queue: &str) -> bool {
    let Some(AMQPValue::FieldArray(deaths)) = m.headers().and_then(|h| h.inner().get("x-death").cloned())
    else {
        return false;
    };
    let mut rejected = false;
    for d in deaths.as_slice() {
        let AMQPValue::FieldTable(t) = d else { continue };
        rejected |= text(t, "reason") == Some(Reason::Rejected.as_str());
        if text(t, "queue") == Some(queue) {
            return !rejected;
        }
    }
    false
}

fn text<'a>(t: &'a FieldTable, key: &str) -> Option<&'a str> {
    t.inner().get(key).and_then(as_str)
}

fn long(s: &str) -> AMQPValue {
    AMQPValue::LongString(LongString::from(s))
}

/// The same properties without `expiration` (the builder can only set).
fn without_expiration(p: &AMQPProperties) -> AMQPProperties {
    let mut out = AMQPProperties::default();
    macro_rules! copy {
        ($($get:ident => $set:ident),*) => {
            $(if let Some(v) = p.$get().clone() { out = out.$set(v); })*
        };
    }
    copy!(content_type => with_content_type, content_encoding => with_content_encoding,
        headers => with_headers, delivery_mode => with_delivery_mode, priority => with_priority,
        correlation_id => with_correlation_id, reply_to => with_reply_to, message_id => with_message_id,
        timestamp => with_timestamp, kind => with_type, user_id => with_user_id, app_id => with_app_id,
        cluster_id => with_cluster_id);
    out
}
