//! `/api/definitions[/{vhost}]`: export (GET) and import (POST, the JSON
//! document as the body, as rabbitmqadmin v1 and v2 send it), for
//! administrators. The work is `definitions`'; this file only answers:
//! an import with nothing skipped is RabbitMQ's 204, one that skipped
//! something is 200 with the report; a vhost that does not exist is
//! RabbitMQ's 400 `vhost_not_found`.

use axum::extract::State;
use axum::response::Response;

use super::auth::Caller;
use super::definitions::{self, DefinitionsError, ImportReport};
use super::error::{ApiError, Result};
use super::input::{Params, RawBody};
use super::{blocking, json, no_content, store_failed, AdminState};

pub async fn export(State(s): State<AdminState>, caller: Caller) -> Result<Response> {
    caller.require_admin()?;
    Ok(json(definitions::export(&s.broker, &s.access, None)))
}

pub async fn export_vhost(
    State(s): State<AdminState>,
    caller: Caller,
    Params(vhost): Params<String>,
) -> Result<Response> {
    caller.require_admin()?;
    if s.broker.vhost(&vhost).is_none() {
        return Err(ApiError::bad_request("vhost_not_found"));
    }
    Ok(json(definitions::export(&s.broker, &s.access, Some(&vhost))))
}

fn answer(report: ImportReport) -> Response {
    if report.skipped.is_empty() {
        no_content()
    } else {
        json(serde_json::to_value(report).expect("plain struct serialises"))
    }
}

fn refused(e: DefinitionsError) -> ApiError {
    match e {
        DefinitionsError::Store => store_failed(e),
        other => ApiError::BadRequest(other.to_string()),
    }
}

pub async fn import(State(s): State<AdminState>, caller: Caller, RawBody(body): RawBody) -> Result<Response> {
    caller.require_admin()?;
    blocking(move || definitions::import(&s.broker, &s.access, &body, None).map(answer).map_err(refused))
        .await
}

pub async fn import_vhost(
    State(s): State<AdminState>,
    caller: Caller,
    Params(vhost): Params<String>,
    RawBody(body): RawBody,
) -> Result<Response> {
    caller.require_admin()?;
    if s.broker.vhost(&vhost).is_none() {
        return Err(ApiError::bad_request("vhost_not_found"));
    }
    blocking(move || {
        definitions::import(&s.broker, &s.access, &body, Some(&vhost)).map(answer).map_err(refused)
    })
    .await
}
