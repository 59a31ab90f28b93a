//! A stream's arguments: what `queue.declare` may set (with RabbitMQ's
//! texts for what streams refuse), what `basic.consume` may ask for
//! (`x-stream-offset`, filters, offset tracking), and the retention in
//! force (arguments first, then policies, as RabbitMQ reads them).

use amq_protocol::types::{AMQPValue, FieldTable};
use serde_json::{Map, Value};

use crate::protocol::table::{as_int, as_str, type_name};
use crate::protocol::AmqpError;
use crate::store::stream::{now_ms, Retention, DEFAULT_SEGMENT_BYTES};

/// The queue arguments RabbitMQ 3.10 refuses on a stream (those of other
/// queue types), and Warren's own that make no sense on one.
const REFUSED: &[&str] = &[
    "x-expires",
    "x-message-ttl",
    "x-dead-letter-exchange",
    "x-dead-letter-routing-key",
    "x-dead-letter-strategy",
    "x-max-length",
    "x-max-priority",
    "x-overflow",
    "x-queue-mode",
    "x-queue-version",
    "x-queue-master-locator",
    "x-max-in-memory-length",
    "x-max-in-memory-bytes",
    "x-quorum-initial-group-size",
    "x-delivery-limit",
    "x-message-deduplication",
];

/// The smallest and largest segment Warren makes, whatever is asked.
const MIN_SEGMENT_BYTES: u64 = 4096;
const MAX_SEGMENT_BYTES: u64 = 3_000_000_000;

/// The header a message's filter value is read from.
pub const FILTER_VALUE: &str = "x-stream-filter-value";

/// Checks a stream's declare arguments.
pub fn validate(args: &FieldTable, name: &str, vhost: &str) -> Result<(), AmqpError> {
    let whose = format!("queue '{name}' in vhost '{vhost}'");
    for (key, v) in args.inner() {
        let key = key.as_str();
        if REFUSED.contains(&key) {
            return Err(AmqpError::precondition_failed(format!(
                "invalid arg '{key}' for {whose} of queue type rabbit_stream_queue"
            )));
        }
        let invalid =
            |why: String| AmqpError::precondition_failed(format!("invalid arg '{key}' for {whose}: {why}"));
        match key {
            "x-max-age" => {
                let s =
                    as_str(v).ok_or_else(|| invalid(format!("{{unacceptable_type,{}}}", type_name(v))))?;
                parse_age(s).ok_or_else(|| invalid("invalid_max_age".into()))?;
            }
            "x-stream-max-segment-size-bytes" => {
                let n = as_int(v)
                    .ok_or_else(|| invalid(format!("\"expected integer, got {}\"", type_name(v))))?;
                if n < 0 {
                    return Err(invalid(format!("{{value_negative,{n}}}")));
                }
            }
            "x-initial-cluster-size" => {
                let n = as_int(v)
                    .ok_or_else(|| invalid(format!("\"expected integer, got {}\"", type_name(v))))?;
                if n < 0 {
                    return Err(invalid(format!("{{value_negative,{n}}}")));
                }
                if n == 0 {
                    return Err(invalid("{value_zero,0}".into()));
                }
            }
            "x-stream-compaction-key" if as_str(v).is_none_or(str::is_empty) => {
                return Err(invalid("\"a header name (a non-empty string) was expected\"".into()));
            }
            _ => {}
        }
    }
    Ok(())
}

/// `x-max-age` and interval offsets: a positive number and one of
/// `Y M D h m s` (a year is 365 days, a month 30), in milliseconds.
pub fn parse_age(s: &str) -> Option<u64> {
    let digits = s.bytes().take_while(u8::is_ascii_digit).count();
    let n: u64 = s[..digits].parse().ok().filter(|n| *n > 0)?;
    let unit = match &s[digits..] {
        "Y" => 365 * 86_400_000,
        "M" => 30 * 86_400_000,
        "D" => 86_400_000,
        "h" => 3_600_000,
        "m" => 60_000,
        "s" => 1000,
        _ => return None,
    };
    // At most a thousand years: a cut-off in the past, whatever the clock.
    n.checked_mul(unit).filter(|ms| *ms <= 1000 * 365 * 86_400_000)
}

