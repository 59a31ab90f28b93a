//! The admin API's one error type: every refusal, as the HTTP answer
//! RabbitMQ's management plugin gives (status, `{"error","reason"}` body,
//! and the Basic challenge on every 401). Pure.

use axum::http::header::{CONTENT_TYPE, WWW_AUTHENTICATE};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;

/// RabbitMQ's realm: the nagios plugins send credentials only after a
/// challenge naming it.
pub const REALM: &str = "Basic realm=\"RabbitMQ Management\"";

/// Why a request was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApiError {
    /// No such object (or path): `404 {"error":"Object Not Found","reason":"Not Found"}`.
    #[error("Not Found")]
    NotFound,
    /// A PUT into a vhost that does not exist.
    #[error("vhost_not_found")]
    VhostNotFound,
    /// `400 {"error":"bad_request","reason":…}`.
    #[error("{0}")]
    BadRequest(String),
    /// A 400 with its own `error` (pagination's `page_out_of_range`, …).
    #[error("{reason}")]
    Refused { error: &'static str, reason: String },
    /// Unknown user, wrong password, or no credentials (US spelling, as RabbitMQ).
    #[error("Login failed")]
    LoginFailed,
    /// Logged in, but not allowed this (British spelling, as RabbitMQ).
    #[error("{0}")]
    NotAuthorised(&'static str),
    #[error("request body too large")]
    TooLarge,
    /// Something failed inside (a store write); the reason is safe to show.
    #[error("{0}")]
    Internal(String),
}

pub type Result<T, E = ApiError> = std::result::Result<T, E>;

impl ApiError {
    pub fn bad_request(reason: impl Into<String>) -> ApiError {
        ApiError::BadRequest(reason.into())
    }

    pub const NOT_MANAGEMENT: ApiError = ApiError::NotAuthorised("Not management user");
    pub const NOT_ADMINISTRATOR: ApiError = ApiError::NotAuthorised("Not administrator user");
    pub const NOT_AUTHORISED_OBJECT: ApiError =
        ApiError::NotAuthorised("User not authorised to access object");
    pub const NOT_AUTHORISED_VHOST: ApiError =
        ApiError::NotAuthorised("User not authorised to access virtual host");
    pub const LOOPBACK_ONLY: ApiError = ApiError::NotAuthorised("User can only log in via localhost");

    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::NotFound | ApiError::VhostNotFound => StatusCode::NOT_FOUND,
            ApiError::BadRequest(_) | ApiError::Refused { .. } => StatusCode::BAD_REQUEST,
            ApiError::LoginFailed | ApiError::NotAuthorised(_) => StatusCode::UNAUTHORIZED,
            ApiError::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The `error` field of the body.
    pub fn kind(&self) -> &'static str {
        match self {
            ApiError::NotFound => "Object Not Found",
            ApiError::VhostNotFound => "not_found",
            ApiError::BadRequest(_) | ApiError::TooLarge => "bad_request",
            ApiError::Refused { error, .. } => error,
            ApiError::LoginFailed => "not_authorized",
            ApiError::NotAuthorised(_) => "not_authorised",
            ApiError::Internal(_) => "internal_server_error",
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = json!({"error": self.kind(), "reason": self.to_string()}).to_string();
        let mut response = (self.status(), body).into_response();
        let headers = response.headers_mut();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        if self.status() == StatusCode::UNAUTHORIZED {
            headers.insert(WWW_AUTHENTICATE, HeaderValue::from_static(REALM));
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_401_carries_the_challenge_and_400s_do_not() {
        for e in [ApiError::LoginFailed, ApiError::NOT_ADMINISTRATOR, ApiError::LOOPBACK_ONLY] {
            let r = e.into_response();
            assert_eq!(r.status(), 401);
            assert_eq!(r.headers()[WWW_AUTHENTICATE], REALM);
        }
        let r = ApiError::bad_request("not_json").into_response();
        assert_eq!(r.status(), 400);
        assert!(r.headers().get(WWW_AUTHENTICATE).is_none());
        assert_eq!(r.headers()[CONTENT_TYPE], "application/json");
    }

    #[test]
    fn kinds_and_reasons_are_rabbitmqs() {
        assert_eq!(
            (ApiError::NotFound.kind(), ApiError::NotFound.to_string().as_str()),
            ("Object Not Found", "Not Found")
        );
        assert_eq!(ApiError::LoginFailed.kind(), "not_authorized");
        assert_eq!(ApiError::NOT_MANAGEMENT.kind(), "not_authorised");
        assert_eq!(ApiError::VhostNotFound.to_string(), "vhost_not_found");
    }
}
