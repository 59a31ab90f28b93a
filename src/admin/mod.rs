//! The HTTP admin API, in the shape of RabbitMQ's management API (paths
//! under `/api`, JSON bodies, status codes and error texts as RabbitMQ's),
//! served on a TCP port with Basic auth and on warrenctl's local unix
//! socket. One handler file per resource; `error` renders every refusal;
//! `auth` decides who may do what. Handlers are plain axum handlers over
//! `AdminState`, so tests drive `router()` without a network. May use
//! `broker`, `access`.

mod auth;
mod bindings;
mod cert_expiry;
mod channels;
mod connections;
pub mod definitions;
mod definitions_http;
mod error;
mod exchanges;
mod health;
mod input;
mod limits;
mod listing;
mod messages;
mod move_messages;
pub mod node;
mod overview;
mod permissions;
mod policies;
mod queue_item;
mod queues;
mod session;
mod topology;
mod ui;
mod user_limits;
mod users;
mod vhosts;

use std::io;
use std::net::SocketAddr;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::Path;
use std::sync::Arc;

use axum::extract::DefaultBodyLimit;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::serve::Listener;
use axum::{middleware, Extension, Json, Router};
use serde_json::Value;
use tokio::net::{TcpListener, UnixListener, UnixStream};
use tokio::sync::watch;
use tracing::warn;

use crate::access::Access;
use crate::broker::policy::Kind;
use crate::broker::Broker;
pub use auth::{Caller, LocalSocket};
pub use error::{ApiError, REALM};
pub use node::{node_name, NodeFacts};

/// Request bodies beyond this are refused (413), except definitions.
pub const BODY_LIMIT: usize = 1 << 20;
/// A definitions document may be this big.
pub const DEFINITIONS_LIMIT: usize = 64 << 20;

/// What the handlers work on.
#[derive(Debug, Clone)]
pub struct AdminState {
    pub broker: Arc<Broker>,
    pub access: Arc<Access>,
    /// The node's listeners and names.
    pub node: Arc<NodeFacts>,
    /// The dashboard's logins.
    pub sessions: Arc<session::Sessions>,
}

impl AdminState {
    pub fn new(broker: Arc<Broker>, access: Arc<Access>) -> AdminState {
        AdminState { broker, access, node: Arc::default(), sessions: Arc::default() }
    }

    /// The same, with the server's facts about the node.
    pub fn with_node(mut self, node: Arc<NodeFacts>) -> AdminState {
        self.node = node;
        self
    }
}

/// Every route of the API, authenticated. Unknown paths are 404, known
/// paths with another method 405.
pub fn router(state: AdminState) -> Router {
    let big = || DefaultBodyLimit::max(DEFINITIONS_LIMIT);
    let definitions = get(definitions_http::export).post(definitions_http::import).layer(big());
    let definitions_of =
        get(definitions_http::export_vhost).post(definitions_http::import_vhost).layer(big());
    let api = Router::new()
        .route("/api/whoami", get(users::whoami))
        .route("/api/users", get(users::list))
        .route("/api/users/", get(users::list))
        .route("/api/users/bulk-delete", post(users::bulk_delete))
        .route("/api/users/{user}", get(users::show).put(users::put).delete(users::delete))
        .route("/api/users/{user}/permissions", get(permissions::of_user))
        .route("/api/users/{user}/topic-permissions", get(permissions::topic_of_user))
        .route("/api/vhosts", get(vhosts::list))
        .route("/api/vhosts/", get(vhosts::list))
        .route("/api/vhosts/{vhost}", get(vhosts::show).put(vhosts::put).delete(vhosts::delete))
        .route("/api/vhosts/{vhost}/permissions", get(permissions::in_vhost))
        .route("/api/vhosts/{vhost}/topic-permissions", get(permissions::topic_in_vhost))
        .route("/api/permissions", get(permissions::list))
        .route("/api/permissions/", get(permissions::list))
        .route(
            "/api/permissions/{vhost}/{user}",
            get(permissions::show).put(permissions::put).delete(permissions::delete),
        )
        .route("/api/topic-permissions", get(permissions::topic_list))
        .route("/api/topic-permissions/", get(permissions::topic_list))
        .route(
            "/api/topic-permissions/{vhost}/{user}",
            get(permissions::topic_show).put(permissions::topic_put).delete(permissions::topic_delete),
        )
        .route(
            "/api/topic-permissions/{vhost}/{user}/{exchange}",
            get(permissions::topic_show_one).delete(permissions::topic_delete_one),
        )
        .merge(policy_routes("/api/policies", Kind::User))
        .merge(policy_routes("/api/operator-policies", Kind::Operator))
        .route("/api/vhost-limits", get(limits::list))
        .route("/api/vhost-limits/", get(limits::list))
        .route("/api/vhost-limits/{vhost}", get(limits::show))
        .route("/api/vhost-limits/{vhost}/{name}", put(limits::put).delete(limits::delete))
        .route("/api/user-limits", get(user_limits::list))
        .route("/api/user-limits/", get(user_limits::list))
        .route("/api/user-limits/{user}", get(user_limits::show))
        .route("/api/user-limits/{user}/{name}", put(user_limits::put).delete(user_limits::delete))
        .route("/api/definitions", definitions.clone())
        .route("/api/definitions/", definitions)
        .route("/api/definitions/{vhost}", definitions_of)
        .merge(overview::routes())
        .merge(queues::routes())
        .merge(exchanges::routes())
        .merge(bindings::routes())
        .merge(connections::routes())
        .merge(channels::routes())
        .merge(health::routes())
        .route_layer(middleware::from_fn_with_state(state.clone(), auth::authenticate))
        .merge(ui::routes())
        .layer(DefaultBodyLimit::max(BODY_LIMIT));
    api.fallback(not_found).with_state(state)
}

