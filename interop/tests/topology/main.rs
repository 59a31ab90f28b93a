//! Exchange and queue declaration, deletion, binding, purging.

#[path = "../common/mod.rs"]
mod common;

use common::*;
use lapin::{
    options::{
        BasicCancelOptions, ExchangeBindOptions, ExchangeDeclareOptions, ExchangeDeleteOptions,
        ExchangeUnbindOptions, QueueDeclareOptions, QueueDeleteOptions, QueuePurgeOptions,
    },
    types::FieldTable,
    Channel, ExchangeKind,
};

mod exchanges;
mod predeclared;
mod queues;

async fn delete_exchange(ch: &Channel, name: &str) {
    within("exchange.delete", ch.exchange_delete(name.into(), ExchangeDeleteOptions::default()))
        .await
        .unwrap_or_else(|e| panic!("exchange.delete {name}: {e}"));
}

fn passive() -> ExchangeDeclareOptions {
    ExchangeDeclareOptions { passive: true, ..Default::default() }
}