/// The retention in force: the queue's arguments, else its policies'.
pub fn retention(args: &FieldTable, policy: &Map<String, Value>) -> Retention {
    let arg = |k: &str| args.inner().get(k);
    let max_age_ms = arg("x-max-age")
        .and_then(as_str)
        .map(str::to_owned)
        .or_else(|| policy.get("max-age").and_then(Value::as_str).map(str::to_owned))
        .and_then(|s| parse_age(&s));
    let int = |a: &str, p: &str| {
        arg(a).and_then(as_int).or_else(|| policy.get(p).and_then(Value::as_i64)).filter(|n| *n >= 0)
    };
    Retention {
        max_bytes: int("x-max-length-bytes", "max-length-bytes").map(|n| n as u64),
        max_age_ms,
        // Clamped: a tiny segment would roll a pair of files per write;
        // RabbitMQ 3.11+ refuses more than 3 GB.
        segment_bytes: int("x-stream-max-segment-size-bytes", "stream-max-segment-size-bytes")
            .map_or(DEFAULT_SEGMENT_BYTES, |n| (n as u64).clamp(MIN_SEGMENT_BYTES, MAX_SEGMENT_BYTES)),
    }
}

/// Where a consumer starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Start {
    First,
    /// The first record of the last chunk written.
    Last,
    Next,
    Offset(u64),
    /// The last N records (Warren: a negative `x-stream-offset`).
    Back(u64),
    /// The first chunk written at or after this time (ms since the epoch).
    Time(i64),
}

/// What a stream consumer asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumeArgs {
    pub start: Start,
    /// `x-stream-offset` was given.
    pub explicit: bool,
    /// Keep its offset on the server under its tag.
    pub track: bool,
    pub filter: Option<Filter>,
}

/// `x-stream-filter`: a message is delivered if its `x-stream-filter-value`
/// is one of `values`, or (with `unfiltered`) if it has none. Exact per
/// message, so a client need not filter again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Filter {
    pub values: Vec<Vec<u8>>,
    pub unfiltered: bool,
}

impl Filter {
    pub fn matches(&self, value: Option<&[u8]>) -> bool {
        match value {
            Some(v) => self.values.iter().any(|f| f == v),
            None => self.unfiltered,
        }
    }
}

/// Reads a stream consumer's arguments (`tag`: offsets are tracked under
/// it unless it was made up by the server).
pub fn consume(
    args: &FieldTable,
    tag: &str,
    server_tag: bool,
    name: &str,
    vhost: &str,
) -> Result<ConsumeArgs, AmqpError> {
    let whose = format!("queue '{name}' in vhost '{vhost}'");
    let get = |k: &str| args.inner().get(k);
    if get("x-priority").is_some() {
        return Err(AmqpError::precondition_failed(format!(
            "invalid arg 'x-priority' for {whose} of queue type rabbit_stream_queue"
        )));
    }
    let (start, explicit) = match get("x-stream-offset") {
        None => (Start::Next, false),
        Some(v) => (
            offset(v).ok_or_else(|| {
                AmqpError::precondition_failed(format!(
                    "invalid arg 'x-stream-offset' for {whose}: {{invalid_stream_offset_arg,{{{},{}}}}}",
                    type_name(v),
                    erlang_value(v)
                ))
            })?,
            true,
        ),
    };
    let auto = match get("x-stream-automatic-offset-tracking") {
        None => None,
        Some(AMQPValue::Boolean(b)) => Some(*b),
        Some(v) => match as_str(v) {
            Some("true") => Some(true),
            Some("false") => Some(false),
            _ => {
                return Err(AmqpError::precondition_failed(
                    "x-stream-automatic-offset-tracking must be a boolean",
                ))
            }
        },
    };
    // LavinMQ's rule: a consumer named by its client is tracked unless it
    // asks for an offset; one that asks is tracked only if it says so.
    let track = match auto {
        Some(b) => b && !tag.is_empty(),
        None => !explicit && !server_tag,
    };
    let values = match get("x-stream-filter") {
        None => None,
        Some(AMQPValue::FieldArray(a)) => Some(
            a.as_slice().iter().map(|v| as_str(v).map(filter_value)).collect::<Option<Vec<_>>>().ok_or_else(
                || AmqpError::precondition_failed("x-stream-filter must be a string or an array of strings"),
            )?,
        ),
        Some(v) => Some(vec![filter_value(as_str(v).ok_or_else(|| {
            AmqpError::precondition_failed("x-stream-filter must be a string or an array of strings")
        })?)]),
    };
    let unfiltered = match get("x-stream-match-unfiltered") {
        None => false,
        Some(AMQPValue::Boolean(b)) => *b,
        Some(_) => return Err(AmqpError::precondition_failed("x-stream-match-unfiltered must be a boolean")),
    };
    let filter = values.map(|values| Filter { values, unfiltered });
    Ok(ConsumeArgs { start, explicit, track, filter })
}

/// A filter value as records keep it (cut as they are).
fn filter_value(s: &str) -> Vec<u8> {
    s.as_bytes()[..s.len().min(crate::store::stream::chunk::MAX_FILTER)].to_vec()
}

