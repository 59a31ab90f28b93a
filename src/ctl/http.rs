//! A small blocking HTTP/1.1 client, just enough for `warrenctl`: one request
//! per connection (`Connection: close`) over TCP or a unix socket, with a
//! timeout for the whole request (connect, send, answer), and a pure response parser (status line, headers, body by
//! Content-Length, chunked transfer-encoding or end of stream).
//!
//! It uses only std; the parser does no I/O, so tests feed it split input.

use std::io::{self, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// Largest accepted status line plus headers.
const MAX_HEAD: usize = 64 * 1024;
/// Largest accepted body (definitions of a big broker are a few MB).
const MAX_BODY: usize = 1 << 30;

/// Where the admin API listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    /// `http://host:port`, with `prefix` (no trailing `/`) put before every path.
    Tcp { host: String, port: u16, prefix: String },
    /// The broker's local control socket.
    Unix(PathBuf),
}

impl Endpoint {
    /// How the endpoint is named in messages: the URL or the socket path.
    pub fn describe(&self) -> String {
        match self {
            Endpoint::Tcp { host, port, prefix } if host.contains(':') => {
                format!("http://[{host}]:{port}{prefix}")
            }
            Endpoint::Tcp { host, port, prefix } => format!("http://{host}:{port}{prefix}"),
            Endpoint::Unix(path) => format!("socket {}", path.display()),
        }
    }

    /// The value of the `Host` header.
    fn host_header(&self) -> String {
        match self {
            Endpoint::Tcp { host, port, .. } if host.contains(':') => format!("[{host}]:{port}"),
            Endpoint::Tcp { host, port, .. } => format!("{host}:{port}"),
            Endpoint::Unix(_) => "localhost".to_string(),
        }
    }
}

/// An `http://` URL split into what the client needs.
#[derive(Clone, PartialEq, Eq)]
pub struct Url {
    pub endpoint: Endpoint,
    /// `user:password@` from the URL, if any.
    pub credentials: Option<(String, String)>,
}

/// Everything but the password, which shows as `<redacted>`.
impl std::fmt::Debug for Url {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let credentials = self.credentials.as_ref().map(|(user, _)| (user, Redacted));
        f.debug_struct("Url").field("endpoint", &self.endpoint).field("credentials", &credentials).finish()
    }
}

/// Stands for a secret (a password, an `Authorization` value) in `Debug`
/// output.
pub(crate) struct Redacted;

impl std::fmt::Debug for Redacted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

/// Parses `http://[user:pw@]host[:port][/prefix]`; the port defaults to 80.
pub fn parse_url(url: &str) -> Result<Url, String> {
    let rest = match url.split_once("://") {
        Some((scheme, rest)) if scheme.eq_ignore_ascii_case("http") => rest,
        Some((scheme, _)) => {
            return Err(format!("unsupported URL scheme '{scheme}' in '{url}' (only http:// is supported)"))
        }
        None => return Err(format!("'{url}' is not a URL (expected http://host:port)")),
    };
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], rest[i..].trim_end_matches('/')),
        None => (rest, ""),
    };
    let (credentials, hostport) = match authority.rsplit_once('@') {
        Some((userinfo, hostport)) => {
            let (u, p) = userinfo.split_once(':').unwrap_or((userinfo, ""));
            let decode = |s: &str| percent_encoding::percent_decode_str(s).decode_utf8_lossy().into_owned();
            (Some((decode(u), decode(p))), hostport)
        }
        None => (None, authority),
    };
    let (host, port) = if let Some(bracketed) = hostport.strip_prefix('[') {
        let (host, after) =
            bracketed.split_once(']').ok_or_else(|| format!("unterminated IPv6 address in '{url}'"))?;
        (host, after.strip_prefix(':'))
    } else {
        match hostport.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (hostport, None),
        }
    };
    if host.is_empty() {
        return Err(format!("no host in URL '{url}'"));
    }
    let port = match port {
        Some(p) => p.parse::<u16>().map_err(|_| format!("bad port '{p}' in URL '{url}'"))?,
        None => 80,
    };
    let endpoint = Endpoint::Tcp { host: host.to_string(), port, prefix: path.to_string() };
    Ok(Url { endpoint, credentials })
}

