//! Priority queues (`x-max-priority`), consumer priorities (`x-priority`)
//! and single active consumer (`x-single-active-consumer`).

mod common;

use common::*;
use lapin::options::{BasicCancelOptions, BasicConsumeOptions, BasicQosOptions};
use lapin::types::AMQPValue;
use lapin::BasicProperties;

fn with_priority(p: Option<u8>) -> BasicProperties {
    match p {
        Some(p) => BasicProperties::default().with_priority(p),
        None => BasicProperties::default(),
    }
}

#[tokio::test]
async fn higher_priority_first_fifo_within_a_priority() {
    let (conn, ch) = setup().await;
    let q = unique("prio");
    queue_with(&ch, &q, table(&[("x-max-priority", int(10))])).await;
    let sent = [("a", Some(1)), ("b", Some(5)), ("c", None), ("d", Some(10)), ("e", Some(5)), ("f", Some(0))];
    for (body, p) in sent {
        publish_props(&ch, "", &q, body.as_bytes(), with_priority(p)).await;
    }
    wait_ready(&conn, &q, 6).await;
    let mut got = Vec::new();
    while let Some(m) = get_opts(&ch, &q, true).await {
        got.push(String::from_utf8(m.delivery.data).unwrap());
    }
    // No priority counts as 0.
    assert_eq!(got, vec!["d", "b", "e", "a", "c", "f"]);
    delete_queue(&ch, &q).await;
    teardown(conn).await;
}

#[tokio::test]
async fn priorities_above_the_maximum_count_as_the_maximum() {
    let (conn, ch) = setup().await;
    let q = unique("prio-max");
    queue_with(&ch, &q, table(&[("x-max-priority", int(5))])).await;
    for (body, p) in [("a", 5), ("b", 200), ("c", 5), ("d", 1)] {
        publish_props(&ch, "", &q, body.as_bytes(), with_priority(Some(p))).await;
    }
    wait_ready(&conn, &q, 4).await;
    let mut got = Vec::new();
    while let Some(m) = get_opts(&ch, &q, true).await {
        got.push(String::from_utf8(m.delivery.data).unwrap());
    }
    assert_eq!(got, vec!["a", "b", "c", "d"]);
    delete_queue(&ch, &q).await;
    teardown(conn).await;
}

async fn consumer_with(ch: &lapin::Channel, q: &str, args: lapin::types::FieldTable) -> lapin::Consumer {
    within("basic.consume", ch.basic_consume(q.into(), "".into(), BasicConsumeOptions::default(), args))
        .await
        .expect("basic.consume")
}

#[tokio::test]
async fn consumers_with_higher_priority_are_served_first_while_they_have_credit() {
    let (conn, ch) = setup().await;
    let q = unique("consumer-prio");
    named_queue(&ch, &q).await;
    let low_ch = channel(&conn).await;
    low_ch.basic_qos(10, BasicQosOptions::default()).await.unwrap();
    let mut low = consumer_with(&low_ch, &q, table(&[("x-priority", AMQPValue::LongInt(1))])).await;
    let high_ch = channel(&conn).await;
    high_ch.basic_qos(2, BasicQosOptions::default()).await.unwrap();
    let mut high = consumer_with(&high_ch, &q, table(&[("x-priority", AMQPValue::LongInt(10))])).await;
    fill(&ch, &q, 5).await;
    // The high-priority consumer takes what its prefetch allows; the rest overflow to the low one.
    let h: Vec<String> = vec![body(&next_delivery(&mut high).await), body(&next_delivery(&mut high).await)];
    assert_eq!(h, vec!["0", "1"]);
    let l: Vec<String> = vec![
        body(&next_delivery(&mut low).await),
        body(&next_delivery(&mut low).await),
        body(&next_delivery(&mut low).await),
    ];
    assert_eq!(l, vec!["2", "3", "4"]);
    assert_no_delivery(&mut high).await;
    delete_queue(&ch, &q).await;
    teardown(conn).await;
}

#[tokio::test]
async fn a_single_active_consumer_gets_everything_until_it_goes() {
    let (conn, ch) = setup().await;
    let q = unique("sac");
    queue_with(&ch, &q, table(&[("x-single-active-consumer", AMQPValue::Boolean(true))])).await;
    let first_ch = channel(&conn).await;
    first_ch.basic_qos(1, BasicQosOptions::default()).await.unwrap();
    let mut first = consumer_with(&first_ch, &q, Default::default()).await;
    let second_ch = channel(&conn).await;
    let mut second = consumer_with(&second_ch, &q, Default::default()).await;
    fill(&ch, &q, 3).await;
    let held = next_delivery(&mut first).await;
    assert_eq!(body(&held), "0");
    // The second consumer waits even though the first is at its prefetch limit.
    assert_no_delivery(&mut second).await;
    // The active consumer goes: its unacked message and the rest fail over to the next.
    first_ch.basic_cancel(first.tag().as_str().into(), BasicCancelOptions::default()).await.unwrap();
    first_ch.close(200, "bye".into()).await.unwrap();
    let mut got: Vec<(String, bool)> = Vec::new();
    for _ in 0..3 {
        let d = next_delivery(&mut second).await;
        got.push((body(&d), d.redelivered));
        ack(&d).await;
    }
    got.sort();
    assert_eq!(got, vec![("0".to_owned(), true), ("1".to_owned(), false), ("2".to_owned(), false)]);
    delete_queue(&ch, &q).await;
    teardown(conn).await;
}

#[tokio::test]
async fn a_later_higher_priority_consumer_does_not_displace_the_single_active_one() {
    let (conn, ch) = setup().await;
    let q = unique("sac-prio");
    queue_with(&ch, &q, table(&[("x-single-active-consumer", AMQPValue::Boolean(true))])).await;
    let first_ch = channel(&conn).await;
    let mut first = consumer_with(&first_ch, &q, Default::default()).await;
    let later_ch = channel(&conn).await;
    let mut later = consumer_with(&later_ch, &q, table(&[("x-priority", AMQPValue::LongInt(10))])).await;
    fill(&ch, &q, 2).await;
    assert_eq!(body(&next_delivery(&mut first).await), "0");
    assert_eq!(body(&next_delivery(&mut first).await), "1");
    assert_no_delivery(&mut later).await;
    delete_queue(&ch, &q).await;
    teardown(conn).await;
}

#[tokio::test]
async fn a_consumer_priority_that_is_not_an_integer_is_refused() {
    let (conn, ch) = setup().await;
    let q = unique("bad-priority");
    named_queue(&ch, &q).await;
    let bad = channel(&conn).await;
    let text = expect_error(
        "basic.consume with x-priority 'high'",
        bad.basic_consume(
            q.as_str().into(),
            "".into(),
            BasicConsumeOptions::default(),
            table(&[("x-priority", long_str("high"))]),
        ),
        PRECONDITION_FAILED,
    )
    .await;
    assert_eq!(
        text,
        format!("PRECONDITION_FAILED - invalid arg 'x-priority' for queue '{q}' in vhost '/': \"expected integer, got longstr\"")
    );
    delete_queue(&ch, &q).await;
    teardown(conn).await;
}
