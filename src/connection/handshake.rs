//! The opening of a connection, apart from the running connection: protocol
//! header, start / start-ok (authentication), tune / tune-ok, open / open-ok.

use std::net::SocketAddr;
use std::sync::Arc;

use super::auth;
use super::socket::Socket;
use crate::access::{Access, Session};
use crate::broker::connections::{CapReached, ConnectionCaps, ConnectionEntry, Opened, Registered, TlsInfo};
use crate::broker::{Broker, Outbound, VHost};
use crate::config::{Config, LimitsConfig};
use crate::protocol::frame::{decode, Frame};
use crate::protocol::method::{self, Method};
use crate::protocol::{encode, AmqpError, FRAME_MIN_SIZE, PROTOCOL_HEADER};
use amq_protocol::protocol::connection::{self, AMQPMethod as Conn};
use amq_protocol::protocol::AMQPClass;
use amq_protocol::types::{AMQPValue, FieldTable, LongString};
use bytes::BytesMut;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// What the handshake settled.
#[derive(Debug)]
pub struct Negotiated {
    pub user: String,
    pub vhost: Arc<VHost>,
    /// The user's permissions in the vhost.
    pub session: Session,
    /// Listed among the broker's connections until dropped.
    pub registered: Registered,
    pub frame_max: u32,
    pub channel_max: u16,
    pub heartbeat: u16,
    pub capabilities: FieldTable,
}