/// Why a request got no HTTP response.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    #[error("unable to connect to {target}: {source}")]
    Connect { target: String, source: io::Error },
    #[error("no response from {target} within {} seconds", seconds(.after))]
    Timeout { target: String, after: Duration },
    #[error("connection to {target} failed: {source}")]
    Io { target: String, source: io::Error },
    #[error("malformed HTTP response from {target}: {detail}")]
    Malformed { target: String, detail: String },
}

/// A parsed HTTP response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    /// The first header named `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

/// Outcome of feeding the bytes received so far to [`parse_response`].
#[derive(Debug, PartialEq, Eq)]
pub enum Parsed {
    /// More bytes are needed.
    Incomplete,
    Complete(Response),
}

/// Parses a whole response from `buf`. `eof` says the peer closed the stream,
/// which ends a body that has neither a length nor chunked encoding.
/// Interim 1xx responses are skipped. An error means the bytes are malformed.
pub fn parse_response(mut buf: &[u8], eof: bool) -> Result<Parsed, String> {
    loop {
        let Some((status, headers, body_start)) = parse_head(buf)? else {
            return if eof {
                Err("connection closed before the headers ended".into())
            } else {
                Ok(Parsed::Incomplete)
            };
        };
        let rest = &buf[body_start..];
        if (100..200).contains(&status) {
            buf = rest;
            continue;
        }
        let find = |name: &str| headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v);
        let chunked = find("transfer-encoding").is_some_and(|te| {
            te.rsplit(',').next().is_some_and(|last| last.trim().eq_ignore_ascii_case("chunked"))
        });
        let body = if status == 204 || status == 304 {
            Some(Vec::new())
        } else if chunked {
            chunked_end(rest)?.map(|_| decode_chunked(rest))
        } else if let Some(len) = find("content-length") {
            let len: usize = len.trim().parse().map_err(|_| format!("bad Content-Length '{len}'"))?;
            if len > MAX_BODY {
                return Err(format!("body of {len} bytes is too large"));
            }
            (rest.len() >= len).then(|| rest[..len].to_vec())
        } else {
            eof.then(|| rest.to_vec())
        };
        return match body {
            Some(body) => Ok(Parsed::Complete(Response { status, headers, body })),
            None if eof => Err("connection closed before the body ended".into()),
            None => Ok(Parsed::Incomplete),
        };
    }
}

type Head = (u16, Vec<(String, String)>, usize);

/// Status line and headers, with the offset of the body; `None` if incomplete.
fn parse_head(buf: &[u8]) -> Result<Option<Head>, String> {
    let window = &buf[..buf.len().min(MAX_HEAD)];
    let Some((head_len, body_start)) = find_blank_line(window) else {
        return if buf.len() >= MAX_HEAD { Err("headers too large".into()) } else { Ok(None) };
    };
    let head = std::str::from_utf8(&buf[..head_len]).map_err(|_| "headers are not UTF-8".to_string())?;
    let mut lines = head.split('\n').map(|l| l.strip_suffix('\r').unwrap_or(l));
    let status_line = lines.next().unwrap_or_default();
    let mut parts = status_line.splitn(3, ' ');
    let version = parts.next().unwrap_or_default();
    if !version.starts_with("HTTP/1.") {
        return Err(format!("bad status line '{status_line}'"));
    }
    let status = parts
        .next()
        .and_then(|s| s.parse::<u16>().ok())
        .filter(|s| (100..1000).contains(s))
        .ok_or_else(|| format!("bad status line '{status_line}'"))?;
    let mut headers = Vec::new();
    for line in lines.filter(|l| !l.is_empty()) {
        let (name, value) = line.split_once(':').ok_or_else(|| format!("bad header line '{line}'"))?;
        headers.push((name.trim().to_string(), value.trim().to_string()));
    }
    Ok(Some((status, headers, body_start)))
}

/// Finds the blank line ending the head: (length of the head, start of the body).
fn find_blank_line(buf: &[u8]) -> Option<(usize, usize)> {
    let mut i = 0;
    while let Some(off) = buf[i..].iter().position(|&b| b == b'\n') {
        let nl = i + off;
        let next = &buf[nl + 1..];
        if next.starts_with(b"\r\n") {
            return Some((nl, nl + 3));
        }
        if next.starts_with(b"\n") {
            return Some((nl, nl + 2));
        }
        i = nl + 1;
    }
    None
}

