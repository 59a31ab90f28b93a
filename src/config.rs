//! Settings: built-in defaults, overridden by a TOML file, then by
//! `WARREN_*` environment variables, then by command-line flags.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

mod limits;
pub use limits::LimitsConfig;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    /// Without the offending line: it may hold a password.
    #[error("invalid config file {path}, line {line}: {message}")]
    Parse { path: PathBuf, line: usize, message: String },
    #[error("invalid value {value:?} for {name}: {reason}")]
    Value { name: String, value: String, reason: String },
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub amqp: AmqpConfig,
    pub storage: StorageConfig,
    pub limits: LimitsConfig,
    /// Users created when the data directory is new (RabbitMQ's
    /// `default_user`); afterwards users live in the data directory and are
    /// managed with warrenctl or the admin API. Each gets `.* .* .*` on `/`.
    pub users: Vec<UserConfig>,
    pub access: AccessConfig,
    pub admin: AdminConfig,
    pub metrics: MetricsConfig,
    pub tls: TlsConfig,
    pub memory: MemoryConfig,
    pub log: LogConfig,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct AccessConfig {
    /// Users who may connect only from 127.0.0.0/8 or ::1 (RabbitMQ's `loopback_users`).
    pub loopback_users: Vec<String>,
    /// A definitions file (RabbitMQ's JSON format) imported at every start,
    /// like RabbitMQ's `load_definitions`. When set, no default users are
    /// created on a new data directory.
    pub definitions: Option<PathBuf>,
}

impl Default for AccessConfig {
    fn default() -> Self {
        AccessConfig { loopback_users: vec!["guest".into()], definitions: None }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct AdminConfig {
    /// The HTTP admin API (RabbitMQ's management API shape); None turns it off.
    pub listen: Option<SocketAddr>,
    /// The unix socket warrenctl uses without a password (only the broker's
    /// owner can open it); relative to the working directory. Unset, it is
    /// `warrenctl.sock` in the data directory; `""` turns it off.
    pub socket: Option<PathBuf>,
}

impl Default for AdminConfig {
    fn default() -> Self {
        AdminConfig { listen: Some("127.0.0.1:15672".parse().expect("valid address")), socket: None }
    }
}

impl AdminConfig {
    /// Where the control socket is: configured, or in the data directory;
    /// None when it is off.
    pub fn socket_path(&self, data_dir: &Path) -> Option<PathBuf> {
        match &self.socket {
            Some(p) if p.as_os_str().is_empty() => None,
            Some(p) => Some(p.clone()),
            None => Some(data_dir.join("warrenctl.sock")),
        }
    }
}

/// Prometheus metrics in RabbitMQ's `rabbitmq_prometheus` shape.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct MetricsConfig {
    /// Where `/metrics` is served (RabbitMQ's `prometheus.tcp.port`,
    /// 15692); `""` turns it off.
    #[serde(deserialize_with = "listen_or_off")]
    pub listen: Option<SocketAddr>,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        MetricsConfig { listen: Some("0.0.0.0:15692".parse().expect("valid address")) }
    }
}

/// An address, or `""` for none (a listener turned off).
fn listen_or_off<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<SocketAddr>, D::Error> {
    let text = String::deserialize(d)?;
    match text.trim() {
        "" => Ok(None),
        t => t.parse().map(Some).map_err(serde::de::Error::custom),
    }
}

/// AMQPS: off until `cert_file` and `key_file` are set (RabbitMQ's `ssl_options`).
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct TlsConfig {
    /// Where the AMQPS listener binds (RabbitMQ's `listeners.ssl.default`).
    pub listen: SocketAddr,
    /// PEM certificate chain of the server (`ssl_options.certfile`).
    pub cert_file: Option<PathBuf>,
    /// PEM private key of the server (`ssl_options.keyfile`).
    pub key_file: Option<PathBuf>,
    /// PEM CA certificates client certificates are checked against (`ssl_options.cacertfile`).
    pub ca_file: Option<PathBuf>,
    /// Ask clients for a certificate and check it (`ssl_options.verify = verify_peer`).
    pub verify_peer: bool,
    /// With `verify_peer`: refuse clients without a certificate (`ssl_options.fail_if_no_peer_cert`).
    pub fail_if_no_peer_cert: bool,
    /// TLS versions offered: "tlsv1.2", "tlsv1.3" (`ssl_options.versions`).
    pub versions: Vec<String>,
}

