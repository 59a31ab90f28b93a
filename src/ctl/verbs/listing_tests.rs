//! Tests of listing columns, JSON rows and the streaming printer.

use serde_json::json;

use super::*;

fn names(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}

const ALIASES: &[(&str, Alias)] = &[
    ("source_name", Alias::Field("source")),
    ("source_kind", Alias::Fixed("exchange")),
    ("queue_name", Alias::Field("queue.name")),
];

fn style(format: Format, silent: bool) -> Style {
    Style { format, quiet: false, silent }
}

fn print(format: Format, silent: bool, columns: &[Column], pages: &[Vec<Value>]) -> String {
    let mut out = Vec::new();
    let mut printer = Printer::start(style(format, silent), columns, &mut out);
    for page in pages {
        assert!(printer.rows(page));
    }
    printer.finish();
    String::from_utf8(out).unwrap()
}

#[test]
fn columns_map_rabbitmqctl_names_and_pass_api_fields_through() {
    let cols = columns(&[], &["source_name", "source_kind", "routing_key"], ALIASES);
    assert_eq!(cols[0].field(), Some("source"));
    assert_eq!(cols[1].field(), None);
    assert_eq!(cols[2].field(), Some("routing_key"));
    let asked = columns(&names(&["queue_name", "messages_details.rate"]), &["x"], ALIASES);
    assert_eq!(
        asked.iter().map(|c| c.title.as_str()).collect::<Vec<_>>(),
        ["queue_name", "messages_details.rate"]
    );
    assert_eq!(columns_query(&asked), "queue.name,messages_details.rate");
    let dup = columns(&names(&["name", "name", "a b"]), &[], &[]);
    assert_eq!(columns_query(&dup), "name,a%20b");
}

