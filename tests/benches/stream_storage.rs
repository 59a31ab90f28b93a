//! Where a stream's records go: segment files beside RocksDB (what Warren
//! uses, `store::stream`) against a RocksDB column family keyed by offset,
//! set up as Warren's store sets up its own (LZ4, vector memtable), each
//! written in batches of 1,000 records and read back in order.
//!
//! Run with `cargo bench --bench stream_storage` (prints msg/s and disk
//! bytes; `STREAM_BENCH_RECORDS` sets the count, 2,000,000 by default).

use std::time::Instant;

use bytes::BytesMut;
use rocksdb::{IteratorMode, Options, WriteBatch, WriteOptions, DB};
use warren::store::stream::chunk::{self, Extras};
use warren::store::stream::{Cursor, Log, Retention};

const BATCH: u64 = 1000;
/// A 16-byte message as a publisher sends it: names and a small header.
const BODY: &[u8] = b"0123456789abcdef";
const HEADER: &[u8] = &[0, 60, 0, 0, 0, 0, 0, 0, 0, 0, 0, 16, 0x10, 0, 1];

fn dir(name: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("warren-stream-bench-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

fn du(d: &std::path::Path) -> u64 {
    std::fs::read_dir(d).unwrap().flatten().map(|e| e.metadata().map_or(0, |m| m.len())).sum()
}

fn segments(n: u64) {
    let d = dir("segments");
    let log = Log::open(&d, Retention::default()).unwrap();
    let started = Instant::now();
    for i in 0..n {
        log.append(b"", b"perf-stream", Extras::default(), |_, b| b.extend_from_slice(HEADER), BODY, || {});
        if (i + 1) % BATCH == 0 {
            log.write_pending().unwrap();
        }
    }
    log.write_pending().unwrap();
    log.sync().unwrap();
    let append = started.elapsed().as_secs_f64();
    let started = Instant::now();
    let (mut c, mut read) = (Cursor::at(0), 0u64);
    while let Some((h, records)) = log.read(&mut c).unwrap() {
        let mut at = 0;
        while let Some(r) = chunk::next_record(&records, h.first, &mut at) {
            read += r.body.len() as u64 / BODY.len() as u64;
        }
        c.next = h.end();
    }
    let replay = started.elapsed().as_secs_f64();
    assert_eq!(read, n);
    report("segment files", n, append, replay, du(&d));
    let _ = std::fs::remove_dir_all(&d);
}

fn rocks(n: u64) {
    let d = dir("rocks");
    let mut opts = Options::default();
    opts.create_if_missing(true);
    opts.set_compression_type(rocksdb::DBCompressionType::Lz4);
    opts.set_write_buffer_size(64 << 20);
    opts.set_max_total_wal_size(256 << 20);
    opts.set_allow_concurrent_memtable_write(false);
    opts.set_memtable_factory(rocksdb::MemtableFactory::Vector);
    let db = DB::open(&opts, &d).unwrap();
    let started = Instant::now();
    let mut batch = WriteBatch::default();
    let mut record = BytesMut::new();
    for i in 0..n {
        record.clear();
        chunk::put_record(
            &mut record,
            0,
            b"",
            b"perf-stream",
            Extras::default(),
            |b| b.extend_from_slice(HEADER),
            BODY,
        );
        batch.put(i.to_be_bytes(), &record);
        if (i + 1) % BATCH == 0 {
            db.write_opt(std::mem::take(&mut batch), &WriteOptions::default()).unwrap();
        }
    }
    db.write_opt(batch, &WriteOptions::default()).unwrap();
    db.flush_wal(true).unwrap();
    let append = started.elapsed().as_secs_f64();
    let started = Instant::now();
    let mut read = 0u64;
    for item in db.iterator(IteratorMode::Start) {
        let (_, v) = item.unwrap();
        read += u64::from(v.len() > BODY.len());
    }
    let replay = started.elapsed().as_secs_f64();
    assert_eq!(read, n);
    db.flush().unwrap();
    report("RocksDB, keyed by offset", n, append, replay, du(&d));
    drop(db);
    let _ = std::fs::remove_dir_all(&d);
}

fn report(what: &str, n: u64, append: f64, replay: f64, bytes: u64) {
    println!(
        "{what:26} append {:>10.0} msg/s   replay {:>10.0} msg/s   {:>5.1} bytes/message on disk",
        n as f64 / append,
        n as f64 / replay,
        bytes as f64 / n as f64
    );
}

fn main() {
    let n = std::env::var("STREAM_BENCH_RECORDS").ok().and_then(|v| v.parse().ok()).unwrap_or(2_000_000);
    for _ in 0..2 {
        segments(n);
        rocks(n);
    }
}
