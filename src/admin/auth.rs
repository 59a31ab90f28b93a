//! Who is asking, and what their tags let them do. Every request is
//! authenticated with HTTP Basic; a request on warrenctl's unix socket
//! (marked by `LocalSocket`) without an `Authorization` header is the
//! broker's own administrator. Tags are cumulative as in RabbitMQ:
//! administrator ⊃ {policymaker, monitoring} ⊃ management; a user without
//! any of them may not use the API at all. The dashboard's requests carry
//! a session cookie instead (`session`).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;

use axum::extract::connect_info::MockConnectInfo;
use axum::extract::{ConnectInfo, FromRequestParts, Request, State};
use axum::http::header::{AUTHORIZATION, WWW_AUTHENTICATE};
use axum::http::request::Parts;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use tracing::info;

use super::error::{ApiError, Result};
use super::{session, AdminState};
use crate::access::{Access, LoginRefused, User};

/// Marks a request that came over the local control socket.
#[derive(Debug, Clone, Copy)]
pub struct LocalSocket;

/// The authenticated caller of a request.
#[derive(Debug, Clone)]
pub enum Caller {
    /// The local control socket without credentials: may do anything, and
    /// is nobody (no permissions are granted to it).
    Internal,
    User(Arc<User>),
}

impl Caller {
    /// The name `whoami` shows (RabbitMQ's name for its own actions).
    pub fn name(&self) -> &str {
        match self {
            Caller::Internal => "rmq-internal",
            Caller::User(u) => &u.name,
        }
    }

    pub fn user(&self) -> Option<&str> {
        match self {
            Caller::Internal => None,
            Caller::User(u) => Some(&u.name),
        }
    }

    pub fn tags(&self) -> Vec<String> {
        match self {
            Caller::Internal => vec!["administrator".to_owned()],
            Caller::User(u) => u.tags.clone(),
        }
    }

    fn has(&self, tag: &str) -> bool {
        match self {
            Caller::Internal => true,
            Caller::User(u) => u.has_tag(tag),
        }
    }

    pub fn is_admin(&self) -> bool {
        self.has("administrator")
    }

    pub fn is_policymaker(&self) -> bool {
        self.is_admin() || self.has("policymaker")
    }

    pub fn is_monitoring(&self) -> bool {
        self.is_admin() || self.has("monitoring")
    }

    pub fn is_management(&self) -> bool {
        self.is_policymaker() || self.is_monitoring() || self.has("management")
    }

    pub fn require_admin(&self) -> Result<()> {
        self.is_admin().then_some(()).ok_or(ApiError::NOT_ADMINISTRATOR)
    }

    /// Whether the caller has permissions in `vhost` (administrators need none
    /// to manage it).
    pub fn may_use_vhost(&self, access: &Access, vhost: &str) -> bool {
        match self {
            Caller::Internal => true,
            Caller::User(u) => self.is_admin() || access.permission(vhost, &u.name).is_some(),
        }
    }

