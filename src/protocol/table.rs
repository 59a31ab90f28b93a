//! Field tables: a zero-allocation structural check for tables we forward as
//! raw bytes, and typed readers for the `x-` arguments we act on.

use amq_protocol::types::{AMQPValue, FieldTable};

/// How deeply field tables and arrays may nest inside each other, the
/// outermost table counting as the first level. Every walker of these values
/// recurses (ours, amq-protocol's parser and encoder, even `Drop`), so a
/// client must not choose the depth: a 128 KiB frame holds ~26,000 levels,
/// enough to overflow any thread's stack. Real messages nest a few levels
/// (`x-death` is four); RabbitMQ itself sets no limit.
pub const MAX_DEPTH: usize = 64;

/// Why an encoded field table was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TableFault {
    Malformed,
    /// Tables and arrays nested more than [`MAX_DEPTH`] levels.
    TooDeep,
}

impl TableFault {
    /// The reply text's detail for a table that is too deep.
    pub fn too_deep_text(place: &str) -> String {
        format!("field table in {place} nested more than {MAX_DEPTH} levels deep")
    }
}

/// Walks an encoded field table (without its 4-byte length prefix) and
/// checks that every key and value is well formed and that it nests at most
/// [`MAX_DEPTH`] levels. Nothing is allocated.
pub fn check_table(b: &[u8]) -> Result<(), TableFault> {
    check_entries(b, 1)
}

/// Like [`check_table`], for a table with its 4-byte length prefix at the
/// start of `b` (whatever follows it is not looked at).
pub fn check_prefixed_table(b: &[u8]) -> Result<(), TableFault> {
    skip_len_prefixed(b).map_or(Err(TableFault::Malformed), |(inner, _)| check_table(inner))
}

fn check_entries(mut b: &[u8], depth: usize) -> Result<(), TableFault> {
    while !b.is_empty() {
        let (&klen, rest) = b.split_first().ok_or(TableFault::Malformed)?;
        if rest.len() < klen as usize {
            return Err(TableFault::Malformed);
        }
        b = skip_value(&rest[klen as usize..], depth)?;
    }
    Ok(())
}

/// The encoded value (type byte first) of `key` in an encoded field table
/// (without its length prefix); nothing is allocated.
pub fn find<'a>(mut b: &'a [u8], key: &[u8]) -> Option<&'a [u8]> {
    while !b.is_empty() {
        let (&klen, rest) = b.split_first()?;
        let k = rest.get(..klen as usize)?;
        let value = &rest[klen as usize..];
        let after = skip_value(value, 1).ok()?;
        if k == key {
            return Some(&value[..value.len() - after.len()]);
        }
        b = after;
    }
    None
}

fn skip_len_prefixed(b: &[u8]) -> Option<(&[u8], &[u8])> {
    if b.len() < 4 {
        return None;
    }
    let n = u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize;
    let b = &b[4..];
    (b.len() >= n).then(|| (&b[..n], &b[n..]))
}

/// Skips one typed value inside a container `depth` levels deep; returns
/// what follows it.
fn skip_value(b: &[u8], depth: usize) -> Result<&[u8], TableFault> {
    let (&t, b) = b.split_first().ok_or(TableFault::Malformed)?;
    let fixed = match t {
        b't' | b'b' | b'B' => 1,
        b's' | b'u' | b'U' => 2,
        b'I' | b'i' | b'f' => 4,
        b'l' | b'L' | b'd' | b'T' => 8,
        b'D' => 5,
        b'V' => 0,
        b'S' | b'x' => return skip_len_prefixed(b).map(|(_, rest)| rest).ok_or(TableFault::Malformed),
        b'F' | b'A' => {
            let (inner, rest) = skip_len_prefixed(b).ok_or(TableFault::Malformed)?;
            if depth >= MAX_DEPTH {
                return Err(TableFault::TooDeep);
            }
            if t == b'F' {
                check_entries(inner, depth + 1)?;
            } else {
                let mut inner = inner;
                while !inner.is_empty() {
                    inner = skip_value(inner, depth + 1)?;
                }
            }
            return Ok(rest);
        }
        _ => return Err(TableFault::Malformed),
    };
    b.get(fixed..).ok_or(TableFault::Malformed)
}

/// An integer argument of any AMQP integer type.
pub fn as_int(v: &AMQPValue) -> Option<i64> {
    Some(match v {
        AMQPValue::ShortShortInt(x) => i64::from(*x),
        AMQPValue::ShortShortUInt(x) => i64::from(*x),
        AMQPValue::ShortInt(x) => i64::from(*x),
        AMQPValue::ShortUInt(x) => i64::from(*x),
        AMQPValue::LongInt(x) => i64::from(*x),
        AMQPValue::LongUInt(x) => i64::from(*x),
        AMQPValue::LongLongInt(x) => *x,
        _ => return None,
    })
}

/// A string argument, short or long.
pub fn as_str(v: &AMQPValue) -> Option<&str> {
    match v {
        AMQPValue::ShortString(s) => Some(s.as_str()),
        AMQPValue::LongString(s) => std::str::from_utf8(s.as_bytes()).ok(),
        _ => None,
    }
}

