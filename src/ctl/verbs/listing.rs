//! Listings that may be long (100,000 queues): rabbitmqctl's column names
//! mapped to API fields, the API fetched a page at a time
//! (`?page=N&page_size=500`), and each page printed as it arrives: TSV
//! lines, or a JSON array streamed as rabbitmqctl's json formatter does
//! (`[`, one object per line with leading commas, `]`). A `--format table`
//! needs every row to size its columns, so it is drawn at the end.

use std::io::Write;

use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use serde_json::{Map, Value};

use super::Ctx;
use crate::ctl::api::Api;
use crate::ctl::error::{error_fields, CtlError, Result};
use crate::ctl::output::{cell, lookup, render, Format, Style};

/// Largest page the API serves (RabbitMQ's limit).
pub const PAGE_SIZE: usize = 500;

/// Where a rabbitmqctl column's value comes from.
#[derive(Debug, Clone, Copy)]
pub enum Alias {
    /// An API field (or dot path) under another name.
    Field(&'static str),
    /// The same value on every row (e.g. a binding's `source_kind`).
    Fixed(&'static str),
}

/// One column of a listing: its title (what the user asked for) and where
/// the value comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Column {
    pub title: String,
    source: Source,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Source {
    Field(String),
    Fixed(Value),
}

impl Column {
    /// The API field (dot path) it reads, if any.
    pub fn field(&self) -> Option<&str> {
        match &self.source {
            Source::Field(path) => Some(path),
            Source::Fixed(_) => None,
        }
    }

    fn value<'a>(&'a self, row: &'a Value) -> Option<&'a Value> {
        match &self.source {
            Source::Field(path) => lookup(row, path),
            Source::Fixed(value) => Some(value),
        }
    }
}

/// The columns asked for (else `defaults`): each rabbitmqctl name in
/// `aliases` is mapped; any other name is taken as an API field or dot path.
pub fn columns(asked: &[String], defaults: &[&str], aliases: &[(&str, Alias)]) -> Vec<Column> {
    let names: Vec<String> =
        if asked.is_empty() { defaults.iter().map(|c| c.to_string()).collect() } else { asked.to_vec() };
    names
        .into_iter()
        .map(|title| {
            let source = match aliases.iter().find(|(name, _)| *name == title) {
                Some((_, Alias::Field(path))) => Source::Field(path.to_string()),
                Some((_, Alias::Fixed(value))) => Source::Fixed(Value::from(*value)),
                None => Source::Field(title.clone()),
            };
            Column { title, source }
        })
        .collect()
}

/// The `columns=` query value that asks the API for just these fields.
pub fn columns_query(columns: &[Column]) -> String {
    let mut fields: Vec<&str> = Vec::new();
    for field in columns.iter().filter_map(Column::field) {
        if !fields.contains(&field) {
            fields.push(field);
        }
    }
    const KEEP: &AsciiSet = &NON_ALPHANUMERIC.remove(b',').remove(b'.').remove(b'_').remove(b'-');
    utf8_percent_encode(&fields.join(","), KEEP).to_string()
}

/// One row as JSON text, fields in column order: each field under its API
/// name (a dot path becomes nested objects, as the API's own `columns=`
/// answers), a fixed column under its title.
pub fn json_row(columns: &[Column], row: &Value) -> String {
    let mut object = Node::Branch(Vec::new());
    for column in columns {
        let value = column.value(row).cloned().unwrap_or(Value::Null);
        match &column.source {
            Source::Field(path) if row.get(path.as_str()).is_none() && path.contains('.') => {
                object.insert(&path.split('.').collect::<Vec<_>>(), value)
            }
            Source::Field(path) => object.insert(&[path], value),
            Source::Fixed(_) => object.insert(&[&column.title], value),
        }
    }
    object.to_string()
}

/// A JSON object that keeps its keys in insertion order (serde_json's
/// `Map` sorts them).
enum Node {
    Leaf(Value),
    Branch(Vec<(String, Node)>),
}

impl Node {
    fn insert(&mut self, path: &[&str], value: Value) {
        let Node::Branch(fields) = self else { return };
        let Some((head, rest)) = path.split_first() else { return };
        let at = match fields.iter().position(|(k, _)| k == head) {
            Some(at) => at,
            None => {
                fields.push((head.to_string(), Node::Branch(Vec::new())));
                fields.len() - 1
            }
        };
        if rest.is_empty() {
            fields[at].1 = Node::Leaf(value);
        } else {
            if matches!(fields[at].1, Node::Leaf(_)) {
                fields[at].1 = Node::Branch(Vec::new());
            }
            fields[at].1.insert(rest, value);
        }
    }
}

impl std::fmt::Display for Node {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Node::Leaf(value) => write!(f, "{value}"),
            Node::Branch(fields) => {
                f.write_str("{")?;
                for (i, (key, node)) in fields.iter().enumerate() {
                    let sep = if i == 0 { "" } else { "," };
                    write!(f, "{sep}{}:{node}", Value::from(key.as_str()))?;
                }
                f.write_str("}")
            }
        }
    }
}

