//! How lists are answered, as RabbitMQ's management API does: `sort=` (a
//! dot-path; empty means "as is") and `sort_reverse`, `columns=` (dot-paths,
//! nested objects kept nested), and, where RabbitMQ paginates, `page`,
//! `page_size`, `name` and `use_regex` with the 7-field wrapper and its 400s.
//! Pure.

use std::cmp::Ordering;

use serde_json::{json, Map, Value};

use super::error::{ApiError, Result};
use super::input::QueryPairs;

/// Largest page RabbitMQ serves.
pub const MAX_PAGE_SIZE: i64 = 500;
const DEFAULT_PAGE_SIZE: i64 = 100;

/// Answers a list query over `items` (each a JSON object). `paginated`:
/// whether this endpoint takes `page` (without `page` it is a plain array).
pub fn answer(mut items: Vec<Value>, query: &QueryPairs, paginated: bool) -> Result<Value> {
    let page = match query.get("page") {
        Some(p) if paginated => Some(Page::parse(p, query)?),
        _ => None,
    };
    let total = items.len();
    if let Some(page) = &page {
        if let Some(filter) = &page.filter {
            items.retain(|item| item.get("name").and_then(Value::as_str).is_some_and(|n| filter.is_match(n)));
        }
    }
    if let Some(key) = query.get("sort").filter(|k| !k.is_empty()) {
        let path: Vec<&str> = key.split('.').collect();
        items.sort_by(|a, b| compare(pick(a, &path), pick(b, &path)));
    }
    if query.get("sort_reverse").is_some_and(|v| v.eq_ignore_ascii_case("true")) {
        items.reverse();
    }
    let columns = columns(query);
    let select = |items: Vec<Value>| -> Vec<Value> {
        match &columns {
            Some(cols) => items.iter().map(|item| only(item, cols)).collect(),
            None => items,
        }
    };
    let Some(page) = page else { return Ok(Value::Array(select(items))) };
    let filtered = items.len();
    let size = page.size as usize;
    let page_count = filtered.div_ceil(size);
    if page.number > 1 && page.number as usize > page_count {
        return Err(ApiError::Refused {
            error: "page_out_of_range",
            reason: format!(
                "Page out of range, page: {} page size: {}, len: {filtered}",
                page.number, page.size
            ),
        });
    }
    let start = (page.number as usize - 1) * size;
    let items: Vec<Value> = items.into_iter().skip(start).take(size).collect();
    Ok(json!({
        "filtered_count": filtered,
        "item_count": items.len(),
        "items": select(items),
        "page": page.number,
        "page_count": page_count,
        "page_size": page.size,
        "total_count": total,
    }))
}

/// The `columns=` of a query as dot-paths (None: every field).
fn columns(query: &QueryPairs) -> Option<Vec<Vec<&str>>> {
    query
        .get("columns")
        .filter(|c| !c.is_empty())
        .map(|c| c.split(',').filter(|s| !s.is_empty()).map(|s| s.split('.').collect()).collect())
}

/// Whether `stream` can answer the query: no page asked for and no order
/// to put the items in (they come in the caller's order).
pub fn streamable(query: &QueryPairs) -> bool {
    query.get("page").is_none()
        && query.get("sort").is_none_or(str::is_empty)
        && query.get("sort_reverse").is_none_or(|v| !v.eq_ignore_ascii_case("true"))
}

/// A plain array answer written as the items are made, one at a time (each
/// is dropped once written): a list of 100,000 queues never exists as a
/// tree of values. Only for queries `streamable` accepts.
pub fn stream(items: impl Iterator<Item = Value>, query: &QueryPairs) -> Result<Vec<u8>> {
    let cols = columns(query);
    let mut out = Vec::with_capacity(64 * 1024);
    out.push(b'[');
    for (i, item) in items.enumerate() {
        if i > 0 {
            out.push(b',');
        }
        let item = match &cols {
            Some(cols) => only(&item, cols),
            None => item,
        };
        serde_json::to_writer(&mut out, &item).map_err(|e| ApiError::Internal(e.to_string()))?;
    }
    out.push(b']');
    Ok(out)
}

/// One object (an overview, a node, a connection) with `columns=` applied.
pub fn answer_one(item: Value, query: &QueryPairs) -> Value {
    match columns(query) {
        Some(cols) => only(&item, &cols),
        None => item,
    }
}

struct Page {
    number: i64,
    size: i64,
    filter: Option<regex::Regex>,
}

impl Page {
    fn parse(page: &str, query: &QueryPairs) -> Result<Page> {
        let invalid = || ApiError::bad_request("Pagination parameters are invalid");
        let number: i64 = page.trim().parse().map_err(|_| invalid())?;
        let size = match query.get("page_size") {
            Some(s) => Some(s.trim().parse::<i64>().map_err(|_| invalid())?),
            None => None,
        };
        if number < 1 || size.is_some_and(|s| !(1..=MAX_PAGE_SIZE).contains(&s)) {
            let shown = size.map_or_else(|| "undefined".to_owned(), |s| s.to_string());
            return Err(ApiError::Refused {
                error: "invalid_pagination_parameters",
                reason: format!("Invalid pagination parameters: page number {number}, page size {shown}"),
            });
        }
        let regex = query.get("use_regex").is_some_and(|v| v.eq_ignore_ascii_case("true"));
        let filter = match query.get("name").filter(|n| !n.is_empty()) {
            None => None,
            Some(n) => {
                let pattern = if regex { n.to_owned() } else { regex::escape(n) };
                let built =
                    regex::RegexBuilder::new(&pattern).case_insensitive(true).size_limit(1 << 20).build();
                Some(built.map_err(|_| invalid())?)
            }
        };
        Ok(Page { number, size: size.unwrap_or(DEFAULT_PAGE_SIZE), filter })
    }
}

