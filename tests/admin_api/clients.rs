//! The admin API over real sockets, driven by the clients people use:
//! rabbitmq_http_client (what rabbitmqadmin v2 is built on; a response it
//! cannot parse is a bug in our shape), rabbitmqadmin v1 (Debian's script,
//! run as a process), and warrenctl's unix socket.

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::Command;

use rabbitmq_http_client::blocking_api::Client;
use rabbitmq_http_client::commons::{PaginationParams, PolicyTarget, QueueType, VirtualHostLimitTarget};
use rabbitmq_http_client::password_hashing;
use rabbitmq_http_client::requests::{
    EnforcedLimitParams, Permissions, PolicyParams, TopicPermissions, UserParams, VirtualHostParamsBuilder,
};
use serde_json::{json, Map, Value};
use tokio::net::TcpListener;
use tokio::sync::watch;
use warren::admin;

use super::{start, state, Harness};

/// Serves `h`'s API on 127.0.0.1:0; dropping the sender stops it.
pub(super) async fn serve(h: &Harness) -> (SocketAddr, watch::Sender<bool>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = watch::channel(false);
    tokio::spawn(admin::serve_admin(listener, state(&h.server), stopped));
    (addr, stop)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rabbitmq_http_client_parses_every_answer() {
    let h = start().await;
    let (addr, _stop) = serve(&h).await;
    tokio::task::spawn_blocking(move || oracle(addr)).await.unwrap();
}

fn oracle(addr: SocketAddr) {
    let c = Client::new(format!("http://{addr}/api"), "guest", "guest");
    assert_eq!(c.current_user().unwrap().name, "guest");
    let salt = password_hashing::salt();
    let hash = password_hashing::base64_encoded_salted_password_hash_sha256(&salt, "pw");
    c.create_user(&UserParams::new("api-o", &hash, "management,policymaker")).unwrap();
    let u = c.get_user("api-o").unwrap();
    assert_eq!(u.tags.0, ["management", "policymaker"]);
    assert!(c.list_users().unwrap().iter().any(|u| u.name == "api-o"));
    assert_eq!(c.list_users_paged(&PaginationParams::new(1, 1)).unwrap().len(), 1);
    let who = Client::new(format!("http://{addr}/api"), "api-o", "pw").current_user().unwrap();
    assert_eq!(who.name, "api-o");

    let vh = VirtualHostParamsBuilder::new("api-ovh")
        .description("oracle")
        .tags(vec!["a", "b"])
        .default_queue_type(QueueType::Quorum)
        .build();
    c.create_vhost(&vh).unwrap();
    let v = c.get_vhost("api-ovh").unwrap();
    assert_eq!((v.description.as_deref(), v.default_queue_type.as_deref()), (Some("oracle"), Some("quorum")));
    assert_eq!(c.list_vhosts().unwrap().len(), 2);
    assert_eq!(c.list_vhosts_paged(&PaginationParams::new(1, 10)).unwrap().len(), 2);

    let perms = Permissions { user: "api-o", vhost: "api-ovh", configure: ".*", read: ".*", write: "^x" };
    c.declare_permissions(&perms).unwrap();
    assert_eq!(c.list_permissions_in("api-ovh").unwrap().len(), 2); // guest's from creating it
    assert_eq!(c.list_permissions_of("api-o").unwrap()[0].write, "^x");
    assert!(c.list_permissions().unwrap().len() >= 3);
    let topic =
        TopicPermissions { user: "api-o", vhost: "api-ovh", exchange: "amq.topic", write: "^a", read: ".*" };
    c.declare_topic_permissions(&topic).unwrap();
    assert_eq!(c.list_topic_permissions().unwrap()[0].exchange, "amq.topic");
    assert_eq!(c.list_topic_permissions_of("api-o").unwrap().len(), 1);

    let mut definition = Map::new();
    definition.insert("max-length".into(), json!(10));
    let policy = PolicyParams::new("api-ovh", "api-op", "^q", definition.clone())
        .apply_to(PolicyTarget::Queues)
        .priority(2);
    c.declare_policy(&policy).unwrap();
    assert_eq!(c.get_policy("api-ovh", "api-op").unwrap().priority, 2);
    assert_eq!(c.list_policies().unwrap().len(), 1);
    assert_eq!(c.list_policies_in("api-ovh").unwrap()[0].apply_to, PolicyTarget::Queues);
    c.declare_operator_policy(&PolicyParams::new("api-ovh", "api-oop", "^q", definition)).unwrap();
    assert_eq!(c.list_operator_policies().unwrap()[0].name, "api-oop");

    c.set_vhost_limit("api-ovh", EnforcedLimitParams::new(VirtualHostLimitTarget::MaxQueues, 7)).unwrap();
    assert_eq!(c.list_all_vhost_limits().unwrap()[0].limits.get("max-queues"), Some(&json!(7)));
    assert_eq!(c.list_vhost_limits("api-ovh").unwrap().len(), 1);
    c.clear_vhost_limit("api-ovh", VirtualHostLimitTarget::MaxQueues).unwrap();

    let defs = c.export_cluster_wide_definitions_as_data().unwrap();
    assert!(defs.users.iter().any(|u| u.name == "api-o"));
    assert!(defs.policies.iter().any(|p| p.name == "api-op"));
    let text = c.export_cluster_wide_definitions().unwrap();
    c.import_definitions(serde_json::from_str::<Value>(&text).unwrap()).unwrap();
    c.export_vhost_definitions("api-ovh").unwrap();

    c.delete_policy("api-ovh", "api-op", false).unwrap();
    c.delete_policy("api-ovh", "api-op", true).unwrap();
    c.clear_permissions("api-ovh", "api-o", false).unwrap();
    c.delete_users(vec!["api-o"]).unwrap();
    assert!(c.get_user("api-o").unwrap_err().is_not_found());
    c.delete_user("api-o", true).unwrap();
    c.delete_vhost("api-ovh", false).unwrap();
    assert!(c.get_vhost("api-ovh").unwrap_err().is_not_found());
}

/// rabbitmqadmin v1: `$RABBITMQADMIN` (interop/test-all.sh unpacks it from
/// Debian's rabbitmq-server package), else the installed one.
fn v1_path() -> String {
    std::env::var("RABBITMQADMIN").unwrap_or_else(|_| "/usr/bin/rabbitmqadmin".to_owned())
}

fn v1(port: u16, args: &[&str]) -> String {
    let port = port.to_string();
    let mut all = vec!["-H", "127.0.0.1", "-P", &port, "-u", "guest", "-p", "guest"];
    all.extend_from_slice(args);
    let out = Command::new("python3").arg(v1_path()).args(&all).output().expect("python3 runs");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "rabbitmqadmin {args:?}: {text}{}", String::from_utf8_lossy(&out.stderr));
    text
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rabbitmqadmin_v1_commands_work_unchanged() {
    let has_python = Command::new("python3").arg("--version").output().is_ok_and(|o| o.status.success());
    if !std::path::Path::new(&v1_path()).exists() || !has_python {
        eprintln!("skipped: {} or python3 is missing", v1_path());
        return;
    }
    let h = start().await;
    let (addr, _stop) = serve(&h).await;
    let file =
        std::env::temp_dir().join(format!("warren-v1-{}-{}.json", std::process::id(), fastrand::u64(..)));
    tokio::task::spawn_blocking(move || {
        let p = addr.port();
        v1(p, &["declare", "user", "name=api-v1u", "password=pw", "tags=management"]);
        v1(p, &["declare", "vhost", "name=api-v1vh"]);
        v1(
            p,
            &[
                "declare",
                "permission",
                "vhost=api-v1vh",
                "user=api-v1u",
                "configure=.*",
                "write=.*",
                "read=.*",
            ],
        );
        let policy =
            ["name=api-v1p", "pattern=^x", r#"definition={"max-length":1}"#, "priority=3", "apply-to=queues"];
        v1(p, &[&["-V", "api-v1vh", "declare", "policy"], &policy[..]].concat());
        v1(
            p,
            &[
                "-V",
                "api-v1vh",
                "declare",
                "operator_policy",
                "name=api-v1op",
                "pattern=^x",
                r#"definition={"max-length":2}"#,
            ],
        );
        v1(p, &["declare", "vhost_limit", "vhost=api-v1vh", "name=max-queues", "value=10"]);
        assert!(v1(p, &["list", "users"]).contains("api-v1u"));
        let vhosts = v1(p, &["list", "vhosts"]);
        assert!(vhosts.contains("api-v1vh") && vhosts.contains("messages"), "{vhosts}");
        assert!(v1(p, &["list", "permissions"]).contains("api-v1u"));
        assert!(v1(p, &["list", "policies"]).contains("api-v1p"));
        assert!(v1(p, &["list", "operator_policies"]).contains("api-v1op"));
        assert!(v1(p, &["list", "vhost_limits"]).contains("max-queues"));
        let json: Value = serde_json::from_str(&v1(p, &["-f", "raw_json", "list", "users"])).unwrap();
        assert!(json.as_array().unwrap().iter().any(|u| u["name"] == "api-v1u"));
        let path = file.to_str().unwrap();
        v1(p, &["export", path]);
        let exported: Value = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
        assert!(exported["users"].as_array().unwrap().iter().any(|u| u["name"] == "api-v1u"));
        v1(p, &["-V", "api-v1vh", "export", path]);
        v1(p, &["-V", "api-v1vh", "import", path]);
        v1(p, &["-V", "api-v1vh", "delete", "policy", "name=api-v1p"]);
        v1(p, &["-V", "api-v1vh", "delete", "operator_policy", "name=api-v1op"]);
        v1(p, &["delete", "vhost_limit", "vhost=api-v1vh", "name=max-queues"]);
        v1(p, &["delete", "permission", "vhost=api-v1vh", "user=api-v1u"]);
        v1(p, &["delete", "user", "name=api-v1u"]);
        v1(p, &["export", path]);
        v1(p, &["delete", "vhost", "name=api-v1vh"]);
        v1(p, &["import", path]); // brings the vhost back
        assert!(v1(p, &["list", "vhosts"]).contains("api-v1vh"));
        let _ = std::fs::remove_file(&file);
    })
    .await
    .unwrap();
}

/// One request over a unix socket, the answer as text.
fn over_socket(path: &std::path::Path, request: &str) -> String {
    let mut s = std::os::unix::net::UnixStream::connect(path).unwrap();
    s.write_all(request.as_bytes()).unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out
}

/// A peer of another user is not served, even if it can open the socket
/// file (as in a permission race): checked as root, with curl run as
/// nobody; curl run as the broker's user is served.
async fn refuses_other_users(path: &Path) {
    let curl = Path::new("/usr/bin/curl");
    if unsafe { libc::geteuid() } != 0 || !curl.exists() {
        eprintln!("note: not root or no /usr/bin/curl, skipping the check of other users' connections");
        return;
    }
    let dir = path.parent().unwrap();
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o666)).unwrap();
    let socket = path.to_path_buf();
    let (own, other) = tokio::task::spawn_blocking(move || {
        let run = |uid: Option<u32>| {
            let mut command = Command::new(curl);
            command.args(["-sS", "--max-time", "10", "--unix-socket"]).arg(&socket);
            command.arg("http://localhost/api/whoami");
            if let Some(uid) = uid {
                command.uid(uid).gid(uid);
            }
            command.output().unwrap()
        };
        (run(None), run(Some(65534)))
    })
    .await
    .unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
    let text = |out: &std::process::Output| String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(own.status.success() && text(&own).contains("rmq-internal"), "{own:?}");
    assert!(!other.status.success() && !text(&other).contains("rmq-internal"), "{other:?}");
}

