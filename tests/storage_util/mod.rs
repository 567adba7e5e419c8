//! Helpers shared by the storage tests.
#![allow(dead_code)]

use std::future::Future;
use std::time::Duration;

use glommio::{LocalExecutorBuilder, Placement};
use std::sync::atomic::{AtomicU64, Ordering};

use granary::meta::types::{BlockHash, BucketId, Holder, ObjectData, ObjectRow, Stamp, VersionId};
use granary::storage::{FsyncPolicy, StorageConfig};

/// Run `f` on a fresh glommio executor (small io_memory: the memlock limit is 8 MiB).
pub fn run<F, Fut, T>(f: F) -> T
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: Future<Output = T> + 'static,
    T: Send + 'static,
{
    LocalExecutorBuilder::new(Placement::Unbound)
        .io_memory(1 << 20)
        .spawn(f)
        .expect("spawn executor")
        .join()
        .expect("executor panicked")
}

pub fn cfg() -> StorageConfig {
    StorageConfig {
        data_fsync: FsyncPolicy::Always,
        metadata_fsync: FsyncPolicy::Always,
        fsync_batch_bytes: 4 << 20,
        fsync_batch_delay_us: 0,
        block_gc_delay_s: 600,
        segment_bytes: 64 << 20,
        lmdb_map_bytes: 1 << 30,
        ..StorageConfig::default()
    }
}

pub fn fast_cfg() -> StorageConfig {
    StorageConfig {
        data_fsync: FsyncPolicy::Never,
        metadata_fsync: FsyncPolicy::Never,
        ..cfg()
    }
}

pub fn data(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

pub fn block(len: usize, seed: u64) -> (BlockHash, Vec<u8>) {
    let d = data(len, seed);
    (BlockHash::of(&d), d)
}

pub const BUCKET: BucketId = BucketId([1; 16]);

/// The holder most tests put their blocks under.
pub const H: Holder = Holder([7; 16]);

/// A holder of its own for each `n`.
pub fn holder(n: u8) -> Holder {
    Holder([n; 16])
}

/// A stamp later than every one this process made before: each test write is the newest.
pub fn next_stamp() -> Stamp {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    Stamp {
        time_ms: NEXT.fetch_add(1, Ordering::Relaxed),
        counter: 0,
        node: 1,
    }
}

/// An object row: a new version, newer than every row made before it.
pub fn obj(key: &str, body: &[u8]) -> ObjectRow {
    ObjectRow {
        bucket: BUCKET,
        key: key.to_string(),
        version: VersionId::random(),
        stamp: next_stamp(),
        bytes: body.len() as u64,
        etag: format!("\"{}\"", key.len()),
        last_modified_ms: 1,
        headers: vec![("content-type".into(), "text/plain".into())],
        checksum: None,
        parts: vec![],
        data: ObjectData::Inline(body.to_vec()),
    }
}

pub fn sleep_ms(ms: u64) -> impl Future<Output = ()> {
    glommio::timer::sleep(Duration::from_millis(ms))
}
