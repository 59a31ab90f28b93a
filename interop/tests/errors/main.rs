//! Channel and connection errors: reply codes, reply texts, and what stays usable.

#[path = "../common/mod.rs"]
mod common;

use common::*;
use futures_lite::StreamExt;
use lapin::{
    options::{
        BasicAckOptions, BasicConsumeOptions, BasicGetOptions, ExchangeDeclareOptions, ExchangeDeleteOptions,
        QueueBindOptions, QueueDeclareOptions, QueueDeleteOptions, QueuePurgeOptions,
    },
    protocol::AMQPErrorKind,
    types::{AMQPValue, FieldTable, LongString},
    Channel, Connection, ErrorKind, ExchangeKind,
};

mod equivalence;
mod exclusive;
mod missing;

fn exclusive() -> QueueDeclareOptions {
    QueueDeclareOptions { exclusive: true, ..Default::default() }
}

fn passive_q() -> QueueDeclareOptions {
    QueueDeclareOptions { passive: true, ..Default::default() }
}

fn passive_x() -> ExchangeDeclareOptions {
    ExchangeDeclareOptions { passive: true, ..Default::default() }
}

/// Assert the channel is closed locally and further use fails without a round trip.
async fn assert_channel_closed(ch: &Channel) {
    within("channel closed state", async {
        while ch.status().connected() {
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    })
    .await;
    let err = within(
        "declare on a closed channel",
        ch.queue_declare("".into(), exclusive(), FieldTable::default()),
    )
    .await
    .expect_err("a closed channel must refuse commands");
    assert!(
        matches!(err.kind(), ErrorKind::InvalidChannelState(..)),
        "unexpected error on closed channel: {err:?}"
    );
}

/// Assert the connection is still fully usable on a fresh channel.
async fn assert_connection_usable(conn: &Connection) {
    assert!(conn.status().connected(), "connection should survive a channel error");
    let ch = channel(conn).await;
    let q = temp_queue(&ch).await;
    publish(&ch, "", &q, b"still works").await;
    assert_eq!(get_eventually(&ch, &q).await.delivery.data, b"still works");
    within("channel.close", ch.close(200, "ok".into())).await.unwrap();
}
