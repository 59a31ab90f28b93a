//! Queues bigger than their in-memory head: messages beyond it wait on
//! disk and come back in order, through consumers, `basic.get`, restarts,
//! purges and deletes. Run with a head of 64 messages so a few thousand
//! messages exercise what millions would.

mod common;

use std::time::Duration;

use futures_lite::StreamExt;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicGetOptions, BasicPublishOptions, BasicQosOptions,
    ConfirmSelectOptions, ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions, QueuePurgeOptions,
};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties, ExchangeKind};
use warren::config::Config;
use warren::server::Server;

const HEAD: usize = 64;

fn config(dir: &std::path::Path, tweak: impl FnOnce(&mut Config)) -> Config {
    let mut c = Config::default();
    c.metrics.listen = None;
    c.amqp.listen = "127.0.0.1:0".parse().unwrap();
    c.storage.data_dir = dir.to_path_buf();
    c.storage.queue_head_messages = HEAD;
    tweak(&mut c);
    c
}

struct Dir(std::path::PathBuf);

impl Dir {
    fn new() -> Dir {
        Dir(std::env::temp_dir().join(format!("warren-paging-{}-{}", std::process::id(), fastrand::u64(..))))
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

async fn connect(s: &Server) -> (Connection, Channel) {
    let conn =
        Connection::connect(&common::url(s.local_addr), ConnectionProperties::default()).await.unwrap();
    let ch = conn.create_channel().await.unwrap();
    ch.confirm_select(ConfirmSelectOptions::default()).await.unwrap();
    (conn, ch)
}

async fn declare(ch: &Channel, name: &str, durable: bool) -> u32 {
    let opts = QueueDeclareOptions { durable, ..Default::default() };
    ch.queue_declare(name.into(), opts, FieldTable::default()).await.unwrap().message_count()
}

/// Declares a durable queue with one integer argument; returns its message count.
async fn declare_args(ch: &Channel, name: &str, arg: &str, value: i32) -> u32 {
    let mut args = FieldTable::default();
    args.insert(arg.into(), lapin::types::AMQPValue::LongInt(value));
    let durable = QueueDeclareOptions { durable: true, ..Default::default() };
    ch.queue_declare(name.into(), durable, args).await.unwrap().message_count()
}

fn props(persistent: bool) -> BasicProperties {
    BasicProperties::default().with_delivery_mode(if persistent { 2 } else { 1 })
}

/// Publishes `m{from}`..`m{to}` with confirms, waiting for all of them at the end.
async fn publish(
    ch: &Channel,
    exchange: &str,
    key: &str,
    range: std::ops::Range<usize>,
    persistent: impl Fn(usize) -> bool,
) {
    publish_with(ch, exchange, key, range, |i| props(persistent(i))).await
}

/// Publishes `m{from}`..`m{to}` with the properties `props_of` gives each.
async fn publish_with(
    ch: &Channel,
    exchange: &str,
    key: &str,
    range: std::ops::Range<usize>,
    props_of: impl Fn(usize) -> BasicProperties,
) {
    let mut pending = Vec::new();
    for i in range {
        let body = format!("m{i}");
        let c = ch
            .basic_publish(
                exchange.into(),
                key.into(),
                BasicPublishOptions::default(),
                body.as_bytes(),
                props_of(i),
            )
            .await
            .unwrap();
        pending.push(c);
    }
    for c in pending {
        assert!(c.await.unwrap().is_ack());
    }
}

/// Consumes `n` messages with manual acks, returning their bodies in order.
async fn consume(conn: &Connection, queue: &str, n: usize) -> Vec<String> {
    let ch = conn.create_channel().await.unwrap();
    ch.basic_qos(50, BasicQosOptions::default()).await.unwrap();
    let mut c = ch
        .basic_consume(queue.into(), "".into(), BasicConsumeOptions::default(), FieldTable::default())
        .await
        .unwrap();
    let mut got = Vec::with_capacity(n);
    while got.len() < n {
        let d = tokio::time::timeout(Duration::from_secs(10), c.next())
            .await
            .unwrap_or_else(|_| panic!("only {} of {n} messages arrived", got.len()))
            .unwrap()
            .unwrap();
        got.push(String::from_utf8(d.data.clone()).unwrap());
        d.ack(BasicAckOptions::default()).await.unwrap();
    }
    ch.close(200, "done".into()).await.unwrap();
    got
}

/// Takes every message with `basic.get`, acking each.
async fn get_all(ch: &Channel, queue: &str) -> Vec<String> {
    let mut out = Vec::new();
    while let Some(m) = ch.basic_get(queue.into(), BasicGetOptions::default()).await.unwrap() {
        out.push(String::from_utf8(m.delivery.data.clone()).unwrap());
        ch.basic_ack(m.delivery.delivery_tag, BasicAckOptions::default()).await.unwrap();
    }
    out
}

/// Takes `n` messages with `basic.get` without acking them.
async fn get_all_unacked(ch: &Channel, queue: &str, n: usize) -> Vec<String> {
    let mut out = Vec::new();
    while out.len() < n {
        let m = ch.basic_get(queue.into(), BasicGetOptions::default()).await.unwrap().expect("a message");
        out.push(String::from_utf8(m.delivery.data.clone()).unwrap());
    }
    out
}

fn names(range: impl Iterator<Item = usize>) -> Vec<String> {
    range.map(|i| format!("m{i}")).collect()
}

/// How many messages and index entries the stopped broker left on disk.
fn on_disk(dir: &std::path::Path) -> (usize, usize) {
    let (messages, places) = common::stored(dir);
    let pages = pages_on_disk(dir);
    assert!(pages <= places, "{pages} pages left without a place");
    (messages, places)
}

/// How many pages a stopped broker left on disk.
fn pages_on_disk(dir: &std::path::Path) -> usize {
    use warren::store::Store;
    let store = warren::store::rocks::RocksStore::open(dir).unwrap();
    let r = store.load().unwrap();
    // Ids of messages kept apart, of queues, and of messages kept in their places.
    let mut max = r.queues.iter().map(|q| q.id).fold(r.max_message_id, u64::max);
    store.scan_index(&mut |queue, e| max = max.max(queue).max(e.message)).unwrap();
    pages_in(&store, max)
}

fn pages_in(store: &warren::store::rocks::RocksStore, max_id: u64) -> usize {
    use warren::store::Store;
    // Queue ids come from the same counter as message ids.
    (1..=max_id + 100).map(|q| store.read_pages(q, 0, usize::MAX).unwrap().len()).sum()
}

/// Restarts on `dir`: `queue` is empty and nothing is left on disk.
async fn restart_and_expect_nothing(dir: &std::path::Path, queue: &str) {
    let s = Server::start(config(dir, |_| {})).await.unwrap();
    let (_conn, ch) = connect(&s).await;
    assert_eq!(declare(&ch, queue, true).await, 0);
    s.stop().await;
    assert_eq!(on_disk(dir), (0, 0));
}

fn in_memory(s: &Server, queue: &str) -> usize {
    s.broker.vhost("/").unwrap().queue(queue).unwrap().in_memory()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deep_durable_queue_keeps_only_its_head_in_memory_and_delivers_in_order() {
    let dir = Dir::new();
    let s = Server::start(config(&dir.0, |_| {})).await.unwrap();
    let (conn, ch) = connect(&s).await;
    declare(&ch, "deep", true).await;
    // Every third message transient: once the queue pages out, they go to disk too, in their place.
    publish(&ch, "", "deep", 0..5000, |i| i % 3 != 0).await;
    assert!(in_memory(&s, "deep") <= HEAD, "{} messages in memory", in_memory(&s, "deep"));
    assert_eq!(declare(&ch, "deep", true).await, 5000);
    assert_eq!(consume(&conn, "deep", 2000).await, names(0..2000));
    // What is left comes back through basic.get too, which waits for pages when the head runs dry.
    assert_eq!(get_all(&ch, "deep").await, names(2000..5000));
    assert_eq!(declare(&ch, "deep", true).await, 0);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_reads_back_only_the_head_and_drops_transient_pages() {
    let dir = Dir::new();
    let s = Server::start(config(&dir.0, |_| {})).await.unwrap();
    let (conn, ch) = connect(&s).await;
    declare(&ch, "deep", true).await;
    publish(&ch, "", "deep", 0..3000, |i| i % 3 != 0).await;
    assert_eq!(consume(&conn, "deep", 10).await, names(0..10));
    s.stop().await;

    // A smaller head this time: places that were in memory before are now paged out.
    let s = Server::start(config(&dir.0, |c| c.storage.queue_head_messages = 16)).await.unwrap();
    assert!(in_memory(&s, "deep") <= 16, "recovery loaded {} messages", in_memory(&s, "deep"));
    let (conn, ch) = connect(&s).await;
    let persistent: Vec<String> = names((10..3000).filter(|i| i % 3 != 0));
    assert_eq!(declare(&ch, "deep", true).await as usize, persistent.len());
    // New messages go after the recovered ones.
    publish(&ch, "", "deep", 3000..3010, |_| true).await;
    let mut want = persistent;
    want.extend(names(3000..3010));
    assert_eq!(consume(&conn, "deep", want.len()).await, want);
    s.stop().await;

    // Everything acked: nothing comes back.
    restart_and_expect_nothing(&dir.0, "deep").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transient_messages_page_out_under_memory_pressure() {
    let dir = Dir::new();
    // Paging from the first byte of memory on; the alarm itself stays far away.
    let s = Server::start(config(&dir.0, |c| c.memory.paging_ratio = 0.0)).await.unwrap();
    let store = s.broker.vhost("/").unwrap().store().cloned().unwrap();
    for _ in 0..100 {
        if store.under_pressure() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(store.under_pressure(), "the monitor never reported memory pressure");
    let (conn, ch) = connect(&s).await;
    declare(&ch, "scratch", false).await;
    publish(&ch, "", "scratch", 0..3000, |_| false).await;
    assert!(in_memory(&s, "scratch") <= HEAD, "{} messages in memory", in_memory(&s, "scratch"));
    assert_eq!(consume(&conn, "scratch", 3000).await, names(0..3000));

    // A purge drops the paged-out part too; later messages are not mixed with purged ones.
    publish(&ch, "", "scratch", 0..1000, |_| false).await;
    let purged = ch.queue_purge("scratch".into(), QueuePurgeOptions::default()).await.unwrap();
    assert_eq!(purged, 1000);
    publish(&ch, "", "scratch", 5000..5100, |_| false).await;
    assert_eq!(get_all(&ch, "scratch").await, names(5000..5100));

    // Deleting a queue that paged out leaves none of its pages behind, even
    // those already read back into memory.
    declare(&ch, "scratch2", false).await;
    publish(&ch, "", "scratch2", 0..1000, |_| false).await;
    let _held = get_all_unacked(&ch, "scratch2", 100).await;
    ch.queue_delete("scratch2".into(), Default::default()).await.unwrap();
    s.stop().await;
    assert_eq!(on_disk(&dir.0), (0, 0), "a deleted non-durable queue left pages behind");

    // Transient pages do not survive a restart, nor does the queue.
    let s = Server::start(config(&dir.0, |_| {})).await.unwrap();
    assert!(s.broker.vhost("/").unwrap().queue("scratch").is_none());
    s.stop().await;
    assert_eq!(on_disk(&dir.0), (0, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_shared_by_deep_queues_lives_until_the_last_lets_go() {
    let dir = Dir::new();
    let s = Server::start(config(&dir.0, |_| {})).await.unwrap();
    let (conn, ch) = connect(&s).await;
    let durable = ExchangeDeclareOptions { durable: true, ..Default::default() };
    ch.exchange_declare("fan".into(), ExchangeKind::Fanout, durable, FieldTable::default()).await.unwrap();
    for q in ["left", "right"] {
        declare(&ch, q, true).await;
        ch.queue_bind(q.into(), "fan".into(), "".into(), QueueBindOptions::default(), FieldTable::default())
            .await
            .unwrap();
    }
    publish(&ch, "fan", "", 0..1000, |_| true).await;
    assert_eq!(consume(&conn, "left", 1000).await, names(0..1000));
    s.stop().await;

    let s = Server::start(config(&dir.0, |_| {})).await.unwrap();
    let (conn, ch) = connect(&s).await;
    assert_eq!(declare(&ch, "left", true).await, 0);
    assert_eq!(consume(&conn, "right", 1000).await, names(0..1000));
    s.stop().await;

    restart_and_expect_nothing(&dir.0, "right").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn purging_or_deleting_a_deep_durable_queue_leaves_nothing_behind() {
    let dir = Dir::new();
    let s = Server::start(config(&dir.0, |_| {})).await.unwrap();
    let (_conn, ch) = connect(&s).await;
    declare(&ch, "purged", true).await;
    declare(&ch, "deleted", true).await;
    publish(&ch, "", "purged", 0..2000, |_| true).await;
    publish(&ch, "", "deleted", 0..2000, |_| true).await;
    assert_eq!(ch.queue_purge("purged".into(), QueuePurgeOptions::default()).await.unwrap(), 2000);
    assert_eq!(ch.queue_delete("deleted".into(), Default::default()).await.unwrap(), 2000);
    publish(&ch, "", "purged", 2000..2010, |_| true).await;
    s.stop().await;

    let s = Server::start(config(&dir.0, |_| {})).await.unwrap();
    assert!(s.broker.vhost("/").unwrap().queue("deleted").is_none());
    s.stop().await;
    assert_eq!(on_disk(&dir.0), (10, 10), "only the 10 messages published after the purge are on disk");

    let s = Server::start(config(&dir.0, |_| {})).await.unwrap();
    let (_conn, ch) = connect(&s).await;
    assert_eq!(get_all(&ch, "purged").await, names(2000..2010));
    s.stop().await;
    assert_eq!(on_disk(&dir.0), (0, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deep_priority_queue_pages_each_priority_and_keeps_the_order() {
    let dir = Dir::new();
    let s = Server::start(config(&dir.0, |_| {})).await.unwrap();
    let (conn, ch) = connect(&s).await;
    declare_args(&ch, "ranked", "x-max-priority", 4).await;
    // Priorities 0..=5 in turn (5 counts as 4), 1200 messages: most of every lane is paged out.
    publish_with(&ch, "", "ranked", 0..1200, |i| props(true).with_priority((i % 6) as u8)).await;
    assert!(in_memory(&s, "ranked") <= HEAD + 5, "{} messages in memory", in_memory(&s, "ranked"));
    let expected: Vec<String> = {
        let mut by_priority: Vec<(usize, usize)> = (0..1200).map(|i| ((i % 6).min(4), i)).collect();
        by_priority.sort_by_key(|(p, i)| (std::cmp::Reverse(*p), *i));
        by_priority.into_iter().map(|(_, i)| format!("m{i}")).collect()
    };
    assert_eq!(consume(&conn, "ranked", 300).await, expected[..300]);
    s.stop().await;

    // After a restart the rest comes back in the same order.
    let s = Server::start(config(&dir.0, |_| {})).await.unwrap();
    // The head, plus a batch (at most 256) of the highest priority, which is all on disk.
    assert!(in_memory(&s, "ranked") <= HEAD + 256, "recovery loaded {} messages", in_memory(&s, "ranked"));
    let (conn, ch) = connect(&s).await;
    assert_eq!(consume(&conn, "ranked", 600).await, expected[300..900]);
    // A purge leaves nothing of any lane behind.
    assert_eq!(ch.queue_purge("ranked".into(), QueuePurgeOptions::default()).await.unwrap(), 300);
    s.stop().await;
    assert_eq!(on_disk(&dir.0), (0, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn settled_pages_still_waiting_for_their_range_never_come_back() {
    let dir = Dir::new();
    let s = Server::start(config(&dir.0, |_| {})).await.unwrap();
    let (conn, ch) = connect(&s).await;
    declare(&ch, "deep", true).await;
    publish(&ch, "", "deep", 0..1000, |_| true).await;
    // Acked one by one, far fewer than a range's worth, with live pages
    // behind them: their pages wait on disk for a range when it stops.
    assert_eq!(consume(&conn, "deep", 500).await, names(0..500));
    s.stop().await;
    let pages = pages_on_disk(&dir.0);
    assert!(pages > 1000 - 500 - HEAD, "{pages} pages: none waited for a range");

    // Recovery deletes them: below the read-back frontier, without a place.
    let s = Server::start(config(&dir.0, |_| {})).await.unwrap();
    s.stop().await;
    let (_, places) = on_disk(&dir.0);
    assert_eq!(places, 500);
    let s = Server::start(config(&dir.0, |_| {})).await.unwrap();
    let (conn, ch) = connect(&s).await;
    assert_eq!(consume(&conn, "deep", 500).await, names(500..1000));
    assert_eq!(declare(&ch, "deep", true).await, 0);
    s.stop().await;
    assert_eq!(on_disk(&dir.0), (0, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paged_out_high_priorities_overtake_a_head_full_of_low_ones() {
    let dir = Dir::new();
    let s = Server::start(config(&dir.0, |_| {})).await.unwrap();
    let (conn, ch) = connect(&s).await;
    declare_args(&ch, "urgent", "x-max-priority", 4).await;
    publish(&ch, "", "urgent", 0..500, |_| true).await;
    // The head is full of priority 0: these are paged out at once, in lane 4.
    publish_with(&ch, "", "urgent", 500..600, |_| props(true).with_priority(4)).await;
    let mut want = names(500..600);
    want.extend(names(0..500));
    assert_eq!(consume(&conn, "urgent", 600).await, want);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_length_limit_holds_when_everything_is_paged_out() {
    let dir = Dir::new();
    let s = Server::start(config(&dir.0, |_| {})).await.unwrap();
    let (_conn, ch) = connect(&s).await;
    declare_args(&ch, "bounded", "x-max-length", 100).await;
    // A head of 64 and a limit of 100: most of the queue is on disk, and
    // drop-head must still drop, from disk if need be.
    publish(&ch, "", "bounded", 0..2000, |_| true).await;
    let mut count = 0;
    for _ in 0..200 {
        count = declare_args(&ch, "bounded", "x-max-length", 100).await;
        if count == 100 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(count, 100);
    assert_eq!(get_all(&ch, "bounded").await, names(1900..2000));
    s.stop().await;
    assert_eq!(on_disk(&dir.0), (0, 0));
}

/// Takes every message with `basic.get`, acking each: (body, redelivered).
async fn get_all_flagged(ch: &Channel, queue: &str) -> Vec<(String, bool)> {
    let mut out = Vec::new();
    while let Some(m) = ch.basic_get(queue.into(), BasicGetOptions::default()).await.unwrap() {
        out.push((String::from_utf8(m.delivery.data.clone()).unwrap(), m.delivery.redelivered));
        ch.basic_ack(m.delivery.delivery_tag, BasicAckOptions::default()).await.unwrap();
    }
    out
}

/// A one-lane queue remembers its deliveries with one mark (`Op::Delivered`),
/// paged-out ones too; a priority queue marks each place. After a restart
/// exactly the delivered, unacked messages come back redelivered, and
/// messages published after a restart that found the queue empty are not
/// taken for delivered ones (new seqs start past the mark).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delivered_unacked_messages_come_back_redelivered_paged_out_or_not() {
    let dir = Dir::new();
    let s = Server::start(config(&dir.0, |_| {})).await.unwrap();
    let (conn, ch) = connect(&s).await;
    // (queue, messages, taken): five heads' worth, most of them delivered
    // from pages, and a queue that never pages out (nothing but its mark
    // tells where its seqs went).
    let queues = [("deep", 5 * HEAD, 3 * HEAD), ("prio", 5 * HEAD, 3 * HEAD), ("small", HEAD / 2, HEAD / 4)];
    declare(&ch, "deep", true).await;
    declare_args(&ch, "prio", "x-max-priority", 3).await;
    declare(&ch, "small", true).await;
    for (q, n, _) in queues {
        publish(&ch, "", q, 0..n, |_| true).await;
    }
    let held = conn.create_channel().await.unwrap();
    for (q, _, taken) in queues {
        assert_eq!(get_all_unacked(&held, q, taken).await, names(0..taken));
    }
    s.stop().await;

    let expect = |range: std::ops::Range<usize>, redelivered: bool| -> Vec<(String, bool)> {
        names(range).into_iter().map(|n| (n, redelivered)).collect()
    };
    let s = Server::start(config(&dir.0, |_| {})).await.unwrap();
    let (_conn, ch) = connect(&s).await;
    for (q, n, taken) in queues {
        let mut want = expect(0..taken, true);
        want.extend(expect(taken..n, false));
        assert_eq!(get_all_flagged(&ch, q).await, want, "{q}");
    }
    s.stop().await;

    // Every queue empty now: the next messages are new ones.
    let s = Server::start(config(&dir.0, |_| {})).await.unwrap();
    let (_conn, ch) = connect(&s).await;
    for (q, n, _) in queues {
        publish(&ch, "", q, n..n + 10, |_| true).await;
    }
    s.stop().await;
    let s = Server::start(config(&dir.0, |_| {})).await.unwrap();
    let (_conn, ch) = connect(&s).await;
    for (q, n, _) in queues {
        assert_eq!(get_all_flagged(&ch, q).await, expect(n..n + 10, false), "{q}");
    }
    s.stop().await;
    restart_and_expect_nothing(&dir.0, "deep").await;
}
