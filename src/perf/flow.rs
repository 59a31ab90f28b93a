//! Producers and consumers for the throughput scenarios.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use amq_protocol::types::FieldTable;
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::sync::Notify;

use super::client::{deliver_tag, encode_ack, encode_publish, Client, Reader, Result, Role, Uri};
use super::pace::Pacer;
use super::stats::{LocalLatency, Stats};
use crate::protocol::frame::Frame;

/// Bytes of pre-encoded messages written per socket write.
const WRITE_BATCH: usize = 64 * 1024;

#[derive(Debug, Clone)]
pub struct ProducerSpec {
    pub exchange: String,
    pub routing_key: String,
    pub size: usize,
    pub persistent: bool,
    /// Outstanding unconfirmed publishes allowed; 0 means no confirms.
    pub confirm: u64,
    /// Messages per second; 0 means as fast as possible.
    pub rate: u64,
    /// With a rate: the shortest pacing tick, µs (see `pace`).
    pub tick_us: u64,
    /// Stop after this many messages; 0 means run until stopped.
    pub count: u64,
    /// The `headers` property of every message.
    pub headers: Option<amq_protocol::types::FieldTable>,
}

pub async fn produce(uri: Uri, spec: ProducerSpec, stats: Arc<Stats>, stop: Arc<AtomicBool>) -> Result<u64> {
    let mut client = Client::connect_as(&uri, Role::Sender).await?;
    if spec.confirm > 0 && client.relay {
        return Err("the floor relay does not confirm: run the floor without --confirm".into());
    }
    if spec.confirm > 0 {
        client.confirm_select().await?;
    }
    let (one, body_at) = encode_publish(
        &spec.exchange,
        &spec.routing_key,
        spec.size,
        spec.persistent,
        spec.headers.as_ref(),
        client.frame_max,
        client.relay,
    );
    let stamp = spec.size >= 8;
    let per_batch = (WRITE_BATCH / one.len()).max(1);
    let mut batch = Vec::with_capacity(per_batch * one.len());
    let acked = Arc::new(AtomicU64::new(0));
    let wake = Arc::new(Notify::new());
    // (the last sequence number of a write, when it was written)
    let written: Written = Arc::default();
    let Client { rd, mut wr, relay, .. } = client;
    let (confirms, acks_back) = if spec.confirm > 0 {
        let task = read_confirms(rd, acked.clone(), wake.clone(), written.clone(), stats.clone());
        (Some(tokio::spawn(task)), None)
    } else if relay {
        // Over the floor relay the receiver's acks come back here: read
        // them, or they would fill the sockets and stall the receiver.
        (None, Some(tokio::spawn(discard(rd))))
    } else {
        (None, None)
    };
    let pacer = (spec.rate > 0).then(|| Pacer::start(spec.rate, spec.tick_us));
    let started = tokio::time::Instant::now();
    let mut sent: u64 = 0;
    while !stop.load(Ordering::Relaxed) && (spec.count == 0 || sent < spec.count) {
        let mut n = per_batch as u64;
        if spec.count > 0 {
            n = n.min(spec.count - sent);
        }
        if spec.rate > 0 {
            let allowed = (started.elapsed().as_secs_f64() * spec.rate as f64) as u64;
            if allowed <= sent {
                if let Some(p) = &pacer {
                    p.tick().await;
                }
                continue;
            }
            n = n.min(allowed - sent);
        }
        if spec.confirm > 0 {
            let outstanding = sent - acked.load(Ordering::Acquire);
            if outstanding >= spec.confirm {
                let notified = wake.notified();
                if sent - acked.load(Ordering::Acquire) >= spec.confirm {
                    let _ = tokio::time::timeout(Duration::from_millis(100), notified).await;
                }
                continue;
            }
            n = n.min(spec.confirm - outstanding);
        }
        batch.clear();
        let nanos = stats.now_nanos();
        let now = nanos.to_be_bytes();
        for _ in 0..n {
            let at = batch.len();
            batch.extend_from_slice(&one);
            if stamp {
                batch[at + body_at..at + body_at + 8].copy_from_slice(&now);
            }
        }
        if spec.confirm > 0 {
            written.lock().push_back((sent + n, nanos));
        }
        if let Err(e) = wr.write_all(&batch).await {
            // The floor relay closes a pair as soon as either end leaves.
            if stop.load(Ordering::Relaxed) {
                break;
            }
            return Err(e.into());
        }
        sent += n;
        stats.add(&stats.published, n);
    }
    if let Some(task) = confirms {
        // Give outstanding confirms a moment, then stop listening.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while acked.load(Ordering::Acquire) < sent && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        task.abort();
    }
    if let Some(task) = acks_back {
        task.abort();
    }
    Ok(sent)
}

async fn discard(mut rd: Reader) -> Result<()> {
    loop {
        rd.next().await?;
    }
}

