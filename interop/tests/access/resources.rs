//! Permission checks of declares, deletes, binds, publishes, gets and consumes,
//! row by row of RabbitMQ's access-control table.

use super::*;

#[tokio::test]
async fn exchange_declare_needs_configure() {
    let acl = Acl::new("acl-xdecl").await;
    let (own, cfg, x, other) = (acl.n("own-x"), acl.n("cfg-x"), acl.n("x"), acl.n("other"));
    acl.ok(Op::DeclareX(&own, ExchangeKind::Topic, no_args())).await;
    // Configure is all an exchange.declare needs.
    acl.ok(Op::DeclareX(&cfg, ExchangeKind::Direct, no_args())).await;
    // Write (x) or nothing (other) is not enough.
    acl.refused_with(Op::DeclareX(&x, ExchangeKind::Direct, no_args()), acl.refused("exchange", &x)).await;
    acl.refused_with(Op::DeclareX(&other, ExchangeKind::Direct, no_args()), acl.refused("exchange", &other))
        .await;
    // Redeclaring an existing exchange is checked the same way.
    acl.admin_exchange(&other, ExchangeKind::Direct).await;
    acl.refused_with(Op::DeclareX(&other, ExchangeKind::Direct, no_args()), acl.refused("exchange", &other))
        .await;
    // An equivalent redeclare of amq.direct needs configure on it too.
    acl.refused_with(
        Op::DeclareX("amq.direct", ExchangeKind::Direct, no_args()),
        acl.refused("exchange", "amq.direct"),
    )
    .await;
    acl.finish(&[], &[&own, &cfg, &other]).await;
}

#[tokio::test]
async fn passive_declares_need_no_permission() {
    let acl = Acl::new("acl-passive").await;
    let (x, other_x, q, other_q) = (acl.n("x"), acl.n("other-x"), acl.n("q"), acl.n("other-q"));
    acl.admin_exchange(&x, ExchangeKind::Topic).await;
    acl.admin_exchange(&other_x, ExchangeKind::Fanout).await;
    acl.admin_queue(&q).await;
    acl.admin_queue(&other_q).await;
    // No configure on any of these; `other-*` and amq.* have no permission at all.
    for name in [&x, &other_x, "amq.direct", "amq.topic"] {
        acl.ok(Op::DeclareXPassive(name)).await;
    }
    for name in [&q, &other_q] {
        acl.ok(Op::DeclareQPassive(name)).await;
    }
    // Missing objects are 404 whether or not the user has permissions on the name.
    for name in [acl.n("own-missing"), acl.n("missing")] {
        let text = acl.fails(Op::DeclareQPassive(&name), NOT_FOUND).await;
        assert_eq!(text, format!("NOT_FOUND - no queue '{name}' in vhost '{}'", acl.vhost));
        let text = acl.fails(Op::DeclareXPassive(&name), NOT_FOUND).await;
        assert_eq!(text, format!("NOT_FOUND - no exchange '{name}' in vhost '{}'", acl.vhost));
    }
    acl.finish(&[&q, &other_q], &[&x, &other_x]).await;
}