/// Prints a listing as its pages arrive.
pub struct Printer<'a> {
    style: Style,
    columns: &'a [Column],
    out: &'a mut dyn Write,
    printed: usize,
    /// Whether the header row is out (it waits for the first answer, so a
    /// failed request prints none).
    begun: bool,
    /// Rows kept for `--format table` (by title), drawn at the end.
    table: Vec<Value>,
    /// Whether the reader went away (`| head`): no more pages are needed.
    closed: bool,
}

impl<'a> Printer<'a> {
    /// A listing of `columns` to `out`; nothing is printed yet.
    pub fn start(style: Style, columns: &'a [Column], out: &'a mut dyn Write) -> Printer<'a> {
        Printer { style, columns, out, printed: 0, begun: false, table: Vec::new(), closed: false }
    }

    /// The TSV header row (unless `-s`), once.
    fn begin(&mut self) {
        if std::mem::replace(&mut self.begun, true) {
            return;
        }
        if self.style.format == Format::Tsv && !self.style.silent {
            let header: Vec<&str> = self.columns.iter().map(|c| c.title.as_str()).collect();
            self.write(format!("{}\n", header.join("\t")).as_bytes());
        }
    }

    /// Prints some rows; false once the output is closed.
    pub fn rows(&mut self, rows: &[Value]) -> bool {
        self.begin();
        let mut text = String::new();
        for row in rows {
            match self.style.format {
                Format::Tsv => {
                    let cells: Vec<String> = self.columns.iter().map(|c| cell(c.value(row))).collect();
                    text.push_str(&cells.join("\t"));
                    text.push('\n');
                }
                Format::Json => {
                    text.push_str(if self.printed == 0 { "[\n" } else { "," });
                    text.push_str(&json_row(self.columns, row));
                    text.push('\n');
                }
                Format::Table => {
                    let by_title: Map<String, Value> = self
                        .columns
                        .iter()
                        .map(|c| (c.title.clone(), c.value(row).cloned().unwrap_or(Value::Null)))
                        .collect();
                    self.table.push(Value::Object(by_title));
                }
            }
            self.printed += 1;
        }
        self.write(text.as_bytes());
        !self.closed
    }

    /// Ends the listing: `]` of JSON, or the whole table.
    pub fn finish(mut self) {
        self.begin();
        match self.style.format {
            Format::Tsv => {}
            Format::Json => {
                let end: &[u8] = if self.printed == 0 { b"[]\n" } else { b"]\n" };
                self.write(end);
            }
            Format::Table => {
                let titles: Vec<String> = self.columns.iter().map(|c| c.title.clone()).collect();
                let table = render(self.style, &titles, &self.table);
                self.write(table.as_bytes());
            }
        }
        let _ = self.out.flush();
    }

    fn write(&mut self, bytes: &[u8]) {
        if self.closed || bytes.is_empty() {
            return;
        }
        // A closed stdout (`warrenctl list_queues | head`) ends the listing quietly.
        if self.out.write_all(bytes).and_then(|_| self.out.flush()).is_err() {
            self.closed = true;
        }
    }
}

