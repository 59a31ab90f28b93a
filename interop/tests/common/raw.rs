//! Below lapin: the parts of `$AMQP_URL`, a TCP proxy whose connections can be
//! cut, and a raw AMQP client that sends and reads frames byte for byte.

use super::*;

/// The parts of `$AMQP_URL` that a raw client or a proxy needs.
#[derive(Debug, Clone)]
pub struct UrlParts {
    pub user: String,
    pub password: String,
    /// `host:port` of the broker.
    pub addr: String,
    pub vhost: String,
    /// Everything from `?` on (may be empty).
    pub query: String,
}

pub(super) fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok();
            if let Some(b) = hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8(out).expect("utf-8 URL component")
}

/// Split an `amqp://user:pass@host:port/vhost?query` URL.
pub fn url_parts(url: &str) -> UrlParts {
    let rest = url.strip_prefix("amqp://").unwrap_or_else(|| panic!("not an amqp:// URL: {url}"));
    let (rest, query) = match rest.find('?') {
        Some(i) => (&rest[..i], rest[i..].to_string()),
        None => (rest, String::new()),
    };
    let (authority, vhost) = match rest.find('/') {
        Some(i) => (&rest[..i], percent_decode(&rest[i + 1..])),
        None => (rest, "/".to_string()),
    };
    let (userinfo, hostport) = match authority.rfind('@') {
        Some(i) => (&authority[..i], &authority[i + 1..]),
        None => ("guest:guest", authority),
    };
    let (user, password) = userinfo.split_once(':').unwrap_or((userinfo, ""));
    let addr = if hostport.rsplit_once(':').is_some_and(|(_, p)| p.parse::<u16>().is_ok()) {
        hostport.to_string()
    } else {
        format!("{hostport}:5672")
    };
    UrlParts { user: percent_decode(user), password: percent_decode(password), addr, vhost, query }
}

/// A TCP proxy in front of the broker whose connections can be cut abruptly
/// (sockets closed without any AMQP close handshake), to simulate a client
/// that dies or a network that fails.
pub struct KillableProxy {
    /// `$AMQP_URL` rewritten to go through the proxy.
    pub url: String,
    tasks: std::sync::Arc<std::sync::Mutex<Vec<tokio::task::JoinHandle<()>>>>,
}

impl KillableProxy {
    pub async fn start() -> KillableProxy {
        let parts = url_parts(&amqp_url());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("proxy bind");
        let local = listener.local_addr().unwrap();
        let original = amqp_url();
        let url = original.replacen(&original_authority_host(&original), &local.to_string(), 1);
        let tasks = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let tasks2 = tasks.clone();
        let upstream = parts.addr.clone();
        let accept = tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                let upstream = upstream.clone();
                let handle = tokio::spawn(async move {
                    if let Ok(mut server) = tokio::net::TcpStream::connect(&upstream).await {
                        let _ = client.set_nodelay(true);
                        let _ = server.set_nodelay(true);
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                    }
                });
                tasks2.lock().unwrap().push(handle);
            }
        });
        tasks.lock().unwrap().push(accept);
        KillableProxy { url, tasks }
    }

    /// Cut every proxied connection (and stop accepting new ones): both sides
    /// see their socket closed with no AMQP-level goodbye.
    pub fn kill(&self) {
        for t in self.tasks.lock().unwrap().drain(..) {
            t.abort();
        }
    }
}

impl Drop for KillableProxy {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The `host:port` text as written in `url` (what the proxy replaces).
fn original_authority_host(url: &str) -> String {
    let rest = url.strip_prefix("amqp://").expect("amqp:// URL");
    let authority = rest.split(['/', '?']).next().unwrap();
    authority.rsplit_once('@').map(|(_, h)| h).unwrap_or(authority).to_string()
}

/// One frame read by [`RawAmqp`].
#[derive(Debug, Clone)]
pub struct RawFrame {
    pub kind: u8,
    pub channel: u16,
    pub payload: Vec<u8>,
}

impl RawFrame {
    /// `(class_id, method_id)` of a method frame.
    pub fn method(&self) -> Option<(u16, u16)> {
        (self.kind == 1 && self.payload.len() >= 4).then(|| {
            (
                u16::from_be_bytes([self.payload[0], self.payload[1]]),
                u16::from_be_bytes([self.payload[2], self.payload[3]]),
            )
        })
    }

    /// Arguments of a method frame.
    pub fn args(&self) -> ArgReader<'_> {
        ArgReader { buf: &self.payload[4..] }
    }
}

/// Reads AMQP method arguments in order.
pub struct ArgReader<'a> {
    buf: &'a [u8],
}

