//! SASL responses (PLAIN, AMQPLAIN): the credentials in them. Pure; the
//! check itself is `access::Users::authenticate`.

use amq_protocol::types::parsing::parse_field_table;
use amq_protocol::types::AMQPValue;

use crate::protocol::table::as_str;

/// Username and password out of a `connection.start-ok` response.
pub fn credentials(mechanism: &str, response: &[u8]) -> Option<(String, String)> {
    match mechanism {
        "PLAIN" => {
            // [authzid] NUL authcid NUL passwd
            let mut parts = response.splitn(3, |&b| b == 0);
            let _authzid = parts.next()?;
            let user = parts.next()?;
            let pass = parts.next()?;
            Some((String::from_utf8(user.to_vec()).ok()?, String::from_utf8(pass.to_vec()).ok()?))
        }
        "AMQPLAIN" => {
            // A field table without its length prefix; a deep one is refused
            // before amq-protocol's parser recurses into it.
            crate::protocol::table::check_table(response).ok()?;
            let mut framed = (response.len() as u32).to_be_bytes().to_vec();
            framed.extend_from_slice(response);
            let (_, t) = parse_field_table(&framed[..]).ok()?;
            let get = |k: &str| t.inner().get(k).and_then(|v: &AMQPValue| as_str(v)).map(str::to_owned);
            Some((get("LOGIN")?, get("PASSWORD")?))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_and_amqplain() {
        assert_eq!(credentials("PLAIN", b"\0guest\0pw"), Some(("guest".into(), "pw".into())));
        assert_eq!(credentials("PLAIN", b"guest"), None);
        let mut t = Vec::new();
        for (k, v) in [("LOGIN", "u"), ("PASSWORD", "p")] {
            t.push(k.len() as u8);
            t.extend_from_slice(k.as_bytes());
            t.push(b'S');
            t.extend_from_slice(&(v.len() as u32).to_be_bytes());
            t.extend_from_slice(v.as_bytes());
        }
        assert_eq!(credentials("AMQPLAIN", &t), Some(("u".into(), "p".into())));
        assert_eq!(credentials("EXTERNAL", b""), None);
    }
}
