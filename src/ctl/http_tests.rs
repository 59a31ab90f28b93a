//! Tests of the HTTP client: the parser fed whole and split input, and the
//! client against tiny servers on a unix socket and on TCP.

use super::*;
use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::os::unix::net::UnixListener;
use std::thread;

/// Feeds `raw` one byte at a time: incomplete until the last byte, then complete.
fn parse_bytewise(raw: &[u8]) -> Response {
    for end in 0..raw.len() {
        assert_eq!(parse_response(&raw[..end], false), Ok(Parsed::Incomplete), "at {end}");
    }
    match parse_response(raw, false) {
        Ok(Parsed::Complete(r)) => r,
        other => panic!("{other:?}"),
    }
}

#[test]
fn content_length_body() {
    let raw =
        b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nContent-Length: 13\r\n\r\n{\"name\":\"a\"}\n";
    let r = parse_bytewise(raw);
    assert_eq!(r.status, 200);
    assert_eq!(r.header("Content-Type"), Some("application/json"));
    assert_eq!(r.body, b"{\"name\":\"a\"}\n");
}

#[test]
fn chunked_body_with_extensions_and_trailers() {
    let raw = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n\
        5;ext=1\r\n[{\"a\"\r\nA\r\n:1},{\"b\":2\r\n2\r\n}]\r\n0\r\nX-Trailer: t\r\n\r\n";
    let r = parse_bytewise(raw);
    assert_eq!(String::from_utf8(r.body).unwrap(), "[{\"a\":1},{\"b\":2}]");
}

#[test]
fn chunked_body_split_at_every_point() {
    let raw: &[u8] = b"HTTP/1.1 201 Created\r\ntransfer-encoding: gzip, chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n";
    for split in 0..raw.len() {
        let mut buf = raw[..split].to_vec();
        assert_eq!(parse_response(&buf, false), Ok(Parsed::Incomplete));
        buf.extend_from_slice(&raw[split..]);
        let Ok(Parsed::Complete(r)) = parse_response(&buf, false) else { panic!("split {split}") };
        assert_eq!((r.status, r.body.as_slice()), (201, &b"abc"[..]));
    }
}

#[test]
fn body_until_eof_and_bodyless_statuses() {
    let raw = b"HTTP/1.0 200 OK\r\n\r\nall of it";
    assert_eq!(parse_response(raw, false), Ok(Parsed::Incomplete));
    let Ok(Parsed::Complete(r)) = parse_response(raw, true) else { panic!() };
    assert_eq!(r.body, b"all of it");
    let r = parse_bytewise(b"HTTP/1.1 204 No Content\r\nvary: origin\r\n\r\n");
    assert_eq!((r.status, r.body.len()), (204, 0));
}

#[test]
fn interim_responses_are_skipped_and_bare_lf_accepted() {
    let raw = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 404 Not Found\ncontent-length: 2\n\n{}";
    let r = parse_bytewise(raw);
    assert_eq!((r.status, r.body.as_slice()), (404, &b"{}"[..]));
}

#[test]
fn malformed_and_truncated_responses_are_errors() {
    assert!(parse_response(b"SSH-2.0-OpenSSH\r\n\r\n", false).is_err());
    assert!(parse_response(b"HTTP/1.1 abc OK\r\n\r\n", false).is_err());
    assert!(parse_response(b"HTTP/1.1 200 OK\r\nno colon\r\n\r\n", false).is_err());
    assert!(parse_response(b"HTTP/1.1 200 OK\r\ncontent-length: x\r\n\r\n", false).is_err());
    let bad_chunk = b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\nzz\r\n";
    assert!(parse_response(bad_chunk, false).is_err());
    let no_crlf = b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n1\r\nabc\r\n";
    assert!(parse_response(no_crlf, false).is_err());
    let short = b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nabc";
    assert_eq!(parse_response(short, false), Ok(Parsed::Incomplete));
    assert!(parse_response(short, true).is_err());
    assert!(parse_response(b"HTTP/1.1 200", true).is_err());
    assert!(parse_response(&vec![b'a'; MAX_HEAD + 1], false).is_err());
}

/// A stream that hands out its bytes one per read and records what is written.
struct Trickle {
    input: Vec<u8>,
    at: usize,
    written: Vec<u8>,
}

impl Read for Trickle {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let Some(&b) = self.input.get(self.at) else { return Ok(0) };
        self.at += 1;
        buf[0] = b;
        Ok(1)
    }
}

impl Write for Trickle {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.written.extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[test]
fn exchange_reads_one_byte_at_a_time() {
    let input = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n[]\r\n0\r\n\r\n".to_vec();
    let mut stream = Trickle { input, at: 0, written: Vec::new() };
    let request = encode_request("GET", "localhost", "/api/users", &[], None);
    let r = exchange(&mut stream, &request).unwrap().unwrap();
    assert_eq!(r.body, b"[]");
    assert_eq!(stream.written, request);
}

#[test]
fn requests_carry_length_type_and_close() {
    let auth = ("Authorization", "Basic eDp5".to_string());
    let raw = encode_request("PUT", "h:1", "/api/vhosts/%2F", &[auth], Some(b"{}"));
    let text = String::from_utf8(raw).unwrap();
    assert!(text.starts_with("PUT /api/vhosts/%2F HTTP/1.1\r\nHost: h:1\r\n"), "{text}");
    for line in ["Connection: close\r\n", "Authorization: Basic eDp5\r\n", "Content-Length: 2\r\n"] {
        assert!(text.contains(line), "{line} in {text}");
    }
    assert!(text.ends_with("\r\n\r\n{}"), "{text}");
    let get = String::from_utf8(encode_request("GET", "h", "/", &[], None)).unwrap();
    assert!(!get.contains("Content-Length"));
}

#[test]
fn urls() {
    let u = parse_url("http://localhost:15672").unwrap();
    let tcp =
        |host: &str, port, prefix: &str| Endpoint::Tcp { host: host.into(), port, prefix: prefix.into() };
    assert_eq!((u.endpoint, u.credentials), (tcp("localhost", 15672, ""), None));
    let u = parse_url("HTTP://admin:p%40ss@[::1]:8080/rmq/").unwrap();
    assert_eq!(u.endpoint, tcp("::1", 8080, "/rmq"));
    assert_eq!(u.credentials, Some(("admin".into(), "p@ss".into())));
    assert_eq!(u.endpoint.describe(), "http://[::1]:8080/rmq");
    assert_eq!(parse_url("http://h").unwrap().endpoint, tcp("h", 80, ""));
    assert!(parse_url("https://h").unwrap_err().contains("only http://"));
    assert!(parse_url("localhost:15672").is_err());
    assert!(parse_url("http://h:99999").is_err());
    assert!(parse_url("http://:1").is_err());
}

#[test]
fn url_debug_output_hides_the_password() {
    let u = parse_url("http://admin:s3cr%40t-pw@broker:15672/rmq").unwrap();
    let shown = format!("{u:?}");
    assert!(!shown.contains("s3cr") && !shown.contains("t-pw"), "{shown}");
    assert!(shown.contains(r#"credentials: Some(("admin", <redacted>))"#), "{shown}");
    assert!(shown.contains("broker") && shown.contains("15672") && shown.contains("/rmq"), "{shown}");
    assert!(format!("{:?}", parse_url("http://h").unwrap()).contains("credentials: None"));
}

/// Reads a request's head from `reader` and returns it.
fn read_head(reader: &mut impl BufRead) -> String {
    let mut head = String::new();
    loop {
        let mut line = String::new();
        reader.read_line(&mut line).unwrap();
        head.push_str(&line);
        if line == "\r\n" || line.is_empty() {
            return head;
        }
    }
}

#[test]
fn client_over_a_unix_socket_sends_no_credentials() {
    let dir = std::env::temp_dir().join(format!("warrenctl-http-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("ctl.sock");
    let _ = std::fs::remove_file(&path);
    let listener = UnixListener::bind(&path).unwrap();
    let server = thread::spawn(move || {
        let (stream, _) = listener.accept().unwrap();
        let mut reader = BufReader::new(stream);
        let head = read_head(&mut reader);
        let mut stream = reader.into_inner();
        for part in ["HTTP/1.1 200 OK\r\ntransfer-enc", "oding: chunked\r\n\r\n5\r\n[1,2", "]\r\n0\r\n\r\n"] {
            stream.write_all(part.as_bytes()).unwrap();
            stream.flush().unwrap();
            thread::sleep(Duration::from_millis(20));
        }
        head
    });
    let client = Client { endpoint: Endpoint::Unix(path.clone()), timeout: Duration::from_secs(5) };
    let r = client.send("GET", "/api/users", &[], None).unwrap();
    assert_eq!(r.body, b"[1,2]");
    let head = server.join().unwrap();
    assert!(head.starts_with("GET /api/users HTTP/1.1\r\nHost: localhost\r\n"), "{head}");
    assert!(!head.contains("Authorization"), "{head}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn client_over_tcp_with_prefix_and_a_missing_socket() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = thread::spawn(move || {
        let (stream, _) = listener.accept().unwrap();
        let mut reader = BufReader::new(stream);
        let head = read_head(&mut reader);
        let mut body = [0u8; 2];
        reader.read_exact(&mut body).unwrap();
        let mut stream = reader.into_inner();
        stream.write_all(b"HTTP/1.1 201 Created\r\ncontent-length: 0\r\n\r\n").unwrap();
        (head, body)
    });
    let endpoint = Endpoint::Tcp { host: "127.0.0.1".into(), port, prefix: "/p".into() };
    let client = Client { endpoint, timeout: Duration::from_secs(5) };
    let r = client.send("PUT", "/api/vhosts/x", &[], Some(b"{}")).unwrap();
    assert_eq!(r.status, 201);
    let (head, body) = server.join().unwrap();
    assert!(
        head.starts_with(&format!("PUT /p/api/vhosts/x HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n")),
        "{head}"
    );
    assert_eq!(&body, b"{}");

    let missing =
        Client { endpoint: Endpoint::Unix("/nonexistent/ctl.sock".into()), timeout: Duration::from_secs(1) };
    let e = missing.send("GET", "/api/users", &[], None).unwrap_err();
    assert!(matches!(&e, HttpError::Connect { .. }), "{e}");
    assert!(e.to_string().contains("/nonexistent/ctl.sock"), "{e}");
}

#[test]
fn a_silent_server_times_out() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = thread::spawn(move || {
        let (stream, _) = listener.accept().unwrap();
        thread::sleep(Duration::from_millis(1500));
        drop(stream);
    });
    let endpoint = Endpoint::Tcp { host: "127.0.0.1".into(), port, prefix: String::new() };
    let client = Client { endpoint, timeout: Duration::from_millis(300) };
    let e = client.send("GET", "/api/overview", &[], None).unwrap_err();
    assert!(matches!(e, HttpError::Timeout { .. }), "{e}");
    server.join().unwrap();
}

#[test]
fn a_dripping_server_times_out_at_the_deadline() {
    // A byte every 100 ms: each read gets data in time, the request never ends.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = thread::spawn(move || {
        let (mut stream, _) = listener.accept().unwrap();
        stream.write_all(b"HTTP/1.1 200 OK\r\n").unwrap();
        for _ in 0..30 {
            thread::sleep(Duration::from_millis(100));
            if stream.write_all(b"x").is_err() {
                return;
            }
        }
    });
    let endpoint = Endpoint::Tcp { host: "127.0.0.1".into(), port, prefix: String::new() };
    let client = Client { endpoint, timeout: Duration::from_millis(500) };
    let start = Instant::now();
    let e = client.send("GET", "/api/overview", &[], None).unwrap_err();
    let took = start.elapsed();
    assert!(matches!(e, HttpError::Timeout { .. }), "{e}");
    assert!(e.to_string().ends_with("within 0.5 seconds"), "{e}");
    // The drip lasts 3 s: a Timeout before that is the deadline at work.
    assert!(took >= Duration::from_millis(450) && took < Duration::from_millis(2500), "{took:?}");
    server.join().unwrap();
}

#[test]
fn a_huge_timeout_is_no_deadline() {
    assert!(Deadline::after(Duration::MAX).left().unwrap() > Duration::from_secs(1 << 31));
    assert!(Deadline::after(Duration::ZERO).left().is_err());
    let expected = [(0, "0"), (5000, "5"), (250, "0.25"), (1500, "1.5"), (60_000, "60")];
    for (millis, text) in expected {
        assert_eq!(seconds(&Duration::from_millis(millis)), text);
    }
}
