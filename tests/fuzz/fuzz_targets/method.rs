//! Method decoding as Warren does it (`protocol::method::decode`): the
//! hand-written hot paths, the depth check on field tables, then
//! amq-protocol. Whatever is accepted must nest no deeper than the limit,
//! re-encode, and decode again to the same thing; whatever is refused must
//! be refused with a connection error (or 406 for a table too deep).
#![no_main]

use amq_protocol::protocol::parse_class;
use libfuzzer_sys::fuzz_target;
use nom::combinator::all_consuming;
use nom::Parser;
use warren::protocol::method::{decode, ids, Method};
use warren::protocol::table::MAX_DEPTH;
use warren_fuzz::{gen_class, hex, method_tables, table_depth};

fuzz_target!(|data: &[u8]| {
    match decode(data) {
        Ok(Method::Other(class)) => {
            for t in method_tables(&class) {
                let d = table_depth(t);
                assert!(d <= MAX_DEPTH, "accepted a table {d} levels deep: {}", hex(data));
            }
            assert_eq!(
                (class.get_amqp_class_id(), class.get_amqp_method_id()),
                ids(data),
                "decoded as another method"
            );
            let once = gen_class(&class);
            let again = match all_consuming(parse_class).parse(&once[..]) {
                Ok((_, c)) => c,
                Err(e) => panic!("amq-protocol cannot read back its encoding ({e:?}): {}", hex(&once)),
            };
            assert_eq!(gen_class(&again), once, "encoding is not stable: {}", hex(data));
        }
        Ok(_) => {}
        Err(e) => {
            assert!(matches!(e.code(), 501 | 540 | 406), "{e}: {}", hex(data));
            assert!(e.text.len() <= 255);
        }
    }
});
