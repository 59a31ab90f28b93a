//! Definition keys: which ones each kind of policy may set and the check
//! of each value, with RabbitMQ's texts (`rabbit_policies:validate_policy0`;
//! values are printed as Erlang terms, as RabbitMQ prints them).
//!
//! Differences from RabbitMQ 3.10, following its later versions (see
//! OPERATIONS.md §5): operator policies may also set `overflow` and
//! `queue-version`; `consumer-timeout` is a policy key; `delivery-limit` may
//! be negative (unlimited). `ha-*` and federation keys are refused: Warren
//! has neither mirroring nor federation.

use serde_json::{Map, Value};

use super::{Kind, PolicyError, Result, Settings};
use crate::broker::queue::Overflow;

const USER_KEYS: &[&str] = &[
    "alternate-exchange",
    "consumer-timeout",
    "dead-letter-exchange",
    "dead-letter-routing-key",
    "dead-letter-strategy",
    "delivery-limit",
    "expires",
    "initial-cluster-size",
    "max-age",
    "max-in-memory-bytes",
    "max-in-memory-length",
    "max-length",
    "max-length-bytes",
    "message-ttl",
    "overflow",
    "queue-leader-locator",
    "queue-mode",
    "queue-version",
    "stream-max-segment-size-bytes",
];

const OPERATOR_KEYS: &[&str] = &[
    "delivery-limit",
    "expires",
    "max-in-memory-bytes",
    "max-in-memory-length",
    "max-length",
    "max-length-bytes",
    "message-ttl",
    "overflow",
    "queue-version",
];

/// Checks a definition for `kind` and reads what Warren acts on. Keys are
/// checked in sorted order (RabbitMQ reports the first bad value in that
/// order); unknown keys are reported, all together, only when every known
/// one is valid — as RabbitMQ does.
pub(super) fn definition(def: &Map<String, Value>, kind: Kind) -> Result<Settings> {
    if def.is_empty() {
        return Err(PolicyError::Invalid("no policy provided".into()));
    }
    let allowed = match kind {
        Kind::User => USER_KEYS,
        Kind::Operator => OPERATOR_KEYS,
    };
    let mut keys: Vec<&String> = def.keys().collect();
    keys.sort();
    let mut settings = Settings::default();
    let mut unknown = Vec::new();
    for key in keys {
        let value = &def[key.as_str()];
        if allowed.contains(&key.as_str()) {
            check(key, value, &mut settings)?;
        } else {
            unknown.push(format!("{{{},{}}}", erlang_term(&Value::String(key.clone())), erlang_term(value)));
        }
    }
    if !unknown.is_empty() {
        return Err(PolicyError::Invalid(format!(
            "[{}] are not recognised policy settings",
            unknown.join(",")
        )));
    }
    Ok(settings)
}

/// One key's value; what Warren acts on goes into `s`.
fn check(key: &str, v: &Value, s: &mut Settings) -> Result<()> {
    let bad = |what: &str| PolicyError::Invalid(format!("{} is not a valid {what}", erlang_term(v)));
    let at_least = |min: u64, what: &str| v.as_u64().filter(|n| *n >= min).ok_or_else(|| bad(what));
    let string = |what: &str| v.as_str().map(str::to_owned).ok_or_else(|| bad(what));
    let one_of = |options: &[&str], what: &str| {
        v.as_str().filter(|x| options.contains(x)).map(str::to_owned).ok_or_else(|| bad(what))
    };
    match key {
        "alternate-exchange" => s.alternate_exchange = Some(string("alternate exchange name")?),
        "dead-letter-exchange" => s.dead_letter_exchange = Some(string("dead letter exchange name")?),
        "dead-letter-routing-key" => s.dead_letter_routing_key = Some(string("dead letter routing key")?),
        "message-ttl" => s.message_ttl = Some(at_least(0, "message TTL")?),
        "expires" => s.expires = Some(at_least(1, "queue expiry")?),
        "max-length" => s.max_length = Some(at_least(0, "maximum length")?),
        "max-length-bytes" => s.max_length_bytes = Some(at_least(0, "maximum length in bytes")?),
        "max-in-memory-length" | "max-in-memory-bytes" => {
            at_least(0, "maximum memory in bytes")?;
        }
        "overflow" => {
            s.overflow = Some(match v.as_str() {
                Some("drop-head") => Overflow::DropHead,
                Some("reject-publish") => Overflow::RejectPublish,
                Some("reject-publish-dlx") => Overflow::RejectPublishDlx,
                _ => return Err(bad("overflow value")),
            })
        }
        "delivery-limit" => {
            let n = match v {
                Value::Number(n) if n.is_i64() => n.as_i64(),
                // Beyond i64: as good as unlimited.
                Value::Number(n) if n.is_u64() => Some(i64::MAX),
                _ => None,
            };
            s.delivery_limit = Some(n.ok_or_else(|| bad("delivery limit"))?);
        }
        "consumer-timeout" => {
            at_least(0, "consumer timeout")?;
        }
        "queue-mode" => {
            one_of(&["default", "lazy"], "queue-mode value")?;
        }
        "queue-version" => {
            v.as_u64().filter(|n| matches!(n, 1 | 2)).ok_or_else(|| bad("queue-version value"))?;
        }
        "max-age" => {
            v.as_str().filter(|a| valid_max_age(a)).ok_or_else(|| bad("max age"))?;
        }
        "queue-leader-locator" => {
            one_of(&["client-local", "balanced", "random", "least-leaders"], "queue leader locator value")?;
        }
        "initial-cluster-size" => {
            at_least(0, "cluster size")?;
        }
        "stream-max-segment-size-bytes" => {
            at_least(0, "segment size")?;
        }
        "dead-letter-strategy" => {
            one_of(&["at-most-once", "at-least-once"], "dead letter strategy")?;
        }
        _ => unreachable!("only allowed keys are checked"),
    }
    Ok(())
}

/// A stream's `max-age`: a positive count and one unit of Y, M, D, h, m, s.
fn valid_max_age(a: &str) -> bool {
    // By characters, not bytes: the last one may be any UTF-8 character.
    let Some(unit) = a.chars().last() else { return false };
    let count = &a[..a.len() - unit.len_utf8()];
    matches!(unit, 'Y' | 'M' | 'D' | 'h' | 'm' | 's')
        && !count.is_empty()
        && count.bytes().all(|b| b.is_ascii_digit())
        && count.parse::<u64>().map_or(true, |n| n > 0)
}

/// A JSON value as RabbitMQ's messages print it (Erlang's `~p` of the
/// decoded term): `<<"text">>`, `5`, `true`, `null`, `[1,2]`, `#{<<"a">> => 1}`.
pub fn erlang_term(v: &Value) -> String {
    match v {
        Value::Null => "null".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => match n.as_f64() {
            Some(f) if n.is_f64() => format!("{f:?}"),
            _ => n.to_string(),
        },
        Value::String(s) => {
            let escaped = s.replace('\\', "\\\\").replace('"', "\\\"");
            format!("<<\"{escaped}\">>")
        }
        Value::Array(a) => format!("[{}]", a.iter().map(erlang_term).collect::<Vec<_>>().join(",")),
        Value::Object(o) => {
            let fields: Vec<_> = o
                .iter()
                .map(|(k, v)| format!("{} => {}", erlang_term(&Value::String(k.clone())), erlang_term(v)))
                .collect();
            format!("#{{{}}}", fields.join(","))
        }
    }
}
