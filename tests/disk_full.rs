//! Disk trouble against a real `warren`: its data directory on a small
//! loop-mounted ext4 file system that fills up. With the disk alarm,
//! publishers are blocked before the disk is full and go on by themselves
//! once space comes back; with the alarm off (`disk_free_limit = 0`) the
//! disk really fills and RocksDB's writes fail: publishes are nacked or
//! their connection closed, never acked. Either way nothing confirmed is
//! lost and a restart is clean. A failed write stops the store (the disk
//! alarm stays up, nothing more is acked) until the restart.
//!
//! Loop mounting needs root: as anyone else, or where mounting fails, the
//! tests print why and pass without running.

use std::collections::{BTreeSet, VecDeque};
use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_lite::StreamExt;
use lapin::options::{BasicConsumeOptions, BasicPublishOptions, ConfirmSelectOptions, QueueDeclareOptions};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Connection, ConnectionProperties};

/// An ext4 image loop-mounted under a temporary directory; unmounted and
/// removed on drop, failed test or not.
struct LoopFs {
    base: PathBuf,
    mnt: PathBuf,
}

impl LoopFs {
    fn mount(test: &str, mb: u64) -> Option<LoopFs> {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            eprintln!("{test}: SKIPPED: loop-mounting a small file system needs root");
            return None;
        }
        let base = std::env::temp_dir().join(format!(
            "warren-diskfull-{}-{}",
            std::process::id(),
            fastrand::u64(..)
        ));
        let (image, mnt) = (base.join("fs.img"), base.join("mnt"));
        std::fs::create_dir_all(&mnt).unwrap();
        std::fs::File::create(&image).unwrap().set_len(mb << 20).unwrap();
        let fs = LoopFs { base, mnt };
        // -m 0: no blocks reserved for root, so what statvfs calls free is what root can use.
        let mkfs = Command::new("mkfs.ext4").args(["-q", "-F", "-m", "0"]).arg(&image).output();
        if !mkfs.as_ref().is_ok_and(|o| o.status.success()) {
            eprintln!("{test}: SKIPPED: mkfs.ext4 failed: {mkfs:?}");
            return None;
        }
        let mount = Command::new("mount").args(["-o", "loop"]).arg(&image).arg(&fs.mnt).output();
        if !mount.as_ref().is_ok_and(|o| o.status.success()) {
            eprintln!("{test}: SKIPPED: cannot loop-mount a file system here: {mount:?}");
            std::fs::remove_dir_all(&fs.base).ok();
            return None;
        }
        Some(fs)
    }

    fn free(&self) -> u64 {
        let path = std::ffi::CString::new(self.mnt.as_os_str().as_encoded_bytes()).unwrap();
        let mut s = std::mem::MaybeUninit::<libc::statvfs>::uninit();
        // SAFETY: a NUL-terminated path and a valid out-pointer.
        assert_eq!(unsafe { libc::statvfs(path.as_ptr(), s.as_mut_ptr()) }, 0);
        // SAFETY: statvfs returned 0, so it filled `s`.
        let s = unsafe { s.assume_init() };
        #[allow(clippy::unnecessary_cast)]
        let free = s.f_bavail as u64 * s.f_frsize as u64;
        free
    }

    /// Writes a filler file that leaves about `leave` bytes free.
    fn fill(&self, leave: u64) -> PathBuf {
        let path = self.mnt.join("filler");
        let mut f = std::fs::File::create(&path).unwrap();
        let chunk = vec![0xa5u8; 1 << 20];
        let mut left = self.free().saturating_sub(leave);
        while left > 0 {
            let n = left.min(chunk.len() as u64) as usize;
            if f.write_all(&chunk[..n]).is_err() {
                break;
            }
            left -= n as u64;
        }
        f.sync_all().ok();
        path
    }
}

