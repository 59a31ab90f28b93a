//! The crash cycles: load, SIGKILL at a random moment, restart on the same
//! data, read every queue back and check it against what the clients know.
//!
//! Load: four publishers with confirms (windowed) into four durable queues:
//! plain, paged out (a slow consumer, a small in-memory head), priority,
//! and TTL dead-lettering into a durable DLQ. Consumers: the plain queue
//! and the DLQ ack in transactions (basic.consume and basic.get), the
//! priority queue acks outside any, the paged one slowly in transactions.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_lite::StreamExt;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicGetOptions, BasicPublishOptions, BasicQosOptions,
    ConfirmSelectOptions, QueueDeclareOptions,
};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, Channel, Connection, Consumer};
use tokio::task::JoinHandle;

use crate::broker::Broker;
use crate::ledger::{self, Ledger, OrderCheck, Tag, Totals, DLQ, PAGED, PLAIN, PRIO, QUEUES, TTL};

type Shared = Arc<Mutex<Ledger>>;

const PUBLISHERS: u32 = 4;
/// Confirms a publisher waits for at most at once.
const WINDOW: usize = 64;
/// Messages the paged-out queue keeps across cycles (the rest is drained).
const KEEP_PAGED: usize = 3000;
const TTL_MS: i64 = 300;

pub struct Options {
    pub cycles: u32,
    pub min_load: Duration,
    pub max_load: Duration,
}

fn persistent() -> BasicProperties {
    BasicProperties::default().with_delivery_mode(2)
}

fn args(queue: usize) -> FieldTable {
    let mut t = FieldTable::default();
    match queue {
        PRIO => {
            t.insert("x-max-priority".into(), AMQPValue::LongLongInt(5));
        }
        TTL => {
            t.insert("x-message-ttl".into(), AMQPValue::LongLongInt(TTL_MS));
            t.insert("x-dead-letter-exchange".into(), AMQPValue::LongString("".into()));
            t.insert("x-dead-letter-routing-key".into(), AMQPValue::LongString(QUEUES[DLQ].into()));
        }
        _ => {}
    }
    t
}

async fn declare_all(conn: &Connection) -> Result<(), String> {
    let ch = conn.create_channel().await.map_err(|e| e.to_string())?;
    for (i, q) in QUEUES.iter().enumerate() {
        let opts = QueueDeclareOptions { durable: true, ..Default::default() };
        ch.queue_declare((*q).into(), opts, args(i)).await.map_err(|e| format!("declare {q}: {e}"))?;
    }
    Ok(())
}

/// Runs the cycles on `broker`; returns the figures, and stops at the
/// first lost message, resurrected ack or failed restart.
pub async fn run(broker: &mut Broker, o: &Options) -> Result<Totals, (Totals, String)> {
    let mut totals = Totals::default();
    let ledger: Shared = Arc::default();
    if let Err(e) = broker.start().await {
        return Err((totals, e));
    }
    match broker.connect("/").await {
        Ok(conn) => {
            if let Err(e) = declare_all(&conn).await {
                return Err((totals, e));
            }
        }
        Err(e) => return Err((totals, e)),
    }
    for cycle in 1..=o.cycles {
        let load_for = o.min_load + (o.max_load - o.min_load).mul_f64(fastrand::f64());
        let tasks = load(broker, cycle, &ledger, load_for).await;
        tokio::time::sleep(load_for).await;
        if !broker.alive() {
            let at = broker.preserve(&format!("died-cycle{cycle}"));
            return Err((
                totals,
                format!(
                    "warren died by itself under load in cycle {cycle}; data kept in {}; log:\n{}",
                    at.display(),
                    broker.log_tail(30)
                ),
            ));
        }
        broker.kill();
        for t in tasks {
            // A task stuck on a dead socket: its ledger entries are already made.
            let abort = t.abort_handle();
            if tokio::time::timeout(Duration::from_secs(5), t).await.is_err() {
                abort.abort();
            }
        }
        broker.truncate_log();
        let restart = match broker.start().await {
            Ok(d) => d,
            Err(e) => {
                let at = broker.preserve(&format!("restart-cycle{cycle}"));
                return Err((
                    totals,
                    format!(
                        "restart after cycle {cycle} failed: {e}; data kept in {}\n{}",
                        at.display(),
                        broker.log_tail(30)
                    ),
                ));
            }
        };
        totals.restart_ms.push(restart.as_millis() as u64);
        if let Some(ms) = broker.recovery_ms() {
            totals.recovery_ms.push(ms);
        }
        let before = (totals.lost.len(), totals.resurrected.len());
        if let Err(e) = verify(broker, cycle, &ledger, &mut totals).await {
            return Err((
                totals,
                format!("cycle {cycle}: verification failed: {e}\n{}", broker.log_tail(20)),
            ));
        }
        totals.cycles = cycle;
        let l = ledger.lock().unwrap();
        println!(
            "cycle {cycle}/{}: load {} ms, restart {} ms, published {}, confirmed {}, committed acks {}, lost {} (+{} dead-lettering), resurrected {}, duplicates {}, order violations {}",
            o.cycles,
            load_for.as_millis(),
            restart.as_millis(),
            l.published,
            l.confirmed.len(),
            l.committed.len(),
            totals.lost.len(),
            totals.lost_dead_lettering.len(),
            totals.resurrected.len(),
            totals.duplicates.len(),
            totals.order_violations.len()
        );
        drop(l);
        if (totals.lost.len(), totals.resurrected.len()) != before {
            let at = broker.preserve(&format!("violation-cycle{cycle}"));
            return Err((totals, format!("cycle {cycle}: a confirmed message was lost or a committed ack came back; data (after the restart's verification) kept in {}", at.display())));
        }
    }
    broker.stop();
    Ok(totals)
}

