//! The `delayed` scenario: how a delayed-message exchange holds up with
//! many messages waiting.
//!
//! 1. Fill: `--backlog` persistent messages (confirmed) are published to
//!    an `x-delayed-message` exchange with an hour's delay: they wait.
//! 2. Measure, for `--duration` seconds: probes are published at
//!    `--probe-rate` with an `x-delay` of `--delay-ms`, each stamped with
//!    its send time; a consumer records how late each arrives (arrival −
//!    send − delay: end to end, the publish and delivery included). Beside
//!    them, `--producers` / `--consumers` run ordinary traffic at `--rate`
//!    each through `perf-q-*`, if `--rate` is set.
//! 3. The exchange is deleted with everything still waiting on it
//!    (`--keep-queues` keeps it).
//!
//! Memory is for the caller to watch (the broker's RSS across the run).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use amq_protocol::types::{AMQPValue, FieldTable};

use super::client::{Client, Result, Uri};
use super::flow::{self, ConsumerSpec, ProducerSpec};
use super::report::Summary;
use super::stats::Stats;
use super::{consumer_spec, producer_spec, topology, Options};

const EXCHANGE: &str = "perf-delayed";
const PROBES: &str = "perf-delayed-probes";
/// How long the filled messages wait: past any run.
const FILL_DELAY_MS: i64 = 3_600_000;

fn delayed(ms: i64) -> FieldTable {
    let mut t = FieldTable::default();
    t.insert("x-delay".into(), AMQPValue::LongLongInt(ms));
    t
}

fn spec(routing_key: &str, o: &Options, headers: FieldTable, rate: u64, count: u64) -> ProducerSpec {
    ProducerSpec {
        exchange: EXCHANGE.into(),
        routing_key: routing_key.into(),
        size: o.size.max(8),
        persistent: true,
        confirm: o.confirm.max(1000),
        rate,
        tick_us: o.tick_us,
        count,
        headers: Some(headers),
    }
}

pub async fn run(uri: &Uri, o: &Options, summary: &mut Summary) -> Result<()> {
    let mut c = Client::connect(uri).await?;
    let mut args = FieldTable::default();
    args.insert("x-delayed-type".into(), AMQPValue::LongString("direct".into()));
    c.declare_exchange_with(EXCHANGE, "x-delayed-message", true, args).await?;
    c.declare_queue(PROBES, true, false).await?;
    c.bind(PROBES, EXCHANGE, "probe").await?;

    // 1. Fill.
    let fill = Arc::new(Stats::default());
    let stop = Arc::new(AtomicBool::new(false));
    let per = o.backlog / o.producers.max(1) as u64;
    let started = Instant::now();
    let fillers: Vec<_> = (0..o.producers.max(1))
        .filter(|_| per > 0)
        .map(|_| {
            let s = spec("nobody", o, delayed(FILL_DELAY_MS), 0, per);
            tokio::spawn(flow::produce(uri.clone(), s, fill.clone(), stop.clone()))
        })
        .collect();
    let mut filled = 0;
    for f in fillers {
        filled += f.await??;
    }
    let fill_secs = started.elapsed().as_secs_f64();
    eprintln!(
        "filled {filled} delayed messages in {fill_secs:.1}s ({:.0} msg/s), {} confirmed",
        filled as f64 / fill_secs,
        fill.confirmed.load(Ordering::Relaxed)
    );

    // 2. Probes beside ordinary traffic.
    let traffic = Arc::new(Stats::default());
    let mut background = Vec::new();
    if o.rate > 0 {
        topology(uri, o).await?;
        for i in 0..o.consumers {
            background.push(tokio::spawn(flow::consume(
                uri.clone(),
                consumer_spec(o, i, 0),
                traffic.clone(),
                stop.clone(),
            )));
        }
        for i in 0..o.producers {
            background.push(tokio::spawn(flow::produce(
                uri.clone(),
                producer_spec(o, i, 0),
                traffic.clone(),
                stop.clone(),
            )));
        }
    }
    let probes = Arc::new(Stats::default());
    let probe_stop = Arc::new(AtomicBool::new(false));
    let consumer = ConsumerSpec {
        queue: PROBES.into(),
        no_ack: true,
        ack_every: 1,
        prefetch: 0,
        count: 0,
        expected_us: o.delay_ms * 1000,
        arguments: FieldTable::default(),
        subscribed: None,
    };
    let receiving = Arc::new(AtomicBool::new(false));
    let receiver = tokio::spawn(flow::consume(uri.clone(), consumer, probes.clone(), receiving.clone()));
    tokio::time::sleep(Duration::from_secs_f64(o.warmup)).await;
    traffic.start_recording();
    let prober = spec("probe", o, delayed(o.delay_ms as i64), o.probe_rate.max(1), 0);
    let sender = tokio::spawn(flow::produce(uri.clone(), prober, probes.clone(), probe_stop.clone()));
    let measured = Instant::now();
    tokio::time::sleep(Duration::from_secs_f64(o.duration)).await;
    let traffic_secs = measured.elapsed().as_secs_f64();
    // The ordinary traffic is counted over the measured time only.
    traffic.recording.store(false, Ordering::Relaxed);
    probe_stop.store(true, Ordering::Relaxed);
    let sent = sender.await??;
    // The last probes are due `delay` after they were sent.
    let deadline = Instant::now() + Duration::from_millis(o.delay_ms + 5_000);
    while probes.consumed.load(Ordering::Relaxed) < sent && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    stop.store(true, Ordering::Relaxed);
    receiving.store(true, Ordering::Relaxed);
    receiver.await??;
    for t in background {
        t.await??;
    }
    summary.delayed(filled, fill_secs, &probes, sent, &traffic, traffic_secs);

    // 3. Everything still waiting goes with its exchange (unless kept, to
    // time a restart with it).
    if o.keep_queues {
        return Ok(());
    }
    let started = Instant::now();
    let mut c = Client::connect(uri).await?;
    c.delete_exchange(EXCHANGE).await?;
    c.delete_queue(PROBES).await?;
    eprintln!("deleted the exchange with {filled} waiting in {:.2}s", started.elapsed().as_secs_f64());
    if o.rate > 0 && !o.keep_queues {
        for i in 0..o.queues {
            c.delete_queue(&super::queue_name(i)).await?;
        }
    }
    c.close().await;
    Ok(())
}
