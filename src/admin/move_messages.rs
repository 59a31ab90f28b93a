//! `POST /api/queues/{vhost}/{name}/move` with `{"destination": q}`:
//! moves the messages ready in a queue to another queue of the same
//! vhost, oldest first, as RabbitMQ's UI does with a one-off shovel
//! (Warren's own endpoint: Warren has no shovels). Each batch is taken from
//! the source unsettled, enqueued at the destination as if published to
//! the default exchange with the destination's name (properties and body
//! kept), written, and only then acked at the source: a crash in between
//! can leave a message in both queues, never in neither. A destination
//! that refuses a message (full, with reject-publish) stops the move and
//! the rest stays where it was. `{"moved": n}` answers.

use std::sync::Arc;

use axum::extract::State;
use axum::response::Response;
use bytes::Bytes;
use serde_json::json;

use super::auth::Caller;
use super::error::{ApiError, Result};
use super::input::{integer, require, text, JsonBody, Params};
use super::topology::{authorise, refused, vhost_to_read, API_CONNECTION};
use super::{blocking, json, AdminState};
use crate::access::session::{Action, Resource};
use crate::broker::Message;

/// Messages taken, moved and settled together.
const BATCH: usize = 1000;

pub async fn move_messages(
    State(s): State<AdminState>,
    caller: Caller,
    Params((vhost, name)): Params<(String, String)>,
    JsonBody(body): JsonBody,
) -> Result<Response> {
    let v = vhost_to_read(&s, &caller, &vhost)?;
    require(&body, &["destination"])?;
    let destination = text(&body, "destination")?.unwrap_or_default();
    let limit = integer(&body, "count")?.map(|n| n.max(0) as u64);
    if destination == name {
        return Err(ApiError::bad_request("the destination is the queue itself"));
    }
    let from = v.queue(&name).ok_or(ApiError::NotFound)?;
    let to = v.queue(&destination).ok_or(ApiError::NotFound)?;
    authorise(&s, &caller, &vhost, Resource::Queue, &name, Action::Read)?;
    authorise(&s, &caller, &vhost, Resource::Exchange, "", Action::Write)?;
    from.check_access(API_CONNECTION).map_err(refused)?;
    to.check_access(API_CONNECTION).map_err(refused)?;
    blocking(move || {
        // What is there now: messages published while it runs stay.
        let mut left = limit.unwrap_or(u64::MAX).min(from.info().ready);
        let mut moved = 0u64;
        let key = Bytes::from(destination.into_bytes());
        while left > 0 {
            let (mut taken, mut refused_at) = (Vec::new(), None);
            while taken.len() < BATCH && (taken.len() as u64) < left {
                let Some((entry, _)) = from.get(false) else { break };
                let m = &entry.message;
                let copy = Message::remade(b"", &key, m.header(), m.info.clone(), m);
                let queues = std::slice::from_ref(&to);
                let outcome = v.enqueue(Arc::new(copy), queues);
                if outcome.rejected {
                    refused_at = Some(entry.seq);
                    break;
                }
                taken.push(entry.seq);
            }
            if taken.is_empty() && refused_at.is_none() {
                break;
            }
            // The copies on disk before the originals go.
            if !v.sync_store() {
                from.requeue(&taken);
                from.requeue(&refused_at.into_iter().collect::<Vec<_>>());
                return Err(ApiError::Internal("the store failed: nothing more was moved".into()));
            }
            from.ack(&taken);
            moved += taken.len() as u64;
            left -= taken.len() as u64;
            if let Some(seq) = refused_at {
                from.requeue(&[seq]);
                break;
            }
        }
        Ok(json(json!({ "moved": moved })))
    })
    .await
}