/// An `x-stream-offset` as RabbitMQ reads it: `first`, `last`, `next`; an
/// integer offset (negative: Warren's last N); a timestamp (seconds); an
/// interval back from now (`"1h"`).
fn offset(v: &AMQPValue) -> Option<Start> {
    if let Some(s) = as_str(v) {
        return Some(match s {
            "first" => Start::First,
            "last" => Start::Last,
            "next" => Start::Next,
            _ => Start::Time(now_ms() - parse_age(s)? as i64),
        });
    }
    match v {
        AMQPValue::Timestamp(t) => Some(Start::Time((*t as i64).saturating_mul(1000))),
        AMQPValue::Boolean(_) | AMQPValue::Float(_) | AMQPValue::Double(_) => None,
        _ => {
            let n = as_int(v)?;
            Some(if n < 0 { Start::Back(n.unsigned_abs()) } else { Start::Offset(n as u64) })
        }
    }
}

/// A value as RabbitMQ prints it in an error (an Erlang term).
fn erlang_value(v: &AMQPValue) -> String {
    match v {
        AMQPValue::LongString(s) => format!("<<\"{}\">>", String::from_utf8_lossy(s.as_bytes())),
        AMQPValue::ShortString(s) => format!("<<\"{}\">>", s.as_str()),
        AMQPValue::Boolean(b) => b.to_string(),
        AMQPValue::Float(f) => format!("{f:?}"),
        AMQPValue::Double(f) => format!("{f:?}"),
        other => as_int(other).map_or_else(|| "...".to_owned(), |n| n.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use amq_protocol::types::ShortString;

    use super::*;

    fn table(pairs: &[(&str, AMQPValue)]) -> FieldTable {
        let mut t = FieldTable::default();
        for (k, v) in pairs {
            t.insert(ShortString::from(*k), v.clone());
        }
        t
    }

    #[test]
    fn ages_parse_as_rabbitmq_reads_them() {
        assert_eq!(parse_age("7D"), Some(7 * 86_400_000));
        assert_eq!(parse_age("10s"), Some(10_000));
        assert_eq!(parse_age("1Y"), Some(365 * 86_400_000));
        for bad in ["", "0s", "s", "1", "1d", "1Dx", "-1s", "bad"] {
            assert_eq!(parse_age(bad), None, "{bad}");
        }
    }

    #[test]
    fn refused_and_bad_arguments_get_rabbitmq_texts() {
        let err = |t: FieldTable| validate(&t, "s", "/").unwrap_err().to_string();
        assert!(err(table(&[("x-max-length", AMQPValue::LongInt(1))])).contains(
            "invalid arg 'x-max-length' for queue 's' in vhost '/' of queue type rabbit_stream_queue"
        ));
        assert!(err(table(&[("x-max-age", AMQPValue::LongString("bad".into()))])).contains("invalid_max_age"));
        assert!(err(table(&[("x-max-age", AMQPValue::LongInt(5))])).contains("{unacceptable_type,signedint}"));
        assert!(validate(&table(&[("x-max-age", AMQPValue::LongString("1h".into()))]), "s", "/").is_ok());
        let e =
            consume(&table(&[("x-stream-offset", AMQPValue::LongString("1X".into()))]), "t", false, "s", "/");
        assert!(e.unwrap_err().to_string().contains("{invalid_stream_offset_arg,{longstr,<<\"1X\">>}}"));
    }

    #[test]
    fn offsets_filters_and_tracking() {
        let c = |pairs: &[(&str, AMQPValue)], server: bool| {
            consume(&table(pairs), "tag", server, "s", "/").unwrap()
        };
        assert_eq!(
            c(&[], false),
            ConsumeArgs { start: Start::Next, explicit: false, track: true, filter: None }
        );
        assert!(!c(&[], true).track, "a server-named consumer is not tracked");
        let first = c(&[("x-stream-offset", AMQPValue::LongString("first".into()))], false);
        assert_eq!((first.start, first.track), (Start::First, false));
        let auto = c(
            &[
                ("x-stream-offset", AMQPValue::LongLongInt(-5)),
                ("x-stream-automatic-offset-tracking", AMQPValue::Boolean(true)),
            ],
            false,
        );
        assert_eq!((auto.start, auto.track), (Start::Back(5), true));
        assert_eq!(c(&[("x-stream-offset", AMQPValue::Timestamp(10))], false).start, Start::Time(10_000));
        let f = c(&[("x-stream-filter", AMQPValue::LongString("a".into()))], false).filter.unwrap();
        assert!(f.matches(Some(b"a")) && !f.matches(Some(b"b")) && !f.matches(None));
    }
}
