//! What the admin API manages, in process: vhosts, permissions, policies
//! and operator policies, vhost limits, and definitions exported and
//! imported.

use super::*;

#[tokio::test]
async fn vhosts_are_created_changed_and_deleted() {
    let h = start().await;
    let body = json!({"description": "dd", "tags": "x,y", "default_queue_type": "quorum", "tracing": "true"});
    assert_eq!(h.put("/api/vhosts/api-v", body).await.status, 201);
    let v = h.get("/api/vhosts/api-v").await.body;
    assert_eq!(
        (&v["name"], &v["description"], &v["tags"]),
        (&json!("api-v"), &json!("dd"), &json!(["x", "y"]))
    );
    assert_eq!(
        v["metadata"],
        json!({"description": "dd", "tags": ["x", "y"], "default_queue_type": "quorum"})
    );
    assert_eq!((&v["tracing"], &v["messages"]), (&json!(false), &json!(0)));
    assert_eq!(v["cluster_state"].as_object().unwrap().values().next().unwrap(), "running");
    // The creator gets every permission on it, as in RabbitMQ.
    let perms = h.get("/api/vhosts/api-v/permissions").await.body;
    assert_eq!(
        perms,
        json!([{"user": "guest", "vhost": "api-v", "configure": ".*", "write": ".*", "read": ".*"}])
    );
    // A PUT replaces the settings (3.10's `defaultqueuetype` too); limits stay.
    assert_eq!(h.put("/api/vhost-limits/api-v/max-queues", json!({"value": 3})).await.status, 204);
    assert_eq!(h.put("/api/vhosts/api-v", json!({"defaultqueuetype": "classic"})).await.status, 204);
    let v = h.get("/api/vhosts/api-v").await.body;
    assert_eq!((&v["description"], &v["default_queue_type"]), (&json!(""), &json!("classic")));
    assert_eq!(
        h.get("/api/vhost-limits/api-v").await.body,
        json!([{"vhost": "api-v", "value": {"max-queues": 3}}])
    );
    assert_eq!(h.put("/api/vhosts/api-w", json!({"default_queue_type": "bogus"})).await.status, 400);
    assert_eq!(h.get("/api/vhosts/%2f").await.body["description"], "Default virtual host");
    assert_eq!(
        h.put("/api/policies/api-v/api-p", json!({"pattern": ".", "definition": {"max-length": 1}}))
            .await
            .status,
        201
    );
    assert_eq!(h.delete("/api/vhosts/api-v").await.status, 204);
    h.delete("/api/vhosts/api-v").await.refused(404, "Object Not Found", "Not Found");
    h.get("/api/vhosts/api-v/permissions").await.refused(404, "Object Not Found", "Not Found");
    h.get("/api/vhosts/api-v/topic-permissions").await.refused(404, "Object Not Found", "Not Found");
    assert!(h.get("/api/permissions").await.body.as_array().unwrap().iter().all(|p| p["vhost"] == "/"));
    // Made again, it starts empty: no permissions or policies of the old one.
    assert_eq!(h.put("/api/vhosts/api-v", json!({})).await.status, 201);
    assert_eq!(h.get("/api/policies/api-v").await.body, json!([]));
}

