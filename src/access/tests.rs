use std::sync::Arc;

use super::session::Action;
use super::*;
use crate::store::memory::MemoryStore;
use crate::store::Store;

fn any() -> IpAddr {
    "10.0.0.1".parse().unwrap()
}

fn access() -> Arc<Access> {
    Arc::new(Access::new(None, vec!["guest".into()]))
}

#[test]
fn users_log_in_with_their_passwords_or_hashes_and_guest_only_from_loopback() {
    let a = access();
    assert_eq!(a.put_user("guest", Some(Credential::Password("guest".into())), None), Ok((true, false)));
    assert!(a.authenticate("guest", "guest", "127.0.0.1".parse().unwrap()).is_ok());
    assert!(a.authenticate("guest", "guest", "::1".parse().unwrap()).is_ok());
    assert_eq!(a.authenticate("guest", "guest", any()).unwrap_err(), LoginRefused::LoopbackOnly);
    assert_eq!(a.authenticate("guest", "nope", any()).unwrap_err(), LoginRefused::BadPassword);
    assert_eq!(a.authenticate("nobody", "guest", any()).unwrap_err(), LoginRefused::NoSuchUser);
    let hash = Credential::Hash {
        hash: "+KrZ07Ddfi2P/RuwhviWo2YG4zEuawwOL3qqKpMqk/4CtVul".into(),
        algorithm: "rabbit_password_hashing_sha256".into(),
    };
    a.put_user("demo-u", Some(hash), Some(vec!["monitoring".into()])).unwrap();
    assert!(a.authenticate("demo-u", "demo-pw", any()).is_ok());
    a.put_user("no-login", Some(Credential::None), None).unwrap();
    assert!(a.authenticate("no-login", "", any()).is_err());
    assert!(a.put_user("blank", Some(Credential::Password(String::new())), None).is_err());
    let bad = Credential::Hash { hash: "AAAA".into(), algorithm: "rabbit_password_hashing_sha256".into() };
    assert!(matches!(a.put_user("bad", Some(bad), None), Err(AccessError::Invalid(_))));
    assert_eq!(a.failed_logins(), 4);
    assert!(!format!("{:?}", a.users()).contains("demo-pw"));
}

#[test]
fn changing_a_user_keeps_what_is_not_given_and_reports_a_new_password() {
    let a = access();
    a.put_user("u", Some(Credential::Password("p1".into())), Some(vec!["management".into()])).unwrap();
    assert_eq!(a.put_user("u", None, Some(vec!["administrator".into()])), Ok((false, false)));
    assert!(a.authenticate("u", "p1", any()).is_ok());
    assert_eq!(a.user("u").unwrap().tags, ["administrator"]);
    assert_eq!(
        a.put_user("u", Some(Credential::Password("p1".into())), None),
        Ok((false, false)),
        "the same one"
    );
    let kept = a.user("u").unwrap().hash.to_base64();
    a.put_user("u", Some(Credential::Password("p1".into())), None).unwrap();
    assert_eq!(a.user("u").unwrap().hash.to_base64(), kept, "the same password keeps its hash");
    assert_eq!(a.put_user("u", Some(Credential::Password("p2".into())), None), Ok((false, true)));
    assert!(!format!("{:?}", Credential::Password("hunter2".into())).contains("hunter2"));
    assert!(a.authenticate("u", "p1", any()).is_err() && a.authenticate("u", "p2", any()).is_ok());
    assert_eq!(a.user("u").unwrap().tags, ["administrator"]);
}

#[test]
fn permissions_follow_rabbitmqs_table_and_texts() {
    let a = access();
    a.put_user("demo-u", Some(Credential::Password("pw".into())), None).unwrap();
    assert_eq!(
        a.set_permission("/", "nobody", ".*", ".*", ".*"),
        Err(AccessError::NoSuchUser("nobody".into()))
    );
    assert!(matches!(a.set_permission("/", "demo-u", "(", ".*", ".*"), Err(AccessError::Invalid(_))));
    let mut s = a.session("demo-u", "/");
    assert!(!s.may_open(), "no permission entry: no access to the vhost");
    a.set_permission("/", "demo-u", "^demo-own.*", "^demo-(x|own.*)$", "^demo-(q|own.*)$").unwrap();
    assert!(s.may_open(), "a change applies to an open session");
    assert!(s.check(Resource::Queue, "demo-own1", Action::Configure).is_ok());
    let e = s.check(Resource::Queue, "demo-other", Action::Configure).unwrap_err();
    assert_eq!(e.code(), 403);
    assert_eq!(
        e.to_string(),
        "403 ACCESS_REFUSED - access to queue 'demo-other' in vhost '/' refused for user 'demo-u'"
    );
    let e = s.check_publish(b"").unwrap_err();
    assert!(e.to_string().contains("exchange 'amq.default'"), "{e}");
    assert!(s.check_publish(b"demo-x").is_ok());
    assert!(s.check_publish(b"demo-x").is_ok(), "remembered");
    a.set_permission("/", "demo-u", "^demo-own.*", "^demo-(x|y|own.*)$", "^demo-(q|own.*)$").unwrap();
    for x in [&b"demo-x"[..], b"demo-y", b"demo-own1", b"demo-x", b"demo-y"] {
        assert!(s.check_publish(x).is_ok(), "alternating exchanges");
    }
    assert!(s.check_publish(b"demo-z").is_err(), "a refusal is not remembered as a grant");
    a.set_permission("/", "demo-u", "", "", "").unwrap();
    assert!(s.check_publish(b"demo-x").is_err(), "the memo goes with the change");
    assert!(s.check(Resource::Queue, "q", Action::Read).is_err(), "'' matches nothing");
    assert_eq!(a.clear_permission("/", "demo-u"), Ok(true));
    assert_eq!(a.clear_permission("/", "demo-u"), Ok(false));
    assert!(!s.may_open());
}