fn pick<'a>(item: &'a Value, path: &[&str]) -> Option<&'a Value> {
    path.iter().try_fold(item, |v, key| v.get(key))
}

/// Missing first, then numbers by value, strings, everything else by its text.
fn compare(a: Option<&Value>, b: Option<&Value>) -> Ordering {
    match (a, b) {
        (None, None) => Ordering::Equal,
        (None, Some(_)) => Ordering::Less,
        (Some(_), None) => Ordering::Greater,
        (Some(Value::Number(x)), Some(Value::Number(y))) => {
            x.as_f64().unwrap_or(0.0).total_cmp(&y.as_f64().unwrap_or(0.0))
        }
        (Some(Value::String(x)), Some(Value::String(y))) => x.cmp(y),
        (Some(x), Some(y)) => x.to_string().cmp(&y.to_string()),
    }
}

/// The item with only the given dot-paths, nested as they were.
fn only(item: &Value, columns: &[Vec<&str>]) -> Value {
    let mut out = Map::new();
    for path in columns {
        let Some(value) = pick(item, path) else { continue };
        let mut at = &mut out;
        for key in &path[..path.len() - 1] {
            let slot = at.entry(key.to_string()).or_insert_with(|| Value::Object(Map::new()));
            if !slot.is_object() {
                *slot = Value::Object(Map::new());
            }
            at = slot.as_object_mut().expect("made an object above");
        }
        at.insert(path[path.len() - 1].to_owned(), value.clone());
    }
    Value::Object(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(s: &str) -> QueryPairs {
        QueryPairs(
            s.split('&')
                .filter(|p| !p.is_empty())
                .map(|p| {
                    let (k, v) = p.split_once('=').unwrap_or((p, ""));
                    (k.to_owned(), v.to_owned())
                })
                .collect(),
        )
    }

    fn items() -> Vec<Value> {
        vec![
            json!({"name": "/", "n": 3, "meta": {"d": "x", "e": 1}}),
            json!({"name": "ctl-vh", "n": 10}),
            json!({"name": "ctl-vh2", "n": 2}),
        ]
    }

    #[test]
    fn columns_keep_nesting_and_skip_missing() {
        let out = answer(items(), &q("columns=name,meta.d"), true).unwrap();
        assert_eq!(out, json!([{"name": "/", "meta": {"d": "x"}}, {"name": "ctl-vh"}, {"name": "ctl-vh2"}]));
    }

    #[test]
    fn sort_by_number_and_reverse() {
        let out = answer(items(), &q("sort=n&sort_reverse=true&columns=name"), false).unwrap();
        assert_eq!(out, json!([{"name": "ctl-vh"}, {"name": "/"}, {"name": "ctl-vh2"}]));
        let out = answer(items(), &q("sort=&columns=name"), false).unwrap();
        assert_eq!(out[0]["name"], "/");
    }

    #[test]
    fn pages_as_rabbitmq_wraps_them() {
        let out = answer(items(), &q("page=2&page_size=2&columns=name"), true).unwrap();
        assert_eq!(
            out,
            json!({"filtered_count":3,"item_count":1,"items":[{"name":"ctl-vh2"}],"page":2,"page_count":2,"page_size":2,"total_count":3})
        );
        let out = answer(items(), &q("page=1&name=CTL&columns=name"), true).unwrap();
        assert_eq!(out["filtered_count"], 2);
        assert_eq!(out["page_size"], 100);
        let out = answer(items(), &q("page=1&name=^ctl-vh$&use_regex=true"), true).unwrap();
        assert_eq!(out["filtered_count"], 1);
        let out = answer(items(), &q("page=1&name=zzz"), true).unwrap();
        assert_eq!((out["page_count"].as_u64(), out["item_count"].as_u64()), (Some(0), Some(0)));
        // Without `page`, or where RabbitMQ does not paginate: a plain array.
        assert!(answer(items(), &q("page_size=1"), true).unwrap().is_array());
        assert!(answer(items(), &q("page=1"), false).unwrap().is_array());
    }

    #[test]
    fn bad_pages_are_rabbitmqs_400s() {
        let err = |s: &str| answer(items(), &q(s), true).unwrap_err();
        assert_eq!(
            err("page=9&page_size=2"),
            ApiError::Refused {
                error: "page_out_of_range",
                reason: "Page out of range, page: 9 page size: 2, len: 3".into()
            }
        );
        assert_eq!(
            err("page=1&page_size=1000").to_string(),
            "Invalid pagination parameters: page number 1, page size 1000"
        );
        assert_eq!(
            err("page=0").to_string(),
            "Invalid pagination parameters: page number 0, page size undefined"
        );
        assert_eq!(err("page=x"), ApiError::bad_request("Pagination parameters are invalid"));
        assert_eq!(err("page=1&page_size=x"), ApiError::bad_request("Pagination parameters are invalid"));
        assert_eq!(
            err("page=1&name=(&use_regex=true"),
            ApiError::bad_request("Pagination parameters are invalid")
        );
    }
}
