//! SIGKILL at chosen moments: during a store compaction, during the
//! deletion of a deep queue, during the deletion of a vhost. After each
//! restart: the deleted thing is gone or whole, everything else intact.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use futures_lite::StreamExt;
use lapin::options::{
    BasicConsumeOptions, BasicPublishOptions, ConfirmSelectOptions, ExchangeDeclareOptions, QueueBindOptions,
    QueueDeclareOptions, QueueDeleteOptions, QueuePurgeOptions,
};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Connection, ExchangeKind};

use crate::broker::Broker;

/// Confirmed messages in the queue every round keeps beside what it deletes.
const KEEP: u32 = 2000;

#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Compaction,
    QueueDelete,
    VhostDelete,
}

impl Kind {
    pub fn parse(s: &str) -> Option<Kind> {
        match s {
            "compaction" => Some(Kind::Compaction),
            "queue-delete" => Some(Kind::QueueDelete),
            "vhost-delete" => Some(Kind::VhostDelete),
            _ => None,
        }
    }
}

fn e(e: impl std::fmt::Display) -> String {
    e.to_string()
}

async fn declare(conn: &Connection, queue: &str) -> Result<(), String> {
    let ch = conn.create_channel().await.map_err(e)?;
    let opts = QueueDeclareOptions { durable: true, ..Default::default() };
    ch.queue_declare(queue.into(), opts, FieldTable::default()).await.map_err(e)?;
    Ok(())
}

/// The queue's message count, None if it does not exist.
async fn count(conn: &Connection, queue: &str) -> Result<Option<u32>, String> {
    let ch = conn.create_channel().await.map_err(e)?;
    let opts = QueueDeclareOptions { passive: true, ..Default::default() };
    Ok(ch.queue_declare(queue.into(), opts, FieldTable::default()).await.ok().map(|q| q.message_count()))
}

/// Publishes `n` persistent messages of `size` bytes with confirms; all must be acked.
async fn publish(conn: &Connection, exchange: &str, key: &str, n: u32, size: usize) -> Result<(), String> {
    let ch = conn.create_channel().await.map_err(e)?;
    ch.confirm_select(ConfirmSelectOptions::default()).await.map_err(e)?;
    let mut inflight = VecDeque::new();
    for i in 0..n {
        let mut body = format!("{key}:{i}:").into_bytes();
        body.resize(size, b'x');
        let props = BasicProperties::default().with_delivery_mode(2);
        let c = ch
            .basic_publish(exchange.into(), key.into(), BasicPublishOptions::default(), &body, props)
            .await
            .map_err(e)?;
        inflight.push_back(c);
        while inflight.len() >= 256 || (i + 1 == n && !inflight.is_empty()) {
            if !inflight.pop_front().unwrap().await.map_err(e)?.is_ack() {
                return Err(format!("a publish to {key} was nacked"));
            }
        }
    }
    Ok(())
}

/// Checks that `queue` holds exactly `key:0` … `key:n-1` (read, then put back).
async fn exactly(conn: &Connection, queue: &str, n: u32) -> Result<(), String> {
    let ch = conn.create_channel().await.map_err(e)?;
    let opts = BasicConsumeOptions::default();
    let mut consumer =
        ch.basic_consume(queue.into(), "".into(), opts, FieldTable::default()).await.map_err(e)?;
    let mut seen = vec![false; n as usize];
    let mut got = 0;
    while got < n {
        let d = match tokio::time::timeout(Duration::from_secs(10), consumer.next()).await {
            Ok(Some(Ok(d))) => d,
            _ => return Err(format!("{queue}: only {got} of {n} confirmed messages after the restart")),
        };
        let text = String::from_utf8_lossy(&d.data[..d.data.len().min(40)]).into_owned();
        let i: usize = text.split(':').nth(1).and_then(|s| s.parse().ok()).ok_or("a foreign message")?;
        if i >= seen.len() || std::mem::replace(&mut seen[i], true) {
            return Err(format!("{queue}: {text} duplicated or unknown"));
        }
        got += 1;
    }
    if let Ok(Some(Ok(d))) = tokio::time::timeout(Duration::from_millis(300), consumer.next()).await {
        return Err(format!(
            "{queue}: more than {n} messages ({:?}…)",
            String::from_utf8_lossy(&d.data[..20])
        ));
    }
    let _ = ch.close(200, "checked".into()).await;
    Ok(())
}

