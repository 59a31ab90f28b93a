//! Topic permissions: routing keys checked on publish, binding keys on bind.

use super::*;

#[tokio::test]
async fn topic_permissions_check_publish_routing_keys() {
    // On the default vhost, as in RabbitMQ's documentation.
    let mut acl = Acl::on_default_vhost("acl-topic-pub").await;
    let t = acl.n("own-t");
    let q = acl.n("own-q");
    acl.admin_exchange(&t, ExchangeKind::Topic).await;
    acl.admin_queue(&q).await;
    bind(&acl.admin_ch, &q, &t, "#").await;
    set_topic_permissions("/", &acl.user, &t, r"^a\.", r"^r\.").await;
    acl.reconnect().await;
    acl.ok(Op::Publish { exchange: &t, key: "a.b" }).await;
    acl.refused_with(Op::Publish { exchange: &t, key: "b.c" }, acl.refused_topic("b.c", &t)).await;
    acl.refused_with(Op::Publish { exchange: &t, key: "" }, acl.refused_topic("", &t)).await;
    // Only the allowed message got through.
    let msg = get_eventually(&acl.admin_ch, &q).await;
    assert_eq!(msg.delivery.routing_key.as_str(), "a.b");
    assert!(get(&acl.admin_ch, &q).await.is_none());
    // A topic exchange with write but no read permission (x) is checked the same way.
    let x = acl.n("x");
    acl.admin_exchange(&x, ExchangeKind::Topic).await;
    set_topic_permissions("/", &acl.user, &x, r"^a\.", r"^r\.").await;
    acl.reconnect().await;
    acl.ok(Op::Publish { exchange: &x, key: "a.b" }).await;
    acl.refused_with(Op::Publish { exchange: &x, key: "b.c" }, acl.refused_topic("b.c", &x)).await;
    acl.finish(&[&q], &[&t, &x]).await;
}

#[tokio::test]
async fn topic_permissions_check_binding_keys_against_read() {
    let mut acl = Acl::new("acl-topic-bind").await;
    let (t, d, q) = (acl.n("own-t"), acl.n("own-d"), acl.n("own-q"));
    acl.admin_exchange(&t, ExchangeKind::Topic).await;
    acl.admin_exchange(&d, ExchangeKind::Direct).await;
    acl.admin_queue(&q).await;
    set_topic_permissions(&acl.vhost, &acl.user, &t, r"^a\.", r"^r\.").await;
    acl.reconnect().await;
    // queue.bind / queue.unbind: the binding key is checked against read.
    acl.ok(Op::BindQ { queue: &q, exchange: &t, key: "r.x" }).await;
    acl.refused_with(Op::BindQ { queue: &q, exchange: &t, key: "a.x" }, acl.refused_topic("a.x", &t)).await;
    acl.refused_with(Op::UnbindQ { queue: &q, exchange: &t, key: "b.c" }, acl.refused_topic("b.c", &t)).await;
    acl.ok(Op::UnbindQ { queue: &q, exchange: &t, key: "r.x" }).await;
    // exchange.bind with the topic exchange as the source: the same.
    acl.ok(Op::BindX { destination: &d, source: &t, key: "r.c" }).await;
    acl.refused_with(Op::BindX { destination: &d, source: &t, key: "b.c" }, acl.refused_topic("b.c", &t))
        .await;
    acl.refused_with(Op::UnbindX { destination: &d, source: &t, key: "b.c" }, acl.refused_topic("b.c", &t))
        .await;
    acl.ok(Op::UnbindX { destination: &d, source: &t, key: "r.c" }).await;
    acl.finish(&[&q], &[&t, &d]).await;
}

#[tokio::test]
async fn topic_permissions_apply_only_to_their_topic_exchange() {
    let mut acl = Acl::new("acl-topic-other").await;
    let (t, t2, d, f, q) = (acl.n("own-t"), acl.n("own-t2"), acl.n("own-d"), acl.n("own-f"), acl.n("own-q"));
    acl.admin_exchange(&t, ExchangeKind::Topic).await;
    acl.admin_exchange(&t2, ExchangeKind::Topic).await;
    acl.admin_exchange(&d, ExchangeKind::Direct).await;
    acl.admin_exchange(&f, ExchangeKind::Fanout).await;
    acl.admin_queue(&q).await;
    set_topic_permissions(&acl.vhost, &acl.user, &t, r"^a\.", r"^r\.").await;
    acl.reconnect().await;
    // Direct and fanout exchanges, and topic exchanges without topic
    // permissions of their own, are unaffected.
    for x in [&d, &f, &t2] {
        acl.ok(Op::Publish { exchange: x, key: "b.c" }).await;
        acl.ok(Op::BindQ { queue: &q, exchange: x, key: "b.c" }).await;
        acl.ok(Op::UnbindQ { queue: &q, exchange: x, key: "b.c" }).await;
    }
    acl.refused_with(Op::Publish { exchange: &t, key: "b.c" }, acl.refused_topic("b.c", &t)).await;
    acl.finish(&[&q], &[&t, &t2, &d, &f]).await;
}
