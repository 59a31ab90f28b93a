//! The floor any broker sits on, measured in the same run: a trivial
//! user-space relay in a process of its own. Each sender connection
//! (producer, requester) is joined to the next receiver (consumer,
//! responder), and the bytes of each are copied to the other once through
//! user space with one blocking thread per direction: no parsing, no
//! queueing, no routing. A broker's figure over the relay's is the share
//! of the machine's floor it reaches; the clients are the same code, and
//! the sender's frames are already what a broker would deliver.
//!
//! Also here: a process's CPU time from /proc, for the CPU a broker (or
//! the relay) spends per delivered message, which unlike throughput does
//! not depend on how fast the client is; and a background load, because
//! latency on a virtual machine has two regimes: a round trip between
//! busy cores takes microseconds, waking an idle vCPU ~50 µs more.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};

use super::client::{Result, Role, Uri};

/// Bytes copied per read: enough for a 64 KiB frame and more in one go.
const BUF: usize = 256 * 1024;

type Waiting = Mutex<(Vec<TcpStream>, Vec<TcpStream>)>;

/// The floor of a durable write on the disk under `dir`: for `run`,
/// appends of a 64-byte record to a fresh file, each followed by
/// fdatasync (what a write-ahead log does per group commit); p50 and p99
/// in µs.
pub fn fdatasync_latency(dir: &std::path::Path, run: std::time::Duration) -> std::io::Result<(u64, u64)> {
    let path = dir.join(format!("warren-perf-fsync-{}", std::process::id()));
    let mut f = std::fs::OpenOptions::new().create_new(true).append(true).open(&path)?;
    let mut hist = hdrhistogram::Histogram::<u64>::new_with_bounds(1, 100_000_000, 3).expect("valid bounds");
    let started = std::time::Instant::now();
    let result = (|| {
        while started.elapsed() < run {
            let t = std::time::Instant::now();
            f.write_all(&[0x5a; 64])?;
            f.sync_data()?;
            let _ = hist.record((t.elapsed().as_micros() as u64).max(1));
        }
        Ok((hist.value_at_quantile(0.5), hist.value_at_quantile(0.99)))
    })();
    std::fs::remove_file(&path).ok();
    result
}

/// Serves the relay on an ephemeral port of 127.0.0.1, printed on stdout,
/// until killed (`warren-perf --serve-relay`).
pub fn serve() -> std::io::Result<()> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    println!("{}", listener.local_addr()?.port());
    std::io::stdout().flush()?;
    let waiting: Arc<Waiting> = Arc::default();
    for conn in listener.incoming() {
        let Ok(conn) = conn else { continue };
        let waiting = waiting.clone();
        std::thread::spawn(move || join(conn, &waiting));
    }
    Ok(())
}

/// Reads the connection's role; pairs it with the oldest waiting
/// connection of the other role, or leaves it waiting. A control
/// connection (topology, which the relay has none of) is closed.
fn join(mut conn: TcpStream, waiting: &Waiting) {
    let _ = conn.set_nodelay(true);
    let mut role = [0u8];
    if conn.read_exact(&mut role).is_err() {
        return;
    }
    let other = {
        let mut w = waiting.lock().unwrap_or_else(|e| e.into_inner());
        let (senders, receivers) = &mut *w;
        let (mine, theirs) = match role[0] {
            r if r == Role::Sender as u8 => (senders, receivers),
            r if r == Role::Receiver as u8 => (receivers, senders),
            _ => return,
        };
        if theirs.is_empty() {
            mine.push(conn);
            return;
        }
        theirs.remove(0)
    };
    let (Ok(a), Ok(b)) = (conn.try_clone(), other.try_clone()) else { return };
    std::thread::spawn(move || copy(a, b));
    copy(other, conn);
}

/// Copies `from` to `to` until either ends, then closes both so the other
/// direction ends too.
fn copy(mut from: TcpStream, mut to: TcpStream) {
    let mut buf = vec![0u8; BUF];
    while let Ok(n @ 1..) = from.read(&mut buf) {
        if to.write_all(&buf[..n]).is_err() {
            break;
        }
    }
    let _ = from.shutdown(Shutdown::Both);
    let _ = to.shutdown(Shutdown::Both);
}

/// The relay, running in a child process (this executable with
/// `--serve-relay`) for as long as this lives.
pub struct Relay {
    child: Child,
    port: u16,
}

impl Relay {
    pub fn start() -> Result<Relay> {
        let mut child = Command::new(std::env::current_exe()?)
            .arg("--serve-relay")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()?;
        let mut line = String::new();
        let stdout = child.stdout.take().ok_or("the relay has no stdout")?;
        BufReader::new(stdout).read_line(&mut line)?;
        let Ok(port) = line.trim().parse() else {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!("the relay did not start (it said {line:?})").into());
        };
        Ok(Relay { child, port })
    }

    pub fn uri(&self) -> Uri {
        Uri {
            host: "127.0.0.1".into(),
            port: self.port,
            user: String::new(),
            password: String::new(),
            vhost: "/".into(),
            relay: true,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A thread that spins at nice 19 until the process ends: a steady load
/// that keeps a core awake without taking time from anything else.
pub fn spin_in_background() {
    std::thread::spawn(|| {
        // SAFETY: setpriority on this thread's own id (0: the caller).
        unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, 19) };
        loop {
            std::hint::spin_loop();
        }
    });
}

/// User plus system CPU seconds process `pid` has used, all its threads
/// (and children it waited for) together; None if /proc does not tell.
pub fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name, which may hold spaces and ends at the last ')'.
    let fields: Vec<&str> = stat.get(stat.rfind(')')? + 2..)?.split_whitespace().collect();
    // utime, stime, cutime, cstime are fields 14-17 of proc(5); here 11-14.
    let ticks: u64 = fields.get(11..15)?.iter().map(|f| f.parse::<u64>().ok()).sum::<Option<u64>>()?;
    // SAFETY: sysconf only reads a configuration value.
    let per_sec = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    (per_sec > 0).then(|| ticks as f64 / per_sec as f64)
}

/// CPU a process spends over a measured period.
pub struct CpuClock {
    pid: Option<u32>,
    start: Option<f64>,
}

impl CpuClock {
    pub fn start(pid: Option<u32>) -> CpuClock {
        CpuClock { pid, start: pid.and_then(cpu_seconds) }
    }

    /// CPU seconds since `start`, if the process could be read both times.
    pub fn elapsed(&self) -> Option<f64> {
        Some(cpu_seconds(self.pid?)? - self.start?)
    }
}
