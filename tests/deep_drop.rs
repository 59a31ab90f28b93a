//! Purging and deleting a deep, paged-out queue costs what its index
//! costs, not what its messages weigh: no paged-out message is read back
//! (the store counts every page it reads), messages shared with another
//! queue survive, and a restart — clean or after SIGKILL of a real
//! `warren` in the middle — shows the dropped queue gone or whole and the
//! other one intact. Run with a head of 64 messages so a few thousand
//! messages make a deep queue.

mod common;

use std::process::{Child, Command, Stdio};
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use lapin::options::{
    BasicAckOptions, BasicGetOptions, BasicPublishOptions, ConfirmSelectOptions, ExchangeDeclareOptions,
    QueueBindOptions, QueueDeclareOptions, QueueDeleteOptions, QueuePurgeOptions,
};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties, ExchangeKind};
use warren::config::Config;
use warren::server::Server;

const HEAD: usize = 64;

struct Dir(std::path::PathBuf);

impl Dir {
    fn new() -> Dir {
        Dir(std::env::temp_dir().join(format!(
            "warren-deep-drop-{}-{}",
            std::process::id(),
            fastrand::u64(..)
        )))
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

async fn start(dir: &std::path::Path) -> Server {
    let mut c = Config::default();
    c.metrics.listen = None;
    c.amqp.listen = "127.0.0.1:0".parse().unwrap();
    c.storage.data_dir = dir.to_path_buf();
    c.storage.queue_head_messages = HEAD;
    Server::start(c).await.unwrap()
}

async fn channel(url: &str) -> (Connection, Channel) {
    let conn = Connection::connect(url, ConnectionProperties::default()).await.unwrap();
    let ch = conn.create_channel().await.unwrap();
    ch.confirm_select(ConfirmSelectOptions::default()).await.unwrap();
    (conn, ch)
}

fn durable() -> QueueDeclareOptions {
    QueueDeclareOptions { durable: true, ..Default::default() }
}

/// Durable queues `deep` and `keep` behind direct exchange `x`: key `both`
/// reaches both (one stored message, shared), key `deep` only `deep`.
async fn topology(ch: &Channel, deep_args: FieldTable) {
    let ex = ExchangeDeclareOptions { durable: true, ..Default::default() };
    ch.exchange_declare("x".into(), ExchangeKind::Direct, ex, FieldTable::default()).await.unwrap();
    ch.queue_declare("deep".into(), durable(), deep_args).await.unwrap();
    ch.queue_declare("keep".into(), durable(), FieldTable::default()).await.unwrap();
    for (q, key) in [("deep", "deep"), ("deep", "both"), ("keep", "both")] {
        let opts = QueueBindOptions::default();
        ch.queue_bind(q.into(), "x".into(), key.into(), opts, FieldTable::default()).await.unwrap();
    }
}

/// Publishes `m0`..`m{n}` persistent (a kilobyte each), every `shared_every`th
/// one to both queues; returns the names `keep` got.
async fn publish(ch: &Channel, n: usize, shared_every: usize, priorities: u8) -> Vec<String> {
    let mut pending = Vec::new();
    let mut kept = Vec::new();
    for i in 0..n {
        let body = format!("m{i}:{}", "x".repeat(1024));
        let key = if i % shared_every == 0 { "both" } else { "deep" };
        if key == "both" {
            kept.push(format!("m{i}"));
        }
        let mut props = BasicProperties::default().with_delivery_mode(2);
        if priorities > 0 {
            props = props.with_priority(i as u8 % (priorities + 1));
        }
        let opts = BasicPublishOptions::default();
        pending.push(ch.basic_publish("x".into(), key.into(), opts, body.as_bytes(), props).await.unwrap());
    }
    for c in pending {
        assert!(c.await.unwrap().is_ack());
    }
    kept
}

async fn count(conn: &Connection, name: &str) -> Option<u32> {
    let ch = conn.create_channel().await.unwrap();
    let opts = QueueDeclareOptions { passive: true, ..Default::default() };
    ch.queue_declare(name.into(), opts, FieldTable::default()).await.ok().map(|q| q.message_count())
}

/// Every message of `queue` by `basic.get`, acked, as names (`m{i}`).
async fn drain(ch: &Channel, queue: &str) -> Vec<String> {
    let mut out = Vec::new();
    while let Some(m) = ch.basic_get(queue.into(), BasicGetOptions::default()).await.unwrap() {
        let body = String::from_utf8(m.delivery.data.clone()).unwrap();
        let (name, pad) = body.split_once(':').expect("a body as published");
        assert_eq!(pad.len(), 1024, "{name} came back whole");
        out.push(name.to_owned());
        ch.basic_ack(m.delivery.delivery_tag, BasicAckOptions::default()).await.unwrap();
    }
    out
}

fn pages_read(s: &Server) -> (u64, u64) {
    let v = s.broker.vhost("/").unwrap();
    let m = v.store().unwrap().metrics();
    (m.pages_read.load(Relaxed), m.page_bytes_read.load(Relaxed))
}

/// Waits until everything submitted to the store so far is written.
async fn settled(s: &Server) {
    let store = s.broker.vhost("/").unwrap().store().unwrap().clone();
    assert!(tokio::task::spawn_blocking(move || store.write_durably([])).await.unwrap());
    // A drop that looks at its index writes what it found a moment later.
    tokio::time::sleep(Duration::from_millis(300)).await;
}

/// Stored messages and index entries the stopped broker left.
fn on_disk(dir: &std::path::Path) -> (usize, usize) {
    common::stored(dir)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_a_deep_queue_reads_no_page_and_spares_shared_messages() {
    let dir = Dir::new();
    let s = start(&dir.0).await;
    let (conn, ch) = channel(&common::url(s.local_addr)).await;
    topology(&ch, FieldTable::default()).await;
    let kept = publish(&ch, 3000, 5, 0).await;
    assert_eq!(count(&conn, "deep").await, Some(3000));
    settled(&s).await;
    let before = pages_read(&s);
    ch.queue_delete("deep".into(), QueueDeleteOptions::default()).await.unwrap();
    settled(&s).await;
    assert_eq!(pages_read(&s), before, "deleting a queue read pages back");
    assert_eq!(count(&conn, "deep").await, None);
    assert_eq!(count(&conn, "keep").await, Some(kept.len() as u32));
    let _ = conn.close(200, "bye".into()).await;
    s.stop().await;
    // After a restart `deep` is gone, and `keep` whole, read from the shared messages.
    let s = start(&dir.0).await;
    let (conn, ch) = channel(&common::url(s.local_addr)).await;
    assert_eq!(count(&conn, "deep").await, None);
    assert_eq!(drain(&ch, "keep").await, kept);
    let _ = conn.close(200, "bye".into()).await;
    s.stop().await;
    assert_eq!(on_disk(&dir.0), (0, 0), "nothing left behind once both queues are empty");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn purging_a_deep_queue_reads_no_page_and_the_queue_goes_on() {
    let dir = Dir::new();
    let s = start(&dir.0).await;
    let (conn, ch) = channel(&common::url(s.local_addr)).await;
    topology(&ch, FieldTable::default()).await;
    let kept = publish(&ch, 3000, 4, 0).await;
    settled(&s).await;
    let before = pages_read(&s);
    let purged = ch.queue_purge("deep".into(), QueuePurgeOptions::default()).await.unwrap();
    assert_eq!(purged, 3000);
    settled(&s).await;
    assert_eq!(pages_read(&s), before, "purging a queue read pages back");
    // Shared messages are only let go by `deep`: `keep` still has them, and
    // `deep` fills again, pages out again and delivers in order.
    assert_eq!(count(&conn, "keep").await, Some(kept.len() as u32));
    let mut pending = Vec::new();
    for i in 0..500 {
        let body = format!("n{i}:{}", "y".repeat(1024));
        let (opts, props) =
            (BasicPublishOptions::default(), BasicProperties::default().with_delivery_mode(2));
        pending.push(ch.basic_publish("".into(), "deep".into(), opts, body.as_bytes(), props).await.unwrap());
    }
    for c in pending {
        assert!(c.await.unwrap().is_ack());
    }
    let _ = conn.close(200, "bye".into()).await;
    s.stop().await;
    let s = start(&dir.0).await;
    let (conn, ch) = channel(&common::url(s.local_addr)).await;
    let again: Vec<String> = (0..500).map(|i| format!("n{i}")).collect();
    assert_eq!(drain(&ch, "deep").await, again, "only what came after the purge");
    assert_eq!(drain(&ch, "keep").await, kept);
    let _ = conn.close(200, "bye".into()).await;
    s.stop().await;
    assert_eq!(on_disk(&dir.0), (0, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn purging_a_priority_queue_spares_its_unacknowledged_messages() {
    let dir = Dir::new();
    let s = start(&dir.0).await;
    let (conn, ch) = channel(&common::url(s.local_addr)).await;
    let mut args = FieldTable::default();
    args.insert("x-max-priority".into(), AMQPValue::ShortShortUInt(5));
    topology(&ch, args).await;
    let kept = publish(&ch, 1200, 7, 5).await;
    // Past the head's share of the top priority: these places lie among the
    // paged-out places of the lower lanes.
    let taking =
        Connection::connect(&common::url(s.local_addr), ConnectionProperties::default()).await.unwrap();
    let tch = taking.create_channel().await.unwrap();
    let mut unacked = Vec::new();
    for _ in 0..40 {
        let m = tch.basic_get("deep".into(), BasicGetOptions::default()).await.unwrap().expect("a message");
        unacked
            .push(String::from_utf8(m.delivery.data.clone()).unwrap().split_once(':').unwrap().0.to_owned());
    }
    settled(&s).await;
    let before = pages_read(&s);
    assert_eq!(ch.queue_purge("deep".into(), QueuePurgeOptions::default()).await.unwrap(), 1160);
    settled(&s).await;
    assert_eq!(pages_read(&s), before, "purging a priority queue read pages back");
    let _ = conn.close(200, "bye".into()).await;
    let _ = taking.close(200, "bye".into()).await;
    s.stop().await;
    // The unacknowledged messages survived the purge on disk and come back.
    let s = start(&dir.0).await;
    let (conn, ch) = channel(&common::url(s.local_addr)).await;
    let mut back = drain(&ch, "deep").await;
    back.sort();
    unacked.sort();
    assert_eq!(back, unacked);
    assert_eq!(drain(&ch, "keep").await, kept);
    let _ = conn.close(200, "bye".into()).await;
    s.stop().await;
    assert_eq!(on_disk(&dir.0), (0, 0));
}

/// A `warren` process on its own port and data directory.
struct Warren {
    child: Option<Child>,
    port: u16,
    dir: Dir,
}

impl Warren {
    async fn start(dir: Dir) -> Warren {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let child = Command::new(env!("CARGO_BIN_EXE_warren"))
            .args(["--metrics-listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0"])
            .args(["--listen", &format!("127.0.0.1:{port}"), "--log-level", "error", "--data-dir"])
            .arg(&dir.0)
            .env("WARREN_QUEUE_HEAD_MESSAGES", HEAD.to_string())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("warren starts");
        let w = Warren { child: Some(child), port, dir };
        for _ in 0..400 {
            if tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_ok() {
                return w;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("warren did not start listening");
    }

    fn url(&self) -> String {
        format!("amqp://guest:guest@127.0.0.1:{}/%2f", self.port)
    }

    /// SIGKILL; the data directory stays for the next start.
    fn kill(mut self) -> Dir {
        let mut child = self.child.take().unwrap();
        child.kill().unwrap();
        child.wait().unwrap();
        std::mem::replace(&mut self.dir, Dir(std::path::PathBuf::new()))
    }

    /// A clean stop (SIGINT): everything submitted is written.
    fn stop(mut self) -> Dir {
        let mut child = self.child.take().unwrap();
        Command::new("kill").args(["-INT", &child.id().to_string()]).status().unwrap();
        assert!(child.wait().unwrap().success());
        std::mem::replace(&mut self.dir, Dir(std::path::PathBuf::new()))
    }
}

impl Drop for Warren {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kill_during_a_deep_delete_or_purge_leaves_the_queue_gone_or_whole() {
    for (round, purge) in [(0, false), (1, true), (2, false)] {
        let w = Warren::start(Dir::new()).await;
        let (conn, ch) = channel(&w.url()).await;
        topology(&ch, FieldTable::default()).await;
        let kept = publish(&ch, 2500, 3, 0).await;
        // The drop's reply, then SIGKILL at once (round 2: while the look
        // at the shared places may still run).
        if purge {
            ch.queue_purge("deep".into(), QueuePurgeOptions::default()).await.unwrap();
        } else {
            let opts = QueueDeleteOptions { nowait: round == 2, ..Default::default() };
            ch.queue_delete("deep".into(), opts).await.unwrap();
        }
        let dir = w.kill();
        drop(conn);
        let w = Warren::start(dir).await;
        let (conn, ch) = channel(&w.url()).await;
        let deep = count(&conn, "deep").await;
        if purge {
            assert!(matches!(deep, Some(0) | Some(2500)), "round {round}: deep has {deep:?}");
        } else {
            assert!(matches!(deep, None | Some(2500)), "round {round}: deep has {deep:?}");
        }
        assert_eq!(drain(&ch, "keep").await, kept, "round {round}");
        if deep == Some(2500) {
            assert_eq!(drain(&ch, "deep").await.len(), 2500, "round {round}");
        }
        let _ = conn.close(200, "bye".into()).await;
        // Recovery finished what the kill cut short: nothing of either queue stays.
        let dir = w.stop();
        assert_eq!(on_disk(&dir.0), (0, 0), "round {round}");
    }
}
