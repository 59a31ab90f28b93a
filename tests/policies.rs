//! Policies and operator policies applied live: set on the broker's vhost
//! (as the admin API will), checked through a real client (lapin).

mod common;

use std::time::Duration;

use lapin::options::{
    BasicGetOptions, BasicPublishOptions, BasicRejectOptions, ConfirmSelectOptions, ExchangeDeclareOptions,
    QueueBindOptions, QueueDeclareOptions,
};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties, ExchangeKind};
use serde_json::{json, Value};
use warren::broker::policy::{ApplyTo, Kind, Policy, Source};
use warren::config::Config;
use warren::server::Server;

async fn connect(s: &Server) -> (Connection, Channel) {
    let conn =
        Connection::connect(&common::url(s.local_addr), ConnectionProperties::default()).await.unwrap();
    let ch = conn.create_channel().await.unwrap();
    ch.confirm_select(ConfirmSelectOptions::default()).await.unwrap();
    (conn, ch)
}

fn args(pairs: &[(&str, AMQPValue)]) -> FieldTable {
    let mut t = FieldTable::default();
    for (k, v) in pairs {
        t.insert((*k).into(), v.clone());
    }
    t
}

/// Sets a policy on `/` as the admin API would.
fn set(s: &Server, kind: Kind, name: &str, pattern: &str, apply_to: ApplyTo, def: Value) {
    let p = Policy::parse(name, pattern, apply_to, 0, &def, kind).unwrap();
    s.broker.vhost("/").unwrap().set_policy(p, kind).unwrap();
}

fn clear(s: &Server, kind: Kind, name: &str) {
    assert!(s.broker.vhost("/").unwrap().clear_policy(name, kind));
}

async fn declare(ch: &Channel, name: &str, arguments: FieldTable) {
    ch.queue_declare(name.into(), QueueDeclareOptions::default(), arguments).await.unwrap();
}

/// Publishes and waits for the confirm; true if it was an ack.
async fn publish(ch: &Channel, exchange: &str, key: &str, body: &str) -> bool {
    let opts = BasicPublishOptions::default();
    let confirm =
        ch.basic_publish(exchange.into(), key.into(), opts, body.as_bytes(), BasicProperties::default());
    confirm.await.unwrap().await.unwrap().is_ack()
}

async fn publish_n(ch: &Channel, queue: &str, n: usize) {
    for i in 1..=n {
        publish(ch, "", queue, &format!("m{i}")).await;
    }
}

async fn drain(ch: &Channel, queue: &str) -> Vec<String> {
    let mut out = Vec::new();
    while let Some(m) = ch.basic_get(queue.into(), BasicGetOptions { no_ack: true }).await.unwrap() {
        out.push(String::from_utf8(m.delivery.data.clone()).unwrap());
    }
    out
}

async fn count(ch: &Channel, queue: &str) -> u32 {
    let opts = QueueDeclareOptions { passive: true, ..Default::default() };
    ch.queue_declare(queue.into(), opts, FieldTable::default()).await.unwrap().message_count()
}

