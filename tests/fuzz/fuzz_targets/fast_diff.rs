//! Differential: Warren's hand-written `basic.publish`, `basic.ack` and
//! `basic.qos` decoders against amq-protocol's decoding of the same bytes.
//! Both accept with the same fields, or both refuse, with one documented
//! exception: a publish whose exchange or routing key is not UTF-8, which
//! Warren takes as bytes (as RabbitMQ does) and amq-protocol refuses.
#![no_main]

use amq_protocol::protocol::{basic, parse_class, AMQPClass};
use libfuzzer_sys::fuzz_target;
use nom::combinator::all_consuming;
use nom::Parser;
use warren::protocol::method::{decode, decode_fast, Method};
use warren_fuzz::hex;

fuzz_target!(|data: &[u8]| {
    let [sel, rest @ ..] = data else { return };
    // The ids first, so that every input reaches a fast path.
    let method = [40, 80, 10, 40][usize::from(sel & 3)];
    let mut v = vec![0, 60, 0, method];
    v.extend_from_slice(rest);
    let payload = &v[..];
    let fast = decode_fast(payload);
    let general = all_consuming(parse_class).parse(payload).map(|(_, c)| c);
    let x = hex(payload);
    match (&fast, &general) {
        (None, Err(_)) => {}
        (Some(Method::Publish(p)), Ok(AMQPClass::Basic(basic::AMQPMethod::Publish(q)))) => {
            assert_eq!(p.exchange, q.exchange.as_str().as_bytes(), "exchange: {x}");
            assert_eq!(p.routing_key, q.routing_key.as_str().as_bytes(), "routing key: {x}");
            assert_eq!((p.mandatory, p.immediate), (q.mandatory, q.immediate), "flags: {x}");
        }
        (Some(Method::Publish(p)), Err(_)) => assert!(
            std::str::from_utf8(p.exchange).is_err() || std::str::from_utf8(p.routing_key).is_err(),
            "only Warren accepts this publish: {x}"
        ),
        (Some(Method::Ack { delivery_tag, multiple }), Ok(AMQPClass::Basic(basic::AMQPMethod::Ack(a)))) => {
            assert_eq!((*delivery_tag, *multiple), (a.delivery_tag, a.multiple), "ack: {x}")
        }
        (
            Some(Method::Qos { prefetch_count, global, .. }),
            Ok(AMQPClass::Basic(basic::AMQPMethod::Qos(q))),
        ) => assert_eq!((*prefetch_count, *global), (q.prefetch_count, q.global), "qos: {x}"),
        (None, Ok(c)) => panic!("only amq-protocol accepts this ({c:?}): {x}"),
        (Some(m), Err(_)) => panic!("only Warren accepts this ({m:?}): {x}"),
        (Some(m), Ok(c)) => panic!("decoded as different methods ({m:?} / {c:?}): {x}"),
    }
    // What the broker runs on is the fast result when there is one.
    if let Some(m) = fast {
        assert_eq!(decode(payload).ok(), Some(m));
    }
});
