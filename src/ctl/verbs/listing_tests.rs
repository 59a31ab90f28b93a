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