/// Fetches `path` (with `query`, `&`-joined, no leading `?`) a page at a
/// time and hands each page's items to `each`, until the last page or until
/// `each` returns false. An answer that is a plain array (an API without
/// pagination) is the whole list. A 404 on the first page is the vhost
/// `vhost` missing when it is, else the API's error.
///
/// It always ends, whatever the server answers: it asks for at most the
/// first answer's `page_count` pages (rows added meanwhile are not listed),
/// and stops early at `page_out_of_range`, an empty page, or an answer for
/// another page than the one asked for (a server that ignores `page=`).
pub fn for_each_page(
    api: &Api,
    path: &str,
    query: &str,
    vhost: Option<&str>,
    mut each: impl FnMut(Vec<Value>) -> bool,
) -> Result<()> {
    let mut page = 1usize;
    // The first answer's page_count.
    let mut last_page: Option<usize> = None;
    loop {
        let mut url = format!("{path}?page={page}&page_size={PAGE_SIZE}");
        if !query.is_empty() {
            url.push('&');
            url.push_str(query);
        }
        let reply = api.get(&url)?;
        if page > 1 && reply.status == 400 {
            // The list shrank while it was read: it has ended.
            if error_fields(&reply.body).0.as_deref() == Some("page_out_of_range") {
                return Ok(());
            }
        }
        if page == 1 && matches!(reply.status, 400 | 404) {
            if let Some(vhost) = vhost {
                return Err(api.explain_missing(None, vhost, reply));
            }
        }
        let items = match reply.ok()?.json()? {
            // The whole list; on a later page, the same list again.
            Value::Array(_) if page > 1 => return Ok(()),
            Value::Array(items) => {
                each(items);
                return Ok(());
            }
            Value::Object(mut answer) => {
                let number = |key: &str| answer.get(key).and_then(Value::as_u64);
                if page > 1 && number("page").is_some_and(|p| p != page as u64) {
                    return Ok(());
                }
                let page_count = number("page_count").unwrap_or(1);
                last_page.get_or_insert(usize::try_from(page_count).unwrap_or(usize::MAX));
                match answer.remove("items") {
                    Some(Value::Array(items)) => items,
                    _ => return Err(CtlError::Software(format!("the API answered {url} without items"))),
                }
            }
            other => {
                return Err(CtlError::Software(format!("the API answered {url} with {other}")));
            }
        };
        if page > 1 && items.is_empty() {
            return Ok(());
        }
        if !each(items) || last_page.is_none_or(|last| page >= last) {
            return Ok(());
        }
        page += 1;
    }
}

impl Ctx<'_> {
    /// Prints a paginated listing of `path` as it arrives.
    pub fn paged_listing(&mut self, path: &str, vhost: Option<&str>, columns: &[Column]) -> Result<()> {
        let query = format!("sort=name&columns={}", columns_query(columns));
        let api = self.api;
        let mut printer = Printer::start(self.style, columns, self.stdout);
        let result = for_each_page(api, path, &query, vhost, |items| printer.rows(&items));
        if result.is_ok() {
            printer.finish();
        }
        result
    }

    /// Prints a listing the API answers in one array (bindings, consumers).
    pub fn whole_listing(&mut self, path: &str, vhost: Option<&str>, columns: &[Column]) -> Result<()> {
        let reply = self.api.get(path)?;
        if let (Some(vhost), 400 | 404) = (vhost, reply.status) {
            return Err(self.api.explain_missing(None, vhost, reply));
        }
        let rows = reply.ok()?.rows()?;
        let mut printer = Printer::start(self.style, columns, self.stdout);
        printer.rows(&rows);
        printer.finish();
        Ok(())
    }
}

#[cfg(test)]
#[path = "listing_tests.rs"]
mod tests;
