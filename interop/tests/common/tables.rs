//! Field tables and the headers tests read: arguments, dead-lettering,
//! `x-death`.

use super::*;

/// A field table from `(key, value)` pairs.
pub fn table(pairs: &[(&str, lapin::types::AMQPValue)]) -> FieldTable {
    let mut t = FieldTable::default();
    for (k, v) in pairs {
        t.insert((*k).into(), v.clone());
    }
    t
}

pub fn long_str(s: &str) -> lapin::types::AMQPValue {
    lapin::types::AMQPValue::LongString(s.into())
}

pub fn int(n: i64) -> lapin::types::AMQPValue {
    lapin::types::AMQPValue::LongLongInt(n)
}

/// Arguments that dead-letter a queue's messages to `queue` through the
/// default exchange.
pub fn dead_letter_to(queue: &str) -> [(&'static str, lapin::types::AMQPValue); 2] {
    [("x-dead-letter-exchange", long_str("")), ("x-dead-letter-routing-key", long_str(queue))]
}

/// A field table of `pairs` plus [`dead_letter_to`] `queue`.
pub fn table_dead_lettering_to(pairs: &[(&str, lapin::types::AMQPValue)], queue: &str) -> FieldTable {
    let mut t = table(pairs);
    for (k, v) in dead_letter_to(queue) {
        t.insert(k.into(), v);
    }
    t
}

/// The reason of a dead letter's newest `x-death` entry.
pub fn death_reason(props: &BasicProperties) -> Option<String> {
    text_of(x_death(props).first()?, "reason")
}

/// Declares a named queue with arguments (deleted by the test, or by `x-expires`).
pub async fn queue_with(ch: &Channel, name: &str, args: FieldTable) {
    within("queue.declare", ch.queue_declare(name.into(), QueueDeclareOptions::default(), args))
        .await
        .unwrap_or_else(|e| panic!("queue.declare {name}: {e}"));
}

/// The `x-death` entries of a message's headers, newest first.
pub fn x_death(props: &BasicProperties) -> Vec<FieldTable> {
    let Some(h) = props.headers() else { return Vec::new() };
    match h.inner().get("x-death") {
        Some(lapin::types::AMQPValue::FieldArray(a)) => a
            .as_slice()
            .iter()
            .filter_map(|v| match v {
                lapin::types::AMQPValue::FieldTable(t) => Some(t.clone()),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    }
}

/// A header (or table entry) as text, if it is a string.
pub fn text_of(t: &FieldTable, key: &str) -> Option<String> {
    match t.inner().get(key)? {
        lapin::types::AMQPValue::LongString(s) => Some(String::from_utf8_lossy(s.as_bytes()).into_owned()),
        lapin::types::AMQPValue::ShortString(s) => Some(s.to_string()),
        _ => None,
    }
}

/// A header (or table entry) as an integer, if it is one.
pub fn int_of(t: &FieldTable, key: &str) -> Option<i64> {
    use lapin::types::AMQPValue as V;
    Some(match t.inner().get(key)? {
        V::LongLongInt(n) => *n,
        V::LongInt(n) => i64::from(*n),
        V::ShortInt(n) => i64::from(*n),
        V::ShortShortInt(n) => i64::from(*n),
        V::LongUInt(n) => i64::from(*n),
        V::ShortUInt(n) => i64::from(*n),
        V::ShortShortUInt(n) => i64::from(*n),
        _ => return None,
    })
}

/// The message's header `key` as text.
pub fn header_text(props: &BasicProperties, key: &str) -> Option<String> {
    text_of(props.headers().as_ref()?, key)
}
