//! How `warrenctl` prints: informational lines (hidden by `-q`/`-s`) and
//! listings as TSV (rabbitmqctl's default), a box table, or JSON whose field
//! names are the API's. Pure functions returning text.

use comfy_table::{presets, Table};
use serde_json::Value;

/// Output format of listings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Format {
    /// Tab-separated values with a header row.
    #[default]
    Tsv,
    /// A table drawn with box characters, for people.
    Table,
    /// A JSON array of objects, one per line, keyed by the API's field names.
    Json,
}

/// The output options shared by every verb.
#[derive(Debug, Clone, Copy, Default)]
pub struct Style {
    pub format: Format,
    /// `-q`: no informational lines or "Listing ..." banner.
    pub quiet: bool,
    /// `-s`: as `-q`, and no header row either.
    pub silent: bool,
}

impl Style {
    /// Whether informational lines such as `Adding user "u" ...` are printed.
    pub fn chatty(&self) -> bool {
        !self.quiet && !self.silent
    }

    /// Whether a listing's banner is printed (never before JSON, which must parse).
    pub fn shows_banner(&self) -> bool {
        self.chatty() && self.format != Format::Json
    }
}

/// Renders `rows` (API objects) as the `columns` given, each a field name or a
/// dot path into nested objects (`metadata.description`).
pub fn render(style: Style, columns: &[String], rows: &[Value]) -> String {
    match style.format {
        Format::Tsv => render_tsv(style, columns, rows),
        Format::Table => render_table(style, columns, rows),
        Format::Json => render_json(columns, rows),
    }
}

fn render_tsv(style: Style, columns: &[String], rows: &[Value]) -> String {
    let mut out = String::new();
    if !style.silent {
        out.push_str(&columns.join("\t"));
        out.push('\n');
    }
    for row in rows {
        let cells: Vec<String> = columns.iter().map(|c| cell(lookup(row, c))).collect();
        out.push_str(&cells.join("\t"));
        out.push('\n');
    }
    out
}

fn render_table(style: Style, columns: &[String], rows: &[Value]) -> String {
    let mut table = Table::new();
    table.load_preset(presets::UTF8_FULL_CONDENSED).force_no_tty();
    if !style.silent {
        table.set_header(columns.iter().map(String::as_str).collect::<Vec<_>>());
    }
    for row in rows {
        table.add_row(columns.iter().map(|c| cell(lookup(row, c))).collect::<Vec<_>>());
    }
    if rows.is_empty() && style.silent {
        return String::new();
    }
    format!("{table}\n")
}

fn render_json(columns: &[String], rows: &[Value]) -> String {
    if rows.is_empty() {
        return "[]\n".to_string();
    }
    let objects: Vec<String> = rows
        .iter()
        .map(|row| {
            let fields: Vec<String> = columns
                .iter()
                .map(|c| format!("{}:{}", Value::from(c.as_str()), lookup(row, c).unwrap_or(&Value::Null)))
                .collect();
            format!("{{{}}}", fields.join(","))
        })
        .collect();
    format!("[\n{}\n]\n", objects.join(",\n"))
}

/// The value at `path`: a field name, else a dot path into nested objects.
pub fn lookup<'a>(row: &'a Value, path: &str) -> Option<&'a Value> {
    if let Some(v) = row.get(path) {
        return Some(v);
    }
    path.split('.').try_fold(row, |v, key| v.get(key))
}

/// A value as one TSV/table cell: strings bare, lists of scalars as
/// `[a, b]` (as rabbitmqctl prints tags), objects as compact JSON.
pub fn cell(value: Option<&Value>) -> String {
    match value {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => escape(s),
        Some(Value::Array(items)) if items.iter().all(|i| !i.is_array() && !i.is_object()) => {
            let items: Vec<String> = items.iter().map(|i| cell(Some(i))).collect();
            format!("[{}]", items.join(", "))
        }
        Some(other) => escape(&other.to_string()),
    }
}

