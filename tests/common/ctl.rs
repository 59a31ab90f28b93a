//! The harness the `warrenctl` test crates share: the binary run as a
//! process ([`Ctl`], [`Out`]), a fake admin API on a unix socket
//! ([`fake_broker`]), an in-process Warren ([`Warren`]) and the removal of
//! a suite's objects ([`Cleanup`]).
//!
//! Not part of `common/mod.rs` (which many test crates include): the
//! `warrenctl` crates take it with `#[path = "common/ctl.rs"] mod ctl;`.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::SocketAddr;
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::thread::{self, JoinHandle};

/// How the binary reaches the broker.
#[derive(Debug, Clone)]
pub enum Target {
    /// `--url`, with `--username` and `--password` when `credentials` are
    /// given (otherwise the URL's own, or the binary's defaults).
    Url {
        url: String,
        credentials: Option<(String, String)>,
    },
    Socket(PathBuf),
}

/// The `warrenctl` binary, pointed at one broker.
#[derive(Debug, Clone)]
pub struct Ctl {
    pub target: Target,
}

/// What a run printed and returned.
#[derive(Debug)]
pub struct Out {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Out {
    #[track_caller]
    pub fn ok(self) -> Out {
        assert_eq!(self.code, 0, "{self:?}");
        self
    }

    #[track_caller]
    pub fn fails(self, code: i32, stderr: &str) -> Out {
        assert_eq!(self.code, code, "{self:?}");
        assert!(self.stderr.contains(stderr), "expected {stderr:?} in {self:?}");
        self
    }

    #[track_caller]
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| panic!("{e}: {self:?}"))
    }

    /// The JSON array's items.
    #[track_caller]
    pub fn items(&self) -> Vec<serde_json::Value> {
        self.json().as_array().cloned().unwrap_or_else(|| panic!("not an array: {self:?}"))
    }
}

impl Ctl {
    /// An admin API URL with `--username` and `--password`.
    pub fn url(url: &str, username: &str, password: &str) -> Ctl {
        let credentials = Some((username.into(), password.into()));
        Ctl { target: Target::Url { url: url.into(), credentials } }
    }

    /// An admin API URL alone: the credentials are the URL's own (or the
    /// binary's defaults).
    pub fn bare_url(url: &str) -> Ctl {
        Ctl { target: Target::Url { url: url.into(), credentials: None } }
    }

    pub fn socket(path: &Path) -> Ctl {
        Ctl { target: Target::Socket(path.to_path_buf()) }
    }

    pub fn run(&self, args: &[&str]) -> Out {
        self.run_with_stdin(args, "")
    }

    pub fn run_with_stdin(&self, args: &[&str], stdin: &str) -> Out {
        let mut command = Command::new(env!("CARGO_BIN_EXE_warrenctl"));
        for var in ["WARREN_URL", "WARREN_CTL_SOCKET", "WARREN_USERNAME", "WARREN_PASSWORD"] {
            command.env_remove(var);
        }
        match &self.target {
            Target::Url { url, credentials } => {
                command.args(["--url", url]);
                if let Some((username, password)) = credentials {
                    command.args(["--username", username, "--password", password]);
                }
            }
            Target::Socket(path) => {
                command.arg("--socket").arg(path);
            }
        }
        let mut child = command
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run warrenctl");
        child.stdin.take().unwrap().write_all(stdin.as_bytes()).unwrap();
        let output = child.wait_with_output().unwrap();
        Out {
            code: output.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }
}

/// The binary pointed at a socket that does not exist.
pub fn nowhere() -> Ctl {
    Ctl::socket(Path::new("/nonexistent/warrenctl.sock"))
}

/// A directory of this test process's own (not created).
pub fn temp_dir(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("warrenctl-test-{}-{name}", std::process::id()))
}

