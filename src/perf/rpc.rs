//! Request/reply round trips, one outstanding, through a reply queue or
//! direct reply-to (`amq.rabbitmq.reply-to`).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use amq_protocol::protocol::basic::AMQPProperties;
use tokio::io::AsyncWriteExt;

use super::client::{Client, Result, Role, Uri};
use super::stats::{LocalLatency, Stats};
use crate::protocol::frame::Frame;
use crate::protocol::properties::{encode_header, ContentHeader};
use crate::protocol::{encode, method};

const REQUESTS: &str = "perf-rpc-requests";

/// Answers every request with an empty reply to its `reply_to`.
pub async fn responder(uri: Uri, stop: Arc<AtomicBool>) -> Result<()> {
    let mut c = Client::connect_as(&uri, Role::Receiver).await?;
    c.declare_queue(REQUESTS, false, false).await?;
    c.consume(REQUESTS, true).await?;
    let Client { mut rd, mut wr, frame_max, relay } = c;
    let mut out = Vec::with_capacity(512);
    while !stop.load(Ordering::Relaxed) {
        let Ok(frame) = tokio::time::timeout(Duration::from_millis(200), rd.next()).await else { continue };
        let frame = match frame {
            // The floor relay closes a pair as soon as either end leaves.
            Err(_) if stop.load(Ordering::Relaxed) => break,
            f => f?,
        };
        let Frame::Header { payload, .. } = frame else { continue };
        let info = ContentHeader::scan(&payload).map_err(|e| e.to_string())?;
        let Some(reply_to) = info.reply_to.map(|r| payload[r.range()].to_vec()) else { continue };
        out.clear();
        if relay {
            // The floor's echo: what a broker would deliver to the requester.
            encode::deliver(&mut out, 1, b"floor", 1, false, b"", &reply_to);
        } else {
            encode::basic_publish(&mut out, 1, b"", &reply_to);
        }
        let header = encode_header(0, &AMQPProperties::default());
        encode::content(&mut out, 1, &header, b"", frame_max);
        if let Err(e) = wr.write_all(&out).await {
            if stop.load(Ordering::Relaxed) {
                break;
            }
            return Err(e.into());
        }
    }
    Ok(())
}

/// Sends a request, waits for its reply, again and again; records round trips.
pub async fn requester(uri: Uri, direct: bool, stats: Arc<Stats>, stop: Arc<AtomicBool>) -> Result<u64> {
    let mut c = Client::connect_as(&uri, Role::Sender).await?;
    c.declare_queue(REQUESTS, false, false).await?;
    let reply_to =
        if direct { "amq.rabbitmq.reply-to".to_owned() } else { c.declare_queue("", false, true).await? };
    c.consume(&reply_to, true).await?;
    let Client { mut rd, mut wr, frame_max, .. } = c;
    let props =
        AMQPProperties::default().with_reply_to(reply_to.as_str().into()).with_correlation_id("1".into());
    let mut request = Vec::new();
    encode::basic_publish(&mut request, 1, b"", REQUESTS.as_bytes());
    encode::content(&mut request, 1, &encode_header(8, &props), &[0u8; 8], frame_max);
    let mut latency = LocalLatency::default();
    let mut done = 0;
    while !stop.load(Ordering::Relaxed) {
        let sent = Instant::now();
        wr.write_all(&request).await?;
        loop {
            // A reply may never come if the responder stopped first: keep an eye on `stop`.
            // The floor relay closes a pair as soon as either end leaves.
            let frame = match tokio::time::timeout(Duration::from_millis(200), rd.next()).await {
                Ok(Ok(frame)) => frame,
                Err(_) | Ok(Err(_)) if stop.load(Ordering::Relaxed) => {
                    latency.merge_into(&stats);
                    return Ok(done);
                }
                Err(_) => continue,
                Ok(Err(e)) => return Err(e),
            };
            match frame {
                Frame::Method { payload, .. } if method::ids(&payload) == (60, 60) => break,
                Frame::Method { payload, .. }
                    if method::ids(&payload).0 == 20 || method::ids(&payload).0 == 10 =>
                {
                    return Err("the broker closed the channel or connection".into())
                }
                _ => {}
            }
        }
        latency.record(sent.elapsed().as_micros() as u64);
        stats.add(&stats.consumed, 1);
        done += 1;
        if done % 256 == 0 {
            latency.merge_into(&stats);
        }
    }
    latency.merge_into(&stats);
    Ok(done)
}
