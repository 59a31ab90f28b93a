//! Permission verbs: set/clear/list permissions and topic permissions
//! (`/api/permissions`, `/api/topic-permissions`).

use serde_json::{json, Value};

use super::{filter_rows, Ctx};
use crate::ctl::api::{seg, Reply};
use crate::ctl::error::{CtlError, Result};

fn permission_path(vhost: &str, user: &str) -> String {
    format!("/api/permissions/{}/{}", seg(vhost), seg(user))
}

fn topic_path(vhost: &str, user: &str) -> String {
    format!("/api/topic-permissions/{}/{}", seg(vhost), seg(user))
}

/// A PUT answered 400/404 names a missing user or vhost; say which.
fn put_checked(ctx: &Ctx, path: &str, user: &str, body: &Value) -> Result<()> {
    let reply = ctx.api.put(path, body)?;
    if matches!(reply.status, 400 | 404) {
        return Err(ctx.api.explain_missing(Some(user), &ctx.vhost, reply));
    }
    reply.ok().map(drop)
}

/// Clearing what is not there succeeds (as rabbitmqctl), unless the user or
/// the vhost is missing.
fn deleted_or_absent(ctx: &Ctx, user: &str, reply: Reply) -> Result<()> {
    if reply.status != 404 {
        return reply.ok().map(drop);
    }
    if !ctx.api.user_exists(user)? {
        return Err(CtlError::no_such_user(user));
    }
    if !ctx.api.vhost_exists(&ctx.vhost)? {
        return Err(CtlError::no_such_vhost(&ctx.vhost));
    }
    Ok(())
}

pub fn set_permissions(ctx: &mut Ctx, user: &str, configure: &str, write: &str, read: &str) -> Result<()> {
    ctx.info(&format!("Setting permissions for user \"{user}\" in vhost \"{}\" ...", ctx.vhost));
    let body = json!({"configure": configure, "write": write, "read": read});
    put_checked(ctx, &permission_path(&ctx.vhost, user), user, &body)
}

pub fn clear_permissions(ctx: &mut Ctx, user: &str) -> Result<()> {
    ctx.info(&format!("Clearing permissions for user \"{user}\" in vhost \"{}\" ...", ctx.vhost));
    let reply = ctx.api.delete(&permission_path(&ctx.vhost, user))?;
    deleted_or_absent(ctx, user, reply)
}

pub fn list_permissions(ctx: &mut Ctx, all_vhosts: bool) -> Result<()> {
    if all_vhosts {
        ctx.banner("Listing permissions in all vhosts ...");
        let rows = ctx.api.get("/api/permissions")?.ok()?.rows()?;
        ctx.rows(&["user", "vhost", "configure", "write", "read"], &[], &rows);
        return Ok(());
    }
    ctx.banner(&format!("Listing permissions for vhost \"{}\" ...", ctx.vhost));
    let reply = ctx.api.get(&format!("/api/vhosts/{}/permissions", seg(&ctx.vhost)))?;
    if reply.status == 404 {
        return Err(CtlError::no_such_vhost(&ctx.vhost));
    }
    let rows = reply.ok()?.rows()?;
    ctx.rows(&["user", "configure", "write", "read"], &[], &rows);
    Ok(())
}

pub fn list_user_permissions(ctx: &mut Ctx, user: &str) -> Result<()> {
    ctx.banner(&format!("Listing permissions for user \"{user}\" ..."));
    let reply = ctx.api.get(&format!("/api/users/{}/permissions", seg(user)))?;
    if reply.status == 404 {
        return Err(CtlError::no_such_user(user));
    }
    let rows = reply.ok()?.rows()?;
    ctx.rows(&["vhost", "configure", "write", "read"], &[], &rows);
    Ok(())
}

