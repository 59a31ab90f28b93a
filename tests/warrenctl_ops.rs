//! `warrenctl`'s everyday-operations verbs run as a process: against a fake
//! admin API on a unix socket (what goes over the wire: pages, headers),
//! against an in-process Warren driven by a real AMQP client (lapin), and
//! against RabbitMQ when `WARRENCTL_RABBITMQ_URL` is set (with
//! `WARRENCTL_RABBITMQ_AMQP_URL`, default `amqp://guest:guest@localhost:5672`).
//!
//! The harness (`Ctl`, `Out`, `fake_broker`, `Warren`) is shared with
//! `tests/warrenctl.rs` in `tests/common/ctl.rs`.

use std::thread;
use std::time::Duration;

use futures_lite::StreamExt;
use lapin::options::{BasicConsumeOptions, QueueBindOptions, QueueDeclareOptions};
use lapin::types::FieldTable;
use lapin::{Connection, ConnectionProperties, ExchangeKind};
use serde_json::{json, Value};

#[path = "common/ctl.rs"]
mod ctl;

use ctl::{nowhere, with_fake_broker, Cleanup, Ctl, Out, Warren};

fn page(items: Value, page: u64, page_count: u64) -> String {
    let n = items.as_array().map_or(0, Vec::len);
    json!({"filtered_count": 3, "item_count": n, "items": items, "page": page,
        "page_count": page_count, "page_size": 500, "total_count": 3})
    .to_string()
}

const VERBS: &[&str] = &[
    "list_queues",
    "list_exchanges",
    "list_bindings",
    "list_connections",
    "list_channels",
    "list_consumers",
    "purge_queue",
    "delete_queue",
    "delete_exchange",
    "close_connection",
    "close_all_connections",
    "close_all_user_connections",
    "status",
    "ping",
    "await_startup",
    "environment",
    "publish",
    "get",
    "top",
];

#[test]
fn help_names_every_ops_verb_and_each_has_an_example() {
    let nowhere = nowhere();
    let out = nowhere.run(&["--help"]).ok();
    for verb in VERBS {
        assert!(out.stdout.contains(verb), "{verb} missing from --help");
        let help = nowhere.run(&[verb, "--help"]).ok();
        assert!(help.stdout.contains("Example"), "{verb} --help has no example:\n{}", help.stdout);
    }
    let channels = nowhere.run(&["list_channels", "--help"]).ok().stdout;
    assert!(channels.contains("`pid` is the channel's name"), "{channels}");
    nowhere.run(&["get", "q", "--ackmode", "bogus"]).fails(64, "bogus");
    nowhere.run(&["publish", "--property", "nope=1", "x"]).fails(64, "unknown property 'nope'");
}

#[test]
fn listings_fetch_every_page_and_stream_them() {
    let first = page(json!([{"name": "a", "messages": 1}, {"name": "b", "messages": 2}]), 1, 2);
    let second = page(json!([{"name": "c", "messages": 3}]), 2, 2);
    let answers = vec![(200, first.clone()), (200, second.clone()), (200, first), (200, second)];
    let requests = with_fake_broker("pages", answers, |ctl, _| {
        let out = ctl.run(&["list_queues", "-p", "/"]).ok();
        assert_eq!(out.stdout, "Listing queues for vhost / ...\nname\tmessages\na\t1\nb\t2\nc\t3\n");
        let out = ctl.run(&["--format", "json", "list_queues", "name", "messages"]).ok();
        assert_eq!(
            out.stdout,
            "[\n{\"name\":\"a\",\"messages\":1}\n,{\"name\":\"b\",\"messages\":2}\n,{\"name\":\"c\",\"messages\":3}\n]\n"
        );
    });
    let query = "page_size=500&sort=name&columns=name,messages HTTP/1.1\r\n";
    assert!(requests[0].starts_with(&format!("GET /api/queues/%2F?page=1&{query}")), "{requests:?}");
    assert!(requests[1].starts_with(&format!("GET /api/queues/%2F?page=2&{query}")), "{requests:?}");
}

