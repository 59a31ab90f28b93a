//! `/api/policies` and `/api/operator-policies` (the kind comes with the
//! route). Lists show the vhosts the caller may use; reading or changing
//! one policy takes the policymaker tag (operator policies: administrator),
//! as in RabbitMQ. Validation is the broker's (`broker::policy`), its
//! refusals shown after RabbitMQ's "Validation failed". The caller is
//! authorised before the vhost is looked up, so a refusal does not tell
//! whether the vhost exists (RabbitMQ answers 404 there; we do not leak it).

use axum::extract::State;
use axum::response::Response;
use axum::Extension;
use serde_json::Value;
use tracing::warn;

use super::auth::Caller;
use super::error::{ApiError, Result};
use super::input::{JsonBody, Params, QueryPairs};
use super::{blocking, json, listing, no_content, put_answer, store_failed, AdminState};
use crate::broker::policy::{Kind, Policy, PolicyError};
use crate::broker::VHost;

fn rows(v: &VHost, kind: Kind) -> impl Iterator<Item = Value> + '_ {
    v.policies(kind).into_iter().map(|p| p.to_json(&v.name))
}

pub async fn list(
    State(s): State<AdminState>,
    Extension(kind): Extension<Kind>,
    caller: Caller,
    query: QueryPairs,
) -> Result<Response> {
    let vhosts = s.broker.vhosts();
    let items =
        vhosts.iter().filter(|v| caller.may_use_vhost(&s.access, &v.name)).flat_map(|v| rows(v, kind));
    listing::answer(items.collect(), &query, false).map(json)
}

pub async fn list_in(
    State(s): State<AdminState>,
    Extension(kind): Extension<Kind>,
    caller: Caller,
    Params(vhost): Params<String>,
    query: QueryPairs,
) -> Result<Response> {
    if !caller.may_use_vhost(&s.access, &vhost) {
        return Err(ApiError::NOT_AUTHORISED_VHOST);
    }
    let v = s.broker.vhost(&vhost).ok_or(ApiError::NotFound)?;
    listing::answer(rows(&v, kind).collect(), &query, false).map(json)
}

/// Who may read or change one policy of `kind` in `vhost`. Asked before
/// the vhost is looked up, so that a caller who may not use a vhost cannot
/// tell whether it exists (a missing vhost is one nobody has permissions in).
fn check(s: &AdminState, caller: &Caller, kind: Kind, vhost: &str) -> Result<()> {
    match kind {
        Kind::Operator => caller.require_admin(),
        Kind::User if caller.is_policymaker() && caller.may_use_vhost(&s.access, vhost) => Ok(()),
        Kind::User => Err(ApiError::NOT_AUTHORISED_OBJECT),
    }
}

pub async fn show(
    State(s): State<AdminState>,
    Extension(kind): Extension<Kind>,
    caller: Caller,
    Params((vhost, name)): Params<(String, String)>,
) -> Result<Response> {
    check(&s, &caller, kind, &vhost)?;
    let v = s.broker.vhost(&vhost).ok_or(ApiError::NotFound)?;
    let p = v.policy(&name, kind).ok_or(ApiError::NotFound)?;
    Ok(json(p.to_json(&vhost)))
}

/// A refusal in RabbitMQ's words: missing keys as they are, the rest after
/// "Validation failed".
fn refused(e: PolicyError) -> ApiError {
    match e {
        PolicyError::Invalid(reason) if reason.starts_with("[{key_missing") => ApiError::BadRequest(reason),
        PolicyError::Invalid(reason) => ApiError::BadRequest(format!("Validation failed\n\n{reason}\n")),
        PolicyError::Store => store_failed(e),
    }
}

/// `{"pattern","definition","apply-to"?,"priority"?}`: 201 new, 204 replaced.
pub async fn put(
    State(s): State<AdminState>,
    Extension(kind): Extension<Kind>,
    caller: Caller,
    Params((vhost, name)): Params<(String, String)>,
    JsonBody(body): JsonBody,
) -> Result<Response> {
    check(&s, &caller, kind, &vhost)?;
    let v = s.broker.vhost(&vhost).ok_or(ApiError::VhostNotFound)?;
    let policy = Policy::from_json(&name, &Value::Object(body), kind).map_err(refused)?;
    blocking(move || {
        let created = v.policy(&name, kind).is_none();
        if let Some(warning) = v.set_policy(policy, kind).map_err(refused)? {
            warn!(vhost = %vhost, policy = %name, "{warning}");
        }
        Ok(put_answer(created))
    })
    .await
}

pub async fn delete(
    State(s): State<AdminState>,
    Extension(kind): Extension<Kind>,
    caller: Caller,
    Params((vhost, name)): Params<(String, String)>,
) -> Result<Response> {
    check(&s, &caller, kind, &vhost)?;
    let v = s.broker.vhost(&vhost).ok_or(ApiError::NotFound)?;
    match blocking(move || Ok(v.clear_policy(&name, kind))).await? {
        true => Ok(no_content()),
        false => Err(ApiError::NotFound),
    }
}
