//! Validation of `queue.declare` arguments, with RabbitMQ's reply texts.

use amq_protocol::types::{AMQPValue, FieldTable};

use crate::protocol::table::{as_int, as_str, type_name};
use crate::protocol::AmqpError;

/// The longest TTL RabbitMQ accepts: ten years, in milliseconds.
pub const MAX_TTL: i64 = 315_360_000_000;

/// Whether declare arguments make a stream (`x-queue-type: stream`).
pub fn is_stream(args: &FieldTable) -> bool {
    args.inner().get("x-queue-type").and_then(as_str) == Some("stream")
}

/// Checks every argument RabbitMQ knows; unknown ones are kept and ignored.
pub fn validate(
    args: &FieldTable,
    name: &str,
    vhost: &str,
    durable: bool,
    exclusive: bool,
    auto_delete: bool,
) -> Result<(), AmqpError> {
    let invalid = |key: &str, why: String| {
        AmqpError::precondition_failed(format!(
            "invalid arg '{key}' for queue '{name}' in vhost '{vhost}': {why}"
        ))
    };
    let int = |key: &str, v: &AMQPValue| {
        as_int(v).ok_or_else(|| invalid(key, format!("\"expected integer, got {}\"", type_name(v))))
    };
    let non_negative = |key: &str, v: &AMQPValue| {
        let n = int(key, v)?;
        if n < 0 {
            return Err(invalid(key, format!("{{value_negative,{n}}}")));
        }
        Ok(n)
    };
    let string = |key: &str, v: &AMQPValue| {
        as_str(v).map(str::to_owned).ok_or_else(|| {
            AmqpError::precondition_failed(format!(
                "invalid type '{}' for arg '{key}' in queue '{name}' in vhost '{vhost}'",
                type_name(v)
            ))
        })
    };
    super::dedup::settings(args, &format!("queue '{name}' in vhost '{vhost}'"))?;
    for (key, v) in args.inner() {
        let key = key.as_str();
        match key {
            "x-message-ttl" if non_negative(key, v)? > MAX_TTL => {
                return Err(invalid(key, format!("{{value_too_large,{}}}", int(key, v)?)));
            }
            "x-message-ttl" => {}
            "x-max-length" | "x-max-length-bytes" | "x-delivery-limit" => {
                non_negative(key, v)?;
            }
            "x-expires" if non_negative(key, v)? == 0 => {
                return Err(invalid(key, "{value_zero,0}".into()));
            }
            "x-expires" => {}
            "x-max-priority" => {
                let n = non_negative(key, v)?;
                if n > 255 {
                    return Err(invalid(key, format!("{{max_value_exceeded,{n}}}")));
                }
            }
            "x-overflow" => {
                let s = as_str(v)
                    .ok_or_else(|| invalid(key, format!("{{unacceptable_type,{}}}", type_name(v))))?;
                if !matches!(s, "drop-head" | "reject-publish" | "reject-publish-dlx") {
                    return Err(invalid(key, "invalid_overflow".into()));
                }
            }
            "x-dead-letter-exchange" => {
                string(key, v)?;
            }
            "x-dead-letter-routing-key" => {
                string(key, v)?;
                if !args.contains_key("x-dead-letter-exchange") {
                    return Err(invalid(key, "routing_key_but_no_dlx_defined".into()));
                }
            }
            "x-queue-mode" => {
                let s = string(key, v)?;
                if !matches!(s.as_str(), "default" | "lazy") {
                    return Err(invalid(key, format!("\"unsupported queue mode '{s}'\"")));
                }
            }
            "x-single-active-consumer" if !matches!(v, AMQPValue::Boolean(_)) => {
                return Err(invalid(key, format!("{{unacceptable_type,{}}}", type_name(v))));
            }
            "x-queue-type" => {
                let s = string(key, v)?;
                match s.as_str() {
                    "classic" => {}
                    "quorum" | "stream" => {
                        if !durable {
                            return Err(AmqpError::precondition_failed(format!(
                                "invalid property 'non-durable' for queue '{name}' in vhost '{vhost}'"
                            )));
                        }
                        if exclusive {
                            return Err(AmqpError::precondition_failed(format!(
                                "invalid property 'exclusive-owner' for queue '{name}' in vhost '{vhost}'"
                            )));
                        }
                        if auto_delete {
                            return Err(AmqpError::precondition_failed(format!(
                                "invalid property 'auto-delete' for queue '{name}' in vhost '{vhost}'"
                            )));
                        }
                        if s == "quorum" && args.contains_key("x-max-priority") {
                            return Err(AmqpError::precondition_failed(format!(
                                "invalid arg 'x-max-priority' for queue '{name}' in vhost '{vhost}' of queue type rabbit_quorum_queue"
                            )));
                        }
                        if s == "stream" {
                            super::stream::args::validate(args, name, vhost)?;
                        }
                    }
                    _ => return Err(invalid(key, format!("\"unsupported queue type '{s}'\""))),
                }
            }
            _ => {}
        }
    }
    Ok(())
}

