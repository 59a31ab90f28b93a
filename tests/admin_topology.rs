//! Queues, exchanges and bindings through the admin API: `admin::router()`
//! driven in process with `oneshot` for status codes, shapes and texts
//! (RabbitMQ 3.10.8's, checked on a live one), and once over HTTP with
//! rabbitmq_http_client (what rabbitmqadmin v2 is built on), whose types
//! must parse every answer.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::connect_info::MockConnectInfo;
use axum::http::header::{AUTHORIZATION, CONTENT_TYPE, LOCATION};
use axum::http::{HeaderMap, Request};
use axum::Router;
use base64::Engine as _;
use http_body_util::BodyExt;
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tower::ServiceExt;
use warren::admin::{self, AdminState};
use warren::config::Config;
use warren::server::Server;
use warren::store::memory::MemoryStore;

struct Harness {
    server: Server,
    app: Router,
}

struct Answer {
    status: u16,
    headers: HeaderMap,
    body: Value,
}

impl Answer {
    #[track_caller]
    fn refused(&self, status: u16, error: &str, reason: &str) {
        assert_eq!((self.status, &self.body), (status, &json!({"error": error, "reason": reason})));
    }
}

fn state(server: &Server) -> AdminState {
    AdminState::new(server.broker.clone(), server.access.clone()).with_node(server.node.clone())
}

async fn start() -> Harness {
    let mut config = Config::default();
    config.metrics.listen = None;
    config.amqp.listen = "127.0.0.1:0".parse().unwrap();
    let dir = std::env::temp_dir().join(format!("warren-topo-{}-{}", std::process::id(), fastrand::u64(..)));
    std::fs::create_dir_all(&dir).unwrap();
    config.storage.data_dir = dir;
    let server = Server::start_with_store(config, Arc::new(MemoryStore::default())).await.unwrap();
    let app = admin::router(state(&server)).layer(MockConnectInfo(SocketAddr::from(([127, 0, 0, 1], 40000))));
    Harness { server, app }
}

impl Harness {
    async fn call_as(&self, user: (&str, &str), method: &str, path: &str, body: Option<&str>) -> Answer {
        let auth = base64::engine::general_purpose::STANDARD.encode(format!("{}:{}", user.0, user.1));
        let req = Request::builder().method(method).uri(path).header(AUTHORIZATION, format!("Basic {auth}"));
        let body = body.map_or_else(Body::empty, |b| Body::from(b.to_owned()));
        let resp = self.app.clone().oneshot(req.body(body).unwrap()).await.unwrap();
        let (status, headers) = (resp.status().as_u16(), resp.headers().clone());
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        if !bytes.is_empty() {
            assert_eq!(headers[CONTENT_TYPE], "application/json", "{method} {path}");
        }
        Answer { status, headers, body: serde_json::from_slice(&bytes).unwrap_or(Value::Null) }
    }
    async fn call(&self, method: &str, path: &str, body: Option<&str>) -> Answer {
        self.call_as(("guest", "guest"), method, path, body).await
    }
    async fn get(&self, path: &str) -> Answer {
        self.call("GET", path, None).await
    }
    async fn put(&self, path: &str, body: Value) -> Answer {
        self.call("PUT", path, Some(&body.to_string())).await
    }
    async fn post(&self, path: &str, body: Value) -> Answer {
        self.call("POST", path, Some(&body.to_string())).await
    }
    async fn delete(&self, path: &str) -> Answer {
        self.call("DELETE", path, None).await
    }
    async fn publish(&self, exchange: &str, key: &str, payload: &str) -> Value {
        let body =
            json!({"properties": {}, "routing_key": key, "payload": payload, "payload_encoding": "string"});
        let a = self.post(&format!("/api/exchanges/%2F/{exchange}/publish"), body).await;
        assert_eq!(a.status, 200, "{:?}", a.body);
        a.body
    }
    async fn fetch(&self, queue: &str, count: u32, ackmode: &str) -> Vec<Value> {
        let body = json!({"count": count.to_string(), "ackmode": ackmode, "encoding": "auto"});
        let a = self.post(&format!("/api/queues/%2F/{queue}/get"), body).await;
        assert_eq!(a.status, 200, "{:?}", a.body);
        a.body.as_array().unwrap().clone()
    }
}

