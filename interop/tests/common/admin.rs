//! The management HTTP API, through a small HTTP/1.1 client of its own.

use super::*;

// ---------------------------------------------------------------------------
// Management HTTP API: users, vhosts, permissions, limits, policies.
//
// A tiny HTTP/1.1 client (Basic auth, JSON body, `Connection: close`) so the
// same setup code drives RabbitMQ's management plugin and Warren's admin API.
// ---------------------------------------------------------------------------

/// The management HTTP API of the broker under test, from `$ADMIN_URL`
/// (e.g. `http://guest:guest@127.0.0.1:15672`).
pub fn admin_url() -> String {
    admin_url_opt().unwrap_or_else(|| {
        panic!(
            "AMQP_URL is set, so set ADMIN_URL too (the same broker's management API, \
             e.g. ADMIN_URL=http://guest:guest@127.0.0.1:15672)"
        )
    })
}

/// `$ADMIN_URL`, or else the embedded Warren's admin API (when `AMQP_URL`
/// is unset too).
fn admin_url_opt() -> Option<String> {
    let env = |k: &str| std::env::var(k).ok().filter(|s| !s.trim().is_empty());
    env("ADMIN_URL").or_else(|| env("AMQP_URL").is_none().then(|| embedded().1.clone()))
}

/// `$ADMIN_URL` split into what a request needs.
struct AdminTarget {
    /// `host:port` to connect to.
    addr: String,
    /// `Basic …` credentials.
    authorization: String,
    /// Path prefix (without trailing `/`), usually empty.
    prefix: String,
}

fn admin_target() -> AdminTarget {
    let url = admin_url();
    parse_admin_url(&url)
        .unwrap_or_else(|| panic!("ADMIN_URL must look like http://user:pass@host:port: {url}"))
}

fn parse_admin_url(url: &str) -> Option<AdminTarget> {
    let rest = url.strip_prefix("http://")?;
    let (authority, prefix) = match rest.find('/') {
        Some(i) => (&rest[..i], rest[i..].trim_end_matches('/').to_string()),
        None => (rest, String::new()),
    };
    let (userinfo, hostport) = match authority.rfind('@') {
        Some(i) => (&authority[..i], &authority[i + 1..]),
        None => ("guest:guest", authority),
    };
    let (user, password) = userinfo.split_once(':').unwrap_or((userinfo, ""));
    let credentials = format!("{}:{}", percent_decode(user), percent_decode(password));
    let addr = if hostport.rsplit_once(':').is_some_and(|(_, p)| p.parse::<u16>().is_ok()) {
        hostport.to_string()
    } else {
        format!("{hostport}:80")
    };
    Some(AdminTarget { addr, authorization: format!("Basic {}", base64(credentials.as_bytes())), prefix })
}

