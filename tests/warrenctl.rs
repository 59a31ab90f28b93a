//! `warrenctl` run as a process: help and usage, unreachable brokers, a fake
//! broker on a unix socket (what goes over the wire), and the whole verb
//! suite against a real admin API.
//!
//! The suite runs against RabbitMQ only when `WARRENCTL_RABBITMQ_URL` is set
//! (e.g. `http://localhost:15672`, user/password from `WARRENCTL_RABBITMQ_USER`
//! / `WARRENCTL_RABBITMQ_PASSWORD`, default guest/guest). [`Ctl`] and
//! [`verb_suite`] take any URL or socket, so they can drive Warren too;
//! `WARRENCTL_TEST_SOCKET=path` runs the suite over a broker's control socket.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

#[path = "common/ctl.rs"]
mod ctl;

use ctl::{nowhere, temp_dir, with_fake_broker, Cleanup, Ctl, Warren};

const VERBS: &[&str] = &[
    "add_user",
    "delete_user",
    "change_password",
    "authenticate_user",
    "set_user_tags",
    "list_users",
    "hash_password",
    "add_vhost",
    "delete_vhost",
    "list_vhosts",
    "set_permissions",
    "clear_permissions",
    "list_permissions",
    "list_user_permissions",
    "set_topic_permissions",
    "clear_topic_permissions",
    "list_topic_permissions",
    "list_user_topic_permissions",
    "set_policy",
    "clear_policy",
    "list_policies",
    "set_operator_policy",
    "clear_operator_policy",
    "list_operator_policies",
    "set_vhost_limits",
    "clear_vhost_limits",
    "list_vhost_limits",
    "set_user_limits",
    "clear_user_limits",
    "list_user_limits",
    "export_definitions",
    "import_definitions",
];

#[test]
fn help_names_every_verb_and_each_verb_has_an_example() {
    let out = nowhere().run(&["--help"]).ok();
    for verb in VERBS {
        assert!(out.stdout.contains(verb), "{verb} missing from --help");
        let help = nowhere().run(&[verb, "--help"]).ok();
        assert!(help.stdout.contains("Example"), "{verb} --help has no example:\n{}", help.stdout);
    }
    assert!(out.stdout.contains("WARREN_CTL_SOCKET") && out.stdout.contains("Exit codes"));
}

#[test]
fn usage_errors_exit_64() {
    nowhere().run(&["no_such_verb"]).fails(64, "unrecognized subcommand");
    nowhere().run(&["add_user"]).fails(64, "<USERNAME>");
    nowhere().run(&["set_policy", "--apply-to", "bogus", "p", "x", "{}"]).fails(64, "bogus");
    Ctl::url("ftp://h", "u", "p").run(&["list_users"]).fails(64, "only http://");
}

#[test]
fn unreachable_brokers_exit_69_naming_the_socket_or_url() {
    nowhere().run(&["list_users"]).fails(69, "/nonexistent/warrenctl.sock");
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let url = format!("http://127.0.0.1:{port}");
    Ctl::url(&url, "guest", "guest").run(&["list_vhosts"]).fails(69, &url);
}

#[test]
fn hash_password_needs_no_broker() {
    let out = nowhere().run(&["hash_password", "s3cret"]).ok();
    assert_eq!(out.stdout.trim().len(), 48, "{out:?}");
    let from_stdin = nowhere().run_with_stdin(&["hash_password"], "s3cret\n").ok();
    assert_ne!(out.stdout, from_stdin.stdout, "salted");
}

/// A file's permission bits.
fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[test]
fn over_the_socket_requests_carry_no_credentials() {
    let users = r#"[{"name":"guest","tags":["administrator"]},{"name":"ctl-x","tags":[]}]"#;
    let requests = with_fake_broker("list", vec![(200, users), (200, users)], |ctl, _| {
        let out = ctl.run(&["list_users"]).ok();
        assert_eq!(out.stdout, "Listing users ...\nname\ttags\nguest\t[administrator]\nctl-x\t[]\n");
        let out = ctl.run(&["-s", "--format", "json", "list_users"]).ok();
        assert_eq!(out.json()[1]["name"], "ctl-x");
    });
    assert!(requests[0].starts_with("GET /api/users HTTP/1.1\r\nHost: localhost\r\n"), "{requests:?}");
    assert!(!requests[0].contains("Authorization"), "{requests:?}");
}

