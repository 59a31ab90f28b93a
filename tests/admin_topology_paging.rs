//! Big answers of the queue API: a page sorted by a queue's figures is cut
//! from cheap stubs yet comes out exactly as a sort of the full items does,
//! and `get` stops taking messages past its 64 MiB budget. The admin API
//! runs over a broker of its own (no sampler), so rates hold still.

use std::net::SocketAddr;
use std::sync::Arc;

use amq_protocol::protocol::basic::AMQPProperties;
use axum::body::Body;
use axum::extract::connect_info::MockConnectInfo;
use axum::http::header::AUTHORIZATION;
use axum::http::Request;
use axum::Router;
use base64::Engine as _;
use bytes::Bytes;
use http_body_util::BodyExt;
use serde_json::{json, Value};
use tower::ServiceExt;
use warren::admin::{self, AdminState};
use warren::broker::{Broker, Message, Queue};
use warren::config::Config;
use warren::protocol::properties::{encode_header, ContentHeader};
use warren::server::Server;
use warren::store::memory::MemoryStore;

struct Harness {
    _server: Server,
    broker: Arc<Broker>,
    app: Router,
}

async fn start() -> Harness {
    let mut config = Config::default();
    config.metrics.listen = None;
    config.amqp.listen = "127.0.0.1:0".parse().unwrap();
    let dir =
        std::env::temp_dir().join(format!("warren-paging-{}-{}", std::process::id(), fastrand::u64(..)));
    std::fs::create_dir_all(&dir).unwrap();
    config.storage.data_dir = dir;
    let server = Server::start_with_store(config, Arc::new(MemoryStore::default())).await.unwrap();
    let broker = Arc::new(Broker::new());
    let state = AdminState::new(broker.clone(), server.access.clone()).with_node(server.node.clone());
    let app = admin::router(state).layer(MockConnectInfo(SocketAddr::from(([127, 0, 0, 1], 40000))));
    Harness { _server: server, broker, app }
}

