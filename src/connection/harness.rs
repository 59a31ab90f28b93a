//! A whole connection in process, for the fuzzers (`tests/fuzz/`) and tests:
//! the real handshake and driver on one end of a unix socket pair, a client
//! that writes given bytes on the other, an in-memory broker with no store.
//! No TCP, no disk, no threads: it runs on whatever runtime polls it (the
//! fuzzers use a current-thread one with its clock paused, so the driver's
//! timeouts pass at once). May use `broker`, `access` and `config`.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;

use crate::access::{Access, Credential};
use crate::broker::Broker;
use crate::config::Config;

/// Username and password out of a `connection.start-ok` response (the
/// handshake's own SASL parsing), for the fuzzers.
pub fn sasl_credentials(mechanism: &str, response: &[u8]) -> Option<(String, String)> {
    super::auth::credentials(mechanism, response)
}

/// A broker with vhost `/` and user `guest`/`guest` (all permissions there),
/// nothing on disk.
pub struct Harness {
    pub broker: Arc<Broker>,
    pub access: Arc<Access>,
    pub config: Arc<Config>,
}

impl Default for Harness {
    fn default() -> Self {
        Self::new()
    }
}

impl Harness {
    pub fn new() -> Harness {
        Self::with_access(Self::guest_access())
    }

    /// The users of [`Harness::new`], to share between harnesses: AMQP
    /// connections do not change them, and making them (compiling the
    /// permission patterns) costs more than a whole fuzzed session.
    pub fn guest_access() -> Arc<Access> {
        let access = Arc::new(Access::new(None, Vec::new()));
        access
            .put_user("guest", Some(Credential::Password("guest".into())), Some(vec!["administrator".into()]))
            .expect("a user is made in memory");
        access.set_permission("/", "guest", ".*", ".*", ".*").expect("guest exists");
        access
    }

    /// A fresh broker (vhost `/`, nothing declared) with these users.
    pub fn with_access(access: Arc<Access>) -> Harness {
        Harness { broker: Arc::new(Broker::new()), access, config: Arc::new(Config::default()) }
    }

    /// Serves one connection whose client writes `chunks` (one write each,
    /// yielding in between so the server may read part of the stream), then
    /// closes its writing side and reads until the server closes. Returns
    /// everything the server wrote; it returns once the server is done.
    pub async fn session<'a>(&self, chunks: impl IntoIterator<Item = &'a [u8]>) -> std::io::Result<Vec<u8>> {
        let (client, server) = UnixStream::pair()?;
        let loopback = SocketAddr::from((Ipv4Addr::LOCALHOST, 40000));
        let local = SocketAddr::from((Ipv4Addr::LOCALHOST, 5672));
        let serve = super::serve(
            server,
            (loopback, local, None),
            self.broker.clone(),
            self.access.clone(),
            self.config.clone(),
        );
        let (mut rd, mut wr) = client.into_split();
        let write = async move {
            for chunk in chunks {
                // The server may have closed already: what is left is not sent.
                if wr.write_all(chunk).await.is_err() {
                    break;
                }
                tokio::task::yield_now().await;
            }
            let _ = wr.shutdown().await;
        };
        let read = async move {
            let mut out = Vec::new();
            let _ = rd.read_to_end(&mut out).await;
            out
        };
        let ((), (), out) = tokio::join!(serve, write, read);
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use amq_protocol::frame::{gen_frame, parse_frame, AMQPFrame, WriteContext};
    use amq_protocol::protocol::{connection, AMQPClass};
    use amq_protocol::types::{FieldTable, LongString};

    fn method(class: AMQPClass) -> Vec<u8> {
        let frame = AMQPFrame::Method(0, class);
        let ctx = gen_frame(&frame)(WriteContext::from(Vec::new())).unwrap();
        ctx.into_inner().0
    }

    #[tokio::test]
    async fn a_scripted_client_gets_its_connection_opened_and_closed() {
        let mut wire = crate::protocol::PROTOCOL_HEADER.to_vec();
        wire.extend(method(AMQPClass::Connection(connection::AMQPMethod::StartOk(connection::StartOk {
            client_properties: FieldTable::default(),
            mechanism: "PLAIN".into(),
            response: LongString::from(&b"\0guest\0guest"[..]),
            locale: "en_US".into(),
        }))));
        wire.extend(method(AMQPClass::Connection(connection::AMQPMethod::TuneOk(connection::TuneOk {
            channel_max: 16,
            frame_max: 4096,
            heartbeat: 0,
        }))));
        wire.extend(method(AMQPClass::Connection(connection::AMQPMethod::Open(connection::Open {
            virtual_host: "/".into(),
        }))));
        wire.extend(method(AMQPClass::Connection(connection::AMQPMethod::Close(connection::Close {
            reply_code: 200,
            reply_text: "bye".into(),
            class_id: 0,
            method_id: 0,
        }))));
        let h = Harness::new();
        let out = h.session(wire.chunks(5)).await.unwrap();
        let mut rest = &out[..];
        let mut ids = Vec::new();
        while !rest.is_empty() {
            let (r, f) = parse_frame(rest).unwrap();
            if let AMQPFrame::Method(_, m @ AMQPClass::Connection(_)) = f {
                ids.push(m.get_amqp_method_id());
            }
            rest = r;
        }
        // start, tune, open-ok, close-ok
        assert_eq!(ids, vec![10, 30, 41, 51]);
        assert_eq!(h.broker.open_connections(), 0);
    }
}