/// Reads one line (without its CRLF) at `at`; `None` if no line end yet.
fn line_at(buf: &[u8], at: usize) -> Option<(&[u8], usize)> {
    let off = buf.get(at..)?.iter().position(|&b| b == b'\n')?;
    let line = &buf[at..at + off];
    Some((line.strip_suffix(b"\r").unwrap_or(line), at + off + 1))
}

/// Walks a chunked body without copying it: where it ends, or `None` if incomplete.
fn chunked_end(buf: &[u8]) -> Result<Option<usize>, String> {
    walk_chunks(buf, |_| ())
}

/// Copies out the data of a chunked body already known to be complete.
fn decode_chunked(buf: &[u8]) -> Vec<u8> {
    let mut body = Vec::new();
    let _ = walk_chunks(buf, |data| body.extend_from_slice(data));
    body
}

fn walk_chunks(buf: &[u8], mut sink: impl FnMut(&[u8])) -> Result<Option<usize>, String> {
    let mut at = 0;
    let mut total = 0usize;
    loop {
        let Some((line, next)) = line_at(buf, at) else { return Ok(None) };
        let size_text = std::str::from_utf8(line).map_err(|_| "bad chunk size".to_string())?;
        let size_text = size_text.split(';').next().unwrap_or_default().trim();
        let size =
            usize::from_str_radix(size_text, 16).map_err(|_| format!("bad chunk size '{size_text}'"))?;
        total = total.saturating_add(size);
        if total > MAX_BODY {
            return Err("chunked body too large".into());
        }
        if size == 0 {
            // Trailers, then a blank line.
            let mut at = next;
            loop {
                let Some((line, next)) = line_at(buf, at) else { return Ok(None) };
                if line.is_empty() {
                    return Ok(Some(next));
                }
                at = next;
            }
        }
        let Some(data) = buf.get(next..next + size) else { return Ok(None) };
        let Some((crlf, after)) = line_at(buf, next + size) else { return Ok(None) };
        if !crlf.is_empty() {
            return Err("chunk not followed by CRLF".into());
        }
        at = after;
        sink(data);
    }
}

/// Serializes a request; `Content-Length` is always sent with a body. No
/// `Accept` header: RabbitMQ answers `Accept: application/json` on a PUT of
/// a vhost limit with 406, and every answer is JSON anyway.
pub fn encode_request(
    method: &str,
    host: &str,
    path: &str,
    headers: &[(&str, String)],
    body: Option<&[u8]>,
) -> Vec<u8> {
    let mut out = format!(
        "{method} {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: warrenctl/{}\r\nConnection: close\r\n",
        env!("CARGO_PKG_VERSION")
    );
    for (name, value) in headers {
        out.push_str(&format!("{name}: {value}\r\n"));
    }
    if let Some(body) = body {
        out.push_str(&format!("Content-Type: application/json\r\nContent-Length: {}\r\n", body.len()));
    }
    out.push_str("\r\n");
    let mut bytes = out.into_bytes();
    bytes.extend_from_slice(body.unwrap_or_default());
    bytes
}

/// Writes `request` and reads one response from `stream`.
pub fn exchange<S: Read + Write>(stream: &mut S, request: &[u8]) -> io::Result<Result<Response, String>> {
    stream.write_all(request)?;
    stream.flush()?;
    let mut buf = Vec::with_capacity(16 * 1024);
    let mut chunk = vec![0u8; 64 * 1024];
    loop {
        let n = match stream.read(&mut chunk) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        buf.extend_from_slice(&chunk[..n]);
        match parse_response(&buf, n == 0) {
            Ok(Parsed::Incomplete) => continue,
            Ok(Parsed::Complete(response)) => return Ok(Ok(response)),
            Err(detail) => return Ok(Err(detail)),
        }
    }
}

/// One endpoint and a timeout for connecting, reading and writing.
#[derive(Debug, Clone)]
pub struct Client {
    pub endpoint: Endpoint,
    pub timeout: Duration,
}