#[test]
fn topic_permissions_restrict_routing_keys_only_where_set() {
    let a = access();
    a.put_user("u", Some(Credential::Password("pw".into())), None).unwrap();
    a.set_permission("/", "u", ".*", ".*", ".*").unwrap();
    let mut s = a.session("u", "/");
    assert!(s.check_topic("demo-x", "b.c", Action::Write).is_ok(), "none set: all allowed");
    a.set_topic_permission("/", "u", "demo-x", "^a\\.", "^{username}\\.").unwrap();
    let e = s.check_topic("demo-x", "b.c", Action::Write).unwrap_err();
    assert_eq!(
        e.to_string(),
        "403 ACCESS_REFUSED - access to topic 'b.c' in exchange 'demo-x' in vhost '/' refused for user 'u'"
    );
    assert!(s.check_topic("demo-x", "a.c", Action::Write).is_ok());
    assert!(s.check_topic("demo-x", "u.c", Action::Read).is_ok());
    assert!(s.check_topic("demo-x", "v.c", Action::Read).is_err());
    assert!(s.check_topic("other-x", "b.c", Action::Write).is_ok(), "other exchanges unrestricted");
    assert_eq!(a.topic_permissions()[0].read, "^{username}\\.");
    assert_eq!(a.clear_topic_permissions("/", "u", Some("nope")), Ok(false));
    assert_eq!(a.clear_topic_permissions("/", "u", None), Ok(true));
    assert!(s.check_topic("demo-x", "b.c", Action::Write).is_ok());
}

#[test]
fn deleting_a_user_or_vhost_drops_its_permissions() {
    let a = access();
    a.put_user("u", Some(Credential::Password("pw".into())), None).unwrap();
    a.set_permission("/", "u", ".*", ".*", ".*").unwrap();
    a.set_permission("v", "u", ".*", ".*", ".*").unwrap();
    a.set_topic_permission("v", "u", "x", ".*", ".*").unwrap();
    a.vhost_deleted("v").unwrap();
    assert_eq!(a.permissions().len(), 1);
    assert!(a.topic_permissions().is_empty());
    assert_eq!(a.delete_user("u"), Ok(true));
    assert_eq!(a.delete_user("u"), Ok(false));
    assert!(a.permissions().is_empty());
}

#[test]
fn everything_survives_a_restart_through_the_store() {
    let store: Arc<dyn Store> = Arc::new(MemoryStore::default());
    let handle = crate::store::StoreHandle::start(
        store.clone(),
        false,
        1,
        Default::default(),
        crate::store::writer::HeadLimit { messages: 10, bytes: 10 },
    );
    let a = Arc::new(Access::new(Some(handle.clone()), vec![]));
    a.put_user("u", Some(Credential::Password("pw".into())), Some(vec!["policymaker".into()])).unwrap();
    a.put_user("gone", Some(Credential::Password("pw".into())), None).unwrap();
    a.set_permission("/", "u", "^c", "^w", "^r").unwrap();
    a.set_permission("/", "gone", ".*", ".*", ".*").unwrap();
    a.set_topic_permission("/", "u", "x", "^a", "^b").unwrap();
    a.delete_user("gone").unwrap();
    handle.shutdown();
    let recovered = store.load().unwrap();
    let b = Access::new(None, vec![]);
    b.restore(recovered.control.iter().map(|(s, _, v)| (s.as_str(), v.as_slice())));
    assert!(b.authenticate("u", "pw", any()).is_ok());
    assert!(b.user("gone").is_none());
    assert_eq!(b.user("u").unwrap().tags, ["policymaker"]);
    assert_eq!(b.permissions(), a.permissions());
    assert_eq!(b.topic_permissions(), a.topic_permissions());
}
