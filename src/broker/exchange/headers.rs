//! Headers: bindings match on the message's `headers` table, `x-match`
//! = all | any | all-with-x | any-with-x (the `-with-x` forms also compare
//! keys starting with `x-`).

use amq_protocol::types::{AMQPValue, FieldTable};

use super::list::BindingList;
use super::{Binding, Destination};
use crate::protocol::table::{as_int, as_str};
use crate::protocol::AmqpError;

#[derive(Debug, Default)]
pub(super) struct Table {
    bindings: BindingList,
    /// Each binding's match rule, worked out once at bind time (same order).
    specs: Vec<Spec>,
}

/// A binding's arguments as a match rule: the mode and the pairs to compare.
#[derive(Debug, Clone)]
struct Spec {
    mode: Mode,
    wanted: Vec<(String, AMQPValue)>,
}

impl Spec {
    fn of(args: &FieldTable) -> Option<Spec> {
        let mode = mode(args)?;
        let with_x = matches!(mode, Mode::AllWithX | Mode::AnyWithX);
        let wanted = args
            .inner()
            .iter()
            .filter(|(k, _)| k.as_str() != "x-match" && (with_x || !k.as_str().starts_with("x-")))
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect();
        Some(Spec { mode, wanted })
    }

    fn matches(&self, headers: Option<&FieldTable>) -> bool {
        let hit = |(k, v): &(String, AMQPValue)| {
            headers.and_then(|h| h.inner().get(k.as_str())).is_some_and(|hv| {
                // A void binding value only asks for the key to be present.
                matches!(v, AMQPValue::Void) || same_value(v, hv)
            })
        };
        match self.mode {
            Mode::All | Mode::AllWithX => self.wanted.iter().all(hit),
            Mode::Any | Mode::AnyWithX => self.wanted.iter().any(hit),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    All,
    Any,
    AllWithX,
    AnyWithX,
}

fn mode(args: &FieldTable) -> Option<Mode> {
    match args.inner().get("x-match") {
        None => Some(Mode::All),
        Some(v) => match as_str(v)? {
            "all" => Some(Mode::All),
            "any" => Some(Mode::Any),
            "all-with-x" => Some(Mode::AllWithX),
            "any-with-x" => Some(Mode::AnyWithX),
            _ => None,
        },
    }
}

pub(super) fn validate(args: &FieldTable) -> Result<(), AmqpError> {
    match mode(args) {
        Some(_) => Ok(()),
        None => Err(AmqpError::precondition_failed(format!(
            "Invalid x-match field value {}; expected all, any, all-with-x, or any-with-x",
            args.inner().get("x-match").map(crate::protocol::table::describe).unwrap_or_default()
        ))),
    }
}

/// Values compare as RabbitMQ compares them: numbers by value, strings by bytes.
fn same_value(a: &AMQPValue, b: &AMQPValue) -> bool {
    if let (Some(x), Some(y)) = (as_int(a), as_int(b)) {
        return x == y;
    }
    match (a, b) {
        (
            AMQPValue::LongString(_) | AMQPValue::ShortString(_),
            AMQPValue::LongString(_) | AMQPValue::ShortString(_),
        ) => crate::protocol::same_name(str_bytes(a), str_bytes(b)),
        _ => a == b,
    }
}

fn str_bytes(v: &AMQPValue) -> &[u8] {
    match v {
        AMQPValue::LongString(s) => s.as_bytes(),
        AMQPValue::ShortString(s) => s.as_str().as_bytes(),
        _ => &[],
    }
}

#[cfg(test)]
fn matches(args: &FieldTable, headers: Option<&FieldTable>) -> bool {
    Spec::of(args).is_some_and(|s| s.matches(headers))
}

impl Table {
    pub fn add(&mut self, b: Binding) -> bool {
        // Arguments were validated before binding; an invalid rule never matches.
        let spec = Spec::of(&b.arguments).unwrap_or(Spec { mode: Mode::Any, wanted: Vec::new() });
        let added = self.bindings.add(b);
        if added {
            self.specs.push(spec);
        }
        added
    }
    pub fn remove(&mut self, b: &Binding) -> bool {
        match self.bindings.remove(b) {
            Some(i) => {
                self.specs.swap_remove(i);
                true
            }
            None => false,
        }
    }
    pub fn all(&self) -> Vec<Binding> {
        self.bindings.to_vec()
    }
    pub fn is_empty(&self) -> bool {
        self.bindings.is_empty()
    }
    pub fn route(&self, headers: Option<&FieldTable>, out: &mut Vec<Destination>) {
        for (b, spec) in self.bindings.iter().zip(&self.specs) {
            if spec.matches(headers) {
                out.push(b.destination.clone());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use amq_protocol::types::LongString;

    fn table(pairs: &[(&str, AMQPValue)]) -> FieldTable {
        let mut t = FieldTable::default();
        for (k, v) in pairs {
            t.insert((*k).into(), v.clone());
        }
        t
    }

    #[test]
    fn all_any_and_with_x() {
        let s = |v: &str| AMQPValue::LongString(LongString::from(v));
        let msg = table(&[
            ("format", s("pdf")),
            ("type", s("report")),
            ("x-tag", s("t")),
            ("n", AMQPValue::LongInt(5)),
        ]);
        let all = table(&[("x-match", s("all")), ("format", s("pdf")), ("type", s("report"))]);
        let all_miss = table(&[("x-match", s("all")), ("format", s("pdf")), ("type", s("log"))]);
        let any = table(&[("x-match", s("any")), ("format", s("zip")), ("type", s("report"))]);
        let default_all = table(&[("format", s("pdf")), ("n", AMQPValue::LongLongInt(5))]);
        let x_ignored = table(&[("x-match", s("all")), ("x-tag", s("other"))]);
        let x_used = table(&[("x-match", s("all-with-x")), ("x-tag", s("other"))]);
        let any_x = table(&[("x-match", s("any-with-x")), ("x-tag", s("t"))]);
        let void = table(&[("type", AMQPValue::Void)]);
        assert!(matches(&all, Some(&msg)));
        assert!(!matches(&all_miss, Some(&msg)));
        assert!(matches(&any, Some(&msg)));
        assert!(matches(&default_all, Some(&msg)));
        assert!(matches(&x_ignored, Some(&msg)));
        assert!(!matches(&x_used, Some(&msg)));
        assert!(matches(&any_x, Some(&msg)));
        assert!(matches(&void, Some(&msg)));
        assert!(!matches(&any, None));
        assert!(validate(&table(&[("x-match", s("some"))])).is_err());
    }
}
