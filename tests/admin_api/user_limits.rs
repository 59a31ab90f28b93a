//! `/api/user-limits` and user limits in definitions, as RabbitMQ 3.10.8
//! answers them (probed on a live one).

use serde_json::json;

use super::start;

#[tokio::test]
async fn user_limits_are_set_listed_cleared_and_kept_in_definitions() {
    let h = start().await;
    h.user("api-ul", "").await;
    h.user("api-mgmt", "management").await;
    assert_eq!(h.get("/api/user-limits").await.body, json!([]));
    assert_eq!(h.get("/api/user-limits/guest").await.body, json!([]));
    assert_eq!(h.put("/api/user-limits/api-ul/max-connections", json!({"value": 2})).await.status, 204);
    assert_eq!(h.put("/api/user-limits/api-ul/max-channels", json!({"value": -3})).await.status, 204);
    let both = json!([{"user": "api-ul", "value": {"max-connections": 2, "max-channels": -3}}]);
    assert_eq!(h.get("/api/user-limits").await.body, both);
    // Any management user may read them; only administrators change them.
    assert_eq!(h.as_user("api-mgmt", "GET", "/api/user-limits/api-ul", None).await.body, both);
    let put =
        h.as_user("api-mgmt", "PUT", "/api/user-limits/api-ul/max-channels", Some(json!({"value": 1}))).await;
    put.refused(401, "not_authorised", "Not administrator user");
    // The user shows them too, and the broker applies them.
    assert_eq!(h.get("/api/users/api-ul").await.body["limits"], both[0]["value"]);
    assert_eq!(h.get("/api/users/guest").await.body["limits"], json!({}));
    let limits = h.server.access.user("api-ul").unwrap().limits;
    assert_eq!((limits.connections(), limits.channels()), (Some(2), None));
    h.put("/api/user-limits/api-ul/max-foo", json!({"value": 5})).await.refused(
        400,
        "bad_request",
        "Unrecognised terms [{<<\"max-foo\">>,5}] in user-limits",
    );
    h.put("/api/user-limits/api-ul/max-channels", json!({"value": 2.5})).await.refused(
        400,
        "bad_request",
        "max-channels should be a number, actually was 2.5",
    );
    h.put("/api/user-limits/api-ul/max-channels", json!({"valu": 5})).await.refused(
        400,
        "bad_request",
        "[{key_missing,value}]",
    );
    h.put("/api/user-limits/api-nobody/max-channels", json!({"value": 5})).await.refused(
        400,
        "bad_request",
        "no_such_user: api-nobody",
    );
    h.get("/api/user-limits/api-nobody").await.refused(404, "Object Not Found", "Not Found");
    // Exported with the user, imported back.
    let defs = h.get("/api/definitions").await.body;
    let exported = defs["users"].as_array().unwrap().iter().find(|u| u["name"] == "api-ul").unwrap().clone();
    assert_eq!(exported["limits"], both[0]["value"]);
    assert_eq!(h.delete("/api/user-limits/api-ul/max-channels").await.status, 204);
    assert_eq!(h.delete("/api/user-limits/api-ul/max-channels").await.status, 204);
    assert_eq!(
        h.get("/api/user-limits/api-ul").await.body,
        json!([{"user": "api-ul", "value": {"max-connections": 2}}])
    );
    assert_eq!(
        h.send("POST", "/api/definitions", &json!({"users": [exported]}).to_string()).await.status,
        204
    );
    assert_eq!(h.get("/api/user-limits").await.body, both);
    // `{}` in a file clears them, as in RabbitMQ.
    let cleared = json!({"users": [{"name": "api-ul", "password_hash": "", "tags": [], "limits": {}}]});
    assert_eq!(h.send("POST", "/api/definitions", &cleared.to_string()).await.status, 204);
    assert_eq!(h.get("/api/user-limits").await.body, json!([]));
    let bad = json!({"users": [{"name": "api-ul", "password_hash": "", "tags": [], "limits": {"max-x": 1}}]});
    assert_eq!(h.send("POST", "/api/definitions", &bad.to_string()).await.status, 400);
}