#[test]
fn json_rows_use_api_names_nested_as_the_api_nests_them() {
    let cols = columns(&names(&["queue_name", "source_name", "source_kind", "missing"]), &[], ALIASES);
    let row = json!({"queue": {"name": "q", "vhost": "/"}, "source": "x"});
    let text = json_row(&cols, &row);
    assert_eq!(text, r#"{"queue":{"name":"q"},"source":"x","source_kind":"exchange","missing":null}"#);
    let cols = columns(&names(&["b", "a.y", "c", "a.x"]), &[], &[]);
    let text = json_row(&cols, &json!({"a": {"x": 1, "y": 2}, "b": 3, "c": [4]}));
    assert_eq!(text, r#"{"b":3,"a":{"y":2,"x":1},"c":[4]}"#);
    assert_eq!(json_row(&cols, &json!({"a.y": 5})), r#"{"b":null,"a.y":5,"c":null,"a":{"x":null}}"#);
}

#[test]
fn pages_stream_as_tsv_and_json_with_leading_commas() {
    let cols = columns(&[], &["name", "messages"], &[]);
    let pages = vec![vec![json!({"name": "a", "messages": 1})], vec![json!({"name": "b", "messages": 2})]];
    assert_eq!(print(Format::Tsv, false, &cols, &pages), "name\tmessages\na\t1\nb\t2\n");
    assert_eq!(print(Format::Tsv, true, &cols, &pages), "a\t1\nb\t2\n");
    let out = print(Format::Json, false, &cols, &pages);
    assert_eq!(out, "[\n{\"name\":\"a\",\"messages\":1}\n,{\"name\":\"b\",\"messages\":2}\n]\n");
    assert_eq!(serde_json::from_str::<Value>(&out).unwrap()[1]["name"], "b");
    assert_eq!(print(Format::Json, false, &cols, &[vec![]]), "[]\n");
    assert_eq!(print(Format::Tsv, false, &cols, &[]), "name\tmessages\n");
    let table = print(Format::Table, false, &cols, &pages);
    let lines: Vec<&str> = table.lines().collect();
    assert!(lines[0].starts_with('┌') && lines.last().unwrap().starts_with('└'), "{table}");
    assert!(lines[1].contains("name") && lines[1].contains("messages"), "{table}");
    assert!(lines.iter().any(|l| l.starts_with("│ a ") && l.contains("┆ 1 ")), "{table}");
    assert!(lines.iter().any(|l| l.starts_with("│ b ") && l.contains("┆ 2 ")), "{table}");
}

/// A writer that fails like a closed pipe.
struct Closed;

impl Write for Closed {
    fn write(&mut self, _: &[u8]) -> std::io::Result<usize> {
        Err(std::io::ErrorKind::BrokenPipe.into())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn a_closed_output_stops_the_listing() {
    let cols = columns(&[], &["name"], &[]);
    let mut out = Closed;
    let mut printer = Printer::start(style(Format::Tsv, false), &cols, &mut out);
    assert!(!printer.rows(&[json!({"name": "a"})]));
}

/// A fake admin API on a unix socket: answers the `n`th connection with
/// `answer(n)` (1-based) and sends each request line it gets to the
/// returned receiver; at most `limit` connections.
fn fake_api(
    name: &str,
    limit: usize,
    answer: impl Fn(usize) -> (u16, String) + Send + 'static,
) -> (Api, std::sync::mpsc::Receiver<String>, std::path::PathBuf) {
    use std::io::{BufRead, BufReader};
    let dir = std::env::temp_dir().join(format!("warrenctl-pages-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("ctl.sock");
    let _ = std::fs::remove_file(&path);
    let listener = std::os::unix::net::UnixListener::bind(&path).unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for n in 1..=limit {
            let Ok((stream, _)) = listener.accept() else { return };
            let mut reader = BufReader::new(stream);
            let mut first = String::new();
            reader.read_line(&mut first).unwrap();
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap() == 0 || line == "\r\n" {
                    break;
                }
            }
            let _ = tx.send(first.split(' ').nth(1).unwrap_or_default().to_string());
            let (status, body) = answer(n);
            let reply = format!("HTTP/1.1 {status} X\r\ncontent-length: {}\r\n\r\n{body}", body.len());
            let _ = reader.into_inner().write_all(reply.as_bytes());
        }
    });
    let timeout = std::time::Duration::from_secs(2);
    let client = crate::ctl::http::Client { endpoint: crate::ctl::http::Endpoint::Unix(path), timeout };
    (Api::new(client, None), rx, dir)
}

fn paged(items: Value, page: usize, page_count: usize) -> String {
    json!({"items": items, "page": page, "page_count": page_count, "page_size": PAGE_SIZE}).to_string()
}

/// Lists through `answer` (at most 50 requests); returns the result, the
/// names seen and the pages asked for.
fn list(
    name: &str,
    answer: impl Fn(usize) -> (u16, String) + Send + 'static,
) -> (Result<()>, Vec<String>, Vec<String>) {
    let (api, requests, dir) = fake_api(name, 50, answer);
    let mut seen = Vec::new();
    let result = for_each_page(&api, "/api/queues", "", None, |items| {
        seen.extend(items.iter().map(|i| i["name"].as_str().unwrap_or_default().to_string()));
        true
    });
    let pages = requests
        .try_iter()
        .map(|url| url.split(['?', '&']).find(|p| p.starts_with("page=")).unwrap_or(&url).to_string())
        .collect();
    std::fs::remove_dir_all(&dir).unwrap();
    (result, seen, pages)
}

#[test]
fn paging_always_ends() {
    let a = || json!([{"name": "a"}]);
    // No rows at all.
    let (result, seen, pages) = list("zero", |_| (200, paged(json!([]), 1, 0)));
    assert_eq!((result, seen.len(), pages), (Ok(()), 0, vec!["page=1".to_string()]));
    // Three pages, as asked.
    let (result, seen, pages) = list("three", |n| (200, paged(json!([{"name": format!("q{n}")}]), n, 3)));
    assert_eq!((result, seen), (Ok(()), vec!["q1".to_string(), "q2".into(), "q3".into()]));
    assert_eq!(pages, ["page=1", "page=2", "page=3"]);
    // A server that ignores `page=`: page 1 over and over.
    let (result, seen, pages) = list("same", move |_| (200, paged(a(), 1, 3)));
    assert_eq!((result, seen.len(), pages.len()), (Ok(()), 1, 2));
    // A page_count that grows with every answer: capped at the first one.
    let (result, seen, pages) = list("grows", |n| (200, paged(json!([{"name": n.to_string()}]), n, n + 1)));
    assert_eq!((result, seen.len(), pages.len()), (Ok(()), 2, 2));
    // The same page, without a page number, forever: capped at page_count.
    let same = json!({"items": [{"name": "a"}], "page_count": 4}).to_string();
    let (result, seen, pages) = list("no-number", move |_| (200, same.clone()));
    assert_eq!((result, seen.len(), pages.len()), (Ok(()), 4, 4));
    // A plain array is the whole list; on a later page it is not repeated.
    let (result, seen, pages) = list("array", |_| (200, json!([{"name": "a"}, {"name": "b"}]).to_string()));
    assert_eq!((result, seen.len(), pages.len()), (Ok(()), 2, 1));
    let (result, seen, pages) = list("array-later", |n| match n {
        1 => (200, paged(json!([{"name": "a"}]), 1, 9)),
        _ => (200, json!([{"name": "a"}, {"name": "b"}]).to_string()),
    });
    assert_eq!((result, seen.len(), pages.len()), (Ok(()), 1, 2));
    // The list shrank while it was read.
    let (result, seen, pages) = list("shrank", |n| match n {
        1 => (200, paged(json!([{"name": "a"}]), 1, 9)),
        _ => (400, json!({"error": "page_out_of_range", "reason": "x"}).to_string()),
    });
    assert_eq!((result, seen.len(), pages.len()), (Ok(()), 1, 2));
    // An empty page before page_count: the end.
    let (result, seen, pages) = list("empty", |n| match n {
        1 => (200, paged(json!([{"name": "a"}]), 1, usize::MAX)),
        _ => (200, paged(json!([]), n, usize::MAX)),
    });
    assert_eq!((result, seen.len(), pages.len()), (Ok(()), 1, 2));
    // A page_count that is no number counts as 1.
    let odd = json!({"items": [{"name": "a"}], "page_count": -3}).to_string();
    let (result, seen, pages) = list("odd", move |_| (200, odd.clone()));
    assert_eq!((result, seen.len(), pages.len()), (Ok(()), 1, 1));
    // Errors on a later page are errors.
    let (result, _, pages) = list("fails", |n| match n {
        1 => (200, paged(json!([{"name": "a"}]), 1, 2)),
        _ => (500, json!({"error": "boom", "reason": "boom"}).to_string()),
    });
    assert_eq!((result.unwrap_err().exit_code(), pages.len()), (70, 2));
}
