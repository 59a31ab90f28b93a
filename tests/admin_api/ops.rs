//! The operator's endpoints against live AMQP clients: overview, nodes,
//! connections (and closing them), channels, consumers, health checks and
//! the aliveness test; rabbitmq_http_client parses each answer.

use std::time::Duration;

use lapin::options::{
    BasicConsumeOptions, BasicPublishOptions, BasicQosOptions, ConfirmSelectOptions, QueueDeclareOptions,
};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Connection, ConnectionProperties};
use rabbitmq_http_client::blocking_api::Client;
use serde_json::{json, Value};
use warren::admin::node_name;

use super::{call, start, Harness};

async fn client(h: &Harness, name: &str) -> Connection {
    let url = format!("amqp://guest:guest@{}/%2f", h.server.local_addr);
    let props = ConnectionProperties::default().with_connection_name(name.into());
    Connection::connect(&url, props).await.expect("connect")
}

/// Waits until `f` holds of the answer to GET `path` (connections register
/// and counters settle asynchronously).
async fn eventually(h: &Harness, path: &str, f: impl Fn(&Value) -> bool) -> Value {
    for _ in 0..100 {
        let a = h.get(path).await;
        if a.status == 200 && f(&a.body) {
            return a.body;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("GET {path} never satisfied the condition: {}", h.get(path).await.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overview_nodes_connections_channels_and_consumers_show_live_state() {
    let h = start().await;
    let conn = client(&h, "ops-conn").await;
    let ch = conn.create_channel().await.unwrap();
    ch.confirm_select(ConfirmSelectOptions::default()).await.unwrap();
    ch.queue_declare("ops-q".into(), QueueDeclareOptions::default(), FieldTable::default()).await.unwrap();
    for _ in 0..3 {
        ch.basic_publish(
            "".into(),
            "ops-q".into(),
            BasicPublishOptions::default(),
            b"m",
            BasicProperties::default(),
        )
        .await
        .unwrap()
        .await
        .unwrap();
    }
    let ch2 = conn.create_channel().await.unwrap();
    ch2.basic_qos(7, BasicQosOptions::default()).await.unwrap();
    let _consumer = ch2
        .basic_consume(
            "ops-q".into(),
            "ops-tag".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();

    // Overview: counts from live state, the broker's own totals.
    let o = eventually(&h, "/api/overview", |o| o["object_totals"]["consumers"] == 1).await;
    assert_eq!(o["node"], node_name());
    assert!(node_name().starts_with("rabbit@"), "tools address the node as rabbit@<host>");
    assert_eq!(o["object_totals"]["connections"], 1);
    assert_eq!(o["object_totals"]["channels"], 2);
    assert!(o["object_totals"]["queues"].as_u64().unwrap() >= 1);
    assert_eq!(o["message_stats"]["publish"], 3);
    assert_eq!(o["message_stats"]["confirm"], 3);
    assert_eq!(o["churn_rates"]["connection_created"], 1);
    assert_eq!(o["churn_rates"]["channel_created"], 2);
    assert!(o["churn_rates"]["queue_created_details"]["rate"].is_number());
    assert!(o["listeners"]
        .as_array()
        .unwrap()
        .iter()
        .any(|l| l["protocol"] == "amqp" && l["port"] == h.server.local_addr.port()));
    let picked = h.get("/api/overview?columns=rabbitmq_version,object_totals.queues").await.body;
    assert_eq!(picked.as_object().unwrap().len(), 2, "{picked}");

    // Connections: the client's name, its channels, what it sent.
    let conns = h.get("/api/connections").await.body;
    let c = &conns[0];
    assert_eq!((c["user"].as_str(), c["user_provided_name"].as_str()), (Some("guest"), Some("ops-conn")));
    assert_eq!(
        (c["channels"].as_u64(), c["ssl"].as_bool(), c["state"].as_str()),
        (Some(2), Some(false), Some("running"))
    );
    assert!(c["recv_oct"].as_u64().unwrap() > 0 && c["send_oct"].as_u64().unwrap() > 0);
    assert_eq!(c["client_properties"]["connection_name"], "ops-conn");
    let name = c["name"].as_str().unwrap().to_owned();
    let path = format!("/api/connections/{}", urlencode(&name));
    assert_eq!(h.get(&path).await.body["name"], name.as_str());
    assert_eq!(h.get("/api/connections/nope").await.status, 404);

    // Channels: each connection describes its own.
    let chans = h.get("/api/channels").await.body;
    let chans = chans.as_array().unwrap();
    assert_eq!(chans.len(), 2);
    assert_eq!((chans[0]["confirm"].as_bool(), chans[0]["number"].as_u64()), (Some(true), Some(1)));
    assert_eq!(chans[1]["prefetch_count"], 7);
    assert_eq!(chans[1]["consumer_count"], 1);
    assert_eq!(chans[1]["name"], format!("{name} (2)"));
    assert_eq!(chans[1]["connection_details"]["name"], name.as_str());
    let on = h.get(&format!("{path}/channels")).await.body;
    assert_eq!(on.as_array().unwrap().len(), 2);
    let one = h.get(&format!("/api/channels/{}", urlencode(&format!("{name} (2)")))).await;
    assert_eq!((one.status, &one.body["number"]), (200, &json!(2)));

    // Consumers: read from the queues.
    let cons = h.get("/api/consumers/%2F").await.body;
    let k = &cons[0];
    assert_eq!((k["consumer_tag"].as_str(), k["prefetch_count"].as_u64()), (Some("ops-tag"), Some(7)));
    assert_eq!(k["queue"], json!({"name": "ops-q", "vhost": "/"}));
    assert_eq!((k["ack_required"].as_bool(), k["active"].as_bool()), (Some(true), Some(true)));
    assert_eq!(k["channel_details"]["connection_name"], name.as_str());

    // Nodes: non-zero "used" figures (Nagios reads a zero as a failure).
    let node = h.get(&format!("/api/nodes/{}", node_name())).await.body;
    for key in ["fd_used", "sockets_used", "proc_used", "fd_total", "mem_limit", "uptime"] {
        assert!(node[key].as_u64().unwrap() > 0, "{key}: {node}");
    }
    assert_eq!((node["partitions"].clone(), node["running"].clone()), (json!([]), json!(true)));
    assert_eq!(h.get("/api/nodes/rabbit@elsewhere").await.status, 404);
    assert_eq!(h.get("/api/nodes").await.body.as_array().unwrap().len(), 1);
    assert_eq!(h.put("/api/cluster-name", json!({"name": "ops-cluster"})).await.status, 204);
    assert_eq!(h.get("/api/cluster-name").await.body, json!({"name": "ops-cluster"}));
    assert_eq!(h.get("/api/overview").await.body["cluster_name"], "ops-cluster");
    assert_eq!(h.put("/api/cluster-name", json!({})).await.status, 400);

    // The strict client behind rabbitmqadmin v2 parses all of it.
    let (addr, _stop) = super::clients::serve(&h).await;
    let conn_name = name.clone();
    tokio::task::spawn_blocking(move || {
        let c = Client::new(format!("http://{addr}/api"), "guest", "guest");
        let o = c.overview().unwrap();
        assert_eq!(o.object_totals.consumers, 1);
        assert_eq!(c.list_nodes().unwrap().len(), 1);
        assert!(c.get_node_info(node_name()).unwrap().fd_total > 0);
        assert!(c.get_node_memory_footprint(node_name()).unwrap().breakdown.is_none());
        assert_eq!(c.get_cluster_name().unwrap().name, "ops-cluster");
        assert_eq!(c.list_connections().unwrap()[0].name, conn_name);
        assert_eq!(c.get_connection_info(&conn_name).unwrap().username, "guest");
        assert_eq!(c.list_channels().unwrap().len(), 2);
        assert_eq!(c.list_channels_on(&conn_name).unwrap().len(), 2);
        assert_eq!(c.list_consumers().unwrap()[0].consumer_tag, "ops-tag");
        assert_eq!(c.list_consumers_in("/").unwrap().len(), 1);
        c.health_check_cluster_wide_alarms().unwrap();
        c.health_check_local_alarms().unwrap();
    })
    .await
    .unwrap();
    drop(conn);
}

fn urlencode(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closing_a_connection_tells_the_client_why_and_only_allowed_callers_may() {
    let h = start().await;
    h.user("ops-mgmt", "management").await;
    let mut raw = super::common::Raw::connect(h.server.local_addr).await;
    raw.handshake("guest", "guest", 0, 0).await;
    let name = eventually(&h, "/api/connections", |c| c.as_array().is_some_and(|a| a.len() == 1)).await[0]
        ["name"]
        .as_str()
        .unwrap()
        .to_owned();
    let path = format!("/api/connections/{}", urlencode(&name));
    // A management user sees only its own connections, and no channels of
    // a vhost it has no permissions in.
    assert_eq!(h.as_user("ops-mgmt", "GET", "/api/connections", None).await.body, json!([]));
    assert_eq!(h.put("/api/vhosts/ops-other", json!({})).await.status, 201);
    let other = h.as_user("ops-mgmt", "GET", "/api/vhosts/ops-other/channels", None).await;
    other.refused(401, "not_authorised", "User not authorised to access virtual host");
    assert_eq!(h.as_user("ops-mgmt", "DELETE", &path, None).await.status, 404);

    let req = axum::http::Request::builder()
        .method("DELETE")
        .uri(&path)
        .header("authorization", "Basic Z3Vlc3Q6Z3Vlc3Q=")
        .header(
            "x-reason",
            axum::http::HeaderValue::from_bytes("maintenance window für 5 min".as_bytes()).unwrap(),
        )
        .body(axum::body::Body::empty())
        .unwrap();
    let resp = tower::ServiceExt::oneshot(h.app.clone(), req).await.unwrap();
    assert_eq!(resp.status(), 204);
    let (code, text, _, _) = raw.expect_connection_close().await;
    assert_eq!((code, text.as_str()), (320, "CONNECTION_FORCED - maintenance window für 5 min"));
    // Without X-Reason, RabbitMQ's text.
    let mut raw = super::common::Raw::connect(h.server.local_addr).await;
    raw.handshake("guest", "guest", 0, 0).await;
    let name = eventually(&h, "/api/connections", |c| c.as_array().is_some_and(|a| a.len() == 1)).await[0]
        ["name"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(h.delete(&format!("/api/connections/{}", urlencode(&name))).await.status, 204);
    let (code, text, _, _) = raw.expect_connection_close().await;
    assert_eq!((code, text.as_str()), (320, "CONNECTION_FORCED - Closed via management plugin"));
    eventually(&h, "/api/connections", |c| c == &json!([])).await;

    // By user: every connection of that user goes.
    let a = client(&h, "a").await;
    let b = client(&h, "b").await;
    eventually(&h, "/api/connections/username/guest", |c| c.as_array().is_some_and(|a| a.len() == 2)).await;
    assert_eq!(h.as_user("ops-mgmt", "DELETE", "/api/connections/username/guest", None).await.status, 401);
    assert_eq!(h.delete("/api/connections/username/guest").await.status, 204);
    eventually(&h, "/api/connections", |c| c == &json!([])).await;
    assert!(!a.status().connected() && !b.status().connected());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_checks_and_the_aliveness_test() {
    let h = start().await;
    let amqp = h.server.local_addr.port();
    assert_eq!(h.get("/api/health/checks/alarms").await.body, json!({"status": "ok"}));
    assert_eq!(h.get("/api/health/checks/local-alarms").await.status, 200);
    assert_eq!(h.get("/api/health/checks/virtual-hosts").await.status, 200);
    let port = h.get(&format!("/api/health/checks/port-listener/{amqp}")).await;
    assert_eq!(port.body, json!({"status": "ok", "port": amqp}));
    let missing = h.get("/api/health/checks/port-listener/1").await;
    assert_eq!(
        (missing.status, &missing.body["status"], &missing.body["missing"]),
        (503, &json!("failed"), &json!(1))
    );
    assert_eq!(h.get("/api/health/checks/port-listener/x").await.status, 400);
    assert_eq!(h.get("/api/health/checks/protocol-listener/amqp091").await.status, 200);
    assert_eq!(h.get("/api/health/checks/protocol-listener/amqps").await.status, 503);
    // No TLS listener: no certificate can expire.
    assert_eq!(h.get("/api/health/checks/certificate-expiration/1/months").await.status, 200);
    assert_eq!(h.get("/api/health/checks/certificate-expiration/1/fortnights").await.status, 400);

    h.server.broker.alarms.set_memory_limit(1);
    h.server.broker.alarms.observe_memory(10);
    let raised = h.get("/api/health/checks/alarms").await;
    assert_eq!(raised.status, 503);
    assert_eq!(raised.body["alarms"][0]["resource"], "memory");
    h.server.broker.alarms.set_memory_limit(u64::MAX);
    h.server.broker.alarms.observe_memory(10);

    for _ in 0..2 {
        assert_eq!(h.get("/api/aliveness-test/%2F").await.body, json!({"status": "ok"}));
    }
    assert_eq!(h.get("/api/aliveness-test/nope").await.status, 404);
    // Nodes are for monitoring users.
    h.user("ops-m", "management").await;
    let refused = call(&h.app, "GET", "/api/nodes", Some(("ops-m", "pw")), None).await;
    refused.refused(401, "not_authorised", "Not monitor user");
}
