//! Importing a definitions document: validate all of it, then apply it.

use std::collections::BTreeSet;

use serde_json::Value;
use tracing::{info, warn};

use super::{invalid, DefinitionsError, ImportReport, Skipped};
use crate::access::{Access, AccessError, Algorithm, Credential, PasswordHash, Pattern, UserLimits};
use crate::broker::policy::{Kind, Policy};
use crate::broker::vhost::{ExchangeDecl, Limits, QueueDecl, VHostMeta};
use crate::broker::Broker;
use crate::protocol::json::json_to_table;

/// The connection id declarations made by an import run as (none owns them).
const NO_CONNECTION: u64 = 0;

struct UserPlan {
    name: String,
    credential: Credential,
    tags: Vec<String>,
    /// Given in the file (`{}` clears them, as RabbitMQ does).
    limits: Option<UserLimits>,
}

struct Plan {
    vhosts: Vec<(String, Option<VHostMeta>)>,
    users: Vec<UserPlan>,
    permissions: Vec<[String; 5]>,
    topic_permissions: Vec<[String; 5]>,
    limits: Vec<(String, Limits)>,
    policies: Vec<(String, Policy)>,
    exchanges: Vec<(String, ExchangeDecl)>,
    queues: Vec<(String, QueueDecl)>,
    /// vhost, source, destination, to a queue, key, arguments.
    bindings: Vec<(String, String, String, bool, String, amq_protocol::types::FieldTable)>,
    skipped: Vec<Skipped>,
}

fn list<'a>(doc: &'a Value, key: &str) -> Result<&'a [Value], DefinitionsError> {
    match doc.get(key) {
        None | Some(Value::Null) => Ok(&[]),
        Some(Value::Array(a)) => Ok(a),
        Some(_) => Err(invalid(format!("'{key}' must be a list"))),
    }
}

/// A string field. The error names the field, never the item: a user's
/// item may hold a password.
fn text(item: &Value, key: &str, what: &str) -> Result<String, DefinitionsError> {
    match item.get(key) {
        Some(Value::String(s)) => Ok(s.clone()),
        _ => Err(invalid(format!("{what} without a string '{key}'"))),
    }
}

/// A name that must not be empty.
fn name(item: &Value, what: &str) -> Result<String, DefinitionsError> {
    let n = text(item, "name", what)?;
    if n.is_empty() {
        return Err(invalid(format!("{what} with an empty name")));
    }
    Ok(n)
}

fn opt_text(item: &Value, key: &str) -> Option<String> {
    item.get(key).and_then(Value::as_str).map(str::to_owned)
}

/// A boolean, also as "true"/"false" (rabbitmqadmin writes them so).
fn flag(item: &Value, key: &str, default: bool) -> Result<bool, DefinitionsError> {
    match item.get(key) {
        None | Some(Value::Null) => Ok(default),
        Some(Value::Bool(b)) => Ok(*b),
        Some(Value::String(s)) if s == "true" => Ok(true),
        Some(Value::String(s)) if s == "false" => Ok(false),
        Some(v) => Err(invalid(format!("'{key}' must be true or false, not {v}"))),
    }
}

/// Tags as a list or as RabbitMQ's comma-joined string, read as the API
/// reads them.
fn tags(item: &Value) -> Result<Vec<String>, DefinitionsError> {
    let Some(fields) = item.as_object() else { return Ok(Vec::new()) };
    let tags = crate::admin::input::tags(fields, "tags").map_err(|e| invalid(e.to_string()))?;
    Ok(tags.unwrap_or_default())
}

fn arguments(item: &Value, what: &str) -> Result<amq_protocol::types::FieldTable, DefinitionsError> {
    match item.get("arguments") {
        None => Ok(Default::default()),
        Some(v) => json_to_table(v).ok_or_else(|| invalid(format!("{what}: 'arguments' must be an object"))),
    }
}

/// The algorithm of a hash given without one: RabbitMQ's rule, by the
/// exporting version (MD5 before 3.6).
fn default_algorithm(doc: &Value) -> &'static str {
    let version = doc.get("rabbit_version").and_then(Value::as_str).unwrap_or("");
    let mut parts = version.split('.').map(|p| p.parse::<u32>().unwrap_or(0));
    match (parts.next(), parts.next()) {
        (Some(3), Some(minor)) if minor < 6 => Algorithm::Md5.name(),
        (Some(major), _) if major > 0 && major < 3 => Algorithm::Md5.name(),
        _ => Algorithm::Sha256.name(),
    }
}