/// A fake admin API on a unix socket: answers each connection with the next
/// canned (status, body) and returns the requests it got.
pub fn fake_broker<S: Into<String>>(
    dir: &Path,
    answers: Vec<(u16, S)>,
) -> (PathBuf, JoinHandle<Vec<String>>) {
    let answers: Vec<(u16, String)> =
        answers.into_iter().map(|(status, body)| (status, body.into())).collect();
    std::fs::create_dir_all(dir).unwrap();
    let path = dir.join("warrenctl.sock");
    let _ = std::fs::remove_file(&path);
    let listener = UnixListener::bind(&path).unwrap();
    let handle = thread::spawn(move || {
        let mut requests = Vec::new();
        for (status, body) in answers {
            let (stream, _) = listener.accept().unwrap();
            let mut reader = BufReader::new(stream);
            let mut request = String::new();
            let mut length = 0;
            loop {
                let mut line = String::new();
                reader.read_line(&mut line).unwrap();
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    length = v.trim().parse().unwrap();
                }
                request.push_str(&line);
                if line == "\r\n" || line.is_empty() {
                    break;
                }
            }
            let mut content = vec![0; length];
            reader.read_exact(&mut content).unwrap();
            request.push_str(&String::from_utf8(content).unwrap());
            requests.push(request);
            let reply = format!("HTTP/1.1 {status} X\r\ncontent-length: {}\r\n\r\n{body}", body.len());
            reader.into_inner().write_all(reply.as_bytes()).unwrap();
        }
        requests
    });
    (path, handle)
}

/// Runs `f` with the binary pointed at a [`fake_broker`] that answers
/// `answers`, in a directory of its own (`f`'s second argument), then
/// removes the directory; returns the requests the broker got.
pub fn with_fake_broker<S: Into<String>>(
    name: &str,
    answers: Vec<(u16, S)>,
    f: impl FnOnce(&Ctl, &Path),
) -> Vec<String> {
    let dir = temp_dir(name);
    let (path, server) = fake_broker(&dir, answers);
    f(&Ctl::socket(&path), &dir);
    let requests = server.join().unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
    requests
}

/// Deletes a suite's objects even when an assertion fails: runs
/// `warrenctl -q <verb> <name>` for each pair, in order.
pub struct Cleanup<'a> {
    ctl: &'a Ctl,
    deletes: Vec<(&'static str, String)>,
}

impl<'a> Cleanup<'a> {
    pub fn new(ctl: &'a Ctl, deletes: &[(&'static str, &str)]) -> Cleanup<'a> {
        Cleanup { ctl, deletes: deletes.iter().map(|&(verb, name)| (verb, name.to_string())).collect() }
    }
}

impl Drop for Cleanup<'_> {
    fn drop(&mut self) {
        for (verb, name) in &self.deletes {
            self.ctl.run(&["-q", verb, name]);
        }
    }
}

/// An in-process Warren with AMQP and its admin API on free ports and its
/// control socket in its own data directory, on a runtime of its own.
pub struct Warren {
    pub amqp: SocketAddr,
    pub admin: SocketAddr,
    pub socket: PathBuf,
    pub rt: tokio::runtime::Runtime,
    pub server: warren::server::Server,
}

impl Warren {
    pub fn start() -> Warren {
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        let dir =
            std::env::temp_dir().join(format!("warrenctl-it-{}-{}", std::process::id(), fastrand::u64(..)));
        let mut config = warren::config::Config::default();
        config.amqp.listen = "127.0.0.1:0".parse().unwrap();
        config.admin.listen = Some("127.0.0.1:0".parse().unwrap());
        config.storage.data_dir = dir.clone();
        let server = rt.block_on(warren::server::Server::start(config)).expect("warren starts");
        let (amqp, admin) = (server.local_addr, server.admin_addr.expect("admin API"));
        Warren { amqp, admin, socket: dir.join("warrenctl.sock"), rt, server }
    }

    /// Its AMQP URL, as guest on vhost `/`.
    pub fn amqp_url(&self) -> String {
        format!("amqp://guest:guest@{}/%2f", self.amqp)
    }

    pub fn stop(self) {
        self.rt.block_on(self.server.stop());
    }
}
