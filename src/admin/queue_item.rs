//! A queue as RabbitMQ's management API shows it: the full list item, the
//! slim one of `disable_stats=true`, and the detail view with its
//! consumers (each in the shape of `/api/consumers`). Read from one
//! `Queue::info()` (a short hold of the queue's lock) and its rates. May
//! use `broker`.

use serde_json::{json, Map, Value};

use super::channels::consumer_item;
use super::node_name;
use super::AdminState;
use crate::broker::queue::Queue;
use crate::protocol::json::table_to_json;

/// How much of a queue to show.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// `disable_stats=true`: identity and depth only.
    Slim,
    /// A list item.
    Full,
    /// `/api/queues/{vhost}/{name}`: with its consumers.
    Detail,
}

fn rate(r: f64) -> Value {
    json!({ "rate": r })
}

/// `x-queue-type` if it names one, else classic.
fn queue_type(q: &Queue) -> String {
    match q.arguments.inner().get("x-queue-type").and_then(crate::protocol::table::as_str) {
        Some(t) if !t.is_empty() => t.to_owned(),
        _ => "classic".to_owned(),
    }
}

pub fn item(s: &AdminState, q: &Queue, shape: Shape) -> Value {
    let info = q.info();
    let mut out = Map::with_capacity(48);
    let mut put = |k: &str, v: Value| {
        out.insert(k.to_owned(), v);
    };
    put("name", json!(q.name));
    put("vhost", json!(q.vhost));
    put("durable", json!(q.durable));
    put("auto_delete", json!(q.auto_delete));
    put("exclusive", json!(q.exclusive_owner.is_some()));
    put("arguments", table_to_json(&q.arguments));
    put("type", json!(queue_type(q)));
    put("node", json!(node_name()));
    put("state", json!("running"));
    put("messages", json!(info.messages()));
    put("messages_ready", json!(info.ready));
    put("messages_unacknowledged", json!(info.unacked));
    if shape == Shape::Slim {
        return Value::Object(out);
    }
    let r = &q.rates;
    put("consumers", json!(info.consumers));
    put("message_bytes", json!(info.bytes()));
    put("message_bytes_ready", json!(info.ready_bytes));
    put("message_bytes_unacknowledged", json!(info.unacked_bytes));
    put("messages_ram", json!(info.ready_ram + info.unacked));
    put("messages_ready_ram", json!(info.ready_ram));
    put("messages_unacknowledged_ram", json!(info.unacked));
    put("message_bytes_ram", json!(info.ready_ram_bytes + info.unacked_bytes));
    put("messages_paged_out", json!(info.paged_out));
    put("message_bytes_paged_out", json!(info.paged_out_bytes));
    put("policy", json!(q.policy_name()));
    put("operator_policy", json!(q.operator_policy_name()));
    put("effective_policy_definition", Value::Object(q.effective_policy_definition()));
    put("exclusive_consumer_tag", json!(info.exclusive_consumer_tag));
    put("single_active_consumer_tag", json!(info.single_active_consumer_tag));
    // Streams: where the log starts and ends, and the offsets kept for
    // named consumers (Warren's fields).
    if let Some(st) = q.stream() {
        put("stream_first_offset", json!(st.log.first()));
        put("stream_next_offset", json!(st.log.written()));
        put("stream_segments", json!(st.log.segment_count()));
        put("stream_compacted_messages", json!(st.compacted.load(std::sync::atomic::Ordering::Relaxed)));
        let offsets: Map<String, Value> =
            st.tracked_offsets().into_iter().map(|(t, o)| (t, json!(o))).collect();
        put("stream_consumer_offsets", Value::Object(offsets));
    }
    // Deduplicating queues: the window and what it dropped (Warren's fields).
    if let Some(d) = q.dedup.get() {
        put("messages_deduplicated", json!(d.hits()));
        put("deduplication_ids", json!(d.remembered()));
    }
    put("messages_details", rate(r.messages.get()));
    put("messages_ready_details", rate(r.ready.get()));
    put("messages_unacknowledged_details", rate(r.unacked.get()));
    let t = &info.totals;
    put(
        "message_stats",
        json!({
            "publish": t.published,
            "publish_details": rate(r.published.get()),
            "deliver_get": t.delivered,
            "deliver_get_details": rate(r.delivered.get()),
            "ack": t.acked,
            "ack_details": rate(r.acked.get()),
            "redeliver": t.redelivered,
            "redeliver_details": rate(r.redelivered.get()),
        }),
    );
    if shape == Shape::Detail {
        // As `/api/consumers` shows them: of a single-active-consumer
        // queue only the first (the one served) is active.
        let single = q.config.single_active_consumer;
        let consumers = q
            .consumers()
            .iter()
            .enumerate()
            .map(|(i, c)| consumer_item(s, q, c, !single || i == 0))
            .collect();
        put("consumer_details", Value::Array(consumers));
        put("deliveries", json!([]));
        put("incoming", json!([]));
    }
    Value::Object(out)
}

/// The figure at `key` (a dot-path) of the item `item(.., shape)` makes,
/// read from the same source (one `info()`, the rates) so a page cut by it
/// is in the order of the full items; None for the keys it does not read
/// cheaply (or that `shape` does not show).
pub fn sort_key(q: &Queue, shape: Shape, key: &str) -> Option<Value> {
    let r = &q.rates;
    let rate = match key {
        "messages_details.rate" => &r.messages,
        "messages_ready_details.rate" => &r.ready,
        "messages_unacknowledged_details.rate" => &r.unacked,
        "message_stats.publish_details.rate" => &r.published,
        "message_stats.deliver_get_details.rate" => &r.delivered,
        "message_stats.ack_details.rate" => &r.acked,
        "message_stats.redeliver_details.rate" => &r.redelivered,
        _ => {
            let slim = matches!(key, "messages" | "messages_ready" | "messages_unacknowledged");
            let full = matches!(
                key,
                "consumers"
                    | "message_bytes"
                    | "message_stats.publish"
                    | "message_stats.deliver_get"
                    | "message_stats.ack"
                    | "message_stats.redeliver"
            );
            if !(slim || full && shape != Shape::Slim) {
                return None;
            }
            let info = q.info();
            let t = &info.totals;
            return Some(match key {
                "messages" => json!(info.messages()),
                "messages_ready" => json!(info.ready),
                "messages_unacknowledged" => json!(info.unacked),
                "consumers" => json!(info.consumers),
                "message_bytes" => json!(info.bytes()),
                "message_stats.publish" => json!(t.published),
                "message_stats.deliver_get" => json!(t.delivered),
                "message_stats.ack" => json!(t.acked),
                _ => json!(t.redelivered),
            });
        }
    };
    (shape != Shape::Slim).then(|| json!(rate.get()))
}
