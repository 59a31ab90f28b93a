//! The admin API in process: `admin::router()` driven with `oneshot`, no
//! network, against a broker on a memory store. Status codes, shapes and
//! texts are RabbitMQ 3.10.8's (checked on a live one). `admin_api/clients.rs`
//! runs the real clients (rabbitmq_http_client, rabbitmqadmin v1) over HTTP.

#[path = "admin_api/clients.rs"]
mod clients;
mod common;
#[path = "admin_api/ops.rs"]
mod ops;
#[path = "admin_api/resources.rs"]
mod resources;
#[path = "admin_api/user_limits.rs"]
mod user_limits;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::connect_info::MockConnectInfo;
use axum::http::header::{AUTHORIZATION, CONTENT_TYPE, WWW_AUTHENTICATE};
use axum::http::{HeaderMap, Request};
use axum::{Extension, Router};
use base64::Engine as _;
use http_body_util::BodyExt;
use serde_json::{json, Value};
use tower::ServiceExt;
use warren::admin::{self, AdminState, LocalSocket, REALM};
use warren::config::Config;
use warren::server::Server;
use warren::store::memory::MemoryStore;

pub struct Harness {
    pub server: Server,
    pub app: Router,
}

pub struct Answer {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Value,
}

impl Answer {
    /// Asserts RabbitMQ's error shape, and the challenge on a 401.
    #[track_caller]
    pub fn refused(&self, status: u16, error: &str, reason: &str) {
        assert_eq!((self.status, &self.body), (status, &json!({"error": error, "reason": reason})));
        if status == 401 {
            assert_eq!(self.headers[WWW_AUTHENTICATE], REALM);
        }
    }
}

pub async fn start() -> Harness {
    let mut config = Config::default();
    config.amqp.listen = "127.0.0.1:0".parse().unwrap();
    config.admin.listen = None;
    config.metrics.listen = None;
    let dir = std::env::temp_dir().join(format!("warren-admin-{}-{}", std::process::id(), fastrand::u64(..)));
    std::fs::create_dir_all(&dir).unwrap();
    config.storage.data_dir = dir;
    let server = Server::start_with_store(config, Arc::new(MemoryStore::default())).await.unwrap();
    let app = app_from(&server, [127, 0, 0, 1]);
    Harness { server, app }
}

pub fn state(server: &Server) -> AdminState {
    AdminState::new(server.broker.clone(), server.access.clone()).with_node(server.node.clone())
}

fn app_from(server: &Server, ip: [u8; 4]) -> Router {
    admin::router(state(server)).layer(MockConnectInfo(SocketAddr::from((ip, 40000))))
}

fn basic(user: &str, password: &str) -> String {
    format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}")))
}

pub async fn call(
    app: &Router,
    method: &str,
    path: &str,
    auth: Option<(&str, &str)>,
    body: Option<&str>,
) -> Answer {
    let mut req = Request::builder().method(method).uri(path);
    if let Some((user, password)) = auth {
        req = req.header(AUTHORIZATION, basic(user, password));
    }
    let body = body.map_or_else(Body::empty, |b| Body::from(b.to_owned()));
    let resp = app.clone().oneshot(req.body(body).unwrap()).await.unwrap();
    let (status, headers) = (resp.status().as_u16(), resp.headers().clone());
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    if !bytes.is_empty() {
        assert_eq!(headers[CONTENT_TYPE], "application/json", "{method} {path}");
    }
    Answer { status, headers, body: serde_json::from_slice(&bytes).unwrap_or(Value::Null) }
}

impl Harness {
    pub async fn get(&self, path: &str) -> Answer {
        call(&self.app, "GET", path, Some(("guest", "guest")), None).await
    }
    pub async fn put(&self, path: &str, body: Value) -> Answer {
        call(&self.app, "PUT", path, Some(("guest", "guest")), Some(&body.to_string())).await
    }
    pub async fn send(&self, method: &str, path: &str, body: &str) -> Answer {
        call(&self.app, method, path, Some(("guest", "guest")), Some(body)).await
    }
    pub async fn delete(&self, path: &str) -> Answer {
        call(&self.app, "DELETE", path, Some(("guest", "guest")), None).await
    }
    async fn as_user(&self, user: &str, method: &str, path: &str, body: Option<Value>) -> Answer {
        call(&self.app, method, path, Some((user, "pw")), body.map(|b| b.to_string()).as_deref()).await
    }
    /// A user with password "pw", `tags`, and every permission on `/`.
    async fn user(&self, name: &str, tags: &str) {
        assert_eq!(
            self.put(&format!("/api/users/{name}"), json!({"password": "pw", "tags": tags})).await.status,
            201
        );
        let all = json!({"configure": ".*", "write": ".*", "read": ".*"});
        assert_eq!(self.put(&format!("/api/permissions/%2F/{name}"), all).await.status, 201);
    }
}

