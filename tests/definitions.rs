//! Definitions (RabbitMQ's JSON format): a file exported by RabbitMQ 3.10.8
//! imports at boot and works (its users log in with their old passwords,
//! its topology routes); export and import round-trip; bad files change
//! nothing.

mod common;

use std::path::PathBuf;

use lapin::options::{BasicGetOptions, BasicPublishOptions, QueueDeclareOptions};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Connection, ConnectionProperties};
use warren::admin::definitions::{self, DefinitionsError};
use warren::broker::policy::Kind;

fn fixture() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/rabbitmq-3.10.8-definitions.json")
}

async fn connect(addr: std::net::SocketAddr, user: &str, pw: &str, vhost: &str) -> lapin::Result<Connection> {
    let vhost = vhost.replace('/', "%2f");
    Connection::connect(&format!("amqp://{user}:{pw}@{addr}/{vhost}"), ConnectionProperties::default()).await
}

async fn get_body(ch: &lapin::Channel, queue: &str) -> Option<Vec<u8>> {
    for _ in 0..100 {
        if let Some(m) = ch.basic_get(queue.into(), BasicGetOptions { no_ack: true }).await.unwrap() {
            return Some(m.delivery.data.clone());
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    None
}

#[tokio::test]
async fn a_rabbitmq_export_imports_at_boot_and_works() {
    let server = common::start_with(|c| c.access.definitions = Some(fixture())).await;
    let addr = server.local_addr;
    // Its users log in with their RabbitMQ passwords; no default guest was made
    // (the file's own guest, hashed by RabbitMQ, is the one that logs in).
    let fx = connect(addr, "fx-user", "fx-pw", "/").await.expect("fx-user logs in with its old password");
    assert!(connect(addr, "fx-user", "wrong", "/").await.is_err());
    let guest = connect(addr, "guest", "guest", "/").await.unwrap();
    assert_eq!(server.access.users().len(), 2);
    // Its topology routes, within fx-user's permissions.
    let ch = fx.create_channel().await.unwrap();
    ch.basic_publish(
        "fx-x".into(),
        "a.b".into(),
        BasicPublishOptions::default(),
        b"routed",
        BasicProperties::default(),
    )
    .await
    .unwrap();
    assert_eq!(get_body(&ch, "fx-q").await.as_deref(), Some(&b"routed"[..]));
    // Topic permission: fx-user may publish to fx-x with "a." keys only
    // (in confirm mode, the refusal is the confirm's error).
    let denied = fx.create_channel().await.unwrap();
    denied.confirm_select(Default::default()).await.unwrap();
    let confirm = denied
        .basic_publish(
            "fx-x".into(),
            "b.c".into(),
            BasicPublishOptions::default(),
            b"no",
            BasicProperties::default(),
        )
        .await;
    let err = match confirm {
        Ok(c) => c.await.expect_err("a publish outside the topic permission is refused"),
        Err(e) => e,
    };
    assert!(err.to_string().contains("access to topic 'b.c' in exchange 'fx-x'"), "{err}");
    // The alternate exchange from the arguments, and an exchange-to-exchange binding.
    let gch = guest.create_channel().await.unwrap();
    gch.basic_publish(
        "fx-y".into(),
        "nowhere".into(),
        BasicPublishOptions::default(),
        b"ae",
        BasicProperties::default(),
    )
    .await
    .unwrap();
    assert_eq!(get_body(&gch, "fx-unrouted").await.as_deref(), Some(&b"ae"[..]));
    gch.basic_publish(
        "fx-x".into(),
        "b.x".into(),
        BasicPublishOptions::default(),
        b"e2e",
        BasicProperties::default(),
    )
    .await
    .unwrap();
    assert_eq!(get_body(&gch, "fx-unrouted").await.as_deref(), Some(&b"e2e"[..]));
    // The second vhost, its queue, its limits; policies and operator policies.
    let vh = server.broker.vhost("fx-vh").expect("fx-vh imported");
    assert!(vh.queue("fx-vh-q").is_some());
    assert_eq!(vh.limits().max_queues, Some(20));
    assert_eq!(vh.limits().max_connections, Some(50));
    let root = server.broker.vhost("/").unwrap();
    assert_eq!(root.policies(Kind::User).len(), 1);
    let op = root.policies(Kind::Operator);
    assert_eq!(op.len(), 1, "the operator policy from rabbitmqctl's pair-list shape");
    assert_eq!(op[0].definition.get("max-length"), Some(&serde_json::json!(1000)));
    let q = gch
        .queue_declare("fx-pol-1".into(), QueueDeclareOptions::default(), FieldTable::default())
        .await
        .unwrap();
    assert_eq!(q.name().as_str(), "fx-pol-1");
    assert_eq!(root.queue("fx-pol-1").unwrap().policy_name().as_deref(), Some("fx-pol"));
}

#[tokio::test]
async fn export_then_import_round_trips() {
    let a = common::start_with(|c| c.access.definitions = Some(fixture())).await;
    let exported = definitions::export(&a.broker, &a.access, None);
    let b = common::start().await;
    let body = serde_json::to_vec(&exported).unwrap();
    let report = definitions::import(&b.broker, &b.access, &body, None).unwrap();
    assert!(report.skipped.is_empty(), "{report:?}");
    let again = definitions::export(&b.broker, &b.access, None);
    assert_eq!(again, exported);
    // One vhost's definitions: no users, items without a vhost.
    let one = definitions::export(&a.broker, &a.access, Some("fx-vh"));
    assert!(one.get("users").is_none());
    assert_eq!(
        one["queues"],
        serde_json::json!([{"name": "fx-vh-q", "durable": true, "auto_delete": false, "arguments": {}}])
    );
}

#[tokio::test]
async fn bad_files_change_nothing_and_conflicts_are_reported() {
    let s = common::start().await;
    let before = definitions::export(&s.broker, &s.access, None);
    assert_eq!(definitions::import(&s.broker, &s.access, b"{not json", None), Err(DefinitionsError::BadJson));
    // A user, then a permission in a vhost that neither exists nor is in the file.
    let missing = serde_json::json!({
        "users": [{"name": "half-way", "password_hash": "", "tags": []}],
        "permissions": [{"user": "half-way", "vhost": "nowhere", "configure": ".*", "write": ".*", "read": ".*"}],
    });
    let err = definitions::import(&s.broker, &s.access, missing.to_string().as_bytes(), None).unwrap_err();
    assert!(err.to_string().contains("vhost 'nowhere'"), "{err}");
    let bad_regex = serde_json::json!({
        "vhosts": [{"name": "v2"}],
        "users": [{"name": "u2", "password": "pw"}],
        "permissions": [{"user": "u2", "vhost": "v2", "configure": "(", "write": ".*", "read": ".*"}],
    });
    assert!(definitions::import(&s.broker, &s.access, bad_regex.to_string().as_bytes(), None).is_err());
    // A user without a name is refused whole, and the error never quotes the item.
    let secret = serde_json::json!({"vhosts": [{"name": "v3"}], "users": [{"username": "x", "password": "s3cret-pw"}]});
    let err = definitions::import(&s.broker, &s.access, secret.to_string().as_bytes(), None).unwrap_err();
    assert!(!err.to_string().contains("s3cret-pw"), "{err}");
    let empty = serde_json::json!({"vhosts": [{"name": "v4"}, {"name": ""}]});
    assert!(definitions::import(&s.broker, &s.access, empty.to_string().as_bytes(), None).is_err());
    let bad_policy = serde_json::json!({"policies": [{"vhost": "/", "name": "p", "pattern": ".*", "definition": {"bogus": 1}}]});
    assert!(definitions::import(&s.broker, &s.access, bad_policy.to_string().as_bytes(), None).is_err());
    assert_eq!(definitions::export(&s.broker, &s.access, None), before, "nothing changed");
    assert!(s.broker.vhost("v3").is_none() && s.broker.vhost("v4").is_none());

    // A conflicting queue is skipped (as RabbitMQ does), unchanged, and reported.
    let conn = connect(s.local_addr, "guest", "guest", "/").await.unwrap();
    let ch = conn.create_channel().await.unwrap();
    let durable = QueueDeclareOptions { durable: true, ..Default::default() };
    ch.queue_declare("kept".into(), durable, FieldTable::default()).await.unwrap();
    let conflict = serde_json::json!({
        "queues": [{"name": "kept", "vhost": "/", "durable": "false", "auto_delete": false, "arguments": {}},
                   {"name": "new-one", "vhost": "/", "durable": "true", "arguments": {"x-max-length": 3}}],
    });
    let report = definitions::import(&s.broker, &s.access, conflict.to_string().as_bytes(), None).unwrap();
    assert_eq!(report.skipped.len(), 1);
    assert_eq!(report.skipped[0].name, "kept");
    assert!(report.skipped[0].reason.contains("inequivalent arg 'durable'"), "{:?}", report.skipped);
    let root = s.broker.vhost("/").unwrap();
    assert!(root.queue("kept").unwrap().durable);
    assert_eq!(root.queue("new-one").unwrap().config.max_length, Some(3));
}

#[tokio::test]
async fn policies_of_one_import_apply_together_so_no_queue_is_trimmed_between_them() {
    let s = common::start().await;
    let conn = connect(s.local_addr, "guest", "guest", "/").await.unwrap();
    let ch = conn.create_channel().await.unwrap();
    ch.queue_declare("orders".into(), QueueDeclareOptions::default(), FieldTable::default()).await.unwrap();
    for i in 0..50 {
        ch.basic_publish(
            "".into(),
            "orders".into(),
            BasicPublishOptions::default(),
            format!("m{i}").as_bytes(),
            BasicProperties::default(),
        )
        .await
        .unwrap();
    }
    let root = s.broker.vhost("/").unwrap();
    for _ in 0..100 {
        if root.queue("orders").unwrap().message_count() == 50 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    // The catch-all comes first in the file; alone it would cut orders to 10.
    let doc = serde_json::json!({"policies": [
        {"vhost": "/", "name": "catch-all", "pattern": ".*", "priority": -1, "definition": {"max-length": 10}},
        {"vhost": "/", "name": "orders", "pattern": "^orders$", "priority": 5, "definition": {"max-length": 100000}},
    ]});
    definitions::import(&s.broker, &s.access, doc.to_string().as_bytes(), None).unwrap();
    assert_eq!(root.queue("orders").unwrap().message_count(), 50);
    assert_eq!(root.queue("orders").unwrap().policy_name().as_deref(), Some("orders"));
}