fn policy_routes(base: &str, kind: Kind) -> Router<AdminState> {
    Router::new()
        .route(base, get(policies::list))
        .route(&format!("{base}/"), get(policies::list))
        .route(&format!("{base}/{{vhost}}"), get(policies::list_in))
        .route(
            &format!("{base}/{{vhost}}/{{name}}"),
            get(policies::show).put(policies::put).delete(policies::delete),
        )
        .layer(Extension(kind))
}

async fn not_found() -> ApiError {
    ApiError::NotFound
}

/// Serves the API on a TCP listener until `shutdown` turns true.
pub async fn serve_admin(
    listener: TcpListener,
    state: AdminState,
    mut shutdown: watch::Receiver<bool>,
) -> io::Result<()> {
    let app = router(state).into_make_service_with_connect_info::<SocketAddr>();
    axum::serve(listener, app)
        .with_graceful_shutdown(async move {
            let _ = shutdown.wait_for(|stop| *stop).await;
        })
        .await
}

/// Serves the API on warrenctl's unix socket until `shutdown` turns true.
/// A request there without credentials is the broker's own administrator,
/// so only this broker's user (or root) is served at all: `bind_socket`
/// makes the file 0600 and `OwnUserOnly` closes connections of anyone
/// else. A request with an `Authorization` header is checked like HTTP.
pub async fn serve_socket(
    listener: UnixListener,
    state: AdminState,
    mut shutdown: watch::Receiver<bool>,
) -> io::Result<()> {
    let app = router(state).layer(Extension(LocalSocket));
    axum::serve(OwnUserOnly::new(listener), app)
        .with_graceful_shutdown(async move {
            let _ = shutdown.wait_for(|stop| *stop).await;
        })
        .await
}

/// The control socket's listener: accepts only peers running as the
/// broker's effective user or as root; any other connection is closed at
/// accept, before a byte of it is read.
#[derive(Debug)]
struct OwnUserOnly {
    listener: UnixListener,
    euid: u32,
}

impl OwnUserOnly {
    fn new(listener: UnixListener) -> OwnUserOnly {
        // SAFETY: geteuid has no preconditions and cannot fail.
        let euid = unsafe { libc::geteuid() };
        OwnUserOnly { listener, euid }
    }
}

/// Whether a peer running as `uid` may use the socket of a broker running
/// as `euid`.
fn peer_admitted(uid: u32, euid: u32) -> bool {
    uid == euid || uid == 0
}

impl Listener for OwnUserOnly {
    type Io = UnixStream;
    type Addr = tokio::net::unix::SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            // UnixListener's own Listener::accept retries and logs failures.
            let (stream, addr) = Listener::accept(&mut self.listener).await;
            match stream.peer_cred() {
                Ok(cred) if peer_admitted(cred.uid(), self.euid) => return (stream, addr),
                Ok(cred) => warn!(
                    uid = cred.uid(),
                    broker_uid = self.euid,
                    "control socket: closed a connection from another user"
                ),
                Err(e) => warn!("control socket: closed a connection whose peer is unknown: {e}"),
            }
            // Dropping `stream` closes the connection.
        }
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        self.listener.local_addr()
    }
}

