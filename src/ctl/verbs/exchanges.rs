//! Exchange verbs: list_exchanges, delete_exchange, list_bindings and
//! publish (`/api/exchanges`, `/api/bindings`).

use std::io::Read;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use serde_json::{json, Map, Value};

use super::listing::{columns, Alias};
use super::queues::mentions_not_found;
use super::Ctx;
use crate::ctl::api::{seg, Reply};
use crate::ctl::error::{status_error, CtlError, Result};

/// The default exchange ("") is `amq.default` in API paths.
fn exchange_path(vhost: &str, exchange: &str) -> String {
    let name = if exchange.is_empty() { "amq.default" } else { exchange };
    format!("/api/exchanges/{}/{}", seg(vhost), seg(name))
}

/// After a failed request on exchange `exchange`: "Exchange not found" (64)
/// if the vhost exists, else the missing vhost (65), else the API's error.
fn exchange_error(ctx: &Ctx, exchange: &str, failed: Reply) -> CtlError {
    // RabbitMQ answers a publish into a missing vhost with 401.
    if !matches!(failed.status, 401 | 404) && !mentions_not_found(&failed) {
        return status_error(failed.status, &failed.body);
    }
    match ctx.api.vhost_exists(&ctx.vhost) {
        Ok(false) => CtlError::no_such_vhost(&ctx.vhost),
        Ok(true) if failed.status == 401 => status_error(failed.status, &failed.body),
        Ok(true) => CtlError::NotFound(format!("Exchange not found: '{exchange}' in vhost '{}'", ctx.vhost)),
        Err(e) => e,
    }
}

pub fn list_exchanges(ctx: &mut Ctx, asked: &[String]) -> Result<()> {
    ctx.banner(&format!("Listing exchanges for vhost {} ...", ctx.vhost));
    let columns = columns(asked, &["name", "type"], &[]);
    let path = format!("/api/exchanges/{}", seg(&ctx.vhost));
    let vhost = ctx.vhost.clone();
    ctx.paged_listing(&path, Some(&vhost), &columns)
}

pub fn delete_exchange(ctx: &mut Ctx, exchange: &str) -> Result<()> {
    ctx.info(&format!("Deleting exchange '{exchange}' in vhost '{}' ...", ctx.vhost));
    let reply = ctx.api.delete(&exchange_path(&ctx.vhost, exchange))?;
    if !reply.is_success() {
        return Err(exchange_error(ctx, exchange, reply));
    }
    Ok(())
}

/// rabbitmqctl's binding columns, mapped to the API's fields.
const BINDING_ALIASES: &[(&str, Alias)] = &[
    ("source_name", Alias::Field("source")),
    ("source_kind", Alias::Fixed("exchange")),
    ("destination_name", Alias::Field("destination")),
    ("destination_kind", Alias::Field("destination_type")),
];

pub fn list_bindings(ctx: &mut Ctx, asked: &[String]) -> Result<()> {
    ctx.banner(&format!("Listing bindings for vhost {}...", ctx.vhost));
    let defaults =
        ["source_name", "source_kind", "destination_name", "destination_kind", "routing_key", "arguments"];
    let columns = columns(asked, &defaults, BINDING_ALIASES);
    let path = format!("/api/bindings/{}", seg(&ctx.vhost));
    let vhost = ctx.vhost.clone();
    ctx.whole_listing(&path, Some(&vhost), &columns)
}

/// The message properties `publish` accepts, and whether each is a number.
const PROPERTIES: &[(&str, bool)] = &[
    ("content_type", false),
    ("content_encoding", false),
    ("delivery_mode", true),
    ("priority", true),
    ("correlation_id", false),
    ("reply_to", false),
    ("expiration", false),
    ("message_id", false),
    ("timestamp", true),
    ("type", false),
    ("user_id", false),
    ("app_id", false),
    ("cluster_id", false),
];