/// Starts the publishers and consumers of one cycle.
async fn load(broker: &Broker, cycle: u32, ledger: &Shared, _for: Duration) -> Vec<JoinHandle<()>> {
    let mut tasks = Vec::new();
    for p in 0..PUBLISHERS {
        let Ok(conn) = broker.connect("/").await else { continue };
        let publisher = cycle * 16 + p;
        tasks.push(tokio::spawn(publish(conn, publisher, ledger.clone())));
    }
    if let Ok(conn) = broker.connect("/").await {
        tasks.push(tokio::spawn(consume_tx(conn, PLAIN, ledger.clone())));
    }
    if let Ok(conn) = broker.connect("/").await {
        tasks.push(tokio::spawn(consume_plain_acks(conn, PRIO, ledger.clone())));
    }
    for (queue, per_commit, pause) in [(DLQ, 10, 2), (PAGED, 5, 20)] {
        if let Ok(conn) = broker.connect("/").await {
            tasks.push(tokio::spawn(get_tx(conn, queue, per_commit, pause, ledger.clone())));
        }
    }
    tasks
}

async fn publish(conn: Connection, publisher: u32, ledger: Shared) {
    let Ok(ch) = conn.create_channel().await else { return };
    if ch.confirm_select(ConfirmSelectOptions::default()).await.is_err() {
        return;
    }
    let mut inflight = VecDeque::new();
    for seq in 0u32.. {
        let queue = [PLAIN, PAGED, PRIO, TTL][(seq + publisher) as usize % 4];
        let prio = if queue == PRIO { fastrand::u8(0..=5) } else { 0 };
        let size = if queue == PAGED { 2048 } else { 256 };
        let body = ledger::body(publisher, seq, queue, prio, size);
        let props = if queue == PRIO { persistent().with_priority(prio) } else { persistent() };
        ledger.lock().unwrap().published += 1;
        let opts = BasicPublishOptions::default();
        let Ok(confirm) = ch.basic_publish("".into(), QUEUES[queue].into(), opts, &body, props).await else {
            return;
        };
        inflight.push_back((ledger::id(publisher, seq), confirm));
        while inflight.len() >= WINDOW {
            let (id, confirm) = inflight.pop_front().unwrap();
            match confirm.await {
                Ok(c) if c.is_ack() => {
                    ledger.lock().unwrap().confirmed.insert(id);
                }
                Ok(_) => ledger.lock().unwrap().nacked += 1,
                Err(_) => return,
            }
        }
    }
}

fn tag_of(data: &[u8]) -> u64 {
    ledger::parse(data).map_or(0, |t| t.id)
}

/// A channel with `prefetch` (and transactions if `tx`) consuming `queue`;
/// None once the broker is gone.
async fn consumer_on(
    conn: &Connection,
    queue: usize,
    prefetch: u16,
    tx: bool,
) -> Option<(Channel, Consumer)> {
    let ch = conn.create_channel().await.ok()?;
    ch.basic_qos(prefetch, BasicQosOptions::default()).await.ok()?;
    if tx {
        ch.tx_select().await.ok()?;
    }
    let opts = BasicConsumeOptions::default();
    let consumer =
        ch.basic_consume(QUEUES[queue].into(), "".into(), opts, FieldTable::default()).await.ok()?;
    Some((ch, consumer))
}