/// An `expiration` property as RabbitMQ reads it (an optional sign, then
/// decimal digits, at most ten years), or its 406 reason.
pub fn parse_expiration(text: &[u8]) -> Result<u64, String> {
    let s = String::from_utf8_lossy(text);
    let (negative, digits) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, &s[..]),
    };
    let end = digits.bytes().take_while(u8::is_ascii_digit).count();
    if end == 0 {
        return Err("no_integer".into());
    }
    if end < digits.len() {
        return Err(format!("{{leftover_string,\"{}\"}}", &digits[end..]));
    }
    let value: u128 = digits.parse().unwrap_or(u128::MAX);
    if negative && value != 0 {
        return Err(format!("{{value_negative,-{value}}}"));
    }
    if value > MAX_TTL as u128 {
        return Err(format!("{{value_too_large,{value}}}"));
    }
    Ok(value as u64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use amq_protocol::types::LongString;

    fn check(key: &str, v: AMQPValue) -> Result<(), String> {
        let mut t = FieldTable::default();
        t.insert(key.into(), v);
        validate(&t, "q", "/", false, false, false).map_err(|e| e.text)
    }

    #[test]
    fn rabbitmq_texts() {
        assert_eq!(
            check("x-max-priority", AMQPValue::LongInt(300)).unwrap_err(),
            "PRECONDITION_FAILED - invalid arg 'x-max-priority' for queue 'q' in vhost '/': {max_value_exceeded,300}"
        );
        assert_eq!(
            check("x-message-ttl", AMQPValue::LongString(LongString::from("abc"))).unwrap_err(),
            "PRECONDITION_FAILED - invalid arg 'x-message-ttl' for queue 'q' in vhost '/': \"expected integer, got longstr\""
        );
        assert_eq!(
            check("x-expires", AMQPValue::LongInt(0)).unwrap_err(),
            "PRECONDITION_FAILED - invalid arg 'x-expires' for queue 'q' in vhost '/': {value_zero,0}"
        );
        assert_eq!(
            check("x-dead-letter-exchange", AMQPValue::LongInt(5)).unwrap_err(),
            "PRECONDITION_FAILED - invalid type 'signedint' for arg 'x-dead-letter-exchange' in queue 'q' in vhost '/'"
        );
        assert!(check("x-message-ttl", AMQPValue::LongInt(0)).is_ok());
        assert!(check("x-foo", AMQPValue::Boolean(true)).is_ok());
        assert!(check("x-queue-type", AMQPValue::LongString(LongString::from("quorum")))
            .unwrap_err()
            .contains("non-durable"));
        assert_eq!(
            check("x-message-ttl", AMQPValue::LongLongInt(315_360_000_001)).unwrap_err(),
            "PRECONDITION_FAILED - invalid arg 'x-message-ttl' for queue 'q' in vhost '/': {value_too_large,315360000001}"
        );
        assert_eq!(
            check("x-overflow", AMQPValue::LongInt(5)).unwrap_err(),
            "PRECONDITION_FAILED - invalid arg 'x-overflow' for queue 'q' in vhost '/': {unacceptable_type,signedint}"
        );
        assert_eq!(
            check("x-single-active-consumer", AMQPValue::LongString(LongString::from("yes"))).unwrap_err(),
            "PRECONDITION_FAILED - invalid arg 'x-single-active-consumer' for queue 'q' in vhost '/': {unacceptable_type,longstr}"
        );
    }
}
