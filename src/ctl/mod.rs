//! `warrenctl`'s client side: a thin HTTP client of Warren's admin API (the
//! RabbitMQ management API shape), over the broker's local control socket or
//! an HTTP URL, with rabbitmqctl's verbs, messages and exit codes.
//!
//! May use: std, clap, serde_json and the small encoding crates; nothing of
//! the broker (it only speaks HTTP to it).

pub mod api;
pub mod cli;
pub mod cli_ops;
pub mod error;
pub mod http;
pub mod output;
mod verbs;

use std::ffi::OsString;
use std::io::{IsTerminal, Write};
use std::time::Duration;

use clap::Parser;

use api::Api;
use cli::Cli;
use error::{exit, CtlError};
use http::{parse_url, Client, Endpoint};
use output::Style;

/// Parses `args` (the program name first), runs the verb and returns the
/// process exit code. Results go to `stdout`, errors to `stderr`.
pub fn run<I, T>(args: I, stdout: &mut dyn Write, stderr: &mut dyn Write) -> u8
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let cli = match Cli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(e) => {
            let rendered = e.render();
            let code = if e.use_stderr() {
                let _ = write!(stderr, "{rendered}");
                exit::USAGE
            } else {
                let _ = write!(stdout, "{rendered}");
                exit::OK
            };
            return code;
        }
    };
    match execute(cli, stdout, stderr) {
        Ok(()) => exit::OK,
        Err(e) => {
            let _ = writeln!(stderr, "Error: {e}");
            e.exit_code()
        }
    }
}

fn execute(cli: Cli, stdout: &mut dyn Write, stderr: &mut dyn Write) -> error::Result<()> {
    let timeout = Duration::from_secs(cli.timeout.max(1));
    let api = match &cli.url {
        Some(url) => {
            let url = parse_url(url).map_err(CtlError::Usage)?;
            let (username, password) =
                url.credentials.clone().unwrap_or((cli.username, cli.password.into_inner()));
            Api::new(Client { endpoint: url.endpoint, timeout }, Some((&username, &password)))
        }
        None => Api::new(Client { endpoint: Endpoint::Unix(cli.socket), timeout }, None),
    };
    let mut ctx = verbs::Ctx {
        api: &api,
        vhost_given: cli.vhost.is_some(),
        vhost: cli.vhost.unwrap_or_else(|| "/".to_string()),
        style: Style { format: cli.format, quiet: cli.quiet, silent: cli.silent },
        timeout,
        tty: std::io::stdout().is_terminal(),
        stdout,
        stderr,
    };
    verbs::run(&mut ctx, cli.command)
}
