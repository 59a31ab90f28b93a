//! Tests of policy parsing, validation (with RabbitMQ 3.10's texts, checked
//! against a running broker), matching and merging.

use std::sync::Arc;

use amq_protocol::types::{AMQPValue, FieldTable, LongString};
use serde_json::json;

use super::*;
use crate::broker::queue::QueueConfig;

fn user(def: Value) -> Result<Policy> {
    Policy::parse("p", ".*", ApplyTo::All, 0, &def, Kind::User)
}

fn operator(def: Value) -> Result<Policy> {
    Policy::parse("o", ".*", ApplyTo::All, 0, &def, Kind::Operator)
}

fn error(r: Result<Policy>) -> String {
    r.map(|p| p.name).unwrap_err().to_string()
}

#[test]
fn every_key_is_read_or_kept() {
    let p = user(json!({
        "message-ttl": 1000, "expires": 5000, "max-length": 10, "max-length-bytes": 4096,
        "overflow": "reject-publish-dlx", "dead-letter-exchange": "dlx", "dead-letter-routing-key": "dead",
        "delivery-limit": 3, "alternate-exchange": "ae", "queue-mode": "lazy", "queue-version": 2,
        "consumer-timeout": 60000, "max-age": "7D", "max-in-memory-length": 5, "max-in-memory-bytes": 5,
        "dead-letter-strategy": "at-least-once", "queue-leader-locator": "client-local",
        "initial-cluster-size": 3, "stream-max-segment-size-bytes": 1000
    }))
    .unwrap();
    let s = &p.settings;
    assert_eq!(
        (s.message_ttl, s.expires, s.max_length, s.max_length_bytes),
        (Some(1000), Some(5000), Some(10), Some(4096))
    );
    assert_eq!(s.overflow, Some(Overflow::RejectPublishDlx));
    assert_eq!(
        (s.dead_letter_exchange.as_deref(), s.dead_letter_routing_key.as_deref()),
        (Some("dlx"), Some("dead"))
    );
    assert_eq!((s.delivery_limit, s.alternate_exchange.as_deref()), (Some(3), Some("ae")));
    assert_eq!(p.definition.len(), 19, "kept as set, shown as set");
    for overflow in ["drop-head", "reject-publish"] {
        assert!(user(json!({ "overflow": overflow })).is_ok());
    }
    assert_eq!(user(json!({"delivery-limit": -1})).unwrap().settings.delivery_limit, Some(-1));
    assert_eq!(user(json!({"message-ttl": 0})).unwrap().settings.message_ttl, Some(0));
}

#[test]
fn wrong_types_and_ranges_are_refused_with_rabbitmq_texts() {
    let cases = [
        (json!({"max-length": "a"}), "<<\"a\">> is not a valid maximum length"),
        (json!({"max-length": -1}), "-1 is not a valid maximum length"),
        (json!({"max-length": 1.5}), "1.5 is not a valid maximum length"),
        (json!({"max-length": true}), "true is not a valid maximum length"),
        (json!({"max-length": null}), "null is not a valid maximum length"),
        (json!({"max-length": {"a": 1}}), "#{<<\"a\">> => 1} is not a valid maximum length"),
        (json!({"max-length-bytes": -5}), "-5 is not a valid maximum length in bytes"),
        (json!({"message-ttl": -1}), "-1 is not a valid message TTL"),
        (json!({"message-ttl": "5"}), "<<\"5\">> is not a valid message TTL"),
        (json!({"expires": 0}), "0 is not a valid queue expiry"),
        (json!({"expires": "a"}), "<<\"a\">> is not a valid queue expiry"),
        (json!({"overflow": "x"}), "<<\"x\">> is not a valid overflow value"),
        (json!({"overflow": 1}), "1 is not a valid overflow value"),
        (json!({"dead-letter-exchange": 1}), "1 is not a valid dead letter exchange name"),
        (json!({"dead-letter-routing-key": true}), "true is not a valid dead letter routing key"),
        (json!({"alternate-exchange": [1]}), "[1] is not a valid alternate exchange name"),
        (json!({"queue-mode": "x"}), "<<\"x\">> is not a valid queue-mode value"),
        (json!({"queue-version": 3}), "3 is not a valid queue-version value"),
        (json!({"queue-version": "1"}), "<<\"1\">> is not a valid queue-version value"),
        (json!({"delivery-limit": "a"}), "<<\"a\">> is not a valid delivery limit"),
        (json!({"consumer-timeout": -1}), "-1 is not a valid consumer timeout"),
        (json!({"max-age": "1x"}), "<<\"1x\">> is not a valid max age"),
        (json!({"max-age": "0D"}), "<<\"0D\">> is not a valid max age"),
        (json!({"max-age": 5}), "5 is not a valid max age"),
        (json!({"max-in-memory-length": -1}), "-1 is not a valid maximum memory in bytes"),
        (json!({"dead-letter-strategy": "x"}), "<<\"x\">> is not a valid dead letter strategy"),
        (json!({"queue-leader-locator": "x"}), "<<\"x\">> is not a valid queue leader locator value"),
        (json!({"initial-cluster-size": -1}), "-1 is not a valid cluster size"),
        (json!({"stream-max-segment-size-bytes": -1}), "-1 is not a valid segment size"),
        // The first bad value in key order, before any unknown key.
        (json!({"message-ttl": -1, "max-length": -2}), "-2 is not a valid maximum length"),
        (json!({"bogus": 1, "max-length": -1}), "-1 is not a valid maximum length"),
    ];
    for (def, text) in cases {
        assert_eq!(error(user(def.clone())), text, "{def}");
    }
    for age in ["1Y", "10s", "1h", "3M", "2D", "5m"] {
        assert!(user(json!({ "max-age": age })).is_ok(), "{age}");
    }
}

