//! Policies and operator policies, observed by behaviour on classic queues
//! and exchanges: every definition key, live application to existing
//! queues, how a policy merges with x-arguments and with an operator policy,
//! priorities, and clearing.
//!
//! Each test works in a vhost of its own (created and deleted through the
//! management HTTP API at `$ADMIN_URL`), so policy patterns cannot touch
//! other tests' objects. RabbitMQ applies a policy change to existing queues
//! asynchronously, so those checks poll (bounded by `TIMEOUT`); a queue or
//! exchange declared after the policy is set gets it at once.

mod common;

use common::*;
use lapin::{options::BasicPublishOptions, BasicProperties, Channel, Confirmation, Connection, ExchangeKind};

/// A fresh vhost, `$AMQP_URL`'s user connected to it, and a channel in
/// confirm mode.
struct Pv {
    vh: String,
    conn: Connection,
    ch: Channel,
    _cleanup: Cleanup,
}

async fn pvhost(tag: &str) -> Pv {
    let vh = unique(tag);
    let mut cleanup = Cleanup::default();
    cleanup.vhost(&vh);
    add_vhost(&vh).await;
    set_permissions(&vh, &url_parts(&amqp_url()).user, ".*", ".*", ".*").await;
    let conn = connect_vhost(&vh).await;
    let ch = channel(&conn).await;
    confirm_select(&ch).await;
    Pv { vh, conn, ch, _cleanup: cleanup }
}

impl Pv {
    async fn policy(&self, name: &str, pattern: &str, definition: &str, priority: i64) {
        set_policy(&self.vh, name, pattern, definition, priority, "queues").await;
    }

    /// Publish `m{from}..=m{to}` to queue `q` (default exchange) and return
    /// the confirmations.
    async fn publish_range(&self, q: &str, from: usize, to: usize) -> Vec<Confirmation> {
        let mut out = Vec::new();
        for i in from..=to {
            out.push(self.publish_to("", q, &format!("m{i}")).await);
        }
        out
    }

    async fn publish_to(&self, exchange: &str, key: &str, body: &str) -> Confirmation {
        publish_confirmed(
            &self.ch,
            exchange,
            key,
            BasicPublishOptions::default(),
            body.as_bytes(),
            BasicProperties::default(),
        )
        .await
    }

    async fn count(&self, q: &str) -> u32 {
        queue_exists(&self.conn, q).await.unwrap_or_else(|| panic!("queue {q} does not exist")).0
    }

    /// Wait until `q` holds exactly `n` messages.
    async fn wait_count(&self, q: &str, n: u32) {
        wait_ready(&self.conn, q, n).await;
    }

    /// Take every message of `q` (basic.get, auto-ack) and return the bodies.
    async fn bodies(&self, q: &str) -> Vec<String> {
        let ch = channel(&self.conn).await;
        let mut out = Vec::new();
        while let Some(m) = get(&ch, q).await {
            out.push(String::from_utf8(m.delivery.data).expect("utf-8 body"));
        }
        out
    }

    async fn exchange(&self, name: &str, kind: ExchangeKind) {
        declare_exchange(&self.ch, name, kind, Default::default()).await;
    }

    async fn finish(self) {
        teardown(self.conn).await;
    }
}

fn acks(n: usize) -> Vec<Confirmation> {
    (0..n).map(|_| Confirmation::Ack(None)).collect()
}

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