#[tokio::test]
async fn permissions_are_set_and_refused_like_rabbitmq() {
    let h = start().await;
    h.user("api-u", "management").await;
    let all = json!({"configure": "^a", "write": ".*", "read": ".*"});
    assert_eq!(h.put("/api/permissions/%2F/api-u", all.clone()).await.status, 204);
    assert_eq!(h.get("/api/permissions/%2f/api-u").await.body["configure"], "^a");
    for path in ["/api/permissions/%2F/api-nobody", "/api/permissions/api-novhost/api-u"] {
        h.put(path, all.clone()).await.refused(400, "bad_request", "vhost_or_user_not_found");
    }
    let bad = h.put("/api/permissions/%2F/api-u", json!({"configure": "(", "write": "", "read": ""})).await;
    assert_eq!(bad.status, 400);
    assert!(bad.body["reason"].as_str().unwrap().contains("invalid regular expression '('"), "{}", bad.body);
    let missing = h.put("/api/permissions/%2F/api-u", json!({"configure": ".*"})).await;
    missing.refused(400, "bad_request", "[{key_missing,write},{key_missing,read}]");
    assert_eq!(h.delete("/api/permissions/%2F/api-u").await.status, 204);
    h.delete("/api/permissions/%2F/api-u").await.refused(404, "Object Not Found", "Not Found");
    h.get("/api/permissions/%2F/api-u").await.refused(404, "Object Not Found", "Not Found");

    // Topic permissions: 201 for the first in the vhost, then 204.
    let topic = |x: &str| json!({"exchange": x, "write": "^a", "read": ".*"});
    assert_eq!(h.put("/api/topic-permissions/%2F/api-u", topic("amq.topic")).await.status, 201);
    assert_eq!(h.put("/api/topic-permissions/%2F/api-u", topic("x2")).await.status, 204);
    assert_eq!(h.put("/api/topic-permissions/%2F/api-u", topic("x3")).await.status, 204);
    assert_eq!(h.get("/api/topic-permissions/%2F/api-u").await.body.as_array().unwrap().len(), 3);
    assert_eq!(h.get("/api/users/api-u/topic-permissions").await.body.as_array().unwrap().len(), 3);
    assert_eq!(h.get("/api/vhosts/%2F/topic-permissions").await.body.as_array().unwrap().len(), 3);
    assert_eq!(h.get("/api/topic-permissions/%2F/api-u/x2").await.body[0]["write"], "^a");
    h.put("/api/topic-permissions/%2F/api-u", json!({"write": "", "read": ""})).await.refused(
        400,
        "bad_request",
        "[{key_missing,exchange}]",
    );
    h.put("/api/topic-permissions/%2F/api-nobody", topic("e")).await.refused(
        400,
        "bad_request",
        "vhost_or_user_not_found",
    );
    assert_eq!(h.delete("/api/topic-permissions/%2F/api-u/x2").await.status, 204);
    assert_eq!(h.delete("/api/topic-permissions/%2F/api-u?exchange=x3").await.status, 204);
    let left = h.get("/api/topic-permissions").await.body;
    assert_eq!(
        left,
        json!([{"user": "api-u", "vhost": "/", "exchange": "amq.topic", "write": "^a", "read": ".*"}])
    );
    assert_eq!(h.delete("/api/topic-permissions/%2F/api-u").await.status, 204);
    h.delete("/api/topic-permissions/%2F/api-u").await.refused(404, "Object Not Found", "Not Found");
    h.get("/api/topic-permissions/%2F/api-u").await.refused(404, "Object Not Found", "Not Found");
}

#[tokio::test]
async fn policies_and_operator_policies() {
    let h = start().await;
    let body =
        json!({"pattern": "^api-", "definition": {"max-length": 5}, "apply-to": "queues", "priority": "3"});
    assert_eq!(h.put("/api/policies/%2F/api-p", body.clone()).await.status, 201);
    assert_eq!(h.put("/api/policies/%2F/api-p", body).await.status, 204);
    let want = json!({"vhost": "/", "name": "api-p", "pattern": "^api-", "apply-to": "queues",
        "definition": {"max-length": 5}, "priority": 3});
    assert_eq!(h.get("/api/policies/%2F/api-p").await.body, want);
    assert_eq!(h.get("/api/policies").await.body, json!([want.clone()]));
    assert_eq!(h.get("/api/policies/%2F").await.body, json!([want]));
    h.get("/api/policies/api-nope").await.refused(404, "Object Not Found", "Not Found");
    h.get("/api/policies/%2F/api-nope").await.refused(404, "Object Not Found", "Not Found");
    let into_missing =
        h.put("/api/policies/api-nope/p", json!({"pattern": ".", "definition": {"max-length": 1}})).await;
    into_missing.refused(404, "not_found", "vhost_not_found");
    let unknown =
        h.put("/api/policies/%2F/api-q", json!({"pattern": ".", "definition": {"max-lengthx": 5}})).await;
    assert_eq!(unknown.status, 400);
    assert!(
        unknown.body["reason"].as_str().unwrap().starts_with("Validation failed\n\n"),
        "{}",
        unknown.body
    );
    let regex =
        h.put("/api/policies/%2F/api-q", json!({"pattern": "(", "definition": {"max-length": 5}})).await;
    assert!(regex.body["reason"].as_str().unwrap().contains("pattern should be regular expression"));
    let no_pattern = h.put("/api/policies/%2F/api-q", json!({"definition": {"max-length": 5}})).await;
    no_pattern.refused(400, "bad_request", "[{key_missing,pattern}]");
    assert_eq!(h.delete("/api/policies/%2F/api-p").await.status, 204);
    h.delete("/api/policies/%2F/api-p").await.refused(404, "Object Not Found", "Not Found");

    let op = json!({"pattern": "^api-", "definition": {"max-length": 5}, "apply-to": "queues"});
    assert_eq!(h.put("/api/operator-policies/%2F/api-op", op).await.status, 201);
    assert_eq!(h.get("/api/operator-policies").await.body[0]["priority"], 0);
    assert_eq!(h.get("/api/operator-policies/%2F/api-op").await.body["name"], "api-op");
    assert_eq!(h.get("/api/policies").await.body, json!([]));
    let ae = h
        .put(
            "/api/operator-policies/%2F/api-op2",
            json!({"pattern": ".", "definition": {"alternate-exchange": "x"}}),
        )
        .await;
    assert_eq!(ae.status, 400);
    assert_eq!(h.delete("/api/operator-policies/%2F/api-op").await.status, 204);
}

