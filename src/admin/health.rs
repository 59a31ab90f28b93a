//! `/api/health/checks/*` and `/api/aliveness-test/{vhost}`: the probes
//! Kubernetes, rabbitmqadmin v2 and the Nagios plugins use. A passing check
//! is 200 `{"status":"ok"}`; a failing one 503 with `status: "failed"` and a
//! `reason`, as RabbitMQ answers.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use bytes::Bytes;
use serde_json::{json, Value};

use super::auth::Caller;
use super::cert_expiry::not_after;
use super::error::{ApiError, Result};
use super::input::Params;
use super::{blocking, json, node_name, AdminState};
use crate::broker::vhost::QueueDecl;
use crate::broker::Message;
use crate::protocol::properties::{encode_header, ContentHeader};
use rustls_pki_types::pem::PemObject;

pub fn routes() -> Router<AdminState> {
    Router::new()
        .route("/api/health/checks/alarms", get(alarms))
        .route("/api/health/checks/local-alarms", get(alarms))
        .route("/api/health/checks/virtual-hosts", get(virtual_hosts))
        .route("/api/health/checks/node-is-quorum-critical", get(ok))
        .route("/api/health/checks/node-is-mirror-sync-critical", get(ok))
        .route("/api/health/checks/port-listener/{port}", get(port_listener))
        .route("/api/health/checks/protocol-listener/{protocol}", get(protocol_listener))
        .route("/api/health/checks/certificate-expiration/{within}/{unit}", get(certificate_expiration))
        .route("/api/aliveness-test/{vhost}", get(aliveness))
}

fn failed(body: Value) -> Response {
    (StatusCode::SERVICE_UNAVAILABLE, Json(body)).into_response()
}

async fn ok() -> Response {
    json(json!({"status": "ok"}))
}

async fn alarms(State(s): State<AdminState>) -> Response {
    let a = &s.broker.alarms;
    let node = node_name();
    let mut raised = Vec::new();
    if a.memory_alarm() {
        raised.push(json!({"node": node, "resource": "memory"}));
    }
    if a.disk_alarm() {
        raised.push(json!({"node": node, "resource": "disk"}));
    }
    if raised.is_empty() {
        return ok().await;
    }
    failed(
        json!({"status": "failed", "reason": "resource alarm(s) in effect in the cluster", "alarms": raised}),
    )
}

/// Every vhost is up whenever the broker is (they have no processes that fail apart).
async fn virtual_hosts() -> Response {
    ok().await
}

async fn port_listener(State(s): State<AdminState>, Params(port): Params<String>) -> Result<Response> {
    let port: u16 = port.parse().map_err(|_| ApiError::bad_request(format!("invalid port: {port}")))?;
    let ports: Vec<u16> = s.node.listeners().iter().map(|l| l.port).collect();
    if ports.contains(&port) {
        return Ok(json(json!({"status": "ok", "port": port})));
    }
    Ok(failed(json!({"status": "failed", "reason": "No active listener", "missing": port, "ports": ports})))
}

/// RabbitMQ's protocol names and the aliases it accepts.
fn canonical(protocol: &str) -> &str {
    match protocol.to_ascii_lowercase().as_str() {
        "amqp" | "amqp091" | "amqp0-9-1" | "amqp0.9.1" => "amqp",
        "amqps" | "amqp/ssl" | "amqp091/ssl" => "amqp/ssl",
        "http" | "management" => "http",
        "prometheus" | "http/prometheus" => "http/prometheus",
        _ => protocol,
    }
}

async fn protocol_listener(State(s): State<AdminState>, Params(protocol): Params<String>) -> Response {
    let protocols: Vec<String> = s.node.listeners().iter().map(|l| l.protocol.clone()).collect();
    let wanted = canonical(&protocol);
    if protocols.iter().any(|p| p == wanted) {
        return json(json!({"status": "ok", "protocol": wanted}));
    }
    failed(
        json!({"status": "failed", "reason": "No active listener", "missing": protocol, "protocols": protocols}),
    )
}

