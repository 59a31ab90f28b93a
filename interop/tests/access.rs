//! Users and permissions: every row of RabbitMQ's access-control table
//! (configure / write / read regexes), topic permissions, login and vhost
//! access, and what deleting a user does to its connections.
//!
//! Setup goes through the management HTTP API at `$ADMIN_URL`. The user under
//! test has, on a vhost of its own (or on `/`), with `P` a unique prefix:
//! configure `^P-(own|cfg).*`, write `^P-(x|own.*)$`, read `^P-(q|own.*)$`.
//! So `P-own…` is fully permitted, `P-x` is write-only, `P-q` is read-only,
//! `P-cfg…` is configure-only and anything else (`P-other`, `amq.direct`, the
//! default exchange) is not permitted at all.
//!
//! RabbitMQ caches permission checks per connection, so permissions are set
//! before the user's connection is opened.

mod common;

use common::*;
use lapin::{
    options::{
        BasicConsumeOptions, BasicGetOptions, ExchangeBindOptions, ExchangeDeclareOptions,
        ExchangeDeleteOptions, ExchangeUnbindOptions, QueueBindOptions, QueueDeclareOptions,
        QueueDeleteOptions, QueuePurgeOptions,
    },
    types::FieldTable,
    BasicProperties, Channel, Confirmation, Connection, ExchangeKind,
};

const PASSWORD: &str = "s3cret-pw";

