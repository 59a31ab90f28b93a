//! `warrenctl`'s command line: global options and one subcommand per verb,
//! named as rabbitmqctl's. The doc comments here are the `--help` texts.

use std::fmt;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use super::cli_ops::OpsCommand;
use super::output::Format;

const AFTER_LONG_HELP: &str = "\
Connecting:
  Without --url, warrenctl talks to the broker over its local control socket
  (default warren-data/warrenctl.sock, i.e. in the broker's default data
  directory relative to the current directory). Only the user the broker runs
  as can open it, and no password is needed. With --url it uses the HTTP admin
  API on that address, with --username/--password (Basic auth).

Output:
  Listings print a \"Listing ...\" line, then TSV with a header row. -q drops the
  banner, -s also the header row; --format table draws a table; --format json
  prints a JSON array whose field names are the admin API's. Long listings
  (queues, exchanges, connections, channels) are fetched 500 rows a page and
  printed as they arrive.

Exit codes (as rabbitmqctl's):
  0 success (also for an empty listing), 64 usage error or object not found,
  65 bad data, missing vhost or refused credentials, 67 no such user,
  69 broker unreachable, 70 already exists or broker error,
  77 control socket not accessible.

Examples:
  warrenctl list_users
  warrenctl add_user alice s3cret
  warrenctl set_permissions -p /orders alice '^orders-.*' '.*' '.*'
  warrenctl --url http://broker:15672 --username admin list_vhosts
  warrenctl list_queues -p orders name messages consumers
  warrenctl top
  WARREN_CTL_SOCKET=/var/lib/warren/warrenctl.sock warrenctl -q list_policies";

/// Longest `--timeout`, in seconds (about 136 years: long enough to mean
/// "forever", short enough that a deadline never overflows an `Instant`).
pub const MAX_TIMEOUT: u64 = u32::MAX as u64;

/// A password (or password hash) from the command line: `Debug` shows it as
/// `<redacted>`, so a debug print of the arguments does not leak it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn into_inner(self) -> String {
        self.0
    }
}

impl From<String> for Secret {
    fn from(secret: String) -> Secret {
        Secret(secret)
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// warrenctl: manage a Warren broker (users, vhosts, permissions, policies,
/// limits, definitions, queues, exchanges, connections, status) through its
/// admin API.
#[derive(Debug, Parser)]
#[command(name = "warrenctl", version, after_long_help = AFTER_LONG_HELP, args_override_self = true)]
pub struct Cli {
    /// The broker's control socket (used when --url is not given).
    #[arg(
        long,
        global = true,
        help_heading = "Global options",
        env = "WARREN_CTL_SOCKET",
        value_name = "PATH"
    )]
    #[arg(default_value = "warren-data/warrenctl.sock")]
    pub socket: PathBuf,
    /// Use the HTTP admin API at this URL instead of the socket, e.g. http://localhost:15672.
    #[arg(long, global = true, help_heading = "Global options", env = "WARREN_URL", value_name = "URL")]
    pub url: Option<String>,
    /// User name for --url.
    #[arg(
        id = "api_username",
        long = "username",
        global = true,
        help_heading = "Global options",
        env = "WARREN_USERNAME",
        default_value = "guest",
        value_name = "NAME"
    )]
    pub username: String,
    /// Password for --url.
    #[arg(
        id = "api_password",
        long = "password",
        global = true,
        help_heading = "Global options",
        env = "WARREN_PASSWORD",
        default_value = "guest",
        value_name = "PASSWORD"
    )]
    #[arg(hide_default_value = true, hide_env_values = true)]
    pub password: Secret,
    /// Virtual host the verb acts on [default: /].
    #[arg(short = 'p', long, global = true, help_heading = "Global options", value_name = "VHOST")]
    pub vhost: Option<String>,
    /// No informational lines or "Listing ..." banner.
    #[arg(short, long, global = true, help_heading = "Global options")]
    pub quiet: bool,
    /// As --quiet, and no header row in listings.
    #[arg(short, long, global = true, help_heading = "Global options")]
    pub silent: bool,
    /// Output format of listings.
    #[arg(long, global = true, help_heading = "Global options", value_enum, default_value_t = Format::Tsv)]
    pub format: Format,
    /// Seconds to wait for the broker: for each request (connect, send, answer), and
    /// for await_startup in all.
    #[arg(
        short,
        long,
        global = true,
        help_heading = "Global options",
        default_value_t = 60,
        value_name = "SECONDS",
        value_parser = clap::value_parser!(u64).range(..=MAX_TIMEOUT)
    )]
    pub timeout: u64,
    #[command(subcommand)]
    pub command: Command,
}