/// Whether the store's compaction thread is running now.
fn compacting(pid: u32) -> bool {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else { return false };
    tasks.flatten().any(|t| {
        std::fs::read_to_string(t.path().join("comm"))
            .is_ok_and(|c| c.trim_end().starts_with("warren-store-co"))
    })
}

/// One round; returns a line for the report, or what went wrong.
pub async fn round(broker: &mut Broker, kind: Kind, deep_mb: u32) -> Result<String, String> {
    broker.start().await?;
    let conn = broker.connect("/").await?;
    declare(&conn, "keep").await?;
    publish(&conn, "", "keep", KEEP, 1024).await?;
    let note;
    match kind {
        Kind::Compaction => {
            // Past the writer's threshold (100,000 deletions), whatever --deep-mb says.
            let n = (deep_mb * 1024).max(120_000);
            declare(&conn, "bulk").await?;
            publish(&conn, "", "bulk", n, 1024).await?;
            let ch = conn.create_channel().await.map_err(e)?;
            ch.queue_purge("bulk".into(), QueuePurgeOptions::default()).await.map_err(e)?;
            let pid = broker.pid().ok_or("no pid")?;
            let started = Instant::now();
            while !compacting(pid) && started.elapsed() < Duration::from_secs(60) {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            let waited = started.elapsed();
            if !compacting(pid) {
                broker.kill();
                return Err(format!("no compaction started within 60 s of purging {n} messages"));
            }
            // A compaction of a few hundred MB takes some tens of ms.
            tokio::time::sleep(Duration::from_millis(fastrand::u64(0..20))).await;
            let during = compacting(pid);
            broker.kill();
            let mut text = format!(
                "purged {n} x 1 KiB; compaction began {} ms after the purge; killed {}",
                waited.as_millis(),
                if during { "while compacting" } else { "after the compaction ended" }
            );
            let restart = broker.start().await?;
            let conn = broker.connect("/").await?;
            exactly(&conn, "keep", KEEP).await?;
            match count(&conn, "bulk").await? {
                Some(0) => {}
                other => return Err(format!("purged queue 'bulk' after the restart: {other:?} messages")),
            }
            text += &format!("; restart {} ms", restart.as_millis());
            note = text;
        }
        Kind::QueueDelete => {
            let n = deep_mb * 64;
            declare(&conn, "deep").await?;
            publish(&conn, "", "deep", n, 16 * 1024).await?;
            let delay = fastrand::u64(0..if fastrand::bool() { 20 } else { 400 });
            let ch = conn.create_channel().await.map_err(e)?;
            let delete = tokio::spawn(async move {
                let sent = Instant::now();
                let ok = ch.queue_delete("deep".into(), QueueDeleteOptions::default()).await.is_ok();
                (ok, sent.elapsed())
            });
            tokio::time::sleep(Duration::from_millis(delay)).await;
            let during = broker.pid().is_some_and(compacting);
            broker.kill();
            let (answered, took) = delete.await.map_err(e)?;
            let restart = broker.start().await?;
            let conn = broker.connect("/").await?;
            exactly(&conn, "keep", KEEP).await?;
            let left = count(&conn, "deep").await?;
            note = format!(
                "queue of {n} x 16 KiB ({deep_mb} MB); killed {delay} ms after queue.delete ({}{}); after restart ({} ms): {}",
                if answered { format!("delete-ok in {} ms", took.as_millis()) } else { "no delete-ok".into() },
                if during { ", while compacting" } else { "" },
                restart.as_millis(),
                match left {
                    None => "gone".to_owned(),
                    Some(c) => format!("still there with {c} messages"),
                }
            );
            match left {
                None => {}
                Some(c) if c == n && !answered => {}
                Some(_) => return Err(format!("deep queue neither gone nor whole: {note}")),
            }
        }
        Kind::VhostDelete => {
            let n = deep_mb * 64;
            for args in [
                vec!["add_vhost", "doomed"],
                vec!["set_permissions", "-p", "doomed", "guest", ".*", ".*", ".*"],
            ] {
                let out = broker.ctl(&args);
                if !out.status.success() {
                    return Err(format!("warrenctl {args:?}: {}", String::from_utf8_lossy(&out.stderr)));
                }
            }
            let doomed = broker.connect("doomed").await?;
            let ch = doomed.create_channel().await.map_err(e)?;
            let durable = ExchangeDeclareOptions { durable: true, ..Default::default() };
            ch.exchange_declare("dx".into(), ExchangeKind::Direct, durable, FieldTable::default())
                .await
                .map_err(e)?;
            for q in ["d0", "d1", "d2"] {
                declare(&doomed, q).await?;
                let opts = QueueBindOptions::default();
                ch.queue_bind(q.into(), "dx".into(), q.into(), opts, FieldTable::default())
                    .await
                    .map_err(e)?;
                publish(&doomed, "dx", q, n / 3, 16 * 1024).await?;
            }
            let delay = fastrand::u64(0..if fastrand::bool() { 100 } else { 1000 });
            let mut child = std::process::Command::new(broker.ctl_path())
                .arg("--socket")
                .arg(broker.dir.join("warrenctl.sock"))
                .args(["delete_vhost", "doomed"])
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .spawn()
                .map_err(e)?;
            let sent = Instant::now();
            tokio::time::sleep(Duration::from_millis(delay)).await;
            let answered = child.try_wait().ok().flatten().is_some_and(|s| s.success());
            let during = broker.pid().is_some_and(compacting);
            broker.kill();
            let _ = child.wait();
            let took = sent.elapsed();
            let restart = broker.start().await?;
            let conn = broker.connect("/").await?;
            exactly(&conn, "keep", KEEP).await?;
            let vhosts = broker.ctl(&["list_vhosts", "-q", "-s", "name"]);
            let listed = String::from_utf8_lossy(&vhosts.stdout).lines().any(|l| l.trim() == "doomed");
            let state = if listed {
                // Asked through warrenctl: guest may have lost its permission on it.
                let text = |args: &[&str]| {
                    let out = broker.ctl(args);
                    String::from_utf8_lossy(&out.stdout).lines().collect::<Vec<_>>().join(", ")
                };
                let queues = text(&["list_queues", "-p", "doomed", "-q", "-s", "name", "messages"]);
                let permissions = text(&["list_permissions", "-p", "doomed", "-q", "-s"]);
                let whole = ["d0", "d1", "d2"].iter().all(|q| queues.contains(&format!("{q}\t{}", n / 3)))
                    && permissions.contains("guest");
                if answered || !whole {
                    return Err(format!(
                        "vhost 'doomed' neither gone nor whole after a kill {delay} ms into its deletion (delete_vhost answered: {answered}, compacting: {during}): queues [{}], permissions [{permissions}]; expected d0, d1, d2 with {} messages each and guest's permission",
                        queues.replace('\t', " "),
                        n / 3
                    ));
                }
                "whole".to_owned()
            } else {
                "gone".to_owned()
            };
            note = format!(
                "vhost with 3 queues, {n} x 16 KiB ({deep_mb} MB); killed {delay} ms after delete_vhost ({}{}, {} ms); after restart ({} ms): {state}",
                if answered { "answered" } else { "not answered yet" },
                if during { ", while compacting" } else { "" },
                took.as_millis(),
                restart.as_millis()
            );
        }
    }
    // The broker still takes and confirms work after it all.
    let conn = broker.connect("/").await?;
    declare(&conn, "after").await?;
    publish(&conn, "", "after", 10, 100).await?;
    if !broker.stop() {
        return Err("warren did not stop cleanly after the round".into());
    }
    Ok(note)
}
