//! A real `warren` process for the crash driver: its own ports, data
//! directory and log file; started, killed with SIGKILL, started again on
//! the same data.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use lapin::{Connection, ConnectionProperties};

pub struct Broker {
    bin: PathBuf,
    pub dir: PathBuf,
    pub log: PathBuf,
    config: PathBuf,
    pub port: u16,
    admin_port: u16,
    child: Option<Child>,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

impl Broker {
    /// A broker keeping its data in `dir`; its log and config go beside it.
    /// `config` is extra TOML (the queues' in-memory head, say).
    pub fn new(bin: &Path, dir: &Path, config: &str) -> Broker {
        let config_path = dir.with_extension("toml");
        std::fs::write(&config_path, config).expect("the broker's config file is written");
        Broker {
            bin: bin.to_owned(),
            dir: dir.to_owned(),
            log: dir.with_extension("log"),
            config: config_path,
            port: free_port(),
            admin_port: free_port(),
            child: None,
        }
    }

    /// Starts it and waits until it accepts AMQP connections; returns how
    /// long that took (recovery of the data directory included).
    pub async fn start(&mut self) -> Result<Duration, String> {
        let mut log =
            OpenOptions::new().create(true).append(true).open(&self.log).map_err(|e| e.to_string())?;
        let _ = writeln!(log, "---- start");
        let started = Instant::now();
        let child = Command::new(&self.bin)
            .arg("--config")
            .arg(&self.config)
            .args(["--listen", &format!("127.0.0.1:{}", self.port)])
            .args(["--admin-listen", &format!("127.0.0.1:{}", self.admin_port)])
            .args(["--metrics-listen", "127.0.0.1:0", "--log-level", "info", "--data-dir"])
            .arg(&self.dir)
            .stdout(Stdio::null())
            .stderr(Stdio::from(log))
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", self.bin.display()))?;
        self.child = Some(child);
        while started.elapsed() < Duration::from_secs(300) {
            if let Some(status) = self.child.as_mut().and_then(|c| c.try_wait().ok().flatten()) {
                self.child = None;
                return Err(format!("warren exited at start with {status}; log {}", self.log.display()));
            }
            if tokio::net::TcpStream::connect(("127.0.0.1", self.port)).await.is_ok() {
                return Ok(started.elapsed());
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        Err("warren did not listen within 300 s".into())
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Whether the process is still running (it did not die by itself).
    pub fn alive(&mut self) -> bool {
        self.child.as_mut().is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// SIGKILL: nothing gets flushed.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// A clean stop (SIGINT); false if it did not exit cleanly.
    pub fn stop(&mut self) -> bool {
        let Some(mut child) = self.child.take() else { return true };
        let _ = Command::new("kill").args(["-INT", &child.id().to_string()]).status();
        child.wait().is_ok_and(|s| s.success())
    }

    pub fn url(&self, vhost: &str) -> String {
        let vhost = if vhost == "/" { "%2f".to_owned() } else { vhost.to_owned() };
        format!("amqp://guest:guest@127.0.0.1:{}/{vhost}", self.port)
    }

    pub async fn connect(&self, vhost: &str) -> Result<Connection, String> {
        Connection::connect(&self.url(vhost), ConnectionProperties::default())
            .await
            .map_err(|e| e.to_string())
    }

    /// `warrenctl`, beside the `warren` binary.
    pub fn ctl_path(&self) -> PathBuf {
        self.bin.with_file_name("warrenctl")
    }

    /// `warrenctl` over the broker's socket.
    pub fn ctl(&self, args: &[&str]) -> Output {
        Command::new(self.ctl_path())
            .arg("--socket")
            .arg(self.dir.join("warrenctl.sock"))
            .args(args)
            .output()
            .expect("warrenctl runs")
    }

    /// The recovery time the last start logged ("recovered durable state … elapsed_ms=N").
    pub fn recovery_ms(&self) -> Option<u64> {
        let text = std::fs::read_to_string(&self.log).ok()?;
        let line = text.lines().rev().find(|l| l.contains("recovered durable state"))?;
        let line = strip_ansi(line);
        let rest = &line[line.rfind("elapsed_ms=")? + "elapsed_ms=".len()..];
        rest.split(|c: char| !c.is_ascii_digit()).next()?.parse().ok()
    }

    /// The last lines of the log, for a report.
    pub fn log_tail(&self, lines: usize) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].iter().map(|l| strip_ansi(l)).collect::<Vec<_>>().join("\n")
    }

    /// Keeps a copy of the data directory (and log) as it is now, for a bug report.
    pub fn preserve(&self, tag: &str) -> PathBuf {
        let to = PathBuf::from(format!("{}-{tag}", self.dir.display()));
        let _ = Command::new("cp").arg("-a").arg(&self.dir).arg(&to).status();
        let _ = std::fs::copy(&self.log, to.with_extension("log"));
        to
    }

    /// Removes the data directory, config and log.
    pub fn remove_files(&self) {
        let _ = std::fs::remove_dir_all(&self.dir);
        let _ = std::fs::remove_file(&self.config);
        let _ = std::fs::remove_file(&self.log);
    }

    /// Starts a log file afresh (its last start stays readable until then).
    pub fn truncate_log(&self) {
        let _ = File::create(&self.log);
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        self.kill();
    }
}

fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}
