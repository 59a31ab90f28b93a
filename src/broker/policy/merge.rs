//! What a queue ends up with: its `x-` arguments, the policy and the
//! operator policy that apply to it, merged by RabbitMQ's rules, and where
//! each setting came from.
//!
//! Policy and operator policy first (`rabbit_policy:get/2`, and
//! `rabbit_policies:merge_policy_value/3`): the lower number wins for the
//! limits, the operator's value for `overflow` and `queue-version`; with a
//! negative (unlimited) `delivery-limit` on one side, the higher one.
//! Then that result and the argument (`rabbit_amqqueue_process:process_args_policy`,
//! `rabbit_quorum_queue`): the lower number wins for `expires`, `message-ttl`,
//! `max-length`, `max-length-bytes` and `delivery-limit` (which Warren also
//! honours on classic queues); the argument wins for `dead-letter-exchange`,
//! `dead-letter-routing-key` and, on classic queues, `overflow` — on
//! quorum queues the policy's `overflow` wins.

use std::sync::Arc;

use amq_protocol::types::FieldTable;
use serde_json::{Map, Value};

use super::Policy;
use crate::broker::queue::QueueConfig;

/// Where an effective setting came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// The queue's own `x-` argument.
    Argument,
    /// The named policy.
    Policy(String),
    /// The named operator policy.
    OperatorPolicy(String),
}

/// Where each setting a policy can change came from (None: not set anywhere).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Sources {
    pub message_ttl: Option<Source>,
    pub expires: Option<Source>,
    pub max_length: Option<Source>,
    pub max_length_bytes: Option<Source>,
    pub overflow: Option<Source>,
    pub dead_letter_exchange: Option<Source>,
    pub dead_letter_routing_key: Option<Source>,
    pub delivery_limit: Option<Source>,
}

/// A queue's settings in force.
#[derive(Debug, Clone, Default)]
pub struct Effective {
    /// Arguments and policies merged: what the queue does.
    pub config: QueueConfig,
    pub sources: Sources,
    pub policy: Option<Arc<Policy>>,
    pub operator_policy: Option<Arc<Policy>>,
}

/// A candidate value and where it came from.
type Pick<T> = Option<(T, Source)>;

/// Of two candidates, the one `first_wins` prefers (given both), or
/// whichever there is.
fn pick<T>(a: Pick<T>, b: Pick<T>, first_wins: impl FnOnce(&T, &T) -> bool) -> Pick<T> {
    match (a, b) {
        (Some(a), Some(b)) => Some(if first_wins(&a.0, &b.0) { a } else { b }),
        (a, b) => a.or(b),
    }
}

/// The lower wins; on a tie, the first.
fn lower<T: Ord>(a: &T, b: &T) -> bool {
    a <= b
}

/// `delivery-limit`: the lower, unless one side is negative (unlimited):
/// then the higher.
fn delivery_limit(a: &i64, b: &i64) -> bool {
    if *a < 0 || *b < 0 {
        a >= b
    } else {
        a <= b
    }
}

impl Effective {
    /// A queue under no policy: its arguments alone.
    pub fn from_args(arguments: &FieldTable, args: &QueueConfig) -> Effective {
        Effective::merge(arguments, args, None, None)
    }

