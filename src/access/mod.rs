//! Identity and access: who may connect. Users with hashed passwords (in
//! RabbitMQ's formats, see `password`), checked in constant time; a
//! password is never kept, logged or compared in clear. May use `config`.

pub mod password;

use std::collections::HashMap;
use std::net::IpAddr;

use crate::config::UserConfig;
pub use password::{Algorithm, HashError, PasswordHash};

/// A user who may log in.
#[derive(Debug, Clone)]
pub struct User {
    pub name: String,
    pub hash: PasswordHash,
    /// Like RabbitMQ's `loopback_users`: only from 127.0.0.0/8 or ::1.
    pub loopback_only: bool,
}

/// The users, by name.
#[derive(Debug)]
pub struct Users {
    by_name: HashMap<String, User>,
    /// Checked for unknown names, so a refusal takes as long either way and
    /// does not tell which names exist.
    decoy: PasswordHash,
}

impl Users {
    /// The configured users; plain passwords are hashed here and dropped.
    pub fn from_config(users: &[UserConfig]) -> Result<Users, HashError> {
        let mut by_name = HashMap::with_capacity(users.len());
        for u in users {
            let hash = match (&u.password, &u.password_hash) {
                (Some(password), _) => PasswordHash::new(password),
                (None, Some(hash)) => PasswordHash::from_base64(
                    hash,
                    u.hashing_algorithm.as_deref().unwrap_or(Algorithm::Sha256.name()),
                )?,
                // No password at all: password login disabled, as RabbitMQ's "".
                (None, None) => PasswordHash::from_base64("", Algorithm::Sha256.name())?,
            };
            by_name
                .insert(u.name.clone(), User { name: u.name.clone(), hash, loopback_only: u.loopback_only });
        }
        Ok(Users { by_name, decoy: PasswordHash::new("") })
    }

    pub fn get(&self, name: &str) -> Option<&User> {
        self.by_name.get(name)
    }

    /// Whether `name` may log in with `password` from `peer`. A blank
    /// password never does (RabbitMQ's internal backend refuses it too).
    pub fn authenticate(&self, name: &str, password: &str, peer: IpAddr) -> bool {
        match self.by_name.get(name) {
            Some(u) => {
                u.hash.verify(password) && !password.is_empty() && (!u.loopback_only || is_loopback(peer))
            }
            None => {
                let _ = self.decoy.verify(password);
                false
            }
        }
    }
}

fn is_loopback(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_loopback(),
        IpAddr::V6(v6) => v6.is_loopback() || v6.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(name: &str, password: Option<&str>, hash: Option<&str>) -> UserConfig {
        UserConfig {
            name: name.into(),
            password: password.map(Into::into),
            password_hash: hash.map(Into::into),
            hashing_algorithm: None,
            loopback_only: false,
        }
    }

    #[test]
    fn guest_only_from_loopback() {
        let users = Users::from_config(&crate::config::Config::default().users).unwrap();
        assert!(users.authenticate("guest", "guest", "127.0.0.1".parse().unwrap()));
        assert!(users.authenticate("guest", "guest", "::1".parse().unwrap()));
        assert!(!users.authenticate("guest", "guest", "10.1.2.3".parse().unwrap()));
        assert!(!users.authenticate("guest", "nope", "127.0.0.1".parse().unwrap()));
        assert!(!users.authenticate("nobody", "guest", "127.0.0.1".parse().unwrap()));
    }

    #[test]
    fn plain_passwords_are_hashed_and_hashes_taken_as_given() {
        let users = Users::from_config(&[
            user("plain", Some("pw"), None),
            user("demo-u", None, Some("+KrZ07Ddfi2P/RuwhviWo2YG4zEuawwOL3qqKpMqk/4CtVul")),
            user("no-login", None, None),
        ])
        .unwrap();
        let any = "10.0.0.1".parse().unwrap();
        assert!(users.authenticate("plain", "pw", any));
        assert_ne!(users.get("plain").unwrap().hash.to_base64(), "pw");
        assert!(users.authenticate("demo-u", "demo-pw", any));
        assert!(!users.authenticate("no-login", "", any));
        assert!(Users::from_config(&[user("bad", None, Some("AAAA"))]).is_err());
        // A hash of the blank password (imported, say) still never logs in.
        let blank = PasswordHash::new("").to_base64();
        let users = Users::from_config(&[user("blank", None, Some(&blank))]).unwrap();
        assert!(!users.authenticate("blank", "", any));
    }
}
