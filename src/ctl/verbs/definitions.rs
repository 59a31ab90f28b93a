//! Definitions verbs: export_definitions and import_definitions
//! (`/api/definitions`). Unlike rabbitmqctl, the file is read and written by
//! warrenctl, not by the broker.

use std::fs::OpenOptions;
use std::io::{Read, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

use serde_json::Value;

use super::Ctx;
use crate::ctl::api::seg;
use crate::ctl::error::{CtlError, Result};

fn definitions_path(ctx: &Ctx) -> String {
    if ctx.vhost_given {
        format!("/api/definitions/{}", seg(&ctx.vhost))
    } else {
        "/api/definitions".to_string()
    }
}

pub fn export(ctx: &mut Ctx, file: &str) -> Result<()> {
    if file != "-" {
        ctx.info(&format!("Exporting definitions in JSON to a file at \"{file}\" ..."));
    }
    let reply = ctx.api.get(&definitions_path(ctx))?;
    if ctx.vhost_given && matches!(reply.status, 400 | 404) {
        return Err(ctx.api.explain_missing(None, &ctx.vhost, reply));
    }
    let mut body = reply.ok()?.body;
    if !body.ends_with(b"\n") {
        body.push(b'\n');
    }
    if file == "-" {
        let _ = ctx.stdout.write_all(&body);
        return Ok(());
    }
    write_private(Path::new(file), &body)
        .map_err(|e| CtlError::Data(format!("cannot write to file \"{file}\": {e}")))
}

/// Writes `body` to `path`, readable and writable by this user only: the
/// definitions hold password hashes. A new file is created 0600; an
/// existing regular file is made 0600 before it is truncated and written
/// (anything else, e.g. `/dev/stdout` or a pipe, is just written to).
fn write_private(path: &Path, body: &[u8]) -> std::io::Result<()> {
    let mut out = OpenOptions::new().write(true).create(true).truncate(false).mode(0o600).open(path)?;
    if out.metadata()?.is_file() {
        // `mode` applies only to a file it creates.
        out.set_permissions(std::fs::Permissions::from_mode(0o600))?;
        out.set_len(0)?;
    }
    out.write_all(body)
}

pub fn import(ctx: &mut Ctx, file: &str) -> Result<()> {
    let body = if file == "-" {
        ctx.info("Importing definitions in JSON from standard input ...");
        let mut body = Vec::new();
        std::io::stdin()
            .read_to_end(&mut body)
            .map_err(|e| CtlError::Data(format!("cannot read standard input: {e}")))?;
        body
    } else {
        ctx.info(&format!("Importing definitions in JSON from a file at \"{file}\" ..."));
        std::fs::read(file).map_err(|e| CtlError::Data(format!("cannot read file \"{file}\": {e}")))?
    };
    if let Err(e) = serde_json::from_slice::<Value>(&body) {
        let source = if file == "-" { "standard input" } else { file };
        return Err(CtlError::Data(format!("{source} is not valid JSON: {e}")));
    }
    let reply = ctx.api.post_raw(&definitions_path(ctx), &body)?;
    if ctx.vhost_given && matches!(reply.status, 400 | 404) {
        return Err(ctx.api.explain_missing(None, &ctx.vhost, reply));
    }
    let reply = reply.ok()?;
    let answer: Value = serde_json::from_slice(&reply.body).unwrap_or_default();
    for skipped in answer.get("skipped").and_then(Value::as_array).into_iter().flatten() {
        ctx.warn(&describe_skipped(skipped));
    }
    Ok(())
}

/// One skipped object, e.g. `Skipped queue "q" in vhost "/": <reason>`.
fn describe_skipped(item: &Value) -> String {
    let text = |k: &str| item.get(k).and_then(Value::as_str);
    match (text("kind"), text("name")) {
        (Some(kind), Some(name)) => {
            let vhost = text("vhost").map(|v| format!(" in vhost \"{v}\"")).unwrap_or_default();
            let reason = text("reason").map(|r| format!(": {r}")).unwrap_or_default();
            format!("Skipped {kind} \"{name}\"{vhost}{reason}")
        }
        _ => format!("Skipped {item}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn skipped_objects_are_one_line_each() {
        let item = json!({"kind":"queue","vhost":"/","name":"q","reason":"inequivalent arg 'durable'"});
        assert_eq!(describe_skipped(&item), "Skipped queue \"q\" in vhost \"/\": inequivalent arg 'durable'");
        assert_eq!(describe_skipped(&json!({"kind":"user","name":"u"})), "Skipped user \"u\"");
        assert_eq!(describe_skipped(&json!({"x":1})), "Skipped {\"x\":1}");
    }
}
