//! The SASL responses of `connection.start-ok` (PLAIN, AMQPLAIN) as the
//! handshake parses them: PLAIN gives the two fields after the first two
//! NULs when they are UTF-8; AMQPLAIN gives LOGIN and PASSWORD of a table
//! that passed the depth check; what is given survives a re-encoding;
//! anything else is refused.
#![no_main]

use amq_protocol::types::{AMQPValue, FieldTable, LongString};
use libfuzzer_sys::fuzz_target;
use warren::connection::harness::sasl_credentials;
use warren::protocol::table::check_table;

fn plain(user: &str, pass: &str) -> Vec<u8> {
    [b"\0", user.as_bytes(), b"\0", pass.as_bytes()].concat()
}

fn amqplain(user: &str, pass: &str) -> Vec<u8> {
    let mut t = FieldTable::default();
    t.insert("LOGIN".into(), AMQPValue::LongString(LongString::from(user)));
    t.insert("PASSWORD".into(), AMQPValue::LongString(LongString::from(pass)));
    warren_fuzz::gen_table(&t)[4..].to_vec()
}

fuzz_target!(|data: &[u8]| {
    let [sel, response @ ..] = data else { return };
    let mechanism = ["PLAIN", "AMQPLAIN", "EXTERNAL", "plain"][usize::from(sel & 3)];
    let got = sasl_credentials(mechanism, response);
    let x = warren_fuzz::hex(data);
    match mechanism {
        "PLAIN" => {
            let mut parts = response.splitn(3, |&b| b == 0);
            let expected = match (parts.next(), parts.next(), parts.next()) {
                (Some(_), Some(u), Some(p)) => std::str::from_utf8(u)
                    .ok()
                    .zip(std::str::from_utf8(p).ok())
                    .map(|(u, p)| (u.to_owned(), p.to_owned())),
                _ => None,
            };
            assert_eq!(got, expected, "{x}");
            if let Some((u, p)) = &got {
                // A NUL in the user name would have ended it; one in the password stays.
                assert!(!u.contains('\0'));
                assert_eq!(sasl_credentials("PLAIN", &plain(u, p)).as_ref(), Some(&(u.clone(), p.clone())));
            }
        }
        "AMQPLAIN" => {
            if check_table(response).is_err() {
                assert_eq!(got, None, "took a response that is not a valid table: {x}");
            }
            if let Some((u, p)) = &got {
                let again = sasl_credentials("AMQPLAIN", &amqplain(u, p));
                assert_eq!(again.as_ref(), Some(&(u.clone(), p.clone())), "{x}");
            }
        }
        _ => assert_eq!(got, None, "{mechanism} is not offered: {x}"),
    }
});
