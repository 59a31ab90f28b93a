//! Decoding method frame payloads.
//!
//! `basic.publish` and `basic.ack` are the methods a busy broker sees most;
//! they are decoded by hand, a publish's names borrowed from the frame (no
//! allocation, no reference count). Every other method goes through
//! amq-protocol.

use amq_protocol::protocol::{parse_class, AMQPClass};
use nom::combinator::all_consuming;
use nom::Parser;

use super::table::{check_prefixed_table, TableFault};
use super::{AmqpError, CLASS_BASIC};

pub const METHOD_PUBLISH: u16 = 40;
pub const METHOD_ACK: u16 = 80;
pub const METHOD_QOS: u16 = 10;

/// A decoded method.
#[derive(Debug, Clone, PartialEq)]
pub enum Method<'a> {
    Publish(Publish<'a>),
    Ack {
        delivery_tag: u64,
        multiple: bool,
    },
    /// amq-protocol drops `prefetch_size`, which must be refused when not 0.
    Qos {
        prefetch_size: u32,
        prefetch_count: u16,
        global: bool,
    },
    Other(AMQPClass),
}

/// `basic.publish`, its names borrowed from the frame's payload (a
/// pending publish copies them: the frame is gone before its content).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Publish<'a> {
    pub exchange: &'a [u8],
    pub routing_key: &'a [u8],
    pub mandatory: bool,
    pub immediate: bool,
}

/// Where `basic.publish`'s exchange starts: after the class and method
/// ids, the reserved ticket and the name's length octet.
const PUBLISH_EXCHANGE_AT: usize = 7;

/// Class and method ids of a method payload (0, 0 when too short).
pub fn ids(payload: &[u8]) -> (u16, u16) {
    if payload.len() < 4 {
        return (0, 0);
    }
    (u16::from_be_bytes([payload[0], payload[1]]), u16::from_be_bytes([payload[2], payload[3]]))
}

/// Decodes a method frame's payload.
///
/// Errors are connection errors: a malformed method is 501 FRAME_ERROR
/// (as RabbitMQ answers); an unknown class or method is 540 NOT_IMPLEMENTED
/// (RabbitMQ drops the socket without a word).
pub fn decode(payload: &[u8]) -> Result<Method<'_>, AmqpError> {
    if payload.len() < 4 {
        return Err(AmqpError::frame_error(format!("method frame of {} bytes", payload.len())));
    }
    let (class, method) = ids(payload);
    if let Some(m) = decode_fast(payload) {
        return Ok(m);
    }
    // amq-protocol's parser recurses into nested tables: refuse deep ones first.
    if let Some((name, at)) = table_at(class, method, payload) {
        if check_prefixed_table(&payload[at..]).is_err_and(|f| f == TableFault::TooDeep) {
            return Err(AmqpError::precondition_failed(TableFault::too_deep_text(name)).during(class, method));
        }
    }
    let parsed = all_consuming(parse_class).parse(payload);
    match parsed {
        Ok((_, m)) => Ok(Method::Other(m)),
        Err(_) if !is_known_method(class, method) => {
            Err(AmqpError::not_implemented(format!("unknown method {class}/{method}")).during(class, method))
        }
        Err(_) => Err(AmqpError::frame_error(format!("cannot decode method frame {class}/{method}"))
            .during(class, method)),
    }
}

/// The hand-written decoders alone: `Some` for a well-formed `basic.publish`,
/// `basic.ack` or `basic.qos`, `None` for anything else (which [`decode`]
/// then gives to amq-protocol). Public so the fuzzers can hold it against
/// amq-protocol's decoding of the same bytes.
pub fn decode_fast(payload: &[u8]) -> Option<Method<'_>> {
    match ids(payload) {
        (CLASS_BASIC, METHOD_PUBLISH) => decode_publish(payload),
        (CLASS_BASIC, METHOD_ACK) => decode_ack(payload),
        (CLASS_BASIC, METHOD_QOS) => decode_qos(payload),
        _ => None,
    }
}