/// The longest path a unix socket can be bound at, in bytes (`sun_path`
/// less its terminating NUL: 107 on Linux).
fn socket_path_max() -> usize {
    // SAFETY: sockaddr_un is plain integers and arrays; all zeroes is valid.
    let addr: libc::sockaddr_un = unsafe { std::mem::zeroed() };
    addr.sun_path.len() - 1
}

/// Binds a unix socket at `path` with umask 077, so the file is never
/// accessible to anyone else, not even for the moment before a chmod.
fn bind_private(path: &Path) -> io::Result<UnixListener> {
    // The umask is process-wide: a file another thread creates while it is
    // set is made private too (tighter, never looser), and this runs once
    // at start-up, before the broker serves anything.
    // SAFETY: umask only swaps the process's file-creation mask.
    let old = unsafe { libc::umask(0o077) };
    let bound = UnixListener::bind(path);
    // SAFETY: as above; this restores the mask found.
    unsafe { libc::umask(old) };
    bound
}

/// Binds the control socket at `path`, readable and writable by this
/// user only. A socket file left by a broker that is gone is replaced; a
/// live one (something answers) or a file that is not a socket is an error,
/// as is a path too long for a unix socket.
/// Must run inside a tokio runtime.
pub fn bind_socket(path: &Path) -> io::Result<UnixListener> {
    let max = socket_path_max();
    let too_long = |detail: String| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "the control socket path {} is too long: {detail}; unix socket paths are limited \
                 to {max} bytes (use a shorter data directory or socket path)",
                path.display()
            ),
        )
    };
    let len = path.as_os_str().len();
    if len > max {
        return Err(too_long(format!("it has {len} bytes")));
    }
    // Bound under a private name in the same directory, made 0600, then
    // moved into place: the socket is never reachable at `path` with looser
    // permissions. The name is short so that it fits wherever `path` does
    // (unless the file name is shorter than it).
    let staging = path.with_file_name(format!(".{}.s", std::process::id()));
    let staging_len = staging.as_os_str().len();
    if staging_len > max {
        return Err(too_long(format!(
            "binding it needs the temporary name {} of {staging_len} bytes",
            staging.display()
        )));
    }
    match std::fs::symlink_metadata(path) {
        Ok(meta) if !meta.file_type().is_socket() => {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!("{} exists and is not a socket", path.display()),
            ))
        }
        Ok(_) if std::os::unix::net::UnixStream::connect(path).is_ok() => {
            return Err(io::Error::new(
                io::ErrorKind::AddrInUse,
                format!("{} is in use by a running broker", path.display()),
            ))
        }
        Ok(_) => std::fs::remove_file(path)?,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    let _ = std::fs::remove_file(&staging);
    let listener = bind_private(&staging)?;
    let placed = std::fs::set_permissions(&staging, std::fs::Permissions::from_mode(0o600))
        .and_then(|()| std::fs::rename(&staging, path));
    if let Err(e) = placed {
        let _ = std::fs::remove_file(&staging);
        return Err(e);
    }
    Ok(listener)
}

/// 200 with a JSON body.
fn json(value: Value) -> Response {
    Json(value).into_response()
}

/// RabbitMQ's answer to a PUT: 201 if it made something, else 204.
fn put_answer(created: bool) -> Response {
    if created {
        StatusCode::CREATED.into_response()
    } else {
        StatusCode::NO_CONTENT.into_response()
    }
}

fn no_content() -> Response {
    StatusCode::NO_CONTENT.into_response()
}

/// Runs a change off the async workers: changes wait for the store's fsync.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> error::Result<T> + Send + 'static,
) -> error::Result<T> {
    tokio::task::spawn_blocking(f).await.map_err(|e| ApiError::Internal(format!("the change failed: {e}")))?
}

/// Serialises read-modify-write changes of a vhost's settings (its
/// description and its limits are set by different requests).
fn meta_lock() -> parking_lot::MutexGuard<'static, ()> {
    static LOCK: parking_lot::Mutex<()> = parking_lot::Mutex::new(());
    LOCK.lock()
}

/// The store could not take a change.
fn store_failed(e: impl std::fmt::Display) -> ApiError {
    ApiError::Internal(e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_brokers_user_and_root_are_admitted() {
        assert!(peer_admitted(1000, 1000));
        assert!(peer_admitted(0, 1000));
        assert!(peer_admitted(0, 0));
        assert!(!peer_admitted(1001, 1000));
        assert!(!peer_admitted(1000, 0));
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn the_socket_path_limit_is_sun_path_less_its_nul() {
        assert_eq!(socket_path_max(), 107);
    }
}
