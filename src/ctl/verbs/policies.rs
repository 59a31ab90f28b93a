//! Policy verbs, for user policies (`/api/policies`) and operator policies
//! (`/api/operator-policies`), which differ only in path and wording.

use serde_json::{json, Value};

use super::Ctx;
use crate::ctl::api::seg;
use crate::ctl::cli::PolicyArgs;
use crate::ctl::error::{CtlError, Result};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    User,
    Operator,
}

impl Kind {
    fn base(self) -> &'static str {
        match self {
            Kind::User => "/api/policies",
            Kind::Operator => "/api/operator-policies",
        }
    }

    /// How rabbitmqctl names it when setting.
    fn setting(self) -> &'static str {
        match self {
            Kind::User => "policy",
            Kind::Operator => "operator policy override",
        }
    }

    /// How rabbitmqctl names it when clearing.
    fn clearing(self) -> &'static str {
        match self {
            Kind::User => "policy",
            Kind::Operator => "operator policy",
        }
    }

    /// How rabbitmqctl names them when listing.
    fn listing(self) -> &'static str {
        match self {
            Kind::User => "policies",
            Kind::Operator => "operator policy overrides",
        }
    }
}

const COLUMNS: [&str; 6] = ["vhost", "name", "pattern", "apply-to", "definition", "priority"];

/// The definition argument: a JSON object.
fn parse_definition(text: &str) -> Result<Value> {
    let value: Value =
        serde_json::from_str(text).map_err(|e| CtlError::Data(format!("JSON decoding error: {e}")))?;
    if !value.is_object() {
        return Err(CtlError::Data(format!("the policy definition must be a JSON object, not {text}")));
    }
    Ok(value)
}

pub fn set(ctx: &mut Ctx, kind: Kind, args: &PolicyArgs) -> Result<()> {
    ctx.info(&format!(
        "Setting {} \"{}\" for pattern \"{}\" to \"{}\" with priority \"{}\" for vhost \"{}\" ...",
        kind.setting(),
        args.name,
        args.pattern,
        args.definition,
        args.priority,
        ctx.vhost
    ));
    let definition = parse_definition(&args.definition)?;
    let body = json!({
        "pattern": args.pattern,
        "definition": definition,
        "priority": args.priority,
        "apply-to": args.apply_to,
    });
    let path = format!("{}/{}/{}", kind.base(), seg(&ctx.vhost), seg(&args.name));
    let reply = ctx.api.put(&path, &body)?;
    if reply.status == 404 {
        return Err(ctx.api.explain_missing(None, &ctx.vhost, reply));
    }
    reply.ok().map(drop)
}

pub fn clear(ctx: &mut Ctx, kind: Kind, name: &str) -> Result<()> {
    ctx.info(&format!("Clearing {} \"{name}\" on vhost \"{}\" ...", kind.clearing(), ctx.vhost));
    let path = format!("{}/{}/{}", kind.base(), seg(&ctx.vhost), seg(name));
    let reply = ctx.api.delete(&path)?;
    if reply.status == 404 {
        if !ctx.api.vhost_exists(&ctx.vhost)? {
            return Err(CtlError::no_such_vhost(&ctx.vhost));
        }
        let what = kind.clearing();
        return Err(CtlError::NotFound(format!("No {what} \"{name}\" in vhost \"{}\"", ctx.vhost)));
    }
    reply.ok().map(drop)
}

pub fn list(ctx: &mut Ctx, kind: Kind, all_vhosts: bool) -> Result<()> {
    if all_vhosts {
        ctx.banner(&format!("Listing {} in all vhosts ...", kind.listing()));
        let rows = ctx.api.get(kind.base())?.ok()?.rows()?;
        ctx.rows(&COLUMNS, &[], &rows);
        return Ok(());
    }
    ctx.banner(&format!("Listing {} for vhost \"{}\" ...", kind.listing(), ctx.vhost));
    let reply = ctx.api.get(&format!("{}/{}", kind.base(), seg(&ctx.vhost)))?;
    if reply.status == 404 {
        return Err(CtlError::no_such_vhost(&ctx.vhost));
    }
    let rows = reply.ok()?.rows()?;
    ctx.rows(&COLUMNS, &[], &rows);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn definitions_must_be_json_objects() {
        assert_eq!(parse_definition(r#"{"max-length":5}"#).unwrap()["max-length"], 5);
        assert_eq!(parse_definition("{bad").unwrap_err().exit_code(), 65);
        assert_eq!(parse_definition("[]").unwrap_err().exit_code(), 65);
    }
}