    /// Whether `vhost` shows in the caller's lists: monitoring users see
    /// every vhost, management users those they have permissions in.
    pub fn sees_vhost(&self, access: &Access, vhost: &str) -> bool {
        self.is_monitoring() || self.may_use_vhost(access, vhost)
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self> {
        parts.extensions.get::<Caller>().cloned().ok_or(ApiError::LoginFailed)
    }
}

/// The middleware in front of every route: authenticates the request and
/// refuses callers without a management tag.
pub async fn authenticate(State(state): State<AdminState>, mut req: Request, next: Next) -> Response {
    let refused = match caller_of(&state, &req) {
        Ok(caller) if caller.is_management() => {
            let ui = req.headers().contains_key(session::UI_HEADER);
            req.extensions_mut().insert(caller);
            let mut answer = next.run(req).await;
            if ui {
                // A handler's own 401 (a permission refused) neither.
                answer.headers_mut().remove(WWW_AUTHENTICATE);
            }
            return answer;
        }
        Ok(_) => ApiError::NOT_MANAGEMENT.into_response(),
        Err(e) => e.into_response(),
    };
    dashboard_refusal(&req, refused)
}

/// A refusal as the dashboard gets it: without the Basic challenge, which
/// would make the browser pop up its own login box over the page's.
fn dashboard_refusal(req: &Request, mut refused: Response) -> Response {
    if req.headers().contains_key(session::UI_HEADER) {
        refused.headers_mut().remove(WWW_AUTHENTICATE);
    }
    refused
}

fn caller_of(state: &AdminState, req: &Request) -> Result<Caller> {
    let access = &state.access;
    let local = req.extensions().get::<LocalSocket>().is_some();
    let Some(header) = req.headers().get(AUTHORIZATION) else {
        if let Some(caller) = session::caller_of(&state.sessions, access, req.headers()) {
            return Ok(caller);
        }
        return if local { Ok(Caller::Internal) } else { Err(ApiError::LoginFailed) };
    };
    let (name, password) = header.to_str().ok().and_then(basic_credentials).ok_or(ApiError::LoginFailed)?;
    // On the socket the peer is this machine; tests may mock the address.
    let connected = req.extensions().get::<ConnectInfo<SocketAddr>>().map(|c| c.0);
    let peer = match connected.or_else(|| req.extensions().get::<MockConnectInfo<SocketAddr>>().map(|m| m.0))
    {
        _ if local => IpAddr::V4(Ipv4Addr::LOCALHOST),
        Some(addr) => addr.ip(),
        None => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
    };
    match access.authenticate(&name, &password, peer) {
        Ok(user) => Ok(Caller::User(user)),
        Err(why) => {
            info!(user = %name, %peer, "HTTP API login refused: {why}");
            Err(match why {
                LoginRefused::LoopbackOnly => ApiError::LOOPBACK_ONLY,
                LoginRefused::NoSuchUser | LoginRefused::BadPassword => ApiError::LoginFailed,
            })
        }
    }
}

/// `Basic base64(user:password)` → (user, password).
fn basic_credentials(header: &str) -> Option<(String, String)> {
    let (scheme, encoded) = header.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = String::from_utf8(STANDARD.decode(encoded.trim()).ok()?).ok()?;
    let (user, password) = decoded.split_once(':')?;
    Some((user.to_owned(), password.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_credentials_split_at_the_first_colon() {
        assert_eq!(basic_credentials("Basic Z3Vlc3Q6Z3Vlc3Q="), Some(("guest".into(), "guest".into())));
        let pw_with_colon = format!("basic {}", STANDARD.encode("u:a:b"));
        assert_eq!(basic_credentials(&pw_with_colon), Some(("u".into(), "a:b".into())));
        assert_eq!(basic_credentials("Bearer xyz"), None);
        assert_eq!(basic_credentials("Basic !!!"), None);
        assert_eq!(basic_credentials(&format!("Basic {}", STANDARD.encode("nocolon"))), None);
    }

    #[test]
    fn tags_are_cumulative() {
        let user = |tags: &[&str]| {
            Caller::User(Arc::new(User {
                name: "u".into(),
                hash: crate::access::PasswordHash::new("pw"),
                tags: tags.iter().map(|t| t.to_string()).collect(),
                limits: Default::default(),
            }))
        };
        let admin = user(&["administrator"]);
        assert!(admin.is_policymaker() && admin.is_monitoring() && admin.is_management());
        let pm = user(&["policymaker"]);
        assert!(pm.is_management() && !pm.is_monitoring() && !pm.is_admin());
        let mon = user(&["monitoring"]);
        assert!(mon.is_management() && !mon.is_policymaker());
        assert!(!user(&["impersonator"]).is_management());
        assert!(!user(&[]).is_management());
        assert!(Caller::Internal.is_admin());
    }
}