fn names(v: &Value) -> Vec<&str> {
    v.as_array().unwrap().iter().map(|i| i["name"].as_str().unwrap()).collect()
}

#[tokio::test]
async fn queues_are_declared_listed_and_deleted() {
    let h = start().await;
    // v1's body: flags as strings, extra keys.
    let v1 = json!({"auto_delete": "false", "durable": "true", "arguments": {"x-message-ttl": 1000},
        "name": "tq-a", "vhost": "/"});
    assert_eq!(h.put("/api/queues/%2F/tq-a", v1.clone()).await.status, 201);
    assert_eq!(h.put("/api/queues/%2F/tq-a", v1).await.status, 204);
    h.put("/api/queues/%2F/tq-a", json!({"durable": false})).await.refused(
        400,
        "bad_request",
        "inequivalent arg 'durable' for queue 'tq-a' in vhost '/': received 'false' but current is 'true'",
    );
    h.put("/api/queues/nope/tq-a", json!({})).await.refused(404, "not_found", "vhost_not_found");
    h.put("/api/queues/%2F/amq.q", json!({})).await.refused(401, "not_authorised", "Access refused.");
    assert_eq!(h.call("PUT", "/api/queues/%2F/tq-b", Some("{bad")).await.status, 400);
    assert_eq!(h.put("/api/queues/%2F/tq-b", json!({"durable": 3})).await.status, 400);
    assert_eq!(h.put("/api/queues/%2F/tq-b", json!({"arguments": [1]})).await.status, 400);
    assert_eq!(h.get("/api/queues/%2F/tq-b").await.status, 404, "nothing half-made");
    assert_eq!(h.put("/api/queues/%2F/tq-b", json!({})).await.status, 201);

    let one = h.get("/api/queues/%2F/tq-a").await;
    assert_eq!(one.status, 200);
    let q = &one.body;
    assert_eq!(
        (q["name"].as_str(), q["vhost"].as_str(), q["type"].as_str()),
        (Some("tq-a"), Some("/"), Some("classic"))
    );
    assert_eq!((q["durable"].as_bool(), q["auto_delete"].as_bool()), (Some(true), Some(false)));
    assert_eq!(q["arguments"], json!({"x-message-ttl": 1000}));
    assert_eq!(q["state"], "running");
    assert_eq!(q["consumer_details"], json!([]));
    for key in ["messages", "messages_ready", "message_bytes", "messages_paged_out", "consumers"] {
        assert_eq!(q[key], 0, "{key}");
    }
    assert_eq!(q["messages_details"], json!({"rate": 0.0}));
    assert_eq!(q["message_stats"]["publish"], 0);

    for path in ["/api/queues", "/api/queues/", "/api/queues/%2F", "/api/queues/%2f"] {
        assert_eq!(names(&h.get(path).await.body), ["tq-a", "tq-b"], "{path}");
    }
    h.get("/api/queues/nope").await.refused(404, "Object Not Found", "Not Found");
    h.get("/api/queues/%2F/nope").await.refused(404, "Object Not Found", "Not Found");
    let cols = h.get("/api/queues?columns=name,messages").await.body;
    assert_eq!(cols, json!([{"name": "tq-a", "messages": 0}, {"name": "tq-b", "messages": 0}]));
    let slim = h.get("/api/queues?disable_stats=true&enable_queue_totals=true").await.body;
    let mut keys: Vec<&String> = slim[0].as_object().unwrap().keys().collect();
    keys.sort();
    assert_eq!(
        keys,
        [
            "arguments",
            "auto_delete",
            "durable",
            "exclusive",
            "messages",
            "messages_ready",
            "messages_unacknowledged",
            "name",
            "node",
            "state",
            "type",
            "vhost"
        ]
    );

    h.publish("amq.default", "tq-a", "x").await;
    h.delete("/api/queues/%2F/tq-a?if-empty=true").await.refused(
        400,
        "bad_request",
        "queue 'tq-a' in vhost '/' not empty",
    );
    assert_eq!(h.delete("/api/queues/%2F/tq-a/contents").await.status, 204);
    assert_eq!(h.get("/api/queues/%2F/tq-a").await.body["messages"], 0);
    assert_eq!(h.delete("/api/queues/%2F/tq-a?if-empty=true&if-unused=true").await.status, 204);
    h.delete("/api/queues/%2F/tq-a").await.refused(404, "Object Not Found", "Not Found");
    h.delete("/api/queues/%2F/tq-a/contents").await.refused(404, "Object Not Found", "Not Found");
}

