//! Declaring, publishing, consuming, getting and acknowledging through lapin,
//! every wait bounded by [`TIMEOUT`].

use super::*;

/// Declare a server-named, exclusive queue and return its name.
pub async fn temp_queue(ch: &Channel) -> String {
    let q = within(
        "queue.declare (server-named)",
        ch.queue_declare(
            "".into(),
            QueueDeclareOptions { exclusive: true, ..Default::default() },
            FieldTable::default(),
        ),
    )
    .await
    .expect("queue.declare");
    q.name().to_string()
}

/// Declare a named, non-exclusive queue that the test must delete.
pub async fn named_queue(ch: &Channel, name: &str) {
    within(
        "queue.declare",
        ch.queue_declare(name.into(), QueueDeclareOptions::default(), FieldTable::default()),
    )
    .await
    .expect("queue.declare");
}

pub async fn delete_queue(ch: &Channel, name: &str) {
    within("queue.delete", ch.queue_delete(name.into(), QueueDeleteOptions::default()))
        .await
        .expect("queue.delete");
}

pub async fn declare_exchange(
    ch: &Channel,
    name: &str,
    kind: lapin::ExchangeKind,
    opts: lapin::options::ExchangeDeclareOptions,
) {
    within("exchange.declare", ch.exchange_declare(name.into(), kind, opts, FieldTable::default()))
        .await
        .unwrap_or_else(|e| panic!("exchange.declare {name}: {e}"));
}

pub async fn bind(ch: &Channel, queue: &str, exchange: &str, key: &str) {
    bind_args(ch, queue, exchange, key, FieldTable::default()).await
}

pub async fn bind_args(ch: &Channel, queue: &str, exchange: &str, key: &str, args: FieldTable) {
    within("queue.bind", ch.queue_bind(queue.into(), exchange.into(), key.into(), Default::default(), args))
        .await
        .unwrap_or_else(|e| panic!("queue.bind {queue} -> {exchange} ({key:?}): {e}"));
}

/// Publish without confirms.
pub async fn publish(ch: &Channel, exchange: &str, key: &str, body: &[u8]) {
    publish_props(ch, exchange, key, body, BasicProperties::default()).await
}

pub async fn publish_props(ch: &Channel, exchange: &str, key: &str, body: &[u8], props: BasicProperties) {
    let confirm = within(
        "basic.publish",
        ch.basic_publish(exchange.into(), key.into(), BasicPublishOptions::default(), body, props),
    )
    .await
    .expect("basic.publish");
    within("publisher confirm", confirm).await.expect("publisher confirm");
}

/// Put the channel in confirm mode.
pub async fn confirm_select(ch: &Channel) {
    within("confirm.select", ch.confirm_select(ConfirmSelectOptions::default()))
        .await
        .expect("confirm.select");
}

/// Publish on a channel in confirm mode and return the broker's confirmation.
pub async fn publish_confirmed(
    ch: &Channel,
    exchange: &str,
    key: &str,
    options: BasicPublishOptions,
    body: &[u8],
    props: BasicProperties,
) -> Confirmation {
    let confirm =
        within("basic.publish", ch.basic_publish(exchange.into(), key.into(), options, body, props))
            .await
            .expect("basic.publish");
    within("publisher confirm", confirm).await.expect("publisher confirm")
}

/// Start a consumer with a server-generated tag.
pub async fn consume(ch: &Channel, queue: &str, no_ack: bool) -> Consumer {
    within(
        "basic.consume",
        ch.basic_consume(
            queue.into(),
            "".into(),
            BasicConsumeOptions { no_ack, ..Default::default() },
            FieldTable::default(),
        ),
    )
    .await
    .expect("basic.consume")
}

/// Next delivery of a consumer, bounded by [`TIMEOUT`].
pub async fn next_delivery(consumer: &mut Consumer) -> Delivery {
    within("basic.deliver", consumer.next())
        .await
        .expect("consumer stream ended (cancelled?)")
        .expect("delivery error")
}

