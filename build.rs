//! RocksDB is linked statically from Debian's `librocksdb-dev`
//! (`ROCKSDB_STATIC` in `.cargo/config.toml`): its code then reaches its
//! thread-locals directly instead of through `__tls_get_addr`, which the
//! shared library paid on every iterator step (measured with callgrind:
//! 11% of the page reader's instructions). The static library leaves the
//! compression libraries it calls to the program linking it: they are
//! named here, so every binary linking Warren gets them.
fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=ROCKSDB_STATIC");
    if std::env::var_os("ROCKSDB_STATIC").is_some() {
        for lib in ["snappy", "lz4", "zstd", "bz2", "z"] {
            println!("cargo:rustc-link-lib=dylib={lib}");
        }
    }
}
