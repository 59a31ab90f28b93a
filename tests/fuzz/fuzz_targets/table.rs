//! Field-table validation and walking: `check_table` (the structural,
//! depth-limited check of tables forwarded as bytes), `find`, the typed
//! readers and the JSON rendering, against amq-protocol's parser. What the
//! check accepts nests at most `MAX_DEPTH` levels, and amq-protocol parses it
//! unless a key is not UTF-8; `find` sees every key as amq-protocol does.
#![no_main]

use amq_protocol::types::parsing::{parse_field_table, parse_value};
use amq_protocol::types::{AMQPValue, FieldTable};
use libfuzzer_sys::fuzz_target;
use warren::protocol::json::{json_to_table, table_to_json};
use warren::protocol::table::{
    as_int, as_str, check_prefixed_table, check_table, describe, find, TableFault, MAX_DEPTH,
};
use warren_fuzz::{gen_table, gen_value, hex, table_depth};

/// The length of the encoded value at the front of a checked `b`.
fn value_len(b: &[u8]) -> usize {
    1 + match b[0] {
        b't' | b'b' | b'B' => 1,
        b's' | b'u' | b'U' => 2,
        b'I' | b'i' | b'f' => 4,
        b'l' | b'L' | b'd' | b'T' => 8,
        b'D' => 5,
        b'V' => 0,
        _ => 4 + u32::from_be_bytes(b[1..5].try_into().unwrap()) as usize,
    }
}

/// The top-level entries of a checked table: (key, encoded value). Nested
/// tables are skipped by their length, so nothing recurses.
fn entries(mut b: &[u8]) -> Vec<(&[u8], &[u8])> {
    let mut out = Vec::new();
    while let Some((&n, rest)) = b.split_first() {
        let (k, rest) = rest.split_at(usize::from(n));
        let len = value_len(rest);
        out.push((k, &rest[..len]));
        b = &rest[len..];
    }
    out
}

/// Whether every key of a checked table, nested ones included, is UTF-8.
fn keys_utf8(b: &[u8]) -> bool {
    let mut stack = vec![(b, true)];
    while let Some((mut b, table)) = stack.pop() {
        while !b.is_empty() {
            if table {
                let n = usize::from(b[0]);
                if std::str::from_utf8(&b[1..1 + n]).is_err() {
                    return false;
                }
                b = &b[1 + n..];
            }
            let len = value_len(b);
            if matches!(b[0], b'F' | b'A') {
                stack.push((&b[5..len], b[0] == b'F'));
            }
            b = &b[len..];
        }
    }
    true
}

fn walk(t: &FieldTable) {
    for v in t.inner().values() {
        let _ = (as_int(v), as_str(v), describe(v));
        if let AMQPValue::FieldTable(inner) = v {
            walk(inner);
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let x = hex(data);
    let checked = check_table(data);
    let mut framed = (data.len() as u32).to_be_bytes().to_vec();
    framed.extend_from_slice(data);
    assert_eq!(check_prefixed_table(&framed), checked, "with and without the length prefix");
    framed.extend_from_slice(b"trailing");
    assert_eq!(check_prefixed_table(&framed), checked, "bytes after the table are not looked at");
    framed.truncate(framed.len() - 8);
    if checked == Err(TableFault::TooDeep) || checked == Err(TableFault::Malformed) {
        // Only what is refused for depth may be well formed; then it is deep.
        if let (Err(TableFault::TooDeep), Ok((_, t))) = (checked, parse_field_table(&framed[..])) {
            assert!(table_depth(&t) > MAX_DEPTH, "refused as too deep but is not: {x}");
        }
        return;
    }
    let t = match parse_field_table(&framed[..]) {
        Ok((_, t)) => t,
        Err(e) => {
            assert!(!keys_utf8(data), "checked but amq-protocol refuses it ({e:?}): {x}");
            return;
        }
    };
    let d = table_depth(&t);
    assert!(d <= MAX_DEPTH, "checked a table {d} levels deep: {x}");
    let es = entries(data);
    for (k, value) in &es {
        let name = std::str::from_utf8(k).expect("amq-protocol took the key");
        let found = find(data, k).expect("every key is found");
        // amq-protocol keeps the last of duplicate keys, find (as RabbitMQ) the first.
        if es.iter().filter(|(o, _)| o == k).count() == 1 {
            assert_eq!(found, *value, "find gives another value for {name:?}: {x}");
            let (_, v) = parse_value(found).expect("a checked value parses");
            let theirs = t.inner().get(name).expect("amq-protocol has the key");
            assert_eq!(gen_value(&v), gen_value(theirs), "find disagrees on {name:?}: {x}");
        }
    }
    walk(&t);
    // Through JSON and back once may lose what JSON cannot say (a u64
    // timestamp past i64 becomes a double, like RabbitMQ's); a second trip
    // must change nothing more.
    let once = table_to_json(&t);
    if let Some(twice) = json_to_table(&once).map(|t| table_to_json(&t)) {
        let thrice = json_to_table(&twice).map(|t| table_to_json(&t));
        assert_eq!(thrice.as_ref(), Some(&twice), "JSON round trip is not stable: {x}");
    }
    // What amq-protocol writes, the check accepts.
    let written = gen_table(&t);
    assert_eq!(check_prefixed_table(&written), Ok(()), "refuses amq-protocol's encoding: {}", hex(&written));
});