#[test]
fn over_the_socket_add_user_checks_first_and_authenticate_sends_credentials() {
    let not_found = r#"{"error":"Object Not Found","reason":"Not Found"}"#;
    let answers = vec![(404, not_found), (201, ""), (200, r#"{"name":"ctl-x","tags":[]}"#)];
    let requests = with_fake_broker("add", answers, |ctl, _| {
        ctl.run_with_stdin(&["-q", "add_user", "ctl-x"], "pw from stdin\n").ok();
        let out = ctl.run(&["authenticate_user", "ctl-x", "pw"]).ok();
        assert!(out.stdout.ends_with("Success\n"), "{out:?}");
    });
    assert!(requests[0].starts_with("GET /api/users/ctl%2Dx "), "{requests:?}");
    assert!(requests[1].starts_with("PUT /api/users/ctl%2Dx "), "{requests:?}");
    assert!(requests[1].ends_with(r#"{"password":"pw from stdin","tags":""}"#), "{requests:?}");
    assert!(requests[2].starts_with("GET /api/whoami "), "{requests:?}");
    assert!(requests[2].contains("Authorization: Basic Y3RsLXg6cHc=\r\n"), "{requests:?}");
}

#[test]
fn import_reports_skipped_objects_and_succeeds() {
    let skipped = r#"{"skipped":[{"kind":"queue","vhost":"/","name":"q1","reason":"inequivalent arg 'durable'"},{"kind":"exchange","vhost":"v","name":"x","reason":"exists"}]}"#;
    let requests = with_fake_broker("import", vec![(200, skipped)], |ctl, dir| {
        let file = dir.join("defs.json");
        std::fs::write(&file, r#"{"queues":[]}"#).unwrap();
        let out = ctl.run(&["import_definitions", file.to_str().unwrap()]).ok();
        assert_eq!(
            out.stderr,
            "Skipped queue \"q1\" in vhost \"/\": inequivalent arg 'durable'\nSkipped exchange \"x\" in vhost \"v\": exists\n"
        );
        // Refused before any request (the broker answers only once).
        ctl.run(&["import_definitions", "-"]).fails(65, "not valid JSON");
    });
    assert!(requests[0].starts_with("POST /api/definitions "), "{requests:?}");
    assert!(requests[0].ends_with(r#"{"queues":[]}"#), "{requests:?}");
}

/// Every verb against a live admin API; object names start with `prefix`.
pub fn verb_suite(ctl: &Ctl, prefix: &str) {
    let (user, user2, imported) = (format!("{prefix}u"), format!("{prefix}u2"), format!("{prefix}imp"));
    let (vhost, vhost2) = (format!("{prefix}vh"), format!("{prefix}vh2"));
    let _cleanup = Cleanup::new(
        ctl,
        &[
            ("delete_user", &user),
            ("delete_user", &user2),
            ("delete_user", &imported),
            ("delete_vhost", &vhost),
            ("delete_vhost", &vhost2),
        ],
    );
    let u = user.as_str();
    let vh = vhost.as_str();

    // Users.
    let out = ctl.run(&["add_user", u, "pw1"]).ok();
    assert!(out.stdout.starts_with(&format!("Adding user \"{u}\" ...\nDone.")), "{out:?}");
    ctl.run(&["add_user", u, "pw1"]).fails(70, &format!("Error: User \"{u}\" already exists"));
    assert_eq!(ctl.run(&["-q", "authenticate_user", u, "pw1"]).ok().stdout, "Success\n");
    ctl.run(&["authenticate_user", u, "nope"])
        .fails(65, &format!("Error: failed to authenticate user \"{u}\"\nuser '{u}' - invalid credentials"));
    ctl.run(&["set_user_tags", u, "monitoring", "policymaker"]).ok();
    let users = ctl.run(&["--format", "json", "list_users"]).ok().json();
    let me = users.as_array().unwrap().iter().find(|x| x["name"] == u).expect("listed");
    assert_eq!(me["tags"], serde_json::json!(["monitoring", "policymaker"]));
    ctl.run(&["-q", "authenticate_user", u, "pw1"]).ok();
    ctl.run(&["change_password", u, "pw2"]).ok();
    ctl.run(&["-q", "authenticate_user", u, "pw2"]).ok();
    let tsv = ctl.run(&["-s", "list_users"]).ok().stdout;
    assert!(tsv.lines().any(|l| l == format!("{u}\t[monitoring, policymaker]")), "{tsv}");
    ctl.run_with_stdin(&["add_user", &user2], "from stdin\n").ok();
    ctl.run_with_stdin(&["authenticate_user", &user2], "from stdin\n").ok();
    ctl.run(&["change_password", &format!("{prefix}none"), "x"]).fails(67, "does not exist");

    // Vhosts: adding again is a no-op, options given again are merged.
    let args =
        ["add_vhost", vh, "--description", "for tests", "--tags", "a,b", "--default-queue-type", "quorum"];
    let out = ctl.run(&args).ok();
    assert_eq!(out.stdout, format!("Adding vhost \"{vh}\" ...\n"));
    ctl.run(&["add_vhost", vh]).ok();
    let columns = ["name", "description", "tags", "default_queue_type"];
    let vhosts = ctl.run(&[&["-q", "list_vhosts"][..], &columns].concat()).ok().stdout;
    assert!(vhosts.lines().any(|l| l == format!("{vh}\tfor tests\t[a, b]\tquorum")), "{vhosts}");
    assert!(vhosts.starts_with("name\tdescription\ttags\tdefault_queue_type\n"), "{vhosts}");
    ctl.run(&["add_vhost", vh, "--description", "changed"]).ok();
    let vhosts = ctl.run(&[&["-s", "list_vhosts"][..], &columns].concat()).ok().stdout;
    assert!(vhosts.lines().any(|l| l == format!("{vh}\tchanged\t[a, b]\tquorum")), "{vhosts}");
    ctl.run(&["delete_vhost", &vhost2]).fails(65, &format!("Virtual host '{vhost2}' does not exist"));

    // Permissions.
    let out = ctl.run(&["set_permissions", "-p", vh, u, "^ctl-.*", ".*", "^$"]).ok();
    assert_eq!(out.stdout, format!("Setting permissions for user \"{u}\" in vhost \"{vh}\" ...\n"));
    let perms = ctl.run(&["-s", "list_permissions", "-p", vh]).ok().stdout;
    assert!(perms.lines().any(|l| l == format!("{u}\t^ctl-.*\t.*\t^$")), "{perms}");
    let mine = ctl.run(&["--format", "json", "list_user_permissions", u]).ok().json();
    assert_eq!(mine, serde_json::json!([{"vhost": vh, "configure": "^ctl-.*", "write": ".*", "read": "^$"}]));
    ctl.run(&["set_permissions", "-p", &vhost2, u, ".*", ".*", ".*"]).fails(65, "does not exist");
    ctl.run(&["set_permissions", "-p", vh, &format!("{prefix}none"), ".*", ".*", ".*"])
        .fails(67, "does not exist");
    ctl.run(&["list_permissions", "-p", &vhost2]).fails(65, "does not exist");
    ctl.run(&["clear_permissions", "-p", vh, u]).ok();
    ctl.run(&["clear_permissions", "-p", vh, u]).ok();
    assert!(!ctl.run(&["-s", "list_permissions", "-p", vh]).ok().stdout.contains(u));

    // Topic permissions: clearing one exchange keeps the others.
    ctl.run(&["set_topic_permissions", "-p", vh, u, "amq.topic", "^a", "^b"]).ok();
    ctl.run(&["set_topic_permissions", "-p", vh, u, "ctl-x", "^c", "^d"]).ok();
    ctl.run(&["clear_topic_permissions", "-p", vh, u, "amq.topic"]).ok();
    let topics = ctl.run(&["-s", "list_topic_permissions", "-p", vh]).ok().stdout;
    assert_eq!(topics, format!("{u}\tctl-x\t^c\t^d\n"));
    ctl.run(&["clear_topic_permissions", "-p", vh, u]).ok();
    assert_eq!(ctl.run(&["-s", "list_topic_permissions", "-p", vh]).ok().stdout, "");

    // Policies and operator policies.
    let def = r#"{"max-length":5}"#;
    let out = ctl
        .run(&["set_policy", "-p", vh, "--priority", "-2", "--apply-to", "queues", "pol", "^ctl-", def])
        .ok();
    let said = format!("Setting policy \"pol\" for pattern \"^ctl-\" to \"{def}\" with priority \"-2\" for vhost \"{vh}\" ...\n");
    assert_eq!(out.stdout, said);
    let policies = ctl.run(&["--format", "json", "list_policies", "-p", vh]).ok().json();
    assert_eq!(policies[0]["definition"]["max-length"], 5);
    assert_eq!(policies[0]["apply-to"], "queues");
    assert_eq!(policies[0]["priority"], -2);
    let tsv = ctl.run(&["-q", "list_policies", "-p", vh]).ok().stdout;
    assert_eq!(
        tsv,
        format!(
            "vhost\tname\tpattern\tapply-to\tdefinition\tpriority\n{vh}\tpol\t^ctl-\tqueues\t{def}\t-2\n"
        )
    );
    ctl.run(&["set_policy", "-p", vh, "bad", "^x", "{nope"]).fails(65, "JSON");
    ctl.run(&["set_policy", "-p", vh, "bad", "^x", r#"{"no-such-key":1}"#]).fails(65, "Error: ");
    ctl.run(&["clear_policy", "-p", vh, "pol"]).ok();
    ctl.run(&["clear_policy", "-p", vh, "pol"]).fails(64, "pol");
    ctl.run(&["set_operator_policy", "-p", vh, "--apply-to", "queues", "op", ".*", r#"{"max-length":9}"#])
        .ok();
    let ops = ctl.run(&["-s", "list_operator_policies", "-p", vh]).ok().stdout;
    assert_eq!(ops, format!("{vh}\top\t.*\tqueues\t{{\"max-length\":9}}\t0\n"));
    ctl.run(&["clear_operator_policy", "-p", vh, "op"]).ok();

    // Vhost limits: set replaces the whole set.
    ctl.run(&["set_vhost_limits", "-p", vh, r#"{"max-connections":10,"max-queues":-1}"#]).ok();
    let limits = ctl.run(&["--format", "json", "list_vhost_limits", "-p", vh]).ok().json();
    // RabbitMQ keeps a -1 ("no limit") in the list; a broker may drop it instead.
    assert_eq!(limits[0]["value"]["max-connections"], 10, "{limits}");
    let max_queues = limits[0]["value"].get("max-queues");
    assert!(max_queues.is_none() || max_queues == Some(&serde_json::json!(-1)), "{limits}");
    ctl.run(&["set_vhost_limits", "-p", vh, r#"{"max-connections":5}"#]).ok();
    let limits = ctl.run(&["--format", "json", "list_vhost_limits", "-p", vh]).ok().json();
    assert_eq!(limits[0]["value"], serde_json::json!({"max-connections":5}));
    ctl.run(&["set_vhost_limits", "-p", &vhost2, r#"{"max-queues":1}"#]).fails(65, "does not exist");
    ctl.run(&["clear_vhost_limits", "-p", vh]).ok();
    assert_eq!(
        ctl.run(&["--format", "json", "list_vhost_limits", "-p", vh]).ok().json(),
        serde_json::json!([])
    );

    // User limits: set merges into what is there, as rabbitmqctl's does.
    let user_limits = |ctl: &Ctl| -> serde_json::Value {
        serde_json::from_str(ctl.run(&["-q", "list_user_limits", "--user", u]).ok().stdout.trim()).unwrap()
    };
    assert_eq!(user_limits(ctl), serde_json::json!({}));
    ctl.run(&["set_user_limits", u, r#"{"max-connections":10,"max-channels":20}"#]).ok();
    ctl.run(&["set_user_limits", u, r#"{"max-connections":5}"#]).ok();
    assert_eq!(user_limits(ctl), serde_json::json!({"max-connections":5,"max-channels":20}));
    let global = ctl.run(&["-s", "list_user_limits", "--global"]).ok().stdout;
    assert!(global.lines().any(|l| l.starts_with(&format!("{u}\t"))), "{global}");
    ctl.run(&["clear_user_limits", u, "max-channels"]).ok();
    assert_eq!(user_limits(ctl), serde_json::json!({"max-connections":5}));
    ctl.run(&["clear_user_limits", u, "all"]).ok();
    assert_eq!(user_limits(ctl), serde_json::json!({}));
    let nobody = format!("{prefix}nobody");
    ctl.run(&["set_user_limits", &nobody, r#"{"max-channels":1}"#]).fails(67, "does not exist");
    ctl.run(&["set_user_limits", u, "notjson"]).fails(65, "JSON");

    // Definitions.
    let dir = temp_dir(prefix);
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("defs.json");
    ctl.run(&["export_definitions", file.to_str().unwrap()]).ok();
    let defs: serde_json::Value = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
    assert!(defs["users"].as_array().unwrap().iter().any(|x| x["name"] == u), "{defs}");
    // It holds password hashes: private, also when it replaces a readable file.
    assert_eq!(mode(&file), 0o600);
    let old = dir.join("old.json");
    std::fs::write(&old, "x".repeat(1 << 20)).unwrap();
    std::fs::set_permissions(&old, std::fs::Permissions::from_mode(0o644)).unwrap();
    ctl.run(&["export_definitions", old.to_str().unwrap()]).ok();
    assert_eq!(mode(&old), 0o600);
    let replaced: serde_json::Value = serde_json::from_slice(&std::fs::read(&old).unwrap()).unwrap();
    assert!(replaced["users"].as_array().unwrap().iter().any(|x| x["name"] == u), "{replaced}");
    let piped = ctl.run(&["export_definitions", "-"]).ok().json();
    assert!(piped["vhosts"].as_array().unwrap().iter().any(|x| x["name"] == vh));
    let import = serde_json::json!({
        "users": [{"name": imported, "password": "imp-pw", "tags": ""}],
        "vhosts": [{"name": vhost2}],
        "permissions": [{"user": imported, "vhost": vhost2, "configure": ".*", "write": ".*", "read": ".*"}],
    });
    ctl.run_with_stdin(&["import_definitions", "-"], &import.to_string()).ok();
    ctl.run(&["-q", "authenticate_user", &imported, "imp-pw"]).ok();
    let perms = ctl.run(&["-s", "list_user_permissions", &imported]).ok().stdout;
    assert_eq!(perms, format!("{vhost2}\t.*\t.*\t.*\n"));
    std::fs::remove_dir_all(&dir).unwrap();

    // Deleting.
    ctl.run(&["delete_vhost", &vhost2]).ok();
    ctl.run(&["delete_user", u]).ok();
    ctl.run(&["delete_user", u]).fails(67, &format!("Error: User \"{u}\" does not exist"));
}

#[test]
fn verbs_against_rabbitmq() {
    let Ok(url) = std::env::var("WARRENCTL_RABBITMQ_URL") else {
        eprintln!("note: WARRENCTL_RABBITMQ_URL is not set, skipping the warrenctl suite against RabbitMQ");
        return;
    };
    let user = std::env::var("WARRENCTL_RABBITMQ_USER").unwrap_or_else(|_| "guest".into());
    let password = std::env::var("WARRENCTL_RABBITMQ_PASSWORD").unwrap_or_else(|_| "guest".into());
    verb_suite(&Ctl::url(&url, &user, &password), &format!("ctl-t{}-", std::process::id()));
}

#[test]
fn verbs_over_a_control_socket() {
    let Ok(path) = std::env::var("WARRENCTL_TEST_SOCKET") else {
        eprintln!(
            "note: WARRENCTL_TEST_SOCKET is not set, skipping the warrenctl suite over a control socket"
        );
        return;
    };
    verb_suite(&Ctl::socket(Path::new(&path)), &format!("ctl-s{}-", std::process::id()));
}

#[test]
fn verbs_against_warren_over_its_socket_and_its_url() {
    let warren = Warren::start();
    verb_suite(&Ctl::socket(&warren.socket), "ctl-ws-");
    verb_suite(&Ctl::url(&format!("http://{}", warren.admin), "guest", "guest"), "ctl-wu-");
    warren.stop();
}