fn names(v: &Value) -> Vec<&str> {
    v.as_array().unwrap().iter().map(|i| i["name"].as_str().unwrap()).collect()
}

#[tokio::test]
async fn logins_are_checked_and_refused_as_rabbitmq_does() {
    let h = start().await;
    let me = h.get("/api/whoami").await;
    assert_eq!((me.status, me.body), (200, json!({"name": "guest", "tags": ["administrator"]})));
    call(&h.app, "GET", "/api/whoami", None, None).await.refused(401, "not_authorized", "Login failed");
    call(&h.app, "GET", "/api/whoami", Some(("guest", "nope")), None).await.refused(
        401,
        "not_authorized",
        "Login failed",
    );
    call(&h.app, "GET", "/api/users", Some(("ghost", "pw")), None).await.refused(
        401,
        "not_authorized",
        "Login failed",
    );
    let bearer = Request::get("/api/whoami").header(AUTHORIZATION, "Bearer x").body(Body::empty()).unwrap();
    assert_eq!(h.app.clone().oneshot(bearer).await.unwrap().status(), 401);
    let remote = app_from(&h.server, [10, 0, 0, 1]);
    call(&remote, "GET", "/api/whoami", Some(("guest", "guest")), None).await.refused(
        401,
        "not_authorised",
        "User can only log in via localhost",
    );
    // Other users may log in from anywhere.
    h.user("api-far", "management").await;
    assert_eq!(call(&remote, "GET", "/api/whoami", Some(("api-far", "pw")), None).await.status, 200);
}

#[tokio::test]
async fn tags_decide_what_each_user_may_do() {
    let h = start().await;
    for (name, tags) in [("api-none", ""), ("api-mgmt", "management"), ("api-pm", "policymaker")] {
        h.user(name, tags).await;
    }
    h.user("api-mon", "monitoring").await;
    h.user("api-admin", "administrator").await;
    assert_eq!(h.put("/api/vhosts/api-other", json!({})).await.status, 201);
    let policy = json!({"pattern": "^x", "definition": {"max-length": 1}});
    assert_eq!(h.put("/api/policies/%2F/api-here", policy.clone()).await.status, 201);
    assert_eq!(h.put("/api/policies/api-other/api-there", policy.clone()).await.status, 201);
    assert_eq!(h.put("/api/vhost-limits/api-other/max-queues", json!({"value": 5})).await.status, 204);

    let not_mgmt = h.as_user("api-none", "GET", "/api/whoami", None).await;
    not_mgmt.refused(401, "not_authorised", "Not management user");
    for user in ["api-mgmt", "api-pm", "api-mon"] {
        for path in [
            "/api/users",
            "/api/permissions",
            "/api/definitions",
            "/api/vhosts/%2F",
            "/api/topic-permissions",
        ] {
            h.as_user(user, "GET", path, None).await.refused(401, "not_authorised", "Not administrator user");
        }
        let op = h.as_user(user, "PUT", "/api/operator-policies/%2F/api-op", Some(policy.clone())).await;
        op.refused(401, "not_authorised", "Not administrator user");
        assert_eq!(h.as_user(user, "GET", "/api/whoami", None).await.status, 200);
        // Policies: only in the vhosts they have permissions in.
        assert_eq!(names(&h.as_user(user, "GET", "/api/policies", None).await.body), ["api-here"]);
        let there = h.as_user(user, "GET", "/api/policies/api-other", None).await;
        there.refused(401, "not_authorised", "User not authorised to access virtual host");
    }
    // Management users see the vhosts they have permissions in; monitoring all.
    assert_eq!(names(&h.as_user("api-mgmt", "GET", "/api/vhosts", None).await.body), ["/"]);
    assert_eq!(names(&h.as_user("api-mon", "GET", "/api/vhosts", None).await.body), ["/", "api-other"]);
    assert_eq!(h.as_user("api-mgmt", "GET", "/api/vhost-limits", None).await.body, json!([]));
    assert_eq!(
        h.as_user("api-mon", "GET", "/api/vhost-limits", None).await.body.as_array().unwrap().len(),
        1
    );
    let limits = h.as_user("api-mgmt", "GET", "/api/vhost-limits/api-other", None).await;
    limits.refused(401, "not_authorised", "User not authorised to access virtual host");
    // Policymakers change policies where they have permissions.
    for user in ["api-mgmt", "api-mon"] {
        let put = h.as_user(user, "PUT", "/api/policies/%2F/api-p", Some(policy.clone())).await;
        put.refused(401, "not_authorised", "User not authorised to access object");
        let get = h.as_user(user, "GET", "/api/policies/%2F/api-here", None).await;
        get.refused(401, "not_authorised", "User not authorised to access object");
    }
    assert_eq!(h.as_user("api-pm", "PUT", "/api/policies/%2F/api-p", Some(policy.clone())).await.status, 201);
    assert_eq!(h.as_user("api-pm", "GET", "/api/policies/%2F/api-p", None).await.status, 200);
    assert_eq!(h.as_user("api-pm", "DELETE", "/api/policies/%2F/api-p", None).await.status, 204);
    let elsewhere = h.as_user("api-pm", "PUT", "/api/policies/api-other/api-p", Some(policy.clone())).await;
    elsewhere.refused(401, "not_authorised", "User not authorised to access object");
    // Administrators see everything.
    assert_eq!(h.as_user("api-admin", "GET", "/api/users", None).await.status, 200);
    assert_eq!(
        names(&h.as_user("api-admin", "GET", "/api/policies", None).await.body),
        ["api-here", "api-there"]
    );
}

