//! A queue under policies: the settings in force (its arguments and the
//! policies that apply to it, merged) and putting new ones in force at
//! once. They live in the queue's `State`, so the publish path reads them
//! under the lock it takes anyway: no extra lock, no allocation.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use serde_json::{Map, Value};

use super::{now_ms, Queue};
use crate::broker::policy::{Effective, Policy};

impl Queue {
    /// The settings in force and where each came from.
    pub fn effective(&self) -> Arc<Effective> {
        self.state.lock().eff.clone()
    }

    /// The policy that applies to the queue, if any.
    pub fn policy_name(&self) -> Option<String> {
        self.effective().policy_name().map(str::to_owned)
    }

    /// The operator policy that applies to the queue, if any.
    pub fn operator_policy_name(&self) -> Option<String> {
        self.effective().operator_policy_name().map(str::to_owned)
    }

    /// The policies' definitions merged, as RabbitMQ shows them (without
    /// the queue's arguments).
    pub fn effective_policy_definition(&self) -> Map<String, Value> {
        self.effective().policy_definition()
    }

    /// The policies in force (to skip putting the same ones in force again).
    pub(crate) fn applied_policies(&self) -> (Option<Arc<Policy>>, Option<Arc<Policy>>) {
        let eff = self.effective();
        (eff.policy.clone(), eff.operator_policy.clone())
    }

    /// Puts these policies in force now. Returns whether the effective
    /// `expires` changed: the caller then starts an expiry watcher.
    ///
    /// A lower length limit trims the queue at once (drop-head: dead-lettered
    /// with reason `maxlen`; reject-publish only refuses later publishes), as
    /// RabbitMQ's `init_max_length` does. A message's expiry is fixed when it
    /// arrives, in RabbitMQ as here: a new `message-ttl` applies to messages
    /// published afterwards. A new `expires` counts from now (RabbitMQ
    /// re-arms its expiry timer). Dead-letter targets and the delivery limit
    /// are read when they are needed, so later ones use the new values.
    pub(crate) fn apply_policies(
        self: &Arc<Self>,
        policy: Option<Arc<Policy>>,
        operator_policy: Option<Arc<Policy>>,
    ) -> bool {
        let eff = Effective::merge(&self.arguments, &self.config, policy, operator_policy);
        if let Some(s) = self.stream() {
            s.set_retention(crate::broker::stream::args::retention(
                &self.arguments,
                &eff.policy_definition(),
            ));
        }
        let mut st = self.state.lock();
        if st.deleted {
            return false;
        }
        let rearm = eff.config.expires != st.eff.config.expires;
        if rearm {
            self.last_used.store(now_ms(), Ordering::Relaxed);
            self.expires.store(eff.config.expires.unwrap_or(0), Ordering::Relaxed);
            self.expiry_generation.fetch_add(1, Ordering::AcqRel);
        }
        st.eff = Arc::new(eff);
        self.drop_head(&mut st);
        self.expire_due(&mut st);
        self.dispatch(&mut st);
        self.finish(st);
        rearm
    }
}

#[cfg(test)]
mod tests {
    use amq_protocol::types::FieldTable;
    use bytes::Bytes;
    use serde_json::json;

    use super::*;
    use crate::broker::message::Message;
    use crate::broker::policy::{ApplyTo, Kind};

    fn msg(body: String) -> Arc<Message> {
        let (exchange, key) = (Bytes::new(), Bytes::from_static(b"q"));
        Arc::new(Message::new(exchange, key, Bytes::new(), Default::default(), Bytes::from(body)))
    }

    fn policy(def: serde_json::Value) -> Option<Arc<Policy>> {
        Some(Arc::new(Policy::parse("p", ".*", ApplyTo::All, 0, &def, Kind::User).unwrap()))
    }

    fn body(q: &Arc<Queue>) -> String {
        String::from_utf8(q.get(true).unwrap().0.message.body().to_vec()).unwrap()
    }

    #[test]
    fn a_lower_limit_trims_at_once_and_clearing_reverts() {
        let q = Arc::new(Queue::new("q".into(), "/".into(), false, None, false, FieldTable::default()));
        for i in 1..=10 {
            assert!(q.publish(msg(format!("m{i}"))));
        }
        assert!(!q.apply_policies(policy(json!({"max-length": 4})), None), "expires did not change");
        assert_eq!(q.message_count(), 4);
        assert_eq!(body(&q), "m7", "the oldest went");
        assert_eq!(q.policy_name().as_deref(), Some("p"));
        // reject-publish keeps what is there and refuses what comes.
        q.apply_policies(policy(json!({"max-length": 2, "overflow": "reject-publish"})), None);
        assert_eq!(q.message_count(), 3);
        assert!(!q.publish(msg("refused".into())));
        q.apply_policies(None, None);
        assert!(q.publish(msg("m11".into())));
        assert_eq!((q.message_count(), q.policy_name()), (4, None));
        assert!(q.effective().sources.max_length.is_none());
    }

    #[test]
    fn expires_from_a_policy_counts_from_now() {
        let q = Arc::new(Queue::new("q".into(), "/".into(), false, None, false, FieldTable::default()));
        let generation = q.expiry_generation();
        assert!(q.apply_policies(policy(json!({"expires": 60_000})), None));
        assert_eq!(q.expires_after(), Some(60_000));
        assert_ne!(q.expiry_generation(), generation);
        assert!(q.expires_at().unwrap() >= now_ms() + 59_000);
        assert!(!q.apply_policies(policy(json!({"expires": 60_000, "max-length": 1})), None));
        assert!(q.apply_policies(None, None));
        assert_eq!((q.expires_after(), q.expires_at()), (None, None));
    }
}