/// basic.consume, acks in transactions of up to 20.
async fn consume_tx(conn: Connection, queue: usize, ledger: Shared) {
    let Some((ch, mut consumer)) = consumer_on(&conn, queue, 100, true).await else { return };
    loop {
        let mut batch = Vec::new();
        while batch.len() < 20 {
            match tokio::time::timeout(Duration::from_millis(50), consumer.next()).await {
                Ok(Some(Ok(d))) => batch.push(d),
                Ok(_) => return,
                Err(_) => break,
            }
        }
        let Some(last) = batch.last().map(|d| d.delivery_tag) else { continue };
        let ids: Vec<u64> = batch.iter().map(|d| tag_of(&d.data)).collect();
        commit(&ch, last, ids, &ledger).await.unwrap_or(());
    }
}

/// Acks up to `last` (multiple) in the channel's transaction and commits.
async fn commit(ch: &Channel, last: u64, ids: Vec<u64>, ledger: &Shared) -> Option<()> {
    {
        let mut l = ledger.lock().unwrap();
        for id in &ids {
            l.delivered(*id);
            l.uncertain.insert(*id);
        }
    }
    ch.basic_ack(last, BasicAckOptions { multiple: true }).await.ok()?;
    ch.tx_commit().await.ok()?;
    ledger.lock().unwrap().commit(&ids);
    Some(())
}

/// basic.consume, each delivery acked at once, outside any transaction.
async fn consume_plain_acks(conn: Connection, queue: usize, ledger: Shared) {
    let Some((ch, mut consumer)) = consumer_on(&conn, queue, 50, false).await else { return };
    while let Some(Ok(d)) = consumer.next().await {
        let id = tag_of(&d.data);
        {
            let mut l = ledger.lock().unwrap();
            l.delivered(id);
            l.plain_acked.insert(id);
            l.settled.insert(id);
        }
        if ch.basic_ack(d.delivery_tag, BasicAckOptions::default()).await.is_err() {
            return;
        }
    }
}

/// basic.get, `per_commit` messages per transaction, `pause` ms between.
async fn get_tx(conn: Connection, queue: usize, per_commit: usize, pause: u64, ledger: Shared) {
    let Ok(ch) = conn.create_channel().await else { return };
    if ch.tx_select().await.is_err() {
        return;
    }
    loop {
        let mut ids = Vec::new();
        let mut last = None;
        for _ in 0..per_commit {
            match ch.basic_get(QUEUES[queue].into(), BasicGetOptions::default()).await {
                Ok(Some(m)) => {
                    ids.push(tag_of(&m.delivery.data));
                    last = Some(m.delivery.delivery_tag);
                }
                Ok(None) => break,
                Err(_) => return,
            }
        }
        if let Some(last) = last {
            if commit(&ch, last, ids, &ledger).await.is_none() {
                return;
            }
        }
        tokio::time::sleep(Duration::from_millis(pause)).await;
    }
}

/// What a drain read, and which of it it acked in a committed transaction.
struct Drained {
    tags: Vec<Tag>,
    committed: Vec<u64>,
}

/// Everything in `queue`, in delivery order: consumed (unlimited prefetch)
/// until it stays quiet with the queue empty. Acks all but the newest
/// `keep` in one transaction; those go back to the queue when the channel closes.
async fn drain(conn: &Connection, queue: usize, keep: usize) -> Result<Drained, String> {
    let e = |e: lapin::Error| format!("{}: {e}", QUEUES[queue]);
    let ch = conn.create_channel().await.map_err(e)?;
    let passive = QueueDeclareOptions { passive: true, ..Default::default() };
    let count =
        ch.queue_declare(QUEUES[queue].into(), passive, args(queue)).await.map_err(e)?.message_count();
    let opts = BasicConsumeOptions::default();
    let mut consumer =
        ch.basic_consume(QUEUES[queue].into(), "".into(), opts, FieldTable::default()).await.map_err(e)?;
    let mut got = Vec::new();
    let mut last_tag = Vec::new();
    let started = tokio::time::Instant::now();
    loop {
        let quiet = if got.len() >= count as usize { 400 } else { 3000 };
        match tokio::time::timeout(Duration::from_millis(quiet), consumer.next()).await {
            Ok(Some(Ok(d))) => {
                let t =
                    ledger::parse(&d.data).ok_or_else(|| format!("{}: a foreign message", QUEUES[queue]))?;
                got.push(t);
                last_tag.push(d.delivery_tag);
            }
            Ok(_) => return Err(format!("{}: the consumer ended while draining", QUEUES[queue])),
            Err(_) => break,
        }
        if started.elapsed() > Duration::from_secs(120) {
            return Err(format!("{}: still delivering after 120 s", QUEUES[queue]));
        }
    }
    if got.len() < count as usize && queue != TTL {
        return Err(format!("{}: declared {count} messages, delivered {}", QUEUES[queue], got.len()));
    }
    let acked = got.len().saturating_sub(keep);
    let mut committed = Vec::new();
    if acked > 0 {
        ch.tx_select().await.map_err(e)?;
        ch.basic_ack(last_tag[acked - 1], BasicAckOptions { multiple: true }).await.map_err(e)?;
        ch.tx_commit().await.map_err(e)?;
        committed = got[..acked].iter().map(|t| t.id).collect();
    }
    let _ = ch.close(200, "checked".into()).await;
    Ok(Drained { tags: got, committed })
}

