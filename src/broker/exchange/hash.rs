//! Hash routing: each message goes to exactly one destination, chosen by a
//! hash of its routing key (or of a header or property).
//!
//! - `x-consistent-hash` (RabbitMQ's plugin): a binding's key is its weight
//!   (1 ..= 10,000). Warren picks by weighted rendezvous hashing: every
//!   destination scores `weight / -ln(u)`, `u` a hash of (key, destination
//!   name) in (0, 1), and the highest wins. Each destination gets its
//!   weight's share; adding or removing one moves only the keys it gains
//!   or loses; and the choice depends on names, not on the order bindings
//!   were made, so it is the same after a restart. The exchange arguments
//!   `hash-header` or `hash-property` (`message_id`, `correlation_id`,
//!   `timestamp`) choose what is hashed.
//! - `x-modulus-hash` (RabbitMQ 4.3): the destinations sorted by kind and
//!   name, the one at `hash(routing key) mod count`. Cheaper, but adding or
//!   removing a binding moves most keys.
//!
//! As in RabbitMQ, a destination bound twice counts once (its first
//! binding's weight).

use amq_protocol::types::FieldTable;

use super::list::BindingList;
use super::{Binding, Destination};
use crate::broker::Message;
use crate::protocol::table::as_str;
use crate::protocol::AmqpError;

/// RabbitMQ's largest binding weight.
const MAX_WEIGHT: i64 = 10_000;

/// What is hashed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum HashOn {
    RoutingKey,
    Header(String),
    MessageId,
    CorrelationId,
    Timestamp,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Mode {
    Consistent,
    Modulus,
}

/// One destination as the hash sees it.
#[derive(Debug)]
struct Candidate {
    destination: Destination,
    /// Sorts queues after exchanges, then by name (RabbitMQ's order).
    order: (bool, String),
    /// A hash of the name: mixed with the key's hash for its score.
    seed: u64,
    weight: f64,
}

#[derive(Debug)]
pub(super) struct Table {
    mode: Mode,
    on: HashOn,
    bindings: BindingList,
    /// One per destination, sorted by `order`.
    candidates: Vec<Candidate>,
}

impl Table {
    pub fn new(mode: Mode, arguments: &FieldTable) -> Table {
        let on = if mode == Mode::Consistent {
            hash_on(arguments).unwrap_or(HashOn::RoutingKey)
        } else {
            HashOn::RoutingKey
        };
        Table { mode, on, bindings: BindingList::default(), candidates: Vec::new() }
    }

    pub fn add(&mut self, b: Binding) -> bool {
        let candidate = self.candidate(&b);
        if !self.bindings.add(b) {
            return false;
        }
        if let Err(at) = self.candidates.binary_search_by(|c| c.order.cmp(&candidate.order)) {
            self.candidates.insert(at, candidate);
        }
        true
    }

    pub fn remove(&mut self, b: &Binding) -> bool {
        if self.bindings.remove(b).is_none() {
            return false;
        }
        let order = order_of(&b.destination);
        if let Ok(at) = self.candidates.binary_search_by(|c| c.order.cmp(&order)) {
            // Another binding to the same destination takes over its weight.
            match self.bindings.iter().find(|o| o.destination.same(&b.destination)).cloned() {
                Some(other) => self.candidates[at] = self.candidate(&other),
                None => {
                    self.candidates.remove(at);
                }
            }
        }
        true
    }

    fn candidate(&self, b: &Binding) -> Candidate {
        let order = order_of(&b.destination);
        let seed = mix(hash_bytes(order.1.as_bytes()) ^ u64::from(order.0));
        let weight = b.key.trim().parse::<i64>().unwrap_or(1).clamp(1, MAX_WEIGHT) as f64;
        Candidate { destination: b.destination.clone(), order, seed, weight }
    }

    pub fn all(&self) -> Vec<Binding> {
        self.bindings.to_vec()
    }

    pub fn is_empty(&self) -> bool {
        self.bindings.is_empty()
    }

    pub fn route(&self, routing_key: &[u8], msg: &Message, out: &mut Vec<Destination>) {
        if self.candidates.is_empty() {
            return;
        }
        let key = self.key_hash(routing_key, msg);
        let chosen = match self.mode {
            Mode::Modulus => &self.candidates[(key % self.candidates.len() as u64) as usize],
            Mode::Consistent => {
                let score = |c: &Candidate| {
                    // u in (0, 1), never 0 or 1: 53 bits of the mixed hash.
                    let u = ((mix(key ^ c.seed) >> 11) as f64 + 0.5) / (1u64 << 53) as f64;
                    c.weight / -u.ln()
                };
                let mut best = &self.candidates[0];
                let mut best_score = score(best);
                for c in &self.candidates[1..] {
                    let s = score(c);
                    if s > best_score {
                        (best, best_score) = (c, s);
                    }
                }
                best
            }
        };
        out.push(chosen.destination.clone());
    }

