//! The metrics listener: plain HTTP, no authentication (as RabbitMQ's
//! prometheus plugin), text format 0.0.4. Rendering runs on a blocking
//! thread: a scrape of many queues must not hold up AMQP connections.
//! May use `collect` and axum.

use std::io;

use axum::extract::{RawQuery, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use tokio::net::TcpListener;
use tokio::sync::watch;

use super::{collect, MetricsState};

/// What Prometheus expects of a text scrape.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4";

/// `/metrics`, `/metrics/per-object` and `/metrics/detailed`.
pub fn router(state: MetricsState) -> Router {
    Router::new()
        .route("/metrics", get(aggregated))
        .route("/metrics/per-object", get(per_object))
        .route("/metrics/detailed", get(detailed))
        .with_state(state)
}

/// Serves the metrics on `listener` until `shutdown` turns true.
pub async fn serve(
    listener: TcpListener,
    state: MetricsState,
    mut shutdown: watch::Receiver<bool>,
) -> io::Result<()> {
    axum::serve(listener, router(state))
        .with_graceful_shutdown(async move {
            let _ = shutdown.wait_for(|stop| *stop).await;
        })
        .await
}

async fn aggregated(State(state): State<MetricsState>) -> Response {
    render(move || collect::aggregated(&state)).await
}

async fn per_object(State(state): State<MetricsState>) -> Response {
    render(move || collect::per_object(&state)).await
}

async fn detailed(State(state): State<MetricsState>, RawQuery(query): RawQuery) -> Response {
    let (families, vhosts) = detailed_query(query.as_deref().unwrap_or(""));
    render(move || collect::detailed(&state, &families, &vhosts)).await
}

async fn render(make: impl FnOnce() -> String + Send + 'static) -> Response {
    match tokio::task::spawn_blocking(make).await {
        Ok(body) => ([(header::CONTENT_TYPE, CONTENT_TYPE)], body).into_response(),
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

/// The `family` and `vhost` parameters of a detailed scrape, each of which
/// may repeat (`family=a&family=b`); others are ignored.
pub fn detailed_query(query: &str) -> (Vec<String>, Vec<String>) {
    let (mut families, mut vhosts) = (Vec::new(), Vec::new());
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        let list = match decode(key).as_str() {
            "family" => &mut families,
            "vhost" => &mut vhosts,
            _ => continue,
        };
        list.push(decode(value));
    }
    (families, vhosts)
}

/// A query component: `+` is a space, `%XX` a byte; invalid UTF-8 is replaced.
fn decode(s: &str) -> String {
    let spaced = s.replace('+', " ");
    percent_encoding::percent_decode_str(&spaced).decode_utf8_lossy().into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeated_families_and_encoded_vhosts_are_read() {
        let (f, v) =
            detailed_query("family=queue_coarse_metrics&family=queue_metrics&vhost=%2F&vhost=a+b&x=1&vhost");
        assert_eq!(f, ["queue_coarse_metrics", "queue_metrics"]);
        assert_eq!(v, ["/", "a b", ""]);
    }
}