#[tokio::test]
async fn exchange_declare_with_alternate_exchange_needs_write_on_it_and_read_on_the_exchange() {
    let acl = Acl::new("acl-ae").await;
    let (x, own_ae) = (acl.n("x"), acl.n("own-ae"));
    acl.admin_exchange(&x, ExchangeKind::Fanout).await;
    acl.admin_exchange(&own_ae, ExchangeKind::Fanout).await;
    let (own1, own2, own3) = (acl.n("own-x1"), acl.n("own-x2"), acl.n("own-x3"));
    // Write on the AE (x is write-only, own-ae fully permitted); a missing AE only needs write.
    acl.ok(Op::DeclareX(&own1, ExchangeKind::Direct, ae(&x))).await;
    acl.ok(Op::DeclareX(&own2, ExchangeKind::Direct, ae(&own_ae))).await;
    acl.ok(Op::DeclareX(&own3, ExchangeKind::Direct, ae(&acl.n("own-missing-ae")))).await;
    // No write on the AE.
    let own4 = acl.n("own-x4");
    acl.refused_with(
        Op::DeclareX(&own4, ExchangeKind::Direct, ae("amq.direct")),
        acl.refused("exchange", "amq.direct"),
    )
    .await;
    // cfg-x has configure but no read: with an AE, read on the exchange is needed…
    let cfg = acl.n("cfg-x");
    acl.refused_with(Op::DeclareX(&cfg, ExchangeKind::Direct, ae(&own_ae)), acl.refused("exchange", &cfg))
        .await;
    // …and it is checked before write on the AE.
    acl.refused_with(
        Op::DeclareX(&cfg, ExchangeKind::Direct, ae("amq.direct")),
        acl.refused("exchange", &cfg),
    )
    .await;
    // Configure is checked first of all.
    let other = acl.n("other-x");
    acl.refused_with(
        Op::DeclareX(&other, ExchangeKind::Direct, ae("amq.direct")),
        acl.refused("exchange", &other),
    )
    .await;
    // Nothing was created by the refused declares.
    let text = acl.fails(Op::DeclareXPassive(&own4), NOT_FOUND).await;
    assert_eq!(text, format!("NOT_FOUND - no exchange '{own4}' in vhost '{}'", acl.vhost));
    acl.finish(&[], &[&own1, &own2, &own3, &x, &own_ae]).await;
}

#[tokio::test]
async fn exchange_delete_needs_configure() {
    let acl = Acl::new("acl-xdel").await;
    let (own, cfg, x) = (acl.n("own-x"), acl.n("cfg-x"), acl.n("x"));
    for name in [&own, &cfg, &x] {
        acl.admin_exchange(name, ExchangeKind::Direct).await;
    }
    acl.ok(Op::DeleteX(&own)).await;
    acl.ok(Op::DeleteX(&cfg)).await;
    acl.refused_with(Op::DeleteX(&x), acl.refused("exchange", &x)).await;
    acl.ok(Op::DeclareXPassive(&x)).await;
    // Deleting a missing exchange succeeds, but only with configure on its
    // name: the permission check comes before the existence check.
    acl.ok(Op::DeleteX(&acl.n("own-missing"))).await;
    let missing = acl.n("missing");
    acl.refused_with(Op::DeleteX(&missing), acl.refused("exchange", &missing)).await;
    acl.finish(&[], &[&x]).await;
}

#[tokio::test]
async fn queue_declare_needs_configure() {
    let acl = Acl::new("acl-qdecl").await;
    let (own, cfg, q, other) = (acl.n("own-q"), acl.n("cfg-q"), acl.n("q"), acl.n("other-q"));
    acl.ok(Op::DeclareQ(&own, no_args())).await;
    acl.ok(Op::DeclareQ(&cfg, no_args())).await;
    // Read (q) or nothing (other) is not enough, for new or existing queues.
    acl.refused_with(Op::DeclareQ(&q, no_args()), acl.refused("queue", &q)).await;
    acl.refused_with(Op::DeclareQ(&other, no_args()), acl.refused("queue", &other)).await;
    acl.admin_queue(&q).await;
    acl.refused_with(Op::DeclareQ(&q, no_args()), acl.refused("queue", &q)).await;
    // An equivalent redeclare of its own queue is fine.
    acl.ok(Op::DeclareQ(&own, no_args())).await;
    acl.finish(&[&own, &cfg, &q], &[]).await;
}

