//! The admin API as `warrenctl` sees it: requests on `/api/...` paths with
//! percent-encoded segments, Basic auth over HTTP (none on the local socket),
//! and answers as status plus body.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use percent_encoding::{utf8_percent_encode, NON_ALPHANUMERIC};
use serde_json::Value;

use super::error::{status_error, CtlError, Result};
use super::http::{Client, Endpoint, Redacted};

/// Encodes one path segment: every byte but ASCII letters and digits, so
/// `/` becomes `%2F` (as rabbitmq_http_client does).
pub fn seg(segment: &str) -> String {
    utf8_percent_encode(segment, NON_ALPHANUMERIC).to_string()
}

/// The value of a Basic `Authorization` header.
pub fn basic_auth(username: &str, password: &str) -> String {
    format!("Basic {}", STANDARD.encode(format!("{username}:{password}")))
}

/// An answer from the API.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// The reply itself if successful, else the error it stands for.
    pub fn ok(self) -> Result<Reply> {
        if self.is_success() {
            Ok(self)
        } else {
            Err(status_error(self.status, &self.body))
        }
    }

    /// The body as JSON (an error if it is not).
    pub fn json(&self) -> Result<Value> {
        serde_json::from_slice(&self.body)
            .map_err(|e| CtlError::Software(format!("the API answered with invalid JSON: {e}")))
    }

    /// The body as a JSON array of objects, as list endpoints answer.
    pub fn rows(&self) -> Result<Vec<Value>> {
        match self.json()? {
            Value::Array(rows) => Ok(rows),
            other => {
                Err(CtlError::Software(format!("the API answered with {other} where a list was expected")))
            }
        }
    }
}

/// A connection target plus credentials.
#[derive(Clone)]
pub struct Api {
    client: Client,
    authorization: Option<String>,
}

/// Everything but the credentials, which show as `<redacted>`.
impl std::fmt::Debug for Api {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Api")
            .field("client", &self.client)
            .field("authorization", &self.authorization.as_ref().map(|_| Redacted))
            .finish()
    }
}

impl Api {
    /// `credentials` are sent as Basic auth; `None` sends no Authorization
    /// header (the local socket).
    pub fn new(client: Client, credentials: Option<(&str, &str)>) -> Api {
        Api { client, authorization: credentials.map(|(u, p)| basic_auth(u, p)) }
    }

    /// The same target with other credentials (used to check a password).
    pub fn with_credentials(&self, username: &str, password: &str) -> Api {
        Api { client: self.client.clone(), authorization: Some(basic_auth(username, password)) }
    }

    pub fn endpoint(&self) -> &Endpoint {
        &self.client.endpoint
    }

    pub fn get(&self, path: &str) -> Result<Reply> {
        self.send("GET", path, None)
    }

    pub fn delete(&self, path: &str) -> Result<Reply> {
        self.send("DELETE", path, None)
    }

    pub fn put(&self, path: &str, body: &Value) -> Result<Reply> {
        self.send("PUT", path, Some(body.to_string().as_bytes()))
    }

    pub fn post_raw(&self, path: &str, body: &[u8]) -> Result<Reply> {
        self.send("POST", path, Some(body))
    }

    pub fn post(&self, path: &str, body: &Value) -> Result<Reply> {
        self.send("POST", path, Some(body.to_string().as_bytes()))
    }

    /// A DELETE carrying an `X-Reason` header (closing connections): line
    /// breaks and other control characters in `reason` become spaces, so it
    /// stays one header.
    pub fn delete_with_reason(&self, path: &str, reason: &str) -> Result<Reply> {
        let reason: String = reason.chars().map(|c| if c.is_control() { ' ' } else { c }).collect();
        self.send_with("DELETE", path, &[("X-Reason", reason)], None)
    }

    /// The same target and credentials, waiting at most `timeout` per request.
    pub fn with_timeout(&self, timeout: std::time::Duration) -> Api {
        let client = Client { endpoint: self.client.endpoint.clone(), timeout };
        Api { client, authorization: self.authorization.clone() }
    }

    fn send(&self, method: &str, path: &str, body: Option<&[u8]>) -> Result<Reply> {
        self.send_with(method, path, &[], body)
    }

