//! Identity and access: users with hashed passwords (in RabbitMQ's formats,
//! see `password`), their tags, and their permissions per vhost (configure /
//! write / read patterns, and topic permissions), kept in the store's
//! control records. The connection layer asks it who may log in and what a
//! channel may do (`session`); the admin API changes it. The broker never
//! imports it. May use `store`, `protocol` and `config`.
//!
//! Every change bumps `generation`; sessions compare it (one relaxed load)
//! and re-read their grants, so a change applies to open connections at once.

pub mod password;
pub mod pattern;
mod records;
pub mod session;

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::{Mutex, RwLock};
use tracing::warn;

use crate::store::{Op, StoreHandle};
pub use password::{Algorithm, HashError, PasswordHash};
pub use pattern::Pattern;
pub use records::{PermissionInfo, TopicPermissionInfo, UserInfo, UserLimits};
pub use session::{Resource, Session};

/// The tags the admin API knows; others are kept and shown but grant nothing.
pub const TAGS: [&str; 5] = ["administrator", "monitoring", "policymaker", "management", "impersonator"];

/// A user who may log in.
#[derive(Debug, Clone)]
pub struct User {
    pub name: String,
    pub hash: PasswordHash,
    pub tags: Vec<String>,
    pub limits: UserLimits,
}

impl User {
    pub fn has_tag(&self, tag: &str) -> bool {
        self.tags.iter().any(|t| t == tag)
    }
}

/// configure / write / read of one user in one vhost.
#[derive(Debug, Clone, PartialEq)]
pub struct Permission {
    pub configure: Pattern,
    pub write: Pattern,
    pub read: Pattern,
}

/// Routing-key patterns of one user for one topic exchange in one vhost.
#[derive(Debug, Clone, PartialEq)]
pub struct TopicPermission {
    pub exchange: String,
    pub write: Pattern,
    pub read: Pattern,
}

/// How a user's password is given. Its `Debug` never shows the password.
#[derive(Clone)]
pub enum Credential {
    /// In clear: hashed here (SHA-256, salted) and dropped.
    Password(String),
    /// Already hashed, as a definitions file or rabbitmqadmin v2 sends it.
    Hash { hash: String, algorithm: String },
    /// No password login at all (RabbitMQ's `"password_hash": ""`).
    None,
}

impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Credential::Password(_) => f.write_str("Password(<redacted>)"),
            Credential::Hash { algorithm, .. } => write!(f, "Hash {{ algorithm: {algorithm:?}, .. }}"),
            Credential::None => f.write_str("None"),
        }
    }
}

/// Why a change was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AccessError {
    #[error("{0}")]
    Invalid(String),
    #[error("no_such_user")]
    NoSuchUser(String),
    #[error("the change could not be written to disk")]
    Store,
}

#[derive(Debug, Default)]
struct State {
    users: BTreeMap<String, Arc<User>>,
    /// By (vhost, user).
    permissions: BTreeMap<(String, String), Arc<Permission>>,
    /// By (vhost, user), each exchange once.
    topics: BTreeMap<(String, String), Arc<[TopicPermission]>>,
}

/// The users and their permissions.
#[derive(Debug)]
pub struct Access {
    state: RwLock<State>,
    /// Serialises changes with their writes, so the store sees them in order.
    changes: Mutex<()>,
    generation: AtomicU64,
    store: Option<StoreHandle>,
    loopback_users: Vec<String>,
    /// Checked for unknown names, so a refusal takes as long either way and
    /// does not tell which names exist.
    decoy: PasswordHash,
    failed_logins: AtomicU64,
    /// AMQP logins that succeeded and failed (Prometheus' `auth_attempts_*`).
    amqp_logins: [AtomicU64; 2],
}

/// Why a login was refused (for the log; the client sees one generic text).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LoginRefused {
    NoSuchUser,
    BadPassword,
    LoopbackOnly,
}

impl std::fmt::Display for LoginRefused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            LoginRefused::NoSuchUser => "user unknown or wrong password",
            LoginRefused::BadPassword => "user unknown or wrong password",
            LoginRefused::LoopbackOnly => "user can only connect via localhost",
        })
    }
}

impl Access {
    pub fn new(store: Option<StoreHandle>, loopback_users: Vec<String>) -> Access {
        Access {
            state: RwLock::new(State::default()),
            changes: Mutex::new(()),
            generation: AtomicU64::new(1),
            store,
            loopback_users,
            decoy: PasswordHash::new(""),
            failed_logins: AtomicU64::new(0),
            amqp_logins: Default::default(),
        }
    }