#[tokio::test]
async fn queue_declare_with_dead_letter_exchange_needs_write_on_it_and_read_on_the_queue() {
    let acl = Acl::new("acl-dlx").await;
    let (x, own_dlx) = (acl.n("x"), acl.n("own-dlx"));
    acl.admin_exchange(&x, ExchangeKind::Fanout).await;
    acl.admin_exchange(&own_dlx, ExchangeKind::Fanout).await;
    let (q1, q2, q3) = (acl.n("own-q1"), acl.n("own-q2"), acl.n("own-q3"));
    acl.ok(Op::DeclareQ(&q1, dlx(&x))).await;
    acl.ok(Op::DeclareQ(&q2, dlx(&own_dlx))).await;
    // A DLX that does not exist yet needs write on its name only.
    acl.ok(Op::DeclareQ(&q3, dlx(&acl.n("own-missing-dlx")))).await;
    // No write on the DLX; the default exchange "" is checked as amq.default.
    let q4 = acl.n("own-q4");
    acl.refused_with(Op::DeclareQ(&q4, dlx("amq.direct")), acl.refused("exchange", "amq.direct")).await;
    acl.refused_with(Op::DeclareQ(&q4, dlx("")), acl.refused("exchange", "amq.default")).await;
    // cfg-q has configure but no read: read on the queue is needed, and is
    // checked before write on the DLX; configure comes first of all.
    let cfg = acl.n("cfg-q");
    acl.refused_with(Op::DeclareQ(&cfg, dlx(&own_dlx)), acl.refused("queue", &cfg)).await;
    acl.refused_with(Op::DeclareQ(&cfg, dlx("amq.direct")), acl.refused("queue", &cfg)).await;
    let other = acl.n("other-q");
    acl.refused_with(Op::DeclareQ(&other, dlx("amq.direct")), acl.refused("queue", &other)).await;
    // Nothing was created by the refused declares.
    for name in [&q4, &cfg, &other] {
        let text = acl.fails(Op::DeclareQPassive(name), NOT_FOUND).await;
        assert_eq!(text, format!("NOT_FOUND - no queue '{name}' in vhost '{}'", acl.vhost));
    }
    acl.finish(&[&q1, &q2, &q3], &[&x, &own_dlx]).await;
}

#[tokio::test]
async fn server_named_queue_needs_configure_on_its_amq_gen_name() {
    let acl = Acl::new("acl-gen").await;
    // The regex user has no configure on amq.gen-…
    let text = acl.fails(Op::DeclareServerNamedQ, ACCESS_REFUSED).await;
    let prefix = "ACCESS_REFUSED - access to queue 'amq.gen-";
    let suffix = format!("' in vhost '{}' refused for user '{}'", acl.vhost, acl.user);
    assert!(text.starts_with(prefix) && text.ends_with(&suffix), "{text}");
    // …a user whose only permission is configure on ^amq\.gen- may.
    let gen_user = acl.n("gen-u");
    let mut cleanup = Cleanup::default();
    cleanup.user(&gen_user);
    add_user(&gen_user, PASSWORD, "").await;
    set_permissions(&acl.vhost, &gen_user, r"^amq\.gen-", "", "").await;
    let conn = connect_as(&gen_user, PASSWORD, &acl.vhost).await.expect("gen user connects");
    let ch = channel(&conn).await;
    let name = temp_queue(&ch).await;
    assert!(name.starts_with("amq.gen-"), "{name}");
    // A named queue is still refused.
    let own = acl.n("own-q");
    let res = within(
        "queue.declare",
        channel(&conn).await.queue_declare(own.as_str().into(), QueueDeclareOptions::default(), no_args()),
    )
    .await;
    let text = expect_soft_error(res, ACCESS_REFUSED);
    assert_eq!(
        text,
        format!(
            "ACCESS_REFUSED - access to queue '{own}' in vhost '{}' refused for user '{gen_user}'",
            acl.vhost
        )
    );
    teardown(conn).await;
    acl.finish(&[], &[]).await;
}

#[tokio::test]
async fn queue_delete_needs_configure() {
    let acl = Acl::new("acl-qdel").await;
    let (own, cfg, q) = (acl.n("own-q"), acl.n("cfg-q"), acl.n("q"));
    for name in [&own, &cfg, &q] {
        acl.admin_queue(name).await;
    }
    acl.ok(Op::DeleteQ(&own)).await;
    acl.ok(Op::DeleteQ(&cfg)).await;
    acl.refused_with(Op::DeleteQ(&q), acl.refused("queue", &q)).await;
    acl.ok(Op::DeclareQPassive(&q)).await;
    // Deleting a missing queue succeeds only with configure on the name.
    acl.ok(Op::DeleteQ(&acl.n("own-missing"))).await;
    let missing = acl.n("missing");
    acl.refused_with(Op::DeleteQ(&missing), acl.refused("queue", &missing)).await;
    acl.finish(&[&q], &[]).await;
}

