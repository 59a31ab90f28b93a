//! Permission patterns: RabbitMQ's configure / write / read regular
//! expressions, compiled once when they are set, never at check time.
//!
//! Like RabbitMQ's, a pattern is unanchored (a match anywhere in the name
//! counts) and `""` stands for `^$` (nothing). Warren compiles them with the
//! `regex` crate, which runs in time linear in the name, so no pattern can
//! stall a check; it differs from RabbitMQ's PCRE in refusing
//! backreferences and look-around (`(?=`, `(?!`, `(?<=`, `\1`): such a
//! pattern is refused when set, with the compiler's message.

use regex::Regex;

/// A compiled pattern and the text it was set with.
#[derive(Debug, Clone)]
pub struct Pattern {
    source: String,
    re: Regex,
}

/// Bounds what one pattern may compile to (a pattern comes from an
/// administrator, but a typo must not take memory from the broker).
const SIZE_LIMIT: usize = 1 << 20;

impl Pattern {
    pub fn new(source: &str) -> Result<Pattern, String> {
        let effective = if source.is_empty() { "^$" } else { source };
        let re = regex::RegexBuilder::new(effective)
            .size_limit(SIZE_LIMIT)
            .build()
            .map_err(|e| format!("invalid regular expression '{source}': {}", one_line(&e.to_string())))?;
        Ok(Pattern { source: source.to_owned(), re })
    }

    /// A topic permission pattern: `{username}` and `{vhost}` stand for the
    /// user's and the vhost's names, as in RabbitMQ (known when it is set,
    /// so the expansion happens once, here).
    pub fn expanded(source: &str, user: &str, vhost: &str) -> Result<Pattern, String> {
        let text = source.replace("{username}", user).replace("{vhost}", vhost);
        let mut p = Pattern::new(&text)?;
        p.source = source.to_owned();
        Ok(p)
    }

    pub fn as_str(&self) -> &str {
        &self.source
    }

    pub fn matches(&self, name: &str) -> bool {
        self.re.is_match(name)
    }
}

impl PartialEq for Pattern {
    fn eq(&self, other: &Self) -> bool {
        self.source == other.source
    }
}

/// The regex crate's messages span lines (with a caret under the fault).
fn one_line(s: &str) -> String {
    s.lines().map(str::trim).filter(|l| !l.is_empty()).collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unanchored_empty_matches_nothing_and_bad_ones_are_refused() {
        let p = Pattern::new("demo").unwrap();
        assert!(p.matches("my-demo-q") && !p.matches("dem"));
        let anchored = Pattern::new("^demo-(q|own.*)$").unwrap();
        assert!(anchored.matches("demo-own1") && !anchored.matches("xdemo-q"));
        let empty = Pattern::new("").unwrap();
        assert!(!empty.matches("q") && !empty.matches("amq.default"));
        assert!(Pattern::new(".*").unwrap().matches(""));
        let e = Pattern::new("(unclosed").unwrap_err();
        assert!(e.starts_with("invalid regular expression '(unclosed'") && !e.contains('\n'), "{e}");
        assert!(Pattern::new("(a)\\1").is_err(), "backreferences are refused");
        assert!(Pattern::new("a(?=b)").is_err(), "look-ahead is refused");
        let t = Pattern::expanded("^{username}\\.{vhost}$", "u1", "v").unwrap();
        assert!(t.matches("u1.v") && !t.matches("u2.v") && t.as_str() == "^{username}\\.{vhost}$");
        // A pattern that would compile to a huge automaton is refused, not built.
        assert!(Pattern::new("\\w{1000}\\w{1000}\\w{1000}").is_err());
    }
}
