//! Streams across SIGKILL: every confirmed append is there after a
//! restart, offsets are contiguous and go on without a gap, and offsets
//! kept for named consumers survive.

use std::collections::HashSet;
use std::time::Duration;

use futures_lite::StreamExt;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicPublishOptions, BasicQosOptions, ConfirmSelectOptions,
    QueueDeclareOptions,
};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, Channel, Connection};

mod common;
use common::process::Warren;

fn stream_args() -> FieldTable {
    let mut t = FieldTable::default();
    t.insert("x-queue-type".into(), AMQPValue::LongString("stream".into()));
    // Small segments: the crash lands among many of them.
    t.insert("x-stream-max-segment-size-bytes".into(), AMQPValue::LongInt(64 * 1024));
    t
}

async fn declare(ch: &Channel) {
    let durable = QueueDeclareOptions { durable: true, ..Default::default() };
    ch.queue_declare("log".into(), durable, stream_args()).await.unwrap();
}

/// Publishes in windows of 50 with confirms until the connection dies;
/// returns the bodies confirmed.
async fn publish_until_killed(conn: Connection, who: usize) -> Vec<String> {
    let ch = conn.create_channel().await.unwrap();
    ch.confirm_select(ConfirmSelectOptions::default()).await.unwrap();
    let mut confirmed = Vec::new();
    for round in 0.. {
        let mut waits = Vec::new();
        for i in 0..50 {
            let body = format!("{who}-{}", round * 50 + i);
            let sent = ch
                .basic_publish(
                    "".into(),
                    "log".into(),
                    BasicPublishOptions::default(),
                    body.as_bytes(),
                    BasicProperties::default(),
                )
                .await;
            match sent {
                Ok(c) => waits.push((body, c)),
                Err(_) => return confirmed,
            }
        }
        for (body, c) in waits {
            match c.await {
                Ok(c) if c.is_ack() => confirmed.push(body),
                _ => return confirmed,
            }
        }
    }
    confirmed
}

/// Every record from `first`, with its offset header, acked as it comes.
async fn read_all(ch: &Channel, tag: &str, args: FieldTable) -> Vec<(i64, String)> {
    let mut c =
        ch.basic_consume("log".into(), tag.into(), BasicConsumeOptions::default(), args).await.unwrap();
    let mut out = Vec::new();
    while let Ok(Some(Ok(d))) = tokio::time::timeout(Duration::from_millis(1500), c.next()).await {
        let offset =
            match d.properties.headers().as_ref().and_then(|h| h.inner().get("x-stream-offset").cloned()) {
                Some(AMQPValue::LongLongInt(o)) => o,
                other => panic!("x-stream-offset is {other:?}"),
            };
        out.push((offset, String::from_utf8(d.data.clone()).unwrap()));
        d.acker.ack(BasicAckOptions::default()).await.unwrap();
    }
    out
}

fn from(offset: &str) -> FieldTable {
    let mut t = FieldTable::default();
    t.insert("x-stream-offset".into(), AMQPValue::LongString(offset.into()));
    t
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn confirmed_appends_survive_sigkill_with_contiguous_offsets() {
    let mut w = Warren::new();
    w.start().await;
    {
        let conn = w.connect().await;
        let ch = conn.create_channel().await.unwrap();
        declare(&ch).await;
        // A named consumer reads 100 and stops: its offset is kept on the server.
        let pub_ch = conn.create_channel().await.unwrap();
        pub_ch.confirm_select(ConfirmSelectOptions::default()).await.unwrap();
        for i in 0..100 {
            let body = format!("pre-{i}");
            let c = pub_ch
                .basic_publish(
                    "".into(),
                    "log".into(),
                    BasicPublishOptions::default(),
                    body.as_bytes(),
                    BasicProperties::default(),
                )
                .await
                .unwrap()
                .await
                .unwrap();
            assert!(c.is_ack());
        }
        ch.basic_qos(1000, BasicQosOptions::default()).await.unwrap();
        let mut tracked = from("first");
        tracked.insert("x-stream-automatic-offset-tracking".into(), AMQPValue::Boolean(true));
        let got = read_all(&ch, "tracked", tracked).await;
        assert_eq!(got.len(), 100);
        ch.basic_cancel("tracked".into(), Default::default()).await.unwrap();
        // Kept offsets are written at most a second after the ack.
        tokio::time::sleep(Duration::from_millis(2500)).await;
    }
    let publishers: Vec<_> = {
        let mut v = Vec::new();
        for who in 0..2 {
            let conn = w.connect().await;
            v.push(tokio::spawn(publish_until_killed(conn, who)));
        }
        v
    };
    tokio::time::sleep(Duration::from_millis(1500)).await;
    w.crash();
    let mut confirmed = Vec::new();
    for p in publishers {
        confirmed.extend(p.await.unwrap());
    }
    assert!(confirmed.len() > 1000, "only {} confirmed before the kill", confirmed.len());
    w.start().await;
    let conn = w.connect().await;
    let ch = conn.create_channel().await.unwrap();
    declare(&ch).await;
    ch.basic_qos(5000, BasicQosOptions::default()).await.unwrap();
    let all = read_all(&ch, "", from("first")).await;
    for (i, (offset, _)) in all.iter().enumerate() {
        assert_eq!(*offset, i as i64, "offsets are contiguous from 0");
    }
    let kept: HashSet<&str> = all.iter().map(|(_, b)| b.as_str()).collect();
    let lost: Vec<_> = confirmed.iter().filter(|b| !kept.contains(b.as_str())).collect();
    assert!(lost.is_empty(), "{} confirmed appends lost, e.g. {:?}", lost.len(), &lost[..lost.len().min(5)]);
    // The named consumer resumes after the 100 it acked.
    let resumed = read_all(&ch, "tracked", FieldTable::default()).await;
    assert_eq!(resumed.first().map(|(o, _)| *o), Some(100));
    // Appends go on from the next offset.
    ch.confirm_select(ConfirmSelectOptions::default()).await.unwrap();
    let c = ch
        .basic_publish(
            "".into(),
            "log".into(),
            BasicPublishOptions::default(),
            b"after",
            BasicProperties::default(),
        )
        .await
        .unwrap()
        .await
        .unwrap();
    assert!(c.is_ack());
    let ch2 = conn.create_channel().await.unwrap();
    ch2.basic_qos(10, BasicQosOptions::default()).await.unwrap();
    let last = read_all(&ch2, "", from("last")).await;
    assert_eq!(last.last(), Some(&(all.len() as i64, "after".to_owned())));
    w.stop();
}
