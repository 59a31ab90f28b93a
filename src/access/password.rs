//! Password hashes in RabbitMQ's formats, so users move between the two
//! brokers (definitions files, `rabbitmqadmin` v2's client-side hashes)
//! without anyone knowing their passwords. Pure: no I/O but the salt.
//!
//! `rabbit_password_hashing_sha256` (the default) is
//! `base64(salt ‖ SHA-256(salt ‖ utf8(password)))` with a 4-byte random
//! salt; `..._sha512` is the same with SHA-512. Checks compare in constant
//! time. `..._md5` (RabbitMQ before 3.6) is accepted on import only, so old
//! definitions files keep working; new hashes are never MD5.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use md5::Md5;
use sha2::{Digest, Sha256, Sha512};
use subtle::ConstantTimeEq;

const SALT: usize = 4;

/// A hashing algorithm, by RabbitMQ's name for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    Sha256,
    Sha512,
    Md5,
}

impl Algorithm {
    pub fn name(self) -> &'static str {
        match self {
            Algorithm::Sha256 => "rabbit_password_hashing_sha256",
            Algorithm::Sha512 => "rabbit_password_hashing_sha512",
            Algorithm::Md5 => "rabbit_password_hashing_md5",
        }
    }

    pub fn from_name(name: &str) -> Option<Algorithm> {
        match name {
            "rabbit_password_hashing_sha256" => Some(Algorithm::Sha256),
            "rabbit_password_hashing_sha512" => Some(Algorithm::Sha512),
            "rabbit_password_hashing_md5" => Some(Algorithm::Md5),
            _ => None,
        }
    }

    fn digest(self, salt: &[u8], password: &[u8]) -> Vec<u8> {
        match self {
            Algorithm::Sha256 => Sha256::new().chain_update(salt).chain_update(password).finalize().to_vec(),
            Algorithm::Sha512 => Sha512::new().chain_update(salt).chain_update(password).finalize().to_vec(),
            Algorithm::Md5 => Md5::new().chain_update(salt).chain_update(password).finalize().to_vec(),
        }
    }

    fn digest_len(self) -> usize {
        match self {
            Algorithm::Sha256 => 32,
            Algorithm::Sha512 => 64,
            Algorithm::Md5 => 16,
        }
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum HashError {
    #[error("unknown hashing algorithm {0:?} (rabbit_password_hashing_sha256, _sha512 or _md5)")]
    Algorithm(String),
    #[error("password_hash is not base64 of a {0}-byte salted hash")]
    Malformed(usize),
}

/// A stored password: salt and digest. Its `Debug` shows neither.
#[derive(Clone, PartialEq, Eq)]
pub struct PasswordHash {
    algorithm: Algorithm,
    /// Salt then digest; empty when password login is disabled.
    bytes: Vec<u8>,
}

impl std::fmt::Debug for PasswordHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PasswordHash").field("algorithm", &self.algorithm.name()).finish_non_exhaustive()
    }
}

impl PasswordHash {
    /// Hashes `password` with a fresh random salt (SHA-256, RabbitMQ's default).
    pub fn new(password: &str) -> PasswordHash {
        let mut salt = [0u8; SALT];
        // The OS's randomness; a failure here leaves a machine unfit to run anyway.
        getrandom::fill(&mut salt).expect("the OS provides random bytes");
        Self::with_salt(Algorithm::Sha256, salt, password)
    }

    fn with_salt(algorithm: Algorithm, salt: [u8; SALT], password: &str) -> PasswordHash {
        let mut bytes = salt.to_vec();
        bytes.extend(algorithm.digest(&salt, password.as_bytes()));
        PasswordHash { algorithm, bytes }
    }

    /// A hash as RabbitMQ stores it; `""` disables password login.
    pub fn from_base64(text: &str, algorithm: &str) -> Result<PasswordHash, HashError> {
        let algorithm =
            Algorithm::from_name(algorithm).ok_or_else(|| HashError::Algorithm(algorithm.into()))?;
        let bytes = STANDARD.decode(text).map_err(|_| HashError::Malformed(SALT + algorithm.digest_len()))?;
        if !bytes.is_empty() && bytes.len() != SALT + algorithm.digest_len() {
            return Err(HashError::Malformed(SALT + algorithm.digest_len()));
        }
        Ok(PasswordHash { algorithm, bytes })
    }

    pub fn to_base64(&self) -> String {
        STANDARD.encode(&self.bytes)
    }

    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    /// Whether `password` is the one hashed; in constant time for a given
    /// algorithm. Never true when password login is disabled.
    pub fn verify(&self, password: &str) -> bool {
        if self.bytes.is_empty() {
            // As long as a real check, so a disabled login does not show.
            let _ = self.algorithm.digest(&[0; SALT], password.as_bytes());
            return false;
        }
        let (salt, digest) = self.bytes.split_at(SALT);
        bool::from(self.algorithm.digest(salt, password.as_bytes()).ct_eq(digest))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verifies_a_hash_rabbitmq_made() {
        // Exported by RabbitMQ 3.10.8 (`rabbitmqctl export_definitions`) for a user whose password is demo-pw.
        let h = PasswordHash::from_base64(
            "+KrZ07Ddfi2P/RuwhviWo2YG4zEuawwOL3qqKpMqk/4CtVul",
            "rabbit_password_hashing_sha256",
        )
        .unwrap();
        assert!(h.verify("demo-pw"));
        assert!(!h.verify("demo-pw "));
        assert!(!h.verify(""));
    }

    #[test]
    fn round_trips_and_salts() {
        let a = PasswordHash::new("s3cret");
        let b = PasswordHash::new("s3cret");
        assert_ne!(a.to_base64(), b.to_base64(), "each hash has its own salt");
        assert_eq!(a.to_base64().len(), 48);
        let back = PasswordHash::from_base64(&a.to_base64(), a.algorithm().name()).unwrap();
        assert!(back.verify("s3cret") && !back.verify("s3cre"));
        let long = PasswordHash::with_salt(Algorithm::Sha512, [1, 2, 3, 4], "pw");
        let back = PasswordHash::from_base64(&long.to_base64(), "rabbit_password_hashing_sha512").unwrap();
        assert!(back.verify("pw"));
    }

    #[test]
    fn refuses_what_it_cannot_check() {
        assert!(!PasswordHash::from_base64("", "rabbit_password_hashing_sha256").unwrap().verify(""));
        assert_eq!(
            PasswordHash::from_base64("AAAA", "rabbit_password_hashing_sha256"),
            Err(HashError::Malformed(36))
        );
        assert!(PasswordHash::from_base64("!!", "rabbit_password_hashing_sha256").is_err());
        assert_eq!(
            PasswordHash::from_base64("", "rabbit_password_hashing_bcrypt"),
            Err(HashError::Algorithm("rabbit_password_hashing_bcrypt".into()))
        );
        let md5 = PasswordHash::with_salt(Algorithm::Md5, [9, 8, 7, 6], "old");
        assert_eq!(md5.to_base64().len(), 28);
        let back = PasswordHash::from_base64(&md5.to_base64(), "rabbit_password_hashing_md5").unwrap();
        assert!(back.verify("old") && !back.verify("new"));
        assert!(!format!("{:?}", PasswordHash::new("hunter2")).contains("hunter2"));
    }
}