impl ArgReader<'_> {
    fn take(&mut self, n: usize) -> &[u8] {
        assert!(self.buf.len() >= n, "method arguments too short");
        let (head, tail) = self.buf.split_at(n);
        self.buf = tail;
        head
    }
    pub fn u8(&mut self) -> u8 {
        self.take(1)[0]
    }
    pub fn u16(&mut self) -> u16 {
        u16::from_be_bytes(self.take(2).try_into().unwrap())
    }
    pub fn u32(&mut self) -> u32 {
        u32::from_be_bytes(self.take(4).try_into().unwrap())
    }
    pub fn u64(&mut self) -> u64 {
        u64::from_be_bytes(self.take(8).try_into().unwrap())
    }
    pub fn shortstr(&mut self) -> String {
        let n = self.u8() as usize;
        String::from_utf8_lossy(self.take(n)).into_owned()
    }
    pub fn longstr(&mut self) -> Vec<u8> {
        let n = self.u32() as usize;
        self.take(n).to_vec()
    }
}

/// Encodes AMQP method arguments.
#[derive(Default)]
pub struct ArgWriter(pub Vec<u8>);

impl ArgWriter {
    pub fn u8(mut self, v: u8) -> Self {
        self.0.push(v);
        self
    }
    pub fn u16(mut self, v: u16) -> Self {
        self.0.extend_from_slice(&v.to_be_bytes());
        self
    }
    pub fn u32(mut self, v: u32) -> Self {
        self.0.extend_from_slice(&v.to_be_bytes());
        self
    }
    pub fn u64(mut self, v: u64) -> Self {
        self.0.extend_from_slice(&v.to_be_bytes());
        self
    }
    pub fn shortstr(mut self, s: &str) -> Self {
        assert!(s.len() < 256);
        self.0.push(s.len() as u8);
        self.0.extend_from_slice(s.as_bytes());
        self
    }
    pub fn longstr(mut self, s: &[u8]) -> Self {
        self.0.extend_from_slice(&(s.len() as u32).to_be_bytes());
        self.0.extend_from_slice(s);
        self
    }
}

/// A bare-bones AMQP 0-9-1 client on a plain socket, for what lapin cannot
/// express (e.g. basic.qos with prefetch_size != 0) or hides (the exact order
/// of frames, confirm delivery tags). Every read is bounded by [`TIMEOUT`].
pub struct RawAmqp {
    stream: tokio::net::TcpStream,
    buf: Vec<u8>,
}

impl RawAmqp {
    /// Connect to `$AMQP_URL`, authenticate with PLAIN, open the vhost
    /// (heartbeats off, frame_max as proposed by the server).
    pub async fn connect() -> RawAmqp {
        let parts = url_parts(&amqp_url());
        RawAmqp::connect_as(&parts.user, &parts.password, &parts.vhost).await
    }

    pub async fn send_frame(&mut self, kind: u8, channel: u16, payload: &[u8]) {
        use tokio::io::AsyncWriteExt;
        let mut f = Vec::with_capacity(payload.len() + 8);
        f.push(kind);
        f.extend_from_slice(&channel.to_be_bytes());
        f.extend_from_slice(&(payload.len() as u32).to_be_bytes());
        f.extend_from_slice(payload);
        f.push(0xCE);
        within("raw write", self.stream.write_all(&f)).await.expect("raw write");
    }

    pub async fn send_method(&mut self, channel: u16, class: u16, method: u16, args: Vec<u8>) {
        let mut p = Vec::with_capacity(args.len() + 4);
        p.extend_from_slice(&class.to_be_bytes());
        p.extend_from_slice(&method.to_be_bytes());
        p.extend_from_slice(&args);
        self.send_frame(1, channel, &p).await;
    }

