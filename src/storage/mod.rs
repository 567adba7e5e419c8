//! The shard-local storage engine: blocks in append-only O_DIRECT segment files, their index
//! and all metadata rows in the shard's LMDB environment, with group commit.
//!
//! # Use
//!
//! One [`ShardStore`] per shard, opened and used only on that shard's glommio executor
//! (it is `Rc`, not `Send`). LMDB commits run on the executor's blocking thread pool
//! (`executor().spawn_blocking`), one write transaction in flight at a time, so the
//! executor needs a blocking pool (any `LocalExecutorBuilder` has one by default).
//!
//! ```text
//! ShardStore::open(dir, cfg).await                 // recovery happens here
//! blocks  : put_block(hash, data, holder) / add_block_ref(hash, holder)
//!           release_block(hash, holder) / read_block(hash, off, len) / block_info(hash)
//!           open_block(hash) -> BlockReader { read(off, len) }   (streaming, chunk by chunk)
//! objects : put_object(row) / put_object_if(row, cond) / get_object
//!           delete_object(bucket, key, version, stamp) / delete_object_if
//!           list_objects(bucket, prefix, start_after, limit) / bucket_is_empty
//! uploads : put_upload / get_upload / abort_upload / complete_upload / list_uploads
//!           put_part / list_parts / get_completed_upload / delete_bucket_uploads
//! global  : put_bucket / list_buckets / get_bucket / put_key / list_keys / get_key (shard 0)
//! moves   : partition_rows / partition_blocks / import_rows / import_block / drop_partition
//! admin   : stats() / sync_all() / close() / gc_now() / compact_now() / scrub_step(n)
//! ```
//!
//! Open the store before any other `DmaFile` on the shard's thread (see
//! `docs/storage.md`: glommio's IOPOLL probe), and `close()` it before reopening the same
//! directory in the same process.
//!
//! # Durability
//!
//! Writes (block puts, reference changes, row writes) go through one pipeline per shard:
//!
//! 1. **Data stage.** `put_block` calls of a shard are gathered into a batch that closes
//!    at `fsync_batch_bytes` or `fsync_batch_delay_us` after its first block. The batch's
//!    records are encoded into aligned buffers, written with O_DIRECT at the end of the
//!    active segment (~1 MiB writes in flight together), then (data policy `always`) made
//!    durable by one `fdatasync`. The next batch is encoded while one writes (two in
//!    flight; a batch is acknowledged only after the one before it succeeded).
//! 2. **Metadata stage.** The index entries of written batches, the references added and
//!    released, and every queued row write are applied in ONE LMDB write transaction,
//!    committed on the blocking pool. With metadata policy `always` the commit syncs. The
//!    transaction also moves the recovery checkpoint (segment, offset) past the batch's
//!    records. While one transaction commits, the next gathers: at high concurrency one
//!    commit covers hundreds of writes. A transaction holding only index entries of
//!    acknowledged blocks waits up to 20 ms for company.
//!
//! A call returns only after the transaction that holds its effect has committed (and,
//! with `always`, after the syncs that cover it), with one exception: a `put_block` of a new
//! block is acknowledged as soon as its record is written and (data policy `always`)
//! synced, before its index entry commits — the record alone is enough for recovery to
//! re-index it, and until the commit the block is served from an in-memory table of
//! pending entries. The index never points at records that were not written (and, with
//! `always`, synced) before it. `periodic:<ms>` acknowledges after the (unsynced)
//! write/commit and syncs in the background every `<ms>`; `never` leaves syncing to the OS
//! (LMDB opened with `NO_SYNC`); both are synced at `sync_all`/`close`.
//!
//! # Recovery
//!
//! `open` reads the checkpoint, scans only the records written after it (in the
//! checkpoint's segment and any later one), re-indexes the valid ones and truncates each
//! scanned segment at its first torn or corrupt record (syncing what it re-indexes). If
//! the data before the checkpoint is gone (a power loss under a weak data policy), writing
//! resumes in a new segment. Under the `periodic`/`never` data policies `open` also
//! verifies every block written after the last recorded data sync and marks the lost ones
//! bad. Startup time is proportional to that tail (and, under weak policies after an
//! unclean stop, to the data written since the last sync). A re-indexed block is held by
//! `Holder::RECOVERED`: it may have been acknowledged (see above). An unacknowledged one
//! (crash between its write and the acknowledgement) leaks until `granary repair
//! refcounts --fix`; nothing acknowledged is lost.
//!
//! # Faults
//!
//! Nothing read from disk is trusted: a record is checked (header checksum and crc32c per
//! 64 KiB chunk on every read; blake3 of the whole block by the scrub, recovery and
//! streaming reads from 0 to the end) and a mismatch is
//! [`StorageError::Corrupt`] (and the block is marked bad, never served again until
//! a put of the same hash repairs it). A failed write (e.g. a full disk) fails that
//! batch and leaves the store usable; a failed `fdatasync` latches block writes off
//! until the store is reopened (fsync errors are not retryable).
//!
//! All segment-file I/O goes through [`disk`]: the real O_DIRECT disk, or (tests) a
//! simulated disk that can lose power and fail writes or syncs on request.
//!
//! Block data and references are per shard; an object row's blocks may live on other
//! shards (the model routes each call to the owner of the block's partition).

