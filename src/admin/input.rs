//! What requests carry, read leniently as RabbitMQ's tools send it: path
//! segments percent-decoded one by one, JSON bodies (an empty body is `{}`;
//! anything else that is not a JSON object is `not_json`), and fields that
//! may come as a bool or `"true"`, a number or `"1"`, tags as an array or
//! `"a,b"`. Unknown keys are ignored by never being asked for.

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Path, Query, Request};
use axum::http::request::Parts;
use axum::http::StatusCode;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use super::error::{ApiError, Result};

/// A request body that must be a JSON object.
#[derive(Debug, Clone, Default)]
pub struct JsonBody(pub Map<String, Value>);

impl<S: Send + Sync> FromRequest<S> for JsonBody {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self> {
        let bytes = RawBody::from_request(req, state).await?.0;
        parse_object(&bytes).map(JsonBody)
    }
}

/// A request body as it came, within the route's size limit.
#[derive(Debug, Clone)]
pub struct RawBody(pub Bytes);

impl<S: Send + Sync> FromRequest<S> for RawBody {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self> {
        match Bytes::from_request(req, state).await {
            Ok(b) => Ok(RawBody(b)),
            Err(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => Err(ApiError::TooLarge),
            Err(e) => Err(ApiError::bad_request(e.body_text())),
        }
    }
}

/// Path parameters, each segment percent-decoded (`%2F` is `/`).
#[derive(Debug, Clone)]
pub struct Params<T>(pub T);

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for Params<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self> {
        match Path::<T>::from_request_parts(parts, state).await {
            Ok(Path(t)) => Ok(Params(t)),
            Err(e) => Err(ApiError::bad_request(e.body_text())),
        }
    }
}

/// The query string's pairs, in order (a malformed one is a 400).
#[derive(Debug, Clone, Default)]
pub struct QueryPairs(pub Vec<(String, String)>);

impl QueryPairs {
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0.iter().rev().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }
}

impl<S: Send + Sync> FromRequestParts<S> for QueryPairs {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self> {
        match Query::<Vec<(String, String)>>::from_request_parts(parts, state).await {
            Ok(Query(pairs)) => Ok(QueryPairs(pairs)),
            Err(e) => Err(ApiError::bad_request(e.body_text())),
        }
    }
}

/// A body as a JSON object, with RabbitMQ's refusals.
pub fn parse_object(bytes: &[u8]) -> Result<Map<String, Value>> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(Map::new());
    }
    match serde_json::from_slice::<Value>(bytes) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(Value::String(_)) => Err(ApiError::bad_request(
            "invalid payload: the request body JSON-decoded to a string. Is the input doubly-JSON-encoded?",
        )),
        _ => Err(ApiError::bad_request("not_json")),
    }
}

/// RabbitMQ's refusal of a body without required keys:
/// `[{key_missing,write},{key_missing,read}]`.
pub fn require(body: &Map<String, Value>, keys: &[&str]) -> Result<()> {
    let missing: Vec<String> = keys
        .iter()
        .filter(|k| body.get(**k).is_none_or(Value::is_null))
        .map(|k| format!("{{key_missing,{k}}}"))
        .collect();
    if missing.is_empty() {
        Ok(())
    } else {
        Err(ApiError::bad_request(format!("[{}]", missing.join(","))))
    }
}

/// A text field; numbers and booleans are taken as their text.
pub fn text(body: &Map<String, Value>, key: &str) -> Result<Option<String>> {
    match body.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(v @ (Value::Number(_) | Value::Bool(_))) => Ok(Some(v.to_string())),
        Some(v) => Err(ApiError::bad_request(format!("{key} should be a string, not {v}"))),
    }
}

/// An integer field: a JSON integer or a string of one.
pub fn integer(body: &Map<String, Value>, key: &str) -> Result<Option<i64>> {
    match body.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) if n.is_i64() => Ok(n.as_i64()),
        Some(Value::String(s)) if s.trim().parse::<i64>().is_ok() => Ok(s.trim().parse().ok()),
        Some(v) => Err(ApiError::bad_request(format!("{key} should be an integer, not {v}"))),
    }
}

/// Tags as a JSON array or a comma-separated string (blanks dropped).
pub fn tags(body: &Map<String, Value>, key: &str) -> Result<Option<Vec<String>>> {
    let split = |s: &str| -> Vec<String> {
        s.split(',').map(str::trim).filter(|t| !t.is_empty()).map(str::to_owned).collect()
    };
    match body.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(split(s))),
        Some(Value::Array(items)) => {
            let mut out = Vec::new();
            for item in items {
                match item {
                    Value::String(s) => out.extend(split(s)),
                    other => {
                        return Err(ApiError::bad_request(format!("{key} should be strings, not {other}")))
                    }
                }
            }
            Ok(Some(out))
        }
        Some(v) => {
            Err(ApiError::bad_request(format!("{key} should be a list or a comma-separated string, not {v}")))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn bodies_are_objects_or_refused_as_rabbitmq_does() {
        assert!(parse_object(b"").unwrap().is_empty());
        assert!(parse_object(b" \n").unwrap().is_empty());
        assert_eq!(parse_object(br#"{"a":1}"#).unwrap()["a"], 1);
        assert_eq!(parse_object(b"{bad").unwrap_err(), ApiError::bad_request("not_json"));
        assert_eq!(parse_object(b"[1]").unwrap_err(), ApiError::bad_request("not_json"));
        assert!(parse_object(br#""x""#).unwrap_err().to_string().contains("doubly-JSON-encoded"));
        let deep = "[".repeat(100_000);
        assert_eq!(parse_object(deep.as_bytes()).unwrap_err(), ApiError::bad_request("not_json"));
    }

    #[test]
    fn fields_are_lenient() {
        let b = obj(json!({"n": "12", "m": 3, "s": 5, "t": "a, b,,c", "u": ["x", "y,z"], "bad": 1.5}));
        assert_eq!(integer(&b, "n").unwrap(), Some(12));
        assert_eq!(integer(&b, "m").unwrap(), Some(3));
        assert!(integer(&b, "bad").is_err());
        assert_eq!(text(&b, "s").unwrap().as_deref(), Some("5"));
        assert_eq!(tags(&b, "t").unwrap().unwrap(), ["a", "b", "c"]);
        assert_eq!(tags(&b, "u").unwrap().unwrap(), ["x", "y", "z"]);
        assert_eq!(tags(&b, "none").unwrap(), None);
    }

    #[test]
    fn missing_keys_are_listed_in_rabbitmqs_words() {
        let b = obj(json!({"configure": ".*", "write": null}));
        assert_eq!(
            require(&b, &["configure", "write", "read"]).unwrap_err().to_string(),
            "[{key_missing,write},{key_missing,read}]"
        );
    }
}
