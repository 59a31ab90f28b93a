//! Node verbs: status, ping, await_startup and environment (`/api/overview`,
//! `/api/nodes/{node}`, `/api/vhosts`, `/api/warren/environment`).

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::listing::{columns, Printer};
use super::Ctx;
use crate::ctl::api::{seg, Api};
use crate::ctl::error::{CtlError, Result};
use crate::ctl::http::seconds;
use crate::ctl::output::Format;

/// How long `await_startup` waits between attempts.
const POLL_EVERY: Duration = Duration::from_millis(250);
/// The longest one `await_startup` attempt may wait for an answer.
const ATTEMPT_MAX: Duration = Duration::from_secs(5);
/// The shortest: the last attempt before the deadline gets at least this.
const ATTEMPT_MIN: Duration = Duration::from_millis(100);

pub fn ping(ctx: &mut Ctx) -> Result<()> {
    let target = ctx.api.endpoint().describe();
    ctx.info(&format!("Will ping the broker at {target}. This checks that its admin API answers."));
    ctx.api.get("/api/overview")?.ok()?;
    ctx.say("Ping succeeded");
    Ok(())
}

/// Polls `/api/overview` until it answers, for up to `--timeout` seconds;
/// prints nothing. Refused credentials or a socket it may not open fail at
/// once (waiting will not help); a 5xx or no answer is tried again.
pub fn await_startup(ctx: &mut Ctx) -> Result<()> {
    wait_for_api(ctx.api, ctx.timeout, ATTEMPT_MAX)
}

/// [`await_startup`]'s loop: each attempt waits at most `attempt_max`, and
/// no longer than the time left, so the whole takes at most `timeout` (plus
/// [`ATTEMPT_MIN`] at worst).
fn wait_for_api(api: &Api, timeout: Duration, attempt_max: Duration) -> Result<()> {
    // A timeout too long for an `Instant` has no deadline.
    let deadline = Instant::now().checked_add(timeout);
    loop {
        let left = deadline.map_or(attempt_max, |d| d.saturating_duration_since(Instant::now()));
        let attempt = api.with_timeout(left.min(attempt_max).max(ATTEMPT_MIN));
        let last = match attempt.get("/api/overview") {
            Ok(reply) if reply.status < 500 => return reply.ok().map(drop),
            Ok(reply) => match reply.ok() {
                Ok(_) => return Ok(()),
                Err(e) => e,
            },
            Err(e @ CtlError::NoPermission(_)) => return Err(e),
            Err(e) => e,
        };
        if deadline.is_some_and(|d| Instant::now() + POLL_EVERY > d) {
            return Err(CtlError::Unreachable(format!(
                "the broker did not start within {} seconds: {last}",
                seconds(&timeout)
            )));
        }
        std::thread::sleep(POLL_EVERY);
    }
}

/// The effective settings and where each comes from (default, config file,
/// flag, environment variable).
pub fn environment(ctx: &mut Ctx, asked: &[String]) -> Result<()> {
    ctx.banner("Effective configuration of the broker ...");
    let reply = ctx.api.get("/api/warren/environment")?;
    if reply.status == 404 {
        return Err(CtlError::NotFound(
            "the broker has no /api/warren/environment (is it Warren, and recent enough?)".into(),
        ));
    }
    let answer = reply.ok()?.json()?;
    let Some(settings) = answer.get("settings").and_then(Value::as_array) else {
        return Err(CtlError::Software("the API answered without \"settings\"".into()));
    };
    let columns = columns(asked, &["key", "value", "source"], &[]);
    let mut printer = Printer::start(ctx.style, &columns, ctx.stdout);
    printer.rows(settings);
    printer.finish();
    Ok(())
}

pub fn status(ctx: &mut Ctx) -> Result<()> {
    let overview = ctx.api.get("/api/overview")?.ok()?.json()?;
    let node_name = overview.get("node").and_then(Value::as_str).unwrap_or_default().to_string();
    ctx.banner(&format!("Status of node {node_name} ..."));
    let node = ctx.api.get(&format!("/api/nodes/{}", seg(&node_name)))?.ok()?.json()?;
    let vhosts = ctx.api.get("/api/vhosts?columns=name")?.ok()?.rows()?.len();
    let status = status_json(&overview, &node, vhosts);
    if ctx.style.format == Format::Json {
        ctx.say(&status.to_string());
    } else {
        let text = status_text(&status, ctx.tty);
        ctx.say(text.trim_end());
    }
    Ok(())
}