#[test]
fn close_connection_sends_the_explanation_as_x_reason() {
    let conns = page(json!([{"name": "c1", "vhost": "/"}, {"name": "c2", "vhost": "other"}]), 1, 1);
    let answers = vec![(204, String::new()), (200, conns), (204, String::new()), (204, String::new())];
    let requests = with_fake_broker("close", answers, |ctl, _| {
        let out = ctl.run(&["close_connection", "127.0.0.1:5 -> 127.0.0.1:5672", "go\naway"]).ok();
        assert_eq!(out.stdout, "Closing connection 127.0.0.1:5 -> 127.0.0.1:5672, reason: go\naway...\n");
        let out = ctl.run(&["close_all_connections", "bye"]).ok();
        assert!(out.stdout.ends_with("Closed 1 connection\n"), "{out:?}");
        ctl.run(&["-q", "close_all_user_connections", "bob", "bye bob"]).ok();
    });
    assert!(
        requests[0]
            .starts_with("DELETE /api/connections/127%2E0%2E0%2E1%3A5%20%2D%3E%20127%2E0%2E0%2E1%3A5672 "),
        "{requests:?}"
    );
    assert!(requests[0].contains("\r\nX-Reason: go away\r\n"), "{requests:?}");
    assert!(requests[2].starts_with("DELETE /api/connections/c1 "), "only vhost /: {requests:?}");
    assert!(requests[3].starts_with("DELETE /api/connections/username/bob "), "{requests:?}");
    assert!(requests[3].contains("\r\nX-Reason: bye bob\r\n"), "{requests:?}");
}

#[test]
fn environment_prints_each_setting_with_its_source() {
    let settings = json!({"settings": [
        {"key": "amqp.port", "value": 5672, "source": "default"},
        {"key": "storage.data_dir", "value": "/var/lib/warren", "source": "env WARREN_DATA_DIR"},
    ]})
    .to_string();
    let answers = vec![(200, settings.clone()), (200, settings.clone()), (200, settings)];
    let requests = with_fake_broker("env", answers, |ctl, _| {
        let out = ctl.run(&["-q", "environment"]).ok();
        assert_eq!(
            out.stdout,
            "key\tvalue\tsource\namqp.port\t5672\tdefault\nstorage.data_dir\t/var/lib/warren\tenv WARREN_DATA_DIR\n"
        );
        let items = ctl.run(&["--format", "json", "environment"]).ok().items();
        assert_eq!(
            items[1],
            json!({"key": "storage.data_dir", "value": "/var/lib/warren", "source": "env WARREN_DATA_DIR"})
        );
        let table = ctl.run(&["--format", "table", "environment"]).ok().stdout;
        assert!(table.contains("│ amqp.port ") && table.contains("┆ default "), "{table}");
    });
    assert!(requests[0].starts_with("GET /api/warren/environment "), "{requests:?}");
}

#[test]
fn an_unreachable_broker_exits_69() {
    let nowhere = nowhere();
    for verb in
        [&["ping"][..], &["list_queues"], &["status"], &["top", "-n", "1"], &["-t", "1", "await_startup"]]
    {
        nowhere.run(verb).fails(69, "/nonexistent/warrenctl.sock");
    }
}

#[test]
fn numbers_out_of_range_are_usage_errors() {
    let nowhere = nowhere();
    for interval in ["nan", "NaN", "inf", "-inf", "-1", "0", "0.01", "1e400", "3601", "1e20"] {
        nowhere.run(&["top", "-n", "1", &format!("--interval={interval}")]).fails(64, "--interval");
    }
    nowhere.run(&["top", "--interval", "nan"]).fails(64, "must be from 0.1 to 3600 seconds");
    for timeout in ["-1", "nan", "inf", "2.5", "4294967296", "18446744073709551616"] {
        nowhere.run(&[&format!("--timeout={timeout}"), "await_startup"]).fails(64, "--timeout");
    }
    // The largest timeout is fine (and the socket's absence is found at once).
    nowhere.run(&["-t", "4294967295", "ping"]).fails(69, "/nonexistent/warrenctl.sock");
}

