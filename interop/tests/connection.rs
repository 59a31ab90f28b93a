//! Connection handshake, tuning, channel lifecycle.

mod common;

use common::*;
use lapin::{
    options::QueueDeclareOptions, protocol::AMQPErrorKind, types::FieldTable, uri::AMQPUri, Connection,
    ConnectionProperties, ErrorKind,
};
use std::collections::HashSet;

#[tokio::test]
async fn connect_handshake_and_close() {
    let conn = connect().await;
    assert!(conn.status().connected(), "connection not connected");
    assert_eq!(conn.status().vhost().as_str(), "/");
    assert_eq!(conn.status().username(), "guest");

    let cfg = conn.configuration();
    assert!(cfg.frame_max() >= 4096, "frame_max {}", cfg.frame_max());
    assert!(cfg.channel_max() > 0, "channel_max {}", cfg.channel_max());

    within("connection.close", conn.close(200, "bye".into())).await.expect("connection.close");
    assert!(conn.status().closed(), "connection not closed after close-ok");
}

#[tokio::test]
async fn tune_negotiates_client_frame_max_and_heartbeat() {
    let conn = connect_to(&amqp_url_with_query("frame_max=131072&heartbeat=7")).await;
    assert_eq!(conn.configuration().frame_max(), 131072);
    assert_eq!(conn.configuration().heartbeat(), 7);
    teardown(conn).await;

    // Smallest legal frame size: the broker must accept it.
    let conn = connect_to(&amqp_url_with_query("frame_max=4096")).await;
    assert_eq!(conn.configuration().frame_max(), 4096);
    let ch = channel(&conn).await;
    let q = temp_queue(&ch).await;
    let body = vec![7u8; 20_000]; // 5+ body frames
    publish(&ch, "", &q, &body).await;
    let msg = get_eventually(&ch, &q).await;
    assert_eq!(msg.delivery.data, body);
    teardown(conn).await;
}

#[tokio::test]
async fn open_and_close_many_channels() {
    let conn = connect().await;
    let mut channels = Vec::new();
    for _ in 0..20 {
        channels.push(channel(&conn).await);
    }
    let ids: HashSet<u16> = channels.iter().map(|c| c.id()).collect();
    assert_eq!(ids.len(), 20, "channel ids are not distinct: {ids:?}");
    assert!(!ids.contains(&0), "channel 0 handed out as a normal channel");

    // Every channel is independently usable.
    for ch in &channels {
        let q = temp_queue(ch).await;
        assert!(q.starts_with("amq.gen-"), "server-named queue {q}");
    }

    // Close them all; closed channels refuse further work, the connection stays up.
    for ch in &channels {
        within("channel.close", ch.close(200, "done".into())).await.expect("channel.close");
        assert!(!ch.status().connected());
    }
    let err = within(
        "declare on a closed channel",
        channels[0].queue_declare("".into(), QueueDeclareOptions::default(), FieldTable::default()),
    )
    .await
    .expect_err("declare on a closed channel must fail");
    assert!(matches!(err.kind(), ErrorKind::InvalidChannelState(..)), "unexpected error {err:?}");
    assert!(conn.status().connected());

    // New channels can still be opened after the old ones were closed.
    let ch = channel(&conn).await;
    let q = temp_queue(&ch).await;
    publish(&ch, "", &q, b"still alive").await;
    assert_eq!(get_eventually(&ch, &q).await.delivery.data, b"still alive");
    teardown(conn).await;
}

#[tokio::test]
async fn two_connections_are_independent() {
    let a = connect().await;
    let b = connect().await;
    let cha = channel(&a).await;
    let chb = channel(&b).await;
    let q = unique("two-conns");
    named_queue(&cha, &q).await;
    publish(&chb, "", &q, b"from b").await;
    assert_eq!(get_eventually(&cha, &q).await.delivery.data, b"from b");
    teardown(b).await;
    // Closing b did not disturb a.
    publish(&cha, "", &q, b"from a").await;
    assert_eq!(get_eventually(&cha, &q).await.delivery.data, b"from a");
    delete_queue(&cha, &q).await;
    teardown(a).await;
}

fn url_with(mutate: impl FnOnce(&mut AMQPUri)) -> AMQPUri {
    let mut uri: AMQPUri = amqp_url().parse().expect("AMQP_URL parses");
    mutate(&mut uri);
    uri
}

#[tokio::test]
async fn bad_password_is_refused() {
    let uri = url_with(|u| u.authority.userinfo.password = "definitely-wrong".into());
    let res =
        within("connect with bad password", Connection::connect_uri(uri, ConnectionProperties::default()))
            .await;
    let Err(err) = res else { panic!("login with a wrong password must fail") };
    // RabbitMQ answers with connection.close 403 ACCESS_REFUSED after start-ok;
    // lapin may surface that as the protocol error or as the socket closing.
    match err.kind() {
        ErrorKind::ProtocolError(e) => {
            // (403 is a "soft" code in the spec even though it arrives on
            // connection.close here, so only the code is checked.)
            eprintln!("bad password: {}", e.get_message());
            assert_eq!(e.get_id(), ACCESS_REFUSED, "{}", e.get_message());
        }
        ErrorKind::IOError(_) | ErrorKind::InvalidConnectionState(_) => {}
        other => panic!("unexpected error for bad login: {other:?}"),
    }
}

#[tokio::test]
async fn unknown_vhost_is_refused() {
    let uri = url_with(|u| u.vhost = "no-such-vhost-warren-interop".into());
    let res =
        within("connect to unknown vhost", Connection::connect_uri(uri, ConnectionProperties::default()))
            .await;
    let Err(err) = res else { panic!("opening an unknown vhost must fail") };
    match err.kind() {
        ErrorKind::ProtocolError(e) => {
            // 530 NOT_ALLOWED - vhost no-such-vhost-warren-interop not found
            eprintln!("unknown vhost: {}", e.get_message());
            assert_eq!(e.get_id(), 530, "{}", e.get_message());
            assert!(e.get_message().as_str().starts_with("NOT_ALLOWED"), "{}", e.get_message());
            assert!(matches!(e.kind(), AMQPErrorKind::Hard(_)));
        }
        other => panic!("unexpected error for unknown vhost: {other:?}"),
    }
}

#[tokio::test]
async fn exclusive_queue_dies_with_its_connection() {
    let owner = connect().await;
    let ch = channel(&owner).await;
    let q = unique("exclusive-dies");
    within(
        "queue.declare exclusive",
        ch.queue_declare(
            q.as_str().into(),
            QueueDeclareOptions { exclusive: true, ..Default::default() },
            FieldTable::default(),
        ),
    )
    .await
    .expect("declare exclusive");

    let observer = connect().await;
    // While the owner lives, the queue exists (passive declare from another
    // connection is refused with 405, which also proves existence).
    let och = channel(&observer).await;
    expect_error(
        "passive declare of another connection's exclusive queue",
        och.queue_declare(
            q.as_str().into(),
            QueueDeclareOptions { passive: true, ..Default::default() },
            FieldTable::default(),
        ),
        RESOURCE_LOCKED,
    )
    .await;

    teardown(owner).await;
    eventually("exclusive queue deleted after owner closed", || async {
        queue_exists(&observer, &q).await.is_none()
    })
    .await;
    teardown(observer).await;
}