/// `status` as rabbitmqctl's `--formatter json` keys it.
pub fn status_json(overview: &Value, node: &Value, vhost_count: usize) -> Value {
    let node_name = overview.get("node").cloned().unwrap_or(Value::Null);
    let n = |key: &str| node.get(key).cloned().unwrap_or(Value::Null);
    let mut alarms = Vec::new();
    for (flag, resource) in [("mem_alarm", "memory"), ("disk_free_alarm", "disk")] {
        if node.get(flag).and_then(Value::as_bool) == Some(true) {
            alarms.push(json!({"node": node_name, "resource": resource, "type": "resource_limit"}));
        }
    }
    let listeners: Vec<Value> = overview
        .get("listeners")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|l| {
            let protocol = l.get("protocol").and_then(Value::as_str).unwrap_or_default();
            let ip = l.get("ip_address").and_then(Value::as_str).unwrap_or_default();
            let interface = if ip.contains(':') { format!("[{ip}]") } else { ip.to_string() };
            json!({
                "interface": interface,
                "node": l.get("node").cloned().unwrap_or(Value::Null),
                "port": l.get("port").cloned().unwrap_or(Value::Null),
                "protocol": protocol,
                "purpose": purpose(protocol),
            })
        })
        .collect();
    let totals = |key: &str| overview.pointer(&format!("/object_totals/{key}")).cloned().unwrap_or(json!(0));
    let uptime = node.get("uptime").and_then(Value::as_u64).map(|ms| ms / 1000);
    json!({
        "alarms": alarms,
        "disk_free": n("disk_free"),
        "disk_free_limit": n("disk_free_limit"),
        "file_descriptors": {
            "sockets_limit": n("sockets_total"),
            "sockets_used": n("sockets_used"),
            "total_limit": n("fd_total"),
            "total_used": n("fd_used"),
        },
        "listeners": listeners,
        "memory": {"total": {"rss": n("mem_used")}},
        "node": node_name,
        "pid": n("os_pid"),
        "processes": {"limit": n("proc_total"), "used": n("proc_used")},
        "product_name": overview.get("product_name").cloned().unwrap_or(Value::Null),
        "product_version": overview.get("product_version").cloned().unwrap_or(Value::Null),
        "rabbitmq_version": overview.get("rabbitmq_version").cloned().unwrap_or(Value::Null),
        "run_queue": n("run_queue"),
        "totals": {
            "connection_count": totals("connections"),
            "queue_count": totals("queues"),
            "virtual_host_count": vhost_count,
        },
        "uptime": uptime,
        "vm_memory_high_watermark_limit": n("mem_limit"),
    })
}

/// What a listener is for, in rabbitmqctl's words.
fn purpose(protocol: &str) -> &'static str {
    match protocol {
        "amqp" => "AMQP 0-9-1",
        "amqp/ssl" => "AMQP 0-9-1 over TLS",
        "http" => "HTTP API",
        "https" => "HTTP API over TLS (HTTPS)",
        "http/prometheus" => "Prometheus exporter API over HTTP",
        "https/prometheus" => "Prometheus exporter API over TLS (HTTPS)",
        "clustering" => "inter-node and CLI tool communication",
        _ => "",
    }
}