#[tokio::test]
async fn policy_max_length_drops_from_the_head() {
    let pv = pvhost("pol-maxlen").await;
    pv.policy("limit", "^q$", r#"{"max-length":3}"#, 0).await;
    named_queue(&pv.ch, "q").await;
    named_queue(&pv.ch, "q-unmatched").await;
    assert_eq!(pv.publish_range("q", 1, 10).await, acks(10), "drop-head accepts every publish");
    assert_eq!(pv.bodies("q").await, strings(&["m8", "m9", "m10"]));
    // The pattern is a regex on the whole name only when anchored.
    pv.publish_range("q-unmatched", 1, 5).await;
    pv.wait_count("q-unmatched", 5).await;
    pv.finish().await;
}

#[tokio::test]
async fn policy_max_length_bytes_counts_body_bytes() {
    let pv = pvhost("pol-maxbytes").await;
    pv.policy("bytes", "^q$", r#"{"max-length-bytes":10}"#, 0).await;
    named_queue(&pv.ch, "q").await;
    for i in 1..=5 {
        // 4 bytes each: at most two fit in 10 bytes.
        assert_eq!(pv.publish_to("", "q", &format!("b00{i}")).await, Confirmation::Ack(None));
    }
    assert_eq!(pv.bodies("q").await, strings(&["b004", "b005"]));
    pv.finish().await;
}

#[tokio::test]
async fn policy_overflow_reject_publish_nacks() {
    let pv = pvhost("pol-reject").await;
    pv.policy("reject", "^q$", r#"{"max-length":2,"overflow":"reject-publish"}"#, 0).await;
    named_queue(&pv.ch, "q").await;
    let confirms = pv.publish_range("q", 1, 4).await;
    assert_eq!(
        confirms,
        vec![
            Confirmation::Ack(None),
            Confirmation::Ack(None),
            Confirmation::Nack(None),
            Confirmation::Nack(None)
        ]
    );
    assert_eq!(pv.bodies("q").await, strings(&["m1", "m2"]));
    // Room again: accepted again.
    assert_eq!(pv.publish_to("", "q", "m5").await, Confirmation::Ack(None));
    pv.finish().await;
}

#[tokio::test]
async fn policy_message_ttl_expires_messages() {
    let pv = pvhost("pol-ttl").await;
    pv.policy("ttl", "^q$", r#"{"message-ttl":100}"#, 0).await;
    // With dead-lettering, the expiry is visible as such.
    pv.policy(
        "ttl-dl",
        "^q-dl$",
        r#"{"message-ttl":100,"dead-letter-exchange":"","dead-letter-routing-key":"dead"}"#,
        0,
    )
    .await;
    for q in ["q", "q-dl", "dead"] {
        named_queue(&pv.ch, q).await;
    }
    assert_eq!(pv.publish_to("", "q", "short-lived").await, Confirmation::Ack(None));
    assert_eq!(pv.publish_to("", "q-dl", "short-lived").await, Confirmation::Ack(None));
    pv.wait_count("q", 0).await;
    assert!(pv.bodies("q").await.is_empty());
    let ch = channel(&pv.conn).await;
    let dead = get_eventually(&ch, "dead").await;
    assert_eq!(dead.delivery.data, b"short-lived");
    assert_eq!(death_reason(&dead.delivery.properties).as_deref(), Some("expired"));
    assert_eq!(pv.count("q-dl").await, 0);
    pv.finish().await;
}

#[tokio::test]
async fn policy_expires_deletes_an_unused_queue() {
    let pv = pvhost("pol-expires").await;
    pv.policy("expires", "^q$", r#"{"expires":200}"#, 0).await;
    named_queue(&pv.ch, "q").await;
    named_queue(&pv.ch, "q-kept").await;
    // Any declare (passive too) counts as use and restarts the timer, so poll
    // less often than the expiry.
    within("queue q to expire", async {
        loop {
            tokio::time::sleep(std::time::Duration::from_millis(500)).await;
            if queue_exists(&pv.conn, "q").await.is_none() {
                break;
            }
        }
    })
    .await;
    assert_eq!(queue_exists(&pv.conn, "q-kept").await, Some((0, 0)));
    pv.finish().await;
}

#[tokio::test]
async fn policy_dead_letter_exchange_and_routing_key() {
    let pv = pvhost("pol-dlx").await;
    pv.exchange("dlx", ExchangeKind::Direct).await;
    named_queue(&pv.ch, "dead").await;
    bind(&pv.ch, "dead", "dlx", "dl-key").await;
    pv.policy("dlx", "^q$", r#"{"dead-letter-exchange":"dlx","dead-letter-routing-key":"dl-key"}"#, 0).await;
    named_queue(&pv.ch, "q").await;
    pv.publish_to("", "q", "bounced").await;
    let ch = channel(&pv.conn).await;
    let msg = get_manual_eventually(&ch, "q").await;
    within("basic.reject", msg.delivery.acker.reject(lapin::options::BasicRejectOptions { requeue: false }))
        .await
        .expect("basic.reject");
    let dead = get_eventually(&ch, "dead").await;
    assert_eq!(dead.delivery.data, b"bounced");
    assert_eq!(dead.delivery.exchange.as_str(), "dlx");
    assert_eq!(dead.delivery.routing_key.as_str(), "dl-key");
    assert_eq!(death_reason(&dead.delivery.properties).as_deref(), Some("rejected"));
    assert_eq!(pv.count("q").await, 0);
    pv.finish().await;
}

#[tokio::test]
async fn policy_alternate_exchange_on_an_exchange() {
    let pv = pvhost("pol-ae").await;
    for (ae, q) in [("ae", "unroutable"), ("ae-arg", "by-arg")] {
        pv.exchange(ae, ExchangeKind::Fanout).await;
        named_queue(&pv.ch, q).await;
        bind(&pv.ch, q, ae, "").await;
    }
    set_policy(&pv.vh, "ae", "^x", r#"{"alternate-exchange":"ae"}"#, 0, "exchanges").await;
    pv.exchange("x", ExchangeKind::Direct).await;
    named_queue(&pv.ch, "routed").await;
    bind(&pv.ch, "routed", "x", "known").await;
    assert_eq!(pv.publish_to("x", "unknown", "lost?").await, Confirmation::Ack(None));
    assert_eq!(pv.publish_to("x", "known", "routed").await, Confirmation::Ack(None));
    let ch = channel(&pv.conn).await;
    let m = get_eventually(&ch, "unroutable").await;
    assert_eq!(m.delivery.data, b"lost?");
    assert_eq!(m.delivery.exchange.as_str(), "x");
    assert_eq!(m.delivery.routing_key.as_str(), "unknown");
    assert_eq!(pv.bodies("routed").await, strings(&["routed"]));
    assert!(pv.bodies("unroutable").await.is_empty());

    // An alternate-exchange argument wins over the policy (which matches x-arg too).
    within(
        "exchange.declare with alternate-exchange",
        pv.ch.exchange_declare(
            "x-arg".into(),
            ExchangeKind::Direct,
            Default::default(),
            table(&[("alternate-exchange", long_str("ae-arg"))]),
        ),
    )
    .await
    .expect("exchange.declare");
    assert_eq!(pv.publish_to("x-arg", "nowhere", "arg wins").await, Confirmation::Ack(None));
    let m = get_eventually(&ch, "by-arg").await;
    assert_eq!(m.delivery.data, b"arg wins");
    assert_eq!(pv.count("unroutable").await, 0);
    pv.finish().await;
}

#[tokio::test]
async fn policy_applies_live_to_an_existing_queue() {
    let pv = pvhost("pol-live").await;
    named_queue(&pv.ch, "q").await;
    pv.publish_range("q", 1, 10).await;
    pv.wait_count("q", 10).await;
    pv.policy("limit", "^q$", r#"{"max-length":3}"#, 0).await;
    // Applied asynchronously by RabbitMQ: the queue is trimmed from the head.
    pv.wait_count("q", 3).await;
    assert_eq!(pv.bodies("q").await, strings(&["m8", "m9", "m10"]));
    // And it keeps applying to new messages.
    pv.publish_range("q", 11, 15).await;
    assert_eq!(pv.bodies("q").await, strings(&["m13", "m14", "m15"]));
    pv.finish().await;
}

#[tokio::test]
async fn policy_and_arguments_merge() {
    let pv = pvhost("pol-merge").await;
    // Numeric limits: the smaller one; overflow: the argument's.
    pv.policy("p1", "^q1$", r#"{"max-length":5,"overflow":"reject-publish"}"#, 0).await;
    pv.policy("p2", "^q2$", r#"{"max-length":2}"#, 0).await;
    pv.policy("p3", "^q3$", r#"{"max-length":2,"overflow":"drop-head"}"#, 0).await;
    queue_with(&pv.ch, "q1", table(&[("x-max-length", int(3)), ("x-overflow", long_str("drop-head"))])).await;
    queue_with(&pv.ch, "q2", table(&[("x-max-length", int(5))])).await;
    queue_with(&pv.ch, "q3", table(&[("x-overflow", long_str("reject-publish"))])).await;

    assert_eq!(pv.publish_range("q1", 1, 10).await, acks(10), "drop-head (the argument) never nacks");
    assert_eq!(pv.bodies("q1").await, strings(&["m8", "m9", "m10"]), "max-length 3 (the argument, smaller)");

    assert_eq!(pv.publish_range("q2", 1, 10).await, acks(10));
    assert_eq!(pv.bodies("q2").await, strings(&["m9", "m10"]), "max-length 2 (the policy, smaller)");

    let confirms = pv.publish_range("q3", 1, 3).await;
    assert_eq!(confirms, vec![Confirmation::Ack(None), Confirmation::Ack(None), Confirmation::Nack(None)]);
    assert_eq!(pv.bodies("q3").await, strings(&["m1", "m2"]), "reject-publish (the argument)");
    pv.finish().await;
}

#[tokio::test]
async fn dead_letter_arguments_win_over_the_policy() {
    let pv = pvhost("pol-dlx-arg").await;
    for (x, q) in [("dlx-arg", "by-arg"), ("dlx-pol", "by-pol")] {
        pv.exchange(x, ExchangeKind::Direct).await;
        named_queue(&pv.ch, q).await;
        bind(&pv.ch, q, x, "arg-key").await;
        bind(&pv.ch, q, x, "pol-key").await;
    }
    pv.policy("dlx", "^q", r#"{"dead-letter-exchange":"dlx-pol","dead-letter-routing-key":"pol-key"}"#, 0)
        .await;
    // q1: both arguments win.
    queue_with(
        &pv.ch,
        "q1",
        table(&[
            ("x-dead-letter-exchange", long_str("dlx-arg")),
            ("x-dead-letter-routing-key", long_str("arg-key")),
        ]),
    )
    .await;
    // q2: each key is resolved on its own: the exchange from the argument,
    // the routing key from the policy.
    queue_with(&pv.ch, "q2", table(&[("x-dead-letter-exchange", long_str("dlx-arg"))])).await;

    let ch = channel(&pv.conn).await;
    for q in ["q1", "q2"] {
        pv.publish_to("", q, q).await;
        let msg = get_manual_eventually(&ch, q).await;
        within(
            "basic.reject",
            msg.delivery.acker.reject(lapin::options::BasicRejectOptions { requeue: false }),
        )
        .await
        .expect("basic.reject");
        let dead = get_eventually(&ch, "by-arg").await;
        assert_eq!(dead.delivery.data, q.as_bytes());
        assert_eq!(dead.delivery.exchange.as_str(), "dlx-arg");
        let expected_key = if q == "q1" { "arg-key" } else { "pol-key" };
        assert_eq!(dead.delivery.routing_key.as_str(), expected_key, "{q}");
    }
    assert_eq!(pv.count("by-pol").await, 0, "nothing went through the policy's exchange");
    assert_eq!(pv.count("by-arg").await, 0);
    pv.finish().await;
}

#[tokio::test]
async fn operator_policy_merges_with_the_user_policy() {
    let pv = pvhost("pol-operator").await;
    // max-length: the smaller of the two, whichever side it comes from.
    pv.policy("u1", "^q1$", r#"{"max-length":5}"#, 0).await;
    set_operator_policy(&pv.vh, "o1", "^q1$", r#"{"max-length":2}"#, 0, "queues").await;
    pv.policy("u2", "^q2$", r#"{"max-length":2}"#, 0).await;
    set_operator_policy(&pv.vh, "o2", "^q2$", r#"{"max-length":5}"#, 0, "queues").await;
    // An operator policy alone applies too.
    set_operator_policy(&pv.vh, "o3", "^q3$", r#"{"max-length":1}"#, 0, "queues").await;
    for q in ["q1", "q2", "q3"] {
        named_queue(&pv.ch, q).await;
    }
    pv.publish_range("q1", 1, 6).await;
    assert_eq!(pv.bodies("q1").await, strings(&["m5", "m6"]));
    pv.publish_range("q2", 1, 6).await;
    assert_eq!(pv.bodies("q2").await, strings(&["m5", "m6"]));
    pv.publish_range("q3", 1, 6).await;
    assert_eq!(pv.bodies("q3").await, strings(&["m6"]));
    // And it is also the smaller one against an argument.
    set_operator_policy(&pv.vh, "o4", "^q4$", r#"{"max-length":2}"#, 0, "queues").await;
    queue_with(&pv.ch, "q4", table(&[("x-max-length", int(4))])).await;
    pv.publish_range("q4", 1, 6).await;
    assert_eq!(pv.bodies("q4").await, strings(&["m5", "m6"]));
    pv.finish().await;
}

#[tokio::test]
async fn the_highest_priority_policy_wins() {
    let pv = pvhost("pol-priority").await;
    // qa: the higher-priority policy has the larger limit; qb: the smaller.
    // Either way the one with the higher priority applies, alone.
    pv.policy("a-low", "^qa", r#"{"max-length":2}"#, 1).await;
    pv.policy("a-high", "^qa$", r#"{"max-length":4}"#, 5).await;
    pv.policy("b-high", "^qb", r#"{"max-length":2}"#, 9).await;
    pv.policy("b-low", "^qb$", r#"{"max-length":4,"overflow":"reject-publish"}"#, 3).await;
    // Negative priorities are allowed (a blanket default).
    pv.policy("blanket", ".*", r#"{"max-length":1}"#, -10).await;
    for q in ["qa", "qb", "qc"] {
        named_queue(&pv.ch, q).await;
    }
    assert_eq!(pv.publish_range("qa", 1, 6).await, acks(6));
    assert_eq!(pv.bodies("qa").await, strings(&["m3", "m4", "m5", "m6"]));
    // Nothing of b-low applies (not even its overflow): drop-head.
    assert_eq!(pv.publish_range("qb", 1, 6).await, acks(6));
    assert_eq!(pv.bodies("qb").await, strings(&["m5", "m6"]));
    pv.publish_range("qc", 1, 3).await;
    assert_eq!(pv.bodies("qc").await, strings(&["m3"]));
    pv.finish().await;
}

#[tokio::test]
async fn apply_to_limits_what_a_policy_matches() {
    let pv = pvhost("pol-apply-to").await;
    set_policy(&pv.vh, "exchanges-only", "^q$", r#"{"max-length":1}"#, 0, "exchanges").await;
    set_policy(&pv.vh, "all", "^q-all$", r#"{"max-length":1}"#, 0, "all").await;
    named_queue(&pv.ch, "q").await;
    named_queue(&pv.ch, "q-all").await;
    pv.publish_range("q", 1, 3).await;
    pv.publish_range("q-all", 1, 3).await;
    assert_eq!(pv.bodies("q").await, strings(&["m1", "m2", "m3"]));
    assert_eq!(pv.bodies("q-all").await, strings(&["m3"]));
    pv.finish().await;
}

#[tokio::test]
async fn clearing_a_policy_reverts() {
    let pv = pvhost("pol-clear").await;
    pv.policy("limit", "^q$", r#"{"max-length":2}"#, 0).await;
    named_queue(&pv.ch, "q").await;
    pv.publish_range("q", 1, 5).await;
    assert_eq!(pv.count("q").await, 2);
    clear_policy(&pv.vh, "limit").await;
    // RabbitMQ lifts the limit asynchronously: publish until a message is kept
    // beyond the old limit.
    let mut i = 5;
    within("the limit to be lifted", async {
        loop {
            i += 1;
            pv.publish_to("", "q", &format!("m{i}")).await;
            if pv.count("q").await > 2 {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    })
    .await;
    // From now on nothing is dropped.
    let before = pv.count("q").await;
    pv.publish_range("q", i + 1, i + 5).await;
    assert_eq!(pv.count("q").await, before + 5);
    // Messages dropped under the policy stay dropped.
    let bodies = pv.bodies("q").await;
    assert!(!bodies.contains(&"m1".to_string()) && !bodies.contains(&"m3".to_string()), "{bodies:?}");
    // Setting it again trims again (live).
    pv.policy("limit", "^q$", r#"{"max-length":2}"#, 0).await;
    pv.publish_range("q", 100, 105).await;
    pv.wait_count("q", 2).await;
    assert_eq!(pv.bodies("q").await, strings(&["m104", "m105"]));
    pv.finish().await;
}
