//! Routing into durable queues over a real store writer (in memory).

use std::sync::Arc;

use bytes::Bytes;

use super::*;
use crate::broker::vhost::QueueDecl;
use crate::protocol::properties::ContentHeader;
use crate::store::memory::MemoryStore;
use crate::store::writer::HeadLimit;
use crate::store::{IndexEntry, Store, StoreHandle};

fn persistent(body: &'static [u8]) -> Message {
    // Class 60, weight 0, the body's size, delivery-mode 2 (persistent).
    let mut header = vec![0, 60, 0, 0];
    header.extend_from_slice(&(body.len() as u64).to_be_bytes());
    header.extend_from_slice(&[0x10, 0x00, 2]);
    let info = ContentHeader::scan(&header).unwrap();
    Message::new(Bytes::new(), Bytes::from_static(b"q"), header.into(), info, Bytes::from_static(body))
}

/// A vhost over a real store writer on a memory store.
fn vhost_on_memory() -> (Arc<MemoryStore>, StoreHandle, Arc<VHost>) {
    let store = Arc::new(MemoryStore::default());
    let head = HeadLimit { messages: 1000, bytes: 1 << 20 };
    let handle = StoreHandle::start(store.clone(), false, 1, Default::default(), head);
    let v = Arc::new(VHost::new("/", Some(handle.clone())));
    (store, handle, v)
}

/// A persistent message still shared as it is routed (a delayed one whose
/// record the store's writer holds until its batch is written) is written
/// for its durable queues all the same, as a copy of its own: the copy that
/// was held keeps no store id.
#[test]
fn a_persistent_message_still_shared_is_written_for_its_durable_queues() {
    let (store, handle, v) = vhost_on_memory();
    let decl = |name: &str| QueueDecl { name: name.into(), durable: true, ..QueueDecl::default() };
    let one = v.declare_queue(decl("one"), 0).unwrap().queue;
    let (a, b) = (v.declare_queue(decl("a"), 0).unwrap().queue, v.declare_queue(decl("b"), 0).unwrap().queue);
    for (queues, body) in [(vec![one.clone()], &b"to one"[..]), (vec![a.clone(), b.clone()], &b"to two"[..])]
    {
        let message = Arc::new(persistent(body));
        let held = message.clone();
        let out = v.enqueue(message, &queues);
        assert!(out.on_disk && !out.rejected, "{out:?}");
        drop(held);
        assert!(handle.write_durably([]));
        for q in &queues {
            let mut places = 0;
            let id = q.store_id().unwrap();
            store.scan_index(&mut |queue, _| places += usize::from(queue == id)).unwrap();
            assert_eq!(places, 1, "no place written for {}", q.name);
        }
    }
    // The two-queue message is written once, for both: one id, shared.
    let mut places = std::collections::HashMap::new();
    store
        .scan_index(&mut |queue, e| {
            places.insert(queue, e);
        })
        .unwrap();
    let place = |q: &Arc<Queue>| places[&q.store_id().unwrap()];
    let (pa, pb, po) = (place(&a), place(&b), place(&one));
    assert_eq!(pa.message, pb.message, "written twice for two queues");
    assert!(pa.flags & pb.flags & IndexEntry::SHARED != 0 && po.flags & IndexEntry::SHARED == 0);
    // The shared one among the messages, the other kept in its place.
    assert!(po.flags & IndexEntry::INLINE != 0 && pa.flags & IndexEntry::INLINE == 0);
    let mut read = store.read_messages(&[pa.message, po.message]).unwrap();
    read.extend(store.read_places(one.store_id().unwrap(), &[po.seq]).unwrap());
    let bodies: Vec<_> = read.into_iter().map(|r| r.map(|r| r.body)).collect();
    assert_eq!(bodies, [Some(Bytes::from_static(b"to two")), None, Some(Bytes::from_static(b"to one"))]);
}

#[test]
fn the_default_exchange_is_found_without_the_table_and_cannot_be_replaced() {
    let (_, _, v) = vhost_on_memory();
    let listed = v.exchanges.read().get("").cloned().expect("listed with the others");
    let found = v.exchange("").expect("the default exchange");
    assert!(Arc::ptr_eq(&found, &listed));
    let mut router = Router::default();
    assert!(Arc::ptr_eq(&v.publish_exchange(b"", &mut router).unwrap(), &listed));
    // A stored record of it (there should never be one) leaves it as it is.
    let record = crate::store::ExchangeRecord {
        vhost: "/".into(),
        name: String::new(),
        kind: "fanout".into(),
        auto_delete: false,
        internal: false,
        arguments: Default::default(),
    };
    v.restore(vec![record], Vec::new(), Vec::new(), &mut Default::default());
    assert!(Arc::ptr_eq(&v.exchange("").unwrap(), &listed));
    assert!(Arc::ptr_eq(v.exchanges.read().get("").unwrap(), &listed));
    assert!(v.publish_exchange(b"amq.nope", &mut router).is_err());
    // Deleted with its vhost: gone, as from the table.
    listed.mark_deleted();
    assert!(v.exchange("").is_none());
    assert!(v.publish_exchange(b"", &mut Router::default()).is_err());
}