/// `status` as rabbitmqctl's text sections (headings bold on a terminal).
pub fn status_text(status: &Value, bold: bool) -> String {
    let text = |path: &str| match status.pointer(path) {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(other) => Some(other.to_string()),
    };
    let gb = |path: &str| status.pointer(path).and_then(Value::as_f64).map(|b| format!("{:.4} gb", b / 1e9));
    let mut out = String::new();
    let mut section = |title: &str, lines: Vec<Option<String>>| {
        if bold {
            out.push_str(&format!("\x1b[1m{title}\x1b[0m\n\n"));
        } else {
            out.push_str(&format!("{title}\n\n"));
        }
        for line in lines.into_iter().flatten() {
            out.push_str(&line);
            out.push('\n');
        }
        out.push('\n');
    };
    let line = |label: &str, value: Option<String>| value.map(|v| format!("{label}: {v}"));
    section(
        "Runtime",
        vec![
            line("OS PID", text("/pid")),
            line("Uptime (seconds)", text("/uptime")),
            line("Product name", text("/product_name")),
            line("Product version", text("/product_version")),
            line("RabbitMQ version", text("/rabbitmq_version")),
            line("Node name", text("/node")),
            text("/processes/used").map(|used| {
                let limit = text("/processes/limit").unwrap_or_else(|| "?".into());
                format!("Processes: {used} used, {limit} limit")
            }),
            line("Scheduler run queue", text("/run_queue")),
        ],
    );
    let alarms: Vec<Option<String>> = match status.get("alarms").and_then(Value::as_array) {
        Some(alarms) if !alarms.is_empty() => alarms
            .iter()
            .map(|a| {
                let node = a.get("node").and_then(Value::as_str).unwrap_or_default();
                Some(match a.get("resource").and_then(Value::as_str) {
                    Some("disk") => format!("Free disk space alarm on node {node}"),
                    Some("memory") => format!("Memory alarm on node {node}"),
                    _ => format!("Alarm: {a}"),
                })
            })
            .collect(),
        _ => vec![Some("(none)".into())],
    };
    section("Alarms", alarms);
    section(
        "Memory",
        vec![
            line("Total memory used", gb("/memory/total/rss")),
            line("Memory high watermark, computed to", gb("/vm_memory_high_watermark_limit")),
        ],
    );
    let pair = |used: &str, limit: &str| match (text(used), text(limit)) {
        (Some(used), Some(limit)) => Some(format!("{used}, limit: {limit}")),
        (Some(used), None) => Some(used),
        _ => None,
    };
    section(
        "File Descriptors",
        vec![
            line("Total", pair("/file_descriptors/total_used", "/file_descriptors/total_limit")),
            line("Sockets", pair("/file_descriptors/sockets_used", "/file_descriptors/sockets_limit")),
        ],
    );
    section(
        "Free Disk Space",
        vec![
            line("Low free disk space watermark", gb("/disk_free_limit")),
            line("Free disk space", gb("/disk_free")),
        ],
    );
    section(
        "Totals",
        vec![
            line("Connection count", text("/totals/connection_count")),
            line("Queue count", text("/totals/queue_count")),
            line("Virtual host count", text("/totals/virtual_host_count")),
        ],
    );
    let listeners: Vec<Option<String>> = status
        .get("listeners")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|l| {
            let field = |k: &str| match l.get(k) {
                Some(Value::String(s)) => s.clone(),
                Some(other) => other.to_string(),
                None => String::new(),
            };
            Some(format!(
                "Interface: {}, port: {}, protocol: {}, purpose: {}",
                field("interface"),
                field("port"),
                field("protocol"),
                field("purpose")
            ))
        })
        .collect();
    section("Listeners", listeners);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ctl::http::{Client, Endpoint};

    fn sample() -> Value {
        let overview = json!({
            "node": "rabbit@vm", "product_name": "Warren", "product_version": "0.1.0",
            "rabbitmq_version": "3.10.8",
            "object_totals": {"connections": 2, "queues": 7},
            "listeners": [{"node":"rabbit@vm","protocol":"amqp","ip_address":"::","port":5672},
                          {"node":"rabbit@vm","protocol":"http","ip_address":"127.0.0.1","port":15672}],
        });
        let node = json!({
            "os_pid": "42", "uptime": 65_500, "mem_used": 150_000_000u64, "mem_limit": 1_000_000_000u64,
            "disk_free": 2_000_000_000u64, "disk_free_limit": 50_000_000u64, "disk_free_alarm": true,
            "mem_alarm": false, "fd_used": 10, "fd_total": 1024,
        });
        status_json(&overview, &node, 3)
    }

    #[test]
    fn await_startup_keeps_to_its_timeout() {
        // A socket that is listened on but never answered: each attempt waits
        // for its whole timeout.
        let dir = std::env::temp_dir().join(format!("warrenctl-await-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("silent.sock");
        let _ = std::fs::remove_file(&path);
        let _listener = std::os::unix::net::UnixListener::bind(&path).unwrap();
        let client = Client { endpoint: Endpoint::Unix(path), timeout: Duration::from_secs(60) };
        let api = Api::new(client, None);
        // Attempts of 700 ms: uncapped, the second would end at 1.65 s.
        let start = Instant::now();
        let e = wait_for_api(&api, Duration::from_secs(1), Duration::from_millis(700)).unwrap_err();
        let took = start.elapsed();
        assert!(took >= Duration::from_millis(900) && took < Duration::from_millis(1650), "{took:?}");
        assert_eq!(e.exit_code(), 69);
        assert!(e.to_string().starts_with("the broker did not start within 1 seconds: no response"), "{e}");
        let start = Instant::now();
        wait_for_api(&api, Duration::from_millis(300), Duration::from_secs(5)).unwrap_err();
        assert!(start.elapsed() < Duration::from_millis(2000), "{:?}", start.elapsed());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn status_json_uses_rabbitmqctl_keys() {
        let s = sample();
        assert_eq!(s["uptime"], 65);
        assert_eq!(s["totals"], json!({"connection_count":2,"queue_count":7,"virtual_host_count":3}));
        assert_eq!(s["alarms"], json!([{"node":"rabbit@vm","resource":"disk","type":"resource_limit"}]));
        assert_eq!(s["listeners"][0]["interface"], "[::]");
        assert_eq!(s["listeners"][1]["purpose"], "HTTP API");
        assert_eq!(s["file_descriptors"]["total_used"], 10);
        assert_eq!(s["vm_memory_high_watermark_limit"], 1_000_000_000u64);
    }

    #[test]
    fn status_text_has_rabbitmqctl_sections() {
        let text = status_text(&sample(), false);
        for expected in [
            "Runtime\n\nOS PID: 42\nUptime (seconds): 65\n",
            "Alarms\n\nFree disk space alarm on node rabbit@vm\n",
            "Total memory used: 0.1500 gb\n",
            "Total: 10, limit: 1024\n",
            "Free disk space: 2.0000 gb\n",
            "Totals\n\nConnection count: 2\nQueue count: 7\nVirtual host count: 3\n",
            "Interface: [::], port: 5672, protocol: amqp, purpose: AMQP 0-9-1\n",
        ] {
            assert!(text.contains(expected), "{expected:?} not in\n{text}");
        }
        assert!(!text.contains("Sockets"), "absent fields are left out:\n{text}");
        assert!(status_text(&sample(), true).contains("\x1b[1mRuntime\x1b[0m"));
    }
}