/// One AMQP operation, run by the user under test on a fresh channel.
#[derive(Clone)]
enum Op<'a> {
    DeclareX(&'a str, ExchangeKind, FieldTable),
    DeclareXPassive(&'a str),
    DeleteX(&'a str),
    DeclareQ(&'a str, FieldTable),
    DeclareServerNamedQ,
    DeclareQPassive(&'a str),
    DeleteQ(&'a str),
    BindX {
        destination: &'a str,
        source: &'a str,
        key: &'a str,
    },
    UnbindX {
        destination: &'a str,
        source: &'a str,
        key: &'a str,
    },
    BindQ {
        queue: &'a str,
        exchange: &'a str,
        key: &'a str,
    },
    UnbindQ {
        queue: &'a str,
        exchange: &'a str,
        key: &'a str,
    },
    /// basic.publish in confirm mode (Ok = acked).
    Publish {
        exchange: &'a str,
        key: &'a str,
    },
    Get(&'a str),
    Consume(&'a str),
    Purge(&'a str),
}

impl Op<'_> {
    fn describe(&self) -> String {
        match self {
            Op::DeclareX(x, kind, args) => format!("exchange.declare {x} ({kind:?}, {args:?})"),
            Op::DeclareXPassive(x) => format!("exchange.declare passive {x}"),
            Op::DeleteX(x) => format!("exchange.delete {x}"),
            Op::DeclareQ(q, args) => format!("queue.declare {q} ({args:?})"),
            Op::DeclareServerNamedQ => "queue.declare \"\" (server-named)".into(),
            Op::DeclareQPassive(q) => format!("queue.declare passive {q}"),
            Op::DeleteQ(q) => format!("queue.delete {q}"),
            Op::BindX { destination, source, key } => {
                format!("exchange.bind {destination} <- {source} ({key})")
            }
            Op::UnbindX { destination, source, key } => {
                format!("exchange.unbind {destination} <- {source} ({key})")
            }
            Op::BindQ { queue, exchange, key } => format!("queue.bind {queue} <- {exchange} ({key})"),
            Op::UnbindQ { queue, exchange, key } => format!("queue.unbind {queue} <- {exchange} ({key})"),
            Op::Publish { exchange, key } => format!("basic.publish to {exchange:?} ({key})"),
            Op::Get(q) => format!("basic.get {q}"),
            Op::Consume(q) => format!("basic.consume {q}"),
            Op::Purge(q) => format!("queue.purge {q}"),
        }
    }

    async fn run(&self, ch: &Channel) -> lapin::Result<()> {
        match self.clone() {
            Op::DeclareX(x, kind, args) => {
                ch.exchange_declare(x.into(), kind, ExchangeDeclareOptions::default(), args).await
            }
            Op::DeclareXPassive(x) => {
                let opts = ExchangeDeclareOptions { passive: true, ..Default::default() };
                ch.exchange_declare(x.into(), ExchangeKind::Direct, opts, FieldTable::default()).await
            }
            Op::DeleteX(x) => ch.exchange_delete(x.into(), ExchangeDeleteOptions::default()).await,
            Op::DeclareQ(q, args) => {
                ch.queue_declare(q.into(), QueueDeclareOptions::default(), args).await.map(drop)
            }
            Op::DeclareServerNamedQ => {
                let opts = QueueDeclareOptions { exclusive: true, ..Default::default() };
                ch.queue_declare("".into(), opts, FieldTable::default()).await.map(drop)
            }
            Op::DeclareQPassive(q) => {
                let opts = QueueDeclareOptions { passive: true, ..Default::default() };
                ch.queue_declare(q.into(), opts, FieldTable::default()).await.map(drop)
            }
            Op::DeleteQ(q) => ch.queue_delete(q.into(), QueueDeleteOptions::default()).await.map(drop),
            Op::BindX { destination, source, key } => {
                ch.exchange_bind(
                    destination.into(),
                    source.into(),
                    key.into(),
                    ExchangeBindOptions::default(),
                    FieldTable::default(),
                )
                .await
            }
            Op::UnbindX { destination, source, key } => {
                ch.exchange_unbind(
                    destination.into(),
                    source.into(),
                    key.into(),
                    ExchangeUnbindOptions::default(),
                    FieldTable::default(),
                )
                .await
            }
            Op::BindQ { queue, exchange, key } => {
                ch.queue_bind(
                    queue.into(),
                    exchange.into(),
                    key.into(),
                    QueueBindOptions::default(),
                    FieldTable::default(),
                )
                .await
            }
            Op::UnbindQ { queue, exchange, key } => {
                ch.queue_unbind(queue.into(), exchange.into(), key.into(), FieldTable::default()).await
            }
            Op::Publish { exchange, key } => {
                ch.confirm_select(Default::default()).await?;
                let confirm = ch
                    .basic_publish(
                        exchange.into(),
                        key.into(),
                        Default::default(),
                        b"payload",
                        BasicProperties::default(),
                    )
                    .await?;
                match confirm.await? {
                    Confirmation::Ack(_) => Ok(()),
                    other => panic!("publish to {exchange:?} ({key}): expected an ack, got {other:?}"),
                }
            }
            Op::Get(q) => ch.basic_get(q.into(), BasicGetOptions { no_ack: true }).await.map(drop),
            Op::Consume(q) => ch
                .basic_consume(q.into(), "".into(), BasicConsumeOptions::default(), FieldTable::default())
                .await
                .map(drop),
            Op::Purge(q) => ch.queue_purge(q.into(), QueuePurgeOptions::default()).await.map(drop),
        }
    }
}

/// A user with the regex permissions described at the top of this file, its
/// connection, and an administrator connection (guest) on the same vhost.
struct Acl {
    /// The unique prefix `P`.
    p: String,
    vhost: String,
    user: String,
    conn: Connection,
    admin: Connection,
    admin_ch: Channel,
    _cleanup: Cleanup,
}

impl Acl {
    /// On a vhost of its own (deleted at the end, with everything in it).
    async fn new(tag: &str) -> Acl {
        let p = unique(tag);
        let vhost = format!("{p}-vh");
        let mut cleanup = Cleanup::default();
        cleanup.vhost(&vhost);
        add_vhost(&vhost).await;
        let admin_user = url_parts(&amqp_url()).user;
        set_permissions(&vhost, &admin_user, ".*", ".*", ".*").await;
        Acl::with(p, vhost, cleanup).await
    }

    /// On the default vhost `/`; the test deletes what it declares there.
    async fn on_default_vhost(tag: &str) -> Acl {
        Acl::with(unique(tag), "/".to_string(), Cleanup::default()).await
    }

    async fn with(p: String, vhost: String, mut cleanup: Cleanup) -> Acl {
        let user = format!("{p}-u");
        cleanup.user(&user);
        add_user(&user, PASSWORD, "").await;
        let r = re_escape(&p);
        set_permissions(
            &vhost,
            &user,
            &format!("^{r}-(own|cfg).*"),
            &format!("^{r}-(x|own.*)$"),
            &format!("^{r}-(q|own.*)$"),
        )
        .await;
        let conn = connect_as(&user, PASSWORD, &vhost).await.expect("user connects");
        let admin = connect_vhost(&vhost).await;
        let admin_ch = channel(&admin).await;
        Acl { p, vhost, user, conn, admin, admin_ch, _cleanup: cleanup }
    }

    /// A new connection for the user (RabbitMQ applies permission changes
    /// only to new connections).
    async fn reconnect(&mut self) {
        let conn = connect_as(&self.user, PASSWORD, &self.vhost).await.expect("user reconnects");
        let old = std::mem::replace(&mut self.conn, conn);
        teardown(old).await;
    }

    /// `P-<suffix>`.
    fn n(&self, suffix: &str) -> String {
        format!("{}-{suffix}", self.p)
    }

    /// RabbitMQ's text for a refused resource (`kind` is queue or exchange).
    fn refused(&self, kind: &str, name: &str) -> String {
        format!(
            "ACCESS_REFUSED - access to {kind} '{name}' in vhost '{}' refused for user '{}'",
            self.vhost, self.user
        )
    }

    fn refused_topic(&self, key: &str, exchange: &str) -> String {
        format!(
            "ACCESS_REFUSED - access to topic '{key}' in exchange '{exchange}' in vhost '{}' refused for user '{}'",
            self.vhost, self.user
        )
    }

    async fn run(&self, op: &Op<'_>) -> lapin::Result<()> {
        let ch = channel(&self.conn).await;
        let res = within(&op.describe(), op.run(&ch)).await;
        if res.is_ok() {
            let _ = tokio::time::timeout(TIMEOUT, ch.close(200, "ok".into())).await;
        }
        res
    }

    /// The user may do `op`.
    async fn ok(&self, op: Op<'_>) {
        if let Err(e) = self.run(&op).await {
            panic!("{} as {}: expected success, got {e}", op.describe(), self.user);
        }
    }

    /// The user's `op` fails with the channel error `code`; returns the text.
    async fn fails(&self, op: Op<'_>, code: u16) -> String {
        let res = self.run(&op).await;
        match &res {
            Ok(()) => panic!("{} as {}: expected error {code}, but it succeeded", op.describe(), self.user),
            Err(e) if amqp_error(e).is_none() => {
                panic!("{}: expected AMQP error {code}, got {e:?}", op.describe())
            }
            Err(_) => expect_soft_error(res, code),
        }
    }

    /// The user's `op` is refused (403) with exactly `text`.
    async fn refused_with(&self, op: Op<'_>, text: String) {
        let what = op.describe();
        let got = self.fails(op, ACCESS_REFUSED).await;
        assert_eq!(got, text, "{what}");
    }

    async fn admin_exchange(&self, name: &str, kind: ExchangeKind) {
        declare_exchange(&self.admin_ch, name, kind, ExchangeDeclareOptions::default()).await;
    }

    async fn admin_queue(&self, name: &str) {
        named_queue(&self.admin_ch, name).await;
    }

    async fn finish(self, queues: &[&str], exchanges: &[&str]) {
        for q in queues {
            delete_queue(&self.admin_ch, q).await;
        }
        for x in exchanges {
            within(
                "exchange.delete",
                self.admin_ch.exchange_delete((*x).into(), ExchangeDeleteOptions::default()),
            )
            .await
            .expect("exchange.delete");
        }
        teardown(self.conn).await;
        teardown(self.admin).await;
    }
}

fn no_args() -> FieldTable {
    FieldTable::default()
}

fn ae(name: &str) -> FieldTable {
    table(&[("alternate-exchange", long_str(name))])
}

fn dlx(name: &str) -> FieldTable {
    table(&[("x-dead-letter-exchange", long_str(name))])
}

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

const LOGIN_REFUSED: &str =
    "ACCESS_REFUSED - Login was refused using authentication mechanism PLAIN. For details see the broker logfile.";

#[tokio::test]
async fn bad_password_and_unknown_user_are_refused_alike() {
    let user = unique("acl-login-u");
    let mut cleanup = Cleanup::default();
    cleanup.user(&user);
    add_user(&user, PASSWORD, "").await;
    set_permissions("/", &user, ".*", ".*", ".*").await;
    let conn = connect_as(&user, PASSWORD, "/").await.expect("right password");
    teardown(conn).await;
    let text = expect_connect_refused(connect_as(&user, "wrong-password", "/").await, ACCESS_REFUSED);
    assert_eq!(text, LOGIN_REFUSED);
    let text = expect_connect_refused(connect_as(&unique("acl-nobody"), PASSWORD, "/").await, ACCESS_REFUSED);
    assert_eq!(text, LOGIN_REFUSED);
    // Same refusal whatever the vhost (the login fails first).
    let text = expect_connect_refused(
        connect_as(&user, "wrong-password", &unique("acl-novh")).await,
        ACCESS_REFUSED,
    );
    assert_eq!(text, LOGIN_REFUSED);
}

#[tokio::test]
async fn users_without_a_usable_password_cannot_log_in() {
    let (no_hash, blank) = (unique("acl-nohash-u"), unique("acl-blank-u"));
    let mut cleanup = Cleanup::default();
    cleanup.user(&no_hash).user(&blank);
    // An empty password hash disables password login.
    let body = r#"{"password_hash":"","tags":""}"#;
    admin_ok("PUT", &format!("/api/users/{}", enc(&no_hash)), Some(body)).await;
    // A blank password is always refused by RabbitMQ's internal backend.
    add_user(&blank, "", "").await;
    for user in [&no_hash, &blank] {
        set_permissions("/", user, ".*", ".*", ".*").await;
        for password in ["", "anything"] {
            let text = expect_connect_refused(connect_as(user, password, "/").await, ACCESS_REFUSED);
            assert_eq!(text, LOGIN_REFUSED, "user {user} password {password:?}");
        }
    }
}

#[tokio::test]
async fn vhost_access_needs_a_permission_entry() {
    let acl = Acl::new("acl-vhost").await;
    // Another vhost where the user has no permissions.
    let elsewhere = acl.n("elsewhere");
    let mut cleanup = Cleanup::default();
    cleanup.vhost(&elsewhere);
    add_vhost(&elsewhere).await;
    let text = expect_connect_refused(connect_as(&acl.user, PASSWORD, &elsewhere).await, 530);
    assert_eq!(text, format!("NOT_ALLOWED - access to vhost '{elsewhere}' refused for user '{}'", acl.user));
    // A vhost that does not exist.
    let missing = acl.n("missing-vh");
    let text = expect_connect_refused(connect_as(&acl.user, PASSWORD, &missing).await, 530);
    assert_eq!(text, format!("NOT_ALLOWED - vhost {missing} not found"));
    // Even empty permissions ("" matches nothing) grant access to the vhost itself.
    set_permissions(&elsewhere, &acl.user, "", "", "").await;
    let conn =
        connect_as(&acl.user, PASSWORD, &elsewhere).await.expect("vhost access with empty permissions");
    let ch = channel(&conn).await;
    let res =
        within("queue.declare", ch.queue_declare("".into(), QueueDeclareOptions::default(), no_args())).await;
    let text = expect_soft_error(res, ACCESS_REFUSED);
    assert!(text.starts_with("ACCESS_REFUSED - access to queue 'amq.gen-"), "{text}");
    teardown(conn).await;
    // Clearing the permissions refuses new connections again.
    clear_permissions(&elsewhere, &acl.user).await;
    let text = expect_connect_refused(connect_as(&acl.user, PASSWORD, &elsewhere).await, 530);
    assert_eq!(text, format!("NOT_ALLOWED - access to vhost '{elsewhere}' refused for user '{}'", acl.user));
    acl.finish(&[], &[]).await;
}

#[tokio::test]
async fn deleting_a_user_closes_its_connections() {
    let user = unique("acl-deleted-u");
    let mut cleanup = Cleanup::default();
    cleanup.user(&user);
    add_user(&user, PASSWORD, "").await;
    set_permissions("/", &user, ".*", ".*", ".*").await;
    let conn = connect_as(&user, PASSWORD, "/").await.expect("user connects");
    let mut events = connection_events(&conn);
    // Another user's connection is not affected.
    let (bystander, bystander_ch) = setup().await;
    delete_user(&user).await;
    let text = expect_connection_error_event(&conn, &mut events, 320).await;
    assert_eq!(text, format!("CONNECTION_FORCED - user '{user}' is deleted"));
    let q = temp_queue(&bystander_ch).await;
    assert!(q.starts_with("amq.gen-"));
    teardown(bystander).await;
    // And the user can no longer log in.
    let text = expect_connect_refused(connect_as(&user, PASSWORD, "/").await, ACCESS_REFUSED);
    assert_eq!(text, LOGIN_REFUSED);
}
