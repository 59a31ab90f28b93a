//! How users and permissions are kept in the store's control records: JSON
//! in RabbitMQ's definitions shape (so a record reads like an export), keyed
//! by name. Also the views the admin API lists. Pure.

use serde::{Deserialize, Serialize};

use super::{Pattern, Permission, TopicPermission, User};
use crate::access::PasswordHash;
use crate::store::Op;

pub const USER: &str = "user";
pub const PERMISSION: &str = "permission";
pub const TOPIC_PERMISSION: &str = "topic_permission";

/// A user as the API and definitions show it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UserInfo {
    pub name: String,
    pub password_hash: String,
    pub hashing_algorithm: String,
    pub tags: Vec<String>,
    /// Shown as `{}` when none is set, as RabbitMQ does; absent in records
    /// written before user limits existed.
    #[serde(default)]
    pub limits: UserLimits,
}

/// A user's `max-connections` and `max-channels` (RabbitMQ's user limits).
/// A negative value means no limit; RabbitMQ keeps and shows it as given.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserLimits {
    #[serde(rename = "max-connections", skip_serializing_if = "Option::is_none", default)]
    pub max_connections: Option<i64>,
    #[serde(rename = "max-channels", skip_serializing_if = "Option::is_none", default)]
    pub max_channels: Option<i64>,
}

impl UserLimits {
    pub const NAMES: [&'static str; 2] = ["max-connections", "max-channels"];

    pub fn is_empty(&self) -> bool {
        self.max_connections.is_none() && self.max_channels.is_none()
    }

    /// The limit a name stands for.
    pub fn slot(&mut self, name: &str) -> Option<&mut Option<i64>> {
        match name {
            "max-connections" => Some(&mut self.max_connections),
            "max-channels" => Some(&mut self.max_channels),
            _ => None,
        }
    }

    /// How many connections the user may have open; None: no limit.
    pub fn connections(&self) -> Option<u64> {
        self.max_connections.and_then(|n| u64::try_from(n).ok())
    }

    /// How many channels the user may have open, over all its connections.
    pub fn channels(&self) -> Option<u64> {
        self.max_channels.and_then(|n| u64::try_from(n).ok())
    }
}

impl UserInfo {
    pub fn of(u: &User) -> UserInfo {
        UserInfo {
            name: u.name.clone(),
            password_hash: u.hash.to_base64(),
            hashing_algorithm: u.hash.algorithm().name().to_owned(),
            tags: u.tags.clone(),
            limits: u.limits,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PermissionInfo {
    pub user: String,
    pub vhost: String,
    pub configure: String,
    pub write: String,
    pub read: String,
}

impl PermissionInfo {
    pub fn of(vhost: &str, user: &str, p: &Permission) -> PermissionInfo {
        PermissionInfo {
            user: user.to_owned(),
            vhost: vhost.to_owned(),
            configure: p.configure.as_str().to_owned(),
            write: p.write.as_str().to_owned(),
            read: p.read.as_str().to_owned(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TopicPermissionInfo {
    pub user: String,
    pub vhost: String,
    pub exchange: String,
    pub write: String,
    pub read: String,
}

impl TopicPermissionInfo {
    pub fn of(vhost: &str, user: &str, t: &TopicPermission) -> TopicPermissionInfo {
        TopicPermissionInfo {
            user: user.to_owned(),
            vhost: vhost.to_owned(),
            exchange: t.exchange.clone(),
            write: t.write.as_str().to_owned(),
            read: t.read.as_str().to_owned(),
        }
    }
}

/// A key of two names that cannot collide (`"a:b" + "c"` vs `"a" + ":bc"`).
pub fn pair_key(vhost: &str, user: &str) -> String {
    format!("{}:{vhost}{user}", vhost.len())
}

pub fn topic_key(vhost: &str, user: &str, exchange: &str) -> String {
    format!("{}:{vhost}{}:{user}{exchange}", vhost.len(), user.len())
}

pub fn delete(space: &str, key: String) -> Op {
    Op::DeleteControl { space: space.to_owned(), key }
}

fn put(space: &str, key: String, value: &impl Serialize) -> Op {
    let value = serde_json::to_vec(value).expect("plain structs serialise");
    Op::PutControl { space: space.to_owned(), key, value }
}

pub fn put_user(u: &User) -> Op {
    put(USER, u.name.clone(), &UserInfo::of(u))
}

pub fn put_permission(vhost: &str, user: &str, p: &Permission) -> Op {
    put(PERMISSION, pair_key(vhost, user), &PermissionInfo::of(vhost, user, p))
}

pub fn put_topic(vhost: &str, user: &str, t: &TopicPermission) -> Op {
    put(TOPIC_PERMISSION, topic_key(vhost, user, &t.exchange), &TopicPermissionInfo::of(vhost, user, t))
}

pub fn decode_user(value: &[u8]) -> Result<User, String> {
    let u: UserInfo = serde_json::from_slice(value).map_err(|e| e.to_string())?;
    let hash =
        PasswordHash::from_base64(&u.password_hash, &u.hashing_algorithm).map_err(|e| e.to_string())?;
    Ok(User { name: u.name, hash, tags: u.tags, limits: u.limits })
}

pub fn decode_permission(value: &[u8]) -> Result<(String, String, Permission), String> {
    let p: PermissionInfo = serde_json::from_slice(value).map_err(|e| e.to_string())?;
    let perm = Permission {
        configure: Pattern::new(&p.configure)?,
        write: Pattern::new(&p.write)?,
        read: Pattern::new(&p.read)?,
    };
    Ok((p.vhost, p.user, perm))
}

pub fn decode_topic(value: &[u8]) -> Result<(String, String, TopicPermission), String> {
    let t: TopicPermissionInfo = serde_json::from_slice(value).map_err(|e| e.to_string())?;
    let perm = TopicPermission {
        exchange: t.exchange,
        write: Pattern::expanded(&t.write, &t.user, &t.vhost)?,
        read: Pattern::expanded(&t.read, &t.user, &t.vhost)?,
    };
    Ok((t.vhost, t.user, perm))
}