    /// The next non-heartbeat frame, or `None` if the server closed the socket.
    pub async fn read_frame(&mut self) -> Option<RawFrame> {
        use tokio::io::AsyncReadExt;
        loop {
            if self.buf.len() >= 7 {
                let size = u32::from_be_bytes(self.buf[3..7].try_into().unwrap()) as usize;
                if self.buf.len() >= size + 8 {
                    let frame: Vec<u8> = self.buf.drain(..size + 8).collect();
                    assert_eq!(frame[size + 7], 0xCE, "bad frame end");
                    let f = RawFrame {
                        kind: frame[0],
                        channel: u16::from_be_bytes([frame[1], frame[2]]),
                        payload: frame[7..size + 7].to_vec(),
                    };
                    if f.kind == 8 {
                        continue;
                    }
                    return Some(f);
                }
            }
            let mut chunk = [0u8; 4096];
            let n = within("raw read", self.stream.read(&mut chunk)).await.unwrap_or(0);
            if n == 0 {
                return None;
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }

    /// Read the next frame and assert it is method `class.method` on `channel`.
    pub async fn expect_method(&mut self, channel: u16, class: u16, method: u16) -> RawFrame {
        let f = self.read_frame().await.unwrap_or_else(|| {
            panic!("socket closed while waiting for method {class}.{method} on channel {channel}")
        });
        if f.method() == Some((10, 50)) && (class, method) != (10, 50) {
            let mut a = f.args();
            let (code, text) = (a.u16(), a.shortstr());
            panic!("expected method {class}.{method}, got connection.close {code} {text}");
        }
        assert_eq!(
            (f.channel, f.method()),
            (channel, Some((class, method))),
            "unexpected frame {f:?} (wanted method {class}.{method} on channel {channel})"
        );
        f
    }

    pub async fn open_channel(&mut self, channel: u16) {
        self.send_method(channel, 20, 10, ArgWriter::default().shortstr("").0).await;
        self.expect_method(channel, 20, 11).await;
    }

    /// basic.publish with an empty property set.
    pub async fn publish(&mut self, channel: u16, exchange: &str, key: &str, mandatory: bool, body: &[u8]) {
        let args = ArgWriter::default().u16(0).shortstr(exchange).shortstr(key).u8(mandatory as u8);
        self.send_method(channel, 60, 40, args.0).await;
        let header = ArgWriter::default().u16(60).u16(0).u64(body.len() as u64).u16(0);
        self.send_frame(2, channel, &header.0).await;
        if !body.is_empty() {
            self.send_frame(3, channel, body).await;
        }
    }

    /// Read frames until the server's connection.close; reply close-ok and
    /// return `(reply_code, reply_text, class_id, method_id)`.
    pub async fn expect_connection_close(&mut self) -> (u16, String, u16, u16) {
        loop {
            let f = self.read_frame().await.expect("socket closed before connection.close");
            if f.channel == 0 && f.method() == Some((10, 50)) {
                let mut a = f.args();
                let res = (a.u16(), a.shortstr(), a.u16(), a.u16());
                self.send_method(0, 10, 51, Vec::new()).await;
                return res;
            }
        }
    }

    /// Close the connection politely (bounded, errors ignored).
    pub async fn close(mut self) {
        let args = ArgWriter::default().u16(200).shortstr("bye").u16(0).u16(0);
        self.send_method(0, 10, 50, args.0).await;
        let _ = tokio::time::timeout(TIMEOUT, async {
            while let Some(f) = self.read_frame().await {
                if f.method() == Some((10, 51)) {
                    break;
                }
            }
        })
        .await;
    }
}

impl RawAmqp {
    /// Like [`RawAmqp::connect`], but as `user`/`password` on `vhost`.
    pub async fn connect_as(user: &str, password: &str, vhost: &str) -> RawAmqp {
        use tokio::io::AsyncWriteExt;
        let parts = url_parts(&amqp_url());
        let stream = within("raw TCP connect", tokio::net::TcpStream::connect(&parts.addr))
            .await
            .expect("raw TCP connect");
        let _ = stream.set_nodelay(true);
        let mut raw = RawAmqp { stream, buf: Vec::new() };
        raw.stream.write_all(b"AMQP\x00\x00\x09\x01").await.expect("protocol header");
        raw.expect_method(0, 10, 10).await; // connection.start
        let mut response = vec![0u8];
        response.extend_from_slice(user.as_bytes());
        response.push(0);
        response.extend_from_slice(password.as_bytes());
        let start_ok = ArgWriter::default().u32(0).shortstr("PLAIN").longstr(&response).shortstr("en_US");
        raw.send_method(0, 10, 11, start_ok.0).await;
        let tune = raw.expect_method(0, 10, 30).await;
        let mut args = tune.args();
        let (channel_max, frame_max) = (args.u16(), args.u32());
        raw.send_method(0, 10, 31, ArgWriter::default().u16(channel_max).u32(frame_max).u16(0).0).await;
        raw.send_method(0, 10, 40, ArgWriter::default().shortstr(vhost).shortstr("").u8(0).0).await;
        raw.expect_method(0, 10, 41).await; // connection.open-ok
        raw
    }

    /// Read frames until the server's connection.close and return
    /// `(reply_code, reply_text)`, without answering: unlike
    /// [`RawAmqp::expect_connection_close`] this copes with a server that
    /// resets the socket right after its connection.close.
    pub async fn expect_connection_close_no_reply(&mut self) -> (u16, String) {
        loop {
            let f = self.read_frame().await.expect("socket closed before connection.close");
            if f.channel == 0 && f.method() == Some((10, 50)) {
                let mut a = f.args();
                return (a.u16(), a.shortstr());
            }
        }
    }
}