impl Client {
    /// Sends one request (on a fresh connection) and returns the response.
    /// `path` starts with `/` and excludes the endpoint's prefix.
    pub fn send(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, String)],
        body: Option<&[u8]>,
    ) -> Result<Response, HttpError> {
        let target = self.endpoint.describe();
        let prefix = match &self.endpoint {
            Endpoint::Tcp { prefix, .. } => prefix.as_str(),
            Endpoint::Unix(_) => "",
        };
        let request =
            encode_request(method, &self.endpoint.host_header(), &format!("{prefix}{path}"), headers, body);
        let deadline = Deadline::after(self.timeout);
        let timed_out =
            |e: &io::Error| matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut);
        let outcome = match &self.endpoint {
            Endpoint::Tcp { host, port, .. } => {
                let stream = self
                    .connect_tcp(host, *port, deadline)
                    .map_err(|source| HttpError::Connect { target: target.clone(), source })?;
                exchange(&mut Timed { stream, deadline }, &request)
            }
            Endpoint::Unix(path) => {
                let stream = UnixStream::connect(path)
                    .map_err(|source| HttpError::Connect { target: target.clone(), source })?;
                exchange(&mut Timed { stream, deadline }, &request)
            }
        };
        match outcome {
            Ok(Ok(response)) => Ok(response),
            Ok(Err(detail)) => Err(HttpError::Malformed { target, detail }),
            Err(e) if timed_out(&e) => Err(HttpError::Timeout { target, after: self.timeout }),
            Err(source) => Err(HttpError::Io { target, source }),
        }
    }

    fn connect_tcp(&self, host: &str, port: u16, deadline: Deadline) -> io::Result<TcpStream> {
        let mut last = io::Error::new(io::ErrorKind::NotFound, format!("no address found for {host}"));
        for addr in (host, port).to_socket_addrs()? {
            match TcpStream::connect_timeout(&addr, deadline.left()?) {
                Ok(stream) => return Ok(stream),
                Err(e) => last = e,
            }
        }
        Err(last)
    }
}

/// A duration in seconds as a person writes it: `5`, `0.25`.
pub fn seconds(duration: &Duration) -> String {
    if duration.subsec_nanos() == 0 {
        return duration.as_secs().to_string();
    }
    let text = format!("{:.2}", duration.as_secs_f64());
    text.trim_end_matches('0').trim_end_matches('.').to_string()
}

/// When a request must be over: the client's timeout bounds the whole of
/// it, not each read (a server dripping a byte at a time cannot hold it up).
#[derive(Debug, Clone, Copy)]
struct Deadline(Option<Instant>);

impl Deadline {
    /// `timeout` from now (none for a timeout past what an `Instant` holds).
    fn after(timeout: Duration) -> Deadline {
        Deadline(Instant::now().checked_add(timeout))
    }

    /// The time left, or a `TimedOut` error when there is none.
    fn left(self) -> io::Result<Duration> {
        let Some(at) = self.0 else { return Ok(Duration::from_secs(u64::from(u32::MAX))) };
        match at.saturating_duration_since(Instant::now()) {
            left if left.is_zero() => Err(io::ErrorKind::TimedOut.into()),
            left => Ok(left),
        }
    }
}

/// A socket whose reads and writes wait at most until a deadline.
trait Timeouts {
    fn read_timeout(&self, left: Duration) -> io::Result<()>;
    fn write_timeout(&self, left: Duration) -> io::Result<()>;
}

impl Timeouts for TcpStream {
    fn read_timeout(&self, left: Duration) -> io::Result<()> {
        self.set_read_timeout(Some(left))
    }
    fn write_timeout(&self, left: Duration) -> io::Result<()> {
        self.set_write_timeout(Some(left))
    }
}

impl Timeouts for UnixStream {
    fn read_timeout(&self, left: Duration) -> io::Result<()> {
        self.set_read_timeout(Some(left))
    }
    fn write_timeout(&self, left: Duration) -> io::Result<()> {
        self.set_write_timeout(Some(left))
    }
}

/// `stream`, each read and write given the time left until `deadline`.
struct Timed<S> {
    stream: S,
    deadline: Deadline,
}

impl<S: Read + Timeouts> Read for Timed<S> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.stream.read_timeout(self.deadline.left()?)?;
        self.stream.read(buf)
    }
}

impl<S: Write + Timeouts> Write for Timed<S> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.stream.write_timeout(self.deadline.left()?)?;
        self.stream.write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.stream.flush()
    }
}

#[cfg(test)]
#[path = "http_tests.rs"]
mod tests;