/// `{within}/{unit}` in seconds: days, weeks, months (30 days), years (365).
fn horizon(within: &str, unit: &str) -> Result<u64> {
    let n: u64 = within.parse().map_err(|_| ApiError::bad_request(format!("invalid value: {within}")))?;
    let unit_secs = match unit {
        "days" => 86_400,
        "weeks" => 7 * 86_400,
        "months" => 30 * 86_400,
        "years" => 365 * 86_400,
        other => return Err(ApiError::bad_request(format!("invalid unit: {other}"))),
    };
    n.checked_mul(unit_secs).ok_or_else(|| ApiError::bad_request(format!("invalid value: {within}")))
}

/// Fails if a certificate of a TLS listener expires within the given time.
async fn certificate_expiration(
    State(s): State<AdminState>,
    Params((within, unit)): Params<(String, String)>,
) -> Result<Response> {
    let horizon = horizon(&within, &unit)?;
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let limit = now.saturating_add(horizon);
    let mut expiring = Vec::new();
    for cert in s.node.certificates() {
        // Read now: a reloaded certificate is the one checked.
        let ders: Vec<_> = match rustls_pki_types::CertificateDer::pem_file_iter(&cert.path) {
            Ok(iter) => iter.filter_map(|c| c.ok()).collect(),
            Err(e) => {
                let reason = format!("cannot read {}: {e}", cert.path.display());
                return Ok(failed(json!({"status": "failed", "reason": reason})));
            }
        };
        for der in ders {
            let Some(expires) = not_after(&der) else { continue };
            if expires <= limit {
                expiring.push(json!({
                    "node": node_name(),
                    "protocol": cert.protocol,
                    "interface": cert.ip,
                    "port": cert.port,
                    "certfile": cert.path.display().to_string(),
                    "expires": expires,
                }));
            }
        }
    }
    if expiring.is_empty() {
        return Ok(json(json!({"status": "ok"})));
    }
    Ok(failed(json!({"status": "failed", "reason": "Certificates expiring", "expired": expiring})))
}

/// Declares the queue `aliveness-test` in the vhost, sends it a message and
/// reads it back, as RabbitMQ's aliveness test does.
async fn aliveness(
    State(s): State<AdminState>,
    caller: Caller,
    Params(vhost): Params<String>,
) -> Result<Response> {
    let v = s.broker.vhost(&vhost).ok_or(ApiError::NotFound)?;
    if !caller.may_use_vhost(&s.access, &vhost) {
        return Err(ApiError::NOT_AUTHORISED_VHOST);
    }
    let outcome = blocking(move || Ok(round_trip(&v))).await?;
    match outcome {
        Ok(()) => Ok(json(json!({"status": "ok"}))),
        Err(reason) => Ok(failed(json!({"status": "failed", "reason": reason}))),
    }
}

fn round_trip(v: &Arc<crate::broker::VHost>) -> std::result::Result<(), String> {
    const NAME: &str = "aliveness-test";
    let decl = QueueDecl { name: NAME.to_owned(), ..QueueDecl::default() };
    let q = v.declare_queue(decl, 0).map_err(|e| e.to_string())?.queue;
    let body = Bytes::from_static(b"test_message");
    let header = encode_header(body.len() as u64, &Default::default());
    let info = ContentHeader::scan(&header).map_err(|e| e.to_string())?;
    let routing_key = Bytes::from_static(NAME.as_bytes());
    q.publish(Arc::new(Message::new(Bytes::new(), routing_key, header, info, body.clone())));
    // Drain: an earlier test's message left behind does not fail this one.
    while let Some((entry, _)) = q.get(true) {
        if entry.message.body() == &body[..] {
            return Ok(());
        }
    }
    Err("the test message did not come back".to_owned())
}