#[tokio::test]
async fn refusals_do_not_tell_which_vhosts_exist() {
    let h = start().await;
    h.user("api-mgmt", "management").await;
    h.user("api-pm", "policymaker").await;
    assert_eq!(h.put("/api/vhosts/api-hidden", json!({})).await.status, 201);
    let policy = json!({"pattern": "^x", "definition": {"max-length": 1}});
    assert_eq!(h.put("/api/policies/api-hidden/api-p", policy.clone()).await.status, 201);
    let vhost_refused = ("not_authorised", "User not authorised to access virtual host");
    let object_refused = ("not_authorised", "User not authorised to access object");
    let admin_refused = ("not_authorised", "Not administrator user");
    for vhost in ["api-hidden", "api-missing"] {
        for user in ["api-mgmt", "api-pm"] {
            let body = Some(policy.clone());
            let asks = [
                ("GET", format!("/api/policies/{vhost}"), None, vhost_refused),
                ("GET", format!("/api/policies/{vhost}/api-p"), None, object_refused),
                ("PUT", format!("/api/policies/{vhost}/api-p"), body.clone(), object_refused),
                ("DELETE", format!("/api/policies/{vhost}/api-p"), None, object_refused),
                ("GET", format!("/api/operator-policies/{vhost}/api-p"), None, admin_refused),
                ("PUT", format!("/api/operator-policies/{vhost}/api-p"), body, admin_refused),
                ("DELETE", format!("/api/operator-policies/{vhost}/api-p"), None, admin_refused),
                ("GET", format!("/api/vhost-limits/{vhost}"), None, vhost_refused),
            ];
            for (method, path, body, (error, reason)) in asks {
                let answer = h.as_user(user, method, &path, body).await;
                assert_eq!(
                    (answer.status, &answer.body),
                    (401, &json!({"error": error, "reason": reason})),
                    "{user} {method} {path}"
                );
            }
        }
    }
    // The policy is untouched, and administrators are told what is missing.
    assert_eq!(h.get("/api/policies/api-hidden/api-p").await.status, 200);
    h.get("/api/policies/api-missing").await.refused(404, "Object Not Found", "Not Found");
    h.get("/api/policies/api-missing/api-p").await.refused(404, "Object Not Found", "Not Found");
    h.delete("/api/policies/api-missing/api-p").await.refused(404, "Object Not Found", "Not Found");
    h.get("/api/vhost-limits/api-missing").await.refused(404, "Object Not Found", "Not Found");
}