    /// The hash of what this exchange hashes on; a missing header or
    /// property hashes as empty (all such messages go to one place, as in
    /// RabbitMQ).
    fn key_hash(&self, routing_key: &[u8], msg: &Message) -> u64 {
        let value: Vec<u8>;
        let bytes: &[u8] = match &self.on {
            HashOn::RoutingKey => routing_key,
            HashOn::Header(name) => {
                let table = msg.info.headers.map(|r| &msg.header()[r.range()]);
                match table.and_then(|t| crate::protocol::table::find(t, name.as_bytes())) {
                    // A string hashes as its text, whichever string type carried it.
                    Some([b'S', rest @ ..]) if rest.len() >= 4 => &rest[4..],
                    Some(raw) => raw,
                    None => &[],
                }
            }
            HashOn::MessageId | HashOn::CorrelationId | HashOn::Timestamp => {
                let p = msg.properties();
                value = match &self.on {
                    HashOn::MessageId => p.message_id().as_ref().map(|s| s.as_str().as_bytes().to_vec()),
                    HashOn::CorrelationId => {
                        p.correlation_id().as_ref().map(|s| s.as_str().as_bytes().to_vec())
                    }
                    _ => p.timestamp().map(|t| t.to_string().into_bytes()),
                }
                .unwrap_or_default();
                &value
            }
        };
        mix(hash_bytes(bytes))
    }
}

fn order_of(d: &Destination) -> (bool, String) {
    match d {
        Destination::Queue(q) => (true, q.name.clone()),
        Destination::Exchange(x) => (false, x.name.clone()),
    }
}

/// `hash-header` / `hash-property`, if one is set.
fn hash_on(arguments: &FieldTable) -> Option<HashOn> {
    let args = arguments.inner();
    if let Some(h) = args.get("hash-header").and_then(as_str) {
        return Some(HashOn::Header(h.to_owned()));
    }
    match args.get("hash-property").and_then(as_str)? {
        "message_id" => Some(HashOn::MessageId),
        "correlation_id" => Some(HashOn::CorrelationId),
        "timestamp" => Some(HashOn::Timestamp),
        _ => None,
    }
}

/// The consistent-hash exchange's arguments, checked as RabbitMQ's plugin does.
pub(super) fn validate_exchange(arguments: &FieldTable) -> Result<(), AmqpError> {
    let args = arguments.inner();
    let (header, property) = (args.get("hash-header"), args.get("hash-property"));
    if header.is_some() && property.is_some() {
        return Err(AmqpError::precondition_failed("hash-header and hash-property are mutually exclusive"));
    }
    if let Some(h) = header {
        if as_str(h).is_none_or(str::is_empty) {
            return Err(AmqpError::precondition_failed("hash-header must be a non-empty string"));
        }
    }
    if let Some(p) = property {
        if hash_on(arguments).is_none() {
            return Err(AmqpError::precondition_failed(format!(
                "Unsupported property: {}",
                as_str(p).map_or_else(|| crate::protocol::table::describe(p), str::to_owned)
            )));
        }
    }
    Ok(())
}

/// A consistent-hash binding's key is its weight: RabbitMQ's texts.
pub(super) fn validate_binding(key: &str) -> Result<(), AmqpError> {
    match key.parse::<i64>() {
        Err(_) => {
            Err(AmqpError::precondition_failed(format!("The binding key must be an integer: <<\"{key}\">>")))
        }
        Ok(w) if w < 1 => Err(AmqpError::precondition_failed("The binding key must be greater than 0")),
        Ok(w) if w > MAX_WEIGHT => {
            Err(AmqpError::precondition_failed(format!("The binding key must not exceed {MAX_WEIGHT}")))
        }
        Ok(_) => Ok(()),
    }
}

/// FNV-1a: fixed forever, so a key's place survives upgrades and restarts.
fn hash_bytes(b: &[u8]) -> u64 {
    b.iter().fold(0xcbf2_9ce4_8422_2325, |h, &x| (h ^ u64::from(x)).wrapping_mul(0x0100_0000_01b3))
}

