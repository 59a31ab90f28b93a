//! A `warren` process of its own, for tests of restarts and SIGKILL.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use lapin::{Connection, ConnectionProperties};

/// A `warren` process on its own port and data directory.
pub struct Warren {
    child: Option<Child>,
    pub port: u16,
    pub dir: PathBuf,
}

impl Warren {
    pub fn new() -> Warren {
        let dir = std::env::temp_dir().join(format!(
            "warren-durability-{}-{}",
            std::process::id(),
            fastrand::u64(..)
        ));
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        Warren { child: None, port, dir }
    }

    pub async fn start(&mut self) {
        let child = Command::new(env!("CARGO_BIN_EXE_warren"))
            .args(["--metrics-listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0"])
            .args(["--listen", &format!("127.0.0.1:{}", self.port), "--log-level", "warn", "--data-dir"])
            .arg(&self.dir)
            // A small in-memory head, so most messages are paged out to disk.
            .env("WARREN_QUEUE_HEAD_MESSAGES", "64")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("warren starts");
        self.child = Some(child);
        for _ in 0..200 {
            if tokio::net::TcpStream::connect(("127.0.0.1", self.port)).await.is_ok() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("warren did not start listening");
    }

    /// Runs `warren` on this port and data directory with `extra`
    /// arguments, expecting it to fail to start: how it exited, and what it
    /// logged.
    #[allow(dead_code)]
    pub fn start_failing(&self, extra: &[&str]) -> (std::process::ExitStatus, String) {
        let mut child = Command::new(env!("CARGO_BIN_EXE_warren"))
            .args(["--metrics-listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0"])
            .args(["--listen", &format!("127.0.0.1:{}", self.port), "--log-level", "warn", "--data-dir"])
            .arg(&self.dir)
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("warren runs");
        for _ in 0..400 {
            if child.try_wait().unwrap().is_some() {
                let out = child.wait_with_output().unwrap();
                let mut log = String::from_utf8_lossy(&out.stdout).into_owned();
                log.push_str(&String::from_utf8_lossy(&out.stderr));
                return (out.status, log);
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        let _ = child.kill();
        panic!("warren started, though it was expected to fail");
    }

    /// A clean stop (SIGINT), as an operator would.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            Command::new("kill").args(["-INT", &child.id().to_string()]).status().unwrap();
            let status = child.wait().unwrap();
            assert!(status.success(), "warren exited with {status}");
        }
    }

    /// SIGKILL: no chance to flush anything.
    pub fn crash(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().unwrap();
            child.wait().unwrap();
        }
    }

    pub async fn connect(&self) -> Connection {
        let url = format!("amqp://guest:guest@127.0.0.1:{}/%2f", self.port);
        Connection::connect(&url, ConnectionProperties::default()).await.expect("connect")
    }
}

impl Drop for Warren {
    fn drop(&mut self) {
        self.crash();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
