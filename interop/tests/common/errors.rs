//! What a broker's refusal looks like to lapin: soft and hard errors,
//! channels and connections closed by the server, and bounded waits for a
//! condition to hold.

use super::*;

/// The AMQP error carried by a lapin error, if it is one.
pub fn amqp_error(err: &lapin::Error) -> Option<&AMQPError> {
    match err.kind() {
        ErrorKind::ProtocolError(e) => Some(e),
        _ => None,
    }
}

/// Assert that `res` failed with a channel-level (soft) AMQP error `code`;
/// returns the reply text.
#[track_caller]
pub fn expect_soft_error<T: Debug>(res: lapin::Result<T>, code: u16) -> String {
    expect_error_kind(res, code, false)
}

#[track_caller]
fn expect_error_kind<T: Debug>(res: lapin::Result<T>, code: u16, hard: bool) -> String {
    let tier = if hard { "connection (hard)" } else { "channel (soft)" };
    let err = match res {
        Ok(v) => panic!("expected {tier} AMQP error {code}, got Ok({v:?})"),
        Err(e) => e,
    };
    let amqp = amqp_error(&err)
        .unwrap_or_else(|| panic!("expected AMQP error {code}, got non-protocol error: {err:?}"));
    assert_eq!(amqp.get_id(), code, "wrong reply code; reply text: {}", amqp.get_message());
    let is_hard = matches!(amqp.kind(), AMQPErrorKind::Hard(_));
    assert_eq!(is_hard, hard, "expected a {tier} error, got {:?}", amqp.kind());
    amqp.get_message().to_string()
}

/// Await a broker operation bounded by [`TIMEOUT`] and assert it fails with a
/// soft error `code`; returns the reply text.
pub async fn expect_error<T: Debug, F: Future<Output = lapin::Result<T>>>(
    what: &str,
    fut: F,
    code: u16,
) -> String {
    let res = within(what, fut).await;
    expect_soft_error(res, code)
}

/// A consumer on a fresh private queue of `ch`. The server's asynchronous
/// channel.close (e.g. after a bad publish or ack) reaches it as an error,
/// without racing against the next command we might send.
pub async fn watch_channel(ch: &Channel) -> Consumer {
    let q = temp_queue(ch).await;
    consume(ch, &q, true).await
}

/// Wait for the channel watched by `watch` to be closed by the server with
/// soft error `code`; returns the reply text.
pub async fn expect_channel_closed_by_server(watch: &mut Consumer, code: u16) -> String {
    match within("server channel.close", watch.next()).await {
        Some(Err(e)) => expect_soft_error::<()>(Err(e), code),
        Some(Ok(d)) => {
            panic!("expected channel.close {code}, got a delivery {:?}", String::from_utf8_lossy(&d.data))
        }
        None => panic!("expected channel.close {code}, consumer ended without error"),
    }
}

/// Does an exchange exist? (Uses a throwaway channel, since a failed passive
/// declare closes the channel.)
pub async fn exchange_exists(conn: &Connection, name: &str) -> bool {
    let ch = channel(conn).await;
    let res = within(
        "exchange.declare passive",
        ch.exchange_declare(
            name.into(),
            lapin::ExchangeKind::Direct,
            lapin::options::ExchangeDeclareOptions { passive: true, ..Default::default() },
            FieldTable::default(),
        ),
    )
    .await;
    match res {
        Ok(()) => {
            let _ = tokio::time::timeout(TIMEOUT, ch.close(200, "ok".into())).await;
            true
        }
        Err(e) => {
            let code = amqp_error(&e).map(|a| a.get_id());
            assert_eq!(code, Some(NOT_FOUND), "passive exchange.declare: {e}");
            false
        }
    }
}

/// Does a queue exist? Returns (message_count, consumer_count) if so.
pub async fn queue_exists(conn: &Connection, name: &str) -> Option<(u32, u32)> {
    let ch = channel(conn).await;
    let res = within(
        "queue.declare passive",
        ch.queue_declare(
            name.into(),
            QueueDeclareOptions { passive: true, ..Default::default() },
            FieldTable::default(),
        ),
    )
    .await;
    match res {
        Ok(q) => {
            let _ = tokio::time::timeout(TIMEOUT, ch.close(200, "ok".into())).await;
            Some((q.message_count(), q.consumer_count()))
        }
        Err(e) => {
            let code = amqp_error(&e).map(|a| a.get_id());
            assert_eq!(code, Some(NOT_FOUND), "passive queue.declare: {e}");
            None
        }
    }
}

/// Wait until `cond` holds, polling, bounded by [`TIMEOUT`].
pub async fn eventually<F, Fut>(what: &str, mut cond: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    within(what, async {
        loop {
            if cond().await {
                return;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    })
    .await
}

/// Wait for the server to close the whole connection with hard error `code`,
/// as seen by a consumer on one of its channels (see [`watch_channel`]);
/// returns the reply text.
pub async fn expect_connection_closed_by_server(
    conn: &Connection,
    watch: &mut Consumer,
    code: u16,
) -> String {
    let err = match within("server connection.close", watch.next()).await {
        Some(Err(e)) => e,
        Some(Ok(d)) => {
            panic!("expected connection.close {code}, got a delivery {:?}", String::from_utf8_lossy(&d.data))
        }
        None => panic!("expected connection.close {code}, consumer ended without error"),
    };
    closed_with_hard_error(conn, &err, code).await
}

/// Assert that `res` failed with a connection-level (hard) AMQP error `code`;
/// returns the reply text.
#[track_caller]
pub fn expect_hard_error<T: Debug>(res: lapin::Result<T>, code: u16) -> String {
    expect_error_kind(res, code, true)
}

/// Wait (bounded) until lapin considers the connection gone.
pub async fn wait_connection_closed(conn: &Connection) {
    within("connection to close", async {
        while conn.status().connected() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
}

/// Wait (bounded) until lapin considers the channel gone.
pub async fn wait_channel_closed(ch: &Channel) {
    within("channel to close", async {
        while ch.status().connected() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
}

/// `err` is the hard error `code` and the connection closes: the reply text.
pub(super) async fn closed_with_hard_error(conn: &Connection, err: &lapin::Error, code: u16) -> String {
    let amqp = amqp_error(err)
        .unwrap_or_else(|| panic!("expected AMQP error {code}, got non-protocol error: {err:?}"));
    assert_eq!(amqp.get_id(), code, "wrong reply code; reply text: {}", amqp.get_message());
    assert!(
        matches!(amqp.kind(), AMQPErrorKind::Hard(_)),
        "expected a connection (hard) error, got {:?}",
        amqp.kind()
    );
    wait_connection_closed(conn).await;
    amqp.get_message().to_string()
}