/// A socket that is listened on but never answered: await_startup gives up
/// at --timeout, not up to 5 s (one attempt's wait) later.
#[test]
fn await_startup_keeps_to_its_timeout() {
    let dir = ctl::temp_dir("silent");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("warrenctl.sock");
    let _ = std::fs::remove_file(&path);
    let _listener = std::os::unix::net::UnixListener::bind(&path).unwrap();
    let start = std::time::Instant::now();
    Ctl::socket(&path).run(&["-t", "6", "await_startup"]).fails(69, "did not start within 6 seconds");
    let took = start.elapsed();
    // It waited its time, and gave up within it (not a whole request timeout
    // late): the upper bound leaves room for a loaded machine.
    assert!(took >= Duration::from_millis(5900) && took < Duration::from_millis(9500), "{took:?}");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Runs `f` on a runtime for the AMQP client.
fn block_on<T>(rt: &tokio::runtime::Runtime, f: impl std::future::Future<Output = T>) -> T {
    rt.block_on(async { tokio::time::timeout(Duration::from_secs(30), f).await.expect("in time") })
}

/// Retries `check` until it passes: the API's counters (RabbitMQ's every 5
/// seconds) lag behind AMQP.
#[track_caller]
fn eventually(mut check: impl FnMut() -> Result<(), String>) {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        match check() {
            Ok(()) => return,
            Err(e) if std::time::Instant::now() > deadline => panic!("{e}"),
            Err(_) => thread::sleep(Duration::from_millis(250)),
        }
    }
}

/// Whether a TSV listing has the line `line`.
fn has_line(out: &Out, line: &str) -> Result<(), String> {
    match out.code == 0 && out.stdout.lines().any(|l| l == line) {
        true => Ok(()),
        false => Err(format!("no line {line:?} in {out:?}")),
    }
}

/// Finds one row whose `field` is `value`.
#[track_caller]
fn find<'a>(items: &'a [Value], field: &str, value: &str) -> &'a Value {
    items.iter().find(|i| i[field] == value).unwrap_or_else(|| panic!("no {field}={value} in {items:?}"))
}

