//! Queue verbs: list_queues, purge_queue, delete_queue and get
//! (`/api/queues/{vhost}[/{queue}[/contents|/get]]`).

use serde_json::{json, Value};

use super::listing::{columns, Alias};
use super::Ctx;
use crate::ctl::api::{seg, Reply};
use crate::ctl::error::{error_fields, status_error, CtlError, Result};

/// rabbitmqctl's names that differ from the API's: Warren has no Erlang
/// pids, so the pid columns show the names that stand for them.
const ALIASES: &[(&str, Alias)] =
    &[("pid", Alias::Field("name")), ("owner_pid", Alias::Field("owner_pid_details.name"))];

pub fn queue_path(vhost: &str, queue: &str) -> String {
    format!("/api/queues/{}/{}", seg(vhost), seg(queue))
}

/// After a failed request on queue `queue`: "Queue not found" (64) if
/// the vhost exists, else the missing vhost (65), else the API's error.
pub fn queue_error(ctx: &Ctx, queue: &str, failed: Reply) -> CtlError {
    if failed.status != 404 && !mentions_not_found(&failed) {
        return status_error(failed.status, &failed.body);
    }
    match ctx.api.vhost_exists(&ctx.vhost) {
        Ok(false) => CtlError::no_such_vhost(&ctx.vhost),
        Ok(true) => CtlError::NotFound(format!("Queue not found: '{queue}' in vhost '{}'", ctx.vhost)),
        Err(e) => e,
    }
}

/// RabbitMQ answers some missing objects with 400 and a `NOT_FOUND` reason.
pub fn mentions_not_found(reply: &Reply) -> bool {
    reply.status == 400 && error_fields(&reply.body).1.is_some_and(|r| r.contains("NOT_FOUND"))
}

pub fn list_queues(ctx: &mut Ctx, asked: &[String]) -> Result<()> {
    ctx.banner(&format!("Listing queues for vhost {} ...", ctx.vhost));
    let columns = columns(asked, &["name", "messages"], ALIASES);
    let path = format!("/api/queues/{}", seg(&ctx.vhost));
    let vhost = ctx.vhost.clone();
    ctx.paged_listing(&path, Some(&vhost), &columns)
}

pub fn purge_queue(ctx: &mut Ctx, queue: &str) -> Result<()> {
    ctx.info(&format!("Purging queue '{queue}' in vhost '{}' ...", ctx.vhost));
    let reply = ctx.api.delete(&format!("{}/contents", queue_path(&ctx.vhost, queue)))?;
    if !reply.is_success() {
        return Err(queue_error(ctx, queue, reply));
    }
    Ok(())
}

/// Reads the queue first for its message count (rabbitmqctl reports it),
/// then deletes it; `--if-empty`/`--if-unused` are checked by the broker.
pub fn delete_queue(ctx: &mut Ctx, queue: &str, if_empty: bool, if_unused: bool) -> Result<()> {
    let condition = match (if_empty, if_unused) {
        (true, true) => " if queue is empty and if queue is unused",
        (true, false) => " if queue is empty",
        (false, true) => " if queue is unused",
        (false, false) => "",
    };
    ctx.info(&format!("Deleting queue '{queue}' on vhost '{}'{condition} ...", ctx.vhost));
    let path = queue_path(&ctx.vhost, queue);
    let reply = ctx.api.get(&path)?;
    if !reply.is_success() {
        return Err(queue_error(ctx, queue, reply));
    }
    let messages = reply.json()?.get("messages").and_then(Value::as_u64).unwrap_or(0);
    let mut conditions = Vec::new();
    if if_empty {
        conditions.push("if-empty=true");
    }
    if if_unused {
        conditions.push("if-unused=true");
    }
    let query = if conditions.is_empty() { String::new() } else { format!("?{}", conditions.join("&")) };
    let reply = ctx.api.delete(&format!("{path}{query}"))?;
    if reply.status == 400 {
        let reason = error_fields(&reply.body).1.unwrap_or_default();
        if reason.contains("not empty") {
            return Err(CtlError::Usage("Queue is not empty".into()));
        }
        if reason.contains("in use") || reason.contains("consumers") {
            return Err(CtlError::Usage("Queue is in use".into()));
        }
    }
    if !reply.is_success() {
        return Err(queue_error(ctx, queue, reply));
    }
    ctx.info(&format!("Queue was successfully deleted with {messages} message{}", plural(messages)));
    Ok(())
}

fn plural(n: u64) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

/// The ack modes of `POST /api/queues/{vh}/{q}/get`.
pub const ACK_MODES: [&str; 4] =
    ["ack_requeue_true", "ack_requeue_false", "reject_requeue_true", "reject_requeue_false"];

/// Fetches up to `count` messages, as the management UI's "Get messages":
/// `ack_requeue_true` (the default) puts them back.
pub fn get(
    ctx: &mut Ctx,
    queue: &str,
    count: u32,
    ackmode: &str,
    encoding: &str,
    asked: &[String],
) -> Result<()> {
    ctx.banner(&format!("Getting messages from queue '{queue}' in vhost '{}' ...", ctx.vhost));
    let body = json!({"count": count, "ackmode": ackmode, "encoding": encoding});
    let reply = ctx.api.post(&format!("{}/get", queue_path(&ctx.vhost, queue)), &body)?;
    if !reply.is_success() {
        return Err(queue_error(ctx, queue, reply));
    }
    let rows = reply.rows()?;
    let defaults = [
        "routing_key",
        "exchange",
        "message_count",
        "payload_bytes",
        "payload_encoding",
        "payload",
        "redelivered",
        "properties",
    ];
    let columns = columns(asked, &defaults, &[]);
    let mut printer = super::listing::Printer::start(ctx.style, &columns, ctx.stdout);
    printer.rows(&rows);
    printer.finish();
    Ok(())
}
