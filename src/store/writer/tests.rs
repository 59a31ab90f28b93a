//! The writer's loop with held writes, over a real RocksDB with fsync on:
//! what every barrier is told, in which order, and what is on disk once it
//! is told (whatever the timing: the hold is at most 2 ms, so these tests
//! check outcomes that hold however a batch falls, not how long it took).

use std::sync::mpsc;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

use super::{HeadLimit, StoreHandle};
use crate::store::rocks::RocksStore;
use crate::store::{IndexEntry, MessageRecord, Store};

struct Dir(std::path::PathBuf);

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn open() -> (Dir, Arc<RocksStore>, StoreHandle) {
    let dir =
        Dir(std::env::temp_dir().join(format!("warren-writer-{}-{}", std::process::id(), fastrand::u64(..))));
    let store = Arc::new(RocksStore::open(&dir.0).unwrap());
    let head = HeadLimit { messages: 1000, bytes: 1 << 20 };
    let handle = StoreHandle::start(store.clone(), true, 1, Default::default(), head);
    // A first synced write sets the hold's window (none before a sync).
    place(&handle, 1, 1, 0);
    assert!(barrier(&handle).recv_timeout(Duration::from_secs(10)).unwrap());
    (dir, store, handle)
}

fn record() -> MessageRecord {
    MessageRecord {
        exchange: Bytes::from_static(b""),
        routing_key: Bytes::from_static(b"q"),
        header: Bytes::from_static(b"\x00\x3c\x00\x00\x00\x00\x00\x00\x00\x00\x00\x05\x10\x00\x02"),
        body: Bytes::from_static(b"hello"),
    }
}

/// A new persistent message's write and place, as a queue submits it;
/// `flags` DELIVERED marks one delivered as it came (the held kind).
fn place(handle: &StoreHandle, queue: u64, seq: u64, flags: u8) -> u64 {
    let message = handle.next_id();
    let entry = IndexEntry { seq, message, size: 5, flags, expires: 0, lane: 0, returns: 0 };
    handle.submit_placed(queue, entry, record());
    message
}

fn barrier(handle: &StoreHandle) -> mpsc::Receiver<bool> {
    let (tx, rx) = mpsc::channel();
    handle.barrier(Box::new(move |ok| {
        let _ = tx.send(ok);
    }));
    rx
}

/// The (queue, seq, message) of every place on disk.
fn places(store: &RocksStore) -> Vec<(u64, u64, u64)> {
    let mut found = Vec::new();
    store.scan_index(&mut |queue, e| found.push((queue, e.seq, e.message))).unwrap();
    found
}

fn has_message(store: &RocksStore, id: u64) -> bool {
    store.read_messages(&[id]).unwrap()[0].is_some()
}

#[test]
fn a_barrier_after_a_held_write_is_told_once_it_is_on_disk() {
    let (_dir, store, handle) = open();
    let id = place(&handle, 7, 1, IndexEntry::DELIVERED);
    assert!(barrier(&handle).recv_timeout(Duration::from_secs(10)).unwrap());
    assert!(places(&store).contains(&(7, 1, id)), "told before its place was written");
    assert!(has_message(&store, id), "told before its message was written");
    handle.shutdown();
}

#[test]
fn a_held_write_met_by_its_settle_leaves_nothing_on_disk() {
    let (_dir, store, handle) = open();
    let id = place(&handle, 7, 1, IndexEntry::DELIVERED);
    handle.submit_settle(7, 1, None, Some(id));
    assert!(barrier(&handle).recv_timeout(Duration::from_secs(10)).unwrap());
    assert!(!places(&store).iter().any(|p| p.0 == 7), "the settled place is on disk");
    assert!(!has_message(&store, id), "the settled message is on disk");
    handle.shutdown();
}

#[test]
fn barriers_around_held_writes_are_told_in_order() {
    let (_dir, store, handle) = open();
    let (tx, rx) = mpsc::channel();
    let mut ids = Vec::new();
    for n in 0..6u64 {
        let tx = tx.clone();
        handle.barrier(Box::new(move |ok| {
            let _ = tx.send((n, ok));
        }));
        // Writes held on two queues, one of them settled at once.
        ids.push(place(&handle, 10 + n % 2, n + 1, IndexEntry::DELIVERED));
        if n % 2 == 0 {
            handle.submit_settle(10, n + 1, None, Some(ids[n as usize]));
        }
    }
    let told: Vec<_> = (0..6).map(|_| rx.recv_timeout(Duration::from_secs(10)).unwrap()).collect();
    assert_eq!(told, (0..6).map(|n| (n, true)).collect::<Vec<_>>());
    // Once the last is told, every unsettled write before it is on disk.
    assert!(barrier(&handle).recv_timeout(Duration::from_secs(10)).unwrap());
    let on_disk = places(&store);
    for n in 0..6u64 {
        let place = (10 + n % 2, n + 1, ids[n as usize]);
        assert_eq!(on_disk.contains(&place), n % 2 == 1, "place {place:?}");
    }
    handle.shutdown();
}

#[test]
fn held_writes_are_written_on_shutdown_and_by_a_read_of_pages() {
    let (dir, store, handle) = open();
    let read = place(&handle, 7, 1, IndexEntry::DELIVERED);
    // A read sees everything submitted before it, held or not.
    let (tx, rx) = mpsc::channel();
    assert!(handle.read(
        7,
        0,
        10,
        Box::new(move |found| {
            let _ = tx.send(found.is_some());
        })
    ));
    assert!(rx.recv_timeout(Duration::from_secs(10)).unwrap());
    assert!(places(&store).contains(&(7, 1, read)), "a read of pages passed a held write");
    let kept = place(&handle, 8, 1, IndexEntry::DELIVERED);
    handle.shutdown();
    drop(store);
    let reopened = RocksStore::open(&dir.0).unwrap();
    assert!(places(&reopened).contains(&(8, 1, kept)), "shutdown left a held write unwritten");
    assert!(has_message(&reopened, kept));
}
