//! The connection handshake over a raw socket, against an in-process broker.

mod common;

use amq_protocol::frame::AMQPFrame;
use amq_protocol::protocol::{connection, AMQPClass};
use amq_protocol::types::AMQPValue;
use common::{method, Raw, Read};
use std::time::Duration;

#[tokio::test]
async fn start_advertises_rabbitmq_capabilities() {
    let server = common::start().await;
    let mut raw = Raw::connect(server.local_addr).await;
    raw.send(b"AMQP\x00\x00\x09\x01").await;
    let AMQPClass::Connection(connection::AMQPMethod::Start(start)) = raw.expect_method().await else {
        panic!("no connection.start");
    };
    assert_eq!((start.version_major, start.version_minor), (0, 9));
    assert_eq!(start.locales.to_string(), "en_US");
    let mechanisms = start.mechanisms.to_string();
    assert!(mechanisms.contains("PLAIN") && mechanisms.contains("AMQPLAIN"), "{mechanisms}");
    let props = start.server_properties.inner();
    for key in ["product", "version", "platform", "cluster_name", "copyright", "information"] {
        assert!(props.contains_key(key), "missing server property {key}");
    }
    let Some(AMQPValue::FieldTable(caps)) = props.get("capabilities") else { panic!("no capabilities") };
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
        assert_eq!(caps.inner().get(cap), Some(&AMQPValue::Boolean(true)), "capability {cap}");
    }
}

#[tokio::test]
async fn full_handshake_then_channel() {
    let server = common::start().await;
    let mut raw = Raw::open(server.local_addr).await;
    raw.open_channel(1).await;
    raw.open_channel(2047).await;
}

#[tokio::test]
async fn wrong_protocol_header_gets_ours_back_and_a_closed_socket() {
    let server = common::start().await;
    for header in [&b"AMQP\x00\x00\x09\x00"[..], b"HTTP/1.1", b"AMQP\x00\x01\x00\x00"] {
        let mut raw = Raw::connect(server.local_addr).await;
        raw.send(header).await;
        let mut got = [0u8; 8];
        tokio::io::AsyncReadExt::read_exact(&mut raw.stream, &mut got).await.unwrap();
        assert_eq!(&got, b"AMQP\x00\x00\x09\x01");
        assert!(matches!(raw.read(common::TIMEOUT).await, Read::Closed));
    }
}

#[tokio::test]
async fn legacy_header_is_accepted() {
    let server = common::start().await;
    let mut raw = Raw::connect(server.local_addr).await;
    raw.send(b"AMQP\x01\x01\x00\x09").await;
    assert!(matches!(raw.expect_method().await, AMQPClass::Connection(connection::AMQPMethod::Start(_))));
}

#[tokio::test]
async fn bad_password_is_refused_with_403() {
    let server = common::start().await;
    let mut raw = Raw::connect(server.local_addr).await;
    let addr = server.local_addr;
    let task = tokio::spawn(async move {
        let mut raw = Raw::connect(addr).await;
        raw.handshake("guest", "wrong", 0, 0).await;
    });
    assert!(task.await.is_err(), "handshake with a wrong password must not complete");
    raw.send(b"AMQP\x00\x00\x09\x01").await;
    raw.expect_method().await;
    let start_ok = connection::StartOk {
        client_properties: Default::default(),
        mechanism: "PLAIN".into(),
        response: b"\0guest\0wrong".to_vec().into(),
        locale: "en_US".into(),
    };
    raw.send(&method(0, AMQPClass::Connection(connection::AMQPMethod::StartOk(start_ok)))).await;
    let (code, text, _, _) = raw.expect_connection_close().await;
    assert_eq!(code, 403);
    assert_eq!(
        text,
        "ACCESS_REFUSED - Login was refused using authentication mechanism PLAIN. For details see the broker logfile."
    );
    raw.expect_socket_closed().await;
}

/// The 403 a refused login gets, after `start-ok` with PLAIN credentials.
async fn refused_login(addr: std::net::SocketAddr, user: &str, pass: &str) -> (u16, String) {
    let mut raw = Raw::connect(addr).await;
    raw.send(b"AMQP\x00\x00\x09\x01").await;
    raw.expect_method().await;
    let start_ok = connection::StartOk {
        client_properties: Default::default(),
        mechanism: "PLAIN".into(),
        response: format!("\0{user}\0{pass}").into_bytes().into(),
        locale: "en_US".into(),
    };
    raw.send(&method(0, AMQPClass::Connection(connection::AMQPMethod::StartOk(start_ok)))).await;
    let (code, text, _, _) = raw.expect_connection_close().await;
    (code, text)
}

