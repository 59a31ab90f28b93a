use super::chunk::Extras;
use super::*;

fn put(log: &Log, n: u64, key: Option<u8>) -> u64 {
    let body = n.to_be_bytes();
    let extras = Extras { filter: None, key: key.map(|k| [k; 16]) };
    log.append(b"ex", b"rk", extras, |_, b| b.extend_from_slice(b"H"), &body, || {}).offset
}

/// Every offset and body from `from` on.
fn read_all(log: &Log, from: u64) -> Vec<(u64, u64)> {
    let mut c = Cursor::at(from);
    let mut out = Vec::new();
    while let Some((h, records)) = log.read(&mut c).unwrap() {
        let mut at = 0;
        while let Some(r) = chunk::next_record(&records, h.first, &mut at) {
            if r.offset >= c.next {
                out.push((r.offset, u64::from_be_bytes(r.body[..].try_into().unwrap())));
            }
        }
        c.next = h.end();
    }
    out
}

fn small(segment_bytes: u64) -> Retention {
    Retention { segment_bytes, ..Retention::default() }
}

#[test]
fn appends_are_read_back_in_order_once_written() {
    let dir = tempdir();
    let log = Log::open(&dir, Retention::default()).unwrap();
    for i in 0..10 {
        assert_eq!(put(&log, i, None), i);
    }
    assert!(read_all(&log, 0).is_empty(), "nothing is readable before the writer wrote it");
    log.write_pending().unwrap();
    log.sync().unwrap();
    assert_eq!(read_all(&log, 0), (0..10).map(|i| (i, i)).collect::<Vec<_>>());
    assert_eq!(read_all(&log, 7), vec![(7, 7), (8, 8), (9, 9)]);
    assert_eq!((log.written(), log.count(), log.last_chunk()), (10, 10, Some(0)));
}

#[test]
fn segments_roll_and_survive_a_reopen_with_a_torn_tail_cut() {
    let dir = tempdir();
    {
        let log = Log::open(&dir, small(2000)).unwrap();
        for i in 0..500 {
            put(&log, i, None);
            if i % 10 == 9 {
                log.write_pending().unwrap();
            }
        }
        assert!(log.segment_count() > 3, "{}", log.segment_count());
    }
    // A torn write at the end of the last segment.
    let last = *segment::list(&dir).unwrap().last().unwrap();
    let mut f = std::fs::OpenOptions::new().append(true).open(segment::seg_path(&dir, last)).unwrap();
    f.write_all(&[0x57, 0x53, 0x43, 0x31, 1, 2, 3]).unwrap();
    let log = Log::open(&dir, small(2000)).unwrap();
    assert_eq!(log.written(), 500);
    assert_eq!(read_all(&log, 0), (0..500).map(|i| (i, i)).collect::<Vec<_>>());
    assert_eq!(read_all(&log, 321)[0], (321, 321));
    assert_eq!(put(&log, 500, None), 500, "offsets go on without a gap");
    log.write_pending().unwrap();
    assert_eq!(read_all(&log, 499), vec![(499, 499), (500, 500)]);
}

#[test]
fn retention_drops_whole_old_segments_and_readers_jump_ahead() {
    let dir = tempdir();
    let log = Log::open(&dir, small(2000)).unwrap();
    for i in 0..500 {
        put(&log, i, None);
        if i % 10 == 9 {
            log.write_pending().unwrap();
        }
    }
    let before = log.bytes();
    log.set_retention(Retention { max_bytes: Some(5000), ..small(2000) });
    assert!(log.retain() > 0);
    assert!(log.bytes() <= 5000 + 2500 && log.bytes() < before, "{}", log.bytes());
    let first = log.first();
    assert!(first > 0 && first.is_multiple_of(10));
    let got = read_all(&log, 0);
    assert_eq!(got.first(), Some(&(first, first)));
    assert_eq!(got.len() as u64, 500 - first);
    log.set_retention(Retention { max_age_ms: Some(0), ..small(2000) });
    std::thread::sleep(std::time::Duration::from_millis(5));
    log.retain();
    assert_eq!(log.segment_count(), 1, "the active segment stays");
}

#[test]
fn compaction_keeps_the_newest_per_key_and_offsets() {
    let dir = tempdir();
    let log = Log::open(&dir, small(1500)).unwrap();
    for i in 0..300 {
        put(&log, i, if i % 50 == 0 { None } else { Some((i % 5) as u8) });
        log.write_pending().unwrap();
    }
    let done = log.compact_keys().unwrap();
    assert!(done.removed > 0 && done.bytes_after < done.bytes_before, "{done:?}");
    let got = read_all(&log, 0);
    // Unkeyed records stay; of each key, only records in the active segment
    // or the newest one are left.
    for i in (0..300).step_by(50) {
        assert!(got.contains(&(i, i)), "unkeyed {i} kept");
    }
    for k in 1..5u64 {
        assert!(got.contains(&(295 + k, 295 + k)), "newest of key {k} kept");
    }
    assert!(got.windows(2).all(|w| w[0].0 < w[1].0));
    assert!(got.len() < 300);
    // Offsets still resolve, and a read from a removed offset starts at the next kept one.
    let from_3 = read_all(&log, 3);
    assert!(from_3[0].0 >= 3);
    let log = Log::open(&dir, small(1500)).unwrap();
    assert_eq!(read_all(&log, 0), got, "the same after a reopen");
}

#[test]
fn a_time_finds_the_first_chunk_written_at_or_after_it() {
    let dir = tempdir();
    let log = Log::open(&dir, Retention::default()).unwrap();
    put(&log, 0, None);
    log.write_pending().unwrap();
    std::thread::sleep(std::time::Duration::from_millis(20));
    let t = now_ms();
    std::thread::sleep(std::time::Duration::from_millis(5));
    put(&log, 1, None);
    put(&log, 2, None);
    log.write_pending().unwrap();
    assert_eq!(log.offset_at_time(t).unwrap(), 1);
    assert_eq!(log.offset_at_time(0).unwrap(), 0);
    assert_eq!(log.offset_at_time(now_ms() + 10_000).unwrap(), 3);
    assert_eq!(log.last_chunk(), Some(1));
}

fn tempdir() -> PathBuf {
    static N: AtomicU64 = AtomicU64::new(0);
    let d = std::env::temp_dir().join(format!(
        "warren-stream-test-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&d);
    d
}
