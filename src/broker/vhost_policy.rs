//! A vhost's policies and operator policies: set, cleared, listed, kept in
//! the store (as control records in RabbitMQ's definitions JSON), restored
//! at start-up, and put in force on the queues and exchanges they match —
//! existing ones at once, new ones when they are declared or restored.
//!
//! Changes are serialised by the vhost's topology lock, like declarations,
//! so a queue declared while a policy is set gets it either way.

use std::sync::Arc;

use tracing::warn;

use super::exchange::Exchange;
use super::policy::{Kind, Policy, PolicyError};
use super::queue::Queue;
use super::vhost::VHost;
use crate::store::Op;

/// A vhost's policies of each kind, each list in precedence order (the
/// first that matches an object is the one that applies to it).
#[derive(Debug, Default)]
pub struct Policies {
    user: Vec<Arc<Policy>>,
    operator: Vec<Arc<Policy>>,
}

impl Policies {
    fn of(&self, kind: Kind) -> &Vec<Arc<Policy>> {
        match kind {
            Kind::User => &self.user,
            Kind::Operator => &self.operator,
        }
    }

    fn of_mut(&mut self, kind: Kind) -> &mut Vec<Arc<Policy>> {
        match kind {
            Kind::User => &mut self.user,
            Kind::Operator => &mut self.operator,
        }
    }

    /// Adds or replaces a policy, keeping precedence order.
    fn put(&mut self, policy: Arc<Policy>) {
        let list = self.of_mut(policy.kind);
        list.retain(|p| p.name != policy.name);
        let at = list.partition_point(|p| p.precedes(&policy));
        list.insert(at, policy);
    }

    fn for_queue(&self, kind: Kind, q: &Queue) -> Option<Arc<Policy>> {
        self.of(kind).iter().find(|p| p.matches_queue(&q.name, q.queue_type())).cloned()
    }
}

/// The same policy (or none) as before.
fn same(a: &Option<Arc<Policy>>, b: &Option<Arc<Policy>>) -> bool {
    match (a, b) {
        (Some(a), Some(b)) => Arc::ptr_eq(a, b),
        (None, None) => true,
        _ => false,
    }
}

impl VHost {
    /// Sets (adds or replaces) a policy: written to the store, then put in
    /// force on every queue and exchange of the vhost. Returns a warning
    /// when another policy of the same kind has the same priority and could
    /// apply to the same objects: RabbitMQ then picks one at random; Warren
    /// picks the name that sorts first, but the setup is likely a mistake.
    pub fn set_policy(self: &Arc<Self>, policy: Policy, kind: Kind) -> Result<Option<String>, PolicyError> {
        if policy.kind != kind {
            return Err(PolicyError::Invalid(format!(
                "policy '{}' was validated as a {} policy, not a {} one",
                policy.name,
                policy.kind.space(),
                kind.space()
            )));
        }
        Ok(self.set_policies(vec![policy])?.pop())
    }

    /// Sets several policies (of either kind) at once: all written, then put
    /// in force together, so no queue ever sees a state between them (a
    /// catch-all policy set alone first would trim queues a more specific
    /// one protects). Returns the warnings of `set_policy`.
    pub fn set_policies(self: &Arc<Self>, policies: Vec<Policy>) -> Result<Vec<String>, PolicyError> {
        let _changes = self.policy_changes.lock();
        // Submitted under the topology lock (so not after the vhost's
        // deletion record), waited for without it.
        {
            let _topology = self.topology.lock();
            if self.is_deleted() {
                return Err(PolicyError::Invalid(format!("vhost '{}' is deleted", self.name)));
            }
            if let Some(store) = &self.store {
                let records = policies.iter().map(|policy| Op::PutControl {
                    space: policy.kind.space().to_owned(),
                    key: self.policy_key(&policy.name),
                    value: serde_json::to_vec(&policy.to_json(&self.name)).expect("JSON values serialise"),
                });
                store.submit_all(records.collect());
            }
        }
        if self.store.as_ref().is_some_and(|store| !store.write_durably([])) {
            return Err(PolicyError::Store);
        }
        let _topology = self.topology.lock();
        if self.is_deleted() {
            // Deleted while the records were written: they go too.
            self.forget_policy_records(policies.iter().map(|p| (p.kind, p.name.as_str())));
            return Err(PolicyError::Invalid(format!("vhost '{}' is deleted", self.name)));
        }
        let mut warnings = Vec::new();
        {
            let mut all = self.policies.write();
            for policy in policies {
                let rival = all.of(policy.kind).iter().find(|p| {
                    p.name != policy.name
                        && p.priority == policy.priority
                        && p.apply_to.overlaps(policy.apply_to)
                });
                if let Some(r) = rival {
                    let first = if r.name < policy.name { &r.name } else { &policy.name };
                    warnings.push(format!(
                        "policy '{}' has the same priority ({}) as policy '{}' in vhost '{}' and both may \
                         apply to the same objects; where both match, '{first}' applies",
                        policy.name, policy.priority, r.name, self.name
                    ));
                }
                all.put(Arc::new(policy));
            }
        }
        self.reapply_policies();
        Ok(warnings)
    }