pub fn set_topic_permissions(
    ctx: &mut Ctx,
    user: &str,
    exchange: &str,
    write: &str,
    read: &str,
) -> Result<()> {
    ctx.info(&format!(
        "Setting topic permissions on \"{exchange}\" for user \"{user}\" in vhost \"{}\" ...",
        ctx.vhost
    ));
    let body = json!({"exchange": exchange, "write": write, "read": read});
    put_checked(ctx, &topic_path(&ctx.vhost, user), user, &body)
}

/// The user's topic permissions in the current vhost (empty if none).
fn user_topic_permissions(ctx: &Ctx, user: &str) -> Result<Vec<Value>> {
    let reply = ctx.api.get(&topic_path(&ctx.vhost, user))?;
    if reply.status == 404 {
        deleted_or_absent(ctx, user, reply)?;
        return Ok(Vec::new());
    }
    reply.ok()?.rows()
}

pub fn clear_topic_permissions(ctx: &mut Ctx, user: &str, exchange: Option<&str>) -> Result<()> {
    let Some(exchange) = exchange else {
        ctx.info(&format!("Clearing topic permissions for user \"{user}\" in vhost \"{}\" ...", ctx.vhost));
        let reply = ctx.api.delete(&topic_path(&ctx.vhost, user))?;
        return deleted_or_absent(ctx, user, reply);
    };
    ctx.info(&format!(
        "Clearing topic permissions on \"{exchange}\" for user \"{user}\" in vhost \"{}\" ...",
        ctx.vhost
    ));
    let before = user_topic_permissions(ctx, user)?;
    let is_target = |row: &Value| row.get("exchange").and_then(Value::as_str) == Some(exchange);
    if !before.iter().any(is_target) {
        return Ok(());
    }
    let keep: Vec<&Value> = before.iter().filter(|row| !is_target(row)).collect();
    let path = format!("{}?exchange={}", topic_path(&ctx.vhost, user), seg(exchange));
    deleted_or_absent(ctx, user, ctx.api.delete(&path)?)?;
    if keep.is_empty() {
        return Ok(());
    }
    // RabbitMQ 3.x ignores `?exchange=` and deletes all of the user's topic
    // permissions in the vhost: put back the ones that were not to go.
    let after = user_topic_permissions(ctx, user)?;
    for row in keep.into_iter().filter(|row| !after.contains(row)) {
        let body = json!({"exchange": row["exchange"], "write": row["write"], "read": row["read"]});
        put_checked(ctx, &topic_path(&ctx.vhost, user), user, &body)?;
    }
    Ok(())
}

pub fn list_topic_permissions(ctx: &mut Ctx, all_vhosts: bool) -> Result<()> {
    if all_vhosts {
        ctx.banner("Listing topic permissions in all vhosts ...");
        let rows = ctx.api.get("/api/topic-permissions")?.ok()?.rows()?;
        ctx.rows(&["user", "vhost", "exchange", "write", "read"], &[], &rows);
        return Ok(());
    }
    ctx.banner(&format!("Listing topic permissions for vhost \"{}\" ...", ctx.vhost));
    let rows = filter_rows(ctx.api.get("/api/topic-permissions")?.ok()?.rows()?, "vhost", &ctx.vhost);
    if rows.is_empty() && !ctx.api.vhost_exists(&ctx.vhost)? {
        return Err(CtlError::no_such_vhost(&ctx.vhost));
    }
    ctx.rows(&["user", "exchange", "write", "read"], &[], &rows);
    Ok(())
}

pub fn list_user_topic_permissions(ctx: &mut Ctx, user: &str) -> Result<()> {
    ctx.banner(&format!("Listing topic permissions for user \"{user}\" ..."));
    let rows = filter_rows(ctx.api.get("/api/topic-permissions")?.ok()?.rows()?, "user", user);
    if rows.is_empty() && !ctx.api.user_exists(user)? {
        return Err(CtlError::no_such_user(user));
    }
    ctx.rows(&["vhost", "exchange", "write", "read"], &[], &rows);
    Ok(())
}