/// Assert that no delivery arrives for [`QUIET`].
pub async fn assert_no_delivery(consumer: &mut Consumer) {
    if let Ok(item) = tokio::time::timeout(QUIET, consumer.next()).await {
        match item {
            Some(Ok(d)) => panic!(
                "unexpected delivery: routing key {:?}, body {:?}",
                d.routing_key.as_str(),
                String::from_utf8_lossy(&d.data)
            ),
            Some(Err(e)) => panic!("unexpected consumer error: {e}"),
            None => panic!("consumer unexpectedly cancelled"),
        }
    }
}

/// Collect every delivery that arrives until the consumer is quiet for [`QUIET`].
pub async fn drain(consumer: &mut Consumer) -> Vec<Delivery> {
    let mut out = Vec::new();
    let deadline = tokio::time::Instant::now() + TIMEOUT;
    while let Ok(Some(item)) = tokio::time::timeout(QUIET, consumer.next()).await {
        out.push(item.expect("delivery error"));
        assert!(tokio::time::Instant::now() < deadline, "consumer never went quiet");
    }
    out
}

/// basic.get with auto-ack.
pub async fn get(ch: &Channel, queue: &str) -> Option<BasicGetMessage> {
    get_opts(ch, queue, true).await
}

pub async fn get_opts(ch: &Channel, queue: &str, no_ack: bool) -> Option<BasicGetMessage> {
    within("basic.get", ch.basic_get(queue.into(), BasicGetOptions { no_ack })).await.expect("basic.get")
}

/// Poll a queue with basic.get until a message shows up (messages routed by a
/// publish on another channel are not necessarily enqueued yet).
pub async fn get_eventually(ch: &Channel, queue: &str) -> BasicGetMessage {
    within("message to arrive via basic.get", async {
        loop {
            if let Some(m) = get(ch, queue).await {
                return m;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
}

/// Like [`get_eventually`], but the message stays unacked (to be acked,
/// rejected or nacked by the test).
pub async fn get_manual_eventually(ch: &Channel, queue: &str) -> BasicGetMessage {
    within("message to arrive via basic.get", async {
        loop {
            if let Some(m) = get_opts(ch, queue, false).await {
                return m;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
}

/// basic.ack of one delivery (bounded).
pub async fn ack(d: &Delivery) {
    let ok = within("basic.ack", d.acker.ack(lapin::options::BasicAckOptions::default()))
        .await
        .expect("basic.ack");
    assert!(ok, "acker already used or poisoned");
}

/// basic.reject of one delivery (bounded).
pub async fn reject(d: &Delivery, requeue: bool) {
    let ok = within("basic.reject", d.acker.reject(lapin::options::BasicRejectOptions { requeue }))
        .await
        .expect("basic.reject");
    assert!(ok, "acker already used or poisoned");
}

/// basic.nack of one delivery (bounded).
pub async fn nack(d: &Delivery, requeue: bool) {
    let ok =
        within("basic.nack", d.acker.nack(lapin::options::BasicNackOptions { requeue, multiple: false }))
            .await
            .expect("basic.nack");
    assert!(ok, "acker already used or poisoned");
}

/// Body of a delivery as a UTF-8 string.
pub fn body(d: &Delivery) -> String {
    String::from_utf8(d.data.clone()).expect("utf-8 body")
}

/// Sorted bodies of deliveries.
pub fn sorted_bodies(ds: &[Delivery]) -> Vec<String> {
    let mut v: Vec<String> = ds.iter().map(body).collect();
    v.sort();
    v
}

/// basic.ack of `tag` (and, with `multiple`, everything before it).
pub async fn ack_tag(ch: &Channel, tag: u64, multiple: bool) {
    within("basic.ack", ch.basic_ack(tag, lapin::options::BasicAckOptions { multiple }))
        .await
        .expect("basic.ack");
}

/// Publishes `n` messages with bodies "0", "1", … to queue `q`.
pub async fn fill(ch: &Channel, q: &str, n: usize) {
    for i in 0..n {
        publish(ch, "", q, format!("{i}").as_bytes()).await;
    }
}

/// Waits until the queue has `n` ready messages (publishes are asynchronous).
pub async fn wait_ready(conn: &Connection, q: &str, n: u32) {
    eventually(&format!("{n} messages ready in {q}"), || async {
        queue_exists(conn, q).await.map(|(m, _)| m) == Some(n)
    })
    .await;
}