pub mod blockbuf;
pub mod disk;
pub mod index;
pub mod placement;
pub mod record;
pub mod refcheck;
pub mod resources;
mod store;

pub use blockbuf::{BlockBuf, BufPool};
pub use disk::{DiskKind, SimDisk};
pub use store::maint::ScrubProgress;
pub use store::{BlockReader, ShardStore, META_FORMAT};

use std::str::FromStr;
use std::time::Duration;

/// When writes of one kind of data are made durable.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FsyncPolicy {
    /// Acknowledge after the sync that covers the write.
    Always,
    /// Acknowledge after the write; sync in the background at this interval.
    Periodic(Duration),
    /// Never sync explicitly (the OS, and other replicas, are the durability).
    Never,
}

impl FromStr for FsyncPolicy {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "always" => Ok(FsyncPolicy::Always),
            "never" => Ok(FsyncPolicy::Never),
            _ => {
                let ms = s.strip_prefix("periodic:").ok_or_else(|| {
                    format!("fsync policy {s:?}: expected always, periodic:<ms> or never")
                })?;
                let ms: u64 = ms
                    .parse()
                    .map_err(|_| format!("fsync policy {s:?}: bad milliseconds"))?;
                if ms == 0 {
                    return Err("periodic fsync interval must be > 0 ms".into());
                }
                Ok(FsyncPolicy::Periodic(Duration::from_millis(ms)))
            }
        }
    }
}

impl std::fmt::Display for FsyncPolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FsyncPolicy::Always => write!(f, "always"),
            FsyncPolicy::Never => write!(f, "never"),
            FsyncPolicy::Periodic(d) => write!(f, "periodic:{}", d.as_millis()),
        }
    }
}

#[derive(Clone, Debug)]
pub struct StorageConfig {
    pub data_fsync: FsyncPolicy,
    pub metadata_fsync: FsyncPolicy,
    /// A data batch closes when its records reach this many bytes…
    pub fsync_batch_bytes: u64,
    /// …or this long after its first block arrived (0: take what is queued, no wait).
    pub fsync_batch_delay_us: u64,
    /// A block at reference count 0 for this long is dropped from the index.
    pub block_gc_delay_s: u64,
    /// A segment file is closed and a new one started past this size.
    pub segment_bytes: u64,
    /// Objects under this size are stored inline (informational for the server).
    pub inline_threshold: u64,
    /// LMDB map size (virtual address space reserved; the file grows as needed).
    pub lmdb_map_bytes: u64,
    /// Compact a sealed segment when its live bytes fall under this fraction.
    pub compact_live_ratio: f64,
    /// Scrub re-reads at most this many bytes per second (0: no scrub).
    pub scrub_bytes_per_s: u64,
    /// Background GC and compaction run this often (0: never; call `gc_now`/`compact_now`).
    pub maintenance_interval_s: u64,
    /// Allocate a new segment's blocks up front (`FALLOC_FL_KEEP_SIZE`).
    pub preallocate_segments: bool,
    /// Where segment files live: the real file system (default), or a simulated in-memory
    /// disk that can lose power or fail I/O (a test facility, see [`disk`]).
    pub disk: DiskKind,
    /// The node's clock: stamps of block references, and the times of GC.
    pub clock: crate::clock::Clock,
    /// What the node's stores share (open directories, buffer pool, freeing thread).
    pub resources: std::sync::Arc<resources::Resources>,
}

