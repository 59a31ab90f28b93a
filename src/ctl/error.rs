//! `warrenctl`'s errors and their exit codes (sysexits, as rabbitmqctl's),
//! including how an admin API error answer (`{"error":..,"reason":..}`)
//! becomes one.

use super::http::HttpError;

/// Exit codes, from sysexits.h as rabbitmqctl uses them.
pub mod exit {
    pub const OK: u8 = 0;
    /// Bad usage, or the named object does not exist.
    pub const USAGE: u8 = 64;
    /// Bad input data, a missing vhost, or refused credentials.
    pub const DATAERR: u8 = 65;
    /// The named user does not exist.
    pub const NOUSER: u8 = 67;
    /// The broker cannot be reached.
    pub const UNAVAILABLE: u8 = 69;
    /// The object already exists, or the broker failed.
    pub const SOFTWARE: u8 = 70;
    /// The control socket exists but may not be opened by this user.
    pub const NOPERM: u8 = 77;
}

/// Everything that can make a verb fail; the text is printed after `Error: `.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CtlError {
    #[error("{0}")]
    Usage(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Data(String),
    #[error("{0}")]
    AccessRefused(String),
    #[error("{0}")]
    NoSuchUser(String),
    #[error("{0}")]
    Unreachable(String),
    #[error("{0}")]
    NoPermission(String),
    #[error("{0}")]
    AlreadyExists(String),
    #[error("{0}")]
    Software(String),
}

pub type Result<T> = std::result::Result<T, CtlError>;

impl CtlError {
    pub fn exit_code(&self) -> u8 {
        match self {
            CtlError::Usage(_) | CtlError::NotFound(_) => exit::USAGE,
            CtlError::Data(_) | CtlError::AccessRefused(_) => exit::DATAERR,
            CtlError::NoSuchUser(_) => exit::NOUSER,
            CtlError::Unreachable(_) => exit::UNAVAILABLE,
            CtlError::NoPermission(_) => exit::NOPERM,
            CtlError::AlreadyExists(_) | CtlError::Software(_) => exit::SOFTWARE,
        }
    }

    pub fn no_such_user(user: &str) -> CtlError {
        CtlError::NoSuchUser(format!("User \"{user}\" does not exist"))
    }

    pub fn no_such_vhost(vhost: &str) -> CtlError {
        CtlError::Data(format!("Virtual host '{vhost}' does not exist"))
    }
}

impl From<HttpError> for CtlError {
    fn from(e: HttpError) -> CtlError {
        match &e {
            HttpError::Connect { target, source } => {
                let hint = if target.starts_with("socket ") {
                    match source.kind() {
                        std::io::ErrorKind::PermissionDenied => {
                            return CtlError::NoPermission(format!(
                                "{e} (only the user the broker runs as may open it; or use --url)"
                            ))
                        }
                        _ => " (is Warren running with this data directory? use --socket PATH or --url URL)",
                    }
                } else {
                    ""
                };
                CtlError::Unreachable(format!("{e}{hint}"))
            }
            HttpError::Timeout { .. } | HttpError::Io { .. } => CtlError::Unreachable(e.to_string()),
            HttpError::Malformed { .. } => CtlError::Software(e.to_string()),
        }
    }
}

/// The `error` and `reason` fields of an API error body, when it has them.
pub fn error_fields(body: &[u8]) -> (Option<String>, Option<String>) {
    let value: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
    let field = |k: &str| value.get(k).and_then(|v| v.as_str()).map(one_line);
    (field("error"), field("reason"))
}

/// Maps an unsuccessful API answer to an error, for answers a verb has no
/// better text for. The message is the API's `reason` on one line.
pub fn status_error(status: u16, body: &[u8]) -> CtlError {
    let (error, reason) = error_fields(body);
    let text = reason.or(error).unwrap_or_else(|| {
        let body = String::from_utf8_lossy(body);
        let body = one_line(&body);
        if body.is_empty() {
            format!("HTTP status {status}")
        } else {
            format!("HTTP status {status}: {body}")
        }
    });
    match status {
        401 | 403 => CtlError::AccessRefused(format!("access refused: {text}")),
        404 => CtlError::NotFound(text),
        409 => CtlError::AlreadyExists(text),
        400..=499 => CtlError::Data(text),
        _ => CtlError::Software(text),
    }
}