/// A path of 107 bytes (the most sun_path holds) binds, as the staging
/// name is shorter; one of 108 is refused, naming it. Inside a runtime.
fn long_paths(dir: &Path) {
    let base = dir.join("s").as_os_str().len() - 1;
    let fits = dir.join("s".repeat(107 - base));
    assert_eq!(fits.as_os_str().len(), 107);
    let listener = admin::bind_socket(&fits).unwrap();
    assert_eq!(std::fs::metadata(&fits).unwrap().permissions().mode() & 0o777, 0o600);
    drop(listener);
    std::fs::remove_file(&fits).unwrap();
    let long = dir.join("l".repeat(108 - base));
    let err = admin::bind_socket(&long).unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
    let text = err.to_string();
    assert!(text.contains(&long.display().to_string()) && text.contains("too long"), "{text}");
    assert!(!long.exists());
}

/// This process's umask, read without changing it.
fn umask() -> String {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status.lines().find_map(|l| l.strip_prefix("Umask:")).unwrap().trim().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_control_socket_is_private_and_replaces_a_stale_one() {
    let h = start().await;
    let dir = std::env::temp_dir().join(format!("warren-sock-{}-{}", std::process::id(), fastrand::u64(..)));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("warren.sock");
    // A socket file nobody listens on any more.
    drop(std::os::unix::net::UnixListener::bind(&path).unwrap());
    let umask_before = umask();
    let listener = admin::bind_socket(&path).unwrap();
    assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
    assert_eq!(umask(), umask_before, "the umask is restored");
    let left: Vec<_> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(left, ["warren.sock"], "no staging file is left behind");
    assert!(admin::bind_socket(&path).is_err(), "a live socket is not replaced");
    let regular = dir.join("file");
    std::fs::write(&regular, "x").unwrap();
    assert!(admin::bind_socket(&regular).is_err(), "a file that is not a socket is left alone");
    let (stop, stopped) = watch::channel(false);
    let served = tokio::spawn(admin::serve_socket(listener, state(&h.server), stopped));
    let p = path.clone();
    let answer = tokio::task::spawn_blocking(move || {
        over_socket(&p, "GET /api/whoami HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
    })
    .await
    .unwrap();
    assert!(answer.starts_with("HTTP/1.1 200") && answer.contains(r#""name":"rmq-internal""#), "{answer}");
    refuses_other_users(&path).await;
    long_paths(&dir);
    stop.send(true).unwrap();
    served.await.unwrap().unwrap();
    let _ = std::fs::remove_dir_all(&dir);
}
