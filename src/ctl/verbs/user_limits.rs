//! User limit verbs: set_user_limits, clear_user_limits, list_user_limits
//! (on `/api/user-limits`), with rabbitmqctl's arguments and messages.

use serde_json::{json, Map, Value};

use super::vhosts::parse_limits;
use super::Ctx;
use crate::ctl::api::seg;
use crate::ctl::error::{CtlError, Result};

fn limits_path(user: &str) -> String {
    format!("/api/user-limits/{}", seg(user))
}

/// The user's limits as a map of name to value, or "no such user".
fn current_limits(ctx: &Ctx, user: &str) -> Result<Map<String, Value>> {
    let reply = ctx.api.get(&limits_path(user))?;
    if reply.status == 404 {
        return Err(CtlError::no_such_user(user));
    }
    let mut limits = Map::new();
    for row in reply.ok()?.rows()? {
        if let Some(Value::Object(values)) = row.get("value") {
            limits.extend(values.clone());
        }
    }
    Ok(limits)
}

/// As rabbitmqctl's, the given limits are set and the others kept. A
/// negative value means "no limit".
pub fn set_user_limits(ctx: &mut Ctx, user: &str, text: &str) -> Result<()> {
    ctx.info(&format!("Setting user limits to \"{text}\" for user \"{user}\" ..."));
    let limits = parse_limits(text)?;
    current_limits(ctx, user)?;
    for (name, value) in &limits {
        let path = format!("{}/{}", limits_path(user), seg(name));
        ctx.api.put(&path, &json!({ "value": value }))?.ok()?;
    }
    Ok(())
}

/// `clear_user_limits USER NAME`, or `all`.
pub fn clear_user_limits(ctx: &mut Ctx, user: &str, which: &str) -> Result<()> {
    if which == "all" {
        ctx.info(&format!("Clearing all limits for user \"{user}\" ..."));
    } else {
        ctx.info(&format!("Clearing \"{which}\" limit for user \"{user}\" ..."));
    }
    let current = current_limits(ctx, user)?;
    for name in current.keys().filter(|name| which == "all" || *name == which) {
        ctx.api.delete(&format!("{}/{}", limits_path(user), seg(name)))?.ok()?;
    }
    Ok(())
}

/// One user's limits as a JSON object (rabbitmqctl's output), or with
/// `--global` every user's that has some (columns: user limits).
pub fn list_user_limits(ctx: &mut Ctx, user: &str, global: bool) -> Result<()> {
    if global {
        ctx.banner("Listing limits for all users ...");
        let rows: Vec<Value> = ctx
            .api
            .get("/api/user-limits")?
            .ok()?
            .rows()?
            .into_iter()
            .map(|r| json!({"user": r["user"], "limits": r["value"].to_string()}))
            .collect();
        ctx.rows(&["user", "limits"], &[], &rows);
        return Ok(());
    }
    ctx.banner(&format!("Listing limits for user \"{user}\" ..."));
    let limits = current_limits(ctx, user)?;
    ctx.say(&Value::Object(limits).to_string());
    Ok(())
}