/// Collapses whitespace runs (RabbitMQ's reasons carry newlines) and undoes
/// the HTML escaping RabbitMQ applies to some reasons.
pub fn one_line(text: &str) -> String {
    let joined = text.split_whitespace().collect::<Vec<_>>().join(" ");
    joined
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&amp;", "&")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io;

    #[test]
    fn exit_codes_follow_sysexits() {
        assert_eq!(CtlError::Usage("x".into()).exit_code(), 64);
        assert_eq!(CtlError::NotFound("x".into()).exit_code(), 64);
        assert_eq!(CtlError::Data("x".into()).exit_code(), 65);
        assert_eq!(CtlError::AccessRefused("x".into()).exit_code(), 65);
        assert_eq!(CtlError::no_such_user("u").exit_code(), 67);
        assert_eq!(CtlError::no_such_vhost("v").exit_code(), 65);
        assert_eq!(CtlError::Unreachable("x".into()).exit_code(), 69);
        assert_eq!(CtlError::AlreadyExists("x".into()).exit_code(), 70);
        assert_eq!(CtlError::Software("x".into()).exit_code(), 70);
        assert_eq!(CtlError::NoPermission("x".into()).exit_code(), 77);
    }

    #[test]
    fn api_statuses_map_to_exit_codes_with_the_reason() {
        let body = br#"{"error":"bad_request","reason":"Validation failed\n\n[{&lt;&lt;\"max-lengthx\"&gt;&gt;,3}] are not recognised\n"}"#;
        let e = status_error(400, body);
        assert_eq!(
            e,
            CtlError::Data(r#"Validation failed [{<<"max-lengthx">>,3}] are not recognised"#.into())
        );
        let e = status_error(401, br#"{"error":"not_authorized","reason":"Login failed"}"#);
        assert_eq!((e.exit_code(), e.to_string()), (65, "access refused: Login failed".into()));
        let e = status_error(404, br#"{"error":"Object Not Found","reason":"Not Found"}"#);
        assert_eq!((e.exit_code(), e.to_string()), (64, "Not Found".into()));
        assert_eq!(status_error(409, b"{}").exit_code(), 70);
        let e = status_error(500, b"oops\n");
        assert_eq!((e.exit_code(), e.to_string()), (70, "HTTP status 500: oops".into()));
        assert_eq!(status_error(503, b"").to_string(), "HTTP status 503");
    }

    #[test]
    fn transport_failures_name_the_target() {
        let refused = || io::Error::from(io::ErrorKind::ConnectionRefused);
        let e: CtlError =
            HttpError::Connect { target: "http://localhost:1".into(), source: refused() }.into();
        assert_eq!(e.exit_code(), 69);
        assert!(e.to_string().starts_with("unable to connect to http://localhost:1: "), "{e}");
        let e: CtlError = HttpError::Connect {
            target: "socket warren-data/warrenctl.sock".into(),
            source: io::Error::from(io::ErrorKind::NotFound),
        }
        .into();
        assert_eq!(e.exit_code(), 69);
        assert!(e.to_string().contains("warren-data/warrenctl.sock"), "{e}");
        let e: CtlError = HttpError::Connect {
            target: "socket /run/w.sock".into(),
            source: io::Error::from(io::ErrorKind::PermissionDenied),
        }
        .into();
        assert_eq!(e.exit_code(), 77);
        let e: CtlError =
            HttpError::Timeout { target: "x".into(), after: std::time::Duration::from_secs(3) }.into();
        assert_eq!(e.exit_code(), 69);
        let e: CtlError = HttpError::Malformed { target: "x".into(), detail: "d".into() }.into();
        assert_eq!(e.exit_code(), 70);
    }
}
