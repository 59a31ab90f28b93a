//! The HTTP admin API, in the shape of RabbitMQ's management API (paths
//! under `/api`, JSON bodies, status codes and error texts as RabbitMQ's),
//! served on a TCP port with Basic auth and on warrenctl's local unix
//! socket. One handler file per resource; `error` renders every refusal;
//! `auth` decides who may do what. Handlers are plain axum handlers over
//! `AdminState`, so tests drive `router()` without a network. May use
//! `broker`, `access`.

mod auth;
pub mod definitions;
mod definitions_http;
mod error;
mod input;
mod limits;
mod listing;
mod permissions;
mod policies;
mod users;
mod vhosts;

use std::io;
use std::net::SocketAddr;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::Path;
use std::sync::{Arc, OnceLock};

use axum::extract::DefaultBodyLimit;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{middleware, Extension, Json, Router};
use serde_json::Value;
use tokio::net::{TcpListener, UnixListener};
use tokio::sync::watch;

use crate::access::Access;
use crate::broker::policy::Kind;
use crate::broker::Broker;
pub use auth::{Caller, LocalSocket};
pub use error::{ApiError, REALM};

/// Request bodies beyond this are refused (413), except definitions.
pub const BODY_LIMIT: usize = 1 << 20;
/// A definitions document may be this big.
pub const DEFINITIONS_LIMIT: usize = 64 << 20;

/// What the handlers work on.
#[derive(Debug, Clone)]
pub struct AdminState {
    pub broker: Arc<Broker>,
    pub access: Arc<Access>,
}

impl AdminState {
    pub fn new(broker: Arc<Broker>, access: Arc<Access>) -> AdminState {
        AdminState { broker, access }
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
        .route("/api/definitions", definitions.clone())
        .route("/api/definitions/", definitions)
        .route("/api/definitions/{vhost}", definitions_of)
        .route_layer(middleware::from_fn_with_state(state.clone(), auth::authenticate))
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
/// A request there without credentials is the broker's own administrator
/// (whoever can open the socket file is trusted; `bind_socket` makes it
/// 0600); one with an `Authorization` header is checked like HTTP.
pub async fn serve_socket(
    listener: UnixListener,
    state: AdminState,
    mut shutdown: watch::Receiver<bool>,
) -> io::Result<()> {
    let app = router(state).layer(Extension(LocalSocket));
    axum::serve(listener, app)
        .with_graceful_shutdown(async move {
            let _ = shutdown.wait_for(|stop| *stop).await;
        })
        .await
}

/// Binds the control socket at `path`, readable and writable by this
/// user only. A socket file left by a broker that is gone is replaced; a
/// live one (something answers) or a file that is not a socket is an error.
/// Must run inside a tokio runtime.
pub fn bind_socket(path: &Path) -> io::Result<UnixListener> {
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
    // Bound under a private name, made 0600, then moved into place: the
    // socket is never reachable at `path` with looser permissions.
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let staging = path.with_file_name(format!(".{name}.{}.tmp", std::process::id()));
    let _ = std::fs::remove_file(&staging);
    let listener = UnixListener::bind(&staging)?;
    let placed = std::fs::set_permissions(&staging, std::fs::Permissions::from_mode(0o600))
        .and_then(|()| std::fs::rename(&staging, path));
    if let Err(e) = placed {
        let _ = std::fs::remove_file(&staging);
        return Err(e);
    }
    Ok(listener)
}

/// This node's name as the API shows it: `warren@<short host name>`.
pub fn node_name() -> &'static str {
    static NAME: OnceLock<String> = OnceLock::new();
    NAME.get_or_init(|| {
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .or_else(|_| std::fs::read_to_string("/etc/hostname"))
            .unwrap_or_default();
        let short = host.trim().split('.').next().unwrap_or("").to_owned();
        format!("warren@{}", if short.is_empty() { "localhost" } else { &short })
    })
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