fn plan(broker: &Broker, doc: &Value, only: Option<&str>) -> Result<Plan, DefinitionsError> {
    if !doc.is_object() {
        return Err(invalid("definitions must be a JSON object"));
    }
    let mut p = Plan {
        vhosts: Vec::new(),
        users: Vec::new(),
        permissions: Vec::new(),
        topic_permissions: Vec::new(),
        limits: Vec::new(),
        policies: Vec::new(),
        exchanges: Vec::new(),
        queues: Vec::new(),
        bindings: Vec::new(),
        skipped: Vec::new(),
    };
    let mut known: BTreeSet<String> = broker.vhosts().iter().map(|v| v.name.clone()).collect();
    if only.is_none() {
        for v in list(doc, "vhosts")? {
            let name = name(v, "a vhost")?;
            let md = v.get("metadata");
            let field = |k: &str| v.get(k).or_else(|| md.and_then(|m| m.get(k)));
            let given =
                field("description").is_some() || field("tags").is_some() || v.get("limits").is_some();
            let vhost_tags = field("tags")
                .map(|t| tags(&serde_json::json!({ "tags": t })))
                .transpose()?
                .unwrap_or_default();
            let meta = given.then(|| VHostMeta {
                description: field("description").and_then(Value::as_str).unwrap_or_default().to_owned(),
                tags: vhost_tags,
                default_queue_type: field("default_queue_type").and_then(Value::as_str).map(str::to_owned),
                limits: Limits::default(),
            });
            // `rabbitmqctl export_definitions` writes limits here, as pairs.
            if let Some(l) = v.get("limits") {
                let limits = parse_limits(l).map_err(|e| invalid(format!("vhost '{name}' limits: {e}")))?;
                if !limits.is_empty() {
                    p.limits.push((name.clone(), limits));
                }
            }
            known.insert(name.clone());
            p.vhosts.push((name, meta));
        }
        let fallback = default_algorithm(doc);
        for u in list(doc, "users")? {
            let name = name(u, "a user")?;
            let credential = match (opt_text(u, "password"), opt_text(u, "password_hash")) {
                (Some(pw), _) if !pw.is_empty() => Credential::Password(pw),
                (_, Some(hash)) if !hash.is_empty() => {
                    let algorithm = opt_text(u, "hashing_algorithm").unwrap_or_else(|| fallback.to_owned());
                    PasswordHash::from_base64(&hash, &algorithm)
                        .map_err(|e| invalid(format!("user '{name}': {e}")))?;
                    Credential::Hash { hash, algorithm }
                }
                _ => Credential::None,
            };
            let limits = u
                .get("limits")
                .map(parse_user_limits)
                .transpose()
                .map_err(|e| invalid(format!("user '{name}' limits: {e}")))?;
            p.users.push(UserPlan { name, credential, tags: tags(u)?, limits });
        }
    }
    let vhost_of = |item: &Value, what: &str| -> Result<String, DefinitionsError> {
        let v = match only {
            Some(v) => v.to_owned(),
            None => text(item, "vhost", what)?,
        };
        if known.contains(&v) {
            Ok(v)
        } else {
            Err(invalid(format!("{what} names vhost '{v}', which does not exist")))
        }
    };
    if only.is_none() {
        for (key, is_topic) in [("permissions", false), ("topic_permissions", true)] {
            for x in list(doc, key)? {
                let what = if is_topic { "a topic permission" } else { "a permission" };
                let vhost = vhost_of(x, what)?;
                let user = text(x, "user", what)?;
                let third = if is_topic { text(x, "exchange", what)? } else { text(x, "configure", what)? };
                let (write, read) = (text(x, "write", what)?, text(x, "read", what)?);
                // Topic patterns as they will be compiled: with the names put in.
                for pattern in [&write, &read].into_iter().chain((!is_topic).then_some(&third)) {
                    let compiled = if is_topic {
                        Pattern::expanded(pattern, &user, &vhost)
                    } else {
                        Pattern::new(pattern)
                    };
                    compiled.map_err(|e| invalid(format!("{what} of user '{user}': {e}")))?;
                }
                let row = [vhost, user, third, write, read];
                if is_topic {
                    p.topic_permissions.push(row)
                } else {
                    p.permissions.push(row)
                }
            }
        }
    }
    for x in list(doc, "policies")? {
        let vhost = vhost_of(x, "a policy")?;
        let name = text(x, "name", "a policy")?;
        let mut x = x.clone();
        if let Some(d) = x.get_mut("definition") {
            *d = pairs_to_object(d.take());
        }
        let policy =
            Policy::from_json(&name, &x, Kind::User).map_err(|e| invalid(format!("policy '{name}': {e}")))?;
        p.policies.push((vhost, policy));
    }
    for x in list(doc, "parameters")? {
        let vhost = vhost_of(x, "a parameter")?;
        let (component, name) = (text(x, "component", "a parameter")?, text(x, "name", "a parameter")?);
        let mut value = x.get("value").cloned().unwrap_or(Value::Null);
        if let Some(d) = value.get_mut("definition") {
            *d = pairs_to_object(d.take());
        }
        match component.as_str() {
            "vhost-limits" => {
                let limits =
                    parse_limits(&value).map_err(|e| invalid(format!("vhost '{vhost}' limits: {e}")))?;
                p.limits.push((vhost, limits));
            }
            "operator_policy" => {
                let policy = Policy::from_json(&name, &value, Kind::Operator)
                    .map_err(|e| invalid(format!("operator policy '{name}': {e}")))?;
                p.policies.push((vhost, policy));
            }
            other => p.skipped.push(Skipped {
                kind: "parameter",
                vhost,
                name,
                reason: format!("component '{other}' is not supported by Warren"),
            }),
        }
    }
    for x in list(doc, "exchanges")? {
        let vhost = vhost_of(x, "an exchange")?;
        let name = name(x, "an exchange")?;
        p.exchanges.push((
            vhost,
            ExchangeDecl {
                kind: text(x, "type", "an exchange")?,
                passive: false,
                durable: flag(x, "durable", true)?,
                auto_delete: flag(x, "auto_delete", false)?,
                internal: flag(x, "internal", false)?,
                arguments: arguments(x, &format!("exchange '{name}'"))?,
                name,
            },
        ));
    }
    for x in list(doc, "queues")? {
        let vhost = vhost_of(x, "a queue")?;
        let name = name(x, "a queue")?;
        p.queues.push((
            vhost,
            QueueDecl {
                server_named: false,
                passive: false,
                durable: flag(x, "durable", true)?,
                exclusive: false,
                auto_delete: flag(x, "auto_delete", false)?,
                arguments: arguments(x, &format!("queue '{name}'"))?,
                name,
            },
        ));
    }
    for x in list(doc, "bindings")? {
        let vhost = vhost_of(x, "a binding")?;
        let to_queue = match text(x, "destination_type", "a binding")?.as_str() {
            "queue" => true,
            "exchange" => false,
            other => return Err(invalid(format!("binding destination_type '{other}': queue or exchange"))),
        };
        p.bindings.push((
            vhost,
            text(x, "source", "a binding")?,
            text(x, "destination", "a binding")?,
            to_queue,
            opt_text(x, "routing_key").unwrap_or_default(),
            arguments(x, "a binding")?,
        ));
    }
    Ok(p)
}

