//! Declaration equivalence: what a redeclaration must match, and RabbitMQ's
//! texts when it does not.

use amq_protocol::types::{AMQPValue, FieldTable};

use crate::protocol::table::{as_int, as_str, type_name};
use crate::protocol::AmqpError;

/// Queue arguments RabbitMQ compares on redeclaration; others are ignored.
pub const QUEUE_EQUIVALENCE_ARGS: &[&str] = &[
    "x-expires",
    "x-message-ttl",
    "x-dead-letter-exchange",
    "x-dead-letter-routing-key",
    "x-max-length",
    "x-max-length-bytes",
    "x-max-priority",
    "x-overflow",
    "x-queue-mode",
    "x-queue-type",
    "x-single-active-consumer",
    "x-delivery-limit",
    "x-max-age",
    "x-stream-max-segment-size-bytes",
    "x-initial-cluster-size",
    "x-stream-compaction-key",
];

/// Exchange arguments compared on redeclaration.
pub const EXCHANGE_EQUIVALENCE_ARGS: &[&str] = &["alternate-exchange"];

fn value_text(v: &AMQPValue) -> String {
    if let Some(i) = as_int(v) {
        return i.to_string();
    }
    if let Some(s) = as_str(v) {
        return s.to_owned();
    }
    match v {
        AMQPValue::Boolean(b) => b.to_string(),
        other => format!("{other:?}"),
    }
}

fn describe(v: Option<&AMQPValue>) -> String {
    match v {
        None => "none".to_owned(),
        Some(v) => format!("the value '{}' of type '{}'", value_text(v), type_name(v)),
    }
}

/// Equal as RabbitMQ compares arguments: integers by value, strings by text.
fn same(a: &AMQPValue, b: &AMQPValue) -> bool {
    match (as_int(a), as_int(b)) {
        (Some(x), Some(y)) => x == y,
        _ => match (as_str(a), as_str(b)) {
            (Some(x), Some(y)) => x == y,
            _ => a == b,
        },
    }
}

/// Compares the listed arguments of a redeclaration with the current ones.
pub fn check_equivalent(
    keys: &[&str],
    what: &str,
    name: &str,
    vhost: &str,
    current: &FieldTable,
    received: &FieldTable,
) -> Result<(), AmqpError> {
    for key in keys {
        let (c, r) = (current.inner().get(*key), received.inner().get(*key));
        let equal = match (c, r) {
            (None, None) => true,
            (Some(c), Some(r)) => same(c, r),
            _ => false,
        };
        if !equal {
            // Both present: just the values; one missing: "none" and the type.
            let (received, current) = match (r, c) {
                (Some(r), Some(c)) => (format!("'{}'", value_text(r)), format!("'{}'", value_text(c))),
                _ => (describe(r), describe(c)),
            };
            return Err(AmqpError::precondition_failed(format!(
                "inequivalent arg '{key}' for {what} '{name}' in vhost '{vhost}': received {received} but current is {current}"
            )));
        }
    }
    Ok(())
}

/// A flag (durable, exclusive, auto_delete, type…) that must match.
pub fn check_flag<T: std::fmt::Display + PartialEq>(
    flag: &str,
    what: &str,
    name: &str,
    vhost: &str,
    current: T,
    received: T,
) -> Result<(), AmqpError> {
    if current == received {
        return Ok(());
    }
    Err(AmqpError::precondition_failed(format!(
        "inequivalent arg '{flag}' for {what} '{name}' in vhost '{vhost}': received '{received}' but current is '{current}'"
    )))
}