/// The name of a method that carries a field table and where that table
/// starts (its length prefix), for the methods of both directions
/// amq-protocol parses; None when the method has none or is too short to
/// reach it (the parser then says so).
fn table_at(class: u16, method: u16, payload: &[u8]) -> Option<(&'static str, usize)> {
    // Where the fields start, the short strings before the table, then any bits octet.
    let (name, start, shorts, bits) = match (class, method) {
        (10, 10) => ("connection.start", 6, 0, 0), // after the version octets
        (10, 11) => ("connection.start-ok", 4, 0, 0),
        (40, 10) => ("exchange.declare", 6, 2, 1), // ticket, exchange, type, bits
        (40, 30) => ("exchange.bind", 6, 3, 1),    // ticket, destination, source, key, nowait
        (40, 40) => ("exchange.unbind", 6, 3, 1),
        (50, 10) => ("queue.declare", 6, 1, 1), // ticket, queue, bits
        (50, 20) => ("queue.bind", 6, 3, 1),    // ticket, queue, exchange, key, nowait
        (50, 50) => ("queue.unbind", 6, 3, 0),  // no bits
        (60, 20) => ("basic.consume", 6, 2, 1), // ticket, queue, tag, bits
        _ => return None,
    };
    let mut at = start;
    for _ in 0..shorts {
        at += 1 + *payload.get(at)? as usize;
    }
    at += bits;
    (at <= payload.len()).then_some((name, at))
}

/// Every (class, method) pair of AMQP 0-9-1 with RabbitMQ's extensions.
fn is_known_method(class: u16, method: u16) -> bool {
    let methods: &[u16] = match class {
        10 => &[10, 11, 20, 21, 30, 31, 40, 41, 50, 51, 60, 61, 70, 71],
        20 => &[10, 11, 20, 21, 40, 41],
        30 => &[10, 11],
        40 => &[10, 11, 20, 21, 30, 31, 40, 51],
        50 => &[10, 11, 20, 21, 30, 31, 40, 41, 50, 51],
        60 => &[10, 11, 20, 21, 30, 31, 40, 50, 60, 70, 71, 72, 80, 90, 100, 110, 111, 120],
        85 => &[10, 11],
        90 => &[10, 11, 20, 21, 30, 31],
        _ => &[],
    };
    methods.contains(&method)
}

/// A well-formed `basic.publish`; None if the payload is not exactly that.
fn decode_publish(payload: &[u8]) -> Option<Method<'_>> {
    let exchange_len = usize::from(*payload.get(PUBLISH_EXCHANGE_AT - 1)?);
    let key_at = PUBLISH_EXCHANGE_AT + exchange_len;
    let routing_key_len = usize::from(*payload.get(key_at)?);
    let bits_at = key_at + 1 + routing_key_len;
    let bits = *payload.get(bits_at)?;
    (bits_at + 1 == payload.len()).then(|| {
        Method::Publish(Publish {
            exchange: &payload[PUBLISH_EXCHANGE_AT..key_at],
            routing_key: &payload[key_at + 1..bits_at],
            mandatory: bits & 1 != 0,
            immediate: bits & 2 != 0,
        })
    })
}

fn decode_ack(payload: &[u8]) -> Option<Method<'_>> {
    if payload.len() != 13 {
        return None;
    }
    let delivery_tag = u64::from_be_bytes(payload[4..12].try_into().ok()?);
    Some(Method::Ack { delivery_tag, multiple: payload[12] & 1 != 0 })
}