impl Default for StorageConfig {
    fn default() -> Self {
        Self {
            data_fsync: FsyncPolicy::Always,
            metadata_fsync: FsyncPolicy::Always,
            fsync_batch_bytes: 8 << 20,
            fsync_batch_delay_us: 0,
            block_gc_delay_s: 600,
            segment_bytes: 1 << 30,
            inline_threshold: crate::constants::INLINE_THRESHOLD_BYTES_DEFAULT,
            lmdb_map_bytes: 64 << 30,
            compact_live_ratio: 0.5,
            scrub_bytes_per_s: 4 << 20,
            maintenance_interval_s: 30,
            preallocate_segments: false,
            disk: DiskKind::Real,
            clock: crate::clock::Clock::default(),
            resources: Default::default(),
        }
    }
}

#[derive(Clone, Debug, thiserror::Error, PartialEq, Eq)]
pub enum StorageError {
    #[error("not found")]
    NotFound,
    #[error("corrupt data: {0}")]
    Corrupt(String),
    #[error("disk full: {0}")]
    DiskFull(String),
    #[error("I/O error: {0}")]
    Io(String),
    #[error("block writes are disabled after a failed fdatasync (reopen the store): {0}")]
    Failed(String),
    #[error("metadata store error: {0}")]
    Meta(String),
    #[error("invalid request: {0}")]
    Invalid(String),
    #[error("store is closed")]
    Closed,
    #[error("store at {0} is already open in this process")]
    AlreadyOpen(String),
    #[error("store at {0} is in use by another process: stop it first")]
    InUse(String),
}

impl From<std::io::Error> for StorageError {
    fn from(e: std::io::Error) -> Self {
        match e.raw_os_error() {
            Some(libc::ENOSPC) | Some(libc::EDQUOT) => StorageError::DiskFull(e.to_string()),
            _ => StorageError::Io(e.to_string()),
        }
    }
}

impl From<glommio::GlommioError<()>> for StorageError {
    fn from(e: glommio::GlommioError<()>) -> Self {
        let errno = match &e {
            glommio::GlommioError::IoError(io) => io.raw_os_error(),
            glommio::GlommioError::EnhancedIoError { source, .. } => source.raw_os_error(),
            _ => None,
        };
        match errno {
            Some(libc::ENOSPC) | Some(libc::EDQUOT) => StorageError::DiskFull(e.to_string()),
            _ => StorageError::Io(e.to_string()),
        }
    }
}

impl From<heed::Error> for StorageError {
    fn from(e: heed::Error) -> Self {
        match e {
            heed::Error::Io(io) => io.into(),
            heed::Error::Mdb(heed::MdbError::MapFull) => {
                StorageError::DiskFull("LMDB map full".into())
            }
            other => StorageError::Meta(other.to_string()),
        }
    }
}

/// Counters of one shard's store.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct StorageStats {
    /// Blocks in the index (any reference count).
    pub blocks: u64,
    /// Record bytes of indexed blocks.
    pub live_bytes: u64,
    /// Record bytes in segments that no index entry points at (reclaimed by compaction).
    pub dead_bytes: u64,
    pub segments: u64,
    /// Blocks marked bad (by reads or the scrub).
    pub bad_blocks: u64,
    pub data_syncs: u64,
    pub data_batches: u64,
    pub data_batch_blocks: u64,
    pub data_bytes_written: u64,
    /// Block bytes returned by `read_block` (GETs, part copies; not the scrub's reads).
    pub read_bytes: u64,
    pub meta_commits: u64,
    pub meta_commit_ops: u64,
    pub mean_data_batch: f64,
    pub mean_meta_batch: f64,
    pub gc_dropped: u64,
    pub compacted_segments: u64,
    pub scrubbed_blocks: u64,
    pub recovered_records: u64,
    pub truncated_bytes: u64,
    pub startup_ms: u64,
    /// Time spent encoding records, in O_DIRECT writes (under `always` each with its
    /// flush: the files are O_DSYNC), in separate data fdatasyncs (`periodic`), in LMDB
    /// commits (µs, totals).
    pub encode_us: u64,
    pub write_us: u64,
    pub sync_us: u64,
    pub commit_us: u64,
    /// Size of the LMDB environment on disk.
    pub lmdb_bytes: u64,
    /// Blocks written and acknowledged whose index entries wait for the next commit.
    pub pending_blocks: u64,
    /// Scrub passes over every block completed since start.
    pub scrub_passes: u64,
    /// Blocks checked so far in the current scrub pass.
    pub scrub_pass_checked: u64,
    /// Corrupt blocks the scrub found since start.
    pub scrub_bad_found: u64,
}

