//! Policies and operator policies, as RabbitMQ has them: a name, a pattern
//! on queue / exchange names, what kind of object it applies to, a
//! priority and a definition (`{"max-length": 10, …}`). This module parses
//! and validates them (with RabbitMQ's texts), reads and writes RabbitMQ's
//! definitions JSON shape, matches them to names and merges them with an
//! object's own arguments (`merge.rs`). Applying them to live queues and
//! exchanges is `vhost_policy.rs`'s job. May use `serde_json`, `regex`.
//!
//! Patterns are compiled once, when a policy is set, with the `regex` crate
//! (linear time: no pattern can stall a declaration). Like RabbitMQ's PCRE
//! they are unanchored (a match anywhere counts; anchor with `^…$`). Where
//! the syntax differs from PCRE: no backreferences (`\1`) and no look-around
//! (`(?=`, `(?!`, `(?<=`, `(?<!`) — such a pattern is refused when set, with
//! the compiler's message; `\w`, `\d` and `.` are Unicode-aware; `$` matches
//! only at the very end (PCRE also before a final newline).

mod merge;
mod validate;

pub use merge::{Effective, Source, Sources};
pub use validate::erlang_term;

use serde_json::{Map, Value};

use crate::broker::queue::Overflow;

/// Which namespace a policy lives in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// `rabbitmqctl set_policy`, `/api/policies`.
    User,
    /// `rabbitmqctl set_operator_policy`, `/api/operator-policies`: limits
    /// an operator imposes, merged with the user's policy.
    Operator,
}

impl Kind {
    /// The store's control space for this kind (and RabbitMQ's runtime
    /// parameter component name).
    pub fn space(self) -> &'static str {
        match self {
            Kind::User => "policy",
            Kind::Operator => "operator_policy",
        }
    }

    pub fn from_space(space: &str) -> Option<Kind> {
        match space {
            "policy" => Some(Kind::User),
            "operator_policy" => Some(Kind::Operator),
            _ => None,
        }
    }
}

/// What kind of object a policy applies to (`apply-to`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum ApplyTo {
    #[default]
    All,
    Queues,
    Exchanges,
    ClassicQueues,
    QuorumQueues,
    Streams,
}

/// The type of a queue, as `apply-to` tells them apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueueType {
    Classic,
    Quorum,
    Stream,
}