#[test]
fn unknown_keys_and_empty_definitions_are_refused() {
    assert_eq!(
        error(user(json!({"max-length": 1, "bogus": 2, "other": "a"}))),
        "[{<<\"bogus\">>,2},{<<\"other\">>,<<\"a\">>}] are not recognised policy settings"
    );
    assert_eq!(error(user(json!({}))), "no policy provided");
    assert_eq!(
        error(user(json!({"ha-mode": "all"}))),
        "[{<<\"ha-mode\">>,<<\"all\">>}] are not recognised policy settings"
    );
    assert!(error(user(json!([1]))).starts_with("definition should be a JSON object"));
    // Operator policies only limit queues.
    for (key, value) in [
        ("dead-letter-exchange", json!("x")),
        ("alternate-exchange", json!("x")),
        ("queue-mode", json!("lazy")),
    ] {
        let e = error(operator(json!({ key: value.clone() })));
        assert_eq!(
            e,
            format!("[{{<<\"{key}\">>,{}}}] are not recognised policy settings", erlang_term(&value))
        );
    }
    let o = operator(json!({
        "expires": 1, "message-ttl": 1, "max-length": 1, "max-length-bytes": 1, "max-in-memory-length": 1,
        "max-in-memory-bytes": 1, "delivery-limit": 1, "queue-version": 1, "overflow": "reject-publish"
    }))
    .unwrap();
    assert_eq!(o.kind, Kind::Operator);
    assert_eq!(error(operator(json!({"max-length": -1}))), "-1 is not a valid maximum length");
}

#[test]
fn patterns_are_unanchored_and_bad_ones_refused() {
    let p = Policy::parse("p", "demo", ApplyTo::All, 0, &json!({"max-length": 1}), Kind::User).unwrap();
    assert!(p.matches_queue("my-demo-q", QueueType::Classic) && !p.matches_queue("dem", QueueType::Classic));
    let anchored =
        Policy::parse("p", "^demo$", ApplyTo::All, 0, &json!({"max-length": 1}), Kind::User).unwrap();
    assert!(
        anchored.matches_queue("demo", QueueType::Classic)
            && !anchored.matches_queue("demo2", QueueType::Classic)
    );
    let empty = Policy::parse("p", "", ApplyTo::All, 0, &json!({"max-length": 1}), Kind::User).unwrap();
    assert!(
        empty.matches_queue("anything", QueueType::Classic),
        "an empty pattern matches every name, as in PCRE"
    );
    let bad = |pattern: &str| {
        error(Policy::parse("p", pattern, ApplyTo::All, 0, &json!({"max-length": 1}), Kind::User))
    };
    let e = bad("(");
    assert!(
        e.starts_with("pattern should be regular expression but is invalid: ") && !e.contains('\n'),
        "{e}"
    );
    assert!(bad("x(?=y)").ends_with("(Warren's patterns have no look-around or backreferences)"));
    assert!(bad("(a)\\1").ends_with("(Warren's patterns have no look-around or backreferences)"));
    assert!(bad("\\w{1000}\\w{1000}\\w{1000}").starts_with("pattern should be"), "too big to compile");
}