#[tokio::test]
async fn queue_lists_paginate_without_making_every_item() {
    let h = start().await;
    for i in 0..25 {
        assert_eq!(h.put(&format!("/api/queues/%2F/pq-{i:02}"), json!({})).await.status, 201);
    }
    let page = h.get("/api/queues/%2F?page=2&page_size=10&columns=name").await.body;
    assert_eq!(
        (&page["filtered_count"], &page["item_count"], &page["page_count"], &page["total_count"]),
        (&json!(25), &json!(10), &json!(3), &json!(25))
    );
    assert_eq!(page["items"][0], json!({"name": "pq-10"}));
    let filtered = h.get("/api/queues?page=1&name=pq-2&sort=name&sort_reverse=true").await.body;
    assert_eq!(names(&filtered["items"]), ["pq-24", "pq-23", "pq-22", "pq-21", "pq-20"]);
    assert_eq!(filtered["items"][0]["messages"], 0, "full items on a cheap page");
    let by_depth = h.get("/api/queues?page=1&page_size=2&sort=messages").await.body;
    assert_eq!(by_depth["item_count"], 2);
    h.get("/api/queues?page=9&page_size=10").await.refused(
        400,
        "page_out_of_range",
        "Page out of range, page: 9 page size: 10, len: 25",
    );
}

#[tokio::test]
async fn get_honours_each_ackmode() {
    let h = start().await;
    assert_eq!(h.put("/api/queues/%2F/gq", json!({})).await.status, 201);
    let props = json!({"delivery_mode": 2, "headers": {"h": 1}, "content_type": "text/plain",
        "priority": "3", "timestamp": 1234, "message_id": "m1"});
    let body =
        json!({"properties": props, "routing_key": "gq", "payload": "hello", "payload_encoding": "string"});
    assert_eq!(h.post("/api/exchanges/%2F/amq.default/publish", body).await.body, json!({"routed": true}));

    let got = h.fetch("gq", 2, "ack_requeue_true").await;
    assert_eq!(got.len(), 1);
    assert_eq!(
        got[0],
        json!({"payload_bytes": 5, "redelivered": false, "exchange": "", "routing_key": "gq", "message_count": 0,
            "properties": {"delivery_mode": 2, "headers": {"h": 1}, "content_type": "text/plain", "priority": 3,
                "timestamp": 1234, "message_id": "m1"},
            "payload": "hello", "payload_encoding": "string"})
    );
    let again = h.fetch("gq", 1, "reject_requeue_true").await;
    assert_eq!(again[0]["redelivered"], true);
    let b64 = h
        .post(
            "/api/queues/%2F/gq/get",
            json!({"count": 1, "ackmode": "ack_requeue_true", "encoding": "base64", "truncate": 2}),
        )
        .await;
    assert_eq!(
        (&b64.body[0]["payload"], &b64.body[0]["payload_encoding"]),
        (&json!("aGU="), &json!("base64"))
    );
    assert_eq!(b64.body[0]["payload_bytes"], 5);
    assert_eq!(h.fetch("gq", 1, "ack_requeue_false").await.len(), 1);
    assert!(h.fetch("gq", 1, "ack_requeue_false").await.is_empty());

    // Binary payloads come back as base64 under auto; reject without requeue drops.
    let bin = json!({"properties": {}, "routing_key": "gq", "payload": "//79", "payload_encoding": "base64"});
    assert_eq!(h.post("/api/exchanges/%2F/amq.default/publish", bin).await.body["routed"], true);
    let raw = h.fetch("gq", 1, "reject_requeue_false").await;
    assert_eq!((&raw[0]["payload"], &raw[0]["payload_encoding"]), (&json!("//79"), &json!("base64")));
    assert_eq!(raw[0]["properties"], json!([]));
    assert!(h.fetch("gq", 1, "ack_requeue_true").await.is_empty());

    h.post("/api/queues/%2F/gq/get", json!({"count": 1})).await.refused(
        400,
        "bad_request",
        "[{key_missing,ackmode},{key_missing,encoding}]",
    );
    let enc = h
        .post("/api/queues/%2F/gq/get", json!({"count": 1, "ackmode": "ack_requeue_true", "encoding": "x"}))
        .await;
    enc.refused(400, "bad_request", "Unsupported encoding. Please use auto or base64.");
    let mode =
        h.post("/api/queues/%2F/gq/get", json!({"count": 1, "ackmode": "x", "encoding": "auto"})).await;
    assert_eq!(mode.status, 400);
    let missing = h
        .post(
            "/api/queues/%2F/nope/get",
            json!({"count": 1, "ackmode": "ack_requeue_true", "encoding": "auto"}),
        )
        .await;
    assert_eq!(missing.status, 404);
}

