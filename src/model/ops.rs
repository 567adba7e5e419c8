//! What shards ask of each other: every operation on data a shard owns. A request goes to the
//! shard that owns the partition (`Partition::shard`); the handler asserts it landed there.

use super::bucket::{BucketEdit, NameHold};
use crate::meta::types::{
    BlockHash, BucketId, BucketRow, CompletedUpload, KeyRow, ObjectRow, PartRow, Partition,
    UploadRow,
};
use crate::s3::error::S3Error;
use crate::storage::{Completion, PutIf};

/// A condition on the current row, checked atomically with the write on the owning shard
/// (`If-None-Match: *`, `If-Match: <etag>` on PutObject and CompleteMultipartUpload).
#[derive(Debug, Clone)]
pub enum WriteCondition {
    /// Write only if no object exists under the key.
    Absent,
    /// Write only if the current object has this ETag (with quotes).
    EtagMatches(String),
}

/// A block's bytes as a `PutBlock` carries them.
#[derive(Debug)]
pub enum BlockData {
    /// In the record buffer an upload was read into, sealed by the receiving shard: the
    /// owning shard writes it as it is.
    Record(crate::storage::BlockBuf),
    /// Bytes read back from another block (copies): the owning shard copies them into a
    /// record only if it does not hold the block already.
    Bytes(Vec<u8>),
}

#[derive(Debug)]
pub enum ShardRequest {
    PutBlock {
        hash: BlockHash,
        data: BlockData,
    },
    ReadBlock {
        hash: BlockHash,
        offset: u32,
        len: u32,
    },
    DecrefBlock {
        hash: BlockHash,
    },
    /// One more reference to a stored block, without its data: `Flag(false)` if the block
    /// is absent or bad.
    IncrefBlock {
        hash: BlockHash,
    },
    GetObject {
        bucket: BucketId,
        key: String,
    },
    PutObject {
        row: ObjectRow,
        condition: Option<WriteCondition>,
    },
    DeleteObject {
        bucket: BucketId,
        key: String,
    },
    ListObjects {
        bucket: BucketId,
        prefix: String,
        start_after: String,
        limit: usize,
    },
    BucketHasObjects {
        bucket: BucketId,
    },
    PutUpload {
        row: UploadRow,
    },
    GetUpload {
        bucket: BucketId,
        key: String,
        upload_id: String,
    },
    /// Removes the upload and its parts (AbortMultipartUpload); answers with the upload
    /// (`None`: it was not in progress) and the parts removed.
    DeleteUpload {
        bucket: BucketId,
        key: String,
        upload_id: String,
    },
    ListUploads {
        bucket: BucketId,
        prefix: String,
        key_marker: String,
        limit: usize,
    },
    /// Writes a part if its upload is in progress (`Refused` otherwise).
    PutPart {
        bucket: BucketId,
        key: String,
        row: PartRow,
    },
    /// Completes an upload atomically (`ShardStore::complete_upload`).
    CompleteUpload {
        row: ObjectRow,
        upload_id: String,
        chosen: Vec<PartRow>,
        condition: Option<WriteCondition>,
    },
    /// How an upload was completed, if it was recently.
    GetCompletedUpload {
        bucket: BucketId,
        key: String,
        upload_id: String,
    },
    /// Removes every upload of a deleted bucket on this shard; answers with their parts.
    DeleteBucketUploads {
        bucket: BucketId,
    },
    ListParts {
        bucket: BucketId,
        key: String,
        upload_id: String,
        after: u32,
        limit: usize,
    },
    /// Global tables, kept by shard 0 and copied to every shard.
    ChangeBucket {
        name: String,
        edit: BucketEdit,
        hold: NameHold,
    },
    PutKey {
        row: KeyRow,
    },
    GlobalSnapshot,
    GlobalUpdate {
        buckets: Vec<BucketRow>,
        keys: Vec<KeyRow>,
    },
    /// Starts an operator task on the shard; answers once it has started.
    StartTask {
        task: Task,
    },
}

/// Long operator actions a shard runs in the background on request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Task {
    /// Read and verify every block now (the background scrub runs slowly on its own).
    Scrub,
    /// Drop blocks past their GC delay and compact sparse segments now.
    Gc,
}

