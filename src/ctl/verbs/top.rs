//! `top`: a live view of the busiest queues and connections, redrawn every
//! `--interval` seconds. Each frame asks the API for the top rows only
//! (`sort=<rate>&sort_reverse=true&page_size=N`), so it stays cheap with
//! 100,000 queues. On a terminal a frame clears the screen (plain ANSI
//! escapes); otherwise frames are printed one after another, separated by a
//! blank line.

use std::collections::HashMap;
use std::time::Duration;

use serde_json::Value;

use super::Ctx;
use crate::ctl::api::Api;
use crate::ctl::cli_ops::{MAX_INTERVAL, MIN_INTERVAL};
use crate::ctl::error::Result;

/// Home the cursor and clear the screen.
const CLEAR: &str = "\x1b[H\x1b[2J";
/// Longest name shown; longer ones are cut with `…`.
const NAME_WIDTH: usize = 48;

const QUEUE_FIELDS: &str = "name,vhost,messages,messages_ready,messages_unacknowledged,consumers,\
    messages_details.rate,message_stats.publish_details.rate,message_stats.deliver_get_details.rate";
const CONNECTION_FIELDS: &str = "name,user,vhost,channels,recv_oct_details.rate,send_oct_details.rate";

pub fn top(ctx: &mut Ctx, interval: f64, iterations: Option<u64>, rows: usize) -> Result<()> {
    let interval = interval_duration(interval);
    let rows = rows.clamp(1, 500);
    let mut shown = 0u64;
    loop {
        let frame = match frame(ctx.api, rows, interval) {
            Ok(frame) => frame,
            // The first frame fails as any verb; later ones keep watching.
            Err(e) if shown == 0 => return Err(e),
            Err(e) => format!("warrenctl top: {e}\n(retrying every {:.1}s)\n", interval.as_secs_f64()),
        };
        let out = if ctx.tty {
            format!("{CLEAR}{frame}")
        } else if shown > 0 {
            format!("\n{frame}")
        } else {
            frame
        };
        if ctx.stdout.write_all(out.as_bytes()).and_then(|_| ctx.stdout.flush()).is_err() {
            return Ok(());
        }
        shown += 1;
        if iterations.is_some_and(|n| shown >= n) {
            return Ok(());
        }
        std::thread::sleep(interval);
    }
}

/// `--interval` as a duration: clap lets only finite values from 0.1 to
/// 3600 through; anything else (NaN would make `Duration::from_secs_f64`
/// panic) is clamped, or is the default 2 s.
fn interval_duration(seconds: f64) -> Duration {
    Duration::try_from_secs_f64(seconds.clamp(MIN_INTERVAL, MAX_INTERVAL)).unwrap_or(Duration::from_secs(2))
}

/// The top `rows` items of `path` by `sort` (highest first).
fn busiest(api: &Api, path: &str, fields: &str, sort: &str, rows: usize) -> Result<Vec<Value>> {
    let url = format!("{path}?page=1&page_size={rows}&sort={sort}&sort_reverse=true&columns={fields}");
    Ok(match api.get(&url)?.ok()?.json()? {
        Value::Object(mut page) => match page.remove("items") {
            Some(Value::Array(items)) => items,
            _ => Vec::new(),
        },
        Value::Array(mut items) => {
            // An API without pagination or sorting: sort here.
            items.sort_by(|a, b| number(b, sort).total_cmp(&number(a, sort)));
            items.truncate(rows);
            items
        }
        _ => Vec::new(),
    })
}

/// A number at a dot path, 0 when absent.
fn number(row: &Value, path: &str) -> f64 {
    path.split('.').try_fold(row, |v, k| v.get(k)).and_then(Value::as_f64).unwrap_or(0.0)
}

/// Merges two top lists, keeps the `rows` highest by `score`.
fn merge_top(a: Vec<Value>, b: Vec<Value>, rows: usize, score: impl Fn(&Value) -> f64) -> Vec<Value> {
    let mut seen: HashMap<(String, String), Value> = HashMap::new();
    for item in a.into_iter().chain(b) {
        let key = |k: &str| item.get(k).and_then(Value::as_str).unwrap_or_default().to_string();
        seen.entry((key("vhost"), key("name"))).or_insert(item);
    }
    let mut all: Vec<Value> = seen.into_values().collect();
    all.sort_by(|x, y| score(y).total_cmp(&score(x)));
    all.truncate(rows);
    all
}

