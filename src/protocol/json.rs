//! Field tables as JSON and back, as RabbitMQ's management API writes and
//! reads `arguments` and `headers`: integers as numbers, long strings as
//! strings (bytes that are not UTF-8 lossily), tables as objects. Pure.

use amq_protocol::types::{AMQPValue, FieldArray, FieldTable, LongString, ShortString};
use serde_json::{Map, Number, Value};

use super::table::MAX_DEPTH;

pub fn table_to_json(t: &FieldTable) -> Value {
    Value::Object(t.inner().iter().map(|(k, v)| (k.to_string(), value_to_json(v))).collect())
}

pub fn value_to_json(v: &AMQPValue) -> Value {
    match v {
        AMQPValue::Boolean(b) => Value::Bool(*b),
        AMQPValue::ShortShortInt(n) => Value::from(*n),
        AMQPValue::ShortShortUInt(n) => Value::from(*n),
        AMQPValue::ShortInt(n) => Value::from(*n),
        AMQPValue::ShortUInt(n) => Value::from(*n),
        AMQPValue::LongInt(n) => Value::from(*n),
        AMQPValue::LongUInt(n) => Value::from(*n),
        AMQPValue::LongLongInt(n) => Value::from(*n),
        AMQPValue::Timestamp(n) => Value::from(*n),
        AMQPValue::Float(f) => Number::from_f64(f64::from(*f)).map_or(Value::Null, Value::Number),
        AMQPValue::Double(f) => Number::from_f64(*f).map_or(Value::Null, Value::Number),
        AMQPValue::DecimalValue(d) => Number::from_f64(f64::from(d.value) / 10f64.powi(i32::from(d.scale)))
            .map_or(Value::Null, Value::Number),
        AMQPValue::ShortString(s) => Value::String(s.to_string()),
        AMQPValue::LongString(s) => Value::String(String::from_utf8_lossy(s.as_bytes()).into_owned()),
        AMQPValue::ByteArray(b) => Value::String(String::from_utf8_lossy(b.as_slice()).into_owned()),
        AMQPValue::FieldArray(a) => Value::Array(a.as_slice().iter().map(value_to_json).collect()),
        AMQPValue::FieldTable(t) => table_to_json(t),
        AMQPValue::Void => Value::Null,
    }
}

/// A JSON object as a field table; None if `v` is not an object or nests
/// deeper than a field table may.
pub fn json_to_table(v: &Value) -> Option<FieldTable> {
    match v {
        Value::Object(m) => object_to_table(m, 0),
        Value::Null => Some(FieldTable::default()),
        _ => None,
    }
}

fn object_to_table(m: &Map<String, Value>, depth: usize) -> Option<FieldTable> {
    if depth >= MAX_DEPTH {
        return None;
    }
    let mut t = FieldTable::default();
    for (k, v) in m {
        if k.len() > 255 {
            return None;
        }
        t.insert(ShortString::from(k.as_str()), json_to_value(v, depth + 1)?);
    }
    Some(t)
}

fn json_to_value(v: &Value, depth: usize) -> Option<AMQPValue> {
    if depth >= MAX_DEPTH {
        return None;
    }
    Some(match v {
        Value::Null => AMQPValue::Void,
        Value::Bool(b) => AMQPValue::Boolean(*b),
        // RabbitMQ's management API turns every integer into a `long`.
        Value::Number(n) => match (n.as_i64(), n.as_f64()) {
            (Some(i), _) => AMQPValue::LongLongInt(i),
            (None, Some(f)) => AMQPValue::Double(f),
            (None, None) => return None,
        },
        Value::String(s) => AMQPValue::LongString(LongString::from(s.as_str())),
        Value::Array(a) => {
            let items: Option<Vec<_>> = a.iter().map(|x| json_to_value(x, depth + 1)).collect();
            AMQPValue::FieldArray(FieldArray::from(items?))
        }
        Value::Object(m) => AMQPValue::FieldTable(object_to_table(m, depth)?),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_refuses_what_a_table_cannot_hold() {
        let v: Value = serde_json::json!({"x-max-length": 100, "x-dead-letter-exchange": "dlx", "b": true,
            "f": 1.5, "a": [1, "two"], "t": {"n": null}});
        let t = json_to_table(&v).unwrap();
        assert_eq!(t.inner().get("x-max-length"), Some(&AMQPValue::LongLongInt(100)));
        assert_eq!(table_to_json(&t), v);
        assert!(json_to_table(&serde_json::json!([1])).is_none());
        let mut deep = serde_json::json!({});
        for _ in 0..100 {
            deep = serde_json::json!({ "d": deep });
        }
        assert!(json_to_table(&deep).is_none());
        let long_key = serde_json::json!({ "k".repeat(256): 1 });
        assert!(json_to_table(&long_key).is_none());
    }
}