/// Waits (up to 5 s) for `queue` to hold a message; returns it.
async fn wait_for(ch: &Channel, queue: &str) -> lapin::message::BasicGetMessage {
    tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            if let Some(m) = ch.basic_get(queue.into(), BasicGetOptions { no_ack: true }).await.unwrap() {
                return m;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("a message arrived")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_max_length_policy_trims_an_existing_queue_at_once_and_clearing_reverts() {
    let s = common::start().await;
    let (_conn, ch) = connect(&s).await;
    declare(&ch, "pol-q", FieldTable::default()).await;
    publish_n(&ch, "pol-q", 10).await;
    set(&s, Kind::User, "cap", "^pol-", ApplyTo::Queues, json!({"max-length": 4}));
    assert_eq!(count(&ch, "pol-q").await, 4);
    let q = s.broker.vhost("/").unwrap().queue("pol-q").unwrap();
    assert_eq!(q.policy_name().as_deref(), Some("cap"));
    assert_eq!(q.effective().sources.max_length, Some(Source::Policy("cap".into())));
    assert_eq!(Value::Object(q.effective_policy_definition()), json!({"max-length": 4}));
    publish(&ch, "", "pol-q", "m11").await;
    assert_eq!(drain(&ch, "pol-q").await, ["m8", "m9", "m10", "m11"]);
    // Cleared: no limit but the arguments' (none).
    clear(&s, Kind::User, "cap");
    publish_n(&ch, "pol-q", 6).await;
    assert_eq!((count(&ch, "pol-q").await, q.policy_name()), (6, None));
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn arguments_keep_their_overflow_and_the_lower_length_wins() {
    let s = common::start().await;
    let (_conn, ch) = connect(&s).await;
    set(
        &s,
        Kind::User,
        "five",
        "^pol-",
        ApplyTo::All,
        json!({"max-length": 5, "overflow": "reject-publish"}),
    );
    let a = args(&[
        ("x-max-length", AMQPValue::LongInt(3)),
        ("x-overflow", AMQPValue::LongString("drop-head".into())),
    ]);
    declare(&ch, "pol-mixed", a).await;
    for i in 1..=10 {
        assert!(publish(&ch, "", "pol-mixed", &format!("m{i}")).await, "drop-head never refuses");
    }
    // As RabbitMQ 3.10 does: the minimum length (3), the argument's overflow (drop-head).
    assert_eq!(drain(&ch, "pol-mixed").await, ["m8", "m9", "m10"]);
    // Without arguments, the policy's overflow: refused once full.
    declare(&ch, "pol-plain", FieldTable::default()).await;
    let mut acks = Vec::new();
    for i in 1..=6 {
        acks.push(publish(&ch, "", "pol-plain", &format!("m{i}")).await);
    }
    assert_eq!(acks, [true, true, true, true, true, false]);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_ttl_policy_expires_messages_published_afterwards() {
    let s = common::start().await;
    let (_conn, ch) = connect(&s).await;
    declare(&ch, "pol-ttl", FieldTable::default()).await;
    publish(&ch, "", "pol-ttl", "before").await;
    set(&s, Kind::User, "ttl", "^pol-ttl$", ApplyTo::Queues, json!({"message-ttl": 100}));
    publish(&ch, "", "pol-ttl", "after").await;
    tokio::time::sleep(Duration::from_millis(400)).await;
    // As in RabbitMQ, a message's expiry is fixed when it arrives.
    assert_eq!(drain(&ch, "pol-ttl").await, ["before"]);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_letter_exchange_from_a_policy_takes_rejected_messages() {
    let s = common::start().await;
    let (_conn, ch) = connect(&s).await;
    declare(&ch, "pol-work", FieldTable::default()).await;
    declare(&ch, "pol-dead", FieldTable::default()).await;
    publish(&ch, "", "pol-work", "bad").await;
    set(
        &s,
        Kind::User,
        "dlx",
        "^pol-work$",
        ApplyTo::Queues,
        json!({"dead-letter-exchange": "", "dead-letter-routing-key": "pol-dead"}),
    );
    let m = ch.basic_get("pol-work".into(), BasicGetOptions { no_ack: false }).await.unwrap().unwrap();
    m.delivery.reject(BasicRejectOptions { requeue: false }).await.unwrap();
    let dead = wait_for(&ch, "pol-dead").await;
    assert_eq!(dead.delivery.data, b"bad");
    let headers = dead.delivery.properties.headers().clone().unwrap();
    assert!(headers.inner().contains_key("x-death"));
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delivery_limit_from_a_policy_counts_later_returns() {
    let s = common::start().await;
    let (_conn, ch) = connect(&s).await;
    declare(&ch, "pol-retry", FieldTable::default()).await;
    declare(&ch, "pol-gave-up", FieldTable::default()).await;
    publish(&ch, "", "pol-retry", "flaky").await;
    let def =
        json!({"delivery-limit": 1, "dead-letter-exchange": "", "dead-letter-routing-key": "pol-gave-up"});
    set(&s, Kind::User, "retry", "^pol-retry$", ApplyTo::Queues, def);
    for _ in 0..2 {
        let m = ch.basic_get("pol-retry".into(), BasicGetOptions { no_ack: false }).await.unwrap().unwrap();
        m.delivery.reject(BasicRejectOptions { requeue: true }).await.unwrap();
    }
    assert_eq!(wait_for(&ch, "pol-gave-up").await.delivery.data, b"flaky");
    assert_eq!(count(&ch, "pol-retry").await, 0);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_alternate_exchange_from_a_policy_takes_unroutable_messages() {
    let s = common::start().await;
    let (_conn, ch) = connect(&s).await;
    let opts = ExchangeDeclareOptions::default();
    ch.exchange_declare("pol-ex".into(), ExchangeKind::Direct, opts, FieldTable::default()).await.unwrap();
    ch.exchange_declare("pol-ae".into(), ExchangeKind::Fanout, opts, FieldTable::default()).await.unwrap();
    declare(&ch, "pol-caught", FieldTable::default()).await;
    let bind = QueueBindOptions::default();
    ch.queue_bind("pol-caught".into(), "pol-ae".into(), "".into(), bind, FieldTable::default())
        .await
        .unwrap();
    publish(&ch, "pol-ex", "nowhere", "lost").await;
    set(&s, Kind::User, "ae", "^pol-ex$", ApplyTo::Exchanges, json!({"alternate-exchange": "pol-ae"}));
    publish(&ch, "pol-ex", "nowhere", "caught").await;
    assert_eq!(drain(&ch, "pol-caught").await, ["caught"]);
    assert!(s.broker.vhost("/").unwrap().queue("pol-caught").unwrap().policy_name().is_none());
    clear(&s, Kind::User, "ae");
    publish(&ch, "pol-ex", "nowhere", "lost again").await;
    assert_eq!(count(&ch, "pol-caught").await, 0);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_policy_caps_the_users_and_the_arguments() {
    let s = common::start().await;
    let (_conn, ch) = connect(&s).await;
    declare(&ch, "pol-capped", args(&[("x-max-length", AMQPValue::LongInt(10))])).await;
    set(&s, Kind::User, "user", ".*", ApplyTo::All, json!({"max-length": 6}));
    set(&s, Kind::Operator, "op", ".*", ApplyTo::Queues, json!({"max-length": 3}));
    publish_n(&ch, "pol-capped", 10).await;
    assert_eq!(count(&ch, "pol-capped").await, 3);
    let q = s.broker.vhost("/").unwrap().queue("pol-capped").unwrap();
    assert_eq!((q.policy_name().as_deref(), q.operator_policy_name().as_deref()), (Some("user"), Some("op")));
    assert_eq!(q.effective().sources.max_length, Some(Source::OperatorPolicy("op".into())));
    clear(&s, Kind::Operator, "op");
    publish_n(&ch, "pol-capped", 10).await;
    assert_eq!(count(&ch, "pol-capped").await, 6);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expires_policy_deletes_an_unused_queue() {
    let s = common::start().await;
    let (_conn, ch) = connect(&s).await;
    declare(&ch, "pol-idle", FieldTable::default()).await;
    set(&s, Kind::User, "idle", "^pol-idle$", ApplyTo::Queues, json!({"expires": 200}));
    let gone = tokio::time::timeout(Duration::from_secs(5), async {
        while s.broker.vhost("/").unwrap().queue("pol-idle").is_some() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    assert!(gone.is_ok(), "the queue outlived its policy's expires");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn policies_survive_a_restart() {
    let dir =
        std::env::temp_dir().join(format!("warren-policies-{}-{}", std::process::id(), fastrand::u64(..)));
    let config = || {
        let mut c = Config::default();
        c.metrics.listen = None;
        c.amqp.listen = "127.0.0.1:0".parse().unwrap();
        c.storage.data_dir = dir.clone();
        c
    };
    let durable = QueueDeclareOptions { durable: true, ..Default::default() };
    let s = Server::start(config()).await.unwrap();
    {
        let (_conn, ch) = connect(&s).await;
        ch.queue_declare("pol-kept".into(), durable, FieldTable::default()).await.unwrap();
        set(&s, Kind::User, "keep", "^pol-", ApplyTo::Queues, json!({"max-length": 4, "queue-mode": "lazy"}));
        set(&s, Kind::User, "gone", "^nothing$", ApplyTo::All, json!({"max-length": 1}));
        set(&s, Kind::Operator, "limit", "^pol-", ApplyTo::Queues, json!({"max-length-bytes": 1000}));
        clear(&s, Kind::User, "gone");
    }
    s.stop().await;

    let s = Server::start(config()).await.unwrap();
    let v = s.broker.vhost("/").unwrap();
    let names = |k| v.policies(k).into_iter().map(|p| p.name).collect::<Vec<_>>();
    assert_eq!(
        (names(Kind::User), names(Kind::Operator)),
        (vec!["keep".to_string()], vec!["limit".to_string()])
    );
    assert_eq!(v.policy("keep", Kind::User).unwrap().definition["queue-mode"], json!("lazy"));
    let q = v.queue("pol-kept").unwrap();
    assert_eq!(
        (q.effective().config.max_length, q.effective().config.max_length_bytes),
        (Some(4), Some(1000))
    );
    let (_conn, ch) = connect(&s).await;
    publish_n(&ch, "pol-kept", 10).await;
    assert_eq!(count(&ch, "pol-kept").await, 4);
    declare(&ch, "pol-new", FieldTable::default()).await;
    assert_eq!(v.queue("pol-new").unwrap().policy_name().as_deref(), Some("keep"));
    s.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
}
