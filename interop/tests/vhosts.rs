//! Virtual hosts: isolation, deletion (which closes their connections and
//! drops their queues), and the per-vhost limits max-connections and
//! max-queues. Vhosts, users and limits are managed through the management
//! HTTP API at `$ADMIN_URL`.

mod common;

use common::*;
use lapin::{options::QueueDeclareOptions, types::FieldTable, ExchangeKind};

const PASSWORD: &str = "vh-pw";

/// A new vhost on which `$AMQP_URL`'s user (guest) has full permissions;
/// deleted (with everything in it) when the returned guard drops.
async fn vhost(tag: &str) -> (String, Cleanup) {
    let vh = unique(tag);
    let mut cleanup = Cleanup::default();
    cleanup.vhost(&vh);
    add_vhost(&vh).await;
    set_permissions(&vh, &url_parts(&amqp_url()).user, ".*", ".*", ".*").await;
    (vh, cleanup)
}

#[tokio::test]
async fn same_names_in_two_vhosts_are_different_objects() {
    let (a, _ca) = vhost("vh-iso-a").await;
    let (b, _cb) = vhost("vh-iso-b").await;
    let conn_a = connect_vhost(&a).await;
    let conn_b = connect_vhost(&b).await;
    let ch_a = channel(&conn_a).await;
    let ch_b = channel(&conn_b).await;
    let q = "shared-name";
    named_queue(&ch_a, q).await;
    named_queue(&ch_b, q).await;
    confirm_select(&ch_a).await;
    for i in 0..3 {
        publish(&ch_a, "", q, format!("a{i}").as_bytes()).await;
    }
    wait_ready(&conn_a, q, 3).await;
    assert_eq!(queue_exists(&conn_b, q).await, Some((0, 0)), "the queue in vhost b stayed empty");
    publish(&ch_b, "", q, b"b0").await;
    assert_eq!(get_eventually(&ch_b, q).await.delivery.data, b"b0");
    assert_eq!(get_eventually(&ch_a, q).await.delivery.data, b"a0");

    // An exchange declared in a is unknown in b, with b's name in the text.
    let x = "only-in-a";
    declare_exchange(&ch_a, x, ExchangeKind::Fanout, Default::default()).await;
    assert!(exchange_exists(&conn_a, x).await);
    let ch = channel(&conn_b).await;
    let res = within(
        "exchange.declare passive",
        ch.exchange_declare(
            x.into(),
            ExchangeKind::Fanout,
            lapin::options::ExchangeDeclareOptions { passive: true, ..Default::default() },
            FieldTable::default(),
        ),
    )
    .await;
    assert_eq!(expect_soft_error(res, NOT_FOUND), format!("NOT_FOUND - no exchange '{x}' in vhost '{b}'"));
    let res = within(
        "queue.declare passive",
        channel(&conn_b).await.queue_declare(
            "only-in-a".into(),
            QueueDeclareOptions { passive: true, ..Default::default() },
            FieldTable::default(),
        ),
    )
    .await;
    assert_eq!(expect_soft_error(res, NOT_FOUND), format!("NOT_FOUND - no queue 'only-in-a' in vhost '{b}'"));
    teardown(conn_a).await;
    teardown(conn_b).await;
}

#[tokio::test]
async fn deleting_a_vhost_closes_its_connections_and_drops_its_queues() {
    let (vh, _cleanup) = vhost("vh-delete").await;
    let conn = connect_vhost(&vh).await;
    let ch = channel(&conn).await;
    let q = "doomed";
    within(
        "queue.declare durable",
        ch.queue_declare(
            q.into(),
            QueueDeclareOptions { durable: true, ..Default::default() },
            FieldTable::default(),
        ),
    )
    .await
    .expect("queue.declare");
    publish(&ch, "", q, b"gone with the vhost").await;
    wait_ready(&conn, q, 1).await;
    // The reply text is read by a raw client: RabbitMQ resets the socket
    // right after its connection.close (without waiting for close-ok), often
    // before lapin has read the frame, and lapin then reports only
    // "connection reset by peer".
    let parts = url_parts(&amqp_url());
    let mut raw = RawAmqp::connect_as(&parts.user, &parts.password, &vh).await;
    // A connection on another vhost is not affected.
    let (bystander, bystander_ch) = setup().await;

    delete_vhost(&vh).await;
    let (code, text) = raw.expect_connection_close_no_reply().await;
    assert_eq!(code, 320, "{text}");
    // RabbitMQ 3.10.8 says "is deleted" or, about as often, "is down" (when
    // the vhost's supervisor stops before the deletion reaches the
    // connection); Warren says "is deleted".
    assert!(
        text == format!("CONNECTION_FORCED - vhost '{vh}' is deleted")
            || text == format!("CONNECTION_FORCED - vhost '{vh}' is down"),
        "{text}"
    );
    wait_connection_closed(&conn).await;
    let text = expect_connect_refused(
        {
            let parts = url_parts(&amqp_url());
            connect_as(&parts.user, &parts.password, &vh).await
        },
        530,
    );
    assert_eq!(text, format!("NOT_ALLOWED - vhost {vh} not found"));
    assert!(temp_queue(&bystander_ch).await.starts_with("amq.gen-"));
    teardown(bystander).await;

    // Re-created, the vhost is empty (and needs its permissions again).
    add_vhost(&vh).await;
    set_permissions(&vh, &url_parts(&amqp_url()).user, ".*", ".*", ".*").await;
    let conn = connect_vhost(&vh).await;
    assert_eq!(queue_exists(&conn, q).await, None, "the queue did not survive its vhost");
    teardown(conn).await;
}

