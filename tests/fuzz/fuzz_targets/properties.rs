//! The content-header scanner (`ContentHeader::scan`), against amq-protocol's
//! decoding of the same properties (`decode_properties`, which the broker
//! uses where it rewrites a message: dead-lettering, the admin API): what
//! the scanner accepts, amq-protocol must decode to the same values, with
//! the invalid bytes of a short string that is not UTF-8 as `?` (the
//! scanner forwards such strings as bytes; amq-protocol's are UTF-8), unless
//! a header key is not UTF-8 (then nothing decodes). Accepted headers nest
//! no deeper than the limit and survive a re-encoding.
#![no_main]

use amq_protocol::types::parsing::parse_field_table;
use libfuzzer_sys::fuzz_target;
use warren::protocol::properties::{decode_properties, encode_header, ContentHeader, PROPERTIES_OFFSET};
use warren::protocol::table::MAX_DEPTH;
use warren_fuzz::{hex, table_depth};

/// Whether every short-string property is UTF-8 and every header key too,
/// walking the same layout as the scanner (only called on accepted headers).
fn all_utf8(p: &[u8]) -> bool {
    let flags = u16::from_be_bytes([p[12], p[13]]);
    let mut at = PROPERTIES_OFFSET + 2;
    for bit in (2..16).rev() {
        if flags & (1 << bit) == 0 {
            continue;
        }
        match bit {
            13 => {
                let n = u32::from_be_bytes(p[at..at + 4].try_into().unwrap()) as usize;
                let framed = &p[at..at + 4 + n];
                if parse_field_table(framed).is_err() {
                    return false;
                }
                at += 4 + n;
            }
            12 | 11 => at += 1,
            6 => at += 8,
            _ => {
                let n = usize::from(p[at]);
                if std::str::from_utf8(&p[at + 1..at + 1 + n]).is_err() {
                    return false;
                }
                at += 1 + n;
            }
        }
    }
    true
}

/// `b` with every byte of an invalid UTF-8 sequence as `?`.
fn qmarks(b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    for chunk in b.utf8_chunks() {
        out.extend_from_slice(chunk.valid().as_bytes());
        out.extend(std::iter::repeat_n(b'?', chunk.invalid().len()));
    }
    out
}

fuzz_target!(|data: &[u8]| {
    let x = hex(data);
    let h = match ContentHeader::scan(data) {
        Ok(h) => h,
        Err(e) => {
            assert!(matches!(e.code(), 501 | 505 | 406), "{e}: {x}");
            return;
        }
    };
    let Some(props) = decode_properties(data) else {
        assert!(!all_utf8(data), "scanned but amq-protocol cannot decode the properties: {x}");
        return;
    };
    let text = |span: Option<warren::protocol::properties::Span>| span.map(|s| qmarks(&data[s.range()]));
    let short = |s: Option<&amq_protocol::types::ShortString>| s.map(|s| s.as_str().as_bytes().to_vec());
    assert_eq!(h.delivery_mode, props.delivery_mode().unwrap_or(0), "delivery mode: {x}");
    assert_eq!(h.priority, *props.priority(), "priority: {x}");
    assert_eq!(text(h.reply_to), short(props.reply_to().as_ref()), "reply-to: {x}");
    assert_eq!(text(h.expiration), short(props.expiration().as_ref()), "expiration: {x}");
    assert_eq!(text(h.user_id), short(props.user_id().as_ref()), "user-id: {x}");
    match (h.headers, props.headers()) {
        (None, None) => {}
        (Some(span), Some(t)) => {
            let raw = &data[span.range()];
            let mut framed = (raw.len() as u32).to_be_bytes().to_vec();
            framed.extend_from_slice(raw);
            let (_, parsed) = parse_field_table(&framed[..]).expect("decoded once already");
            assert_eq!(warren_fuzz::gen_table(&parsed), warren_fuzz::gen_table(t), "headers: {x}");
            let d = table_depth(t);
            assert!(d <= MAX_DEPTH, "headers {d} levels deep accepted: {x}");
        }
        (a, b) => panic!("headers present for one side only ({a:?} / {b:?}): {x}"),
    }
    // The broker's rewrite path: decode, encode, and scan what it wrote.
    let rewritten = encode_header(h.body_size, &props);
    let again =
        ContentHeader::scan(&rewritten).unwrap_or_else(|e| panic!("{e}: rewritten {}", hex(&rewritten)));
    assert_eq!(
        (again.body_size, again.delivery_mode, again.priority),
        (h.body_size, h.delivery_mode, h.priority)
    );
    let props2 = decode_properties(&rewritten).expect("Warren's own header decodes");
    assert_eq!(encode_header(h.body_size, &props2), rewritten, "re-encoding is not stable: {x}");
});