/// Reads every queue back after a restart and checks it against the ledger.
async fn verify(broker: &Broker, cycle: u32, ledger: &Shared, totals: &mut Totals) -> Result<(), String> {
    let conn = broker.connect("/").await?;
    // Dead-lettering of what expired while the broker was down happens at recovery.
    tokio::time::sleep(Duration::from_millis(TTL_MS as u64 + 200)).await;
    let mut contents = Vec::new();
    for queue in [PLAIN, PAGED, PRIO, TTL] {
        let keep = if queue == PAGED { KEEP_PAGED } else { 0 };
        contents.push((queue, drain(&conn, queue, keep).await?));
    }
    tokio::time::sleep(Duration::from_millis(TTL_MS as u64 + 200)).await;
    contents.push((DLQ, drain(&conn, DLQ, 0).await?));
    let _ = conn.close(200, "verified".into()).await;

    let mut l = ledger.lock().unwrap();
    let mut seen: HashMap<u64, usize> = HashMap::new();
    let mut in_ttl = HashSet::new();
    for (queue, drained) in &contents {
        let mut order = OrderCheck::new();
        for t in &drained.tags {
            totals.verified += 1;
            let (dup, out_of_order) = order.see(*t, *queue == PRIO);
            if dup && *queue == DLQ {
                // Dead-lettering is at-least-once: a crash between writing
                // the dead letter and removing its source dead-letters it
                // again after the restart.
                totals.dlq_duplicates += 1;
            } else if dup {
                totals.duplicates.push((cycle, t.id));
            }
            if let Some(after) = out_of_order {
                let what = format!(
                    "{}: publisher {} seq {} after seq {after}",
                    QUEUES[*queue],
                    ledger::publisher_of(t.id),
                    ledger::seq_of(t.id)
                );
                if *queue == DLQ {
                    totals.dlq_order_violations.push((cycle, what));
                } else {
                    totals.order_violations.push((cycle, what));
                }
            }
            if *queue == TTL {
                in_ttl.insert(t.id);
            }
            if *queue == DLQ && in_ttl.contains(&t.id) {
                totals.dead_letter_duplicates += 1;
            }
            let right = t.queue == *queue || (t.queue == TTL && *queue == DLQ);
            totals.misplaced += u64::from(!right);
            *seen.entry(t.id).or_default() += 1;
        }
    }
    for id in seen.keys() {
        if l.committed.contains(id) {
            totals.resurrected.push((cycle, *id));
        } else if l.uncertain.contains(id) {
            totals.back_after_uncertain_ack += 1;
        } else if l.plain_acked.contains(id) {
            totals.back_after_plain_ack += 1;
        } else if !l.confirmed.contains(id) {
            totals.unconfirmed_survived += 1;
        }
    }
    let live = std::mem::take(&mut l.resurrected_live);
    totals.resurrected.extend(live.into_iter().map(|id| (cycle, id)));
    let lost: Vec<u64> = l
        .confirmed
        .iter()
        .filter(|id| !l.settled.contains(id) && !l.uncertain.contains(id) && !seen.contains_key(id))
        .copied()
        .collect();
    for id in lost {
        // The target queue is a function of the id (see `publish`).
        let target = [PLAIN, PAGED, PRIO, TTL][(ledger::seq_of(id) + ledger::publisher_of(id)) as usize % 4];
        if target == TTL {
            totals.lost_dead_lettering.push((cycle, id));
        } else {
            totals.lost.push((cycle, id));
        }
        l.settled.insert(id);
    }
    // Cut commits not seen again took effect; those seen were acked by the drain.
    let uncertain: Vec<u64> = l.uncertain.drain().collect();
    for id in uncertain {
        if !seen.contains_key(&id) {
            l.settled.insert(id);
        }
    }
    // Plain acks seen again are live again, until the drain's commit settles them.
    for id in seen.keys() {
        if l.plain_acked.remove(id) {
            l.settled.remove(id);
        }
    }
    for (_, drained) in &contents {
        l.commit(&drained.committed);
    }
    Ok(())
}
