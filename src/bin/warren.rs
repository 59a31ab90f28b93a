//! `warren`: the broker server.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Parser;

/// mimalloc: faster than the system allocator for many small, short-lived
/// allocations, and it gives freed memory back to the OS instead of keeping
/// a fragmented heap after a backlog drains.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;
use tracing_subscriber::EnvFilter;
use warren::config::Config;
use warren::server::Server;

/// Warren: a fast, durable AMQP 0-9-1 message broker, wire-compatible with RabbitMQ.
///
/// With no arguments it starts on built-in defaults: AMQP on 0.0.0.0:5672,
/// the admin API on 127.0.0.1:15672 (and warrenctl's socket
/// ./warren-data/warrenctl.sock), data in ./warren-data, user guest/guest
/// (from loopback only), vhost "/". SIGHUP re-reads the TLS certificates.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// TOML config file (see config/warren.toml for every setting and its default).
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Address of the AMQP listener.
    #[arg(long, value_name = "HOST:PORT")]
    listen: Option<SocketAddr>,
    /// Address of the HTTP admin API (RabbitMQ's management API shape;
    /// default 127.0.0.1:15672).
    #[arg(long, value_name = "HOST:PORT")]
    admin_listen: Option<SocketAddr>,
    /// Directory for Warren's data.
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// Log level: error, warn, info, debug, trace (or tracing directives).
    #[arg(long, value_name = "LEVEL")]
    log_level: Option<String>,
}

fn main() -> std::process::ExitCode {
    let args = Args::parse();
    let mut config = match Config::load(args.config.as_deref(), |k| std::env::var(k).ok()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("warren: {e}");
            return std::process::ExitCode::from(2);
        }
    };
    if let Some(l) = args.listen {
        config.amqp.listen = l;
    }
    if let Some(a) = args.admin_listen {
        config.admin.listen = Some(a);
    }
    if let Some(d) = args.data_dir {
        config.storage.data_dir = d;
    }
    if let Some(l) = args.log_level {
        config.log.level = l;
    }
    let filter = match EnvFilter::try_new(&config.log.level) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("warren: invalid log level {:?}: {e}", config.log.level);
            return std::process::ExitCode::from(2);
        }
    };
    tracing_subscriber::fmt().with_env_filter(filter).with_target(false).init();
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("tokio runtime");
    runtime.block_on(async {
        let server = match Server::start(config).await {
            Ok(s) => s,
            Err(e) => {
                tracing::error!("cannot start: {e}");
                return std::process::ExitCode::from(1);
            }
        };
        let _ = tokio::signal::ctrl_c().await;
        tracing::info!("shutting down");
        server.stop().await;
        std::process::ExitCode::SUCCESS
    })
}