    /// Removes a policy (and its record); false if there was none by that name.
    pub fn clear_policy(self: &Arc<Self>, name: &str, kind: Kind) -> bool {
        let _changes = self.policy_changes.lock();
        {
            let _topology = self.topology.lock();
            let mut all = self.policies.write();
            let list = all.of_mut(kind);
            let before = list.len();
            list.retain(|p| p.name != name);
            if list.len() == before {
                return false;
            }
            self.forget_policy_records([(kind, name)]);
        }
        // Waited for without the topology lock; what is in force changes
        // once the record is gone.
        if self.store.as_ref().is_some_and(|store| !store.write_durably([])) {
            warn!(vhost = %self.name, policy = name, "clearing a policy could not be written to disk");
        }
        let _topology = self.topology.lock();
        self.reapply_policies();
        true
    }

    /// Submits the deletion of policies' records.
    fn forget_policy_records<'a>(&self, policies: impl IntoIterator<Item = (Kind, &'a str)>) {
        if let Some(store) = &self.store {
            for (kind, name) in policies {
                store
                    .submit(Op::DeleteControl { space: kind.space().to_owned(), key: self.policy_key(name) });
            }
        }
    }

    /// The policies of `kind`, by name.
    pub fn policies(&self, kind: Kind) -> Vec<Policy> {
        let mut out: Vec<Policy> = self.policies.read().of(kind).iter().map(|p| (**p).clone()).collect();
        out.sort_by(|a, b| a.name.cmp(&b.name));
        out
    }

    pub fn policy(&self, name: &str, kind: Kind) -> Option<Policy> {
        self.policies.read().of(kind).iter().find(|p| p.name == name).map(|p| (**p).clone())
    }

    /// Takes back this vhost's policies from the store's control records
    /// (`(space, value)`; other spaces and other vhosts' records are
    /// skipped, a record that does not parse is logged and skipped), and
    /// puts them in force on what the vhost already has.
    pub fn restore_policies<'a>(self: &Arc<Self>, records: impl Iterator<Item = (&'a str, &'a [u8])>) {
        let _topology = self.topology.lock();
        for (space, value) in records {
            let Some(kind) = Kind::from_space(space) else { continue };
            let parsed = serde_json::from_slice(value)
                .map_err(|e| PolicyError::Invalid(e.to_string()))
                .and_then(|v| Policy::from_definitions(&v, kind));
            match parsed {
                Ok((vhost, policy)) if vhost == self.name => self.policies.write().put(Arc::new(policy)),
                Ok(_) => {}
                Err(e) => warn!(space, error = %e, "skipping a stored policy that does not parse"),
            }
        }
        self.reapply_policies();
    }

    /// Forgets every policy and its record (the vhost is being deleted).
    pub fn drop_policies(&self) {
        let all = std::mem::take(&mut *self.policies.write());
        let user = all.user.iter().map(|p| (Kind::User, p.name.as_str()));
        self.forget_policy_records(
            user.chain(all.operator.iter().map(|p| (Kind::Operator, p.name.as_str()))),
        );
    }

    /// A policy's key in its control space: the vhost's name, length first
    /// (so no vhost / name split is ambiguous), then the policy's.
    fn policy_key(&self, name: &str) -> String {
        format!("{}:{}{}", self.name.len(), self.name, name)
    }

    /// Puts the matching policies in force on a queue being declared or
    /// restored (which then starts its own expiry watcher).
    pub(super) fn apply_policies_to_queue(&self, q: &Arc<Queue>) {
        let (user, op) = {
            let all = self.policies.read();
            (all.for_queue(Kind::User, q), all.for_queue(Kind::Operator, q))
        };
        let (cur_user, cur_op) = q.applied_policies();
        if !same(&cur_user, &user) || !same(&cur_op, &op) {
            q.apply_policies(user, op);
        }
    }

    /// Puts the matching policy in force on an exchange. Operator policies
    /// have nothing for exchanges.
    pub(super) fn apply_policy_to_exchange(&self, ex: &Exchange) {
        let policy = self.policies.read().user.iter().find(|p| p.matches_exchange(&ex.name)).cloned();
        if !same(&ex.policy(), &policy) {
            ex.set_policy(policy);
        }
    }

    /// After a change of policies: every queue and exchange gets the ones
    /// that now apply. Topology lock held.
    fn reapply_policies(self: &Arc<Self>) {
        let queues: Vec<Arc<Queue>> = self.queues.read().values().cloned().collect();
        for q in queues {
            let (user, op) = {
                let all = self.policies.read();
                (all.for_queue(Kind::User, &q), all.for_queue(Kind::Operator, &q))
            };
            let (cur_user, cur_op) = q.applied_policies();
            if (!same(&cur_user, &user) || !same(&cur_op, &op)) && q.apply_policies(user, op) {
                // The old watcher (if any) stops; this one follows the new `expires`.
                self.watch_expiry(&q);
            }
        }
        for name in self.exchange_names() {
            if let Some(ex) = self.exchange(&name) {
                self.apply_policy_to_exchange(&ex);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use amq_protocol::types::{AMQPValue, FieldTable, LongString};
    use bytes::Bytes;
    use serde_json::json;

    use super::*;
    use crate::broker::message::Message;
    use crate::broker::policy::ApplyTo;
    use crate::broker::vhost::{ExchangeDecl, QueueDecl, Router};

    fn vhost() -> Arc<VHost> {
        Arc::new(VHost::new("/", None))
    }

    fn declare(v: &Arc<VHost>, name: &str, arguments: FieldTable) -> Arc<Queue> {
        let d = QueueDecl { name: name.into(), arguments, ..Default::default() };
        v.declare_queue(d, 1).unwrap().queue
    }

    fn policy(name: &str, pattern: &str, priority: i64, def: serde_json::Value, kind: Kind) -> Policy {
        Policy::parse(name, pattern, ApplyTo::All, priority, &def, kind).unwrap()
    }

    #[test]
    fn existing_and_new_queues_get_the_highest_priority_policy() {
        let v = vhost();
        let old = declare(&v, "q-old", FieldTable::default());
        assert_eq!(
            v.set_policy(policy("b", "^q-", 1, json!({"max-length": 5}), Kind::User), Kind::User),
            Ok(None)
        );
        assert_eq!(old.effective().config.max_length, Some(5));
        let warning =
            v.set_policy(policy("a", "^q-", 1, json!({"max-length": 7}), Kind::User), Kind::User).unwrap();
        assert!(warning.unwrap().contains("same priority (1) as policy 'b'"));
        assert_eq!(old.policy_name().as_deref(), Some("a"), "equal priorities: the first name");
        v.set_policy(policy("top", "^q-new", 9, json!({"max-length": 1}), Kind::User), Kind::User).unwrap();
        let new = declare(&v, "q-new", FieldTable::default());
        assert_eq!((new.policy_name().as_deref(), new.effective().config.max_length), (Some("top"), Some(1)));
        assert_eq!(
            v.policies(Kind::User).iter().map(|p| p.name.as_str()).collect::<Vec<_>>(),
            ["a", "b", "top"]
        );
        assert!(v.policies(Kind::Operator).is_empty());
        // Cleared: the next one applies, then the arguments alone.
        assert!(v.clear_policy("a", Kind::User));
        assert!(!v.clear_policy("a", Kind::User));
        assert_eq!(old.policy_name().as_deref(), Some("b"));
        v.clear_policy("b", Kind::User);
        assert_eq!((old.policy_name(), old.effective().config.max_length), (None, None));
    }

    #[test]
    fn operator_policies_merge_and_kinds_stay_apart() {
        let v = vhost();
        let mut args = FieldTable::default();
        args.insert("x-max-length".into(), AMQPValue::LongInt(10));
        let q = declare(&v, "q", args);
        v.set_policy(policy("op", ".*", 0, json!({"max-length": 4}), Kind::Operator), Kind::Operator)
            .unwrap();
        v.set_policy(policy("p", ".*", 0, json!({"max-length": 6}), Kind::User), Kind::User).unwrap();
        assert_eq!(q.effective().config.max_length, Some(4));
        assert_eq!(
            (q.policy_name().as_deref(), q.operator_policy_name().as_deref()),
            (Some("p"), Some("op"))
        );
        let wrong = v.set_policy(policy("x", ".*", 0, json!({"max-length": 1}), Kind::User), Kind::Operator);
        assert!(matches!(wrong, Err(PolicyError::Invalid(_))));
        assert!(!v.clear_policy("p", Kind::Operator), "a user policy is not an operator policy");
        v.clear_policy("op", Kind::Operator);
        assert_eq!(q.effective().config.max_length, Some(6));
    }

    #[test]
    fn an_exchange_policy_sets_its_alternate_exchange() {
        let v = vhost();
        for (name, kind) in [("ex", "direct"), ("ae", "fanout")] {
            v.declare_exchange(ExchangeDecl { name: name.into(), kind: kind.into(), ..Default::default() })
                .unwrap();
        }
        let q = declare(&v, "caught", FieldTable::default());
        v.bind_queue("caught", "ae", "", FieldTable::default(), 1).unwrap();
        let ex = v.exchange("ex").unwrap();
        let m = Message::new(
            Bytes::from_static(b"ex"),
            Bytes::from_static(b"nowhere"),
            Bytes::new(),
            Default::default(),
            Bytes::new(),
        );
        let mut router = Router::default();
        v.route(&ex, &m, &[], &mut router);
        assert!(router.queues.is_empty());
        let p = Policy::parse(
            "ae",
            "^ex",
            ApplyTo::Exchanges,
            0,
            &json!({"alternate-exchange": "ae"}),
            Kind::User,
        )
        .unwrap();
        v.set_policy(p, Kind::User).unwrap();
        assert_eq!(ex.policy().map(|p| p.name.clone()).as_deref(), Some("ae"));
        assert!(q.policy_name().is_none(), "apply-to exchanges leaves queues alone");
        v.route(&ex, &m, &[], &mut router);
        assert_eq!(router.queues.len(), 1);
        // An exchange declared later gets it too, but its own argument wins.
        let mut arguments = FieldTable::default();
        arguments.insert("alternate-exchange".into(), AMQPValue::LongString(LongString::from("elsewhere")));
        let d = ExchangeDecl { name: "ex2".into(), kind: "direct".into(), arguments, ..Default::default() };
        v.declare_exchange(d).unwrap();
        let ex2 = v.exchange("ex2").unwrap();
        assert!(ex2.policy().is_some());
        v.route(&ex2, &m, &[], &mut router);
        assert!(router.queues.is_empty(), "to 'elsewhere', which is not there");
        v.clear_policy("ae", Kind::User);
        v.route(&ex, &m, &[], &mut router);
        assert!(router.queues.is_empty());
    }

    #[test]
    fn restore_takes_this_vhosts_records_and_skips_bad_ones() {
        let v = vhost();
        let q = declare(&v, "q", FieldTable::default());
        let mine =
            serde_json::to_vec(&policy("p", "^q$", 0, json!({"max-length": 2}), Kind::User).to_json("/"))
                .unwrap();
        let op =
            serde_json::to_vec(&policy("o", "^q$", 0, json!({"max-length": 1}), Kind::Operator).to_json("/"))
                .unwrap();
        let other =
            serde_json::to_vec(&policy("x", ".*", 5, json!({"max-length": 9}), Kind::User).to_json("other"))
                .unwrap();
        let records: Vec<(&str, &[u8])> = vec![
            ("policy", &mine),
            ("operator_policy", &op),
            ("policy", &other),
            ("policy", b"{not json"),
            ("policy", br#"{"vhost":"/","name":"bad","pattern":"x","definition":{"bogus":1}}"#),
            ("vhost", b"{}"),
        ];
        v.restore_policies(records.into_iter());
        assert_eq!(v.policies(Kind::User).len(), 1);
        assert_eq!(v.policy("o", Kind::Operator).map(|p| p.priority), Some(0));
        assert_eq!(q.effective().config.max_length, Some(1));
    }
}
