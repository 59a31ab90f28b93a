//! Connection verbs: list_connections, list_channels, list_consumers,
//! close_connection, close_all_connections and close_all_user_connections
//! (`/api/connections`, `/api/channels`, `/api/consumers`). Warren has no
//! Erlang pids: a connection or channel is named by its API `name`.

use serde_json::Value;

use super::listing::{columns, for_each_page, Alias};
use super::Ctx;
use crate::ctl::api::seg;
use crate::ctl::error::{CtlError, Result};

/// Closing this many connections or more reports progress on stderr.
const PROGRESS_EVERY: usize = 100;

const CONNECTION_ALIASES: &[(&str, Alias)] = &[("pid", Alias::Field("name"))];

const CHANNEL_ALIASES: &[(&str, Alias)] =
    &[("pid", Alias::Field("name")), ("connection", Alias::Field("connection_details.name"))];

const CONSUMER_ALIASES: &[(&str, Alias)] = &[
    ("queue_name", Alias::Field("queue.name")),
    ("channel_pid", Alias::Field("channel_details.name")),
    ("connection_name", Alias::Field("channel_details.connection_name")),
];

pub fn list_connections(ctx: &mut Ctx, asked: &[String]) -> Result<()> {
    ctx.banner("Listing connections ...");
    let columns = columns(asked, &["user", "peer_host", "peer_port", "state"], CONNECTION_ALIASES);
    ctx.paged_listing("/api/connections", None, &columns)
}

pub fn list_channels(ctx: &mut Ctx, asked: &[String]) -> Result<()> {
    ctx.banner("Listing channels ...");
    let defaults = ["pid", "user", "consumer_count", "messages_unacknowledged"];
    let columns = columns(asked, &defaults, CHANNEL_ALIASES);
    ctx.paged_listing("/api/channels", None, &columns)
}

pub fn list_consumers(ctx: &mut Ctx, asked: &[String]) -> Result<()> {
    ctx.banner(&format!("Listing consumers in vhost {} ...", ctx.vhost));
    let defaults = [
        "queue_name",
        "channel_pid",
        "consumer_tag",
        "ack_required",
        "prefetch_count",
        "active",
        "arguments",
    ];
    let columns = columns(asked, &defaults, CONSUMER_ALIASES);
    let path = format!("/api/consumers/{}", seg(&ctx.vhost));
    let vhost = ctx.vhost.clone();
    ctx.whole_listing(&path, Some(&vhost), &columns)
}

fn connection_path(name: &str) -> String {
    format!("/api/connections/{}", seg(name))
}

pub fn close_connection(ctx: &mut Ctx, name: &str, explanation: &str) -> Result<()> {
    ctx.info(&format!("Closing connection {name}, reason: {explanation}..."));
    let reply = ctx.api.delete_with_reason(&connection_path(name), explanation)?;
    if reply.status == 404 {
        return Err(CtlError::NotFound(format!("Connection not found: '{name}'")));
    }
    reply.ok().map(drop)
}

/// Lists the connections (of `vhost`, or all) a page at a time, then closes
/// each; one that is already gone is not an error.
pub fn close_all_connections(
    ctx: &mut Ctx,
    global: bool,
    limit: Option<usize>,
    explanation: &str,
) -> Result<()> {
    let vhost = ctx.vhost.clone();
    if global {
        ctx.info(&format!("Closing all connections to node {}, reason: {explanation}...", target(ctx)));
    } else {
        ctx.info(&format!("Closing all connections in vhost {vhost}, reason: {explanation}..."));
    }
    let mut names = Vec::new();
    let limit = limit.unwrap_or(usize::MAX);
    for_each_page(ctx.api, "/api/connections", "columns=name,vhost", None, |items| {
        for item in items {
            let in_vhost = global || item.get("vhost").and_then(Value::as_str) == Some(vhost.as_str());
            if let (true, Some(name)) = (in_vhost, item.get("name").and_then(Value::as_str)) {
                names.push(name.to_string());
            }
        }
        names.len() < limit
    })?;
    names.truncate(limit);
    let total = names.len();
    let mut closed = 0;
    for (i, name) in names.iter().enumerate() {
        let reply = ctx.api.delete_with_reason(&connection_path(name), explanation)?;
        if reply.status != 404 {
            reply.ok()?;
            closed += 1;
        }
        if total >= PROGRESS_EVERY && (i + 1) % PROGRESS_EVERY == 0 && ctx.style.chatty() {
            ctx.warn(&format!("Closed {} of {total} connections ...", i + 1));
        }
    }
    ctx.info(&format!("Closed {closed} connection{}", if closed == 1 { "" } else { "s" }));
    Ok(())
}

fn target(ctx: &Ctx) -> String {
    ctx.api.endpoint().describe()
}

pub fn close_all_user_connections(ctx: &mut Ctx, user: &str, explanation: &str) -> Result<()> {
    ctx.info(&format!("Closing connections of user {user}, reason: {explanation}..."));
    let reply =
        ctx.api.delete_with_reason(&format!("/api/connections/username/{}", seg(user)), explanation)?;
    // A user without connections (or without a user record) is not an error, as in rabbitmqctl.
    if reply.status == 404 {
        return Ok(());
    }
    reply.ok().map(drop)
}
