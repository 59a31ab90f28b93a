//! Exchanges deleted if unused or with their bindings, and the predeclared
//! `amq.*` exchanges.

use super::*;

#[tokio::test]
async fn exchange_delete_if_unused() {
    let (conn, ch) = setup().await;
    let ex = unique("del-if-unused-ex");
    declare_exchange(&ch, &ex, ExchangeKind::Fanout, ExchangeDeclareOptions::default()).await;
    let q = temp_queue(&ch).await;
    bind(&ch, &q, &ex, "").await;

    let ch2 = channel(&conn).await;
    let text = expect_error(
        "exchange.delete if-unused",
        ch2.exchange_delete(
            ex.as_str().into(),
            ExchangeDeleteOptions { if_unused: true, ..Default::default() },
        ),
        PRECONDITION_FAILED,
    )
    .await;
    assert!(text.starts_with("PRECONDITION_FAILED"), "{text}");
    assert!(text.contains(&ex), "{text}");
    assert!(exchange_exists(&conn, &ex).await);

    within(
        "queue.unbind",
        ch.queue_unbind(q.as_str().into(), ex.as_str().into(), "".into(), FieldTable::default()),
    )
    .await
    .expect("unbind");
    within(
        "exchange.delete if-unused",
        ch.exchange_delete(
            ex.as_str().into(),
            ExchangeDeleteOptions { if_unused: true, ..Default::default() },
        ),
    )
    .await
    .expect("delete unused exchange");
    assert!(!exchange_exists(&conn, &ex).await);
    teardown(conn).await;
}

#[tokio::test]
async fn deleting_exchange_removes_its_bindings() {
    let (conn, ch) = setup().await;
    let ex = unique("del-bindings-ex");
    declare_exchange(&ch, &ex, ExchangeKind::Fanout, ExchangeDeclareOptions::default()).await;
    let q = temp_queue(&ch).await;
    bind(&ch, &q, &ex, "").await;
    delete_exchange(&ch, &ex).await;
    // Recreate under the same name: the old binding must not come back.
    declare_exchange(&ch, &ex, ExchangeKind::Fanout, ExchangeDeclareOptions::default()).await;
    publish(&ch, &ex, "", b"nobody home").await;
    tokio::time::sleep(QUIET).await;
    assert!(get(&ch, &q).await.is_none(), "binding survived exchange deletion");
    delete_exchange(&ch, &ex).await;
    teardown(conn).await;
}

#[tokio::test]
async fn predeclared_exchanges_exist() {
    let conn = connect().await;
    for name in ["amq.direct", "amq.fanout", "amq.topic", "amq.headers", "amq.match"] {
        assert!(exchange_exists(&conn, name).await, "{name} missing");
    }
    teardown(conn).await;
}

#[tokio::test]
async fn predeclared_exchanges_route() {
    use lapin::types::{AMQPValue, LongString};
    let (conn, ch) = setup().await;
    let tag = unique("predeclared");

    let qd = temp_queue(&ch).await;
    bind(&ch, &qd, "amq.direct", &tag).await;
    let qf = temp_queue(&ch).await;
    bind(&ch, &qf, "amq.fanout", "").await;
    let qt = temp_queue(&ch).await;
    bind(&ch, &qt, "amq.topic", &format!("{tag}.#")).await;

    let mut hargs = FieldTable::default();
    hargs.insert("x-match".into(), AMQPValue::LongString(LongString::from("all")));
    hargs.insert("interop-tag".into(), AMQPValue::LongString(LongString::from(tag.as_str())));
    let qh = temp_queue(&ch).await;
    bind_args(&ch, &qh, "amq.headers", "", hargs.clone()).await;
    let qm = temp_queue(&ch).await;
    bind_args(&ch, &qm, "amq.match", "", hargs).await;

    publish(&ch, "amq.direct", &tag, b"direct").await;
    publish(&ch, "amq.topic", &format!("{tag}.x.y"), b"topic").await;
    let mut headers = FieldTable::default();
    headers.insert("interop-tag".into(), AMQPValue::LongString(LongString::from(tag.as_str())));
    let props = lapin::BasicProperties::default().with_headers(headers);
    publish_props(&ch, "amq.headers", "", b"headers", props.clone()).await;
    publish_props(&ch, "amq.match", "", b"match", props).await;
    publish(&ch, "amq.fanout", "", tag.as_bytes()).await;

    assert_eq!(get_eventually(&ch, &qd).await.delivery.data, b"direct");
    assert_eq!(get_eventually(&ch, &qt).await.delivery.data, b"topic");
    assert_eq!(get_eventually(&ch, &qh).await.delivery.data, b"headers");
    assert_eq!(get_eventually(&ch, &qm).await.delivery.data, b"match");
    // amq.fanout is shared with anyone else using this broker: look for our message.
    within("our fanout message", async {
        loop {
            let m = get_eventually(&ch, &qf).await;
            if m.delivery.data == tag.as_bytes() {
                return;
            }
        }
    })
    .await;
    teardown(conn).await;
}
