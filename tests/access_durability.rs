//! Users, vhosts, permissions, topic permissions, vhost limits and policies
//! survive a clean restart and a `kill -9` of a real `warren` process; they
//! are made with `warrenctl` over the broker's control socket.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use lapin::{Connection, ConnectionProperties};

struct Warren {
    child: Option<Child>,
    port: u16,
    dir: PathBuf,
}

impl Warren {
    fn new() -> Warren {
        let dir =
            std::env::temp_dir().join(format!("warren-acl-{}-{}", std::process::id(), fastrand::u64(..)));
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        Warren { child: None, port, dir }
    }

    fn socket(&self) -> PathBuf {
        self.dir.join("warrenctl.sock")
    }

    async fn start(&mut self) {
        let child = Command::new(env!("CARGO_BIN_EXE_warren"))
            .args(["--listen", &format!("127.0.0.1:{}", self.port), "--log-level", "warn"])
            .args(["--admin-listen", "127.0.0.1:0", "--metrics-listen", "127.0.0.1:0", "--data-dir"])
            .arg(&self.dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("warren starts");
        self.child = Some(child);
        for _ in 0..400 {
            if tokio::net::TcpStream::connect(("127.0.0.1", self.port)).await.is_ok()
                && self.socket().exists()
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("warren did not start");
    }

    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            Command::new("kill").args(["-INT", &child.id().to_string()]).status().unwrap();
            assert!(child.wait().unwrap().success());
        }
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().unwrap();
            let _ = child.wait();
        }
    }

    /// Runs warrenctl over the control socket; returns stdout, asserting success.
    fn ctl(&self, args: &[&str]) -> String {
        let out = Command::new(env!("CARGO_BIN_EXE_warrenctl"))
            .arg("--socket")
            .arg(self.socket())
            .args(args)
            .output()
            .expect("warrenctl runs");
        assert!(out.status.success(), "warrenctl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap()
    }

    fn json(&self, args: &[&str]) -> serde_json::Value {
        let mut all = args.to_vec();
        all.extend(["--format", "json"]);
        serde_json::from_str(&self.ctl(&all)).expect("JSON output")
    }

    async fn login(&self, user: &str, pw: &str, vhost: &str) -> lapin::Result<Connection> {
        let url = format!("amqp://{user}:{pw}@127.0.0.1:{}/{}", self.port, vhost.replace('/', "%2f"));
        Connection::connect(&url, ConnectionProperties::default()).await
    }
}

