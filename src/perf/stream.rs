//! The `stream` scenario: a stream's two speeds.
//!
//! 1. Append: `--producers` publish `--backlog` messages in all to one
//!    stream (`perf-stream`), with confirms if `--confirm` is set.
//! 2. Replay: `--consumers` each read the whole stream from `first`
//!    (prefetch `--prefetch`, 2000 if unset; acks with `multiple` every
//!    `--multi-ack-every`); the rate is every consumer's deliveries over
//!    the time the slowest took.
//! 3. The stream is deleted (`--keep-queues` keeps it).
//!
//! The same run against RabbitMQ measures its streams (3.9+, no plugin).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use amq_protocol::types::{AMQPValue, FieldTable};

use super::client::{Client, Result, Uri};
use super::flow::{self, ConsumerSpec, ProducerSpec};
use super::report::Summary;
use super::stats::Stats;
use super::Options;

const STREAM: &str = "perf-stream";
const STALL: Duration = Duration::from_secs(5);

/// Sets `stop` once no delivery has come for STALL and returns how long
/// the replay ran until its last delivery; runs until aborted otherwise.
async fn watch_replay(replay: Arc<Stats>, stop: Arc<AtomicBool>) -> Option<Duration> {
    let started = Instant::now();
    let (mut seen, mut progressed) = (0, started);
    loop {
        tokio::time::sleep(Duration::from_millis(250)).await;
        let now = replay.consumed.load(Ordering::Relaxed);
        if now != seen {
            (seen, progressed) = (now, Instant::now());
        } else if progressed.elapsed() >= STALL {
            stop.store(true, Ordering::Relaxed);
            return Some(progressed - started);
        }
    }
}

pub async fn run(uri: &Uri, o: &Options, summary: &mut Summary) -> Result<()> {
    let mut c = Client::connect(uri).await?;
    let mut args = FieldTable::default();
    args.insert("x-queue-type".into(), AMQPValue::LongString("stream".into()));
    c.declare_queue_with(STREAM, true, false, args).await?;
    c.close().await;

    // 1. Append.
    let stats = Arc::new(Stats::default());
    stats.recording.store(true, Ordering::Relaxed);
    let stop = Arc::new(AtomicBool::new(false));
    let producers = o.producers.max(1);
    let per = o.backlog / producers as u64;
    let started = Instant::now();
    let tasks: Vec<_> = (0..producers)
        .map(|_| {
            let spec = ProducerSpec {
                exchange: String::new(),
                routing_key: STREAM.into(),
                size: o.size,
                persistent: o.persistent,
                confirm: o.confirm,
                rate: 0,
                tick_us: o.tick_us,
                count: per,
                headers: None,
            };
            tokio::spawn(flow::produce(uri.clone(), spec, stats.clone(), stop.clone()))
        })
        .collect();
    let mut appended = 0;
    for t in tasks {
        appended += t.await??;
    }
    let append_secs = started.elapsed().as_secs_f64();
    eprintln!("appended {appended} in {append_secs:.2}s ({:.0} msg/s)", appended as f64 / append_secs);
    // What was sent without confirms may still be on its way to the log.
    tokio::time::sleep(Duration::from_millis(500)).await;

    // 2. Replay.
    let replay = Arc::new(Stats::default());
    replay.recording.store(true, Ordering::Relaxed);
    let mut first = FieldTable::default();
    first.insert("x-stream-offset".into(), AMQPValue::LongString("first".into()));
    let started = Instant::now();
    let readers: Vec<_> = (0..o.consumers.max(1))
        .map(|_| {
            let spec = ConsumerSpec {
                queue: STREAM.into(),
                no_ack: false,
                ack_every: o.multi_ack_every.max(1),
                prefetch: if o.prefetch == 0 { 2000 } else { o.prefetch },
                count: appended,
                expected_us: 0,
                arguments: first.clone(),
                subscribed: None,
            };
            tokio::spawn(flow::consume(uri.clone(), spec, replay.clone(), stop.clone()))
        })
        .collect();
    // A broker that drops unconfirmed appends (RabbitMQ does, while a
    // stream of the same name is being re-created) never delivers them
    // all: after STALL without a delivery, stop and report what came.
    let watchdog = tokio::spawn(watch_replay(replay.clone(), stop.clone()));
    for r in readers {
        r.await??;
    }
    watchdog.abort();
    let stalled_at = watchdog.await.ok().flatten();
    let replay_secs = stalled_at.unwrap_or_else(|| started.elapsed()).as_secs_f64();
    if stalled_at.is_some() {
        eprintln!(
            "replay stalled: {} of {appended} deliveries came, none for {}s",
            replay.consumed.load(Ordering::Relaxed),
            STALL.as_secs()
        );
    }
    summary.backlog(&replay, appended, append_secs, replay_secs);
    eprintln!(
        "replayed {} deliveries in {replay_secs:.2}s ({:.0} msg/s)",
        replay.consumed.load(Ordering::Relaxed),
        summary.consumed_per_sec
    );
    if !o.keep_queues {
        let mut c = Client::connect(uri).await?;
        c.delete_queue(STREAM).await?;
        c.close().await;
    }
    Ok(())
}