/// A producer's writes waiting for confirms: (the last sequence number of
/// the write, when it was written in `Stats::now_nanos`).
type Written = Arc<parking_lot::Mutex<std::collections::VecDeque<(u64, u64)>>>;

async fn read_confirms(
    mut rd: Reader,
    acked: Arc<AtomicU64>,
    wake: Arc<Notify>,
    written: Written,
    stats: Arc<Stats>,
) -> Result<()> {
    // Publishes up to this sequence number have had their latency recorded.
    let mut timed = 0;
    loop {
        let Frame::Method { payload, .. } = rd.next().await? else { continue };
        let (class, method) = crate::protocol::method::ids(&payload);
        if class != 60 || !(method == 80 || method == 120) || payload.len() < 13 {
            continue;
        }
        let tag = u64::from_be_bytes(payload[4..12].try_into()?);
        let multiple = payload[12] & 1 != 0;
        let before = acked.load(Ordering::Acquire);
        let n = if multiple { tag.saturating_sub(before) } else { 1 };
        let upto = tag.max(before);
        acked.store(upto, Ordering::Release);
        stats.add(if method == 80 { &stats.confirmed } else { &stats.nacked }, n);
        let now = stats.now_nanos();
        let mut w = written.lock();
        while let Some(&(end, at)) = w.front() {
            if end.min(upto) > timed {
                stats.confirmed_after(now.saturating_sub(at) / 1000, end.min(upto) - timed);
                timed = end.min(upto);
            }
            if end > upto {
                break;
            }
            w.pop_front();
        }
        drop(w);
        wake.notify_one();
    }
}

#[derive(Debug, Clone)]
pub struct ConsumerSpec {
    pub queue: String,
    pub no_ack: bool,
    /// Ack with `multiple` every this many deliveries.
    pub ack_every: u64,
    pub prefetch: u16,
    /// Stop after this many messages; 0 means run until stopped.
    pub count: u64,
    /// Microseconds taken off each latency (a delay the message was meant to wait).
    pub expected_us: u64,
    /// `basic.consume` arguments (a stream consumer's `x-stream-offset`).
    pub arguments: FieldTable,
    /// Given a permit once subscribed (producers start after every consumer is).
    pub subscribed: Option<Arc<tokio::sync::Semaphore>>,
}

pub async fn consume(uri: Uri, spec: ConsumerSpec, stats: Arc<Stats>, stop: Arc<AtomicBool>) -> Result<u64> {
    let mut client = Client::connect_as(&uri, Role::Receiver).await?;
    if spec.prefetch > 0 {
        client.qos(spec.prefetch).await?;
    }
    client.consume_with(&spec.queue, spec.no_ack, spec.arguments.clone()).await?;
    if let Some(subscribed) = &spec.subscribed {
        subscribed.add_permits(1);
    }
    let Client { mut rd, mut wr, .. } = client;
    let mut latency = LocalLatency::default();
    let mut got: u64 = 0;
    let mut unacked: u64 = 0;
    let mut last_tag = 0;
    let mut acks = Vec::with_capacity(64);
    let mut body_expected = false;
    let mut last_merge = tokio::time::Instant::now();
    while !stop.load(Ordering::Relaxed) && (spec.count == 0 || got < spec.count) {
        let frame = match tokio::time::timeout(Duration::from_millis(200), rd.next()).await {
            // The floor relay closes a pair as soon as either end leaves.
            Ok(Err(_)) if stop.load(Ordering::Relaxed) => break,
            Ok(f) => f?,
            Err(_) => continue,
        };
        match frame {
            Frame::Method { payload, .. } => {
                if crate::protocol::method::ids(&payload) != (60, 60) {
                    continue;
                }
                last_tag = deliver_tag(&payload).ok_or("malformed basic.deliver")?;
                got += 1;
                stats.add(&stats.consumed, 1);
                body_expected = true;
                if !spec.no_ack {
                    unacked += 1;
                    if unacked >= spec.ack_every.max(1) {
                        acks.clear();
                        encode_ack(&mut acks, last_tag, true);
                        wr.write_all(&acks).await?;
                        unacked = 0;
                    }
                }
            }
            Frame::Body { payload, .. } => {
                stats.add(&stats.consumed_bytes, payload.len() as u64);
                if body_expected && payload.len() >= 8 {
                    let sent = u64::from_be_bytes(payload[..8].try_into()?);
                    latency.record(
                        (stats.now_nanos().saturating_sub(sent) / 1000).saturating_sub(spec.expected_us),
                    );
                }
                body_expected = false;
            }
            _ => {}
        }
        if last_merge.elapsed() > Duration::from_millis(250) {
            latency.merge_into(&stats);
            last_merge = tokio::time::Instant::now();
        }
    }
    if unacked > 0 {
        acks.clear();
        encode_ack(&mut acks, last_tag, true);
        let _ = wr.write_all(&acks).await;
    }
    latency.merge_into(&stats);
    Ok(got)
}