impl ShardRequest {
    /// The shard that must handle this request.
    pub fn shard(&self, shards: u16) -> u16 {
        let object = |bucket: &BucketId, key: &str| Partition::of_object(bucket, key).shard(shards);
        match self {
            Self::PutBlock { hash, .. } | Self::ReadBlock { hash, .. } => {
                hash.partition().shard(shards)
            }
            Self::DecrefBlock { hash } | Self::IncrefBlock { hash } => {
                hash.partition().shard(shards)
            }
            Self::GetObject { bucket, key } | Self::DeleteObject { bucket, key } => {
                object(bucket, key)
            }
            Self::PutObject { row, .. } => object(&row.bucket, &row.key),
            Self::PutUpload { row } => object(&row.bucket, &row.key),
            Self::GetUpload { bucket, key, .. }
            | Self::DeleteUpload { bucket, key, .. }
            | Self::PutPart { bucket, key, .. }
            | Self::GetCompletedUpload { bucket, key, .. }
            | Self::ListParts { bucket, key, .. } => object(bucket, key),
            Self::CompleteUpload { row, .. } => object(&row.bucket, &row.key),
            // Fan-out requests name their shard explicitly (see `Shard::call_on`).
            Self::ListObjects { .. }
            | Self::BucketHasObjects { .. }
            | Self::DeleteBucketUploads { .. }
            | Self::ListUploads { .. }
            | Self::GlobalUpdate { .. }
            | Self::StartTask { .. } => unreachable!("fan-out requests are sent with call_on"),
            Self::ChangeBucket { .. } | Self::PutKey { .. } | Self::GlobalSnapshot => 0,
        }
    }
}

/// A failure on the owning shard, carried back as values (storage errors are not `Send`).
#[derive(Debug, Clone)]
pub enum ShardError {
    /// The condition of a conditional write did not hold.
    PreconditionFailed,
    /// `If-Match` on a write, and no object exists under the key.
    NoSuchKey,
    /// The block is missing or failed its checksum.
    BlockUnavailable(String),
    /// Any other storage failure: logged on the owning shard, reported as InternalError.
    Storage(String),
    /// The shard is doing this already (an operator task).
    Busy(String),
    /// Refused as S3 would: a bucket change on shard 0 (the name is taken, the bucket is
    /// gone), or a row for a bucket the shard knows as deleted.
    Rejected(S3Error),
}

pub type ShardResult<T> = Result<T, ShardError>;

#[derive(Debug)]
pub enum ShardResponse {
    Done(ShardResult<()>),
    Block(ShardResult<Vec<u8>>),
    Object(ShardResult<Option<ObjectRow>>),
    Objects(ShardResult<Vec<ObjectRow>>),
    Flag(ShardResult<bool>),
    Upload(ShardResult<Option<UploadRow>>),
    Uploads(ShardResult<Vec<UploadRow>>),
    Part(ShardResult<PutIf<PartRow>>),
    Parts(ShardResult<Vec<PartRow>>),
    UploadRemoved(ShardResult<(Option<UploadRow>, Vec<PartRow>)>),
    Completion(ShardResult<Completion>),
    Completed(ShardResult<Option<CompletedUpload>>),
    Global {
        buckets: Vec<BucketRow>,
        keys: Vec<KeyRow>,
    },
    /// The bucket's live row after a change (`None`: deleted).
    Bucket(ShardResult<Option<BucketRow>>),
}

macro_rules! expect_variant {
    ($name:ident, $variant:ident, $ty:ty) => {
        pub fn $name(self) -> $ty {
            match self {
                Self::$variant(v) => v,
                other => panic!(
                    "shard answered {other:?} to a request expecting {}",
                    stringify!($variant)
                ),
            }
        }
    };
}

impl ShardResponse {
    expect_variant!(done, Done, ShardResult<()>);
    expect_variant!(block, Block, ShardResult<Vec<u8>>);
    expect_variant!(object, Object, ShardResult<Option<ObjectRow>>);
    expect_variant!(objects, Objects, ShardResult<Vec<ObjectRow>>);
    expect_variant!(flag, Flag, ShardResult<bool>);
    expect_variant!(upload, Upload, ShardResult<Option<UploadRow>>);
    expect_variant!(uploads, Uploads, ShardResult<Vec<UploadRow>>);
    expect_variant!(part, Part, ShardResult<PutIf<PartRow>>);
    expect_variant!(parts, Parts, ShardResult<Vec<PartRow>>);
    expect_variant!(
        upload_removed,
        UploadRemoved,
        ShardResult<(Option<UploadRow>, Vec<PartRow>)>
    );
    expect_variant!(completion, Completion, ShardResult<Completion>);
    expect_variant!(completed, Completed, ShardResult<Option<CompletedUpload>>);
    expect_variant!(bucket, Bucket, ShardResult<Option<BucketRow>>);
}

impl From<ShardError> for S3Error {
    fn from(e: ShardError) -> Self {
        match e {
            ShardError::PreconditionFailed => S3Error::PreconditionFailed,
            ShardError::NoSuchKey => S3Error::NoSuchKey,
            ShardError::BlockUnavailable(m) => {
                S3Error::InternalError(format!("block unavailable: {m}"))
            }
            ShardError::Storage(m) | ShardError::Busy(m) => S3Error::InternalError(m),
            ShardError::Rejected(e) => e,
        }
    }
}
