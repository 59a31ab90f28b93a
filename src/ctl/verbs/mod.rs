//! The verbs: each turns its arguments into admin API requests and prints
//! rabbitmqctl's messages and listings. Grouped by resource.

mod connections;
mod definitions;
mod exchanges;
mod listing;
mod node;
mod permissions;
mod policies;
mod queues;
mod top;
mod user_limits;
mod users;
mod vhosts;

use std::io::{BufRead, IsTerminal, Write};

use serde_json::Value;

use super::api::Api;
use super::cli::{Command, Secret};
use super::cli_ops::OpsCommand;
use super::error::{CtlError, Result};
use super::output::{render, Style};

/// What a verb works with.
pub struct Ctx<'a> {
    pub api: &'a Api,
    /// `-p`, or `/`.
    pub vhost: String,
    /// Whether `-p` was given (definitions are per vhost only then).
    pub vhost_given: bool,
    pub style: Style,
    /// `--timeout`: per request, and in all for `await_startup`.
    pub timeout: std::time::Duration,
    /// Whether stdout is a terminal (`top` redraws, `status` headings are bold).
    pub tty: bool,
    pub stdout: &'a mut dyn Write,
    pub stderr: &'a mut dyn Write,
}

impl Ctx<'_> {
    /// An informational line, hidden by `-q`/`-s`.
    pub fn info(&mut self, line: &str) {
        if self.style.chatty() {
            self.say(line);
        }
    }

    /// A line of the verb's result, always printed.
    pub fn say(&mut self, line: &str) {
        // A closed stdout (`warrenctl list_users | head -1`) is not an error.
        let _ = writeln!(self.stdout, "{line}");
    }

    pub fn warn(&mut self, line: &str) {
        let _ = writeln!(self.stderr, "{line}");
    }

    /// A listing's banner (before the request, as rabbitmqctl), unless hidden.
    pub fn banner(&mut self, banner: &str) {
        if self.style.shows_banner() {
            self.say(banner);
        }
    }

    /// A listing's rows, as the `columns` asked for or else the defaults.
    pub fn rows(&mut self, default_columns: &[&str], columns: &[String], rows: &[Value]) {
        let columns: Vec<String> = if columns.is_empty() {
            default_columns.iter().map(|c| c.to_string()).collect()
        } else {
            columns.to_vec()
        };
        let _ = self.stdout.write_all(render(self.style, &columns, rows).as_bytes());
    }
}

/// Runs one verb.
pub fn run(ctx: &mut Ctx, command: Command) -> Result<()> {
    use Command::*;
    match command {
        AddUser { username, password, password_hash, hashing_algorithm } => {
            let (password, hash) = (password.map(Secret::into_inner), password_hash.map(Secret::into_inner));
            users::add_user(ctx, &username, password, hash, &hashing_algorithm)
        }
        DeleteUser { username } => users::delete_user(ctx, &username),
        ChangePassword { username, password } => {
            users::change_password(ctx, &username, password.map(Secret::into_inner))
        }
        AuthenticateUser { username, password } => {
            users::authenticate_user(ctx, &username, password.map(Secret::into_inner))
        }
        SetUserTags { username, tags } => users::set_user_tags(ctx, &username, &tags),
        ListUsers { columns } => users::list_users(ctx, &columns),
        HashPassword { password } => users::hash_password(ctx, password.map(Secret::into_inner)),
        AddVhost { name, description, tags, default_queue_type } => {
            vhosts::add_vhost(ctx, &name, description, tags, default_queue_type)
        }
        DeleteVhost { name } => vhosts::delete_vhost(ctx, &name),
        ListVhosts { columns } => vhosts::list_vhosts(ctx, &columns),
        SetVhostLimits { limits } => vhosts::set_vhost_limits(ctx, &limits),
        ClearVhostLimits => vhosts::clear_vhost_limits(ctx),
        ListVhostLimits { global } => vhosts::list_vhost_limits(ctx, global),
        SetUserLimits { username, limits } => user_limits::set_user_limits(ctx, &username, &limits),
        ClearUserLimits { username, limit } => user_limits::clear_user_limits(ctx, &username, &limit),
        ListUserLimits { user, global } => user_limits::list_user_limits(ctx, &user, global),
        SetPermissions { user, configure, write, read } => {
            permissions::set_permissions(ctx, &user, &configure, &write, &read)
        }
        ClearPermissions { user } => permissions::clear_permissions(ctx, &user),
        ListPermissions { all_vhosts } => permissions::list_permissions(ctx, all_vhosts),
        ListUserPermissions { user } => permissions::list_user_permissions(ctx, &user),
        SetTopicPermissions { user, exchange, write, read } => {
            permissions::set_topic_permissions(ctx, &user, &exchange, &write, &read)
        }
        ClearTopicPermissions { user, exchange } => {
            permissions::clear_topic_permissions(ctx, &user, exchange.as_deref())
        }
        ListTopicPermissions { all_vhosts } => permissions::list_topic_permissions(ctx, all_vhosts),
        ListUserTopicPermissions { user } => permissions::list_user_topic_permissions(ctx, &user),
        SetPolicy(args) => policies::set(ctx, policies::Kind::User, &args),
        ClearPolicy { name } => policies::clear(ctx, policies::Kind::User, &name),
        ListPolicies { all_vhosts } => policies::list(ctx, policies::Kind::User, all_vhosts),
        SetOperatorPolicy(args) => policies::set(ctx, policies::Kind::Operator, &args),
        ClearOperatorPolicy { name } => policies::clear(ctx, policies::Kind::Operator, &name),
        ListOperatorPolicies { all_vhosts } => policies::list(ctx, policies::Kind::Operator, all_vhosts),
        ExportDefinitions { file } => definitions::export(ctx, &file),
        ImportDefinitions { file } => definitions::import(ctx, &file),
        Ops(command) => run_ops(ctx, command),
    }
}

