//! A stress test checked against a model: publishers with confirms, many
//! consumers that ack, nack, reject, requeue, cancel at random, and raw
//! clients that vanish mid-stream without closing. At the end every message
//! was acked or deliberately dropped exactly once, no message was held by
//! two consumers at once, and no acked message came back.

mod common;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use amq_protocol::frame::AMQPFrame;
use amq_protocol::protocol::{basic, AMQPClass};
use common::{method, Raw, Read};
use futures_lite::StreamExt;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicNackOptions, BasicPublishOptions, BasicQosOptions,
    BasicRejectOptions, ConfirmSelectOptions, QueueDeclareOptions,
};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Connection, ConnectionProperties};
use parking_lot::Mutex;

const QUEUES: usize = 4;
const PUBLISHERS: usize = 3;
const PER_PUBLISHER: usize = 2000;
const CONSUMERS: usize = 5;
const KILLERS: usize = 2;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Ready,
    Held(usize),
    Acked,
    Dropped,
}

#[derive(Default)]
struct Model {
    state: HashMap<String, State>,
    violations: Vec<String>,
}

impl Model {
    fn delivered(&mut self, id: &str, to: usize) {
        match self.state.get(id).copied() {
            Some(State::Ready) => {
                self.state.insert(id.to_owned(), State::Held(to));
            }
            other => self.violations.push(format!("{id} delivered to {to} while {other:?}")),
        }
    }

    fn settle(&mut self, id: &str, by: usize, to: State) {
        match self.state.get(id).copied() {
            Some(State::Held(h)) if h == by => {
                self.state.insert(id.to_owned(), to);
            }
            other => self.violations.push(format!("{id} settled ({to:?}) by {by} while {other:?}")),
        }
    }

    fn done(&self) -> bool {
        self.state.values().all(|s| matches!(s, State::Acked | State::Dropped))
    }
}

type Shared = Arc<Mutex<Model>>;

fn queue(i: usize) -> String {
    format!("stress-{i}")
}

async fn connect(addr: SocketAddr) -> Connection {
    Connection::connect(&common::url(addr), ConnectionProperties::default()).await.unwrap()
}

async fn publisher(addr: SocketAddr, p: usize, model: Shared) {
    let conn = connect(addr).await;
    let ch = conn.create_channel().await.unwrap();
    ch.confirm_select(ConfirmSelectOptions::default()).await.unwrap();
    let mut confirms = Vec::with_capacity(PER_PUBLISHER);
    for i in 0..PER_PUBLISHER {
        let id = format!("p{p}-{i}");
        model.lock().state.insert(id.clone(), State::Ready);
        let q = queue(fastrand::usize(..QUEUES));
        let c = ch
            .basic_publish(
                "".into(),
                q.as_str().into(),
                BasicPublishOptions::default(),
                id.as_bytes(),
                BasicProperties::default(),
            )
            .await
            .unwrap();
        confirms.push(c);
    }
    for c in confirms {
        assert!(c.await.unwrap().is_ack(), "publisher {p}: a publish was not confirmed");
    }
    conn.close(200, "done".into()).await.unwrap();
}