    fn send_with(
        &self,
        method: &str,
        path: &str,
        extra: &[(&str, String)],
        body: Option<&[u8]>,
    ) -> Result<Reply> {
        let mut headers: Vec<(&str, String)> =
            self.authorization.iter().map(|a| ("Authorization", a.clone())).collect();
        headers.extend(extra.iter().cloned());
        let response = self.client.send(method, path, &headers, body)?;
        Ok(Reply { status: response.status, body: response.body })
    }

    /// Whether `GET path` finds the object (200) or not (404).
    pub fn exists(&self, path: &str) -> Result<bool> {
        let reply = self.get(path)?;
        match reply.status {
            404 => Ok(false),
            _ => reply.ok().map(|_| true),
        }
    }

    pub fn user_exists(&self, user: &str) -> Result<bool> {
        self.exists(&format!("/api/users/{}", seg(user)))
    }

    pub fn vhost_exists(&self, vhost: &str) -> Result<bool> {
        self.exists(&format!("/api/vhosts/{}", seg(vhost)))
    }

    /// After a 400/404 on an object of (`user`, `vhost`): says which of them
    /// is missing, or falls back to the API's own error.
    pub fn explain_missing(&self, user: Option<&str>, vhost: &str, failed: Reply) -> CtlError {
        let check = || -> Result<CtlError> {
            if let Some(user) = user {
                if !self.user_exists(user)? {
                    return Ok(CtlError::no_such_user(user));
                }
            }
            if !self.vhost_exists(vhost)? {
                return Ok(CtlError::no_such_vhost(vhost));
            }
            Ok(status_error(failed.status, &failed.body))
        };
        check().unwrap_or_else(|e| e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_encode_every_non_alphanumeric_byte() {
        assert_eq!(seg("/"), "%2F");
        assert_eq!(seg("demo-q"), "demo%2Dq");
        assert_eq!(seg("a b.c_d~é"), "a%20b%2Ec%5Fd%7E%C3%A9");
        assert_eq!(seg("abcXYZ019"), "abcXYZ019");
        assert_eq!(format!("/api/permissions/{}/{}", seg("/"), seg("ctl-u")), "/api/permissions/%2F/ctl%2Du");
    }

    #[test]
    fn basic_auth_is_base64_of_user_colon_password() {
        assert_eq!(basic_auth("guest", "guest"), "Basic Z3Vlc3Q6Z3Vlc3Q=");
    }

    #[test]
    fn debug_output_hides_the_credentials() {
        let client = Client {
            endpoint: Endpoint::Tcp { host: "broker".into(), port: 15672, prefix: String::new() },
            timeout: std::time::Duration::from_secs(5),
        };
        let api = Api::new(client, Some(("alice", "s3cret-pw")));
        for shown in [format!("{api:?}"), format!("{:?}", api.with_credentials("bob", "0ther-pw"))] {
            assert!(shown.contains("broker") && shown.contains("15672"), "{shown}");
            assert!(shown.contains(r#"authorization: Some(<redacted>)"#), "{shown}");
            for secret in ["s3cret-pw", "0ther-pw", "Basic", &STANDARD.encode("alice:s3cret-pw")] {
                assert!(!shown.contains(secret), "{secret} in {shown}");
            }
        }
        let socket = Client { endpoint: Endpoint::Unix("/run/w.sock".into()), timeout: Default::default() };
        assert!(format!("{:?}", Api::new(socket, None)).contains("authorization: None"));
    }

    #[test]
    fn reply_rows_require_a_list() {
        let reply = Reply { status: 200, body: br#"[{"name":"a"}]"#.to_vec() };
        assert_eq!(reply.rows().unwrap().len(), 1);
        let reply = Reply { status: 200, body: br#"{"name":"a"}"#.to_vec() };
        assert_eq!(reply.rows().unwrap_err().exit_code(), 70);
        let reply =
            Reply { status: 404, body: br#"{"error":"Object Not Found","reason":"Not Found"}"#.to_vec() };
        assert_eq!(reply.ok().unwrap_err(), CtlError::NotFound("Not Found".into()));
    }
}