/// The verbs.
#[derive(Debug, Subcommand)]
#[command(rename_all = "snake_case")]
pub enum Command {
    /// Create a user. The password is read from stdin when omitted.
    #[command(
        after_help = "Examples:\n  warrenctl add_user alice s3cret\n  echo s3cret | warrenctl add_user alice\n  \
        warrenctl add_user bob --password-hash \"$(warrenctl hash_password s3cret)\""
    )]
    AddUser {
        /// Name of the new user.
        username: String,
        /// Its password (read from stdin when omitted).
        #[arg(allow_hyphen_values = true, conflicts_with = "password_hash")]
        password: Option<Secret>,
        /// Set this password hash (base64 salt+hash, RabbitMQ's format) instead of a password.
        #[arg(long = "password-hash", value_name = "BASE64")]
        password_hash: Option<Secret>,
        /// Algorithm of --password-hash.
        #[arg(
            long = "hashing-algorithm",
            value_name = "NAME",
            default_value = "rabbit_password_hashing_sha256"
        )]
        #[arg(requires = "password_hash")]
        hashing_algorithm: String,
    },
    /// Delete a user (its connections are closed).
    #[command(after_help = "Example:\n  warrenctl delete_user alice")]
    DeleteUser {
        /// The user to delete.
        username: String,
    },
    /// Change a user's password (read from stdin when omitted); the tags stay.
    #[command(after_help = "Example:\n  warrenctl change_password alice n3w-secret")]
    ChangePassword {
        /// The user.
        username: String,
        /// The new password (read from stdin when omitted).
        #[arg(allow_hyphen_values = true)]
        password: Option<Secret>,
    },
    /// Check a user's password; prints "Success", or fails with exit code 65.
    #[command(after_help = "Example:\n  warrenctl authenticate_user alice s3cret")]
    AuthenticateUser {
        /// The user.
        username: String,
        /// The password to check (read from stdin when omitted).
        #[arg(allow_hyphen_values = true)]
        password: Option<Secret>,
    },
    /// Replace a user's tags (none clears them): administrator, monitoring, policymaker, management...
    #[command(after_help = "Examples:\n  warrenctl set_user_tags alice monitoring policymaker\n  \
        warrenctl set_user_tags alice   # no tags")]
    SetUserTags {
        /// The user.
        username: String,
        /// Its new tags (replacing the old ones).
        tags: Vec<String>,
    },
    /// List users (default columns: name tags).
    #[command(
        after_help = "Examples:\n  warrenctl list_users\n  warrenctl --format json list_users name tags"
    )]
    ListUsers {
        /// API fields to show.
        columns: Vec<String>,
    },
    /// Print a password hash in RabbitMQ's format (salted SHA-256, base64), for --password-hash or definitions.
    #[command(after_help = "Example:\n  warrenctl hash_password s3cret")]
    HashPassword {
        /// The password (read from stdin when omitted).
        #[arg(allow_hyphen_values = true)]
        password: Option<Secret>,
    },
    /// Create a virtual host (succeeds if it exists).
    #[command(
        after_help = "Example:\n  warrenctl add_vhost orders --description 'Order events' --tags prod,eu \
        --default-queue-type quorum"
    )]
    AddVhost {
        /// Name of the vhost.
        name: String,
        /// Free text describing the vhost.
        #[arg(long)]
        description: Option<String>,
        /// Comma-separated tags.
        #[arg(long, value_name = "TAG,...")]
        tags: Option<String>,
        /// Type of queues declared without x-queue-type: classic, quorum or stream.
        #[arg(long = "default-queue-type", value_name = "TYPE")]
        default_queue_type: Option<String>,
    },
    /// Delete a virtual host and everything in it.
    #[command(after_help = "Example:\n  warrenctl delete_vhost orders")]
    DeleteVhost {
        /// The vhost to delete.
        name: String,
    },
    /// List virtual hosts (default column: name).
    #[command(after_help = "Example:\n  warrenctl list_vhosts name description tags default_queue_type")]
    ListVhosts {
        /// API fields to show.
        columns: Vec<String>,
    },
    /// Set a user's permissions in a vhost: configure, write and read regexes.
    #[command(after_help = "Examples:\n  warrenctl set_permissions -p / alice '.*' '.*' '.*'\n  \
        warrenctl set_permissions -p orders bob '^$' '^orders$' '^bob-.*'")]
    SetPermissions {
        /// The user.
        user: String,
        /// Regex of the queue/exchange names it may declare and delete ('^$' for none).
        #[arg(allow_hyphen_values = true)]
        configure: String,
        /// Regex of the names it may publish to or bind to.
        #[arg(allow_hyphen_values = true)]
        write: String,
        /// Regex of the names it may consume from or bind from.
        #[arg(allow_hyphen_values = true)]
        read: String,
    },
    /// Remove a user's permissions in a vhost.
    #[command(after_help = "Example:\n  warrenctl clear_permissions -p orders bob")]
    ClearPermissions {
        /// The user.
        user: String,
    },
    /// List the permissions in a vhost (columns: user configure write read).
    #[command(
        after_help = "Examples:\n  warrenctl list_permissions -p orders\n  warrenctl list_permissions --all-vhosts"
    )]
    ListPermissions {
        /// Every vhost's, with a vhost column.
        #[arg(long = "all-vhosts")]
        all_vhosts: bool,
    },
    /// List a user's permissions in every vhost (columns: vhost configure write read).
    #[command(after_help = "Example:\n  warrenctl list_user_permissions alice")]
    ListUserPermissions {
        /// The user.
        user: String,
    },
    /// Set a user's topic permissions on a topic exchange: write and read regexes on routing keys.
    #[command(
        after_help = "Example:\n  warrenctl set_topic_permissions -p / alice amq.topic '^alice\\.' '.*'"
    )]
    SetTopicPermissions {
        /// The user.
        user: String,
        /// The topic exchange.
        exchange: String,
        /// Regex of the routing keys it may publish with.
        #[arg(allow_hyphen_values = true)]
        write: String,
        /// Regex of the routing keys it may bind with.
        #[arg(allow_hyphen_values = true)]
        read: String,
    },
    /// Remove a user's topic permissions in a vhost, on one exchange or all.
    #[command(after_help = "Examples:\n  warrenctl clear_topic_permissions -p / alice amq.topic\n  \
        warrenctl clear_topic_permissions -p / alice")]
    ClearTopicPermissions {
        /// The user.
        user: String,
        /// Only this exchange's (all when omitted).
        exchange: Option<String>,
    },
    /// List the topic permissions in a vhost (columns: user exchange write read).
    #[command(after_help = "Example:\n  warrenctl list_topic_permissions -p /")]
    ListTopicPermissions {
        /// Every vhost's, with a vhost column.
        #[arg(long = "all-vhosts")]
        all_vhosts: bool,
    },
    /// List a user's topic permissions in every vhost (columns: vhost exchange write read).
    #[command(after_help = "Example:\n  warrenctl list_user_topic_permissions alice")]
    ListUserTopicPermissions {
        /// The user.
        user: String,
    },
    /// Set a policy: queues or exchanges whose names match the pattern get the definition's settings.
    #[command(
        after_help = "Example:\n  warrenctl set_policy -p / --priority 1 --apply-to queues limit-q '^q-' \
        '{\"max-length\":1000,\"overflow\":\"reject-publish\"}'"
    )]
    SetPolicy(PolicyArgs),
    /// Remove a policy.
    #[command(after_help = "Example:\n  warrenctl clear_policy -p / limit-q")]
    ClearPolicy {
        /// The policy.
        name: String,
    },
    /// List the policies of a vhost (columns: vhost name pattern apply-to definition priority).
    #[command(after_help = "Example:\n  warrenctl list_policies -p /")]
    ListPolicies {
        /// Every vhost's.
        #[arg(long = "all-vhosts")]
        all_vhosts: bool,
    },
    /// Set an operator policy (caps that win over user policies: max-length, message-ttl, expires...).
    #[command(after_help = "Example:\n  warrenctl set_operator_policy -p / --apply-to queues cap '.*' \
        '{\"max-length-bytes\":1048576}'")]
    SetOperatorPolicy(PolicyArgs),
    /// Remove an operator policy.
    #[command(after_help = "Example:\n  warrenctl clear_operator_policy -p / cap")]
    ClearOperatorPolicy {
        /// The operator policy.
        name: String,
    },
    /// List the operator policies of a vhost.
    #[command(after_help = "Example:\n  warrenctl list_operator_policies -p /")]
    ListOperatorPolicies {
        /// Every vhost's.
        #[arg(long = "all-vhosts")]
        all_vhosts: bool,
    },
    /// Set a vhost's limits to exactly these (limits not named are removed); -1 means no limit.
    #[command(
        after_help = "Example:\n  warrenctl set_vhost_limits -p orders '{\"max-connections\":10,\"max-queues\":-1}'"
    )]
    SetVhostLimits {
        /// A JSON object of limit name to integer: max-connections, max-queues.
        #[arg(allow_hyphen_values = true)]
        limits: String,
    },
    /// Remove all of a vhost's limits.
    #[command(after_help = "Example:\n  warrenctl clear_vhost_limits -p orders")]
    ClearVhostLimits,
    /// List a vhost's limits (columns: vhost value).
    #[command(
        after_help = "Examples:\n  warrenctl list_vhost_limits -p orders\n  warrenctl list_vhost_limits --global"
    )]
    ListVhostLimits {
        /// Every vhost's.
        #[arg(long, alias = "all-vhosts")]
        global: bool,
    },
    /// Set some of a user's limits (others are kept); -1 means no limit.
    #[command(
        after_help = "Example:\n  warrenctl set_user_limits app '{\"max-connections\":10,\"max-channels\":100}'"
    )]
    SetUserLimits {
        username: String,
        /// A JSON object of limit name to integer: max-connections, max-channels.
        #[arg(allow_hyphen_values = true)]
        limits: String,
    },
    /// Remove one of a user's limits, or all of them.
    #[command(after_help = "Examples:\n  warrenctl clear_user_limits app max-channels\n  \
        warrenctl clear_user_limits app all")]
    ClearUserLimits {
        username: String,
        /// max-connections, max-channels or all.
        limit: String,
    },
    /// Print a user's limits as JSON, or list every user's (columns: user limits).
    #[command(after_help = "Examples:\n  warrenctl list_user_limits --user app\n  \
        warrenctl list_user_limits --global")]
    ListUserLimits {
        /// Whose limits (rabbitmqctl's default: guest).
        #[arg(long, default_value = "guest")]
        user: String,
        /// Every user's.
        #[arg(long)]
        global: bool,
    },
    /// Write the broker's definitions (users, vhosts, permissions, policies, queues, exchanges,
    /// bindings) as JSON to a file, or to stdout with "-". With -p, only that vhost's.
    #[command(after_help = "Examples:\n  warrenctl export_definitions backup.json\n  \
        warrenctl export_definitions - | jq .queues")]
    ExportDefinitions {
        /// File to write, or "-" for stdout.
        file: String,
    },
    /// Import definitions from a JSON file, or from stdin with "-". It only adds and updates;
    /// objects the broker skips (e.g. a queue that exists with other arguments) are listed on
    /// stderr. With -p, into that vhost only.
    #[command(after_help = "Examples:\n  warrenctl import_definitions backup.json\n  \
        cat defs.json | warrenctl import_definitions -")]
    ImportDefinitions {
        /// File to read, or "-" for stdin.
        file: String,
    },
    #[command(flatten)]
    Ops(OpsCommand),
}