/// Keeps one row on one line: tabs and line breaks inside a value are escaped.
fn escape(s: &str) -> String {
    if !s.contains(['\t', '\n', '\r']) {
        return s.to_string();
    }
    s.replace('\t', "\\t").replace('\n', "\\n").replace('\r', "\\r")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn cols(names: &[&str]) -> Vec<String> {
        names.iter().map(|s| s.to_string()).collect()
    }

    fn users() -> Vec<Value> {
        vec![
            json!({"name":"guest","tags":["administrator"],"password_hash":"x"}),
            json!({"name":"ctl-u","tags":["monitoring","policymaker"]}),
        ]
    }

    fn style(format: Format, quiet: bool, silent: bool) -> Style {
        Style { format, quiet, silent }
    }

    #[test]
    fn tsv_has_a_header_unless_silent() {
        let c = cols(&["name", "tags"]);
        let out = render(style(Format::Tsv, false, false), &c, &users());
        assert_eq!(out, "name\ttags\nguest\t[administrator]\nctl-u\t[monitoring, policymaker]\n");
        let out = render(style(Format::Tsv, true, false), &c, &users());
        assert!(out.starts_with("name\ttags\n"));
        let out = render(style(Format::Tsv, false, true), &c, &users());
        assert_eq!(out, "guest\t[administrator]\nctl-u\t[monitoring, policymaker]\n");
        assert_eq!(render(style(Format::Tsv, false, false), &c, &[]), "name\ttags\n");
        assert_eq!(render(style(Format::Tsv, false, true), &c, &[]), "");
    }

    #[test]
    fn json_keeps_api_field_names_and_column_order() {
        let c = cols(&["name", "tags"]);
        let out = render(style(Format::Json, false, true), &c, &users());
        assert_eq!(
            out,
            "[\n{\"name\":\"guest\",\"tags\":[\"administrator\"]},\n{\"name\":\"ctl-u\",\"tags\":[\"monitoring\",\"policymaker\"]}\n]\n"
        );
        let parsed: Value = serde_json::from_str(&out).unwrap();
        assert_eq!(parsed[1]["name"], "ctl-u");
        assert_eq!(render(style(Format::Json, false, false), &c, &[]), "[]\n");
        let policy =
            json!({"vhost":"/","name":"p","apply-to":"queues","definition":{"max-length":5},"priority":1});
        let out = render(
            style(Format::Json, false, false),
            &cols(&["apply-to", "definition", "missing"]),
            &[policy],
        );
        assert_eq!(
            out,
            "[\n{\"apply-to\":\"queues\",\"definition\":{\"max-length\":5},\"missing\":null}\n]\n"
        );
    }

    #[test]
    fn table_draws_boxes_and_drops_the_header_when_silent() {
        let c = cols(&["name", "tags"]);
        let out = render(style(Format::Table, false, false), &c, &users());
        let lines: Vec<&str> = out.lines().collect();
        assert!(lines[0].starts_with('┌'), "{out}");
        assert!(lines[1].contains("name") && lines[1].contains("tags"), "{out}");
        assert!(out.contains("│ ctl-u "), "{out}");
        assert!(lines.last().unwrap().starts_with('└'), "{out}");
        let silent = render(style(Format::Table, false, true), &c, &users());
        assert!(!silent.contains("name") && silent.contains("guest"), "{silent}");
        assert_eq!(render(style(Format::Table, false, true), &c, &[]), "");
    }

    #[test]
    fn cells_render_like_rabbitmqctl() {
        assert_eq!(cell(None), "");
        assert_eq!(cell(Some(&json!(null))), "");
        assert_eq!(cell(Some(&json!([]))), "[]");
        assert_eq!(cell(Some(&json!(-1))), "-1");
        assert_eq!(cell(Some(&json!(false))), "false");
        assert_eq!(cell(Some(&json!({"max-length":5}))), "{\"max-length\":5}");
        assert_eq!(cell(Some(&json!("^a\\.b$"))), "^a\\.b$");
        assert_eq!(cell(Some(&json!("two\nlines\tand tab"))), "two\\nlines\\tand tab");
        let row = json!({"metadata":{"description":"d"}});
        assert_eq!(cell(lookup(&row, "metadata.description")), "d");
        assert_eq!(cell(lookup(&row, "metadata.nope")), "");
    }

    #[test]
    fn banners_follow_quiet_silent_and_format() {
        assert!(style(Format::Tsv, false, false).shows_banner());
        assert!(style(Format::Table, false, false).shows_banner());
        assert!(!style(Format::Json, false, false).shows_banner());
        assert!(!style(Format::Tsv, true, false).shows_banner());
        assert!(!style(Format::Tsv, false, true).shows_banner());
        assert!(style(Format::Json, false, false).chatty());
        assert!(!style(Format::Json, true, false).chatty());
    }
}
