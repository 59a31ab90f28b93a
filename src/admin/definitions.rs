//! RabbitMQ's definitions: the whole broker's (or one vhost's) users,
//! vhosts, permissions, policies, exchanges, queues and bindings as one JSON
//! document, exported and imported (by the API, warrenctl, and at boot).
//!
//! Import is additive, as in RabbitMQ: users, vhosts, permissions and
//! policies are created or overwritten; a queue, exchange or binding that
//! conflicts with an existing one is skipped, and every skip is reported
//! (RabbitMQ skips silently). Everything is validated before anything
//! changes: a file with a bad hash, regex, policy, or a vhost that neither
//! exists nor is in the file, changes nothing.

use serde::Serialize;
use serde_json::{json, Map, Value};

use crate::access::Access;
use crate::broker::policy::Kind;
use crate::broker::Broker;
use crate::protocol::json::table_to_json;

/// The RabbitMQ version whose format this is (RabbitMQ reads it to guess a
/// missing `hashing_algorithm`; every user Warren exports names its own).
pub const FORMAT_VERSION: &str = "3.10.8";

/// One object an import left alone, and why.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Skipped {
    pub kind: &'static str,
    pub vhost: String,
    pub name: String,
    pub reason: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ImportReport {
    pub skipped: Vec<Skipped>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DefinitionsError {
    /// RabbitMQ's reason for a body that is not JSON.
    #[error("failed_to_parse_json")]
    BadJson,
    #[error("{0}")]
    Invalid(String),
    #[error("the change could not be written to disk")]
    Store,
}

fn invalid(s: impl Into<String>) -> DefinitionsError {
    DefinitionsError::Invalid(s.into())
}

/// The definitions of the whole broker, or of one vhost (RabbitMQ's
/// per-vhost shape: no users, vhosts or permissions; queues, exchanges and
/// bindings without `vhost`).
pub fn export(broker: &Broker, access: &Access, vhost: Option<&str>) -> Value {
    let vhosts: Vec<_> = broker.vhosts().into_iter().filter(|v| vhost.is_none_or(|n| v.name == n)).collect();
    let (mut queues, mut exchanges, mut bindings, mut policies, mut parameters) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let scoped = |mut item: Map<String, Value>, name: &str| {
        if vhost.is_none() {
            item.insert("vhost".into(), Value::String(name.to_owned()));
        }
        Value::Object(item)
    };
    for v in &vhosts {
        let limits = v.limits();
        if !limits.is_empty() {
            parameters.push(json!({"vhost": v.name, "component": "vhost-limits", "name": "limits",
                "value": serde_json::to_value(&limits).unwrap_or_default()}));
        }
        for p in v.policies(Kind::Operator) {
            let mut value = p.to_json(&v.name);
            if let Value::Object(m) = &mut value {
                m.remove("vhost");
                m.remove("name");
            }
            parameters.push(
                json!({"vhost": v.name, "component": "operator_policy", "name": p.name, "value": value}),
            );
        }
        // Policies keep their vhost even in one vhost's export, as RabbitMQ's.
        policies.extend(v.policies(Kind::User).iter().map(|p| p.to_json(&v.name)));
        let mut names = v.queue_names();
        names.sort();
        for q in names.iter().filter_map(|n| v.queue(n)) {
            if q.exclusive_owner.is_some() {
                continue; // as RabbitMQ: exclusive queues die with their connection
            }
            let mut m = Map::new();
            m.insert("name".into(), json!(q.name));
            m.insert("durable".into(), json!(q.durable));
            m.insert("auto_delete".into(), json!(q.auto_delete));
            m.insert("arguments".into(), table_to_json(&q.arguments));
            queues.push(scoped(m, &v.name));
        }
        let mut names = v.exchange_names();
        names.sort();
        for x in names.iter().filter_map(|n| v.exchange(n)) {
            for b in x.bindings() {
                let (dest, kind) = match &b.destination {
                    crate::broker::exchange::Destination::Queue(q) => (q.name.clone(), "queue"),
                    crate::broker::exchange::Destination::Exchange(e) => (e.name.clone(), "exchange"),
                };
                let mut m = Map::new();
                m.insert("source".into(), json!(x.name));
                m.insert("destination".into(), json!(dest));
                m.insert("destination_type".into(), json!(kind));
                m.insert("routing_key".into(), json!(b.key));
                m.insert("arguments".into(), table_to_json(&b.arguments));
                bindings.push(scoped(m, &v.name));
            }
            if x.name.is_empty() || x.name.starts_with("amq.") {
                continue;
            }
            let mut m = Map::new();
            m.insert("name".into(), json!(x.name));
            m.insert("type".into(), json!(x.kind.as_str()));
            m.insert("durable".into(), json!(x.durable));
            m.insert("auto_delete".into(), json!(x.auto_delete));
            m.insert("internal".into(), json!(x.internal));
            m.insert("arguments".into(), table_to_json(&x.arguments));
            exchanges.push(scoped(m, &v.name));
        }
    }
    // The default exchange's implicit bindings are not definitions.
    bindings.retain(|b| b["source"] != "");
    let key = |b: &Value| {
        ["vhost", "source", "destination_type", "destination", "routing_key"]
            .map(|k| b[k].as_str().unwrap_or("").to_owned())
    };
    bindings.sort_by_key(key);
    if vhost.is_some() {
        return json!({"rabbit_version": FORMAT_VERSION, "parameters": parameters, "policies": policies,
            "queues": queues, "exchanges": exchanges, "bindings": bindings});
    }
    let users: Vec<_> = access
        .users()
        .into_iter()
        .map(|u| {
            json!({"name": u.name, "password_hash": u.password_hash,
            "hashing_algorithm": u.hashing_algorithm, "tags": u.tags, "limits": u.limits})
        })
        .collect();
    let vhost_items: Vec<_> = vhosts
        .iter()
        .map(|v| {
            let m = v.meta();
            let mut metadata = json!({"description": m.description, "tags": m.tags});
            if let Some(t) = &m.default_queue_type {
                metadata["default_queue_type"] = json!(t);
            }
            json!({"name": v.name, "limits": {}, "metadata": metadata})
        })
        .collect();
    json!({
        "rabbit_version": FORMAT_VERSION,
        "rabbitmq_version": FORMAT_VERSION,
        "product_name": "Warren",
        "product_version": env!("CARGO_PKG_VERSION"),
        "users": users,
        "vhosts": vhost_items,
        "permissions": access.permissions(),
        "topic_permissions": access.topic_permissions(),
        "parameters": parameters,
        "global_parameters": [],
        "policies": policies,
        "queues": queues,
        "exchanges": exchanges,
        "bindings": bindings,
    })
}

mod import;
pub use import::{import, parse_limits};