/// Every operations verb against a live broker (its admin API for `ctl`,
/// AMQP at `amqp_url`); object names start with `prefix`.
fn ops_suite(ctl: &Ctl, amqp_url: &str, rt: &tokio::runtime::Runtime, prefix: &str) {
    let (q, q2, x) = (format!("{prefix}q"), format!("{prefix}q2"), format!("{prefix}x"));
    let conn_name = format!("{prefix}conn");
    let _cleanup = Cleanup::new(ctl, &[("delete_queue", &q), ("delete_queue", &q2), ("delete_exchange", &x)]);
    let props = ConnectionProperties::default().with_connection_name(conn_name.clone().into());
    let conn = block_on(rt, Connection::connect(amqp_url, props)).expect("AMQP connection");
    let mut events = conn.events_listener();
    let ch = block_on(rt, conn.create_channel()).unwrap();
    // The consumer is cancelled when dropped: it lives to the end.
    let _consumer = block_on(rt, async {
        let durable = QueueDeclareOptions { durable: true, ..Default::default() };
        ch.queue_declare(q.as_str().into(), durable, FieldTable::default()).await.unwrap();
        ch.queue_declare(q2.as_str().into(), QueueDeclareOptions::default(), FieldTable::default())
            .await
            .unwrap();
        ch.exchange_declare(
            x.as_str().into(),
            ExchangeKind::Topic,
            Default::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
        ch.queue_bind(
            q.as_str().into(),
            x.as_str().into(),
            "a.#".into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
        ch.basic_consume(
            q2.as_str().into(),
            "ctl-tag".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap()
    });

    // Publish, list, get: a round trip through the API.
    let out = ctl
        .run(&["publish", "--exchange", &x, "--routing-key", "a.b", "--property", "delivery_mode=2", "hello"])
        .ok();
    assert_eq!(out.stdout, "Message published\n");
    ctl.run_with_stdin(&["publish", "--routing-key", &q, "-"], "from stdin").ok();
    let out = ctl.run(&["publish", "--exchange", &x, "--routing-key", "zzz", "lost"]).ok();
    assert_eq!(out.stdout, "Message published but NOT routed\n");
    eventually(|| has_line(&ctl.run(&["list_queues"]), &format!("{q}\t2")));
    let out = ctl.run(&["list_queues"]).ok();
    assert!(out.stdout.starts_with("Listing queues for vhost / ...\nname\tmessages\n"), "{out:?}");
    eventually(|| {
        let out = ctl.run(&["-s", "list_queues", "name", "durable", "consumers", "messages_ready"]);
        has_line(&out, &format!("{q}\ttrue\t0\t2"))?;
        has_line(&out, &format!("{q2}\tfalse\t1\t0"))
    });
    let table = ctl.run(&["--format", "table", "list_queues", "name", "messages"]).ok().stdout;
    assert!(table.contains(&format!("│ {q} ")) && table.contains("┆ 2 "), "{table}");
    let items = ctl.run(&["--format", "json", "list_queues", "name", "messages", "durable"]).ok().items();
    assert_eq!(find(&items, "name", &q), &json!({"name": q, "messages": 2, "durable": true}));
    let got = ctl.run(&["--format", "json", "get", &q, "--count", "5"]).ok().items();
    assert_eq!(got.len(), 2, "{got:?}");
    assert_eq!(
        (&got[0]["payload"], &got[0]["routing_key"], &got[0]["exchange"]),
        (&json!("hello"), &json!("a.b"), &json!(x))
    );
    assert_eq!(got[0]["properties"]["delivery_mode"], 2);
    assert_eq!(got[1]["payload"], "from stdin");
    let tsv = ctl.run(&["-q", "get", &q, "--ackmode", "ack_requeue_false"]).ok().stdout;
    assert!(
        tsv.starts_with(
            "routing_key\texchange\tmessage_count\tpayload_bytes\tpayload_encoding\tpayload\tredelivered"
        ),
        "{tsv}"
    );
    assert!(tsv.contains(&format!("a.b\t{x}\t1\t5\tstring\thello\ttrue")), "{tsv}");

    // Exchanges and bindings.
    let out = ctl.run(&["list_exchanges"]).ok();
    assert!(out.stdout.lines().any(|l| l == format!("{x}\ttopic")), "{out:?}");
    assert!(out.stdout.lines().any(|l| l == "amq.direct\tdirect"), "{out:?}");
    let items = ctl.run(&["--format", "json", "list_exchanges", "name", "type", "durable"]).ok().items();
    assert_eq!(find(&items, "name", &x), &json!({"name": x, "type": "topic", "durable": false}));
    let table = ctl.run(&["--format", "table", "list_exchanges"]).ok().stdout;
    assert!(table.contains(&format!("│ {x} ")), "{table}");
    let out = ctl.run(&["list_bindings"]).ok();
    assert!(out.stdout.starts_with("Listing bindings for vhost /...\nsource_name\tsource_kind\tdestination_name\tdestination_kind\trouting_key\targuments\n"), "{out:?}");
    assert!(out.stdout.lines().any(|l| l == format!("{x}\texchange\t{q}\tqueue\ta.#\t{{}}")), "{out:?}");
    assert!(out.stdout.lines().any(|l| l == format!("\texchange\t{q}\tqueue\t{q}\t{{}}")), "{out:?}");
    let items = ctl.run(&["--format", "json", "list_bindings"]).ok().items();
    let binding = find(&items, "source", &x);
    assert_eq!(
        binding,
        &json!({"source": x, "source_kind": "exchange", "destination": q, "destination_type": "queue", "routing_key": "a.#", "arguments": {}})
    );
    let table = ctl.run(&["--format", "table", "list_bindings", "source_name", "routing_key"]).ok().stdout;
    assert!(table.contains("┆ a.# "), "{table}");

    // Connections, channels, consumers.
    let columns = ["name", "user", "vhost", "channels", "client_properties.connection_name"];
    let mut mine = Value::Null;
    eventually(|| {
        let items = ctl.run(&[&["--format", "json", "list_connections"][..], &columns].concat()).ok().items();
        let found = items.iter().find(|c| c["client_properties"]["connection_name"] == conn_name.as_str());
        mine = found.filter(|c| c["channels"] == 1).ok_or(format!("{items:?}"))?.clone();
        Ok(())
    });
    let name = mine["name"].as_str().unwrap().to_string();
    assert_eq!((&mine["user"], &mine["vhost"], &mine["channels"]), (&json!("guest"), &json!("/"), &json!(1)));
    let out = ctl.run(&["list_connections"]).ok();
    assert!(
        out.stdout.starts_with("Listing connections ...\nuser\tpeer_host\tpeer_port\tstate\n"),
        "{out:?}"
    );
    assert!(
        out.stdout.lines().any(|l| l.starts_with("guest\t127.0.0.1\t") && l.ends_with("\trunning")),
        "{out:?}"
    );
    let table = ctl.run(&["--format", "table", "list_connections", "name", "user"]).ok().stdout;
    assert!(table.contains(&name), "{table}");
    eventually(|| has_line(&ctl.run(&["list_channels"]), &format!("{name} (1)\tguest\t1\t0")));
    let out = ctl.run(&["list_channels"]).ok();
    assert!(
        out.stdout.starts_with("Listing channels ...\npid\tuser\tconsumer_count\tmessages_unacknowledged\n"),
        "{out:?}"
    );
    let items = ctl.run(&["--format", "json", "list_channels", "name", "connection", "number"]).ok().items();
    let channel = find(&items, "name", &format!("{name} (1)"));
    assert_eq!(
        channel,
        &json!({"name": format!("{name} (1)"), "connection_details": {"name": name}, "number": 1})
    );
    let consumer = format!("{q2}\t{name} (1)\tctl-tag\ttrue\t0\ttrue\t{{}}");
    eventually(|| has_line(&ctl.run(&["list_consumers"]), &consumer));
    let out = ctl.run(&["list_consumers"]).ok();
    let header = "queue_name\tchannel_pid\tconsumer_tag\tack_required\tprefetch_count\tactive\targuments\n";
    assert!(out.stdout.starts_with(&format!("Listing consumers in vhost / ...\n{header}")), "{out:?}");
    let items = ctl.run(&["--format", "json", "list_consumers", "queue_name", "consumer_tag"]).ok().items();
    assert!(items.contains(&json!({"queue": {"name": q2}, "consumer_tag": "ctl-tag"})), "{items:?}");
    let table = ctl.run(&["--format", "table", "list_consumers"]).ok().stdout;
    assert!(table.contains("┆ ctl-tag "), "{table}");

    // Status, ping, top.
    let out = ctl.run(&["status"]).ok();
    for section in [
        "Runtime\n",
        "Alarms\n",
        "Memory\n",
        "File Descriptors\n",
        "Free Disk Space\n",
        "Totals\n",
        "Listeners\n",
    ] {
        assert!(out.stdout.contains(section), "{section} in {out:?}");
    }
    assert!(out.stdout.contains("protocol: amqp, purpose: AMQP 0-9-1\n"), "{out:?}");
    let status = ctl.run(&["--format", "json", "status"]).ok().json();
    assert!(status["totals"]["connection_count"].as_u64().unwrap() >= 1, "{status}");
    assert!(status["totals"]["queue_count"].as_u64().unwrap() >= 2, "{status}");
    assert!(status["totals"]["virtual_host_count"].as_u64().unwrap() >= 1, "{status}");
    assert!(status["listeners"].as_array().unwrap().iter().any(|l| l["protocol"] == "amqp"), "{status}");
    assert!(status["uptime"].is_u64() && status["alarms"].is_array(), "{status}");
    assert_eq!(ctl.run(&["-q", "ping"]).ok().stdout, "Ping succeeded\n");
    assert_eq!(ctl.run(&["await_startup"]).ok().stdout, "");
    let top = ctl.run(&["top", "-n", "2", "--interval", "0.1", "--rows", "500"]).ok().stdout;
    let frames: Vec<&str> = top.split("\n\n").filter(|f| f.contains(" on ")).collect();
    assert_eq!(frames.len(), 2, "{top}");
    assert!(!top.contains('\x1b'), "no escapes when not a terminal: {top}");
    for section in ["Queues by messages\n", "Queues by message rate\n", "Connections by traffic\n"] {
        assert_eq!(top.matches(section).count(), 2, "{section} in {top}");
    }
    assert!(top.contains(&q) && top.contains(&name), "{top}");

    // Purging and deleting; missing objects.
    let out = ctl.run(&["purge_queue", &q]).ok();
    assert_eq!(out.stdout, format!("Purging queue '{q}' in vhost '/' ...\n"));
    eventually(|| has_line(&ctl.run(&["-s", "list_queues", "name", "messages"]), &format!("{q}\t0")));
    let items = ctl.run(&["--format", "json", "list_queues", "name", "messages"]).ok().items();
    assert_eq!(find(&items, "name", &q)["messages"], 0);
    ctl.run(&["publish", "--routing-key", &q, "again"]).ok();
    eventually(|| has_line(&ctl.run(&["-s", "list_queues", "name", "messages"]), &format!("{q}\t1")));
    ctl.run(&["delete_queue", &q, "--if-empty"]).fails(64, "Error: Queue is not empty");
    ctl.run(&["delete_queue", &q2, "--if-unused"]).fails(64, "Error: Queue is in use");
    let out = ctl.run(&["delete_queue", &q]).ok();
    assert_eq!(
        out.stdout,
        format!("Deleting queue '{q}' on vhost '/' ...\nQueue was successfully deleted with 1 message\n")
    );
    ctl.run(&["delete_queue", &q]).fails(64, "Error: Queue not found");
    ctl.run(&["purge_queue", &q]).fails(64, "Error: Queue not found");
    ctl.run(&["get", &q]).fails(64, "Error: Queue not found");
    ctl.run(&["delete_queue", "-p", &format!("{prefix}novh"), &q]).fails(65, "does not exist");
    let novh = format!("{prefix}novh");
    let out =
        ctl.run(&["list_queues", "-p", &novh]).fails(65, &format!("Virtual host '{novh}' does not exist"));
    assert_eq!(out.stdout, format!("Listing queues for vhost {novh} ...\n"), "no header row");
    ctl.run(&["--format", "json", "list_bindings", "-p", &novh]).fails(65, "does not exist");
    ctl.run(&["list_consumers", "-p", &novh]).fails(65, "does not exist");
    ctl.run(&["list_exchanges", "-p", &novh]).fails(65, "does not exist");
    ctl.run(&["-q", "delete_exchange", &x]).ok();
    ctl.run(&["delete_exchange", &x]).fails(64, "Error: Exchange not found");
    ctl.run(&["publish", "--exchange", &x, "m"]).fails(64, "Error: Exchange not found");
    ctl.run(&["close_connection", &format!("{prefix}none"), "x"]).fails(64, "Connection not found");

    // Closing the connection: the client gets 320 and the explanation.
    let out = ctl.run(&["close_connection", &name, "warrenctl says bye"]).ok();
    assert_eq!(out.stdout, format!("Closing connection {name}, reason: warrenctl says bye...\n"));
    let error = block_on(rt, async {
        loop {
            if let Some(lapin::Event::Error(e)) = events.next().await {
                return e;
            }
        }
    });
    let lapin::ErrorKind::ProtocolError(amqp) = error.kind() else { panic!("{error:?}") };
    assert_eq!(amqp.get_id(), 320, "{error}");
    assert!(amqp.get_message().as_str().contains("warrenctl says bye"), "{error}");
    block_on(rt, async {
        let conn = Connection::connect(amqp_url, ConnectionProperties::default()).await.unwrap();
        let ch = conn.create_channel().await.unwrap();
        ch.queue_delete(q2.as_str().into(), Default::default()).await.unwrap();
        conn.close(200, "done".into()).await.unwrap();
    });
}

#[test]
fn ops_verbs_against_warren() {
    let warren = Warren::start();
    let (amqp_url, rt) = (warren.amqp_url(), &warren.rt);
    ops_suite(&Ctl::socket(&warren.socket), &amqp_url, rt, "ctl-ops-s-");
    ops_suite(&Ctl::bare_url(&format!("http://guest:guest@{}", warren.admin)), &amqp_url, rt, "ctl-ops-u-");
    // The effective settings (an in-process Warren may have none recorded).
    let ctl = Ctl::socket(&warren.socket);
    let out = ctl.run(&["-q", "environment"]).ok();
    assert!(out.stdout.starts_with("key\tvalue\tsource\n"), "{out:?}");
    for setting in ctl.run(&["--format", "json", "environment"]).ok().items() {
        let keys: Vec<&String> = setting.as_object().unwrap().keys().collect();
        assert_eq!(keys, ["key", "source", "value"], "{setting}");
        assert!(setting["key"].is_string() && setting["source"].is_string(), "{setting}");
    }
    warren.stop();
}

#[test]
fn ops_verbs_against_rabbitmq() {
    let Ok(url) = std::env::var("WARRENCTL_RABBITMQ_URL") else {
        eprintln!("note: WARRENCTL_RABBITMQ_URL is not set, skipping the ops suite against RabbitMQ");
        return;
    };
    let amqp_url = std::env::var("WARRENCTL_RABBITMQ_AMQP_URL")
        .unwrap_or_else(|_| "amqp://guest:guest@localhost:5672/%2f".into());
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    ops_suite(&Ctl::bare_url(&url), &amqp_url, &rt, &format!("ctl-ops-{}-", std::process::id()));
}

/// More queues than fit in two pages: every one is listed once, in TSV and
/// in JSON.
#[test]
fn listings_page_through_many_queues_on_warren() {
    let warren = Warren::start();
    const N: usize = 1_234;
    block_on(&warren.rt, async {
        let conn = Connection::connect(&warren.amqp_url(), ConnectionProperties::default()).await.unwrap();
        let ch = conn.create_channel().await.unwrap();
        for i in 0..N {
            ch.queue_declare(
                format!("many-{i:05}").as_str().into(),
                Default::default(),
                FieldTable::default(),
            )
            .await
            .unwrap();
        }
        conn.close(200, "done".into()).await.unwrap();
    });
    let ctl = Ctl::socket(&warren.socket);
    let tsv = ctl.run(&["-s", "list_queues", "name"]).ok().stdout;
    let names: Vec<&str> = tsv.lines().filter(|l| l.starts_with("many-")).collect();
    assert_eq!(names.len(), N, "{}", &tsv[..tsv.len().min(500)]);
    let mut unique = names.clone();
    unique.dedup();
    assert_eq!(unique.len(), N, "each once, sorted by name");
    let items = ctl.run(&["--format", "json", "list_queues", "name", "messages"]).ok().items();
    assert_eq!(items.iter().filter(|q| q["name"].as_str().unwrap().starts_with("many-")).count(), N);
    warren.stop();
}

/// The next error event of a connection: its reply code and text.
fn closed_with(
    rt: &tokio::runtime::Runtime,
    events: &mut (impl futures_lite::Stream<Item = lapin::Event> + Unpin),
) -> (u16, String) {
    let error = block_on(rt, async {
        loop {
            match events.next().await {
                Some(lapin::Event::Error(e)) => return e,
                Some(_) => continue,
                None => panic!("events ended"),
            }
        }
    });
    let lapin::ErrorKind::ProtocolError(amqp) = error.kind() else { panic!("{error:?}") };
    (amqp.get_id(), amqp.get_message().to_string())
}

#[test]
fn close_all_verbs_close_real_connections_on_warren() {
    let warren = Warren::start();
    let (url, rt) = (warren.amqp_url(), &warren.rt);
    let connect = || block_on(rt, Connection::connect(&url, ConnectionProperties::default())).unwrap();
    let ctl = Ctl::socket(&warren.socket);
    // Listening from the start: events are not replayed.
    let (c1, c2) = (connect(), connect());
    let (mut e1, mut e2) = (Box::pin(c1.events_listener()), Box::pin(c2.events_listener()));
    eventually(|| {
        let n = ctl.run(&["-s", "list_connections", "name"]).stdout.lines().count();
        if n == 2 {
            Ok(())
        } else {
            Err(format!("{n} connections listed"))
        }
    });
    let out = ctl.run(&["close_all_connections", "maintenance"]).ok();
    assert_eq!(
        out.stdout,
        "Closing all connections in vhost /, reason: maintenance...\nClosed 2 connections\n"
    );
    for events in [&mut e1, &mut e2] {
        let (code, text) = closed_with(rt, events);
        assert_eq!(code, 320);
        assert!(text.contains("maintenance"), "{text}");
    }
    let c3 = connect();
    let mut e3 = Box::pin(c3.events_listener());
    let out = ctl.run(&["close_all_user_connections", "guest", "user gone"]).ok();
    assert_eq!(out.stdout, "Closing connections of user guest, reason: user gone...\n");
    let (code, text) = closed_with(rt, &mut e3);
    assert_eq!(code, 320);
    assert!(text.contains("user gone"), "{text}");
    let out = ctl.run(&["close_all_connections", "--global", "nothing left"]).ok();
    assert!(out.stdout.ends_with("Closed 0 connections\n"), "{out:?}");
    warren.stop();
}