/// SplitMix64's finaliser: spreads FNV's weak low bits over all 64.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weights_are_validated_with_rabbitmqs_texts() {
        assert!(validate_binding("1").is_ok());
        assert!(validate_binding("10000").is_ok());
        let text = |k| validate_binding(k).unwrap_err().text.replace("PRECONDITION_FAILED - ", "");
        assert_eq!(text("0"), "The binding key must be greater than 0");
        assert_eq!(text("-3"), "The binding key must be greater than 0");
        assert_eq!(text("10001"), "The binding key must not exceed 10000");
        assert_eq!(text("abc"), "The binding key must be an integer: <<\"abc\">>");
    }

    #[test]
    fn hashing_is_fixed() {
        // Changing these changes where every existing key is routed.
        assert_eq!(hash_bytes(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(hash_bytes(b"a"), 0xaf63_dc4c_8601_ec8c);
    }
}

#[cfg(test)]
mod distribution {
    use std::sync::Arc;

    use bytes::Bytes;

    use super::*;
    use crate::broker::queue::Queue;
    use crate::protocol::properties::{encode_header, ContentHeader};

    fn queue(name: &str) -> Arc<Queue> {
        Arc::new(Queue::new(name.into(), "/".into(), false, None, false, FieldTable::default()))
    }

    fn message() -> Message {
        let header = encode_header(0, &Default::default());
        let info = ContentHeader::scan(&header).expect("scans");
        Message::new(Bytes::new(), Bytes::new(), header, info, Bytes::new())
    }

    fn bind(t: &mut Table, q: &Arc<Queue>, weight: u32) -> Binding {
        let b = Binding {
            destination: Destination::Queue(q.clone()),
            key: weight.to_string(),
            arguments: FieldTable::default(),
        };
        assert!(t.add(b.clone()));
        b
    }

    fn pick(t: &Table, key: &str, msg: &Message) -> String {
        let mut out = Vec::new();
        t.route(key.as_bytes(), msg, &mut out);
        match out.as_slice() {
            [Destination::Queue(q)] => q.name.clone(),
            other => panic!("routed to {} destinations", other.len()),
        }
    }

    #[test]
    fn shares_follow_the_weights_and_keys_stay_put() {
        let msg = message();
        let mut t = Table::new(Mode::Consistent, &FieldTable::default());
        let qs: Vec<_> = ["a", "b", "c", "d"].iter().map(|n| queue(n)).collect();
        let weights = [1u32, 1, 2, 4];
        let bindings: Vec<_> = qs.iter().zip(weights).map(|(q, w)| bind(&mut t, q, w)).collect();
        const KEYS: usize = 1_000_000;
        let mut counts = std::collections::HashMap::<String, usize>::new();
        let mut first = Vec::with_capacity(KEYS);
        for i in 0..KEYS {
            let q = pick(&t, &format!("key-{i}"), &msg);
            *counts.entry(q.clone()).or_default() += 1;
            first.push(q);
        }
        for (q, w) in qs.iter().zip(weights) {
            let expected = KEYS as f64 * f64::from(w) / 8.0;
            let got = counts[&q.name] as f64;
            assert!((got - expected).abs() / expected < 0.05, "{}: {got} for an expected {expected}", q.name);
        }
        // Removing "b" moves only b's keys; nothing else changes place.
        assert!(t.remove(&bindings[1]));
        for (i, before) in first.iter().enumerate().step_by(7) {
            let now = pick(&t, &format!("key-{i}"), &msg);
            if before != "b" {
                assert_eq!(&now, before, "key-{i} moved though its queue stayed");
            }
        }
        // Bindings made in another order choose the same way.
        let mut other = Table::new(Mode::Consistent, &FieldTable::default());
        for (q, w) in qs.iter().zip(weights).rev() {
            bind(&mut other, q, w);
        }
        assert!(other.remove(&bindings[1]));
        for i in (0..KEYS).step_by(101) {
            let key = format!("key-{i}");
            assert_eq!(pick(&t, &key, &msg), pick(&other, &key, &msg));
        }
    }

    #[test]
    fn modulus_spreads_evenly_and_a_queue_bound_twice_counts_once() {
        let msg = message();
        let mut t = Table::new(Mode::Modulus, &FieldTable::default());
        let qs: Vec<_> = ["q1", "q2", "q3"].iter().map(|n| queue(n)).collect();
        for q in &qs {
            bind(&mut t, q, 1);
        }
        bind(&mut t, &qs[0], 5);
        let mut counts = std::collections::HashMap::<String, usize>::new();
        for i in 0..300_000 {
            *counts.entry(pick(&t, &i.to_string(), &msg)).or_default() += 1;
        }
        for q in &qs {
            let got = counts[&q.name] as f64;
            assert!((got - 100_000.0).abs() < 5_000.0, "{}: {got}", q.name);
        }
    }
}