#[test]
fn apply_to_selects_kinds_of_object() {
    let def = json!({"max-length": 1});
    let p = |a| Policy::parse("p", "^x", a, 0, &def, Kind::User).unwrap();
    let kinds = |a| {
        let p = p(a);
        (
            p.matches_queue("x", QueueType::Classic),
            p.matches_queue("x", QueueType::Quorum),
            p.matches_queue("x", QueueType::Stream),
            p.matches_exchange("x"),
        )
    };
    assert_eq!(kinds(ApplyTo::All), (true, true, true, true));
    assert_eq!(kinds(ApplyTo::Queues), (true, true, true, false));
    assert_eq!(kinds(ApplyTo::ClassicQueues), (true, false, false, false));
    assert_eq!(kinds(ApplyTo::QuorumQueues), (false, true, false, false));
    assert_eq!(kinds(ApplyTo::Exchanges), (false, false, false, true));
    assert_eq!(kinds(ApplyTo::Streams), (false, false, true, false));
    assert!(!p(ApplyTo::All).matches_exchange("y"));
    assert_eq!(
        ApplyTo::parse("bogus").unwrap_err().to_string(),
        "apply-to 'bogus' unrecognised; should be 'queues', 'classic_queues', 'quorum_queues', 'streams', 'exchanges' or 'all'"
    );
    for a in ["all", "queues", "exchanges", "classic_queues", "quorum_queues", "streams"] {
        assert_eq!(ApplyTo::parse(a).unwrap().as_str(), a);
    }
    assert!(ApplyTo::Queues.overlaps(ApplyTo::ClassicQueues) && ApplyTo::All.overlaps(ApplyTo::Exchanges));
    assert!(
        !ApplyTo::ClassicQueues.overlaps(ApplyTo::QuorumQueues)
            && !ApplyTo::Exchanges.overlaps(ApplyTo::Queues)
    );
}

#[test]
fn precedence_is_priority_then_name() {
    let def = json!({"max-length": 1});
    let p = |name: &str, prio| Policy::parse(name, ".*", ApplyTo::All, prio, &def, Kind::User).unwrap();
    assert!(p("z", 2).precedes(&p("a", 1)));
    assert!(p("a", 1).precedes(&p("b", 1)) && !p("b", 1).precedes(&p("a", 1)));
    assert!(p("a", -1).precedes(&p("b", -5)));
}

#[test]
fn json_in_rabbitmq_shape_with_leniency() {
    let body = json!({"pattern": "^q", "definition": {"max-length": 5}, "priority": "2"});
    let p = Policy::from_json("p", &body, Kind::User).unwrap();
    assert_eq!((p.priority, p.apply_to), (2, ApplyTo::All));
    let stored = p.to_json("/");
    assert_eq!(
        stored,
        json!({"vhost": "/", "name": "p", "pattern": "^q", "apply-to": "all", "definition": {"max-length": 5}, "priority": 2})
    );
    let (vhost, back) = Policy::from_definitions(&stored, Kind::User).unwrap();
    assert_eq!((vhost.as_str(), back), ("/", p));
    let err = |b: Value| Policy::from_json("p", &b, Kind::User).unwrap_err().to_string();
    assert_eq!(err(json!({"definition": {"max-length": 1}})), "[{key_missing,pattern}]");
    assert_eq!(err(json!({"pattern": "x"})), "[{key_missing,definition}]");
    assert_eq!(
        err(json!({"pattern": 5, "definition": {"max-length": 1}})),
        "pattern should be a binary but was 5"
    );
    assert_eq!(
        err(json!({"pattern": "x", "definition": {"max-length": 1}, "priority": "a"})),
        "priority should be a number, actually was <<\"a\">>"
    );
    assert!(err(json!({"pattern": "x", "definition": {"max-length": 1}, "apply-to": "bogus"}))
        .starts_with("apply-to 'bogus'"));
    assert_eq!(
        Policy::from_definitions(&json!({"name": "p"}), Kind::User).unwrap_err().to_string(),
        "[{key_missing,vhost}]"
    );
    let q = Policy::from_json(
        "q",
        &json!({"pattern": "x", "definition": {"max-length": 1}, "apply-to": "queues", "priority": -3}),
        Kind::Operator,
    )
    .unwrap();
    assert_eq!((q.apply_to, q.priority, q.kind), (ApplyTo::Queues, -3, Kind::Operator));
}