#[tokio::test]
async fn exchange_bind_needs_write_on_destination_and_read_on_source() {
    let acl = Acl::new("acl-xbind").await;
    let (own_x, own_y, x) = (acl.n("own-x"), acl.n("own-y"), acl.n("x"));
    for name in [&own_x, &own_y, &x] {
        acl.admin_exchange(name, ExchangeKind::Direct).await;
    }
    // x is write-only: fine as a destination, not as a source.
    acl.ok(Op::BindX { destination: &x, source: &own_x, key: "k" }).await;
    acl.ok(Op::UnbindX { destination: &x, source: &own_x, key: "k" }).await;
    acl.ok(Op::BindX { destination: &own_y, source: &own_x, key: "k" }).await;
    acl.ok(Op::UnbindX { destination: &own_y, source: &own_x, key: "k" }).await;
    acl.refused_with(Op::BindX { destination: &own_y, source: &x, key: "k" }, acl.refused("exchange", &x))
        .await;
    acl.refused_with(Op::UnbindX { destination: &own_y, source: &x, key: "k" }, acl.refused("exchange", &x))
        .await;
    // No write on the destination; it is checked before read on the source.
    let amq = "amq.direct";
    acl.refused_with(Op::BindX { destination: amq, source: &own_x, key: "k" }, acl.refused("exchange", amq))
        .await;
    acl.refused_with(Op::BindX { destination: amq, source: &x, key: "k" }, acl.refused("exchange", amq))
        .await;
    acl.refused_with(
        Op::UnbindX { destination: amq, source: &own_x, key: "k" },
        acl.refused("exchange", amq),
    )
    .await;
    acl.finish(&[], &[&own_x, &own_y, &x]).await;
}

#[tokio::test]
async fn queue_bind_needs_write_on_queue_and_read_on_exchange() {
    let acl = Acl::new("acl-qbind").await;
    let (own_x, x, own_q, q) = (acl.n("own-x"), acl.n("x"), acl.n("own-q"), acl.n("q"));
    acl.admin_exchange(&own_x, ExchangeKind::Direct).await;
    acl.admin_exchange(&x, ExchangeKind::Direct).await;
    acl.admin_queue(&own_q).await;
    acl.admin_queue(&q).await;
    acl.ok(Op::BindQ { queue: &own_q, exchange: &own_x, key: "k" }).await;
    acl.ok(Op::UnbindQ { queue: &own_q, exchange: &own_x, key: "k" }).await;
    // x is write-only (no read), q is read-only (no write).
    acl.refused_with(Op::BindQ { queue: &own_q, exchange: &x, key: "k" }, acl.refused("exchange", &x)).await;
    acl.refused_with(Op::UnbindQ { queue: &own_q, exchange: &x, key: "k" }, acl.refused("exchange", &x))
        .await;
    acl.refused_with(Op::BindQ { queue: &q, exchange: &own_x, key: "k" }, acl.refused("queue", &q)).await;
    acl.refused_with(Op::UnbindQ { queue: &q, exchange: &own_x, key: "k" }, acl.refused("queue", &q)).await;
    // Write on the queue is checked first.
    acl.refused_with(Op::BindQ { queue: &q, exchange: &x, key: "k" }, acl.refused("queue", &q)).await;
    // Permission before existence.
    let missing = acl.n("missing");
    acl.refused_with(
        Op::BindQ { queue: &missing, exchange: &own_x, key: "k" },
        acl.refused("queue", &missing),
    )
    .await;
    let own_missing = acl.n("own-missing");
    let text = acl.fails(Op::BindQ { queue: &own_missing, exchange: &own_x, key: "k" }, NOT_FOUND).await;
    assert_eq!(text, format!("NOT_FOUND - no queue '{own_missing}' in vhost '{}'", acl.vhost));
    acl.finish(&[&own_q, &q], &[&own_x, &x]).await;
}