    /// Merges a queue's arguments (`arguments`, read into `args`) with the
    /// policy and operator policy that apply to it.
    pub fn merge(
        arguments: &FieldTable,
        args: &QueueConfig,
        policy: Option<Arc<Policy>>,
        operator_policy: Option<Arc<Policy>>,
    ) -> Effective {
        let user = policy.as_deref().map(|p| (&p.settings, Source::Policy(p.name.clone())));
        let op = operator_policy.as_deref().map(|p| (&p.settings, Source::OperatorPolicy(p.name.clone())));
        // One setting of each policy, with its source.
        macro_rules! from {
            ($side:expr, $field:ident) => {
                $side.as_ref().and_then(|(s, src)| s.$field.clone().map(|v| (v, src.clone())))
            };
        }
        let arg = |v: Option<u64>| v.map(|v| (v, Source::Argument));
        let limit = |user_op: fn(&u64, &u64) -> bool, a: Option<u64>, u: Pick<u64>, o: Pick<u64>| {
            pick(arg(a), pick(u, o, user_op), lower)
        };
        let message_ttl = limit(lower, args.message_ttl, from!(user, message_ttl), from!(op, message_ttl));
        let expires = limit(lower, args.expires, from!(user, expires), from!(op, expires));
        let max_length = limit(lower, args.max_length, from!(user, max_length), from!(op, max_length));
        let max_length_bytes =
            limit(lower, args.max_length_bytes, from!(user, max_length_bytes), from!(op, max_length_bytes));
        let policy_overflow = pick(from!(user, overflow), from!(op, overflow), |_, _| false);
        let arg_overflow = arguments.contains_key("x-overflow").then_some((args.overflow, Source::Argument));
        let overflow = pick(arg_overflow, policy_overflow, |_, _| !args.quorum);
        let arg_text = |v: &Option<String>| v.clone().map(|v| (v, Source::Argument));
        let dead_letter_exchange =
            pick(arg_text(&args.dead_letter_exchange), from!(user, dead_letter_exchange), |_, _| true);
        let dead_letter_routing_key =
            pick(arg_text(&args.dead_letter_routing_key), from!(user, dead_letter_routing_key), |_, _| true);
        let arg_limit = args.delivery_limit.map(|v| (i64::try_from(v).unwrap_or(i64::MAX), Source::Argument));
        let limits = pick(from!(user, delivery_limit), from!(op, delivery_limit), delivery_limit);
        let delivery = pick(arg_limit, limits, delivery_limit);

        let value = |p: &Pick<u64>| p.as_ref().map(|(v, _)| *v);
        let source = |p: &Pick<u64>| p.as_ref().map(|(_, s)| s.clone());
        let config = QueueConfig {
            message_ttl: value(&message_ttl),
            expires: value(&expires),
            max_length: value(&max_length),
            max_length_bytes: value(&max_length_bytes),
            overflow: overflow.as_ref().map(|(v, _)| *v).unwrap_or_default(),
            dead_letter_exchange: dead_letter_exchange.as_ref().map(|(v, _)| v.clone()),
            dead_letter_routing_key: dead_letter_routing_key.as_ref().map(|(v, _)| v.clone()),
            delivery_limit: delivery.as_ref().and_then(|(v, _)| u64::try_from(*v).ok()),
            ..args.clone()
        };
        let sources = Sources {
            message_ttl: source(&message_ttl),
            expires: source(&expires),
            max_length: source(&max_length),
            max_length_bytes: source(&max_length_bytes),
            overflow: overflow.map(|(_, s)| s),
            dead_letter_exchange: dead_letter_exchange.map(|(_, s)| s),
            dead_letter_routing_key: dead_letter_routing_key.map(|(_, s)| s),
            delivery_limit: delivery.map(|(_, s)| s),
        };
        Effective { config, sources, policy, operator_policy }
    }

    pub fn policy_name(&self) -> Option<&str> {
        self.policy.as_deref().map(|p| p.name.as_str())
    }

    pub fn operator_policy_name(&self) -> Option<&str> {
        self.operator_policy.as_deref().map(|p| p.name.as_str())
    }

    /// RabbitMQ's `effective_policy_definition`: the policy's and the
    /// operator policy's definitions merged (not the arguments), each key
    /// present in both by the operator-policy rules.
    pub fn policy_definition(&self) -> Map<String, Value> {
        let (user, op) = (self.policy.as_deref(), self.operator_policy.as_deref());
        let mut out = user.map(|p| p.definition.clone()).unwrap_or_default();
        for (key, op_value) in op.map(|p| &p.definition).into_iter().flatten() {
            let merged = match out.get(key) {
                Some(v) => merge_value(key, v, op_value),
                None => op_value.clone(),
            };
            out.insert(key.clone(), merged);
        }
        out
    }
}

/// One key set by both a policy and an operator policy
/// (`rabbit_policies:merge_policy_value/3`).
fn merge_value(key: &str, user: &Value, op: &Value) -> Value {
    let (Some(u), Some(o)) = (user.as_i64(), op.as_i64()) else { return op.clone() };
    let user_wins = match key {
        "delivery-limit" => delivery_limit(&u, &o),
        "expires"
        | "message-ttl"
        | "max-length"
        | "max-length-bytes"
        | "max-in-memory-length"
        | "max-in-memory-bytes" => u <= o,
        _ => false,
    };
    if user_wins {
        user.clone()
    } else {
        op.clone()
    }
}