#[test]
fn erlang_terms() {
    assert_eq!(erlang_term(&json!("a\"b")), "<<\"a\\\"b\">>");
    assert_eq!(erlang_term(&json!([1, "x", null, 1.5])), "[1,<<\"x\">>,null,1.5]");
    assert_eq!(erlang_term(&json!({"a": 1, "b": false})), "#{<<\"a\">> => 1,<<\"b\">> => false}");
}

// --- merging -------------------------------------------------------------

fn table(args: &[(&str, AMQPValue)]) -> FieldTable {
    let mut t = FieldTable::default();
    for (k, v) in args {
        t.insert((*k).into(), v.clone());
    }
    t
}

fn text(s: &str) -> AMQPValue {
    AMQPValue::LongString(LongString::from(s))
}

fn merge(args: &[(&str, AMQPValue)], policy: Option<Value>, op: Option<Value>) -> Effective {
    let t = table(args);
    let cfg = QueueConfig::from_args(&t);
    let user = policy.map(|d| Arc::new(Policy::parse("pol", ".*", ApplyTo::All, 0, &d, Kind::User).unwrap()));
    let op = op.map(|d| Arc::new(Policy::parse("op", ".*", ApplyTo::All, 0, &d, Kind::Operator).unwrap()));
    Effective::merge(&t, &cfg, user, op)
}

fn pol() -> Source {
    Source::Policy("pol".into())
}

fn opol() -> Source {
    Source::OperatorPolicy("op".into())
}

#[test]
fn classic_queue_limits_take_the_minimum_targets_the_argument() {
    let args = [
        ("x-message-ttl", AMQPValue::LongInt(5000)),
        ("x-expires", AMQPValue::LongInt(1000)),
        ("x-max-length", AMQPValue::LongInt(3)),
        ("x-max-length-bytes", AMQPValue::LongInt(100)),
        ("x-overflow", text("drop-head")),
        ("x-dead-letter-exchange", text("arg-dlx")),
        ("x-dead-letter-routing-key", text("arg-rk")),
    ];
    let policy = json!({
        "message-ttl": 1000, "expires": 9000, "max-length": 5, "max-length-bytes": 50,
        "overflow": "reject-publish", "dead-letter-exchange": "pol-dlx", "dead-letter-routing-key": "pol-rk"
    });
    let e = merge(&args, Some(policy.clone()), None);
    let c = &e.config;
    assert_eq!(
        (c.message_ttl, c.expires, c.max_length, c.max_length_bytes),
        (Some(1000), Some(1000), Some(3), Some(50))
    );
    assert_eq!(c.overflow, Overflow::DropHead, "the argument's overflow wins");
    assert_eq!(
        (c.dead_letter_exchange.as_deref(), c.dead_letter_routing_key.as_deref()),
        (Some("arg-dlx"), Some("arg-rk"))
    );
    let s = &e.sources;
    assert_eq!(
        [
            &s.message_ttl,
            &s.expires,
            &s.max_length,
            &s.max_length_bytes,
            &s.overflow,
            &s.dead_letter_exchange
        ],
        [
            &Some(pol()),
            &Some(Source::Argument),
            &Some(Source::Argument),
            &Some(pol()),
            &Some(Source::Argument),
            &Some(Source::Argument)
        ]
    );
    // Without arguments, the policy's values.
    let e = merge(&[], Some(policy), None);
    assert_eq!((e.config.max_length, e.config.overflow), (Some(5), Overflow::RejectPublish));
    assert_eq!(e.config.dead_letter_exchange.as_deref(), Some("pol-dlx"));
    assert_eq!((&e.sources.overflow, &e.sources.dead_letter_routing_key), (&Some(pol()), &Some(pol())));
    assert_eq!(e.policy_name(), Some("pol"));
    // Neither: nothing set, drop-head by default.
    let e = merge(&[], None, None);
    assert_eq!(
        (e.config.max_length, e.config.overflow, e.sources),
        (None, Overflow::DropHead, Sources::default())
    );
}