#[tokio::test]
async fn publish_needs_write_and_permission_comes_before_existence() {
    let acl = Acl::new("acl-pub").await;
    let (own_x, x, other_x, own_q) = (acl.n("own-x"), acl.n("x"), acl.n("other-x"), acl.n("own-q"));
    for name in [&own_x, &x, &other_x] {
        acl.admin_exchange(name, ExchangeKind::Direct).await;
    }
    acl.admin_queue(&own_q).await;
    acl.ok(Op::Publish { exchange: &own_x, key: "k" }).await;
    acl.ok(Op::Publish { exchange: &x, key: "k" }).await;
    acl.refused_with(Op::Publish { exchange: &other_x, key: "k" }, acl.refused("exchange", &other_x)).await;
    acl.refused_with(Op::Publish { exchange: "amq.direct", key: "k" }, acl.refused("exchange", "amq.direct"))
        .await;
    // The default exchange is checked as amq.default, whatever the queue's permissions.
    acl.refused_with(Op::Publish { exchange: "", key: &own_q }, acl.refused("exchange", "amq.default")).await;
    // A missing exchange: 403 without write on its name, 404 with it.
    let missing = acl.n("missing");
    acl.refused_with(Op::Publish { exchange: &missing, key: "k" }, acl.refused("exchange", &missing)).await;
    let own_missing = acl.n("own-missing");
    let text = acl.fails(Op::Publish { exchange: &own_missing, key: "k" }, NOT_FOUND).await;
    assert_eq!(text, format!("NOT_FOUND - no exchange '{own_missing}' in vhost '{}'", acl.vhost));
    acl.finish(&[&own_q], &[&own_x, &x, &other_x]).await;
}

#[tokio::test]
async fn default_exchange_publish_is_allowed_with_write_on_amq_default() {
    let mut acl = Acl::new("acl-default-x").await;
    let q = acl.n("own-q");
    acl.admin_queue(&q).await;
    let r = re_escape(&acl.p);
    set_permissions(&acl.vhost, &acl.user, "", r"^amq\.default$", &format!("^{r}-own-q$")).await;
    acl.reconnect().await;
    acl.ok(Op::Publish { exchange: "", key: &q }).await;
    let msg = get_eventually(&acl.admin_ch, &q).await;
    assert_eq!(msg.delivery.data, b"payload");
    acl.finish(&[&q], &[]).await;
}

#[tokio::test]
async fn get_consume_and_purge_need_read() {
    let acl = Acl::new("acl-read").await;
    let (q, own_q, cfg_q, other_q) = (acl.n("q"), acl.n("own-q"), acl.n("cfg-q"), acl.n("other-q"));
    for name in [&q, &own_q, &cfg_q, &other_q] {
        acl.admin_queue(name).await;
    }
    publish(&acl.admin_ch, "", &q, b"m").await;
    // q is read-only: basic.get, basic.consume and queue.purge are all reads.
    for name in [&q, &own_q] {
        acl.ok(Op::Get(name)).await;
        acl.ok(Op::Consume(name)).await;
        acl.ok(Op::Purge(name)).await;
    }
    for name in [&cfg_q, &other_q] {
        acl.refused_with(Op::Get(name), acl.refused("queue", name)).await;
        acl.refused_with(Op::Consume(name), acl.refused("queue", name)).await;
        acl.refused_with(Op::Purge(name), acl.refused("queue", name)).await;
    }
    // Permission before existence: 403 on a missing queue without read, 404 with it.
    let missing = acl.n("missing");
    acl.refused_with(Op::Get(&missing), acl.refused("queue", &missing)).await;
    acl.refused_with(Op::Consume(&missing), acl.refused("queue", &missing)).await;
    acl.refused_with(Op::Purge(&missing), acl.refused("queue", &missing)).await;
    let own_missing = acl.n("own-missing");
    let not_found = format!("NOT_FOUND - no queue '{own_missing}' in vhost '{}'", acl.vhost);
    assert_eq!(acl.fails(Op::Get(&own_missing), NOT_FOUND).await, not_found);
    assert_eq!(acl.fails(Op::Consume(&own_missing), NOT_FOUND).await, not_found);
    assert_eq!(acl.fails(Op::Purge(&own_missing), NOT_FOUND).await, not_found);
    acl.finish(&[&q, &own_q, &cfg_q, &other_q], &[]).await;
}