impl Default for TlsConfig {
    fn default() -> Self {
        TlsConfig {
            listen: "0.0.0.0:5671".parse().expect("valid address"),
            cert_file: None,
            key_file: None,
            ca_file: None,
            verify_peer: false,
            fail_if_no_peer_cert: false,
            versions: vec!["tlsv1.3".into(), "tlsv1.2".into()],
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct MemoryConfig {
    /// Fraction of the machine's RAM at which publishers are blocked
    /// (RabbitMQ's `vm_memory_high_watermark.relative`).
    pub high_watermark: f64,
    /// An absolute limit in bytes instead; 0 means use `high_watermark`.
    pub high_watermark_bytes: u64,
    /// From this fraction of the limit on, queues page transient messages
    /// out to disk too (RabbitMQ's `vm_memory_high_watermark_paging_ratio`).
    pub paging_ratio: f64,
}

impl Default for MemoryConfig {
    fn default() -> Self {
        MemoryConfig { high_watermark: 0.4, high_watermark_bytes: 0, paging_ratio: 0.5 }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct AmqpConfig {
    /// Where the AMQP listener binds.
    pub listen: SocketAddr,
    /// false switches the plain listener off (RabbitMQ's `listeners.tcp = none`),
    /// for brokers reached over AMQPS only.
    pub tcp_listener: bool,
    /// Largest frame we accept and propose in `connection.tune`.
    pub frame_max: u32,
    /// How many channels a connection may have open at once (not the
    /// highest channel number, as in RabbitMQ).
    pub channel_max: u16,
    /// Heartbeat interval we propose, in seconds (0 disables).
    pub heartbeat: u16,
    /// Largest message body accepted, in bytes (RabbitMQ's `max_message_size`).
    pub max_message_size: u64,
    /// Bytes one connection may hold in messages still arriving (content
    /// headers and bodies of all its channels); past it the connection is
    /// closed with 506. Never less than one whole message: see
    /// [`AmqpConfig::unfinished_limit`].
    pub max_unfinished_bytes: u64,
    /// Seconds a client has to complete the handshake.
    pub handshake_timeout: u64,
    /// Milliseconds a delivery may stay unacknowledged before its channel
    /// is closed with 406 (RabbitMQ's `consumer_timeout`); 0 disables.
    pub consumer_timeout: u64,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct StorageConfig {
    pub data_dir: PathBuf,
    /// Publisher confirms of persistent messages wait for an fsync of the
    /// write-ahead log (durable against power loss). false: they wait only
    /// for the write (durable against a crash of Warren, not of the machine).
    pub fsync: bool,
    /// Publishers are blocked while the data directory's disk has less free
    /// space than this, in bytes (RabbitMQ's `disk_free_limit`; 200 MB, not
    /// RabbitMQ's 50 MB: RocksDB takes disk in 64–70 MB steps).
    pub disk_free_limit: u64,
    /// Each queue keeps at most this many ready messages in memory; the
    /// rest stay on disk until consumers get to them.
    pub queue_head_messages: usize,
    /// ...and at most this many bytes of message bodies.
    pub queue_head_bytes: usize,
}

/// A user, with a plain `password` (hashed at start, never kept) or a
/// `password_hash` in RabbitMQ's format; neither disables password login.
#[derive(Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct UserConfig {
    pub name: String,
    #[serde(default)]
    pub password: Option<String>,
    /// base64(salt ‖ hash), as `rabbitmqctl hash_password` or a definitions export gives it.
    #[serde(default)]
    pub password_hash: Option<String>,
    /// `rabbit_password_hashing_sha256` (the default) or `rabbit_password_hashing_sha512`.
    #[serde(default)]
    pub hashing_algorithm: Option<String>,
    /// For the admin API: administrator, monitoring, policymaker, management, impersonator.
    #[serde(default)]
    pub tags: Vec<String>,
    /// Deprecated (Warren before users were kept in the data directory): use
    /// `[access] loopback_users`, which this is folded into at load.
    #[serde(default)]
    pub loopback_only: Option<bool>,
}

/// Secrets stay out of logs: a password shows as its presence only.
impl std::fmt::Debug for UserConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UserConfig")
            .field("name", &self.name)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("password_hash", &self.password_hash.as_ref().map(|_| "<redacted>"))
            .field("hashing_algorithm", &self.hashing_algorithm)
            .field("tags", &self.tags)
            .finish()
    }
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct LogConfig {
    /// A `tracing` filter: error, warn, info, debug, trace, or per-module directives.
    pub level: String,
}

/// RabbitMQ's hard ceiling for `max_message_size`.
pub const MAX_MESSAGE_SIZE_LIMIT: u64 = 512 * 1024 * 1024;

impl AmqpConfig {
    /// The bound on a connection's unfinished messages: as configured, but
    /// never below what one message of `max_message_size` needs.
    pub fn unfinished_limit(&self) -> u64 {
        self.max_unfinished_bytes.max(self.max_message_size + u64::from(self.frame_max))
    }
}

impl Default for AmqpConfig {
    fn default() -> Self {
        AmqpConfig {
            listen: "0.0.0.0:5672".parse().expect("valid address"),
            tcp_listener: true,
            frame_max: 131_072,
            channel_max: 2047,
            heartbeat: 60,
            max_message_size: 128 * 1024 * 1024,
            max_unfinished_bytes: 256 * 1024 * 1024,
            handshake_timeout: 10,
            consumer_timeout: 1_800_000,
        }
    }
}

impl Default for StorageConfig {
    fn default() -> Self {
        StorageConfig {
            data_dir: PathBuf::from("warren-data"),
            fsync: true,
            disk_free_limit: 200_000_000,
            queue_head_messages: 16_384,
            queue_head_bytes: 32 << 20,
        }
    }
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig { level: "info".to_owned() }
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            amqp: AmqpConfig::default(),
            storage: StorageConfig::default(),
            limits: LimitsConfig::default(),
            users: vec![UserConfig {
                name: "guest".into(),
                password: Some("guest".into()),
                password_hash: None,
                hashing_algorithm: None,
                tags: vec!["administrator".into()],
                loopback_only: None,
            }],
            access: AccessConfig::default(),
            admin: AdminConfig::default(),
            metrics: MetricsConfig::default(),
            tls: TlsConfig::default(),
            memory: MemoryConfig::default(),
            log: LogConfig::default(),
        }
    }
}

fn invalid(name: &str, value: &str, reason: impl ToString) -> ConfigError {
    ConfigError::Value { name: name.to_owned(), value: value.to_owned(), reason: reason.to_string() }
}

fn parse_env<T: std::str::FromStr>(name: &str, value: &str) -> Result<T, ConfigError>
where
    T::Err: ToString,
{
    value.parse().map_err(|e: T::Err| invalid(name, value, e))
}

impl Config {
    /// Defaults, then the file (if any), then the environment.
    pub fn load(file: Option<&Path>, env: impl Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
        let mut config = match file {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|source| ConfigError::Read { path: path.to_owned(), source })?;
                toml::from_str(&text).map_err(|e: toml::de::Error| ConfigError::Parse {
                    path: path.to_owned(),
                    line: e.span().map_or(0, |r| text[..r.start.min(text.len())].matches('\n').count() + 1),
                    message: e.message().to_owned(),
                })?
            }
            None => Config::default(),
        };
        config.apply_env(env)?;
        config.fold_deprecated();
        config.validate()?;
        Ok(config)
    }

