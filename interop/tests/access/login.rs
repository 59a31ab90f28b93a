//! Logging in, access to a vhost, and what deleting a user does.

use super::*;

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