/// Standard base64 with padding.
pub fn base64(data: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i)) as usize & 63] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Percent-encode one URL path segment (everything but unreserved
/// characters), so the vhost `/` becomes `%2F`.
pub fn enc(segment: &str) -> String {
    let mut out = String::with_capacity(segment.len());
    for b in segment.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A JSON object of string fields, e.g. `{"write":".*","read":""}`.
fn json_strings(fields: &[(&str, &str)]) -> String {
    let fields: Vec<String> =
        fields.iter().map(|(k, v)| format!("{}:{}", json_str(k), json_str(v))).collect();
    format!("{{{}}}", fields.join(","))
}

/// A JSON string literal (quoted and escaped).
pub fn json_str(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Escape regex metacharacters, for permission and policy patterns built
/// from [`unique`] names (which contain dots).
pub fn re_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if "\\.+*?()|[]{}^$".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

// No `Accept` header: RabbitMQ 3.10.8 answers PUT/DELETE /api/vhost-limits/…
// with 406 Not Acceptable when the request carries `Accept: application/json`.
fn admin_request(target: &AdminTarget, method: &str, path: &str, json: Option<&str>) -> Vec<u8> {
    let body = json.unwrap_or("");
    let mut req = format!(
        "{method} {}{path} HTTP/1.1\r\nHost: {}\r\nAuthorization: {}\r\n\
         Connection: close\r\nContent-Length: {}\r\n",
        target.prefix,
        target.addr,
        target.authorization,
        body.len()
    );
    if json.is_some() {
        req.push_str("Content-Type: application/json\r\n");
    }
    req.push_str("\r\n");
    req.push_str(body);
    req.into_bytes()
}

/// `(status, body)` of a complete HTTP/1.1 response.
fn parse_admin_response(raw: &[u8]) -> (u16, String) {
    let text = String::from_utf8_lossy(raw);
    let (head, rest) =
        text.split_once("\r\n\r\n").unwrap_or_else(|| panic!("truncated HTTP response: {text:?}"));
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse::<u16>().ok())
        .unwrap_or_else(|| panic!("bad HTTP status line: {status_line:?}"));
    let mut chunked = false;
    let mut length = None;
    for line in lines {
        let Some((name, value)) = line.split_once(':') else { continue };
        let (name, value) = (name.trim().to_ascii_lowercase(), value.trim());
        if name == "transfer-encoding" && value.to_ascii_lowercase().contains("chunked") {
            chunked = true;
        } else if name == "content-length" {
            length = value.parse::<usize>().ok();
        }
    }
    let body = if chunked {
        let mut out = String::new();
        let mut rest = rest;
        while let Some((size, tail)) = rest.split_once("\r\n") {
            let size = usize::from_str_radix(size.split(';').next().unwrap().trim(), 16).unwrap_or(0);
            if size == 0 || tail.len() < size {
                break;
            }
            out.push_str(&tail[..size]);
            rest = tail[size..].strip_prefix("\r\n").unwrap_or(&tail[size..]);
        }
        out
    } else {
        match length {
            Some(n) if n <= rest.len() => rest[..n].to_string(),
            _ => rest.to_string(),
        }
    };
    (status, body)
}

/// One request to the management API: `path` starts with `/api/`, its
/// segments already [`enc`]oded. Returns `(status, body)`.
pub async fn admin(method: &str, path: &str, json: Option<&str>) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let target = admin_target();
    let request = admin_request(&target, method, path, json);
    let raw = within(&format!("admin API {method} {path}"), async {
        let mut stream = tokio::net::TcpStream::connect(&target.addr)
            .await
            .unwrap_or_else(|e| panic!("cannot connect to the admin API at {}: {e}", target.addr));
        stream.write_all(&request).await.expect("admin API write");
        let mut raw = Vec::new();
        stream.read_to_end(&mut raw).await.expect("admin API read");
        raw
    })
    .await;
    parse_admin_response(&raw)
}

/// Like [`admin`], but panics unless the status is 2xx; returns the body.
pub async fn admin_ok(method: &str, path: &str, json: Option<&str>) -> String {
    let (status, body) = admin(method, path, json).await;
    assert!((200..300).contains(&status), "admin API {method} {path} {json:?}: {status} {body}");
    body
}

/// Blocking DELETE (for [`Cleanup`]'s `Drop`); errors are ignored.
fn admin_delete_blocking(path: &str) {
    use std::io::{Read, Write};
    // Never panics: this runs in `Drop`, possibly while a test unwinds.
    let Some(target) = admin_url_opt().as_deref().and_then(parse_admin_url) else { return };
    let request = admin_request(&target, "DELETE", path, None);
    let Ok(addr) = std::net::ToSocketAddrs::to_socket_addrs(&target.addr).map(|mut a| a.next()) else {
        return;
    };
    let Some(addr) = addr else { return };
    let Ok(mut stream) = std::net::TcpStream::connect_timeout(&addr, TIMEOUT) else { return };
    let _ = stream.set_read_timeout(Some(TIMEOUT));
    let _ = stream.set_write_timeout(Some(TIMEOUT));
    if stream.write_all(&request).is_ok() {
        let mut raw = Vec::new();
        let _ = stream.read_to_end(&mut raw);
    }
}

pub async fn add_user(user: &str, password: &str, tags: &str) {
    let body = json_strings(&[("password", password), ("tags", tags)]);
    admin_ok("PUT", &format!("/api/users/{}", enc(user)), Some(&body)).await;
}

pub async fn delete_user(user: &str) {
    admin_ok("DELETE", &format!("/api/users/{}", enc(user)), None).await;
}

pub async fn add_vhost(vhost: &str) {
    admin_ok("PUT", &format!("/api/vhosts/{}", enc(vhost)), None).await;
}

pub async fn delete_vhost(vhost: &str) {
    admin_ok("DELETE", &format!("/api/vhosts/{}", enc(vhost)), None).await;
}

/// Grant `user` the regexes `configure`, `write`, `read` on `vhost`.
pub async fn set_permissions(vhost: &str, user: &str, configure: &str, write: &str, read: &str) {
    let body = json_strings(&[("configure", configure), ("write", write), ("read", read)]);
    admin_ok("PUT", &format!("/api/permissions/{}/{}", enc(vhost), enc(user)), Some(&body)).await;
}

pub async fn clear_permissions(vhost: &str, user: &str) {
    admin_ok("DELETE", &format!("/api/permissions/{}/{}", enc(vhost), enc(user)), None).await;
}

/// Topic permissions of `user` on the topic exchange `exchange` in `vhost`.
pub async fn set_topic_permissions(vhost: &str, user: &str, exchange: &str, write: &str, read: &str) {
    let body = json_strings(&[("exchange", exchange), ("write", write), ("read", read)]);
    admin_ok("PUT", &format!("/api/topic-permissions/{}/{}", enc(vhost), enc(user)), Some(&body)).await;
}

/// `limit` is `max-connections` or `max-queues`.
pub async fn set_vhost_limit(vhost: &str, limit: &str, value: i64) {
    let body = format!("{{\"value\":{value}}}");
    admin_ok("PUT", &format!("/api/vhost-limits/{}/{}", enc(vhost), enc(limit)), Some(&body)).await;
}

pub async fn clear_vhost_limit(vhost: &str, limit: &str) {
    admin_ok("DELETE", &format!("/api/vhost-limits/{}/{}", enc(vhost), enc(limit)), None).await;
}

fn policy_body(pattern: &str, definition: &str, priority: i64, apply_to: &str) -> String {
    format!(
        "{{\"pattern\":{},\"definition\":{definition},\"priority\":{priority},\"apply-to\":{}}}",
        json_str(pattern),
        json_str(apply_to)
    )
}

/// A user policy; `definition` is a JSON object, e.g. `{"max-length":3}`;
/// `apply_to` is `queues`, `exchanges` or `all`.
pub async fn set_policy(
    vhost: &str,
    name: &str,
    pattern: &str,
    definition: &str,
    priority: i64,
    apply_to: &str,
) {
    put_policy("policies", vhost, name, policy_body(pattern, definition, priority, apply_to)).await;
}

pub async fn clear_policy(vhost: &str, name: &str) {
    admin_ok("DELETE", &format!("/api/policies/{}/{}", enc(vhost), enc(name)), None).await;
}

/// An operator policy (same shape as [`set_policy`]).
pub async fn set_operator_policy(
    vhost: &str,
    name: &str,
    pattern: &str,
    definition: &str,
    priority: i64,
    apply_to: &str,
) {
    put_policy("operator-policies", vhost, name, policy_body(pattern, definition, priority, apply_to)).await;
}

/// PUT of a policy of `kind` (`policies`, `operator-policies`).
async fn put_policy(kind: &str, vhost: &str, name: &str, body: String) {
    admin_ok("PUT", &format!("/api/{kind}/{}/{}", enc(vhost), enc(name)), Some(&body)).await;
}

pub async fn clear_operator_policy(vhost: &str, name: &str) {
    admin_ok("DELETE", &format!("/api/operator-policies/{}/{}", enc(vhost), enc(name)), None).await;
}

/// Deletes what a test created through the admin API when dropped (also when
/// the test panics), newest first; errors (already deleted) are ignored.
#[derive(Default)]
pub struct Cleanup {
    paths: Vec<String>,
}

impl Cleanup {
    pub fn path(&mut self, path: String) -> &mut Self {
        self.paths.push(path);
        self
    }
    pub fn user(&mut self, user: &str) -> &mut Self {
        self.path(format!("/api/users/{}", enc(user)))
    }
    pub fn vhost(&mut self, vhost: &str) -> &mut Self {
        self.path(format!("/api/vhosts/{}", enc(vhost)))
    }
    pub fn policy(&mut self, vhost: &str, name: &str) -> &mut Self {
        self.path(format!("/api/policies/{}/{}", enc(vhost), enc(name)))
    }
    pub fn operator_policy(&mut self, vhost: &str, name: &str) -> &mut Self {
        self.path(format!("/api/operator-policies/{}/{}", enc(vhost), enc(name)))
    }
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        for path in self.paths.drain(..).rev() {
            admin_delete_blocking(&path);
        }
    }
}