impl ApplyTo {
    pub fn parse(s: &str) -> Result<ApplyTo, PolicyError> {
        Ok(match s {
            "all" => ApplyTo::All,
            "queues" => ApplyTo::Queues,
            "exchanges" => ApplyTo::Exchanges,
            "classic_queues" => ApplyTo::ClassicQueues,
            "quorum_queues" => ApplyTo::QuorumQueues,
            "streams" => ApplyTo::Streams,
            _ => {
                return Err(PolicyError::Invalid(format!(
                    "apply-to '{s}' unrecognised; should be 'queues', 'classic_queues', \
                     'quorum_queues', 'streams', 'exchanges' or 'all'"
                )))
            }
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ApplyTo::All => "all",
            ApplyTo::Queues => "queues",
            ApplyTo::Exchanges => "exchanges",
            ApplyTo::ClassicQueues => "classic_queues",
            ApplyTo::QuorumQueues => "quorum_queues",
            ApplyTo::Streams => "streams",
        }
    }

    fn takes_queue(self, ty: QueueType) -> bool {
        match self {
            ApplyTo::All | ApplyTo::Queues => true,
            ApplyTo::ClassicQueues => ty == QueueType::Classic,
            ApplyTo::QuorumQueues => ty == QueueType::Quorum,
            ApplyTo::Streams => ty == QueueType::Stream,
            ApplyTo::Exchanges => false,
        }
    }

    /// Whether some object could be subject to both.
    pub fn overlaps(self, other: ApplyTo) -> bool {
        use ApplyTo::*;
        let queues = |a: ApplyTo| matches!(a, Queues | ClassicQueues | QuorumQueues | Streams);
        match (self, other) {
            (All, _) | (_, All) => true,
            (Queues, b) | (b, Queues) => queues(b),
            (a, b) => a == b,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    /// Refused as RabbitMQ refuses it; the text is RabbitMQ's reason (the
    /// admin API shows it after "Validation failed").
    #[error("{0}")]
    Invalid(String),
    #[error("the policy could not be written to disk; see the broker log")]
    Store,
}

pub type Result<T, E = PolicyError> = std::result::Result<T, E>;

/// The definition's keys Warren acts on, read once when the policy is set
/// (the hot path never looks at JSON). The rest (`queue-mode`,
/// `queue-version`, `max-age`, `consumer-timeout`, quorum and stream
/// tuning) is accepted, kept and shown, but changes nothing: Warren pages
/// queues out by itself, whatever their mode or version.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Settings {
    pub message_ttl: Option<u64>,
    pub expires: Option<u64>,
    pub max_length: Option<u64>,
    pub max_length_bytes: Option<u64>,
    pub overflow: Option<Overflow>,
    pub dead_letter_exchange: Option<String>,
    pub dead_letter_routing_key: Option<String>,
    /// Negative: unlimited (as in RabbitMQ 4).
    pub delivery_limit: Option<i64>,
    pub alternate_exchange: Option<String>,
}

/// A validated policy with its pattern compiled.
#[derive(Debug, Clone)]
pub struct Policy {
    pub name: String,
    pub pattern: String,
    regex: regex::Regex,
    pub apply_to: ApplyTo,
    pub priority: i64,
    /// As it was set (shown as is).
    pub definition: Map<String, Value>,
    /// What Warren acts on, read from `definition`.
    pub settings: Settings,
    pub kind: Kind,
}

impl PartialEq for Policy {
    fn eq(&self, o: &Self) -> bool {
        (&self.name, &self.pattern, self.apply_to, self.priority, &self.definition, self.kind)
            == (&o.name, &o.pattern, o.apply_to, o.priority, &o.definition, o.kind)
    }
}

/// Bounds what one pattern may compile to: a typo must not take the
/// broker's memory.
const REGEX_SIZE_LIMIT: usize = 1 << 20;

impl Policy {
    /// Validates a policy as RabbitMQ does: the pattern must compile, the
    /// definition must be a non-empty object whose keys are allowed for
    /// `kind`, each with a value of the right type and range.
    pub fn parse(
        name: &str,
        pattern: &str,
        apply_to: ApplyTo,
        priority: i64,
        definition: &Value,
        kind: Kind,
    ) -> Result<Policy> {
        let regex = regex::RegexBuilder::new(pattern).size_limit(REGEX_SIZE_LIMIT).build().map_err(|e| {
            PolicyError::Invalid(format!(
                "pattern should be regular expression but is invalid: {}{}",
                one_line(&e.to_string()),
                pcre_hint(pattern)
            ))
        })?;
        let Value::Object(definition) = definition else {
            return Err(PolicyError::Invalid(format!(
                "definition should be a JSON object but was {}",
                erlang_term(definition)
            )));
        };
        let settings = validate::definition(definition, kind)?;
        Ok(Policy {
            name: name.to_owned(),
            pattern: pattern.to_owned(),
            regex,
            apply_to,
            priority,
            definition: definition.clone(),
            settings,
            kind,
        })
    }

    /// A policy from the body of RabbitMQ's `PUT /api/policies/{vhost}/{name}`
    /// (or an entry of a definitions file): `pattern` and `definition`
    /// required, `apply-to` defaults to "all", `priority` to 0 and may be a
    /// string of digits. Other fields (`vhost`, `name`) are ignored here.
    pub fn from_json(name: &str, body: &Value, kind: Kind) -> Result<Policy> {
        let missing = |key: &str| PolicyError::Invalid(format!("[{{key_missing,{key}}}]"));
        let pattern = match body.get("pattern") {
            Some(Value::String(s)) => s.as_str(),
            Some(other) => {
                return Err(PolicyError::Invalid(format!(
                    "pattern should be a binary but was {}",
                    erlang_term(other)
                )))
            }
            None => return Err(missing("pattern")),
        };
        let definition = body.get("definition").ok_or_else(|| missing("definition"))?;
        let apply_to = match body.get("apply-to") {
            None | Some(Value::Null) => ApplyTo::All,
            Some(Value::String(s)) => ApplyTo::parse(s)?,
            Some(other) => ApplyTo::parse(&erlang_term(other))?,
        };
        let priority = match body.get("priority") {
            None | Some(Value::Null) => 0,
            Some(Value::Number(n)) if n.is_i64() => n.as_i64().unwrap_or(0),
            // Leniency: some tools write the priority as a string.
            Some(Value::String(s)) if s.trim().parse::<i64>().is_ok() => s.trim().parse().unwrap_or(0),
            Some(other) => {
                return Err(PolicyError::Invalid(format!(
                    "priority should be a number, actually was {}",
                    erlang_term(other)
                )))
            }
        };
        Policy::parse(name, pattern, apply_to, priority, definition, kind)
    }

    /// An entry of a definitions file (`{"vhost","name","pattern",…}`), or
    /// a stored record: the vhost it belongs to and the policy.
    pub fn from_definitions(entry: &Value, kind: Kind) -> Result<(String, Policy)> {
        let text = |key: &str| match entry.get(key) {
            Some(Value::String(s)) => Ok(s.clone()),
            _ => Err(PolicyError::Invalid(format!("[{{key_missing,{key}}}]"))),
        };
        let (vhost, name) = (text("vhost")?, text("name")?);
        let policy = Policy::from_json(&name, entry, kind)?;
        Ok((vhost, policy))
    }

    /// RabbitMQ's definitions shape, as `GET /api/policies` shows it.
    pub fn to_json(&self, vhost: &str) -> Value {
        serde_json::json!({
            "vhost": vhost,
            "name": self.name,
            "pattern": self.pattern,
            "apply-to": self.apply_to.as_str(),
            "definition": self.definition,
            "priority": self.priority,
        })
    }

    pub fn matches_queue(&self, name: &str, ty: QueueType) -> bool {
        self.apply_to.takes_queue(ty) && self.regex.is_match(name)
    }

    pub fn matches_exchange(&self, name: &str) -> bool {
        matches!(self.apply_to, ApplyTo::All | ApplyTo::Exchanges) && self.regex.is_match(name)
    }

    /// Whether this one is chosen before `other` when both match: the
    /// higher priority, then (RabbitMQ leaves it to chance; Warren does
    /// not) the name that sorts first.
    pub fn precedes(&self, other: &Policy) -> bool {
        (std::cmp::Reverse(self.priority), &self.name) < (std::cmp::Reverse(other.priority), &other.name)
    }
}

/// The regex crate's messages span lines (with a caret under the fault).
fn one_line(s: &str) -> String {
    s.lines().map(str::trim).filter(|l| !l.is_empty()).collect::<Vec<_>>().join(" ")
}

/// Says why a pattern PCRE takes is refused here.
fn pcre_hint(pattern: &str) -> &'static str {
    let lookaround = ["(?=", "(?!", "(?<=", "(?<!"].iter().any(|l| pattern.contains(l));
    let backreference = pattern.as_bytes().windows(2).any(|w| w[0] == b'\\' && w[1].is_ascii_digit());
    if lookaround || backreference {
        " (Warren's patterns have no look-around or backreferences)"
    } else {
        ""
    }
}

#[cfg(test)]
mod tests;