/// `rabbitmqctl export_definitions` (3.10) writes some maps as Erlang
/// property lists, `[["max-length", 5]]`: as the object they stand for.
fn pairs_to_object(v: Value) -> Value {
    match v {
        Value::Array(items)
            if !items.is_empty()
                && items.iter().all(|i| matches!(i, Value::Array(p) if p.len() == 2 && p[0].is_string())) =>
        {
            Value::Object(
                items
                    .into_iter()
                    .filter_map(|i| match i {
                        Value::Array(mut p) => {
                            let v = p.pop()?;
                            Some((p.pop()?.as_str()?.to_owned(), v))
                        }
                        _ => None,
                    })
                    .collect(),
            )
        }
        other => other,
    }
}

/// `{"max-connections": N, "max-queues": N}` (or as pairs); a negative
/// value is no limit.
pub fn parse_limits(value: &Value) -> Result<Limits, String> {
    let value = pairs_to_object(value.clone());
    let Value::Object(m) = &value else {
        return Ok(Limits::default()); // RabbitMQ exports cleared limits as []
    };
    let mut limits = Limits::default();
    for (k, v) in m {
        let n = v.as_i64().or_else(|| v.as_str().and_then(|s| s.trim().parse().ok()));
        let n = n.ok_or_else(|| format!("'{k}' must be an integer, not {v}"))?;
        let n = u64::try_from(n).ok();
        match k.as_str() {
            "max-connections" => limits.max_connections = n,
            "max-queues" => limits.max_queues = n,
            other => return Err(format!("unknown limit '{other}' (max-connections, max-queues)")),
        }
    }
    Ok(limits)
}

/// `{"max-connections": N, "max-channels": N}` (or as pairs) of a user.
pub fn parse_user_limits(value: &Value) -> Result<UserLimits, String> {
    let value = pairs_to_object(value.clone());
    let Value::Object(m) = &value else { return Ok(UserLimits::default()) };
    let mut limits = UserLimits::default();
    for (k, v) in m {
        let n = v.as_i64().or_else(|| v.as_str().and_then(|s| s.trim().parse().ok()));
        let n = n.ok_or_else(|| format!("'{k}' must be an integer, not {v}"))?;
        *limits.slot(k).ok_or_else(|| format!("unknown limit '{k}' (max-connections, max-channels)"))? =
            Some(n);
    }
    Ok(limits)
}

