//! The dashboard's login sessions. `POST /ui/login` checks a user's
//! password once and answers with a random token in an HttpOnly,
//! SameSite=Strict cookie, so the page never holds a password; later API
//! calls carry that cookie plus the `X-Warren-UI` header (a cross-site page
//! cannot add a custom header without a CORS preflight, which the API never
//! grants). Only a SHA-256 of each token is kept. A session ends at logout,
//! after `IDLE` without a request (RabbitMQ's `login_session_timeout`), or
//! as soon as its user is deleted or gets another password.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use axum::extract::{ConnectInfo, State};
use axum::http::header::{COOKIE, SET_COOKIE, WWW_AUTHENTICATE};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Extension;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use parking_lot::Mutex;
use serde_json::json;
use sha2::{Digest, Sha256};
use tracing::info;

use super::auth::Caller;
use super::error::{ApiError, Result};
use super::input::{require, text, JsonBody};
use super::AdminState;
use crate::access::{Access, LoginRefused, PasswordHash};

/// The cookie that carries a session's token.
pub const COOKIE_NAME: &str = "warren_session";
/// The header every dashboard request carries along with the cookie.
pub const UI_HEADER: &str = "x-warren-ui";
/// A session unused this long has ended (RabbitMQ's default: 8 hours).
pub const IDLE: Duration = Duration::from_secs(8 * 3600);
/// At most this many sessions live at once; a login beyond ends the least
/// recently used one.
pub const MAX_SESSIONS: usize = 10_000;

type Key = [u8; 32];

#[derive(Debug)]
struct Session {
    user: String,
    /// The user's password hash at login: another one ends the session.
    hash: PasswordHash,
    used: Instant,
}

/// Every live session, by the SHA-256 of its token.
#[derive(Debug, Default)]
pub struct Sessions {
    live: Mutex<HashMap<Key, Session>>,
}

fn key(token: &str) -> Key {
    Sha256::digest(token.as_bytes()).into()
}

impl Sessions {
    /// Starts a session for `user`; returns its token.
    fn start(&self, user: &str, hash: PasswordHash, now: Instant) -> String {
        let mut bytes = [0u8; 32];
        // The OS's randomness; a failure leaves a machine unfit to run anyway.
        getrandom::fill(&mut bytes).expect("the OS provides random bytes");
        let token = URL_SAFE_NO_PAD.encode(bytes);
        let mut live = self.live.lock();
        live.retain(|_, s| now.duration_since(s.used) < IDLE);
        if live.len() >= MAX_SESSIONS {
            if let Some(oldest) = live.iter().min_by_key(|(_, s)| s.used).map(|(k, _)| *k) {
                live.remove(&oldest);
            }
        }
        live.insert(key(&token), Session { user: user.to_owned(), hash, used: now });
        token
    }

    /// The user of a live session, refreshing it; `None` (and the session
    /// gone) if it idled out or its user was deleted or re-passworded.
    fn resume(&self, access: &Access, token: &str, now: Instant) -> Option<Caller> {
        let k = key(token);
        let mut live = self.live.lock();
        let session = live.get_mut(&k)?;
        let user = access.user(&session.user).filter(|u| u.hash == session.hash);
        match user {
            Some(user) if now.duration_since(session.used) < IDLE => {
                session.used = now;
                Some(Caller::User(user))
            }
            _ => {
                live.remove(&k);
                None
            }
        }
    }

    fn end(&self, token: &str) {
        self.live.lock().remove(&key(token));
    }

    pub fn len(&self) -> usize {
        self.live.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The session token a request's cookies carry, if any.
fn token_of(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE_NAME)
        .map(|(_, value)| value)
}

/// The caller of a dashboard request (the cookie and the `X-Warren-UI`
/// header both present), if its session is live.
pub fn caller_of(sessions: &Sessions, access: &Access, headers: &HeaderMap) -> Option<Caller> {
    if !headers.contains_key(UI_HEADER) {
        return None;
    }
    sessions.resume(access, token_of(headers)?, Instant::now())
}

fn cookie(token: &str, max_age: u64) -> HeaderValue {
    let text = format!("{COOKIE_NAME}={token}; Path=/; HttpOnly; SameSite=Strict; Max-Age={max_age}");
    HeaderValue::from_str(&text).expect("a token is URL-safe base64")
}

/// `POST /ui/login` with `{"username": .., "password": ..}`: users with a
/// management tag get a session; others are refused as the API would.
pub async fn login(
    State(s): State<AdminState>,
    headers: HeaderMap,
    peer: Option<Extension<ConnectInfo<std::net::SocketAddr>>>,
    body: std::result::Result<JsonBody, ApiError>,
) -> Response {
    let peer = peer.map_or(std::net::IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED), |c| c.0 .0.ip());
    match body.and_then(|JsonBody(body)| start(&s, &headers, peer, &body)) {
        Ok(response) => response,
        // Without the Basic challenge: the browser would answer it with its
        // own login box, and hold the page's request until someone does.
        Err(e) => {
            let mut refused = e.into_response();
            refused.headers_mut().remove(WWW_AUTHENTICATE);
            refused
        }
    }
}