#[tokio::test]
async fn exchanges_are_declared_published_to_and_deleted() {
    let h = start().await;
    let all = h.get("/api/exchanges/%2F").await.body;
    assert_eq!(names(&all), ["", "amq.direct", "amq.fanout", "amq.headers", "amq.match", "amq.topic"]);
    let default = h.get("/api/exchanges/%2F/amq.default").await.body;
    assert_eq!((&default["name"], &default["type"]), (&json!(""), &json!("direct")));

    let v1 = json!({"auto_delete": "false", "durable": "true", "internal": "false", "arguments": {},
        "name": "tx", "type": "fanout", "vhost": "/"});
    assert_eq!(h.put("/api/exchanges/%2F/tx", v1.clone()).await.status, 201);
    assert_eq!(h.put("/api/exchanges/%2F/tx", v1).await.status, 204);
    let x = h.get("/api/exchanges/%2F/tx").await.body;
    assert_eq!(
        (&x["type"], &x["durable"], &x["internal"], &x["vhost"]),
        (&json!("fanout"), &json!(true), &json!(false), &json!("/"))
    );
    h.put("/api/exchanges/%2F/tx", json!({"type": "topic", "durable": true})).await.refused(
        400,
        "bad_request",
        "inequivalent arg 'type' for exchange 'tx' in vhost '/': received 'topic' but current is 'fanout'",
    );
    h.put("/api/exchanges/%2F/tx2", json!({"type": "bogus"})).await.refused(
        400,
        "bad_request",
        "unknown exchange type 'bogus'",
    );
    for name in ["amq.foo", "amq.default"] {
        let a = h.put(&format!("/api/exchanges/%2F/{name}"), json!({"type": "direct"})).await;
        a.refused(401, "not_authorised", "Access refused.");
    }
    assert_eq!(
        h.put("/api/exchanges/%2F/amq.direct", json!({"type": "direct", "durable": true})).await.status,
        204
    );
    h.delete("/api/exchanges/%2F/amq.direct").await.refused(401, "not_authorised", "Access refused.");
    h.put("/api/exchanges/nope/tx", json!({})).await.refused(404, "not_found", "vhost_not_found");

    // Publish → routed, then the message is in the bound queue.
    assert_eq!(h.publish("tx", "k", "lost").await, json!({"routed": false}));
    assert_eq!(h.put("/api/queues/%2F/xq", json!({})).await.status, 201);
    assert_eq!(h.post("/api/bindings/%2F/e/tx/q/xq", json!({"routing_key": "k"})).await.status, 201);
    assert_eq!(h.publish("tx", "k", "found").await, json!({"routed": true}));
    assert_eq!(h.fetch("xq", 1, "ack_requeue_false").await[0]["payload"], "found");
    let bad = json!({"properties": {"delivery_mode": "x"}, "routing_key": "k", "payload": "p", "payload_encoding": "string"});
    assert_eq!(h.post("/api/exchanges/%2F/tx/publish", bad).await.status, 400);
    let enc = json!({"properties": {}, "routing_key": "k", "payload": "p", "payload_encoding": "rot13"});
    assert_eq!(h.post("/api/exchanges/%2F/tx/publish", enc).await.status, 400);
    assert_eq!(h.post("/api/exchanges/%2F/tx/publish", json!({})).await.status, 400);
    let spoof = json!({"properties": {"user_id": "bob"}, "routing_key": "k", "payload": "p", "payload_encoding": "string"});
    assert_eq!(h.post("/api/exchanges/%2F/tx/publish", spoof).await.status, 400);
    let nowhere = json!({"properties": {}, "routing_key": "k", "payload": "p", "payload_encoding": "string"});
    assert_eq!(h.post("/api/exchanges/%2F/nope/publish", nowhere).await.status, 404);

    let source = h.get("/api/exchanges/%2F/tx/bindings/source").await.body;
    assert_eq!(source.as_array().unwrap().len(), 1);
    assert_eq!(h.get("/api/exchanges/%2F/tx/bindings/destination").await.body, json!([]));
    h.delete("/api/exchanges/%2F/tx?if-unused=true").await.refused(
        400,
        "bad_request",
        "exchange 'tx' in vhost '/' in use",
    );
    assert_eq!(h.delete("/api/exchanges/%2F/tx").await.status, 204);
    h.delete("/api/exchanges/%2F/tx").await.refused(404, "Object Not Found", "Not Found");
    let page = h.get("/api/exchanges?page=1&page_size=2").await.body;
    assert_eq!((&page["item_count"], &page["total_count"]), (&json!(2), &json!(6)));
}