fn store_err(e: AccessError) -> DefinitionsError {
    match e {
        AccessError::Store => DefinitionsError::Store,
        other => invalid(other.to_string()),
    }
}

/// Imports a definitions document (the whole broker's, or `vhost`'s alone).
pub fn import(
    broker: &Broker,
    access: &Access,
    body: &[u8],
    vhost: Option<&str>,
) -> Result<ImportReport, DefinitionsError> {
    let doc: Value = serde_json::from_slice(body).map_err(|_| DefinitionsError::BadJson)?;
    if let Some(v) = vhost {
        if broker.vhost(v).is_none() {
            return Err(invalid(format!("vhost '{v}' does not exist")));
        }
    }
    let mut plan = plan(broker, &doc, vhost)?;
    // Users named by permissions must exist by the time those are set.
    for [_, user, ..] in plan.permissions.iter().chain(&plan.topic_permissions) {
        if access.user(user).is_none() && !plan.users.iter().any(|u| &u.name == user) {
            return Err(invalid(format!("a permission names user '{user}', who does not exist")));
        }
    }
    for (name, meta) in &plan.vhosts {
        let meta = match (meta, broker.vhost(name)) {
            (Some(m), _) => m.clone(),
            (None, Some(existing)) => existing.meta(),
            (None, None) => VHostMeta::default(),
        };
        broker.put_vhost(name, meta).map_err(|e| match e {
            crate::broker::VHostError::Store => DefinitionsError::Store,
            other => invalid(other.to_string()),
        })?;
    }
    for u in plan.users.drain(..) {
        let (_, password_changed) =
            access.put_user(&u.name, Some(u.credential), Some(u.tags)).map_err(store_err)?;
        if let Some(limits) = u.limits {
            access.set_user_limits(&u.name, limits).map_err(store_err)?;
        }
        if password_changed {
            let reason = format!("user '{}' password changed", u.name);
            broker.connections.close_where(|c| c.user == u.name, &reason);
        }
    }
    // Each under its vhost's life: none may outlive a vhost deleted meanwhile.
    let gone = |v: &str| invalid(format!("vhost '{v}' was deleted during the import"));
    for [v, u, c, w, r] in &plan.permissions {
        broker
            .with_vhost(v, |_| access.set_permission(v, u, c, w, r))
            .ok_or_else(|| gone(v))?
            .map_err(store_err)?;
    }
    for [v, u, x, w, r] in &plan.topic_permissions {
        broker
            .with_vhost(v, |_| access.set_topic_permission(v, u, x, w, r))
            .ok_or_else(|| gone(v))?
            .map_err(store_err)?;
    }
    let vhost = |name: &str| broker.vhost(name).ok_or_else(|| invalid(format!("vhost '{name}' vanished")));
    for (v, limits) in plan.limits.drain(..) {
        let v = vhost(&v)?;
        let mut meta = v.meta();
        meta.limits = limits;
        if !v.set_meta(meta) {
            return Err(DefinitionsError::Store);
        }
    }
    // All of a vhost's policies at once: a queue never sees some without the others.
    let mut by_vhost: std::collections::BTreeMap<String, Vec<Policy>> = Default::default();
    for (v, policy) in plan.policies.drain(..) {
        by_vhost.entry(v).or_default().push(policy);
    }
    for (v, policies) in by_vhost {
        for warning in vhost(&v)?.set_policies(policies).map_err(|e| invalid(e.to_string()))? {
            warn!(vhost = %v, "{warning}");
        }
    }
    let mut skip = |kind: &'static str, vhost: &str, name: String, reason: String| {
        warn!(kind, vhost, name = %name, "definitions import skipped an object: {reason}");
        plan.skipped.push(Skipped { kind, vhost: vhost.to_owned(), name, reason });
    };
    for (v, decl) in plan.exchanges.drain(..) {
        let name = decl.name.clone();
        if let Err(e) = vhost(&v)?.declare_exchange(decl) {
            skip("exchange", &v, name, e.to_string());
        }
    }
    for (v, decl) in plan.queues.drain(..) {
        let name = decl.name.clone();
        if let Err(e) = vhost(&v)?.declare_queue(decl, NO_CONNECTION) {
            skip("queue", &v, name, e.to_string());
        }
    }
    for (v, source, dest, to_queue, key, args) in plan.bindings.drain(..) {
        let vh = vhost(&v)?;
        let done = if to_queue {
            vh.bind_queue(&dest, &source, &key, args, NO_CONNECTION)
        } else {
            vh.bind_exchange(&dest, &source, &key, args)
        };
        if let Err(e) = done {
            skip("binding", &v, format!("{source} -> {dest} ({key})"), e.to_string());
        }
    }
    info!(skipped = plan.skipped.len(), "definitions imported");
    Ok(ImportReport { skipped: plan.skipped })
}
