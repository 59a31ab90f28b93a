//! Virtual host verbs: add_vhost, delete_vhost, list_vhosts, and the vhost
//! limits (`/api/vhosts`, `/api/vhost-limits`).

use serde_json::{json, Map, Value};

use super::Ctx;
use crate::ctl::api::seg;
use crate::ctl::error::{CtlError, Result};

fn vhost_path(vhost: &str) -> String {
    format!("/api/vhosts/{}", seg(vhost))
}

/// Idempotent, as rabbitmqctl's. A PUT replaces a vhost's metadata, so on an
/// existing vhost the options given are merged over what it has (and with
/// none, nothing is sent).
pub fn add_vhost(
    ctx: &mut Ctx,
    name: &str,
    description: Option<String>,
    tags: Option<String>,
    default_queue_type: Option<String>,
) -> Result<()> {
    ctx.info(&format!("Adding vhost \"{name}\" ..."));
    let reply = ctx.api.get(&vhost_path(name))?;
    let existing = match reply.status {
        404 => None,
        _ => Some(reply.ok()?.json()?),
    };
    if existing.is_some() && description.is_none() && tags.is_none() && default_queue_type.is_none() {
        return Ok(());
    }
    let existing = existing.unwrap_or_default();
    let text = |key: &str| existing.get(key).and_then(Value::as_str).map(str::to_string);
    let description = description.or_else(|| text("description"));
    let tags = tags.or_else(|| match existing.get("tags") {
        Some(Value::Array(tags)) => Some(tags.iter().filter_map(Value::as_str).collect::<Vec<_>>().join(",")),
        _ => text("tags"),
    });
    let default_queue_type =
        default_queue_type.or_else(|| text("default_queue_type").filter(|t| t != "undefined"));
    let mut body = Map::new();
    if let Some(description) = description {
        body.insert("description".into(), description.into());
    }
    if let Some(tags) = tags {
        body.insert("tags".into(), tags.into());
    }
    if let Some(queue_type) = default_queue_type {
        body.insert("default_queue_type".into(), queue_type.clone().into());
        // RabbitMQ 3.10 reads the default queue type under this older key.
        body.insert("defaultqueuetype".into(), queue_type.into());
    }
    ctx.api.put(&vhost_path(name), &Value::Object(body))?.ok().map(drop)
}

pub fn delete_vhost(ctx: &mut Ctx, name: &str) -> Result<()> {
    ctx.info(&format!("Deleting vhost \"{name}\" ..."));
    let reply = ctx.api.delete(&vhost_path(name))?;
    if reply.status == 404 {
        return Err(CtlError::no_such_vhost(name));
    }
    reply.ok().map(drop)
}

pub fn list_vhosts(ctx: &mut Ctx, columns: &[String]) -> Result<()> {
    ctx.banner("Listing vhosts ...");
    let rows = ctx.api.get("/api/vhosts")?.ok()?.rows()?;
    ctx.rows(&["name"], columns, &rows);
    Ok(())
}

fn limits_path(vhost: &str) -> String {
    format!("/api/vhost-limits/{}", seg(vhost))
}

/// The vhost's limits as a map of name to value.
fn current_limits(ctx: &Ctx) -> Result<Map<String, Value>> {
    let reply = ctx.api.get(&limits_path(&ctx.vhost))?;
    if reply.status == 404 {
        return Err(CtlError::no_such_vhost(&ctx.vhost));
    }
    let mut limits = Map::new();
    for row in reply.ok()?.rows()? {
        if let Some(Value::Object(values)) = row.get("value") {
            limits.extend(values.clone());
        }
    }
    Ok(limits)
}

/// Parses `{"max-connections":10,...}`: an object of integers.
pub(super) fn parse_limits(text: &str) -> Result<Map<String, Value>> {
    let value: Value =
        serde_json::from_str(text).map_err(|e| CtlError::Data(format!("JSON decoding error: {e}")))?;
    let Value::Object(limits) = value else {
        return Err(CtlError::Data(format!("limits must be a JSON object, not {text}")));
    };
    if let Some((name, value)) = limits.iter().find(|(_, v)| v.as_i64().is_none()) {
        return Err(CtlError::Data(format!("limit '{name}' must be an integer, not {value}")));
    }
    Ok(limits)
}

/// As rabbitmqctl's, this replaces the whole set: the given limits are put,
/// the ones not named are removed. A negative value means "no limit".
pub fn set_vhost_limits(ctx: &mut Ctx, text: &str) -> Result<()> {
    ctx.info(&format!("Setting vhost limits to \"{text}\" for vhost \"{}\" ...", ctx.vhost));
    let limits = parse_limits(text)?;
    let current = current_limits(ctx)?;
    for (name, value) in &limits {
        let path = format!("{}/{}", limits_path(&ctx.vhost), seg(name));
        let reply = ctx.api.put(&path, &json!({ "value": value }))?;
        if reply.status == 404 {
            return Err(CtlError::no_such_vhost(&ctx.vhost));
        }
        reply.ok()?;
    }
    for name in current.keys().filter(|name| !limits.contains_key(*name)) {
        ctx.api.delete(&format!("{}/{}", limits_path(&ctx.vhost), seg(name)))?.ok()?;
    }
    Ok(())
}

pub fn clear_vhost_limits(ctx: &mut Ctx) -> Result<()> {
    ctx.info(&format!("Clearing vhost \"{}\" limits ...", ctx.vhost));
    for name in current_limits(ctx)?.keys() {
        let reply = ctx.api.delete(&format!("{}/{}", limits_path(&ctx.vhost), seg(name)))?;
        if reply.status != 404 {
            reply.ok()?;
        }
    }
    Ok(())
}

pub fn list_vhost_limits(ctx: &mut Ctx, global: bool) -> Result<()> {
    let columns = ["vhost", "value"];
    if global {
        ctx.banner("Listing limits for all vhosts ...");
        let rows = ctx.api.get("/api/vhost-limits")?.ok()?.rows()?;
        ctx.rows(&columns, &[], &rows);
        return Ok(());
    }
    ctx.banner(&format!("Listing limits for vhost \"{}\" ...", ctx.vhost));
    let reply = ctx.api.get(&limits_path(&ctx.vhost))?;
    if reply.status == 404 {
        return Err(CtlError::no_such_vhost(&ctx.vhost));
    }
    let rows = reply.ok()?.rows()?;
    ctx.rows(&columns, &[], &rows);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_must_be_an_object_of_integers() {
        let limits = parse_limits(r#"{"max-connections":10,"max-queues":-1}"#).unwrap();
        assert_eq!(limits["max-queues"], -1);
        assert_eq!(parse_limits("[1]").unwrap_err().exit_code(), 65);
        assert_eq!(parse_limits(r#"{"max-queues":"x"}"#).unwrap_err().exit_code(), 65);
        assert!(parse_limits("{bad").unwrap_err().to_string().starts_with("JSON decoding error"));
    }
}