fn decode_qos(payload: &[u8]) -> Option<Method<'_>> {
    if payload.len() != 11 {
        return None;
    }
    Some(Method::Qos {
        prefetch_size: u32::from_be_bytes(payload[4..8].try_into().ok()?),
        prefetch_count: u16::from_be_bytes([payload[8], payload[9]]),
        global: payload[10] & 1 != 0,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::encode;
    use amq_protocol::protocol::basic;

    fn payload_of(class: &AMQPClass) -> Vec<u8> {
        let mut out = Vec::new();
        encode::method(&mut out, 1, class);
        out[7..out.len() - 1].to_vec()
    }

    #[test]
    fn fast_paths_agree_with_amq_protocol() {
        let publish = AMQPClass::Basic(basic::AMQPMethod::Publish(basic::Publish {
            exchange: "ex".into(),
            routing_key: "a.b".into(),
            mandatory: true,
            immediate: false,
        }));
        let payload = payload_of(&publish);
        let Method::Publish(p) = decode(&payload).unwrap() else { panic!() };
        assert_eq!(
            (p.exchange, p.routing_key, p.mandatory, p.immediate),
            (&b"ex"[..], &b"a.b"[..], true, false)
        );
        let ack = AMQPClass::Basic(basic::AMQPMethod::Ack(basic::Ack { delivery_tag: 77, multiple: true }));
        assert_eq!(decode(&payload_of(&ack)).unwrap(), Method::Ack { delivery_tag: 77, multiple: true });
    }

    #[test]
    fn publish_names_are_borrowed_at_their_limits() {
        let long = "k".repeat(255);
        for (exchange, key) in [("", ""), ("", long.as_str()), (long.as_str(), ""), ("amq.topic", "a.b.c")] {
            let publish = AMQPClass::Basic(basic::AMQPMethod::Publish(basic::Publish {
                exchange: exchange.into(),
                routing_key: key.into(),
                mandatory: false,
                immediate: true,
            }));
            let payload = payload_of(&publish);
            let Some(Method::Publish(fast)) = decode_fast(&payload) else { panic!("{exchange:?} {key:?}") };
            let Method::Publish(p) = decode(&payload).unwrap() else { panic!() };
            for p in [fast, p] {
                assert_eq!((p.exchange, p.routing_key), (exchange.as_bytes(), key.as_bytes()));
                assert_eq!((p.mandatory, p.immediate), (false, true));
            }
        }
        // A routing key's length past the end, a missing bits octet, a byte
        // after it: not a publish the fast path takes, and a frame error
        // from amq-protocol.
        let bad: [&[u8]; 3] = [
            &[0, 60, 0, 40, 0, 0, 0, 9, b'k'],
            &[0, 60, 0, 40, 0, 0, 1, b'e', 1, b'k'],
            &[0, 60, 0, 40, 0, 0, 0, 0, 0, 0],
        ];
        for bad in bad {
            assert_eq!(decode_fast(bad), None);
            assert_eq!(decode(bad).unwrap_err().code(), 501);
        }
    }

    #[test]
    fn decode_fast_takes_only_whole_hot_methods() {
        let ack = payload_of(&AMQPClass::Basic(basic::AMQPMethod::Ack(basic::Ack {
            delivery_tag: 1,
            multiple: false,
        })));
        assert_eq!(decode_fast(&ack), Some(Method::Ack { delivery_tag: 1, multiple: false }));
        // One byte short or long: left to amq-protocol, which refuses it too.
        assert_eq!(decode_fast(&ack[..12]), None);
        assert_eq!(decode_fast(&[&ack[..], &[0]].concat()), None);
        let get = payload_of(&AMQPClass::Basic(basic::AMQPMethod::Get(basic::Get {
            queue: "q".into(),
            no_ack: true,
        })));
        assert_eq!(decode_fast(&get), None);
    }

    #[test]
    fn unknown_and_malformed_methods() {
        assert_eq!(decode(&[0, 50, 0, 99][..]).unwrap_err().code(), 540);
        assert_eq!(decode(&[3, 231, 0, 10][..]).unwrap_err().code(), 540);
        // queue.declare whose queue name runs past the end of the frame
        assert_eq!(decode(&[0, 50, 0, 10, 0, 0, 200, b'q'][..]).unwrap_err().code(), 501);
        assert_eq!(decode(&[0, 60, 0, 40, 0][..]).unwrap_err().code(), 501);
    }
}