    /// An older config file's per-user `loopback_only` is the same as
    /// listing (or not listing) the user in `access.loopback_users`.
    fn fold_deprecated(&mut self) {
        for u in &self.users {
            let listed = self.access.loopback_users.contains(&u.name);
            match u.loopback_only {
                Some(true) if !listed => self.access.loopback_users.push(u.name.clone()),
                Some(false) if listed => self.access.loopback_users.retain(|l| *l != u.name),
                _ => {}
            }
        }
    }

    fn apply_env(&mut self, env: impl Fn(&str) -> Option<String>) -> Result<(), ConfigError> {
        let a = &mut self.amqp;
        if let Some(v) = env("WARREN_LISTEN") {
            a.listen = parse_env("WARREN_LISTEN", &v)?;
        }
        if let Some(v) = env("WARREN_FRAME_MAX") {
            a.frame_max = parse_env("WARREN_FRAME_MAX", &v)?;
        }
        if let Some(v) = env("WARREN_CHANNEL_MAX") {
            a.channel_max = parse_env("WARREN_CHANNEL_MAX", &v)?;
        }
        if let Some(v) = env("WARREN_HEARTBEAT") {
            a.heartbeat = parse_env("WARREN_HEARTBEAT", &v)?;
        }
        if let Some(v) = env("WARREN_CONSUMER_TIMEOUT") {
            a.consumer_timeout = parse_env("WARREN_CONSUMER_TIMEOUT", &v)?;
        }
        if let Some(v) = env("WARREN_MAX_MESSAGE_SIZE") {
            a.max_message_size = parse_env("WARREN_MAX_MESSAGE_SIZE", &v)?;
        }
        if let Some(v) = env("WARREN_MEMORY_HIGH_WATERMARK") {
            self.memory.high_watermark = parse_env("WARREN_MEMORY_HIGH_WATERMARK", &v)?;
        }
        if let Some(v) = env("WARREN_ADMIN_LISTEN") {
            self.admin.listen = Some(parse_env("WARREN_ADMIN_LISTEN", &v)?);
        }
        if let Some(v) = env("WARREN_METRICS_LISTEN") {
            self.metrics.listen = match v.trim() {
                "" => None,
                t => Some(parse_env("WARREN_METRICS_LISTEN", t)?),
            };
        }
        if let Some(v) = env("WARREN_DATA_DIR") {
            self.storage.data_dir = PathBuf::from(v);
        }
        if let Some(v) = env("WARREN_QUEUE_HEAD_MESSAGES") {
            self.storage.queue_head_messages = parse_env("WARREN_QUEUE_HEAD_MESSAGES", &v)?;
        }
        if let Some(v) = env("WARREN_LOG_LEVEL") {
            self.log.level = v;
        }
        Ok(())
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        let r = self.memory.paging_ratio;
        if !(0.0..=1.0).contains(&r) {
            return Err(invalid("memory.paging_ratio", &r.to_string(), "must be in [0, 1]"));
        }
        let st = &self.storage;
        if st.queue_head_messages < 2 || st.queue_head_bytes < 2 {
            let value = format!("{}/{}", st.queue_head_messages, st.queue_head_bytes);
            return Err(invalid(
                "storage.queue_head_messages/queue_head_bytes",
                &value,
                "must be at least 2",
            ));
        }
        let a = &self.amqp;
        if a.frame_max < crate::protocol::FRAME_MIN_SIZE {
            return Err(invalid("amqp.frame_max", &a.frame_max.to_string(), "must be at least 4096"));
        }
        if a.max_message_size == 0 || a.max_message_size > MAX_MESSAGE_SIZE_LIMIT {
            return Err(invalid(
                "amqp.max_message_size",
                &a.max_message_size.to_string(),
                "must be between 1 and 536870912 (512 MiB)",
            ));
        }
        for (i, u) in self.users.iter().enumerate() {
            let name = format!("users.{}", u.name);
            if u.password.is_some() && u.password_hash.is_some() {
                return Err(invalid(&name, "password and password_hash", "give one of them"));
            }
            if u.password.as_deref() == Some("") {
                return Err(invalid(
                    &name,
                    "password = \"\"",
                    "a blank password never logs in: leave it out instead",
                ));
            }
            if u.password.is_some() && u.hashing_algorithm.is_some() {
                return Err(invalid(&name, "hashing_algorithm", "applies to password_hash only"));
            }
            if self.users[..i].iter().any(|v| v.name == u.name) {
                return Err(invalid(&name, &u.name, "appears twice"));
            }
            let algorithm = u.hashing_algorithm.as_deref().unwrap_or("rabbit_password_hashing_sha256");
            if let Err(e) =
                crate::access::PasswordHash::from_base64(u.password_hash.as_deref().unwrap_or(""), algorithm)
            {
                return Err(invalid(&format!("users.{}.password_hash", u.name), "<redacted>", e));
            }
        }
        let w = self.memory.high_watermark;
        if !(w > 0.0 && w <= 1.0) {
            return Err(invalid("memory.high_watermark", &w.to_string(), "must be in (0, 1]"));
        }
        if a.channel_max == 0 {
            return Err(invalid("amqp.channel_max", "0", "must be at least 1"));
        }
        self.validate_tls()
    }

