//! Connecting as a given user to a given vhost, and what a refused
//! connection looks like.

use super::*;

/// `$AMQP_URL`'s broker, as `user`/`password` on `vhost`.
pub fn amqp_uri_as(user: &str, password: &str, vhost: &str) -> lapin::uri::AMQPUri {
    let mut uri: lapin::uri::AMQPUri = amqp_url().parse().expect("AMQP_URL parses");
    uri.authority.userinfo.username = user.to_string();
    uri.authority.userinfo.password = password.to_string();
    uri.vhost = vhost.to_string();
    uri
}

/// Open a connection as `user`/`password` on `vhost` (bounded by [`TIMEOUT`]).
pub async fn connect_as(user: &str, password: &str, vhost: &str) -> Result<Connection, lapin::Error> {
    let props = ConnectionProperties::default().with_connection_name("warren-interop".into());
    within(
        &format!("connection.open as {user} on vhost {vhost}"),
        Connection::connect_uri(amqp_uri_as(user, password, vhost), props),
    )
    .await
}

/// `$AMQP_URL`'s own user (normally guest, an administrator) on `vhost`.
pub async fn connect_vhost(vhost: &str) -> Connection {
    let parts = url_parts(&amqp_url());
    connect_as(&parts.user, &parts.password, vhost)
        .await
        .unwrap_or_else(|e| panic!("cannot connect as {} to vhost {vhost}: {e}", parts.user))
}

/// Assert that opening a connection failed with AMQP reply `code` (login and
/// vhost refusals arrive as connection.close); returns the reply text.
#[track_caller]
pub fn expect_connect_refused(res: Result<Connection, lapin::Error>, code: u16) -> String {
    let err = match res {
        Ok(_) => panic!("expected the connection to be refused with {code}, but it opened"),
        Err(e) => e,
    };
    let amqp = amqp_error(&err)
        .unwrap_or_else(|| panic!("expected connection refusal {code}, got non-protocol error: {err:?}"));
    assert_eq!(amqp.get_id(), code, "wrong reply code; reply text: {}", amqp.get_message());
    amqp.get_message().to_string()
}

/// Connects as `user` expecting a refusal with `code` because a connection
/// limit is reached; returns the reply text. Warren counts a connection
/// under the lock that checks the limits, before `connection.open-ok`, so
/// the first attempt must be refused. RabbitMQ counts it after it opened,
/// from an event handler, so one made right after others may still slip
/// through there: against RabbitMQ such a connection is closed and the
/// attempt repeated until refused.
pub async fn expect_limit_refused(user: &str, password: &str, vhost: &str, code: u16) -> String {
    if !is_rabbitmq() {
        return expect_connect_refused(connect_as(user, password, vhost).await, code);
    }
    within("RabbitMQ to count the open connections", async {
        loop {
            match connect_as(user, password, vhost).await {
                Ok(slipped) => {
                    teardown(slipped).await;
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                res => return expect_connect_refused(res, code),
            }
        }
    })
    .await
}

/// A connection's lapin events; subscribe (with [`connection_events`])
/// before doing what should close the connection.
pub type ConnectionEvents = std::pin::Pin<Box<dyn futures_lite::Stream<Item = lapin::Event> + Send>>;

pub fn connection_events(conn: &Connection) -> ConnectionEvents {
    Box::pin(conn.events_listener())
}

/// Wait for the server to close the connection with hard error `code`, as
/// reported on its event stream (works when no channel survives to report
/// it, e.g. when the queues a consumer watched are deleted first); returns
/// the reply text.
pub async fn expect_connection_error_event(
    conn: &Connection,
    events: &mut ConnectionEvents,
    code: u16,
) -> String {
    let err = within("connection error event", async {
        loop {
            match events.next().await {
                Some(lapin::Event::Error(e)) => return e,
                Some(_) => continue,
                None => panic!("connection event stream ended without an error (expected {code})"),
            }
        }
    })
    .await;
    closed_with_hard_error(conn, &err, code).await
}
