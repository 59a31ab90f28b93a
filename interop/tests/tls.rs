//! AMQPS: the same client traffic over TLS. The broker is `$AMQPS_URL`,
//! trusted through the CA in the PEM file `$AMQPS_CA`; without `AMQP_URL`
//! the embedded Warren serves AMQPS with a CA of its own. With `AMQP_URL` but
//! no `AMQPS_URL` there is no TLS target: the tests say so and pass.

mod common;

use common::*;
use lapin::{options::BasicPublishOptions, BasicProperties, Confirmation, Connection};

/// The AMQPS URL and CA PEM under test, or None (after a note) when the
/// broker under test has no AMQPS target.
fn target(test: &str) -> Option<(String, Option<String>)> {
    match amqps_url() {
        Some(url) => Some((url, amqps_ca())),
        None => {
            eprintln!("note: {test}: AMQP_URL is set but AMQPS_URL is not: TLS not checked");
            None
        }
    }
}

async fn connect_amqps(url: &str, ca: Option<&str>) -> Connection {
    connect_tls(url, ca).await.unwrap_or_else(|e| panic!("cannot connect over TLS to {url}: {e}"))
}

/// A body of `len` bytes that is not one byte repeated (a shifted or cut
/// frame shows).
fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 7 + i / 251) as u8).collect()
}

#[tokio::test]
async fn publish_with_confirms_and_consume_over_tls() {
    let Some((url, ca)) = target("publish_with_confirms_and_consume_over_tls") else { return };
    let conn = connect_amqps(&url, ca.as_deref()).await;
    let ch = channel(&conn).await;
    confirm_select(&ch).await;
    let q = temp_queue(&ch).await;
    // ~300 KB: many frames (frame_max 128 KiB) and many TLS records.
    let bodies = [b"small over tls".to_vec(), pattern(300 * 1024 + 17)];
    for body in &bodies {
        let confirmation =
            publish_confirmed(&ch, "", &q, BasicPublishOptions::default(), body, BasicProperties::default())
                .await;
        assert!(matches!(confirmation, Confirmation::Ack(_)), "publish confirmed: {confirmation:?}");
    }
    let mut consumer = consume(&ch, &q, false).await;
    for (i, want) in bodies.iter().enumerate() {
        let d = next_delivery(&mut consumer).await;
        assert_eq!(d.data.len(), want.len(), "message {i}: body length");
        assert!(d.data == *want, "message {i}: body differs");
        ack(&d).await;
    }
    assert_no_delivery(&mut consumer).await;
    teardown(conn).await;
}

#[tokio::test]
async fn a_client_that_does_not_trust_the_ca_fails() {
    let Some((url, ca)) = target("a_client_that_does_not_trust_the_ca_fails") else { return };
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    params.distinguished_name.push(rcgen::DnType::CommonName, "some other CA");
    let other = rcgen::CertifiedIssuer::self_signed(params, rcgen::KeyPair::generate().unwrap()).unwrap();
    match connect_tls(&url, Some(&other.pem())).await {
        Ok(conn) => {
            teardown(conn).await;
            panic!("a client trusting only another CA connected to {url}");
        }
        Err(e) => assert!(amqp_error(&e).is_none(), "refused in the TLS handshake, not by AMQP: {e:?}"),
    }
    // The broker is fine, and so is a client that trusts its CA.
    let conn = connect_amqps(&url, ca.as_deref()).await;
    let ch = channel(&conn).await;
    let q = temp_queue(&ch).await;
    publish(&ch, "", &q, b"still fine").await;
    assert_eq!(body(&get_eventually(&ch, &q).await.delivery), "still fine");
    teardown(conn).await;
}