    /// What can be told without reading the files (the listener reads them at start).
    fn validate_tls(&self) -> Result<(), ConfigError> {
        let t = &self.tls;
        if t.cert_file.is_some() != t.key_file.is_some() {
            let set = if t.cert_file.is_some() { "cert_file" } else { "key_file" };
            return Err(invalid("tls.cert_file/key_file", set, "give both, or neither for no AMQPS"));
        }
        if t.verify_peer && t.ca_file.is_none() {
            return Err(invalid(
                "tls.verify_peer",
                "true",
                "needs tls.ca_file to check certificates against",
            ));
        }
        let known = |v: &String| matches!(v.to_ascii_lowercase().as_str(), "tlsv1.2" | "tlsv1.3");
        if t.versions.is_empty() || !t.versions.iter().all(known) {
            let value = format!("{:?}", t.versions);
            return Err(invalid("tls.versions", &value, "give \"tlsv1.3\" and/or \"tlsv1.2\""));
        }
        if !self.amqp.tcp_listener && t.cert_file.is_none() {
            return Err(invalid(
                "amqp.tcp_listener",
                "false",
                "with no tls.cert_file and tls.key_file, no listener would be left",
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documented_file_matches_built_in_defaults() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/warren.toml");
        let from_file = Config::load(Some(&path), |_| None).unwrap();
        assert_eq!(from_file, Config::default());
    }

    #[test]
    fn environment_overrides_and_validation() {
        let c = Config::load(None, |k| match k {
            "WARREN_LISTEN" => Some("127.0.0.1:6000".into()),
            "WARREN_HEARTBEAT" => Some("5".into()),
            _ => None,
        })
        .unwrap();
        assert_eq!(c.amqp.listen.port(), 6000);
        assert_eq!(c.amqp.heartbeat, 5);
        let bad = Config::load(None, |k| (k == "WARREN_FRAME_MAX").then(|| "100".into()));
        assert!(bad.is_err());
    }

    #[test]
    fn the_metrics_listener_is_set_or_turned_off_by_file_and_environment() {
        assert_eq!(Config::default().metrics.listen, Some("0.0.0.0:15692".parse().unwrap()));
        let env = |v: &'static str| move |k: &str| (k == "WARREN_METRICS_LISTEN").then(|| v.to_owned());
        assert_eq!(Config::load(None, env("")).unwrap().metrics.listen, None);
        let set = Config::load(None, env("127.0.0.1:9419")).unwrap();
        assert_eq!(set.metrics.listen, Some("127.0.0.1:9419".parse().unwrap()));
        assert!(Config::load(None, env("nowhere")).is_err());
        let off: Config = toml::from_str("[metrics]\nlisten = \"\"\n").unwrap();
        assert_eq!(off.metrics.listen, None);
        assert!(toml::from_str::<Config>("[metrics]\nlisten = \"x\"\n").is_err());
    }

    #[test]
    fn users_give_a_password_or_a_valid_hash_and_neither_is_shown() {
        let mut c = Config::default();
        c.users[0].password_hash = Some("+KrZ07Ddfi2P/RuwhviWo2YG4zEuawwOL3qqKpMqk/4CtVul".into());
        assert!(c.validate().is_err(), "both a password and a hash");
        c.users[0].password = None;
        assert!(c.validate().is_ok());
        c.users[0].password_hash = Some("c2VjcmV0".into());
        let err = c.validate().unwrap_err().to_string();
        assert!(err.contains("users.guest.password_hash") && !err.contains("c2VjcmV0"), "{err}");
        c.users[0].password = Some("hunter2".into());
        c.users[0].password_hash = None;
        assert!(!format!("{c:?}").contains("hunter2"));
        let mut twice = Config::default();
        twice.users.push(twice.users[0].clone());
        assert!(twice.validate().is_err(), "a user listed twice");
        let mut blank = Config::default();
        blank.users[0].password = Some(String::new());
        assert!(blank.validate().is_err(), "a blank password");
        let mut algorithm = Config::default();
        algorithm.users[0].hashing_algorithm = Some("rabbit_password_hashing_sha512".into());
        assert!(algorithm.validate().is_err(), "an algorithm for a plain password");
    }

    #[test]
    fn an_older_config_files_loopback_only_still_loads() {
        let path = std::env::temp_dir().join(format!("warren-config-old-{}.toml", std::process::id()));
        std::fs::write(&path, "[[users]]\nname = \"guest\"\npassword = \"guest\"\nloopback_only = false\n[[users]]\nname = \"local\"\npassword = \"pw\"\nloopback_only = true\n").unwrap();
        let c = Config::load(Some(&path), |_| None).unwrap();
        std::fs::remove_file(&path).unwrap();
        assert_eq!(c.access.loopback_users, ["local"]);
    }

    #[test]
    fn a_config_file_that_does_not_parse_is_reported_without_its_text() {
        let path = std::env::temp_dir().join(format!("warren-config-{}.toml", std::process::id()));
        std::fs::write(&path, "[[users]]\nname = \"u\"\npasword = \"hunter2\"\n").unwrap();
        let err = Config::load(Some(&path), |_| None).unwrap_err().to_string();
        std::fs::remove_file(&path).unwrap();
        assert!(err.contains("line 3") && !err.contains("hunter2"), "{err}");
    }
}