fn start(
    s: &AdminState,
    headers: &HeaderMap,
    peer: std::net::IpAddr,
    body: &serde_json::Map<String, serde_json::Value>,
) -> Result<Response> {
    if !headers.contains_key(UI_HEADER) {
        return Err(ApiError::BadRequest("the X-Warren-UI header is missing".into()));
    }
    require(body, &["username", "password"])?;
    let name = text(body, "username")?.unwrap_or_default();
    let password = text(body, "password")?.unwrap_or_default();
    let user = match s.access.authenticate(&name, &password, peer) {
        Ok(user) => user,
        Err(why) => {
            info!(user = %name, %peer, "dashboard login refused: {why}");
            return Err(match why {
                LoginRefused::LoopbackOnly => ApiError::LOOPBACK_ONLY,
                LoginRefused::NoSuchUser | LoginRefused::BadPassword => ApiError::LoginFailed,
            });
        }
    };
    let caller = Caller::User(user.clone());
    if !caller.is_management() {
        return Err(ApiError::NOT_MANAGEMENT);
    }
    let token = s.sessions.start(&user.name, user.hash.clone(), Instant::now());
    let body = json!({"name": user.name, "tags": caller.tags()}).to_string();
    let mut response = (StatusCode::OK, [("content-type", "application/json")], body).into_response();
    response.headers_mut().insert(SET_COOKIE, cookie(&token, IDLE.as_secs()));
    Ok(response)
}

/// `POST /ui/logout`: ends the session and clears the cookie.
pub async fn logout(State(s): State<AdminState>, headers: HeaderMap) -> Response {
    if !headers.contains_key(UI_HEADER) {
        return ApiError::BadRequest("the X-Warren-UI header is missing".into()).into_response();
    }
    if let Some(token) = token_of(&headers) {
        s.sessions.end(token);
    }
    let mut response = StatusCode::NO_CONTENT.into_response();
    response.headers_mut().insert(SET_COOKIE, cookie("", 0));
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::access::Credential;

    fn access_with(user: &str, password: &str) -> Access {
        let access = Access::new(None, vec![]);
        access
            .put_user(user, Some(Credential::Password(password.into())), Some(vec!["management".into()]))
            .unwrap();
        access
    }

    #[test]
    fn a_session_resumes_until_it_idles_out() {
        let access = access_with("ann", "pw");
        let sessions = Sessions::default();
        let t0 = Instant::now();
        let token = sessions.start("ann", access.user("ann").unwrap().hash.clone(), t0);
        let later = t0 + IDLE - Duration::from_secs(1);
        assert!(sessions.resume(&access, &token, later).is_some_and(|c| c.name() == "ann"));
        // Use refreshed it: idle counts from the last request.
        assert!(sessions.resume(&access, &token, later + IDLE - Duration::from_secs(1)).is_some());
        assert!(sessions.resume(&access, &token, later + IDLE * 3).is_none());
        assert!(sessions.is_empty(), "an idled-out session is gone");
        assert!(sessions.resume(&access, "not-a-token", t0).is_none());
    }

    #[test]
    fn a_new_password_or_a_deleted_user_ends_the_session() {
        let access = access_with("ann", "pw");
        let sessions = Sessions::default();
        let now = Instant::now();
        let token = sessions.start("ann", access.user("ann").unwrap().hash.clone(), now);
        access
            .put_user("ann", Some(Credential::Password("new".into())), Some(vec!["management".into()]))
            .unwrap();
        assert!(sessions.resume(&access, &token, now).is_none());
        let token = sessions.start("ann", access.user("ann").unwrap().hash.clone(), now);
        access.delete_user("ann").unwrap();
        assert!(sessions.resume(&access, &token, now).is_none());
    }

    #[test]
    fn sessions_are_bounded() {
        let access = access_with("ann", "pw");
        let sessions = Sessions::default();
        let now = Instant::now();
        let hash = access.user("ann").unwrap().hash.clone();
        let first = sessions.start("ann", hash.clone(), now);
        for i in 0..MAX_SESSIONS {
            sessions.start("ann", hash.clone(), now + Duration::from_millis(1 + i as u64));
        }
        assert_eq!(sessions.len(), MAX_SESSIONS);
        assert!(sessions.resume(&access, &first, now).is_none(), "the least recently used one went");
    }

    #[test]
    fn the_token_is_read_from_among_other_cookies() {
        let mut headers = HeaderMap::new();
        headers.insert(COOKIE, HeaderValue::from_static("a=1; warren_session=tok; b=2"));
        assert_eq!(token_of(&headers), Some("tok"));
        headers.insert(COOKIE, HeaderValue::from_static("warren_sessionx=tok"));
        assert_eq!(token_of(&headers), None);
    }
}
