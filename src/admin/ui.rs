//! The web dashboard: static pages built on the admin API alone, embedded
//! in the binary (no build step, no files to install) and served beside
//! the API. Each asset carries an ETag of its contents and `no-cache`, so
//! a browser revalidates with a 304 instead of running stale code after an
//! upgrade. The pages' own requests authenticate with `session`.

use std::sync::OnceLock;

use axum::extract::Path;
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE, ETAG, IF_NONE_MATCH};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use sha2::{Digest, Sha256};

use super::{session, AdminState};

/// Every asset: its path under `/ui/` and its bytes.
const ASSETS: &[(&str, &str)] = &[
    ("index.html", include_str!("ui/index.html")),
    ("style.css", include_str!("ui/style.css")),
    ("app.js", include_str!("ui/app.js")),
    ("api.js", include_str!("ui/api.js")),
    ("chart.js", include_str!("ui/chart.js")),
    ("view.js", include_str!("ui/view.js")),
    ("overview.js", include_str!("ui/overview.js")),
    ("queues.js", include_str!("ui/queues.js")),
    ("queue.js", include_str!("ui/queue.js")),
    ("exchanges.js", include_str!("ui/exchanges.js")),
    ("connections.js", include_str!("ui/connections.js")),
    ("admin.js", include_str!("ui/admin.js")),
    ("favicon.svg", include_str!("ui/favicon.svg")),
];

/// An asset's content type, from its extension.
fn content_type(file: &str) -> &'static str {
    match file.rsplit_once('.').map(|(_, ext)| ext) {
        Some("html") => "text/html; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("js") => "text/javascript; charset=utf-8",
        Some("svg") => "image/svg+xml",
        _ => "application/octet-stream",
    }
}

/// Scripts, styles and API calls from this origin only; no framing.
const CSP: &str = "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; \
                   connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'";

pub fn routes() -> Router<AdminState> {
    Router::new()
        .route("/", get(|headers: HeaderMap| async move { asset("index.html", &headers) }))
        .route("/ui/login", post(session::login))
        .route("/ui/logout", post(session::logout))
        .route(
            "/ui/{file}",
            get(|Path(file): Path<String>, headers: HeaderMap| async move { asset(&file, &headers) }),
        )
}

/// The ETag of each asset, computed once.
fn etags() -> &'static [String] {
    static TAGS: OnceLock<Vec<String>> = OnceLock::new();
    TAGS.get_or_init(|| {
        ASSETS
            .iter()
            .map(|(_, body)| {
                let digest = Sha256::digest(body.as_bytes());
                let hex: String = digest[..12].iter().map(|b| format!("{b:02x}")).collect();
                format!("\"{hex}\"")
            })
            .collect()
    })
}

fn asset(file: &str, headers: &HeaderMap) -> Response {
    let Some(i) = ASSETS.iter().position(|(name, _)| *name == file) else {
        return super::ApiError::NotFound.into_response();
    };
    let (_, body) = ASSETS[i];
    let kind = content_type(file);
    let tag = &etags()[i];
    let fresh = headers
        .get(IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == tag || t.trim() == "*"));
    let mut response =
        if fresh { StatusCode::NOT_MODIFIED.into_response() } else { (StatusCode::OK, body).into_response() };
    let h = response.headers_mut();
    h.insert(ETAG, HeaderValue::from_str(tag).expect("hex in quotes"));
    h.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert(CONTENT_TYPE, HeaderValue::from_static(kind));
    h.insert("content-security-policy", HeaderValue::from_static(CSP));
    h.insert("x-content-type-options", HeaderValue::from_static("nosniff"));
    h.insert("referrer-policy", HeaderValue::from_static("no-referrer"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_asset_has_a_known_type_and_revalidates() {
        for (name, _) in ASSETS {
            assert_ne!(content_type(name), "application/octet-stream", "{name}");
            let first = asset(name, &HeaderMap::new());
            assert_eq!(first.status(), StatusCode::OK);
            let mut headers = HeaderMap::new();
            headers.insert(IF_NONE_MATCH, first.headers()[ETAG].clone());
            assert_eq!(asset(name, &headers).status(), StatusCode::NOT_MODIFIED, "{name}");
        }
        assert_eq!(asset("nope.js", &HeaderMap::new()).status(), StatusCode::NOT_FOUND);
    }
}
