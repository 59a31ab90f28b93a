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

#[path = "../common/mod.rs"]
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

mod login;
mod resources;
mod topics;

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