impl Drop for LoopFs {
    fn drop(&mut self) {
        for _ in 0..20 {
            if Command::new("umount").arg(&self.mnt).status().is_ok_and(|s| s.success()) {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        if Command::new("mountpoint").arg("-q").arg(&self.mnt).status().is_ok_and(|s| s.success()) {
            let _ = Command::new("umount").arg("-l").arg(&self.mnt).status();
        }
        let _ = std::fs::remove_dir_all(&self.base);
    }
}

/// A `warren` with its data on the loop file system; its config and log beside the image.
struct Warren {
    child: Option<Child>,
    port: u16,
    admin: u16,
    data: PathBuf,
    config: PathBuf,
    log: PathBuf,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

impl Warren {
    fn new(fs: &LoopFs, disk_free_limit: u64) -> Warren {
        let config = fs.base.join("warren.toml");
        std::fs::write(&config, format!("[storage]\ndisk_free_limit = {disk_free_limit}\n")).unwrap();
        Warren {
            child: None,
            port: free_port(),
            admin: free_port(),
            data: fs.mnt.join("data"),
            config,
            log: fs.base.join("warren.log"),
        }
    }

    async fn start(&mut self) {
        let log = std::fs::OpenOptions::new().create(true).append(true).open(&self.log).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_warren"))
            .arg("--config")
            .arg(&self.config)
            .args(["--listen", &format!("127.0.0.1:{}", self.port)])
            .args(["--admin-listen", &format!("127.0.0.1:{}", self.admin)])
            .args(["--metrics-listen", "127.0.0.1:0", "--log-level", "warn", "--data-dir"])
            .arg(&self.data)
            .stdout(Stdio::null())
            .stderr(Stdio::from(log))
            .spawn()
            .expect("warren starts");
        self.child = Some(child);
        for _ in 0..400 {
            assert!(self.alive(), "warren exited at start:\n{}", self.log_text());
            if tokio::net::TcpStream::connect(("127.0.0.1", self.port)).await.is_ok() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("warren did not start listening");
    }

    fn alive(&mut self) -> bool {
        self.child.as_mut().is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    fn crash(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().unwrap();
            child.wait().unwrap();
        }
    }

    async fn connect(&self) -> Connection {
        let url = format!("amqp://guest:guest@127.0.0.1:{}/%2f", self.port);
        Connection::connect(&url, ConnectionProperties::default()).await.expect("connect")
    }

    /// Whether the admin API reports the disk alarm.
    fn disk_alarm(&self) -> bool {
        let mut s = std::net::TcpStream::connect(("127.0.0.1", self.admin)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        // guest:guest
        let req = "GET /api/health/checks/alarms HTTP/1.0\r\nAuthorization: Basic Z3Vlc3Q6Z3Vlc3Q=\r\n\r\n";
        s.write_all(req.as_bytes()).unwrap();
        let mut answer = String::new();
        s.read_to_string(&mut answer).unwrap();
        answer.contains("\"disk\"")
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Warren {
    fn drop(&mut self) {
        self.crash();
    }
}

/// What a publisher saw: sequence numbers confirmed, nacks, how it ended.
#[derive(Default)]
struct Progress {
    confirmed: Vec<u32>,
    nacked: Vec<u32>,
    error: Option<String>,
}

type Shared = Arc<Mutex<Progress>>;

fn body(seq: u32, size: usize) -> Vec<u8> {
    let mut b = vec![0u8; size];
    // Random, so no compression makes the disk last longer than planned.
    fastrand::fill(&mut b);
    b[..4].copy_from_slice(&seq.to_be_bytes());
    b
}

/// Publishes persistent `size`-byte messages with confirms (at most 8
/// waiting) until `stop`, an error, or `max_nacks` nacks; `pause` between publishes.
async fn publisher(
    conn: Connection,
    size: usize,
    pause: Duration,
    max_nacks: usize,
    stop: Arc<AtomicBool>,
    p: Shared,
) {
    let ch = conn.create_channel().await.unwrap();
    ch.confirm_select(ConfirmSelectOptions::default()).await.unwrap();
    let mut inflight = VecDeque::new();
    let mut seq = 0u32;
    let fail = |p: &Shared, e: lapin::Error| p.lock().unwrap().error = Some(e.to_string());
    loop {
        let stopping = stop.load(Ordering::Relaxed) || p.lock().unwrap().nacked.len() >= max_nacks;
        if !stopping {
            let props = BasicProperties::default().with_delivery_mode(2);
            let opts = BasicPublishOptions::default();
            match ch.basic_publish("".into(), "fill".into(), opts, &body(seq, size), props).await {
                Ok(c) => inflight.push_back((seq, c)),
                Err(e) => return fail(&p, e),
            }
            seq += 1;
        }
        while inflight.len() >= 8 || (stopping && !inflight.is_empty()) {
            let (seq, confirm) = inflight.pop_front().unwrap();
            match confirm.await {
                Ok(c) if c.is_ack() => p.lock().unwrap().confirmed.push(seq),
                Ok(_) => p.lock().unwrap().nacked.push(seq),
                Err(e) => return fail(&p, e),
            }
        }
        if stopping {
            return;
        }
        tokio::time::sleep(pause).await;
    }
}

async fn declare(conn: &Connection) -> u32 {
    let ch = conn.create_channel().await.unwrap();
    let opts = QueueDeclareOptions { durable: true, ..Default::default() };
    ch.queue_declare("fill".into(), opts, FieldTable::default()).await.unwrap().message_count()
}

/// The sequence numbers of every message in the queue (read, not acked).
async fn contents(conn: &Connection) -> BTreeSet<u32> {
    let n = declare(conn).await;
    let ch = conn.create_channel().await.unwrap();
    let opts = BasicConsumeOptions::default();
    let mut consumer = ch.basic_consume("fill".into(), "".into(), opts, FieldTable::default()).await.unwrap();
    let mut seen = BTreeSet::new();
    while seen.len() < n as usize {
        match tokio::time::timeout(Duration::from_secs(10), consumer.next()).await {
            Ok(Some(Ok(d))) => {
                seen.insert(u32::from_be_bytes(d.data[..4].try_into().unwrap()));
            }
            other => panic!("reading the queue back stopped after {} of {n}: {other:?}", seen.len()),
        }
    }
    seen
}

/// The store held writes back on a full disk: nothing more is acked while it
/// does. Once space comes back publishing resumes (acks again, or nacks if
/// RocksDB's own recovery failed and the store latched: never an ack of a
/// lost message) or, if RocksDB still holds its writes back a minute later
/// (seen in CI's debug build: its recovery never let the held write go), a
/// restart is the way out, as after a failed write. Either way what was acked is kept and, after a restart,
/// publishes are acked again.
async fn a_stalled_store_resumes_when_space_comes_back(
    test: &str,
    w: &mut Warren,
    filler: PathBuf,
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<()>,
    p: Shared,
) {
    let before = p.lock().unwrap().confirmed.len();
    eprintln!("{test}: the store stalled on the full disk after {before} acks; freeing space");
    assert!(w.alive(), "warren died on a full disk:\n{}", w.log_text());
    std::fs::remove_file(filler).unwrap();
    let resumed = Instant::now();
    let log = w.log_text();
    let outcome = loop {
        {
            let p = p.lock().unwrap();
            if p.confirmed.len() > before + 20 || !p.nacked.is_empty() || p.error.is_some() {
                break Some((p.nacked.len(), p.error.clone()));
            }
        }
        if resumed.elapsed() > Duration::from_secs(60) {
            break None;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(w.alive(), "warren died with space back:\n{}", w.log_text());
    stop.store(true, Ordering::Relaxed);
    match outcome {
        Some((nacked, error)) => {
            eprintln!(
                "{test}: {:?} after space came back: {} acked, {nacked} nacked, error {error:?}",
                resumed.elapsed(),
                p.lock().unwrap().confirmed.len() - before
            );
            let _ = tokio::time::timeout(Duration::from_secs(30), task).await;
        }
        None => {
            let acked = p.lock().unwrap().confirmed.len() - before;
            eprintln!(
                "{test}: {acked} acked, then held back a minute after space came back; a restart must be \
                 clean:\n{}",
                w.log_text()
            );
            // Its publisher waits for a confirm only the restart ends.
            task.abort();
            let _ = task.await;
        }
    }
    let confirmed = p.lock().unwrap().confirmed.clone();
    let kept = restart_and_check(w, &confirmed).await;
    let conn = w.connect().await;
    let ch = conn.create_channel().await.unwrap();
    ch.confirm_select(ConfirmSelectOptions::default()).await.unwrap();
    let props = BasicProperties::default().with_delivery_mode(2);
    let c = ch
        .basic_publish("".into(), "fill".into(), BasicPublishOptions::default(), &body(7, 1024), props)
        .await;
    assert!(c.unwrap().await.unwrap().is_ack(), "no ack after the restart");
    eprintln!(
        "{test}: after SIGKILL and restart: {kept} messages kept, every acked one among them, publishes acked \
         again; log before:\n{log}"
    );
}

async fn wait_for(what: &str, limit: Duration, mut f: impl FnMut() -> bool) {
    let started = Instant::now();
    while !f() {
        assert!(started.elapsed() < limit, "{what}: not within {limit:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Kills the broker, restarts it on the same data, and checks that every confirmed message is there.
async fn restart_and_check(w: &mut Warren, confirmed: &[u32]) -> usize {
    w.crash();
    w.start().await;
    let conn = w.connect().await;
    let kept = contents(&conn).await;
    let lost: Vec<_> = confirmed.iter().filter(|s| !kept.contains(s)).take(10).collect();
    assert!(lost.is_empty(), "confirmed messages lost: {lost:?} (of {})", confirmed.len());
    kept.len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_disk_alarm_blocks_publishers_until_space_comes_back() {
    const TEST: &str = "the_disk_alarm_blocks_publishers_until_space_comes_back";
    let Some(fs) = LoopFs::mount(TEST, 512) else { return };
    // RocksDB takes disk space in big steps: its write-ahead log is
    // preallocated 70 MB at a time (1.1 x the 64 MB write buffer), and a
    // memtable flush writes up to 64 MB at once. The limit leaves room for two such steps.
    let limit = 150 << 20;
    let mut w = Warren::new(&fs, limit);
    w.start().await;
    {
        // The first write preallocates the log: measure free space after it.
        let conn = w.connect().await;
        declare(&conn).await;
        let ch = conn.create_channel().await.unwrap();
        ch.confirm_select(ConfirmSelectOptions::default()).await.unwrap();
        let props = BasicProperties::default().with_delivery_mode(2);
        let c = ch.basic_publish("".into(), "warm".into(), BasicPublishOptions::default(), b"w", props).await;
        assert!(c.unwrap().await.unwrap().is_ack());
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    // 70 MB to go before the alarm; the publisher is paced (about 30 MB/s)
    // so that the monitor (5 readings a second) sees it coming.
    let filler = fs.fill(limit + (70 << 20));
    let (stop, p): (Arc<AtomicBool>, Shared) = Default::default();
    let task = tokio::spawn(publisher(
        w.connect().await,
        64 << 10,
        Duration::from_millis(2),
        1,
        stop.clone(),
        p.clone(),
    ));
    wait_for("the disk alarm", Duration::from_secs(60), || w.disk_alarm()).await;
    assert!(w.alive(), "warren died as the disk filled:\n{}", w.log_text());
    let before = p.lock().unwrap().confirmed.len();
    tokio::time::sleep(Duration::from_secs(1)).await;
    {
        let p = p.lock().unwrap();
        assert!(
            p.nacked.is_empty() && p.error.is_none(),
            "a publish failed instead of being blocked: {:?} {:?}",
            p.nacked,
            p.error
        );
        // Blocked: at most what was already read from the socket gets confirmed.
        assert!(
            p.confirmed.len() <= before + 16,
            "publishing went on during the alarm: {before} -> {}",
            p.confirmed.len()
        );
    }
    // Whatever was confirmed is in the queue (a connection that does not publish is not blocked).
    let depth = declare(&w.connect().await).await;
    assert!(depth as usize >= before, "{depth} messages in the queue, {before} confirmed");
    eprintln!("{TEST}: alarm raised after {before} confirmed 64 KiB messages; {} bytes free", fs.free());

    std::fs::remove_file(filler).unwrap();
    wait_for("the alarm to clear", Duration::from_secs(30), || !w.disk_alarm()).await;
    wait_for("publishing to resume", Duration::from_secs(30), || {
        p.lock().unwrap().confirmed.len() >= before + 20
    })
    .await;
    stop.store(true, Ordering::Relaxed);
    tokio::time::timeout(Duration::from_secs(30), task).await.expect("the publisher stops").unwrap();
    let confirmed = std::mem::take(&mut p.lock().unwrap().confirmed);
    let kept = restart_and_check(&mut w, &confirmed).await;
    eprintln!("{TEST}: {} confirmed in all, {kept} in the queue after SIGKILL and restart", confirmed.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_without_the_alarm_nacks_or_closes_and_never_acks_a_lost_message() {
    const TEST: &str = "a_full_disk_without_the_alarm_nacks_or_closes_and_never_acks_a_lost_message";
    // Room enough, once the filler goes, to replay the log at the restart.
    let Some(fs) = LoopFs::mount(TEST, 512) else { return };
    // No alarm: the store's writes themselves fail.
    let mut w = Warren::new(&fs, 0);
    w.start().await;
    declare(&w.connect().await).await;
    let filler = fs.fill(8 << 20);
    let (stop, p): (Arc<AtomicBool>, Shared) = Default::default();
    let task =
        tokio::spawn(publisher(w.connect().await, 64 << 10, Duration::ZERO, 3, stop.clone(), p.clone()));
    // 8 MB past the preallocated log (70 MB) hold about 1,250 such messages:
    // a failure must come well before 3,000. Which write meets the full disk
    // depends on timing: the log's append fails (the store latches failed),
    // or a memtable flush does, which RocksDB retries while it holds writes
    // back (the store stalls, acking nothing, until space comes back).
    let (mut seen, mut since, mut stalled) = (0, Instant::now(), false);
    wait_for("a failed publish or a stalled store", Duration::from_secs(90), || {
        let p = p.lock().unwrap();
        if p.confirmed.len() != seen {
            (seen, since) = (p.confirmed.len(), Instant::now());
        }
        stalled = since.elapsed() > Duration::from_secs(15);
        !p.nacked.is_empty() || p.error.is_some() || p.confirmed.len() > 3000 || stalled
    })
    .await;
    if stalled && p.lock().unwrap().nacked.is_empty() && p.lock().unwrap().error.is_none() {
        return a_stalled_store_resumes_when_space_comes_back(TEST, &mut w, filler, stop, task, p).await;
    }
    stop.store(true, Ordering::Relaxed);
    let _ = tokio::time::timeout(Duration::from_secs(10), task).await;
    let (confirmed, nacked, error) = {
        let p = p.lock().unwrap();
        (p.confirmed.clone(), p.nacked.len(), p.error.clone())
    };
    assert!(confirmed.len() <= 3000, "{} publishes acked on a full disk", confirmed.len());
    tokio::time::sleep(Duration::from_millis(500)).await;
    let died = !w.alive();
    eprintln!(
        "{TEST}: full disk: {} acked, {nacked} nacked, connection error: {error:?}; broker alive: {}",
        confirmed.len(),
        !died
    );
    std::fs::remove_file(filler).unwrap();
    if died {
        // Whatever killed it, a restart must be clean and keep what was acked.
        let kept = restart_and_check(&mut w, &confirmed).await;
        eprintln!("{TEST}: after the crash, a restart kept {kept} messages, every acked one among them");
        panic!("warren died on a failed write:\n{}", w.log_text());
    }

    // Space back: the store took no more writes after the failure (RocksDB's
    // log cannot be written again in this process), so publishes are
    // refused, never acked, and the disk alarm stays up until a restart.
    // RocksDB polls for free space every 5 s and then resumes by itself:
    // waiting past that exercises its recovery too.
    tokio::time::sleep(Duration::from_millis(6000)).await;
    wait_for("the disk alarm held up by the failed store", Duration::from_secs(10), || w.disk_alarm()).await;
    let conn = w.connect().await;
    let ch = conn.create_channel().await.unwrap();
    ch.confirm_select(ConfirmSelectOptions::default()).await.unwrap();
    let props = BasicProperties::default().with_delivery_mode(2);
    let mut after = Vec::new();
    for i in 0..3u32 {
        let seq = 1_000_000 + i;
        let data = body(seq, 1024);
        let c =
            ch.basic_publish("".into(), "fill".into(), BasicPublishOptions::default(), &data, props.clone());
        let outcome = match tokio::time::timeout(Duration::from_secs(10), async { c.await?.await }).await {
            Ok(Ok(c)) if c.is_ack() => "ack",
            Ok(Ok(_)) => "nack",
            Ok(Err(_)) => "error",
            Err(_) => "no answer",
        };
        after.push(outcome);
    }
    eprintln!("{TEST}: with space back, before any restart: {after:?}");
    assert!(w.alive(), "warren died after the disk came back:\n{}", w.log_text());
    assert!(!after.contains(&"ack"), "a publish acked by a store that failed: {after:?}");

    // A restart is clean and nothing acked was lost.
    let mut confirmed = confirmed;
    confirmed.extend((0..3).filter(|i| after[*i as usize] == "ack").map(|i| 1_000_000 + i));
    let kept = restart_and_check(&mut w, &confirmed).await;
    let conn = w.connect().await;
    let ch = conn.create_channel().await.unwrap();
    ch.confirm_select(ConfirmSelectOptions::default()).await.unwrap();
    let c = ch
        .basic_publish("".into(), "fill".into(), BasicPublishOptions::default(), &body(7, 1024), props)
        .await;
    assert!(c.unwrap().await.unwrap().is_ack(), "no ack after the restart");
    eprintln!("{TEST}: after SIGKILL and restart: {kept} messages kept, publishes acked again");
    let errors: Vec<String> =
        w.log_text().lines().filter(|l| l.contains("ERROR")).take(3).map(String::from).collect();
    eprintln!("{TEST}: first errors logged:\n{}", errors.join("\n"));
}
