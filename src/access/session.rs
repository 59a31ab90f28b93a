//! One connection's view of its user's permissions in its vhost: the checks
//! of RabbitMQ's access-control table, with RabbitMQ's 403 texts.
//!
//! The grants are read once and kept until `Access::generation` moves (a
//! relaxed compare per check), and the exchanges the connection was allowed
//! to publish to are remembered (a few of them), so steady publishing costs
//! one load and a comparison of the exchange name or a few: no regex, no
//! lock, no allocation.

use std::sync::Arc;

use super::{Access, Permission, TopicPermission};
use crate::protocol::{same_name, AmqpError};

/// What a permission is checked on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resource {
    Exchange,
    Queue,
}

/// Which of the three permissions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Configure,
    Write,
    Read,
}

#[derive(Debug)]
pub struct Session {
    access: Arc<Access>,
    user: String,
    vhost: String,
    generation: u64,
    grant: Option<Arc<Permission>>,
    topics: Option<Arc<[TopicPermission]>>,
    /// Exchanges publishing was allowed to, for `generation`, most recent first.
    may_publish: Vec<Box<[u8]>>,
}

/// How many exchanges a connection remembers it may publish to.
const PUBLISH_MEMO: usize = 8;

impl Session {
    pub(super) fn new(access: Arc<Access>, user: &str, vhost: &str) -> Session {
        let mut s = Session {
            access,
            user: user.to_owned(),
            vhost: vhost.to_owned(),
            generation: 0,
            grant: None,
            topics: None,
            may_publish: Vec::new(),
        };
        s.refresh();
        s
    }

    /// The user's `max-channels` as it is now (read at each `channel.open`,
    /// so a change applies to connections already open).
    pub fn channel_limit(&self) -> Option<u64> {
        self.access.user(&self.user).and_then(|u| u.limits.channels())
    }

    pub fn user(&self) -> &str {
        &self.user
    }

    fn refresh(&mut self) {
        let now = self.access.generation();
        if now != self.generation {
            self.generation = now;
            self.grant = self.access.permission(&self.vhost, &self.user);
            self.topics = self.access.topic_permissions_of(&self.vhost, &self.user);
            self.may_publish.clear();
        }
    }

    /// Whether the user may use the vhost at all (it has a permission entry there).
    pub fn may_open(&mut self) -> bool {
        self.refresh();
        self.grant.is_some()
    }

    /// Checks one row of the table; the default exchange is checked as `amq.default`.
    pub fn check(&mut self, resource: Resource, name: &str, action: Action) -> Result<(), AmqpError> {
        self.refresh();
        let name = match (resource, name) {
            (Resource::Exchange, "") => "amq.default",
            _ => name,
        };
        let allowed = self.grant.as_ref().is_some_and(|p| {
            match action {
                Action::Configure => &p.configure,
                Action::Write => &p.write,
                Action::Read => &p.read,
            }
            .matches(name)
        });
        if allowed {
            return Ok(());
        }
        let kind = match resource {
            Resource::Exchange => "exchange",
            Resource::Queue => "queue",
        };
        Err(AmqpError::access_refused(format!(
            "access to {kind} '{name}' in vhost '{}' refused for user '{}'",
            self.vhost, self.user
        )))
    }

    /// `basic.publish`: write on the exchange, remembered for the next ones.
    pub fn check_publish(&mut self, exchange: &[u8]) -> Result<(), AmqpError> {
        if self.access.generation() == self.generation {
            if let Some(i) = self.may_publish.iter().position(|x| same_name(x, exchange)) {
                if i > 0 {
                    self.may_publish[..=i].rotate_right(1);
                }
                return Ok(());
            }
        }
        self.check(Resource::Exchange, &String::from_utf8_lossy(exchange), Action::Write)?;
        self.may_publish.truncate(PUBLISH_MEMO - 1);
        self.may_publish.insert(0, exchange.into());
        Ok(())
    }

    /// Whether topic permissions may restrict anything (none set: all allowed).
    pub fn has_topic_permissions(&mut self) -> bool {
        self.refresh();
        self.topics.is_some()
    }

    /// A routing key used to publish to (`Write`) or bind to (`Read`) a topic
    /// exchange, against the user's topic permissions for that exchange.
    pub fn check_topic(
        &mut self,
        exchange: &str,
        routing_key: &str,
        action: Action,
    ) -> Result<(), AmqpError> {
        self.refresh();
        let Some(topics) = &self.topics else { return Ok(()) };
        let Some(t) = topics.iter().find(|t| t.exchange == exchange) else { return Ok(()) };
        let pattern = if action == Action::Read { &t.read } else { &t.write };
        if pattern.matches(routing_key) {
            return Ok(());
        }
        Err(AmqpError::access_refused(format!(
            "access to topic '{routing_key}' in exchange '{exchange}' in vhost '{}' refused for user '{}'",
            self.vhost, self.user
        )))
    }
}