impl Harness {
    async fn call(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        let auth = base64::engine::general_purpose::STANDARD.encode("guest:guest");
        let req = Request::builder().method(method).uri(path).header(AUTHORIZATION, format!("Basic {auth}"));
        let body = body.map_or_else(Body::empty, |b| Body::from(b.to_string()));
        let resp = self.app.clone().oneshot(req.body(body).unwrap()).await.unwrap();
        let status = resp.status().as_u16();
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        (status, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
    }
    async fn get(&self, path: &str) -> Value {
        let (status, body) = self.call("GET", path, None).await;
        assert_eq!(status, 200, "GET {path}: {body}");
        body
    }
    fn queue(&self, name: &str) -> Arc<Queue> {
        self.broker.vhost("/").unwrap().queue(name).unwrap()
    }
    /// Puts `n` messages of `size` bytes on `queue`, straight into the broker.
    fn fill(&self, queue: &str, n: usize, size: usize) {
        let v = self.broker.vhost("/").unwrap();
        let q = self.queue(queue);
        for _ in 0..n {
            let header = encode_header(size as u64, &AMQPProperties::default());
            let info = ContentHeader::scan(&header).unwrap();
            let body = Bytes::from(vec![b'x'; size]);
            let m = Message::new(Bytes::new(), Bytes::from(queue.to_owned()), header, info, body);
            v.enqueue(Arc::new(m), std::slice::from_ref(&q));
        }
    }
}

fn names(items: &Value) -> Vec<String> {
    items.as_array().unwrap().iter().map(|i| i["name"].as_str().unwrap().to_owned()).collect()
}

const CHEAP_KEYS: [&str; 17] = [
    "messages",
    "messages_ready",
    "messages_unacknowledged",
    "consumers",
    "message_bytes",
    "messages_details.rate",
    "messages_ready_details.rate",
    "messages_unacknowledged_details.rate",
    "message_stats.publish",
    "message_stats.publish_details.rate",
    "message_stats.deliver_get",
    "message_stats.deliver_get_details.rate",
    "message_stats.ack",
    "message_stats.ack_details.rate",
    "message_stats.redeliver",
    "message_stats.redeliver_details.rate",
    // Not cheap: made from full items, in the same order.
    "durable",
];

#[tokio::test]
async fn pages_sorted_by_figures_match_a_sort_of_the_full_items() {
    let h = start().await;
    // 13 queues with figures that differ and tie, in every counter and rate.
    for i in 0..13usize {
        let name = format!("sq-{i:02}");
        let (status, _) = h.call("PUT", &format!("/api/queues/%2F/{name}"), Some(json!({}))).await;
        assert_eq!(status, 201);
        let q = h.queue(&name);
        h.fill(&name, i % 4, 10 + i % 3);
        q.sample_rates(1.0);
        h.fill(&name, (i * 7) % 5, 100);
        let got: Vec<u64> = (0..i % 3).filter_map(|_| q.get(false)).map(|(e, _)| e.seq).collect();
        if let Some((&first, rest)) = got.split_first() {
            q.ack(&[first]);
            q.requeue(rest);
        }
        if i % 5 == 1 {
            q.get(false);
        }
        q.sample_rates(1.0 + i as f64 / 10.0);
    }
    let sorted = h.get("/api/queues?sort=messages&sort_reverse=true").await;
    let depths: Vec<u64> =
        sorted.as_array().unwrap().iter().map(|q| q["messages"].as_u64().unwrap()).collect();
    assert!(depths.windows(2).all(|w| w[0] >= w[1]) && depths[0] > depths[12], "{depths:?}");

    for key in CHEAP_KEYS {
        for reverse in [false, true] {
            let order = format!("sort={key}&sort_reverse={reverse}");
            let whole = h.get(&format!("/api/queues?{order}")).await;
            let whole = whole.as_array().unwrap();
            let distinct: std::collections::HashSet<String> =
                whole.iter().map(|q| key.split('.').fold(q, |v, k| &v[k]).to_string()).collect();
            if !matches!(key, "consumers" | "durable") {
                assert!(distinct.len() > 1, "{key} should tell the queues apart");
            }
            for page in 1..=3 {
                let got = h.get(&format!("/api/queues?{order}&page={page}&page_size=5")).await;
                let want: Vec<Value> = whole.iter().skip((page - 1) * 5).take(5).cloned().collect();
                let want = Value::Array(want);
                assert_eq!(names(&got["items"]), names(&want), "{order} page {page}");
                assert_eq!(got["items"], want, "{order} page {page}");
                assert_eq!((&got["total_count"], &got["page_count"]), (&json!(13), &json!(3)));
            }
            // A name filter and columns on the same page.
            let filtered =
                h.get(&format!("/api/queues/%2F?{order}&page=1&name=sq-1&columns=name,{key}")).await;
            let want: Vec<&Value> =
                whole.iter().filter(|q| q["name"].as_str().unwrap().contains("sq-1")).collect();
            assert_eq!(names(&filtered["items"]), names(&json!(want)), "{order} filtered");
            assert_eq!(filtered["filtered_count"], 3);
            let first = &filtered["items"][0];
            assert_eq!(first.as_object().unwrap().len(), 2, "{first}");
        }
    }
    // Without stats the items hold only the depths: a sort by anything else
    // keeps the list's order, cheap or not.
    for key in ["consumers", "messages_details.rate", "messages_ready"] {
        let order = format!("disable_stats=true&sort={key}&sort_reverse=true");
        let whole = h.get(&format!("/api/queues?{order}")).await;
        let page = h.get(&format!("/api/queues?{order}&page=1&page_size=13")).await;
        assert_eq!(page["items"], whole, "{order}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_stops_taking_past_its_budget_and_leaves_the_rest() {
    let h = start().await;
    assert_eq!(h.call("PUT", "/api/queues/%2F/big", Some(json!({}))).await.0, 201);
    // 33 MiB each: after two the answer holds 66 MiB, past the 64 MiB budget.
    h.fill("big", 3, 33 << 20);
    let ask = json!({"count": 1_000_000_000, "ackmode": "ack_requeue_false", "encoding": "auto"});
    let (status, got) = h.call("POST", "/api/queues/%2F/big/get", Some(ask)).await;
    assert_eq!(status, 200);
    let got = got.as_array().unwrap();
    assert_eq!(got.len(), 2);
    assert_eq!((&got[0]["payload_bytes"], &got[1]["message_count"]), (&json!(33 << 20), &json!(1)));
    let q = h.get("/api/queues/%2F/big").await;
    assert_eq!((&q["messages_ready"], &q["messages_unacknowledged"]), (&json!(1), &json!(0)));
    assert_eq!(q["message_stats"]["redeliver"], 0, "the one left was never taken");

    // With `truncate` the payloads shown are small: the budget goes further.
    h.fill("big", 2, 33 << 20);
    let ask = json!({"count": 5, "ackmode": "ack_requeue_true", "encoding": "auto", "truncate": 10});
    let (_, got) = h.call("POST", "/api/queues/%2F/big/get", Some(ask)).await;
    assert_eq!(got.as_array().unwrap().len(), 3);
    assert_eq!(got[2]["payload"], "xxxxxxxxxx");
    assert_eq!(h.get("/api/queues/%2F/big").await["messages"], 3);
}
