//! Acknowledgements: ack/nack/reject (single, multiple, tag 0), bad tags,
//! requeue position, unacked messages of closed channels/connections and of a
//! consumer whose socket dies, basic.recover, basic.get, competing consumers,
//! exclusive consumers, auto-delete on last cancel, server-initiated cancel.

#[path = "../common/mod.rs"]
mod common;

use common::*;
use futures_lite::StreamExt;
use lapin::{
    message::Delivery,
    options::{
        BasicAckOptions, BasicCancelOptions, BasicConsumeOptions, BasicNackOptions, BasicQosOptions,
        BasicRecoverAsyncOptions, BasicRecoverOptions, BasicRejectOptions, QueueDeclareOptions,
        QueuePurgeOptions,
    },
    types::FieldTable,
    Channel, Consumer,
};
use std::{
    collections::{BTreeMap, BTreeSet},
    sync::{Arc, Mutex},
    time::Duration,
};

mod consumers;
mod recovery;
mod settle;

async fn nack_tag(ch: &Channel, tag: u64, multiple: bool, requeue: bool) {
    within("basic.nack", ch.basic_nack(tag, BasicNackOptions { multiple, requeue }))
        .await
        .expect("basic.nack");
}

async fn reject_tag(ch: &Channel, tag: u64, requeue: bool) {
    within("basic.reject", ch.basic_reject(tag, BasicRejectOptions { requeue })).await.expect("basic.reject");
}

async fn take(consumer: &mut Consumer, n: usize) -> Vec<Delivery> {
    let mut v = Vec::with_capacity(n);
    for _ in 0..n {
        v.push(next_delivery(consumer).await);
    }
    v
}

/// basic.get with manual ack, polling until a message shows up.
async fn get_ack_eventually(ch: &Channel, q: &str) -> lapin::message::BasicGetMessage {
    within("basic.get (manual ack)", async {
        loop {
            if let Some(m) = get_opts(ch, q, false).await {
                return m;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
}

async fn consume_opts(
    ch: &Channel,
    q: &str,
    tag: &str,
    options: BasicConsumeOptions,
) -> lapin::Result<Consumer> {
    within("basic.consume", ch.basic_consume(q.into(), tag.into(), options, FieldTable::default())).await
}