#[tokio::test]
async fn max_connections_limit_refuses_the_next_connection() {
    let (vh, _cleanup) = vhost("vh-maxconn").await;
    let user = format!("{vh}-u");
    let mut cleanup = Cleanup::default();
    cleanup.user(&user);
    add_user(&user, PASSWORD, "").await;
    set_permissions(&vh, &user, ".*", ".*", ".*").await;
    set_vhost_limit(&vh, "max-connections", 2).await;
    let refused = |n: i64| {
        format!("NOT_ALLOWED - access to vhost '{vh}' refused for user '{user}': connection limit ({n}) is reached")
    };

    let c1 = connect_as(&user, PASSWORD, &vh).await.expect("1st connection");
    let c2 = connect_as(&user, PASSWORD, &vh).await.expect("2nd connection");
    let text = expect_limit_refused(&user, PASSWORD, &vh, 530).await;
    assert_eq!(text, refused(2));
    // The limit is per vhost, whoever connects.
    let parts = url_parts(&amqp_url());
    let text = expect_connect_refused(connect_as(&parts.user, &parts.password, &vh).await, 530);
    assert_eq!(
        text,
        format!(
            "NOT_ALLOWED - access to vhost '{vh}' refused for user '{}': connection limit (2) is reached",
            parts.user
        )
    );
    // The existing connections keep working.
    let ch = channel(&c1).await;
    assert!(temp_queue(&ch).await.starts_with("amq.gen-"));

    // Closing one frees a slot.
    teardown(c2).await;
    let c3 = within("a slot to free up", async {
        loop {
            match connect_as(&user, PASSWORD, &vh).await {
                Ok(c) => return c,
                Err(e) => {
                    let text = expect_connect_refused(Err(e), 530);
                    assert_eq!(text, refused(2));
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                }
            }
        }
    })
    .await;

    // Clearing the limit lifts it.
    clear_vhost_limit(&vh, "max-connections").await;
    let c4 = connect_as(&user, PASSWORD, &vh).await.expect("connection after clearing the limit");
    let c5 = connect_as(&user, PASSWORD, &vh).await.expect("connection after clearing the limit");

    // 0 allows none; a negative limit means unlimited.
    set_vhost_limit(&vh, "max-connections", 0).await;
    let text = expect_connect_refused(connect_as(&user, PASSWORD, &vh).await, 530);
    assert_eq!(text, refused(0));
    set_vhost_limit(&vh, "max-connections", -1).await;
    let c6 = connect_as(&user, PASSWORD, &vh).await.expect("connection with limit -1");
    for c in [c1, c3, c4, c5, c6] {
        teardown(c).await;
    }
}