/// Arguments of `set_policy` and `set_operator_policy`.
#[derive(Debug, Args)]
pub struct PolicyArgs {
    /// Among matching policies the one with the highest priority applies.
    #[arg(long, default_value_t = 0, allow_negative_numbers = true)]
    pub priority: i64,
    /// What the policy applies to.
    #[arg(long, default_value = "all", value_parser = ["all", "queues", "exchanges", "classic_queues", "quorum_queues", "streams"])]
    pub apply_to: String,
    /// Name of the policy.
    pub name: String,
    /// Regex on queue/exchange names (unanchored: use ^...$).
    #[arg(allow_hyphen_values = true)]
    pub pattern: String,
    /// JSON object of settings.
    #[arg(allow_hyphen_values = true)]
    pub definition: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_out_of_range_are_usage_errors() {
        let parse = |args: &[&str]| Cli::try_parse_from([&["warrenctl"][..], args].concat());
        for interval in ["nan", "NaN", "inf", "-inf", "-1", "0", "1e400", "100000"] {
            let e = parse(&["top", &format!("--interval={interval}")]).unwrap_err();
            assert_eq!(e.kind(), clap::error::ErrorKind::ValueValidation, "{interval}: {e}");
            assert!(e.to_string().contains("--interval"), "{e}");
        }
        let top = parse(&["top", "--interval", "0.5"]).unwrap();
        assert!(matches!(top.command, Command::Ops(OpsCommand::Top { interval, .. }) if interval == 0.5));
        for timeout in
            ["-1", "nan", "inf", "1.5", "4294967296", "18446744073709551615", "99999999999999999999"]
        {
            let e = parse(&[&format!("--timeout={timeout}"), "ping"]).unwrap_err();
            assert_eq!(e.kind(), clap::error::ErrorKind::ValueValidation, "{timeout}: {e}");
        }
        assert_eq!(parse(&["-t", "4294967295", "ping"]).unwrap().timeout, MAX_TIMEOUT);
        assert_eq!(parse(&["-t", "0", "ping"]).unwrap().timeout, 0);
    }