pub use queues::ACK_MODES;

/// Runs one everyday-operations verb.
fn run_ops(ctx: &mut Ctx, command: OpsCommand) -> Result<()> {
    use OpsCommand::*;
    match command {
        ListQueues { columns } => queues::list_queues(ctx, &columns),
        ListExchanges { columns } => exchanges::list_exchanges(ctx, &columns),
        ListBindings { columns } => exchanges::list_bindings(ctx, &columns),
        ListConnections { columns } => connections::list_connections(ctx, &columns),
        ListChannels { columns } => connections::list_channels(ctx, &columns),
        ListConsumers { columns } => connections::list_consumers(ctx, &columns),
        PurgeQueue { queue } => queues::purge_queue(ctx, &queue),
        DeleteQueue { queue, if_empty, if_unused } => queues::delete_queue(ctx, &queue, if_empty, if_unused),
        DeleteExchange { exchange } => exchanges::delete_exchange(ctx, &exchange),
        CloseConnection { name, explanation } => connections::close_connection(ctx, &name, &explanation),
        CloseAllConnections { global, limit, explanation } => {
            connections::close_all_connections(ctx, global, limit, &explanation)
        }
        CloseAllUserConnections { user, explanation } => {
            connections::close_all_user_connections(ctx, &user, &explanation)
        }
        Status => node::status(ctx),
        Ping => node::ping(ctx),
        AwaitStartup => node::await_startup(ctx),
        Environment { columns } => node::environment(ctx, &columns),
        Publish { exchange, routing_key, properties, payload } => {
            exchanges::publish(ctx, &exchange, &routing_key, &properties, &payload)
        }
        Get { queue, count, ackmode, encoding, columns } => {
            queues::get(ctx, &queue, count, &ackmode, &encoding, &columns)
        }
        Top { interval, iterations, rows } => top::top(ctx, interval, iterations, rows),
    }
}

/// The password given as an argument, else one line of stdin (with a prompt
/// on stderr when stdin is a terminal).
fn password_or_stdin(given: Option<String>) -> Result<String> {
    if let Some(password) = given {
        return Ok(password);
    }
    let stdin = std::io::stdin();
    if stdin.is_terminal() {
        eprint!("Password: ");
    }
    let mut line = String::new();
    let read = stdin
        .lock()
        .read_line(&mut line)
        .map_err(|e| CtlError::Data(format!("cannot read the password from stdin: {e}")))?;
    if read == 0 {
        return Err(CtlError::Usage("no password given (as an argument or on stdin)".into()));
    }
    let trimmed = line.strip_suffix('\n').unwrap_or(&line);
    Ok(trimmed.strip_suffix('\r').unwrap_or(trimmed).to_string())
}

/// Keeps the rows whose `field` equals `value`.
fn filter_rows(rows: Vec<Value>, field: &str, value: &str) -> Vec<Value> {
    rows.into_iter().filter(|r| r.get(field).and_then(Value::as_str) == Some(value)).collect()
}