#[tokio::test]
async fn users_are_created_changed_and_deleted() {
    let h = start().await;
    let put = |body: Value| h.put("/api/users/api-u", body);
    assert_eq!(put(json!({"password": "pw", "tags": "management,monitoring"})).await.status, 201);
    let u = h.get("/api/users/api-u").await.body;
    assert_eq!(u["tags"], json!(["management", "monitoring"]));
    assert_eq!(
        (u["hashing_algorithm"].as_str(), &u["limits"]),
        (Some("rabbit_password_hashing_sha256"), &json!({}))
    );
    assert_eq!(u["password_hash"].as_str().unwrap().len(), 48);
    // Tags as an array; no password: the old one is kept.
    assert_eq!(put(json!({"tags": ["administrator"], "vhost": "/", "name": "x"})).await.status, 204);
    assert_eq!(h.get("/api/users/api-u").await.body["password_hash"], u["password_hash"]);
    assert_eq!(
        call(&h.app, "GET", "/api/whoami", Some(("api-u", "pw")), None).await.body["tags"],
        json!(["administrator"])
    );
    // rabbitmqadmin v2 sends a hash and no algorithm: SHA-256.
    let hash = "+KrZ07Ddfi2P/RuwhviWo2YG4zEuawwOL3qqKpMqk/4CtVul"; // RabbitMQ's, of demo-pw
    assert_eq!(
        h.put("/api/users/api-h", json!({"password_hash": hash, "tags": "management"})).await.status,
        201
    );
    let who = call(&h.app, "GET", "/api/whoami", Some(("api-h", "demo-pw")), None).await;
    assert_eq!(who.status, 200, "{}", who.body);
    let sha512 =
        "AQIDBC7ycYuFch8KXPKvr7VeqRVbYxPSprRvfyRAwF7dUlG5QkPMvK8D/53FksiTH4ERz3rNdHcpAziWiUd4pn0fWTI=";
    let sha512 = json!({"password_hash": sha512, "hashing_algorithm": "rabbit_password_hashing_sha512", "tags": "management"});
    assert_eq!(h.put("/api/users/api-h5", sha512).await.status, 201);
    assert_eq!(h.get("/api/users/api-h5").await.body["hashing_algorithm"], "rabbit_password_hashing_sha512");
    assert_eq!(call(&h.app, "GET", "/api/whoami", Some(("api-h5", "pw512")), None).await.status, 200);
    let short =
        json!({"password_hash": hash, "hashing_algorithm": "rabbit_password_hashing_sha512", "tags": ""});
    assert_eq!(h.put("/api/users/api-h6", short).await.status, 400);
    assert_eq!(h.put("/api/users/api-bad", json!({"password_hash": "abc", "tags": ""})).await.status, 400);
    // A blank hash (or password) disables password login.
    assert_eq!(
        h.put("/api/users/api-nopw", json!({"password_hash": "", "tags": "management"})).await.status,
        201
    );
    assert_eq!(h.get("/api/users/api-nopw").await.body["password_hash"], "");
    assert_eq!(call(&h.app, "GET", "/api/whoami", Some(("api-nopw", "")), None).await.status, 401);
    h.send("PUT", "/api/users/api-x", "{bad").await.refused(400, "bad_request", "not_json");
    assert_eq!(h.send("PUT", "/api/users/api-x", "[1]").await.status, 400);
    assert_eq!(h.put("/api/users/api-x", json!({"password": "pw", "tags": 5})).await.status, 400);

    h.get("/api/users/api-none").await.refused(404, "Object Not Found", "Not Found");
    h.get("/api/users/api-none/permissions").await.refused(404, "Object Not Found", "Not Found");
    assert_eq!(h.get("/api/users/guest/permissions").await.body[0]["vhost"], "/");
    assert_eq!(h.get("/api/users/guest/topic-permissions").await.body, json!([]));
    assert_eq!(h.delete("/api/users/api-h5").await.status, 204);
    h.delete("/api/users/api-h5").await.refused(404, "Object Not Found", "Not Found");
    // Bulk delete: in order, stopping at the first unknown name (RabbitMQ's 400).
    let bulk = |b: &'static str| h.send("POST", "/api/users/bulk-delete", b);
    assert_eq!(bulk(r#"{"users":["api-h","api-nopw"]}"#).await.status, 204);
    bulk(r#"{"users":["api-missing","api-u"]}"#).await.refused(
        400,
        "bad_request",
        "no_such_user: api-missing",
    );
    assert_eq!(h.get("/api/users/api-u").await.status, 200);
    bulk("{}").await.refused(400, "bad_request", "[{key_missing,users}]");
}

#[tokio::test]
async fn lists_select_columns_sort_and_paginate() {
    let h = start().await;
    for n in ["api-b", "api-a", "api-c"] {
        assert_eq!(
            h.put(&format!("/api/users/{n}"), json!({"password": "pw", "tags": ""})).await.status,
            201
        );
        assert_eq!(h.put(&format!("/api/vhosts/{n}"), json!({})).await.status, 201);
    }
    let users = h.get("/api/users?columns=name&sort=name&sort_reverse=true").await.body;
    assert_eq!(users, json!([{"name": "guest"}, {"name": "api-c"}, {"name": "api-b"}, {"name": "api-a"}]));
    let page = h.get("/api/users?page=2&page_size=3&columns=name").await.body;
    assert_eq!(
        page,
        json!({"filtered_count": 4, "item_count": 1, "items": [{"name": "guest"}], "page": 2, "page_count": 2,
            "page_size": 3, "total_count": 4})
    );
    let filtered = h.get("/api/vhosts?page=1&name=API-&columns=name,metadata.description").await.body;
    assert_eq!(filtered["filtered_count"], 3);
    assert_eq!(filtered["items"][0], json!({"name": "api-a", "metadata": {"description": ""}}));
    let regex = h.get("/api/vhosts?page=1&name=%5Eapi-%5Bab%5D%24&use_regex=true&columns=name").await.body;
    assert_eq!(regex["items"], json!([{"name": "api-a"}, {"name": "api-b"}]));
    h.get("/api/vhosts?page=9&page_size=2").await.refused(
        400,
        "page_out_of_range",
        "Page out of range, page: 9 page size: 2, len: 4",
    );
    h.get("/api/users?page=1&page_size=1000").await.refused(
        400,
        "invalid_pagination_parameters",
        "Invalid pagination parameters: page number 1, page size 1000",
    );
    h.get("/api/users?page=x").await.refused(400, "bad_request", "Pagination parameters are invalid");
    // Trailing-slash variants list the same.
    for path in
        ["/api/users/", "/api/vhosts/", "/api/permissions/", "/api/policies/", "/api/topic-permissions/"]
    {
        assert_eq!(h.get(path).await.status, 200, "{path}");
    }
}

#[tokio::test]
async fn unknown_paths_and_methods() {
    let h = start().await;
    call(&h.app, "GET", "/api/nothing", None, None).await.refused(404, "Object Not Found", "Not Found");
    call(&h.app, "GET", "/elsewhere", None, None).await.refused(404, "Object Not Found", "Not Found");
    assert_eq!(h.send("POST", "/api/whoami", "").await.status, 405);
    assert_eq!(h.send("PATCH", "/api/users/guest", "").await.status, 405);
    // Every non-alphanumeric byte may come encoded (rabbitmq_http_client does so).
    assert_eq!(h.put("/api/users/api%2Denc", json!({"password": "pw", "tags": ""})).await.status, 201);
    assert_eq!(h.get("/api/users/api-enc").await.body["name"], "api-enc");
}

#[tokio::test]
async fn the_local_socket_trusts_requests_without_credentials() {
    let h = start().await;
    let socket = admin::router(state(&h.server)).layer(Extension(LocalSocket));
    let me = call(&socket, "GET", "/api/whoami", None, None).await;
    assert_eq!((me.status, &me.body["name"]), (200, &json!("rmq-internal")));
    // Explicit credentials are checked, as over HTTP (warrenctl authenticate_user).
    call(&socket, "GET", "/api/whoami", Some(("guest", "bad")), None).await.refused(
        401,
        "not_authorized",
        "Login failed",
    );
    assert_eq!(
        call(&socket, "GET", "/api/whoami", Some(("guest", "guest")), None).await.body["name"],
        "guest"
    );
    // Nobody acts: a new vhost grants no one anything.
    assert_eq!(call(&socket, "PUT", "/api/vhosts/api-s", None, Some("{}")).await.status, 201);
    assert_eq!(h.get("/api/vhosts/api-s/permissions").await.body, json!([]));
}

#[tokio::test]
async fn deleting_a_user_closes_its_connections() {
    let h = start().await;
    h.user("api-conn", "").await;
    let mut raw = common::Raw::connect(h.server.local_addr).await;
    raw.handshake("api-conn", "pw", 0, 0).await;
    assert_eq!(h.delete("/api/users/api-conn").await.status, 204);
    let (code, text, _, _) = raw.expect_connection_close().await;
    assert_eq!((code, text.as_str()), (320, "CONNECTION_FORCED - user 'api-conn' is deleted"));
    // A changed password closes them too (Warren's choice; RabbitMQ keeps them).
    h.user("api-conn2", "").await;
    let mut raw = common::Raw::connect(h.server.local_addr).await;
    raw.handshake("api-conn2", "pw", 0, 0).await;
    assert_eq!(h.put("/api/users/api-conn2", json!({"password": "pw2", "tags": ""})).await.status, 204);
    let (code, text, _, _) = raw.expect_connection_close().await;
    assert_eq!((code, text.as_str()), (320, "CONNECTION_FORCED - user 'api-conn2' password changed"));
}