    #[test]
    fn debug_output_hides_passwords_and_hashes() {
        let parse = |args: &[&str]| Cli::try_parse_from(args).unwrap();
        let cases = [
            parse(&[
                "warrenctl",
                "--url",
                "http://h:1",
                "--password",
                "g1obal-pw",
                "add_user",
                "bob",
                "b0b-pw",
            ]),
            parse(&["warrenctl", "add_user", "bob", "--password-hash", "hA5h-value"]),
            parse(&["warrenctl", "change_password", "bob", "n3w-pw"]),
            parse(&["warrenctl", "authenticate_user", "bob", "ch3ck-pw"]),
            parse(&["warrenctl", "hash_password", "ha5h-me"]),
        ];
        for cli in &cases {
            let shown = format!("{cli:?}");
            assert!(shown.contains("password: <redacted>"), "{shown}");
            for secret in ["g1obal-pw", "b0b-pw", "hA5h-value", "n3w-pw", "ch3ck-pw", "ha5h-me"] {
                assert!(!shown.contains(secret), "{secret} in {shown}");
            }
        }
        assert_eq!(cases[0].password.expose(), "g1obal-pw");
        assert!(
            matches!(&cases[0].command, Command::AddUser { password: Some(p), .. } if p.expose() == "b0b-pw")
        );
        assert_eq!(cases[1].password, Secret::from("guest".to_owned()), "the default still parses");
    }
}
