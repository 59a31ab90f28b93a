//! `warren-perf`: load generator for AMQP 0-9-1 brokers. See `warren-perf --help`.

use clap::Parser;

/// mimalloc: faster than the system allocator for many small, short-lived
/// allocations, and it gives freed memory back to the OS instead of keeping
/// a fragmented heap after a backlog drains (see `warren::allocator`).
#[global_allocator]
static GLOBAL: warren::allocator::Allocator = warren::allocator::Allocator;
use warren::perf::{run, Options};

fn main() -> std::process::ExitCode {
    let options = Options::parse();
    if options.serve_relay {
        return match warren::perf::floor::serve() {
            Ok(()) => std::process::ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("warren-perf: the relay: {e}");
                std::process::ExitCode::FAILURE
            }
        };
    }
    let json = options.json;
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("tokio runtime");
    match runtime.block_on(run(options)) {
        Ok(summary) => {
            if json {
                println!("{}", serde_json::to_string(&summary).expect("a summary serializes"));
            } else {
                println!("{}", summary.table());
            }
            std::process::ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("warren-perf: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
