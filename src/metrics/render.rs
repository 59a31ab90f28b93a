//! The Prometheus text exposition format (version 0.0.4), written into one
//! `String`: family headers, samples with escaped labels, histograms.
//! Pure: no I/O, no broker; nothing here allocates per sample once the
//! string has room. May use nothing of ours.

use std::fmt::Write;

/// How Prometheus is told to read a family.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Counter,
    Gauge,
    Untyped,
    Histogram,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::Untyped => "untyped",
            Kind::Histogram => "histogram",
        }
    }
}

/// A metric family: its name without the prefix, its help and its type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Family {
    pub name: &'static str,
    pub help: &'static str,
    pub kind: Kind,
}

/// A sample's value: integers as integers, floats the way Prometheus
/// spells them (`NaN`, `+Inf`, `-Inf`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Value {
    Int(u64),
    Float(f64),
}

impl From<u64> for Value {
    fn from(v: u64) -> Value {
        Value::Int(v)
    }
}

impl From<u32> for Value {
    fn from(v: u32) -> Value {
        Value::Int(u64::from(v))
    }
}

impl From<bool> for Value {
    fn from(v: bool) -> Value {
        Value::Int(u64::from(v))
    }
}

impl From<f64> for Value {
    fn from(v: f64) -> Value {
        Value::Float(v)
    }
}

/// A histogram to write: cumulative counts under each bound, the bounds
/// in units that `divisor` turns into the family's (1e9: ns to seconds).
#[derive(Debug, Clone, Copy)]
pub struct Buckets<'a> {
    pub bounds: &'a [u64],
    pub cumulative: &'a [u64],
    pub divisor: f64,
    pub sum: f64,
    pub count: u64,
}

/// Writes families into `out`, each name after `prefix` (`rabbitmq_`,
/// `rabbitmq_detailed_`, `warren_`).
pub struct Text<'a> {
    out: &'a mut String,
    prefix: &'a str,
}

impl<'a> Text<'a> {
    pub fn new(out: &'a mut String, prefix: &'a str) -> Text<'a> {
        Text { out, prefix }
    }

    /// The same output with another prefix.
    pub fn with_prefix<'b>(&'b mut self, prefix: &'b str) -> Text<'b> {
        Text { out: self.out, prefix }
    }

    /// `# TYPE` and `# HELP` of a family; its samples must follow at once.
    pub fn header(&mut self, f: &Family) {
        let _ = writeln!(self.out, "# TYPE {}{} {}", self.prefix, f.name, f.kind.as_str());
        let _ = write!(self.out, "# HELP {}{} ", self.prefix, f.name);
        escape_help(self.out, f.help);
        self.out.push('\n');
    }

    /// One sample of `f`.
    pub fn sample(&mut self, f: &Family, labels: &[(&str, &str)], value: impl Into<Value>) {
        self.line(f.name, "", labels, None, value.into());
    }

    /// A family with one sample: its header, then the sample.
    pub fn single(&mut self, f: &Family, labels: &[(&str, &str)], value: impl Into<Value>) {
        self.header(f);
        self.sample(f, labels, value);
    }

    /// A histogram's samples: a line per bucket, +Inf, sum and count.
    pub fn histogram(&mut self, f: &Family, labels: &[(&str, &str)], h: &Buckets<'_>) {
        let mut le = String::with_capacity(24);
        for (b, c) in h.bounds.iter().zip(h.cumulative) {
            le.clear();
            write_value(&mut le, Value::Float(*b as f64 / h.divisor));
            self.line(f.name, "_bucket", labels, Some(&le), Value::Int(*c));
        }
        self.line(f.name, "_bucket", labels, Some("+Inf"), Value::Int(h.count));
        self.line(f.name, "_sum", labels, None, Value::Float(h.sum));
        self.line(f.name, "_count", labels, None, Value::Int(h.count));
    }

    fn line(&mut self, name: &str, suffix: &str, labels: &[(&str, &str)], le: Option<&str>, value: Value) {
        let out = &mut *self.out;
        out.push_str(self.prefix);
        out.push_str(name);
        out.push_str(suffix);
        if !labels.is_empty() || le.is_some() {
            out.push('{');
            let extra = le.map(|v| ("le", v));
            for (i, (k, v)) in labels.iter().copied().chain(extra).enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(k);
                out.push_str("=\"");
                escape_label(out, v);
                out.push('"');
            }
            out.push('}');
        }
        out.push(' ');
        write_value(out, value);
        out.push('\n');
    }
}

/// A value as the text format has it.
pub fn write_value(out: &mut String, value: Value) {
    match value {
        Value::Int(v) => {
            let _ = write!(out, "{v}");
        }
        Value::Float(v) if v.is_nan() => out.push_str("NaN"),
        Value::Float(v) if v == f64::INFINITY => out.push_str("+Inf"),
        Value::Float(v) if v == f64::NEG_INFINITY => out.push_str("-Inf"),
        // Rust's shortest round-trip form; `1e-7` style is valid too, and
        // whole numbers get no fraction (`2`, not `2.0`).
        Value::Float(v) => {
            let _ = write!(out, "{v}");
        }
    }
}

/// A label value: backslash, double quote and newline escaped.
pub fn escape_label(out: &mut String, v: &str) {
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

/// Help text: backslash and newline escaped (quotes stay).
fn escape_help(out: &mut String, v: &str) {
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const F: Family = Family { name: "queue_messages", help: "Depth\nof a queue", kind: Kind::Gauge };

    #[test]
    fn a_family_has_type_and_help_and_escaped_labels() {
        let mut s = String::new();
        let mut t = Text::new(&mut s, "rabbitmq_");
        t.header(&F);
        t.sample(&F, &[], 3u64);
        t.sample(&F, &[("vhost", "/"), ("queue", "a\"b\\c\nd")], 0.5);
        assert_eq!(
            s,
            "# TYPE rabbitmq_queue_messages gauge\n# HELP rabbitmq_queue_messages Depth\\nof a queue\n\
             rabbitmq_queue_messages 3\n\
             rabbitmq_queue_messages{vhost=\"/\",queue=\"a\\\"b\\\\c\\nd\"} 0.5\n"
        );
    }

    #[test]
    fn floats_are_spelled_as_prometheus_reads_them() {
        let cases = [
            (f64::NAN, "NaN"),
            (f64::INFINITY, "+Inf"),
            (f64::NEG_INFINITY, "-Inf"),
            (2.0, "2"),
            (1e-4, "0.0001"),
        ];
        for (v, want) in cases {
            let mut s = String::new();
            write_value(&mut s, Value::Float(v));
            assert_eq!(s, want);
        }
    }

    #[test]
    fn a_histogram_is_cumulative_with_inf_sum_and_count() {
        let h = Family { name: "fsync_seconds", help: "h", kind: Kind::Histogram };
        let mut s = String::new();
        let b = Buckets {
            bounds: &[1_000_000, 10_000_000],
            cumulative: &[1, 3],
            divisor: 1e9,
            sum: 0.0125,
            count: 4,
        };
        Text::new(&mut s, "warren_").histogram(&h, &[], &b);
        assert_eq!(
            s,
            "warren_fsync_seconds_bucket{le=\"0.001\"} 1\nwarren_fsync_seconds_bucket{le=\"0.01\"} 3\n\
             warren_fsync_seconds_bucket{le=\"+Inf\"} 4\nwarren_fsync_seconds_sum 0.0125\nwarren_fsync_seconds_count 4\n"
        );
    }
}