/// One screenful.
fn frame(api: &Api, rows: usize, interval: Duration) -> Result<String> {
    let overview = api.get("/api/overview")?.ok()?.json()?;
    let by_messages = busiest(api, "/api/queues", QUEUE_FIELDS, "messages", rows)?;
    let publish = "message_stats.publish_details.rate";
    let deliver = "message_stats.deliver_get_details.rate";
    let by_publish = busiest(api, "/api/queues", QUEUE_FIELDS, publish, rows)?;
    let by_deliver = busiest(api, "/api/queues", QUEUE_FIELDS, deliver, rows)?;
    let by_rate = merge_top(by_publish, by_deliver, rows, |q| number(q, publish) + number(q, deliver));
    let (recv, send) = ("recv_oct_details.rate", "send_oct_details.rate");
    let by_recv = busiest(api, "/api/connections", CONNECTION_FIELDS, recv, rows)?;
    let by_send = busiest(api, "/api/connections", CONNECTION_FIELDS, send, rows)?;
    let connections = merge_top(by_recv, by_send, rows, |c| number(c, recv) + number(c, send));
    Ok(render_frame(&overview, &by_messages, &by_rate, &connections, interval))
}

/// A frame's text from the API's answers (pure, for tests).
pub fn render_frame(
    overview: &Value,
    by_messages: &[Value],
    by_rate: &[Value],
    connections: &[Value],
    interval: Duration,
) -> String {
    let text = |path: &str| {
        path.split('.').try_fold(overview, |v, k| v.get(k)).and_then(Value::as_str).unwrap_or("?").to_string()
    };
    let total = |path: &str| number(overview, path) as u64;
    let mut out = format!(
        "{} {} on {} (every {:.1}s, Ctrl-C to quit)\n",
        text("product_name"),
        text("product_version"),
        text("node"),
        interval.as_secs_f64()
    );
    out.push_str(&format!(
        "connections {}  channels {}  queues {}  consumers {}  messages {} (ready {}, unacked {})  \
         publish {}/s  deliver {}/s\n",
        total("object_totals.connections"),
        total("object_totals.channels"),
        total("object_totals.queues"),
        total("object_totals.consumers"),
        total("queue_totals.messages"),
        total("queue_totals.messages_ready"),
        total("queue_totals.messages_unacknowledged"),
        rate(number(overview, "message_stats.publish_details.rate")),
        rate(number(overview, "message_stats.deliver_get_details.rate")),
    ));
    let queue_name = |q: &Value| vec![field(q, "vhost"), field(q, "name")];
    out.push_str("\nQueues by messages\n");
    let rows: Vec<Vec<String>> = by_messages
        .iter()
        .map(|q| {
            let mut row = queue_name(q);
            for path in ["messages", "messages_ready", "messages_unacknowledged", "consumers"] {
                row.push((number(q, path) as u64).to_string());
            }
            row.push(rate(number(q, "messages_details.rate")));
            row
        })
        .collect();
    out.push_str(&table(&["vhost", "name", "messages", "ready", "unacked", "consumers", "change/s"], &rows));
    out.push_str("\nQueues by message rate\n");
    let rows: Vec<Vec<String>> = by_rate
        .iter()
        .map(|q| {
            let mut row = queue_name(q);
            row.push(rate(number(q, "message_stats.publish_details.rate")));
            row.push(rate(number(q, "message_stats.deliver_get_details.rate")));
            row.push((number(q, "messages") as u64).to_string());
            row
        })
        .collect();
    out.push_str(&table(&["vhost", "name", "publish/s", "deliver/s", "messages"], &rows));
    out.push_str("\nConnections by traffic\n");
    let rows: Vec<Vec<String>> = connections
        .iter()
        .map(|c| {
            vec![
                field(c, "name"),
                field(c, "user"),
                field(c, "vhost"),
                (number(c, "channels") as u64).to_string(),
                bytes_rate(number(c, "recv_oct_details.rate")),
                bytes_rate(number(c, "send_oct_details.rate")),
            ]
        })
        .collect();
    out.push_str(&table(&["name", "user", "vhost", "channels", "recv", "send"], &rows));
    out
}

/// A text field, cut to [`NAME_WIDTH`] characters.
fn field(row: &Value, key: &str) -> String {
    let s = row.get(key).and_then(Value::as_str).unwrap_or_default();
    if s.chars().count() <= NAME_WIDTH {
        return s.chars().map(|c| if c.is_control() { ' ' } else { c }).collect();
    }
    let cut: String = s.chars().take(NAME_WIDTH - 1).map(|c| if c.is_control() { ' ' } else { c }).collect();
    format!("{cut}…")
}