/// A well-behaved but capricious consumer.
async fn consumer(addr: SocketAddr, me: usize, model: Shared, stop: Arc<tokio::sync::Notify>) {
    let conn = connect(addr).await;
    let mut rng = fastrand::Rng::with_seed(me as u64);
    loop {
        let ch = conn.create_channel().await.unwrap();
        ch.basic_qos(rng.u16(1..50), BasicQosOptions::default()).await.unwrap();
        let mut consumer = ch
            .basic_consume(
                queue(rng.usize(..QUEUES)).as_str().into(),
                format!("c{me}").as_str().into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await
            .unwrap();
        let mut held: Vec<(u64, String)> = Vec::new();
        let budget = rng.usize(50..400);
        for _ in 0..budget {
            let next = tokio::select! {
                d = tokio::time::timeout(Duration::from_millis(200), consumer.next()) => d,
                _ = stop.notified() => return,
            };
            let Ok(Some(Ok(d))) = next else { break };
            let id = String::from_utf8(d.data.clone()).unwrap();
            model.lock().delivered(&id, me);
            held.push((d.delivery_tag, id));
            let roll = rng.u32(..100);
            if roll < 60 {
                let (tag, id) = held.pop().unwrap();
                model.lock().settle(&id, me, State::Acked);
                ch.basic_ack(tag, BasicAckOptions::default()).await.unwrap();
            } else if roll < 72 {
                let (tag, id) = held.pop().unwrap();
                model.lock().settle(&id, me, State::Ready);
                ch.basic_nack(tag, BasicNackOptions { multiple: false, requeue: true }).await.unwrap();
            } else if roll < 76 {
                let (tag, id) = held.pop().unwrap();
                model.lock().settle(&id, me, State::Dropped);
                ch.basic_reject(tag, BasicRejectOptions { requeue: false }).await.unwrap();
            } else if roll < 86 && !held.is_empty() {
                // Everything held so far, with one multiple ack.
                let upto = held.last().unwrap().0;
                {
                    let mut m = model.lock();
                    for (_, id) in held.drain(..) {
                        m.settle(&id, me, State::Acked);
                    }
                }
                ch.basic_ack(upto, BasicAckOptions { multiple: true }).await.unwrap();
            }
            // Otherwise keep holding it for a while.
        }
        // Leave: what is still held goes back to the queue when the channel closes.
        {
            let mut m = model.lock();
            for (_, id) in held.drain(..) {
                m.settle(&id, me, State::Ready);
            }
        }
        ch.close(200, "bye".into()).await.unwrap();
    }
}

/// A raw client that takes some deliveries and vanishes without a word.
async fn killer(addr: SocketAddr, me: usize, model: Shared, stop: Arc<tokio::sync::Notify>) {
    let mut rng = fastrand::Rng::with_seed(1000 + me as u64);
    loop {
        let mut raw = Raw::open(addr).await;
        raw.open_channel(1).await;
        raw.send(&method(
            1,
            AMQPClass::Basic(basic::AMQPMethod::Qos(basic::Qos { prefetch_count: 20, global: false })),
        ))
        .await;
        raw.expect_method().await;
        let consume = basic::Consume {
            queue: queue(rng.usize(..QUEUES)).into(),
            consumer_tag: format!("k{me}").into(),
            no_local: false,
            no_ack: false,
            exclusive: false,
            nowait: false,
            arguments: Default::default(),
        };
        raw.send(&method(1, AMQPClass::Basic(basic::AMQPMethod::Consume(consume)))).await;
        let mut held = Vec::new();
        let want = rng.usize(1..40);
        while held.len() < want {
            let frame = tokio::select! {
                f = raw.read(Duration::from_millis(200)) => f,
                _ = stop.notified() => return,
            };
            match frame {
                Read::Frame(AMQPFrame::Body(_, body)) => {
                    let id = String::from_utf8(body).unwrap();
                    model.lock().delivered(&id, me);
                    held.push(id);
                }
                Read::Frame(_) => {}
                Read::Silent | Read::Closed => break,
            }
        }
        {
            let mut m = model.lock();
            for id in &held {
                m.settle(id, me, State::Ready);
            }
        }
        drop(raw); // the socket closes with deliveries unacknowledged
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_consumers_lose_nothing_and_never_share_a_message() {
    let server = common::start().await;
    let addr = server.local_addr;
    {
        let conn = connect(addr).await;
        let ch = conn.create_channel().await.unwrap();
        for i in 0..QUEUES {
            let q = queue(i);
            ch.queue_declare(q.as_str().into(), QueueDeclareOptions::default(), FieldTable::default())
                .await
                .unwrap();
        }
        conn.close(200, "".into()).await.unwrap();
    }
    let model: Shared = Arc::default();
    let stop = Arc::new(tokio::sync::Notify::new());
    let mut workers = Vec::new();
    for c in 0..CONSUMERS {
        workers.push(tokio::spawn(consumer(addr, c, model.clone(), stop.clone())));
    }
    for k in 0..KILLERS {
        workers.push(tokio::spawn(killer(addr, 100 + k, model.clone(), stop.clone())));
    }
    let publishers: Vec<_> =
        (0..PUBLISHERS).map(|p| tokio::spawn(publisher(addr, p, model.clone()))).collect();
    for p in publishers {
        p.await.unwrap();
    }
    let all_settled = tokio::time::timeout(Duration::from_secs(120), async {
        while !model.lock().done() {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    stop.notify_waiters();
    for w in workers {
        w.abort();
    }
    let m = model.lock();
    assert!(m.violations.is_empty(), "model violations: {:#?}", &m.violations[..m.violations.len().min(20)]);
    assert_eq!(m.state.len(), PUBLISHERS * PER_PUBLISHER);
    let left: Vec<_> =
        m.state.iter().filter(|(_, s)| !matches!(s, State::Acked | State::Dropped)).take(10).collect();
    assert!(all_settled.is_ok(), "messages never settled, e.g. {left:?}");
    let vhost = server.broker.vhost("/").unwrap();
    for i in 0..QUEUES {
        assert_eq!(vhost.queue(&queue(i)).unwrap().message_count(), 0, "queue {i} still has ready messages");
    }
}