#[tokio::test]
async fn vhost_limits_are_set_listed_and_cleared() {
    let h = start().await;
    assert_eq!(h.get("/api/vhost-limits").await.body, json!([]));
    assert_eq!(h.get("/api/vhost-limits/%2F").await.body, json!([]));
    assert_eq!(h.put("/api/vhost-limits/%2F/max-connections", json!({"value": 10})).await.status, 204);
    assert_eq!(h.put("/api/vhost-limits/%2F/max-queues", json!({"value": "5"})).await.status, 204);
    let both = json!([{"vhost": "/", "value": {"max-connections": 10, "max-queues": 5}}]);
    assert_eq!(h.get("/api/vhost-limits").await.body, both);
    assert_eq!(h.server.broker.vhost("/").unwrap().limits().max_queues, Some(5));
    // Negative: no limit.
    assert_eq!(h.put("/api/vhost-limits/%2F/max-queues", json!({"value": -1})).await.status, 204);
    assert_eq!(
        h.get("/api/vhost-limits/%2F").await.body,
        json!([{"vhost": "/", "value": {"max-connections": 10}}])
    );
    let bogus = h.put("/api/vhost-limits/%2F/max-bogus", json!({"value": 10})).await;
    bogus.refused(
        400,
        "bad_request",
        "Validation failed\n\nUnrecognised terms [{<<\"max-bogus\">>,10}] in limits\n",
    );
    let float = h.put("/api/vhost-limits/%2F/max-queues", json!({"value": 1.5})).await;
    float.refused(
        400,
        "bad_request",
        "Validation failed\n\nmax-queues should be a number, actually was 1.5\n",
    );
    h.put("/api/vhost-limits/%2F/max-queues", json!({})).await.refused(
        400,
        "bad_request",
        "[{key_missing,value}]",
    );
    h.put("/api/vhost-limits/api-nope/max-queues", json!({"value": 1})).await.refused(
        404,
        "not_found",
        "vhost_not_found",
    );
    h.get("/api/vhost-limits/api-nope").await.refused(404, "Object Not Found", "Not Found");
    assert_eq!(h.delete("/api/vhost-limits/%2F/max-connections").await.status, 204);
    assert_eq!(h.delete("/api/vhost-limits/%2F/max-connections").await.status, 204);
    assert_eq!(h.get("/api/vhost-limits").await.body, json!([]));
}

#[tokio::test]
async fn definitions_are_exported_and_imported() {
    let h = start().await;
    h.user("api-d", "monitoring").await;
    assert_eq!(
        h.put("/api/policies/%2F/api-p", json!({"pattern": ".", "definition": {"max-length": 1}}))
            .await
            .status,
        201
    );
    let all = h.get("/api/definitions").await;
    assert_eq!(all.status, 200);
    for key in [
        "rabbit_version",
        "users",
        "vhosts",
        "permissions",
        "topic_permissions",
        "policies",
        "queues",
        "exchanges",
        "bindings",
    ] {
        assert!(all.body.get(key).is_some(), "{key} missing from {}", all.body);
    }
    let one = h.get("/api/definitions/%2F").await.body;
    // Policies keep their vhost in one vhost's export, as RabbitMQ 3.10.8 writes them.
    assert!(one.get("users").is_none() && one["policies"][0]["vhost"] == "/", "{one}");
    h.get("/api/definitions/api-nope").await.refused(400, "bad_request", "vhost_not_found");
    h.send("POST", "/api/definitions/api-nope", "{}").await.refused(400, "bad_request", "vhost_not_found");
    // What was exported imports back, changing nothing.
    assert_eq!(h.send("POST", "/api/definitions", &all.body.to_string()).await.status, 204);
    assert_eq!(h.get("/api/definitions").await.body, all.body);
    // A conflicting queue is skipped (RabbitMQ: silently); Warren says so with a 200.
    let queue = |durable: bool| {
        json!({"queues": [{"name": "api-q", "vhost": "/", "durable": durable, "auto_delete": false, "arguments": {}}]})
            .to_string()
    };
    assert_eq!(h.send("POST", "/api/definitions", &queue(true)).await.status, 204);
    let skipped = h.send("POST", "/api/definitions", &queue(false)).await;
    assert_eq!(
        (skipped.status, &skipped.body["skipped"][0]["name"]),
        (200, &json!("api-q")),
        "{}",
        skipped.body
    );
    let bad = h.send("POST", "/api/definitions", "{bad").await;
    bad.refused(400, "bad_request", "failed_to_parse_json");
    // Past the 1 MiB of other bodies, within the 64 MiB of definitions.
    let padded = format!("{}{}", all.body, " ".repeat(2 << 20));
    assert_eq!(h.send("POST", "/api/definitions", &padded).await.status, 204);
    let big = format!("{{\"password\":\"pw\",\"tags\":\"\"{}}}", " ".repeat(2 << 20));
    assert_eq!(h.send("PUT", "/api/users/api-big", &big).await.status, 413);
}