/// `k=v` pairs as the API's `properties` object; `headers.h=v` sets header
/// `h` (an integer if it reads as one, else a string).
pub fn parse_properties(pairs: &[String]) -> Result<Value> {
    let mut properties = Map::new();
    let mut headers = Map::new();
    for pair in pairs {
        let Some((key, value)) = pair.split_once('=') else {
            return Err(CtlError::Usage(format!("property '{pair}' is not of the form key=value")));
        };
        if let Some(header) = key.strip_prefix("headers.").or_else(|| key.strip_prefix("header.")) {
            let value = value.parse::<i64>().map(Value::from).unwrap_or_else(|_| Value::from(value));
            headers.insert(header.to_string(), value);
            continue;
        }
        let Some((_, numeric)) = PROPERTIES.iter().find(|(name, _)| *name == key) else {
            let known: Vec<&str> = PROPERTIES.iter().map(|(name, _)| *name).collect();
            return Err(CtlError::Usage(format!(
                "unknown property '{key}' (known: {}, headers.<name>)",
                known.join(", ")
            )));
        };
        let value = if *numeric {
            let n: u64 = value
                .parse()
                .map_err(|_| CtlError::Usage(format!("property '{key}' must be a number, not '{value}'")))?;
            Value::from(n)
        } else {
            Value::from(value)
        };
        properties.insert(key.to_string(), value);
    }
    if !headers.is_empty() {
        properties.insert("headers".into(), Value::Object(headers));
    }
    Ok(Value::Object(properties))
}

/// The payload argument, or stdin for "-"; sent as a string when it is
/// UTF-8, else base64.
fn payload_body(payload: &str) -> Result<(String, &'static str)> {
    let bytes = if payload == "-" {
        let mut bytes = Vec::new();
        std::io::stdin()
            .read_to_end(&mut bytes)
            .map_err(|e| CtlError::Data(format!("cannot read standard input: {e}")))?;
        bytes
    } else {
        payload.as_bytes().to_vec()
    };
    Ok(match String::from_utf8(bytes) {
        Ok(text) => (text, "string"),
        Err(e) => (STANDARD.encode(e.into_bytes()), "base64"),
    })
}

pub fn publish(
    ctx: &mut Ctx,
    exchange: &str,
    routing_key: &str,
    properties: &[String],
    payload: &str,
) -> Result<()> {
    let properties = parse_properties(properties)?;
    let (payload, encoding) = payload_body(payload)?;
    let body = json!({
        "properties": properties,
        "routing_key": routing_key,
        "payload": payload,
        "payload_encoding": encoding,
    });
    let reply = ctx.api.post(&format!("{}/publish", exchange_path(&ctx.vhost, exchange)), &body)?;
    if !reply.is_success() {
        return Err(exchange_error(ctx, exchange, reply));
    }
    let routed = reply.json()?.get("routed").and_then(Value::as_bool).unwrap_or(false);
    ctx.say(if routed { "Message published" } else { "Message published but NOT routed" });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn properties_parse_into_the_api_shape() {
        let props = parse_properties(&strings(&[
            "delivery_mode=2",
            "content_type=text/plain",
            "headers.x-n=5",
            "headers.who=me=you",
        ]))
        .unwrap();
        assert_eq!(
            props,
            json!({"delivery_mode":2,"content_type":"text/plain","headers":{"x-n":5,"who":"me=you"}})
        );
        assert_eq!(parse_properties(&[]).unwrap(), json!({}));
        assert_eq!(parse_properties(&strings(&["nope=1"])).unwrap_err().exit_code(), 64);
        assert_eq!(parse_properties(&strings(&["priority=high"])).unwrap_err().exit_code(), 64);
        assert_eq!(parse_properties(&strings(&["novalue"])).unwrap_err().exit_code(), 64);
    }

    #[test]
    fn the_default_exchange_is_amq_default() {
        assert_eq!(exchange_path("/", ""), "/api/exchanges/%2F/amq%2Edefault");
        assert_eq!(exchange_path("v", "x-1"), "/api/exchanges/v/x%2D1");
    }
}