#[tokio::test]
async fn names_longer_than_255_bytes_are_refused() {
    let h = start().await;
    // RabbitMQ 3.10.8's text, newline and all; it counts bytes ("é" is two).
    let long = "é".repeat(128);
    for (kind, what) in [("queues", "queue"), ("exchanges", "exchange")] {
        let a = h.put(&format!("/api/{kind}/%2F/{long}"), json!({})).await;
        a.refused(400, "bad_request", &format!("{what} should be less than 255 bytes, actually was 256\n"));
        assert_eq!(h.get(&format!("/api/{kind}/%2F/{long}")).await.status, 404, "nothing made");
        let a = h.put(&format!("/api/{kind}/nope/{}", "a".repeat(300)), json!({})).await;
        a.refused(400, "bad_request", &format!("{what} should be less than 255 bytes, actually was 300\n"));
        assert_eq!(h.put(&format!("/api/{kind}/%2F/{}", "a".repeat(255)), json!({})).await.status, 201);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queue_detail_shows_consumers_as_api_consumers_does() {
    use lapin::options::BasicConsumeOptions;
    use lapin::types::FieldTable;
    let h = start().await;
    let sac = json!({"arguments": {"x-single-active-consumer": true}});
    assert_eq!(h.put("/api/queues/%2F/sac", sac).await.status, 201);
    let url = format!("amqp://guest:guest@{}/%2f", h.server.local_addr);
    let conn = lapin::Connection::connect(&url, lapin::ConnectionProperties::default()).await.unwrap();
    let ch = conn.create_channel().await.unwrap();
    let mut keep = Vec::new();
    for tag in ["first", "second"] {
        let opts = BasicConsumeOptions::default();
        keep.push(ch.basic_consume("sac".into(), tag.into(), opts, FieldTable::default()).await.unwrap());
    }
    let detail = h.get("/api/queues/%2F/sac").await.body;
    let shown: Vec<(&str, bool, &str)> = detail["consumer_details"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (c["consumer_tag"].as_str().unwrap(), c["active"] == true, c["activity_status"].as_str().unwrap())
        })
        .collect();
    assert_eq!(shown, [("first", true, "up"), ("second", false, "waiting")]);
    assert_eq!(detail["single_active_consumer_tag"], "first");
    let listed = h.get("/api/consumers/%2F").await.body;
    assert_eq!(detail["consumer_details"], listed, "both views agree, consumer_timeout too");
    drop(keep);
    conn.close(0, "done".into()).await.unwrap();
}

#[tokio::test]
async fn bindings_round_trip_by_properties_key() {
    let h = start().await;
    assert_eq!(h.put("/api/queues/%2F/bq", json!({})).await.status, 201);
    assert_eq!(h.put("/api/exchanges/%2F/bx", json!({"type": "topic"})).await.status, 201);
    assert_eq!(h.put("/api/exchanges/%2F/bx2", json!({"type": "fanout"})).await.status, 201);

    let made = h.post("/api/bindings/%2F/e/bx/q/bq", json!({"routing_key": "a.#", "arguments": {}})).await;
    assert_eq!(made.status, 201);
    assert_eq!(made.headers[LOCATION], "bq/a.%2523");
    let with_args =
        h.post("/api/bindings/%2F/e/bx/q/bq", json!({"routing_key": "", "arguments": {"x": 1}})).await;
    assert_eq!(with_args.status, 201);
    let location = with_args.headers[LOCATION].to_str().unwrap().to_owned();
    assert!(location.starts_with("bq/~"), "{location}");
    assert_eq!(
        h.post("/api/bindings/%2F/e/bx/e/bx2", json!({"routing_key": ""})).await.headers[LOCATION],
        "bx2/~"
    );

    let queue = h.get("/api/queues/%2F/bq/bindings").await.body;
    let rows: Vec<(&str, &str, &str)> = queue
        .as_array()
        .unwrap()
        .iter()
        .map(|b| {
            (
                b["source"].as_str().unwrap(),
                b["routing_key"].as_str().unwrap(),
                b["properties_key"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(rows[0], ("", "bq", "bq"), "the default exchange's binding first");
    assert_eq!(rows[2], ("bx", "a.#", "a.%23"));
    assert_eq!(queue[0]["destination_type"], "queue");
    let between = h.get("/api/bindings/%2F/e/bx/q/bq").await.body;
    assert_eq!(between.as_array().unwrap().len(), 2);
    let all = h.get("/api/bindings/%2F").await.body;
    assert_eq!(all.as_array().unwrap().len(), 4);
    assert_eq!(h.get("/api/bindings").await.body, all);
    let e2e = h.get("/api/exchanges/%2F/bx2/bindings/destination").await.body;
    assert_eq!(e2e[0]["destination_type"], "exchange");
    let default = h.get("/api/bindings/%2F/e/amq.default/q/bq").await.body;
    assert_eq!(default[0]["routing_key"], "bq");

    // The Location names the binding (decoded once, as a client follows it).
    let one = h.get("/api/bindings/%2F/e/bx/q/bq/a.%2523").await;
    assert_eq!((one.status, &one.body["routing_key"]), (200, &json!("a.#")));
    let args_path = format!("/api/bindings/%2F/e/bx/q/{location}");
    assert_eq!(h.get(&args_path).await.body["arguments"], json!({"x": 1}));
    assert_eq!(h.delete(&args_path).await.status, 204);
    h.get(&args_path).await.refused(404, "Object Not Found", "Not Found");
    assert_eq!(h.delete("/api/bindings/%2F/e/bx/q/bq/a.%2523").await.status, 204);
    assert_eq!(h.get("/api/bindings/%2F/e/bx/q/bq").await.body, json!([]));

    assert_eq!(h.post("/api/bindings/%2F/e/bx/q/nope", json!({})).await.status, 404);
    assert_eq!(h.post("/api/bindings/%2F/e/nope/q/bq", json!({})).await.status, 404);
    assert_eq!(h.post("/api/bindings/%2F/e/bx/z/bq", json!({})).await.status, 404);
    let headers_bad = h.put("/api/exchanges/%2F/hx", json!({"type": "headers"})).await;
    assert_eq!(headers_bad.status, 201);
    let a = h.post("/api/bindings/%2F/e/hx/q/bq", json!({"arguments": {"x-match": "some"}})).await;
    assert_eq!(a.status, 400, "{:?}", a.body);
}

#[tokio::test]
async fn permissions_decide_who_may_touch_what() {
    let h = start().await;
    assert_eq!(h.put("/api/users/tm", json!({"password": "pw", "tags": "management"})).await.status, 201);
    let perms = json!({"configure": "^tm-", "write": "^tm-", "read": "^tm-"});
    assert_eq!(h.put("/api/permissions/%2F/tm", perms).await.status, 201);
    assert_eq!(h.put("/api/vhosts/other", json!({})).await.status, 201);
    assert_eq!(h.put("/api/queues/other/hidden", json!({})).await.status, 201);
    assert_eq!(h.put("/api/queues/%2F/guarded", json!({})).await.status, 201);
    let me = ("tm", "pw");

    assert_eq!(h.call_as(me, "PUT", "/api/queues/%2F/tm-q", Some("{}")).await.status, 201);
    let no = h.call_as(me, "PUT", "/api/queues/%2F/other-q", Some("{}")).await;
    no.refused(401, "not_authorised", "Access refused.");
    let listed = h.call_as(me, "GET", "/api/queues", None).await;
    assert_eq!(names(&listed.body), ["guarded", "tm-q"], "only vhosts with permissions");
    let hidden = h.call_as(me, "GET", "/api/queues/other", None).await;
    hidden.refused(401, "not_authorised", "User not authorised to access virtual host");
    let purge = h.call_as(me, "DELETE", "/api/queues/%2F/guarded/contents", None).await;
    purge.refused(401, "not_authorised", "Access refused.");
    let del = h.call_as(me, "DELETE", "/api/queues/%2F/guarded", None).await;
    del.refused(401, "not_authorised", "Access refused.");
    let get = json!({"count": 1, "ackmode": "ack_requeue_true", "encoding": "auto"}).to_string();
    let fetch = h.call_as(me, "POST", "/api/queues/%2F/guarded/get", Some(&get)).await;
    fetch.refused(401, "not_authorised", "Access refused.");
    let pubbody =
        json!({"properties": {}, "routing_key": "tm-q", "payload": "p", "payload_encoding": "string"});
    let publish =
        h.call_as(me, "POST", "/api/exchanges/%2F/amq.default/publish", Some(&pubbody.to_string())).await;
    publish.refused(401, "not_authorised", "Access refused.");
    let bind = h.call_as(me, "POST", "/api/bindings/%2F/e/amq.direct/q/tm-q", Some("{}")).await;
    bind.refused(401, "not_authorised", "Access refused.");
    assert_eq!(h.call_as(me, "DELETE", "/api/queues/%2F/tm-q", None).await.status, 204);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rabbitmq_http_client_parses_every_answer() {
    let h = start().await;
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (_stop, stopped) = watch::channel(false);
    tokio::spawn(admin::serve_admin(listener, state(&h.server), stopped));
    tokio::task::spawn_blocking(move || oracle(addr)).await.unwrap();
}

fn oracle(addr: SocketAddr) {
    use rabbitmq_http_client::blocking_api::Client;
    use rabbitmq_http_client::commons::PaginationParams;
    use rabbitmq_http_client::requests::ExchangeParams;

    let c = Client::new(format!("http://{addr}/api"), "guest", "guest");
    c.declare_classic_queue("/", "oq").unwrap();
    c.declare_exchange("/", &ExchangeParams::durable_fanout("ox", None)).unwrap();
    c.bind_queue("/", "oq", "ox", Some("k"), None).unwrap();
    let routed = c.publish_message("/", "ox", "k", "hi", serde_json::Map::new()).unwrap();
    assert!(routed.routed);
    let q = c.get_queue_info("/", "oq").unwrap();
    assert_eq!((q.name.as_str(), q.durable), ("oq", true));
    assert_eq!(c.list_queues().unwrap().len(), 1);
    assert_eq!(c.list_queues_in("/").unwrap().len(), 1);
    assert_eq!(c.list_queues_paged(&PaginationParams::new(1, 10)).unwrap().len(), 1);
    let got = c.get_messages("/", "oq", 1, "ack_requeue_true").unwrap();
    assert_eq!(got[0].payload, "hi");
    let x = c.get_exchange_info("/", "ox").unwrap();
    assert_eq!(x.exchange_type, "fanout");
    assert_eq!(c.list_exchanges().unwrap().len(), 7);
    assert_eq!(c.list_bindings().unwrap().len(), 2);
    assert_eq!(c.list_bindings_in("/").unwrap().len(), 2);
    assert_eq!(c.list_queue_bindings("/", "oq").unwrap().len(), 2);
    assert_eq!(c.list_exchange_bindings_with_source("/", "ox").unwrap().len(), 1);
    c.purge_queue("/", "oq").unwrap();
    c.delete_queue("/", "oq", false).unwrap();
    c.delete_exchange("/", "ox", false).unwrap();
    c.delete_queue("/", "oq", true).unwrap();
}