pub fn get<'a>(t: &'a FieldTable, key: &str) -> Option<&'a AMQPValue> {
    t.inner().get(key)
}

/// Renders a value the way RabbitMQ prints it in error texts: `{long,5}` style.
pub fn describe(v: &AMQPValue) -> String {
    match v {
        AMQPValue::Boolean(b) => format!("{{bool,{b}}}"),
        AMQPValue::LongString(s) => {
            format!("{{longstr,<<\"{}\">>}}", String::from_utf8_lossy(s.as_bytes()))
        }
        AMQPValue::ShortString(s) => format!("{{shortstr,<<\"{}\">>}}", s.as_str()),
        AMQPValue::Void => "none".to_owned(),
        other => match as_int(other) {
            Some(i) => format!("{{{},{i}}}", type_name(other)),
            None => format!("{other:?}"),
        },
    }
}

/// The AMQP type name RabbitMQ prints for a value in its error texts.
pub fn type_name(v: &AMQPValue) -> &'static str {
    match v {
        AMQPValue::Boolean(_) => "bool",
        AMQPValue::ShortShortInt(_) => "byte",
        AMQPValue::ShortShortUInt(_) => "unsignedbyte",
        AMQPValue::ShortInt(_) => "short",
        AMQPValue::ShortUInt(_) => "unsignedshort",
        AMQPValue::LongInt(_) => "signedint",
        AMQPValue::LongUInt(_) => "unsignedint",
        AMQPValue::LongLongInt(_) => "long",
        AMQPValue::Float(_) => "float",
        AMQPValue::Double(_) => "double",
        AMQPValue::DecimalValue(_) => "decimal",
        AMQPValue::ShortString(_) => "shortstr",
        AMQPValue::LongString(_) => "longstr",
        AMQPValue::FieldArray(_) => "array",
        AMQPValue::Timestamp(_) => "timestamp",
        AMQPValue::FieldTable(_) => "table",
        AMQPValue::ByteArray(_) => "bytearray",
        AMQPValue::Void => "void",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use amq_protocol::frame::WriteContext;
    use amq_protocol::types::generation::gen_field_table;
    use amq_protocol::types::{FieldArray, LongString};

    fn encoded(t: &FieldTable) -> Vec<u8> {
        let ctx = gen_field_table(t)(WriteContext::from(Vec::new())).unwrap();
        ctx.into_inner().0[4..].to_vec()
    }

    #[test]
    fn accepts_what_amq_protocol_writes_and_rejects_truncation() {
        let mut inner = FieldTable::default();
        inner.insert("n".into(), AMQPValue::LongLongInt(-5));
        let mut t = FieldTable::default();
        t.insert("s".into(), AMQPValue::LongString(LongString::from("hello")));
        t.insert("t".into(), AMQPValue::FieldTable(inner));
        t.insert(
            "a".into(),
            AMQPValue::FieldArray(FieldArray::from(vec![AMQPValue::Boolean(true), AMQPValue::Double(1.5)])),
        );
        t.insert("v".into(), AMQPValue::Void);
        let bytes = encoded(&t);
        assert_eq!(check_table(&bytes), Ok(()));
        // Cut inside the last entry (key 'v', type 'V'): no longer a table.
        assert_eq!(check_table(&bytes[..bytes.len() - 1]), Err(TableFault::Malformed));
        assert_eq!(check_table(&bytes[..bytes.len() - 2]), Err(TableFault::Malformed));
        assert_eq!(check_table(&bytes[..bytes.len() - 3]), Ok(()));
        assert_eq!(check_table(&[1, b'k', b'Z']), Err(TableFault::Malformed));
    }

    /// A table whose key "k" holds arrays nested so that the whole nests
    /// `levels` deep, the innermost holding a void.
    pub(crate) fn nested(levels: usize) -> Vec<u8> {
        let mut v = vec![1, b'k'];
        for i in 0..levels - 1 {
            // The array's contents: the arrays inside it (5 bytes each) and the void.
            v.push(b'A');
            v.extend(((5 * (levels - 2 - i) + 1) as u32).to_be_bytes());
        }
        v.push(b'V');
        v
    }

    #[test]
    fn nesting_is_limited_without_recursing_past_the_limit() {
        assert_eq!(check_table(&nested(MAX_DEPTH)), Ok(()));
        assert_eq!(check_table(&nested(MAX_DEPTH + 1)), Err(TableFault::TooDeep));
        // Far beyond: refused at the limit, long before the stack could matter.
        assert_eq!(check_table(&nested(100_000)), Err(TableFault::TooDeep));
        // What passes, amq-protocol parses.
        let framed = [&(nested(MAX_DEPTH).len() as u32).to_be_bytes()[..], &nested(MAX_DEPTH)].concat();
        assert!(amq_protocol::types::parsing::parse_field_table(&framed[..]).is_ok());
        assert_eq!(check_prefixed_table(&framed), Ok(()));
        assert_eq!(check_prefixed_table(&framed[..framed.len() - 1]), Err(TableFault::Malformed));
    }
}
