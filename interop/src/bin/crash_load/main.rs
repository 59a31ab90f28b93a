//! The crash driver: runs a real `warren` under load, kills it with SIGKILL
//! and checks what comes back (issue #13). `interop/crash-cycles.sh` runs it.
//!
//! ```text
//! crash_load cycles  --warren PATH [--dir DIR] [--cycles N] [--min-load-ms MS] [--max-load-ms MS]
//! crash_load special --warren PATH [--dir DIR] --kind compaction|queue-delete|vhost-delete
//!                    [--rounds N] [--deep-mb MB]
//! ```
//!
//! Exit status 0 when every check passed, 1 on a violation (lost confirmed
//! message, resurrected committed ack, failed restart; the data directory
//! is kept for a report), 2 on bad usage.

mod broker;
mod cycles;
mod ledger;
mod special;

use std::path::PathBuf;
use std::time::Duration;

use broker::Broker;
use ledger::min_median_max;

/// The queues' in-memory head is small, so deep queues page out.
const CONFIG: &str = "[storage]\nqueue_head_messages = 256\nqueue_head_bytes = 262144\n";

struct Args {
    command: String,
    warren: PathBuf,
    dir: PathBuf,
    cycles: u32,
    min_load: u64,
    max_load: u64,
    kind: String,
    rounds: u32,
    deep_mb: u32,
}

fn usage(why: &str) -> ! {
    eprintln!("crash_load: {why}\nusage: crash_load cycles|special --warren PATH [--dir DIR] [--cycles N] [--min-load-ms MS] [--max-load-ms MS] [--kind compaction|queue-delete|vhost-delete] [--rounds N] [--deep-mb MB]");
    std::process::exit(2)
}

fn parse() -> Args {
    let mut it = std::env::args().skip(1);
    let command = it.next().unwrap_or_else(|| usage("no command"));
    let tmp = std::env::temp_dir().join(format!("warren-crash-{}", std::process::id()));
    let mut a = Args {
        command,
        warren: PathBuf::new(),
        dir: tmp,
        cycles: 100,
        min_load: 500,
        max_load: 4000,
        kind: String::new(),
        rounds: 3,
        deep_mb: 300,
    };
    while let Some(flag) = it.next() {
        let value = it.next().unwrap_or_else(|| usage(&format!("{flag} needs a value")));
        let num = |v: &str| v.parse::<u64>().unwrap_or_else(|_| usage(&format!("{flag}: not a number")));
        match flag.as_str() {
            "--warren" => a.warren = value.into(),
            "--dir" => a.dir = value.into(),
            "--cycles" => a.cycles = num(&value) as u32,
            "--min-load-ms" => a.min_load = num(&value),
            "--max-load-ms" => a.max_load = num(&value),
            "--kind" => a.kind = value,
            "--rounds" => a.rounds = num(&value) as u32,
            "--deep-mb" => a.deep_mb = num(&value) as u32,
            _ => usage(&format!("unknown option {flag}")),
        }
    }
    if !a.warren.is_file() {
        usage("--warren must name the warren binary");
    }
    a.max_load = a.max_load.max(a.min_load);
    a
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let a = parse();
    let code = match a.command.as_str() {
        "cycles" => run_cycles(&a).await,
        "special" => run_special(&a).await,
        other => usage(&format!("unknown command {other}")),
    };
    std::process::exit(code);
}

async fn run_cycles(a: &Args) -> i32 {
    let _ = std::fs::remove_dir_all(&a.dir);
    let mut broker = Broker::new(&a.warren, &a.dir, CONFIG);
    let o = cycles::Options {
        cycles: a.cycles,
        min_load: Duration::from_millis(a.min_load),
        max_load: Duration::from_millis(a.max_load),
    };
    let started = std::time::Instant::now();
    let (totals, failure) = match cycles::run(&mut broker, &o).await {
        Ok(t) => (t, None),
        Err((t, why)) => (t, Some(why)),
    };
    broker.kill();
    let l = |v: &Vec<(u32, u64)>| {
        let ids: Vec<String> = v.iter().take(5).map(|(c, id)| format!("cycle {c}: {id:#x}")).collect();
        format!(
            "{}{}",
            v.len(),
            if ids.is_empty() { String::new() } else { format!(" ({})", ids.join(", ")) }
        )
    };
    println!("\n== crash cycles summary ({} s)", started.elapsed().as_secs());
    println!("cycles completed:            {} of {}", totals.cycles, a.cycles);
    println!("messages read back, checked: {}", totals.verified);
    println!("lost confirmed messages:     {}", l(&totals.lost));
    println!("lost in dead-lettering:      {} (TTL queue -> DLQ)", l(&totals.lost_dead_lettering));
    println!("resurrected committed acks:  {}", l(&totals.resurrected));
    println!("duplicates within a queue:   {}", l(&totals.duplicates));
    println!("order violations:            {}", totals.order_violations.len());
    for (c, what) in totals.order_violations.iter().take(5) {
        println!("  cycle {c}: {what}");
    }
    println!("TTL+DLQ both holding one:    {}", totals.dead_letter_duplicates);
    println!(
        "twice in the DLQ:            {} (allowed: dead-lettering is at-least-once)",
        totals.dlq_duplicates
    );
    println!(
        "DLQ out of publish order:    {} (dead-lettering order is not promised)",
        totals.dlq_order_violations.len()
    );
    for (c, what) in totals.dlq_order_violations.iter().take(3) {
        println!("  cycle {c}: {what}");
    }
    println!("misplaced:                   {}", totals.misplaced);
    println!("back after a plain ack:      {} (allowed: at-least-once)", totals.back_after_plain_ack);
    println!("back after a cut commit:     {} (allowed)", totals.back_after_uncertain_ack);
    println!("unconfirmed yet kept:        {} (allowed)", totals.unconfirmed_survived);
    println!("restart to listening, ms:    {} (min / median / max)", min_median_max(&totals.restart_ms));
    println!("recovery as logged, ms:      {} (min / median / max)", min_median_max(&totals.recovery_ms));
    if let Some(why) = failure {
        println!("\nSTOPPED: {why}");
        return 1;
    }
    let violations = totals.lost.len() + totals.resurrected.len() + totals.duplicates.len();
    if violations + totals.order_violations.len() > 0 {
        return 1;
    }
    broker.remove_files();
    0
}

async fn run_special(a: &Args) -> i32 {
    let Some(kind) = special::Kind::parse(&a.kind) else {
        usage("--kind must be compaction, queue-delete or vhost-delete");
    };
    let mut failed = 0;
    for r in 1..=a.rounds {
        let dir = PathBuf::from(format!("{}-{}-{r}", a.dir.display(), a.kind));
        let _ = std::fs::remove_dir_all(&dir);
        let mut broker = Broker::new(&a.warren, &dir, CONFIG);
        match special::round(&mut broker, kind, a.deep_mb).await {
            Ok(note) => {
                println!("{} round {r}/{}: ok: {note}", a.kind, a.rounds);
                broker.kill();
                broker.remove_files();
            }
            Err(why) => {
                broker.kill();
                println!(
                    "{} round {r}/{}: FAILED: {why}\n  data kept in {}, log {}\n{}",
                    a.kind,
                    a.rounds,
                    dir.display(),
                    broker.log.display(),
                    broker.log_tail(15)
                );
                failed += 1;
            }
        }
    }
    println!("{}: {} rounds, {failed} failed", a.kind, a.rounds);
    i32::from(failed > 0)
}
