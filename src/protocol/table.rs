//! Field tables: a zero-allocation structural check for tables we forward as
//! raw bytes, and typed readers for the `x-` arguments we act on.

use amq_protocol::types::{AMQPValue, FieldTable};

/// Walks an encoded field table (without its 4-byte length prefix) and
/// checks that every key and value is well formed. Nothing is allocated.
pub fn validate_table(mut b: &[u8]) -> bool {
    while !b.is_empty() {
        let Some((&klen, rest)) = b.split_first() else { return false };
        if rest.len() < klen as usize {
            return false;
        }
        match skip_value(&rest[klen as usize..]) {
            Some(r) => b = r,
            None => return false,
        }
    }
    true
}

/// The encoded value (type byte first) of `key` in an encoded field table
/// (without its length prefix); nothing is allocated.
pub fn find<'a>(mut b: &'a [u8], key: &[u8]) -> Option<&'a [u8]> {
    while !b.is_empty() {
        let (&klen, rest) = b.split_first()?;
        let k = rest.get(..klen as usize)?;
        let value = &rest[klen as usize..];
        let after = skip_value(value)?;
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

/// Skips one typed value; returns what follows it.
fn skip_value(b: &[u8]) -> Option<&[u8]> {
    let (&t, b) = b.split_first()?;
    let fixed = match t {
        b't' | b'b' | b'B' => 1,
        b's' | b'u' | b'U' => 2,
        b'I' | b'i' | b'f' => 4,
        b'l' | b'L' | b'd' | b'T' => 8,
        b'D' => 5,
        b'V' => 0,
        b'S' | b'x' => return skip_len_prefixed(b).map(|(_, rest)| rest),
        b'F' => {
            let (inner, rest) = skip_len_prefixed(b)?;
            return validate_table(inner).then_some(rest);
        }
        b'A' => {
            let (mut inner, rest) = skip_len_prefixed(b)?;
            while !inner.is_empty() {
                inner = skip_value(inner)?;
            }
            return Some(rest);
        }
        _ => return None,
    };
    (b.len() >= fixed).then(|| &b[fixed..])
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
        assert!(validate_table(&bytes));
        // Cut inside the last entry (key 'v', type 'V'): no longer a table.
        assert!(!validate_table(&bytes[..bytes.len() - 1]));
        assert!(!validate_table(&bytes[..bytes.len() - 2]));
        assert!(validate_table(&bytes[..bytes.len() - 3]));
        assert!(!validate_table(&[1, b'k', b'Z']));
    }
}