/// Why a handshake ended without a connection.
#[derive(Debug, thiserror::Error)]
pub enum HandshakeError {
    #[error("socket: {0}")]
    Io(#[from] std::io::Error),
    #[error("client closed the connection")]
    Eof,
    #[error("unsupported protocol header {0:?}")]
    BadHeader(Vec<u8>),
    #[error("{0}")]
    Refused(AmqpError),
    #[error("client closed during the handshake")]
    ClientClosed,
}

pub fn server_properties() -> FieldTable {
    let mut caps = FieldTable::default();
    for cap in [
        "publisher_confirms",
        "exchange_exchange_bindings",
        "basic.nack",
        "consumer_cancel_notify",
        "connection.blocked",
        "consumer_priorities",
        "authentication_failure_close",
        "per_consumer_qos",
        "direct_reply_to",
    ] {
        caps.insert(cap.into(), AMQPValue::Boolean(true));
    }
    let text = |s: &str| AMQPValue::LongString(LongString::from(s));
    let mut p = FieldTable::default();
    p.insert("capabilities".into(), AMQPValue::FieldTable(caps));
    p.insert("product".into(), text("Warren"));
    p.insert("version".into(), text(env!("CARGO_PKG_VERSION")));
    p.insert("platform".into(), text("Rust"));
    p.insert("cluster_name".into(), text("warren"));
    p.insert("copyright".into(), text("Copyright (c) the Warren authors"));
    p.insert("information".into(), text("Licensed under the Apache License 2.0"));
    p
}

/// Reads from the socket until a whole frame is buffered.
async fn next_frame<S: Socket>(
    stream: &mut S,
    buf: &mut BytesMut,
    frame_max: u32,
) -> Result<Frame, HandshakeError> {
    loop {
        match decode(buf, frame_max) {
            Ok(Some(f)) => return Ok(f),
            Ok(None) => {}
            Err(e) => return Err(HandshakeError::Refused(e)),
        }
        if stream.read_buf(buf).await? == 0 {
            return Err(HandshakeError::Eof);
        }
    }
}

/// The next method, which must be a connection method on channel 0.
async fn next_connection_method<S: Socket>(
    stream: &mut S,
    buf: &mut BytesMut,
    frame_max: u32,
    expected: &str,
) -> Result<Conn, HandshakeError> {
    loop {
        let frame = next_frame(stream, buf, frame_max).await?;
        match frame {
            Frame::Heartbeat { channel: 0 } => continue,
            Frame::Method { channel: 0, payload } => {
                let (class, method) = method::ids(&payload);
                match method::decode(&payload).map_err(|e| HandshakeError::Refused(e.on_connection()))? {
                    Method::Other(AMQPClass::Connection(Conn::Close(_))) => {
                        return Err(HandshakeError::ClientClosed)
                    }
                    Method::Other(AMQPClass::Connection(m)) => return Ok(m),
                    _ => {}
                }
                return Err(HandshakeError::Refused(
                    AmqpError::command_invalid(format!("expected '{expected}'")).during(class, method),
                ));
            }
            _ => {
                return Err(HandshakeError::Refused(AmqpError::unexpected_frame(format!(
                    "expected '{expected}'"
                ))))
            }
        }
    }
}

/// Runs the handshake. On `Refused`, the caller sends `connection.close`.
pub async fn handshake<S: Socket>(
    stream: &mut S,
    buf: &mut BytesMut,
    (id, peer, local, tls): (crate::broker::ConnectionId, SocketAddr, SocketAddr, Option<TlsInfo>),
    broker: &Broker,
    access: &Arc<Access>,
    config: &Config,
    tx: &tokio::sync::mpsc::UnboundedSender<Outbound>,
) -> Result<Negotiated, HandshakeError> {
    // Protocol header.
    while buf.len() < 8 {
        if stream.read_buf(buf).await? == 0 {
            return Err(HandshakeError::Eof);
        }
    }
    let header = buf.split_to(8);
    if &header[..] != PROTOCOL_HEADER && &header[..] != b"AMQP\x01\x01\x00\x09" {
        stream.write_all(PROTOCOL_HEADER).await?;
        return Err(HandshakeError::BadHeader(header.to_vec()));
    }

    let mut out = Vec::with_capacity(512);
    let start = connection::Start {
        version_major: 0,
        version_minor: 9,
        server_properties: server_properties(),
        mechanisms: LongString::from("PLAIN AMQPLAIN"),
        locales: LongString::from("en_US"),
    };
    encode::method(&mut out, 0, &AMQPClass::Connection(Conn::Start(start)));
    stream.write_all(&out).await?;

    let Conn::StartOk(start_ok) =
        next_connection_method(stream, buf, FRAME_MIN_SIZE, "connection.start-ok").await?
    else {
        return Err(HandshakeError::Refused(
            AmqpError::command_invalid("expected 'connection.start-ok'").during(10, 11),
        ));
    };
    let mechanism = start_ok.mechanism.as_str().to_owned();
    let capabilities = match start_ok.client_properties.inner().get("capabilities") {
        Some(AMQPValue::FieldTable(t)) => t.clone(),
        _ => FieldTable::default(),
    };
    let Some((user, password)) = auth::credentials(&mechanism, start_ok.response.as_bytes()) else {
        return Err(HandshakeError::Refused(
            AmqpError::access_refused(format!(
                "{mechanism} login refused: malformed or unsupported response"
            ))
            .during(10, 11),
        ));
    };
    let login_refused = || {
        HandshakeError::Refused(
            AmqpError::access_refused(format!(
                "Login was refused using authentication mechanism {mechanism}. For details see the broker logfile."
            ))
            .during(10, 11),
        )
    };
    let login = access.authenticate(&user, &password, peer.ip());
    access.count_amqp_login(login.is_ok());
    let authenticated = match login {
        Ok(u) => u,
        Err(why) => {
            // The client learns nothing of why; the log does (never the password).
            tracing::warn!(%peer, user = %user, mechanism = %mechanism, failed_logins = access.failed_logins(), "{mechanism} login refused: {why}");
            return Err(login_refused());
        }
    };
    drop(password);

    out.clear();
    let tune = connection::Tune {
        channel_max: config.amqp.channel_max,
        frame_max: config.amqp.frame_max,
        heartbeat: config.amqp.heartbeat,
    };
    encode::method(&mut out, 0, &AMQPClass::Connection(Conn::Tune(tune)));
    stream.write_all(&out).await?;

    let Conn::TuneOk(tune_ok) =
        next_connection_method(stream, buf, FRAME_MIN_SIZE, "connection.tune-ok").await?
    else {
        return Err(HandshakeError::Refused(
            AmqpError::command_invalid("expected 'connection.tune-ok'").during(10, 31),
        ));
    };
    let frame_max = negotiate(tune_ok.frame_max, config.amqp.frame_max);
    if frame_max < FRAME_MIN_SIZE {
        return Err(HandshakeError::Refused(
            AmqpError::not_allowed(format!("frame_max={frame_max} < {FRAME_MIN_SIZE} min size"))
                .during(10, 31),
        ));
    }
    let channel_max = negotiate(u32::from(tune_ok.channel_max), u32::from(config.amqp.channel_max)) as u16;
    // The client has the last word on heartbeats (it may disable them).
    let heartbeat = tune_ok.heartbeat;

    let Conn::Open(open) = next_connection_method(stream, buf, frame_max, "connection.open").await? else {
        return Err(HandshakeError::Refused(
            AmqpError::command_invalid("expected 'connection.open'").during(10, 40),
        ));
    };
    let Some(vhost) = broker.vhost(open.virtual_host.as_str()) else {
        return Err(HandshakeError::Refused(
            AmqpError::not_allowed(format!("vhost {} not found", open.virtual_host)).during(10, 40),
        ));
    };
    let mut session = access.session(&user, &vhost.name);
    if !session.may_open() {
        return Err(HandshakeError::Refused(
            AmqpError::not_allowed(format!("access to vhost '{}' refused for user '{user}'", vhost.name))
                .during(10, 40),
        ));
    }
    let opened = Opened {
        client_properties: start_ok.client_properties.clone(),
        auth_mechanism: mechanism.clone(),
        frame_max,
        channel_max,
        heartbeat,
        tls,
    };
    let entry = ConnectionEntry::new(id, &user, &vhost.name, peer, local, opened, tx.clone());
    let caps = ConnectionCaps {
        node: LimitsConfig::some(config.limits.max_connections),
        vhost: vhost.limits().max_connections,
        user: access.user(&user).and_then(|u| u.limits.connections()),
    };
    let registered = broker.connections.register(entry, caps).map_err(|reached| {
        let text = match reached {
            CapReached::Node(n) => format!("connection refused: node connection limit ({n}) is reached"),
            CapReached::Vhost(n) => format!(
                "access to vhost '{}' refused for user '{user}': connection limit ({n}) is reached",
                vhost.name
            ),
            CapReached::User(n) => {
                format!("connection refused for user '{user}': user connection limit ({n}) is reached")
            }
        };
        HandshakeError::Refused(AmqpError::not_allowed(text).during(10, 40))
    })?;
    // Deleting the user or the vhost, or changing the password, closes the
    // listed connections: one that happened before this one was listed is
    // caught here.
    if vhost.is_deleted() {
        let e = AmqpError::not_allowed(format!("vhost {} not found", vhost.name));
        return Err(HandshakeError::Refused(e.during(10, 40)));
    }
    if !access.user(&user).is_some_and(|u| u.hash == authenticated.hash) {
        return Err(login_refused());
    }
    if !session.may_open() {
        let e = AmqpError::not_allowed(format!("access to vhost '{}' refused for user '{user}'", vhost.name));
        return Err(HandshakeError::Refused(e.during(10, 40)));
    }
    out.clear();
    encode::method(&mut out, 0, &AMQPClass::Connection(Conn::OpenOk(connection::OpenOk {})));
    stream.write_all(&out).await?;
    Ok(Negotiated { user, vhost, session, registered, frame_max, channel_max, heartbeat, capabilities })
}

/// The smaller of two limits where 0 means "no limit".
fn negotiate(client: u32, server: u32) -> u32 {
    match (client, server) {
        (0, s) => s,
        (c, 0) => c,
        (c, s) => c.min(s),
    }
}