fn rate(r: f64) -> String {
    format!("{r:.1}")
}

fn bytes_rate(r: f64) -> String {
    const UNITS: [&str; 4] = ["B/s", "KiB/s", "MiB/s", "GiB/s"];
    let (mut r, mut unit) = (r, 0);
    while r >= 1024.0 && unit < UNITS.len() - 1 {
        r /= 1024.0;
        unit += 1;
    }
    format!("{r:.1} {}", UNITS[unit])
}

/// Columns padded to their widest cell; the first ones (names) left
/// aligned, numbers right aligned. "(none)" for no rows.
fn table(headers: &[&str], rows: &[Vec<String>]) -> String {
    if rows.is_empty() {
        return "  (none)\n".to_string();
    }
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let text_columns = headers.iter().take_while(|h| matches!(**h, "vhost" | "name" | "user")).count();
    let line = |cells: Vec<&str>| {
        let padded: Vec<String> = cells
            .iter()
            .zip(&widths)
            .enumerate()
            .map(|(i, (cell, w))| {
                let pad = " ".repeat(w.saturating_sub(cell.chars().count()));
                if i < text_columns {
                    format!("{cell}{pad}")
                } else {
                    format!("{pad}{cell}")
                }
            })
            .collect();
        format!("  {}\n", padded.join("  ").trim_end())
    };
    let mut out = line(headers.to_vec());
    for row in rows {
        out.push_str(&line(row.iter().map(String::as_str).collect()));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_frame_shows_totals_and_the_busiest() {
        let overview = json!({
            "product_name": "Warren", "product_version": "0.1.0", "node": "rabbit@h",
            "object_totals": {"connections": 1, "channels": 2, "queues": 3, "consumers": 4},
            "queue_totals": {"messages": 10, "messages_ready": 7, "messages_unacknowledged": 3},
            "message_stats": {"publish_details": {"rate": 12.5}, "deliver_get_details": {"rate": 2.0}},
        });
        let q = json!({"vhost": "/", "name": "orders", "messages": 10, "messages_ready": 7,
            "messages_unacknowledged": 3, "consumers": 1, "messages_details": {"rate": -1.5},
            "message_stats": {"publish_details": {"rate": 12.5}}});
        let c = json!({"name": "127.0.0.1:1 -> 127.0.0.1:5672", "user": "guest", "vhost": "/",
            "channels": 2, "recv_oct_details": {"rate": 2048.0}, "send_oct_details": {"rate": 10.0}});
        let queues = [q];
        let text = render_frame(&overview, &queues, &queues, &[c], Duration::from_secs(2));
        assert!(text.starts_with("Warren 0.1.0 on rabbit@h (every 2.0s"), "{text}");
        assert!(text.contains("connections 1  channels 2  queues 3  consumers 4  messages 10 (ready 7, unacked 3)  publish 12.5/s  deliver 2.0/s"), "{text}");
        assert!(text.contains("  /      orders        10      7        3          1      -1.5\n"), "{text}");
        assert!(text.contains("  /      orders       12.5        0.0        10\n"), "{text}");
        assert!(text.contains("2.0 KiB/s  10.0 B/s"), "{text}");
        let empty = render_frame(&json!({}), &[], &[], &[], Duration::from_secs(1));
        assert!(empty.contains("Queues by messages\n  (none)\n"), "{empty}");
    }

    #[test]
    fn any_interval_is_a_duration() {
        assert_eq!(interval_duration(2.0), Duration::from_secs(2));
        assert_eq!(interval_duration(f64::NAN), Duration::from_secs(2));
        assert_eq!(interval_duration(f64::INFINITY), Duration::from_secs(3600));
        assert_eq!(interval_duration(f64::NEG_INFINITY), Duration::from_millis(100));
        assert_eq!(interval_duration(-1.0), Duration::from_millis(100));
        assert_eq!(interval_duration(1e300), Duration::from_secs(3600));
    }

    #[test]
    fn merged_tops_keep_the_highest_once() {
        let q = |name: &str, p: f64| json!({"vhost": "/", "name": name, "p": p});
        let merged =
            merge_top(vec![q("a", 1.0), q("b", 5.0)], vec![q("b", 5.0), q("c", 3.0)], 2, |v| number(v, "p"));
        let names: Vec<&str> = merged.iter().map(|v| v["name"].as_str().unwrap()).collect();
        assert_eq!(names, ["b", "c"]);
        assert_eq!(field(&json!({"name": "x".repeat(60)}), "name").chars().count(), NAME_WIDTH);
    }
}