/// A multipart upload to complete (`ShardStore::complete_upload`).
pub struct Completing {
    /// The object to write (its bucket and key are the upload's; its version is the
    /// upload's).
    pub object: crate::meta::types::ObjectRow,
    pub upload_id: String,
    /// The parts the object is made of, as the caller read them, in order.
    pub chosen: Vec<crate::meta::types::PartRow>,
    pub condition: Option<crate::meta::types::Condition>,
}

/// What `ShardStore::complete_upload` did.
#[derive(Debug)]
pub enum Completion {
    /// Written; the upload is completed and its parts are gone. The caller releases the
    /// blocks of the parts not chosen and of the versions the write dropped.
    Completed {
        written: ObjectWrite,
        unused: Vec<crate::meta::types::PartRow>,
    },
    /// The upload was completed before (a retried Complete): how.
    AlreadyCompleted(crate::meta::types::CompletedUpload),
    /// No such upload in progress (never started, or aborted).
    NoSuchUpload,
    /// A chosen part was uploaded again since the caller read it.
    PartsChanged,
    /// The write condition did not hold; the visible object.
    Refused(Option<crate::meta::types::ObjectRow>),
}

/// What a write of an object key did.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ObjectWrite {
    /// The object visible before the write.
    pub previous: Option<crate::meta::types::ObjectRow>,
    /// Versions the write dropped (older than the newest; the write itself, if it was older
    /// than the object it met): the caller releases their blocks.
    pub dropped: Vec<crate::meta::types::ObjectRow>,
}

/// A conditional write of an object key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ObjectPut {
    Written(ObjectWrite),
    /// The condition did not hold; the visible object.
    Refused(Option<crate::meta::types::ObjectRow>),
}

/// The partitioned and global tables whose rows merge and replicate.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Table {
    Objects,
    Uploads,
    Parts,
    BlockRefs,
    Buckets,
    Keys,
}

/// One row changed by a metadata commit, as the row-change hook sees it: the table, the
/// row's key, and the blake3 of its encoding before and after (`None`: absent).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RowChange {
    pub table: Table,
    pub key: Vec<u8>,
    pub old: Option<[u8; 32]>,
    pub new: Option<[u8; 32]>,
}

/// Sees every row change a shard's store commits, in commit order, on the shard's thread.
pub trait RowHook {
    fn changed(&mut self, change: &RowChange);
}

/// Outcome of [`ShardStore::put_part`]: refused when the upload is not in progress.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PutIf<T> {
    /// Written; the row it replaced.
    Written(Option<T>),
    /// The condition refused; the current row.
    Refused(Option<T>),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_disk_errors_map_to_disk_full() {
        let e = glommio::GlommioError::<()>::EnhancedIoError {
            source: std::io::Error::from_raw_os_error(libc::ENOSPC),
            op: "Writing",
            path: None,
            fd: None,
        };
        assert!(matches!(StorageError::from(e), StorageError::DiskFull(_)));
        let e = std::io::Error::from_raw_os_error(libc::EIO);
        assert!(matches!(StorageError::from(e), StorageError::Io(_)));
    }

    #[test]
    fn policy_parse() {
        assert_eq!("always".parse(), Ok(FsyncPolicy::Always));
        assert_eq!("never".parse(), Ok(FsyncPolicy::Never));
        assert_eq!(
            "periodic:250".parse(),
            Ok(FsyncPolicy::Periodic(Duration::from_millis(250)))
        );
        assert!("periodic:".parse::<FsyncPolicy>().is_err());
        assert!("periodic:0".parse::<FsyncPolicy>().is_err());
        assert!("sometimes".parse::<FsyncPolicy>().is_err());
        for p in ["always", "never", "periodic:7"] {
            assert_eq!(p.parse::<FsyncPolicy>().unwrap().to_string(), p);
        }
    }
}