impl Drop for Warren {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn names(v: &serde_json::Value, key: &str) -> Vec<String> {
    let mut n: Vec<_> = v.as_array().unwrap().iter().map(|x| x[key].as_str().unwrap().to_owned()).collect();
    n.sort();
    n
}

#[tokio::test]
async fn access_state_survives_restarts_and_kill_9() {
    let mut w = Warren::new();
    w.start().await;
    w.ctl(&["add_user", "app", "app-pw"]);
    w.ctl(&["set_user_tags", "app", "monitoring"]);
    w.ctl(&["add_vhost", "prod"]);
    w.ctl(&["set_permissions", "-p", "prod", "app", "^app-.*", "^app-.*", "^app-.*"]);
    w.ctl(&["set_topic_permissions", "-p", "prod", "app", "amq.topic", "^a\\.", ".*"]);
    w.ctl(&["set_vhost_limits", "-p", "prod", r#"{"max-queues": 7}"#]);
    w.ctl(&["set_policy", "-p", "prod", "--priority", "3", "lim", "^app-", r#"{"max-length": 5}"#]);
    w.ctl(&["set_operator_policy", "-p", "prod", "op", ".*", r#"{"message-ttl": 60000}"#]);
    w.ctl(&["add_user", "gone", "pw"]);
    w.ctl(&["delete_user", "gone"]);
    w.ctl(&["add_vhost", "temp"]);
    w.ctl(&["delete_vhost", "temp"]);
    let before = (
        w.json(&["list_users"]),
        w.json(&["list_permissions", "-p", "prod"]),
        w.json(&["list_policies", "-p", "prod"]),
        w.json(&["list_operator_policies", "-p", "prod"]),
        w.json(&["list_topic_permissions", "-p", "prod"]),
    );
    assert_eq!(names(&before.0, "name"), ["app", "guest"]);

    for round in 0..2 {
        if round == 0 {
            w.stop();
        } else {
            w.kill();
        }
        w.start().await;
        let after = (
            w.json(&["list_users"]),
            w.json(&["list_permissions", "-p", "prod"]),
            w.json(&["list_policies", "-p", "prod"]),
            w.json(&["list_operator_policies", "-p", "prod"]),
            w.json(&["list_topic_permissions", "-p", "prod"]),
        );
        assert_eq!(after, before, "round {round}");
        assert_eq!(names(&w.json(&["list_vhosts"]), "name"), ["/", "prod"]);
        assert!(w.ctl(&["list_vhost_limits", "-p", "prod"]).contains("max-queues"));
        // The user logs in where it may, with its password, and nowhere else.
        let conn = w.login("app", "app-pw", "prod").await.expect("app logs in to prod");
        assert!(w.login("app", "app-pw", "/").await.is_err(), "no permission on /");
        assert!(w.login("gone", "pw", "/").await.is_err(), "a deleted user stays deleted");
        assert!(w.login("app", "app-pw", "temp").await.is_err(), "a deleted vhost stays deleted");
        let ch = conn.create_channel().await.unwrap();
        let denied =
            ch.queue_declare("other".into(), Default::default(), Default::default()).await.unwrap_err();
        assert!(denied
            .to_string()
            .contains("access to queue 'other' in vhost 'prod' refused for user 'app'"));
        let _ = conn.close(200, "bye".into()).await;
    }
}

#[tokio::test]
async fn a_broker_whose_defaults_were_removed_never_gets_them_back() {
    let mut w = Warren::new();
    w.start().await;
    assert!(w.login("guest", "guest", "/").await.is_ok(), "a new data directory has guest on /");
    w.ctl(&["add_user", "admin", "admin-pw"]);
    w.ctl(&["delete_user", "guest"]);
    w.ctl(&["delete_vhost", "/"]);
    w.stop();
    w.start().await;
    assert_eq!(names(&w.json(&["list_users"]), "name"), ["admin"], "guest/guest is not made again");
    assert!(w.json(&["list_vhosts"]).as_array().unwrap().is_empty(), "nor is /");
    assert!(w.login("guest", "guest", "/").await.is_err());
}

/// What a crash in the middle of deleting a vhost leaves (its queue's record
/// and messages, no vhost record) is deleted at the next start.
#[tokio::test]
async fn leftovers_of_a_deleted_vhost_are_removed_at_start() {
    use warren::store::{memory::MemoryStore, Op, QueueRecord, Store};
    let store = std::sync::Arc::new(MemoryStore::default());
    let mark = |space: &str, key: &str| Op::PutControl {
        space: space.into(),
        key: key.into(),
        value: b"{}".to_vec(),
    };
    let ghost = QueueRecord {
        vhost: "ghost".into(),
        name: "q".into(),
        id: 7,
        auto_delete: false,
        arguments: Default::default(),
    };
    store
        .write(&[mark("broker", "initialised"), mark("vhost", "/"), Op::PutQueue(ghost.into())], true)
        .unwrap();
    let mut config = warren::config::Config::default();
    config.metrics.listen = None;
    config.amqp.listen = "127.0.0.1:0".parse().unwrap();
    config.admin.listen = None;
    config.admin.socket = Some(PathBuf::new());
    let server = warren::server::Server::start_with_store(config, store.clone()).await.unwrap();
    assert!(server.broker.vhost("ghost").is_none());
    server.stop().await;
    assert!(store.load().unwrap().queues.is_empty(), "the leftover queue record is gone");
}

/// A data directory of a Warren from before vhosts were kept (topology in
/// `/`, no control records) keeps `/` and its queues, even when the same
/// start loads a definitions file for the first time.
#[tokio::test]
async fn a_data_directory_from_before_keeps_its_queues_when_definitions_arrive() {
    use warren::store::{memory::MemoryStore, Op, QueueRecord, Store};
    let store = std::sync::Arc::new(MemoryStore::default());
    let q = QueueRecord {
        vhost: "/".into(),
        name: "old-q".into(),
        id: 3,
        auto_delete: false,
        arguments: Default::default(),
    };
    store.write(&[Op::PutQueue(q.into())], true).unwrap();
    let defs = std::env::temp_dir().join(format!("warren-legacy-defs-{}.json", std::process::id()));
    std::fs::write(
        &defs,
        r#"{"users":[{"name":"app","password":"app-pw","tags":[]}],"vhosts":[{"name":"other"}]}"#,
    )
    .unwrap();
    let mut config = warren::config::Config::default();
    config.metrics.listen = None;
    config.amqp.listen = "127.0.0.1:0".parse().unwrap();
    config.admin.listen = None;
    config.admin.socket = Some(PathBuf::new());
    config.access.definitions = Some(defs.clone());
    let server = warren::server::Server::start_with_store(config, store.clone()).await.unwrap();
    std::fs::remove_file(&defs).unwrap();
    assert!(server.broker.vhost("/").and_then(|v| v.queue("old-q")).is_some(), "/ and its queue kept");
    assert!(server.broker.vhost("other").is_some());
    server.stop().await;
    assert_eq!(store.load().unwrap().queues.len(), 1);
}

/// A cluster name set through the API is kept across a restart (it names
/// the cluster in Prometheus' `identity_info` and the Grafana dashboards).
#[tokio::test]
async fn the_cluster_name_survives_a_restart() {
    let store = std::sync::Arc::new(warren::store::memory::MemoryStore::default());
    let config = || {
        let mut config = warren::config::Config::default();
        config.metrics.listen = None;
        config.amqp.listen = "127.0.0.1:0".parse().unwrap();
        config.admin.listen = None;
        config.admin.socket = Some(PathBuf::new());
        config
    };
    let server = warren::server::Server::start_with_store(config(), store.clone()).await.unwrap();
    assert_eq!(server.broker.cluster_name(), None);
    assert!(server.broker.set_cluster_name("prod-eu"));
    server.stop().await;
    let server = warren::server::Server::start_with_store(config(), store).await.unwrap();
    assert_eq!(server.broker.cluster_name().as_deref(), Some("prod-eu"));
    server.stop().await;
}
