//! `warren-perf`: a load generator for any AMQP 0-9-1 broker, in the spirit
//! of RabbitMQ's PerfTest. Built to saturate a broker from few cores:
//! pre-encoded frames, batched writes, no allocation per message.

pub mod client;
mod delayed;
pub mod floor;
pub mod flow;
mod pace;
pub mod report;
pub mod rpc;
pub mod stats;
mod stream;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::{Parser, ValueEnum};

use client::{Client, Result, Uri};
use flow::{ConsumerSpec, ProducerSpec};
use report::Summary;
use stats::Stats;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Scenario {
    /// Producers and consumers run side by side for --duration seconds.
    Throughput,
    /// One request outstanding at a time; round-trip latency.
    Rpc,
    /// Publish --backlog messages with nobody consuming, then drain them.
    Backlog,
    /// Open and close connections (with a channel and a queue) as fast as possible.
    Churn,
    /// Hold --connections idle connections and --queues queues for --duration seconds.
    Idle,
    /// Fill a delayed-message exchange with --backlog messages waiting an
    /// hour, then measure how late --delay-ms probes arrive (beside
    /// ordinary traffic at --rate per producer, if set).
    Delayed,
    /// Append --backlog messages to a stream (`x-queue-type: stream`),
    /// then have --consumers each replay it all from `first`.
    Stream,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ExchangeType {
    /// The default exchange, routing key = queue name.
    Direct,
    /// One fanout exchange bound to every queue.
    Fanout,
    /// One topic exchange; queue i bound with `perf.i.#`.
    Topic,
}

/// Load generator for AMQP 0-9-1 brokers (Warren, RabbitMQ, ...).
#[derive(Debug, Clone, Parser)]
#[command(name = "warren-perf", version)]
pub struct Options {
    /// Broker URI.
    #[arg(long, default_value = "amqp://guest:guest@127.0.0.1:5672/%2f")]
    pub uri: String,
    #[arg(long, value_enum, default_value = "throughput")]
    pub scenario: Scenario,
    /// Producer connections.
    #[arg(long, short = 'x', default_value_t = 1)]
    pub producers: usize,
    /// Consumer connections.
    #[arg(long, short = 'y', default_value_t = 1)]
    pub consumers: usize,
    /// Queues (perf-q-0, perf-q-1, ...); producer i publishes to queue i mod n.
    #[arg(long, short = 'q', default_value_t = 1)]
    pub queues: usize,
    /// Message body size in bytes (at least 8 to measure latency).
    #[arg(long, short = 's', default_value_t = 16)]
    pub size: usize,
    /// Persistent messages on durable queues.
    #[arg(long)]
    pub persistent: bool,
    /// Publisher confirms with this many outstanding (0: no confirms).
    #[arg(long, short = 'c', default_value_t = 0)]
    pub confirm: u64,
    /// Consumers do not acknowledge (no-ack).
    #[arg(long, short = 'a')]
    pub auto_ack: bool,
    /// With manual acks, acknowledge with `multiple` every N deliveries.
    #[arg(long, default_value_t = 1)]
    pub multi_ack_every: u64,
    /// basic.qos prefetch per consumer (0: unlimited).
    #[arg(long, short = 'Q', default_value_t = 0)]
    pub prefetch: u16,
    #[arg(long, value_enum, default_value = "direct")]
    pub exchange: ExchangeType,
    /// Messages per second per producer (0: unlimited).
    #[arg(long, short = 'r', default_value_t = 0)]
    pub rate: u64,
    /// With --rate: the shortest pacing tick in µs (50 at the least), so
    /// about rate × tick / 10⁶ messages go out together. Below ~500 µs,
    /// waking the producer costs more than a 2-vCPU machine spares beside
    /// a broker (even the floor relay's p99 went to 6–8 ms at 100–200 µs).
    #[arg(long, default_value_t = 500)]
    pub tick_us: u64,
    /// Seconds of measurement.
    #[arg(long, short = 'z', default_value_t = 10.0)]
    pub duration: f64,
    /// Seconds of warm-up before measurement starts.
    #[arg(long, default_value_t = 1.0)]
    pub warmup: f64,
    /// Messages for the backlog scenario.
    #[arg(long, default_value_t = 1_000_000)]
    pub backlog: u64,
    /// RPC replies through direct reply-to instead of a reply queue.
    #[arg(long)]
    pub direct_reply_to: bool,
    /// Connections for the idle scenario.
    #[arg(long, default_value_t = 1000)]
    pub connections: usize,
    /// The delayed scenario's probe delay, in ms.
    #[arg(long, default_value_t = 1000)]
    pub delay_ms: u64,
    /// The delayed scenario's probes per second.
    #[arg(long, default_value_t = 1000)]
    pub probe_rate: u64,
    /// Print the summary as JSON (one object) instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Leave the queues in place at the end.
    #[arg(long)]
    pub keep_queues: bool,
    /// The broker's process id: report the CPU it spends per delivered
    /// message (from /proc; the broker must run on this machine).
    #[arg(long)]
    pub broker_pid: Option<u32>,
    /// Then run the same scenario over the floor relay (a trivial
    /// user-space relay, see `floor`) and report the broker against it.
    /// Throughput with as many producers as consumers over the default
    /// exchange, and rpc.
    #[arg(long)]
    pub floor: bool,
    /// Keep a core busy meanwhile: a spinning thread at the lowest priority,
    /// so that a core is never idle (latency on a virtual machine whose
    /// cores sleep is another regime, see `floor`).
    #[arg(long)]
    pub background_load: bool,
    /// Then measure the floor of a durable confirm: appends of a small
    /// record, each followed by fdatasync, for 3 s in this directory (put
    /// it on the broker's disk).
    #[arg(long)]
    pub fsync_floor: Option<std::path::PathBuf>,
    /// Serve the floor relay (what --floor starts in a child process).
    #[arg(long, hide = true)]
    pub serve_relay: bool,
}

fn queue_name(i: usize) -> String {
    format!("perf-q-{i}")
}

/// Declares the queues and the exchange the throughput scenarios use.
async fn topology(uri: &Uri, o: &Options) -> Result<()> {
    let mut c = Client::connect(uri).await?;
    for i in 0..o.queues {
        c.declare_queue(&queue_name(i), o.persistent, false).await?;
        match o.exchange {
            ExchangeType::Direct => {}
            ExchangeType::Fanout => {
                c.declare_exchange("perf-fanout", "fanout", o.persistent).await?;
                c.bind(&queue_name(i), "perf-fanout", "").await?;
            }
            ExchangeType::Topic => {
                c.declare_exchange("perf-topic", "topic", o.persistent).await?;
                c.bind(&queue_name(i), "perf-topic", &format!("perf.{i}.#")).await?;
            }
        }
    }
    c.close().await;
    Ok(())
}

async fn cleanup(uri: &Uri, o: &Options) -> Result<()> {
    if o.keep_queues {
        return Ok(());
    }
    let mut c = Client::connect(uri).await?;
    for i in 0..o.queues {
        c.delete_queue(&queue_name(i)).await?;
    }
    c.close().await;
    Ok(())
}

fn producer_spec(o: &Options, i: usize, count: u64) -> ProducerSpec {
    let q = i % o.queues.max(1);
    let (exchange, routing_key) = match o.exchange {
        ExchangeType::Direct => (String::new(), queue_name(q)),
        ExchangeType::Fanout => ("perf-fanout".to_owned(), String::new()),
        ExchangeType::Topic => ("perf-topic".to_owned(), format!("perf.{q}.x")),
    };
    ProducerSpec {
        exchange,
        routing_key,
        size: o.size,
        persistent: o.persistent,
        confirm: o.confirm,
        rate: o.rate,
        tick_us: o.tick_us,
        count,
        headers: None,
    }
}

fn consumer_spec(o: &Options, i: usize, count: u64) -> ConsumerSpec {
    ConsumerSpec {
        queue: queue_name(i % o.queues.max(1)),
        no_ack: o.auto_ack,
        ack_every: o.multi_ack_every,
        prefetch: o.prefetch,
        count,
        expected_us: 0,
        arguments: Default::default(),
        subscribed: None,
    }
}

/// Runs the scenario and returns its summary; with --floor, the same over
/// the floor relay afterwards.
pub async fn run(o: Options) -> Result<Summary> {
    let uri = Uri::parse(&o.uri)?;
    if o.background_load {
        floor::spin_in_background();
    }
    if o.floor {
        let relayable = match o.scenario {
            Scenario::Throughput => {
                o.producers == o.consumers && o.exchange == ExchangeType::Direct && o.confirm == 0
            }
            Scenario::Rpc => true,
            _ => false,
        };
        if !relayable {
            return Err("--floor needs --scenario rpc, or throughput with as many producers as \
                        consumers, the direct exchange and no confirms"
                .into());
        }
    }
    let mut summary = run_on(&uri, &o, o.broker_pid).await?;
    if o.floor {
        let relay = floor::Relay::start()?;
        let floor = run_on(&relay.uri(), &o, Some(relay.pid())).await?;
        summary.floor = Some(Box::new(floor));
    }
    if let Some(dir) = &o.fsync_floor {
        let (p50, p99) = floor::fdatasync_latency(dir, Duration::from_secs(3))?;
        (summary.fdatasync_us_p50, summary.fdatasync_us_p99) = (Some(p50), Some(p99));
    }
    Ok(summary)
}

/// Runs the scenario against `uri`, measuring the CPU of process `pid`.
async fn run_on(uri: &Uri, o: &Options, pid: Option<u32>) -> Result<Summary> {
    let (uri, o) = (uri.clone(), o.clone());
    let stats = Arc::new(Stats::default());
    let stop = Arc::new(AtomicBool::new(false));
    let mut summary = Summary::new(&o);
    match o.scenario {
        Scenario::Throughput => {
            topology(&uri, &o).await?;
            let mut tasks = Vec::new();
            // Like RabbitMQ's PerfTest, producers start once every consumer
            // is subscribed: a queue that fills before its consumer comes
            // is a backlog, not the flow this measures.
            let subscribed = Arc::new(tokio::sync::Semaphore::new(0));
            for i in 0..o.consumers {
                let spec =
                    flow::ConsumerSpec { subscribed: Some(subscribed.clone()), ..consumer_spec(&o, i, 0) };
                tasks.push(tokio::spawn(flow::consume(uri.clone(), spec, stats.clone(), stop.clone())));
            }
            let all = u32::try_from(o.consumers).map_err(|_| "too many consumers")?;
            tokio::time::timeout(Duration::from_secs(30), subscribed.acquire_many(all))
                .await
                .map_err(|_| "the consumers did not subscribe within 30 s")??
                .forget();
            for i in 0..o.producers {
                tasks.push(tokio::spawn(flow::produce(
                    uri.clone(),
                    producer_spec(&o, i, 0),
                    stats.clone(),
                    stop.clone(),
                )));
            }
            let (elapsed, cpu) = measure(&o, &stats, &tasks, pid).await;
            stop.store(true, Ordering::Relaxed);
            for t in tasks {
                t.await??;
            }
            summary.throughput(&stats, elapsed);
            summary.cpu(cpu);
            cleanup(&uri, &o).await?;
        }
        Scenario::Rpc => {
            let responder = tokio::spawn(rpc::responder(uri.clone(), stop.clone()));
            tokio::time::sleep(Duration::from_millis(300)).await;
            let requester =
                tokio::spawn(rpc::requester(uri.clone(), o.direct_reply_to, stats.clone(), stop.clone()));
            let (elapsed, cpu) = measure(&o, &stats, std::slice::from_ref(&requester), pid).await;
            stop.store(true, Ordering::Relaxed);
            requester.await??;
            responder.await??;
            summary.throughput(&stats, elapsed);
            summary.cpu(cpu);
        }
        Scenario::Backlog => {
            topology(&uri, &o).await?;
            stats.recording.store(true, Ordering::Relaxed);
            let per = o.backlog / o.producers.max(1) as u64;
            let started = Instant::now();
            let producers: Vec<_> = (0..o.producers)
                .map(|i| {
                    tokio::spawn(flow::produce(
                        uri.clone(),
                        producer_spec(&o, i, per),
                        stats.clone(),
                        stop.clone(),
                    ))
                })
                .collect();
            for p in producers {
                p.await??;
            }
            let total = per * o.producers.max(1) as u64;
            // The backlog is in place once the queues hold it all (the
            // broker may still be taking in what the sockets held).
            let mut c = Client::connect(&uri).await?;
            let deadline = Instant::now() + Duration::from_secs(120);
            loop {
                let mut held = 0;
                for i in 0..o.queues {
                    held += u64::from(c.message_count(&queue_name(i)).await?);
                }
                if held >= total {
                    break;
                }
                if Instant::now() > deadline {
                    eprintln!(
                        "the queues hold {held} of {total} messages after 120 s: draining what is there"
                    );
                    break;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            c.close().await;
            let publish_secs = started.elapsed().as_secs_f64();
            let per_consumer = total / o.consumers.max(1) as u64;
            let started = Instant::now();
            let clock = floor::CpuClock::start(pid);
            let consumers: Vec<_> = (0..o.consumers)
                .map(|i| {
                    tokio::spawn(flow::consume(
                        uri.clone(),
                        consumer_spec(&o, i, per_consumer),
                        stats.clone(),
                        stop.clone(),
                    ))
                })
                .collect();
            for c in consumers {
                c.await??;
            }
            summary.backlog(&stats, total, publish_secs, started.elapsed().as_secs_f64());
            summary.cpu(clock.elapsed());
            cleanup(&uri, &o).await?;
        }
        Scenario::Churn => {
            let started = Instant::now();
            let mut cycles = 0u64;
            while started.elapsed().as_secs_f64() < o.duration {
                let mut c = Client::connect(&uri).await?;
                c.declare_queue("", false, true).await?;
                c.close().await;
                cycles += 1;
            }
            summary.churn(cycles, started.elapsed().as_secs_f64());
        }
        Scenario::Delayed => delayed::run(&uri, &o, &mut summary).await?,
        Scenario::Stream => stream::run(&uri, &o, &mut summary).await?,
        Scenario::Idle => {
            let mut held = Vec::with_capacity(o.connections);
            for _ in 0..o.connections {
                held.push(Client::connect(&uri).await?);
            }
            if let Some(c) = held.first_mut() {
                for i in 0..o.queues {
                    c.declare_queue(&format!("perf-idle-{i}"), false, false).await?;
                }
            }
            eprintln!("holding {} connections and {} queues for {}s", held.len(), o.queues, o.duration);
            tokio::time::sleep(Duration::from_secs_f64(o.duration)).await;
            if let Some(c) = held.first_mut() {
                for i in 0..o.queues {
                    c.delete_queue(&format!("perf-idle-{i}")).await?;
                }
            }
            let n = held.len();
            for c in held {
                c.close().await;
            }
            summary.idle(n, o.queues);
        }
    }
    Ok(summary)
}

/// Warm-up, then the measured period with a line a second on stderr:
/// its seconds, and the CPU seconds process `pid` spent in it.
async fn measure<T>(
    o: &Options,
    stats: &Arc<Stats>,
    tasks: &[tokio::task::JoinHandle<T>],
    pid: Option<u32>,
) -> (f64, Option<f64>) {
    stats.recording.store(false, Ordering::Relaxed);
    tokio::time::sleep(Duration::from_secs_f64(o.warmup)).await;
    stats.start_recording();
    let clock = floor::CpuClock::start(pid);
    let started = Instant::now();
    let mut last = report::Snapshot::take(stats);
    while started.elapsed().as_secs_f64() < o.duration {
        tokio::time::sleep(Duration::from_secs_f64(
            (o.duration - started.elapsed().as_secs_f64()).clamp(0.0, 1.0),
        ))
        .await;
        if tasks.iter().any(|t| t.is_finished()) {
            eprintln!("a client stopped early");
            break;
        }
        let now = report::Snapshot::take(stats);
        if !o.json {
            eprintln!("{}", now.line_since(&last, started.elapsed().as_secs_f64()));
        }
        last = now;
    }
    (started.elapsed().as_secs_f64(), clock.elapsed())
}