    /// Users, permissions and topic permissions from the store's control
    /// records; a record that does not decode is logged and skipped.
    pub fn restore<'a>(&self, control: impl IntoIterator<Item = (&'a str, &'a [u8])>) {
        let mut s = self.state.write();
        for (space, value) in control {
            let restored = match space {
                records::USER => records::decode_user(value).map(|u| {
                    s.users.insert(u.name.clone(), Arc::new(u));
                }),
                records::PERMISSION => records::decode_permission(value).map(|(vhost, user, p)| {
                    s.permissions.insert((vhost, user), Arc::new(p));
                }),
                records::TOPIC_PERMISSION => records::decode_topic(value).map(|(vhost, user, t)| {
                    let key = (vhost, user);
                    let mut list: Vec<_> = s.topics.get(&key).map(|l| l.to_vec()).unwrap_or_default();
                    list.push(t);
                    s.topics.insert(key, list.into());
                }),
                _ => continue,
            };
            if let Err(e) = restored {
                warn!(space, "skipping a damaged access record: {e}");
            }
        }
    }

    pub fn has_users(&self) -> bool {
        !self.state.read().users.is_empty()
    }

    /// Bumped by every change: sessions re-read their grants when it moves.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    pub fn failed_logins(&self) -> u64 {
        self.failed_logins.load(Ordering::Relaxed)
    }

    /// Counts an AMQP login attempt.
    pub fn count_amqp_login(&self, ok: bool) {
        self.amqp_logins[usize::from(!ok)].fetch_add(1, Ordering::Relaxed);
    }

    /// AMQP logins so far: (succeeded, failed).
    pub fn amqp_logins(&self) -> (u64, u64) {
        (self.amqp_logins[0].load(Ordering::Relaxed), self.amqp_logins[1].load(Ordering::Relaxed))
    }

    fn changed(&self) {
        self.generation.fetch_add(1, Ordering::AcqRel);
    }

    fn persist(&self, ops: Vec<Op>) -> Result<(), AccessError> {
        match &self.store {
            Some(store) if !ops.is_empty() => {
                store.write_durably(ops).then_some(()).ok_or(AccessError::Store)
            }
            _ => Ok(()),
        }
    }

    /// Whether `name` may log in with `password` from `peer`. A blank
    /// password never does (RabbitMQ's internal backend refuses it too).
    pub fn authenticate(&self, name: &str, password: &str, peer: IpAddr) -> Result<Arc<User>, LoginRefused> {
        let user = self.state.read().users.get(name).cloned();
        let verdict = match user {
            Some(u) => {
                if !u.hash.verify(password) || password.is_empty() {
                    Err(LoginRefused::BadPassword)
                } else if self.loopback_users.iter().any(|l| l == name) && !is_loopback(peer) {
                    Err(LoginRefused::LoopbackOnly)
                } else {
                    Ok(u)
                }
            }
            None => {
                let _ = self.decoy.verify(password);
                Err(LoginRefused::NoSuchUser)
            }
        };
        if verdict.is_err() {
            self.failed_logins.fetch_add(1, Ordering::Relaxed);
        }
        verdict
    }

    pub fn user(&self, name: &str) -> Option<Arc<User>> {
        self.state.read().users.get(name).cloned()
    }

    pub fn users(&self) -> Vec<UserInfo> {
        self.state.read().users.values().map(|u| UserInfo::of(u)).collect()
    }

    /// Creates or changes a user. `credential` None keeps the password of an
    /// existing user (a new one gets no password login); `tags` None keeps
    /// the tags. Returns (created, password changed).
    pub fn put_user(
        &self,
        name: &str,
        credential: Option<Credential>,
        tags: Option<Vec<String>>,
    ) -> Result<(bool, bool), AccessError> {
        if name.is_empty() {
            return Err(AccessError::Invalid("user name must not be empty".into()));
        }
        let _serial = self.changes.lock();
        let old = self.state.read().users.get(name).cloned();
        let hash = match credential {
            Some(Credential::Password(p)) if p.is_empty() => {
                return Err(AccessError::Invalid("a blank password never logs in".into()))
            }
            // The same password again (tools re-declare users on every run)
            // is no change: the hash is kept, so its connections stay open
            // and handshakes in flight are not refused.
            Some(Credential::Password(p)) => match &old {
                Some(o) if o.hash.verify(&p) => Some(o.hash.clone()),
                _ => Some(PasswordHash::new(&p)),
            },
            Some(Credential::Hash { hash, algorithm }) => Some(
                PasswordHash::from_base64(&hash, &algorithm)
                    .map_err(|e| AccessError::Invalid(e.to_string()))?,
            ),
            Some(Credential::None) => {
                Some(PasswordHash::from_base64("", Algorithm::Sha256.name()).expect("empty"))
            }
            None => None,
        };
        let password_changed =
            old.is_some() && hash.as_ref().is_some_and(|h| Some(h) != old.as_ref().map(|o| &o.hash));
        let user = User {
            name: name.to_owned(),
            hash: hash
                .or_else(|| old.as_ref().map(|o| o.hash.clone()))
                .unwrap_or_else(|| PasswordHash::from_base64("", Algorithm::Sha256.name()).expect("empty")),
            tags: tags.or_else(|| old.as_ref().map(|o| o.tags.clone())).unwrap_or_default(),
            limits: old.as_ref().map(|o| o.limits).unwrap_or_default(),
        };
        self.persist(vec![records::put_user(&user)])?;
        self.state.write().users.insert(name.to_owned(), Arc::new(user));
        self.changed();
        Ok((old.is_none(), password_changed))
    }

    /// Replaces a user's limits; false if there is no such user. Open
    /// connections see the new limits at their next check (RabbitMQ's way:
    /// nothing already open is closed).
    pub fn set_user_limits(&self, name: &str, limits: UserLimits) -> Result<bool, AccessError> {
        self.update_user_limits(name, |l| *l = limits)
    }

    /// Changes a user's limits with `f`, serialised with every other change.
    pub fn update_user_limits(
        &self,
        name: &str,
        f: impl FnOnce(&mut UserLimits),
    ) -> Result<bool, AccessError> {
        let _serial = self.changes.lock();
        let Some(old) = self.state.read().users.get(name).cloned() else { return Ok(false) };
        let mut limits = old.limits;
        f(&mut limits);
        if old.limits == limits {
            return Ok(true);
        }
        let user = User { limits, ..User::clone(&old) };
        self.persist(vec![records::put_user(&user)])?;
        self.state.write().users.insert(name.to_owned(), Arc::new(user));
        self.changed();
        Ok(true)
    }

    /// Deletes a user and every permission it had; false if there was none.
    pub fn delete_user(&self, name: &str) -> Result<bool, AccessError> {
        let _serial = self.changes.lock();
        let (perms, topics): (Vec<_>, Vec<_>) = {
            let s = self.state.read();
            if !s.users.contains_key(name) {
                return Ok(false);
            }
            (
                s.permissions.keys().filter(|(_, u)| u == name).cloned().collect(),
                s.topics
                    .iter()
                    .filter(|((_, u), _)| u == name)
                    .flat_map(|((v, u), l)| l.iter().map(|t| (v.clone(), u.clone(), t.exchange.clone())))
                    .collect(),
            )
        };
        let mut ops = vec![records::delete(records::USER, name.to_owned())];
        ops.extend(perms.iter().map(|(v, u)| records::delete(records::PERMISSION, records::pair_key(v, u))));
        ops.extend(
            topics
                .iter()
                .map(|(v, u, x)| records::delete(records::TOPIC_PERMISSION, records::topic_key(v, u, x))),
        );
        self.persist(ops)?;
        let mut s = self.state.write();
        s.users.remove(name);
        s.permissions.retain(|(_, u), _| u != name);
        s.topics.retain(|(_, u), _| u != name);
        drop(s);
        self.changed();
        Ok(true)
    }

    pub fn permission(&self, vhost: &str, user: &str) -> Option<Arc<Permission>> {
        self.state.read().permissions.get(&(vhost.to_owned(), user.to_owned())).cloned()
    }

    pub fn permissions(&self) -> Vec<PermissionInfo> {
        self.state.read().permissions.iter().map(|((v, u), p)| PermissionInfo::of(v, u, p)).collect()
    }

    /// Sets a user's permissions in a vhost (the caller checked the vhost
    /// exists). Returns whether they are new.
    pub fn set_permission(
        &self,
        vhost: &str,
        user: &str,
        configure: &str,
        write: &str,
        read: &str,
    ) -> Result<bool, AccessError> {
        let p = Permission {
            configure: Pattern::new(configure).map_err(AccessError::Invalid)?,
            write: Pattern::new(write).map_err(AccessError::Invalid)?,
            read: Pattern::new(read).map_err(AccessError::Invalid)?,
        };
        let _serial = self.changes.lock();
        if !self.state.read().users.contains_key(user) {
            return Err(AccessError::NoSuchUser(user.to_owned()));
        }
        self.persist(vec![records::put_permission(vhost, user, &p)])?;
        let old = self.state.write().permissions.insert((vhost.to_owned(), user.to_owned()), Arc::new(p));
        self.changed();
        Ok(old.is_none())
    }

    /// Removes a user's permissions in a vhost; false if it had none.
    pub fn clear_permission(&self, vhost: &str, user: &str) -> Result<bool, AccessError> {
        let _serial = self.changes.lock();
        let key = (vhost.to_owned(), user.to_owned());
        if !self.state.read().permissions.contains_key(&key) {
            return Ok(false);
        }
        self.persist(vec![records::delete(records::PERMISSION, records::pair_key(vhost, user))])?;
        self.state.write().permissions.remove(&key);
        self.changed();
        Ok(true)
    }

    pub fn topic_permissions(&self) -> Vec<TopicPermissionInfo> {
        let s = self.state.read();
        s.topics
            .iter()
            .flat_map(|((v, u), l)| l.iter().map(move |t| TopicPermissionInfo::of(v, u, t)))
            .collect()
    }

    pub fn topic_permissions_of(&self, vhost: &str, user: &str) -> Option<Arc<[TopicPermission]>> {
        self.state.read().topics.get(&(vhost.to_owned(), user.to_owned())).cloned()
    }

    /// Sets a user's routing-key patterns for one exchange in a vhost.
    pub fn set_topic_permission(
        &self,
        vhost: &str,
        user: &str,
        exchange: &str,
        write: &str,
        read: &str,
    ) -> Result<bool, AccessError> {
        let t = TopicPermission {
            exchange: exchange.to_owned(),
            write: Pattern::expanded(write, user, vhost).map_err(AccessError::Invalid)?,
            read: Pattern::expanded(read, user, vhost).map_err(AccessError::Invalid)?,
        };
        let _serial = self.changes.lock();
        if !self.state.read().users.contains_key(user) {
            return Err(AccessError::NoSuchUser(user.to_owned()));
        }
        self.persist(vec![records::put_topic(vhost, user, &t)])?;
        let key = (vhost.to_owned(), user.to_owned());
        let mut s = self.state.write();
        let mut list: Vec<_> = s.topics.get(&key).map(|l| l.to_vec()).unwrap_or_default();
        let created = !list.iter().any(|x| x.exchange == exchange);
        list.retain(|x| x.exchange != exchange);
        list.push(t);
        s.topics.insert(key, list.into());
        drop(s);
        self.changed();
        Ok(created)
    }

    /// Removes a user's topic permissions in a vhost: for one exchange, or
    /// all of them. False if there were none.
    pub fn clear_topic_permissions(
        &self,
        vhost: &str,
        user: &str,
        exchange: Option<&str>,
    ) -> Result<bool, AccessError> {
        let _serial = self.changes.lock();
        let key = (vhost.to_owned(), user.to_owned());
        let Some(list) = self.state.read().topics.get(&key).cloned() else { return Ok(false) };
        let gone: Vec<_> = list.iter().filter(|t| exchange.is_none_or(|x| t.exchange == x)).collect();
        if gone.is_empty() {
            return Ok(false);
        }
        self.persist(
            gone.iter()
                .map(|t| {
                    records::delete(records::TOPIC_PERMISSION, records::topic_key(vhost, user, &t.exchange))
                })
                .collect(),
        )?;
        let kept: Vec<_> =
            list.iter().filter(|t| exchange.is_some_and(|x| t.exchange != x)).cloned().collect();
        let mut s = self.state.write();
        if kept.is_empty() {
            s.topics.remove(&key);
        } else {
            s.topics.insert(key, kept.into());
        }
        drop(s);
        self.changed();
        Ok(true)
    }

    /// Drops every permission in a deleted vhost.
    pub fn vhost_deleted(&self, vhost: &str) -> Result<(), AccessError> {
        let _serial = self.changes.lock();
        let (perms, topics): (Vec<_>, Vec<_>) = {
            let s = self.state.read();
            (
                s.permissions.keys().filter(|(v, _)| v == vhost).cloned().collect(),
                s.topics
                    .iter()
                    .filter(|((v, _), _)| v == vhost)
                    .flat_map(|((v, u), l)| l.iter().map(|t| records::topic_key(v, u, &t.exchange)))
                    .collect(),
            )
        };
        let mut ops: Vec<_> = perms
            .iter()
            .map(|(v, u)| records::delete(records::PERMISSION, records::pair_key(v, u)))
            .collect();
        ops.extend(topics.into_iter().map(|k| records::delete(records::TOPIC_PERMISSION, k)));
        self.persist(ops)?;
        let mut s = self.state.write();
        s.permissions.retain(|(v, _), _| v != vhost);
        s.topics.retain(|(v, _), _| v != vhost);
        drop(s);
        self.changed();
        Ok(())
    }

    /// The grants a connection of `user` to `vhost` checks against.
    pub fn session(self: &Arc<Self>, user: &str, vhost: &str) -> Session {
        Session::new(self.clone(), user, vhost)
    }

    /// Users by name, with the tags they hold (for lists and exports).
    pub fn tags_by_user(&self) -> HashMap<String, Vec<String>> {
        self.state.read().users.values().map(|u| (u.name.clone(), u.tags.clone())).collect()
    }
}

fn is_loopback(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_loopback(),
        IpAddr::V6(v6) => v6.is_loopback() || v6.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback()),
    }
}

#[cfg(test)]
mod tests;