#[tokio::test]
async fn max_queues_limit_refuses_the_next_queue() {
    let (vh, _cleanup) = vhost("vh-maxq").await;
    set_vhost_limit(&vh, "max-queues", 2).await;
    let conn = connect_vhost(&vh).await;
    let refused = |q: &str, n: i64| {
        format!(
            "PRECONDITION_FAILED - cannot declare queue '{q}': queue limit in vhost '{vh}' ({n}) is reached"
        )
    };
    let ch = channel(&conn).await;
    named_queue(&ch, "q1").await;
    named_queue(&ch, "q2").await;
    let res =
        within("queue.declare", ch.queue_declare("q3".into(), Default::default(), FieldTable::default()))
            .await;
    assert_eq!(expect_soft_error(res, PRECONDITION_FAILED), refused("q3", 2));
    // Server-named queues count and are refused the same way.
    let ch = channel(&conn).await;
    let res = within(
        "queue.declare server-named",
        ch.queue_declare(
            "".into(),
            QueueDeclareOptions { exclusive: true, ..Default::default() },
            FieldTable::default(),
        ),
    )
    .await;
    let text = expect_soft_error(res, PRECONDITION_FAILED);
    let suffix = format!("': queue limit in vhost '{vh}' (2) is reached");
    assert!(
        text.starts_with("PRECONDITION_FAILED - cannot declare queue 'amq.gen-") && text.ends_with(&suffix),
        "{text}"
    );
    // Redeclaring an existing queue at the limit is fine.
    let ch = channel(&conn).await;
    named_queue(&ch, "q1").await;
    // Deleting one frees a slot.
    delete_queue(&ch, "q2").await;
    named_queue(&ch, "q3").await;
    let res =
        within("queue.declare", ch.queue_declare("q4".into(), Default::default(), FieldTable::default()))
            .await;
    assert_eq!(expect_soft_error(res, PRECONDITION_FAILED), refused("q4", 2));
    // 0 allows none.
    set_vhost_limit(&vh, "max-queues", 0).await;
    let ch = channel(&conn).await;
    let res =
        within("queue.declare", ch.queue_declare("q5".into(), Default::default(), FieldTable::default()))
            .await;
    assert_eq!(expect_soft_error(res, PRECONDITION_FAILED), refused("q5", 0));
    // Clearing the limit lifts it.
    clear_vhost_limit(&vh, "max-queues").await;
    let ch = channel(&conn).await;
    for q in ["q4", "q5", "q6"] {
        named_queue(&ch, q).await;
    }
    teardown(conn).await;
}

#[tokio::test]
async fn limits_are_per_vhost() {
    let (limited, _c1) = vhost("vh-limited").await;
    let (free, _c2) = vhost("vh-free").await;
    set_vhost_limit(&limited, "max-queues", 0).await;
    set_vhost_limit(&limited, "max-connections", 1).await;
    let c1 = connect_vhost(&limited).await;
    let ch = channel(&c1).await;
    let res =
        within("queue.declare", ch.queue_declare("q".into(), Default::default(), FieldTable::default()))
            .await;
    expect_soft_error(res, PRECONDITION_FAILED);
    // The other vhost is unaffected.
    let c2 = connect_vhost(&free).await;
    let c3 = connect_vhost(&free).await;
    let ch = channel(&c2).await;
    named_queue(&ch, "q").await;
    for c in [c1, c2, c3] {
        teardown(c).await;
    }
}

/// User limits (`/api/user-limits`): RabbitMQ's texts for the connection
/// and channel refusals, and the limits lift when cleared.
#[tokio::test]
async fn user_limits_refuse_the_next_connection_and_channel() {
    let (vh, _cleanup) = vhost("vh-userlim").await;
    let user = format!("{vh}-u");
    let mut cleanup = Cleanup::default();
    cleanup.user(&user);
    add_user(&user, PASSWORD, "").await;
    set_permissions(&vh, &user, ".*", ".*", ".*").await;
    let limit = |name: &str| format!("/api/user-limits/{}/{name}", enc(&user));
    admin_ok("PUT", &limit("max-connections"), Some("{\"value\":1}")).await;
    admin_ok("PUT", &limit("max-channels"), Some("{\"value\":1}")).await;

    let c1 = connect_as(&user, PASSWORD, &vh).await.expect("1st connection");
    let text = expect_limit_refused(&user, PASSWORD, &vh, 530).await;
    assert_eq!(
        text,
        format!("NOT_ALLOWED - connection refused for user '{user}': user connection limit (1) is reached")
    );
    let ch = channel(&c1).await;
    let text = expect_hard_error(within("a second channel", c1.create_channel()).await, 530);
    assert_eq!(
        text,
        format!("NOT_ALLOWED - number of channels opened for user '{user}' has reached the maximum allowed user limit of (1)")
    );
    drop(ch);

    admin_ok("DELETE", &limit("max-connections"), None).await;
    admin_ok("DELETE", &limit("max-channels"), None).await;
    let c2 = connect_as(&user, PASSWORD, &vh).await.expect("a connection once the limit is cleared");
    let _a = channel(&c2).await;
    let _b = channel(&c2).await;
    teardown(c2).await;
}