#[test]
fn quorum_queues_take_the_policys_overflow() {
    let args = [
        ("x-queue-type", text("quorum")),
        ("x-overflow", text("drop-head")),
        ("x-delivery-limit", AMQPValue::LongInt(5)),
    ];
    let e = merge(
        &args,
        Some(json!({"overflow": "reject-publish", "delivery-limit": 2, "dead-letter-exchange": "d"})),
        None,
    );
    assert_eq!((e.config.overflow, e.config.delivery_limit), (Overflow::RejectPublish, Some(2)));
    assert_eq!((e.sources.overflow, e.sources.delivery_limit), (Some(pol()), Some(pol())));
    assert!(e.config.quorum && e.config.dead_letter_exchange.as_deref() == Some("d"));
}

#[test]
fn delivery_limit_minimum_unless_unlimited() {
    let arg = [("x-delivery-limit", AMQPValue::LongInt(5))];
    assert_eq!(merge(&arg, Some(json!({"delivery-limit": 3})), None).config.delivery_limit, Some(3));
    assert_eq!(merge(&arg, Some(json!({"delivery-limit": 9})), None).config.delivery_limit, Some(5));
    let e = merge(&arg, Some(json!({"delivery-limit": -1})), None);
    assert_eq!((e.config.delivery_limit, e.sources.delivery_limit), (Some(5), Some(Source::Argument)));
    let e = merge(&[], Some(json!({"delivery-limit": -1})), Some(json!({"delivery-limit": 4})));
    assert_eq!((e.config.delivery_limit, e.sources.delivery_limit), (Some(4), Some(opol())));
    let e = merge(&[], Some(json!({"delivery-limit": -1})), None);
    assert_eq!(e.config.delivery_limit, None, "negative: unlimited");
    // Classic queues take it from a policy too (a Warren extension).
    let e = merge(&[], Some(json!({"delivery-limit": 2})), None);
    assert!(e.config.delivery_limit == Some(2) && e.config.counts_deliveries());
}

#[test]
fn operator_policy_merges_with_the_users() {
    let e = merge(
        &[("x-max-length", AMQPValue::LongInt(100))],
        Some(
            json!({"max-length": 50, "message-ttl": 100, "overflow": "drop-head", "queue-version": 1, "dead-letter-exchange": "d"}),
        ),
        Some(
            json!({"max-length": 20, "message-ttl": 900, "overflow": "reject-publish", "queue-version": 2, "expires": 60000}),
        ),
    );
    let c = &e.config;
    assert_eq!((c.max_length, c.message_ttl, c.expires), (Some(20), Some(100), Some(60000)));
    assert_eq!(c.overflow, Overflow::RejectPublish, "the operator's overflow wins");
    let s = &e.sources;
    assert_eq!(
        (&s.max_length, &s.message_ttl, &s.expires, &s.overflow),
        (&Some(opol()), &Some(pol()), &Some(opol()), &Some(opol()))
    );
    assert_eq!((e.policy_name(), e.operator_policy_name()), (Some("pol"), Some("op")));
    // As RabbitMQ shows it: the two definitions merged, not the arguments.
    assert_eq!(
        Value::Object(e.policy_definition()),
        json!({"max-length": 20, "message-ttl": 100, "overflow": "reject-publish", "queue-version": 2,
               "dead-letter-exchange": "d", "expires": 60000})
    );
    // An operator policy alone.
    let e = merge(&[], None, Some(json!({"max-length": 7})));
    assert_eq!((e.config.max_length, e.policy_name()), (Some(7), None));
    assert_eq!(Value::Object(e.policy_definition()), json!({"max-length": 7}));
}

#[test]
fn a_max_age_ending_in_a_multibyte_character_is_refused_not_a_panic() {
    for bad in ["1é", "é", "ééé", "1D\u{1F600}"] {
        let def = serde_json::json!({ "max-age": bad });
        assert!(Policy::parse("p", ".*", ApplyTo::All, 0, &def, Kind::User).is_err(), "{bad}");
    }
    let ok = serde_json::json!({ "max-age": "7D" });
    assert!(Policy::parse("p", ".*", ApplyTo::All, 0, &ok, Kind::User).is_ok());
}