#[tokio::test]
async fn users_log_in_with_hashed_passwords() {
    let server = common::start_with(|c| {
        c.users.push(warren::config::UserConfig {
            name: "from-rabbitmq".into(),
            password: None,
            // A hash of "demo-pw" exported by RabbitMQ 3.10.8.
            password_hash: Some("+KrZ07Ddfi2P/RuwhviWo2YG4zEuawwOL3qqKpMqk/4CtVul".into()),
            hashing_algorithm: Some("rabbit_password_hashing_sha256".into()),
            tags: vec![],
            loopback_only: None,
        });
        c.users.push(warren::config::UserConfig {
            name: "no-password".into(),
            password: None,
            password_hash: None,
            hashing_algorithm: None,
            tags: vec![],
            loopback_only: None,
        });
    })
    .await;
    let mut raw = Raw::connect(server.local_addr).await;
    raw.handshake("from-rabbitmq", "demo-pw", 0, 0).await;
    raw.open_channel(1).await;
    raw.round_trip(1).await;
    for (user, pass) in [("from-rabbitmq", "demo-pw2"), ("no-password", ""), ("nobody", "demo-pw")] {
        let (code, _) = refused_login(server.local_addr, user, pass).await;
        assert_eq!(code, 403, "{user}");
    }
}

#[tokio::test]
async fn silent_client_is_dropped_after_missed_heartbeats() {
    let server = common::start().await;
    let mut raw = Raw::connect(server.local_addr).await;
    raw.handshake("guest", "guest", 0, 1).await;
    let mut heartbeats = 0;
    loop {
        match raw.read(Duration::from_secs(10)).await {
            Read::Frame(AMQPFrame::Heartbeat) => heartbeats += 1,
            Read::Frame(other) => panic!("unexpected {other:?}"),
            Read::Closed => break,
            Read::Silent => panic!("the broker kept a silent connection"),
        }
    }
    assert!(heartbeats >= 1, "the broker sent no heartbeat");
}

#[tokio::test]
async fn shutdown_closes_connections_with_320() {
    let server = common::start().await;
    let mut raw = Raw::open(server.local_addr).await;
    raw.open_channel(1).await;
    let stopping = tokio::spawn(server.stop());
    let (code, text, _, _) = raw.expect_connection_close().await;
    assert_eq!(code, 320);
    assert_eq!(text, "CONNECTION_FORCED - broker forced connection closure with reason 'shutdown'");
    stopping.await.unwrap();
}

/// Reads until the broker closes the socket; panics if it sends anything
/// (a connection.start would mean the handshake went on) or stays open.
async fn closed_without_a_word(stream: &mut tokio::net::tcp::OwnedReadHalf) {
    use tokio::io::AsyncReadExt;
    let mut buf = [0u8; 64];
    match tokio::time::timeout(Duration::from_secs(8), stream.read(&mut buf)).await {
        Ok(Ok(0)) | Ok(Err(_)) => {}
        Ok(Ok(n)) => panic!("the broker answered {:?}", &buf[..n]),
        Err(_) => panic!("still open long after the handshake timeout"),
    }
}

/// A client that connects and says nothing, or sends the protocol header a
/// byte at a time slower than `handshake_timeout` allows, is dropped when
/// the timeout runs out (RabbitMQ's 10 s default; 1 s here); others are
/// served meanwhile.
#[tokio::test]
async fn silent_and_dribbling_clients_are_dropped_at_the_handshake_timeout() {
    use tokio::io::AsyncWriteExt;
    let server = common::start_with(|c| c.amqp.handshake_timeout = 1).await;
    let addr = server.local_addr;
    let (mut silent, _keep) = tokio::net::TcpStream::connect(addr).await.unwrap().into_split();
    let (mut slow, mut slow_out) = tokio::net::TcpStream::connect(addr).await.unwrap().into_split();
    // 8 bytes, one every 400 ms: the whole header would take 3.2 s.
    let dribble = tokio::spawn(async move {
        for b in b"AMQP\x00\x00\x09\x01" {
            if slow_out.write_all(&[*b]).await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(400)).await;
        }
        // Keep the writing half open: closing it would end the handshake.
        tokio::time::sleep(Duration::from_secs(10)).await;
    });
    common::assert_serving(addr).await;
    closed_without_a_word(&mut silent).await;
    closed_without_a_word(&mut slow).await;
    dribble.abort();
    common::assert_serving(addr).await;
}
