//! What shards ask of each other: every operation on data a shard owns, as a typed message
//! that could as well cross a network (serde, postcard on the wire), with a typed answer.
//! A request goes to the shard that owns its partition (`placement`), which runs it
//! (`owner`); an answer that is not the one expected, or none at all (a transport failure),
//! is an error (`DataError::Protocol`, `DataError::Transport`), never a panic.

use serde::{Deserialize, Serialize};

use super::bucket::{BucketEdit, NameHold};
use crate::meta::types::{
    BlockHash, BucketId, BucketRecord, BucketRow, CompletedUpload, Holder, KeyRecord, KeyRow,
    ObjectRow, PartRow, Stamp, UploadRow, VersionId,
};
use crate::s3::error::S3Error;
pub use crate::storage::ObjectWrite;

/// A condition on the visible object, checked atomically with the write on the owning
/// shard (`If-None-Match: *`, `If-Match: <etag>` on PutObject and CompleteMultipartUpload;
/// the lifecycle's "still the version found expired").
pub use crate::meta::types::Condition as WriteCondition;

/// A block's bytes as a `PutBlock` carries them. On the wire both forms are the block's
/// bytes, and what arrives is `Bytes`: a remote node receives this same type.
#[derive(Debug)]
pub enum BlockData {
    /// In the record buffer an upload was read into, sealed by the receiving shard: the
    /// owning shard writes it as it is.
    Record(crate::storage::BlockBuf),
    /// Bytes read back from another block (copies), or received: the owning shard copies
    /// them into a record only if it does not hold the block already.
    Bytes(Vec<u8>),
}

impl BlockData {
    /// The block's bytes.
    pub fn bytes(&self) -> &[u8] {
        match self {
            Self::Record(buf) => buf,
            Self::Bytes(bytes) => bytes,
        }
    }
}

impl Serialize for BlockData {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_bytes(self.bytes())
    }
}

impl<'de> Deserialize<'de> for BlockData {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_byte_buf(BytesVisitor)
    }
}

/// Reads a block's bytes into `BlockData::Bytes`, whichever way a format gives them.
struct BytesVisitor;

impl<'de> serde::de::Visitor<'de> for BytesVisitor {
    type Value = BlockData;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a block's bytes")
    }

    fn visit_bytes<E: serde::de::Error>(self, v: &[u8]) -> Result<BlockData, E> {
        Ok(BlockData::Bytes(v.to_vec()))
    }

    fn visit_byte_buf<E: serde::de::Error>(self, v: Vec<u8>) -> Result<BlockData, E> {
        Ok(BlockData::Bytes(v))
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<BlockData, A::Error> {
        let mut bytes = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(1 << 20));
        while let Some(b) = seq.next_element()? {
            bytes.push(b);
        }
        Ok(BlockData::Bytes(bytes))
    }
}

/// `storage::PutIf` as an answer carries it: written (with the row it replaced), or
/// refused by the condition (with the current row).
#[derive(Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum PutIf<T> {
    Written(Option<T>),
    Refused(Option<T>),
}

impl<T> From<crate::storage::PutIf<T>> for PutIf<T> {
    fn from(p: crate::storage::PutIf<T>) -> Self {
        match p {
            crate::storage::PutIf::Written(t) => Self::Written(t),
            crate::storage::PutIf::Refused(t) => Self::Refused(t),
        }
    }
}

/// `storage::Completion` (what completing a multipart upload did) as an answer carries it.
#[derive(Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Completion {
    /// Written; the upload is completed and its parts are gone. The caller releases the
    /// blocks of the parts not chosen and of the versions the write dropped.
    Completed {
        written: ObjectWrite,
        unused: Vec<PartRow>,
    },
    /// The upload was completed before (a retried Complete): how.
    AlreadyCompleted(CompletedUpload),
    /// No such upload in progress (never started, or aborted).
    NoSuchUpload,
    /// A chosen part was uploaded again since the caller read it.
    PartsChanged,
    /// The write condition did not hold; the current row.
    Refused(Option<ObjectRow>),
}

impl From<crate::storage::Completion> for Completion {
    fn from(c: crate::storage::Completion) -> Self {
        use crate::storage::Completion as C;
        match c {
            C::Completed { written, unused } => Self::Completed { written, unused },
            C::AlreadyCompleted(done) => Self::AlreadyCompleted(done),
            C::NoSuchUpload => Self::NoSuchUpload,
            C::PartsChanged => Self::PartsChanged,
            C::Refused(current) => Self::Refused(current),
        }
    }
}

#[derive(Debug, Serialize, Deserialize)]
pub enum DataRequest {
    /// Stores a block held by `holder` (or adds the holder's reference to it).
    PutBlock {
        hash: BlockHash,
        data: BlockData,
        holder: Holder,
    },
    ReadBlock {
        hash: BlockHash,
        offset: u32,
        len: u32,
    },
    /// Releases a holder's reference (once, however often it is sent).
    ReleaseBlock {
        hash: BlockHash,
        holder: Holder,
    },
    /// A holder's reference on a stored block, without its data: `Flag(false)` if the
    /// block is absent or bad.
    AddBlockRef {
        hash: BlockHash,
        holder: Holder,
    },
    GetObject {
        bucket: BucketId,
        key: String,
    },
    PutObject {
        row: ObjectRow,
        condition: Option<WriteCondition>,
    },
    /// Writes a delete marker (version `version`, at `stamp`) if `condition` holds;
    /// answers with what the write did.
    DeleteObject {
        bucket: BucketId,
        key: String,
        version: VersionId,
        stamp: Stamp,
        condition: Option<WriteCondition>,
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
        stamp: Stamp,
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
        buckets: Vec<BucketRecord>,
        keys: Vec<KeyRecord>,
    },
    /// Starts an operator task on the shard; answers once it has started.
    StartTask {
        task: Task,
    },
}

/// Long operator actions a shard runs in the background on request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Task {
    /// Read and verify every block now (the background scrub runs slowly on its own).
    Scrub,
    /// Drop blocks past their GC delay and compact sparse segments now.
    Gc,
}

/// A failure on the owning shard, carried back as values (storage errors are not `Send`),
/// or on the way there and back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum DataError {
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
    /// The request or its answer was lost on the way (a closed mesh; later, a network).
    Transport(String),
    /// The answer was not one the request can have, or the request reached a shard that
    /// does not own its data.
    Protocol(String),
}

pub type DataResult<T> = Result<T, DataError>;

#[derive(Debug, Serialize, Deserialize)]
pub enum DataResponse {
    Done(DataResult<()>),
    Block(DataResult<Vec<u8>>),
    Object(DataResult<Option<ObjectRow>>),
    /// What a write of an object key did.
    Written(DataResult<ObjectWrite>),
    Objects(DataResult<Vec<ObjectRow>>),
    Flag(DataResult<bool>),
    Upload(DataResult<Option<UploadRow>>),
    Uploads(DataResult<Vec<UploadRow>>),
    Part(DataResult<PutIf<PartRow>>),
    Parts(DataResult<Vec<PartRow>>),
    UploadRemoved(DataResult<(Option<UploadRow>, Vec<PartRow>)>),
    Completion(DataResult<Completion>),
    Completed(DataResult<Option<CompletedUpload>>),
    Global {
        buckets: Vec<BucketRecord>,
        keys: Vec<KeyRecord>,
    },
    /// The bucket's live row after a change (`None`: deleted).
    Bucket(DataResult<Option<BucketRow>>),
    /// No answer came (`Transport`), or not one the request can have (`Protocol`).
    Failed(DataError),
}

/// The answer a request expects, or an error for any other (never a panic: across a
/// network, a peer may answer anything).
macro_rules! expect_variant {
    ($name:ident, $variant:ident, $ty:ty) => {
        pub fn $name(self) -> DataResult<$ty> {
            match self {
                Self::$variant(v) => v,
                Self::Failed(e) => Err(e),
                other => Err(DataError::Protocol(format!(
                    "answered {other:?} to a request expecting {}",
                    stringify!($variant)
                ))),
            }
        }
    };
}

impl DataResponse {
    /// The global tables, as a snapshot answers them.
    pub fn global(self) -> DataResult<(Vec<BucketRecord>, Vec<KeyRecord>)> {
        match self {
            Self::Global { buckets, keys } => Ok((buckets, keys)),
            Self::Failed(e) => Err(e),
            other => Err(DataError::Protocol(format!(
                "answered {other:?} to a request for the global tables"
            ))),
        }
    }

    expect_variant!(done, Done, ());
    expect_variant!(block, Block, Vec<u8>);
    expect_variant!(object, Object, Option<ObjectRow>);
    expect_variant!(written, Written, ObjectWrite);
    expect_variant!(objects, Objects, Vec<ObjectRow>);
    expect_variant!(flag, Flag, bool);
    expect_variant!(upload, Upload, Option<UploadRow>);
    expect_variant!(uploads, Uploads, Vec<UploadRow>);
    expect_variant!(part, Part, PutIf<PartRow>);
    expect_variant!(parts, Parts, Vec<PartRow>);
    expect_variant!(
        upload_removed,
        UploadRemoved,
        (Option<UploadRow>, Vec<PartRow>)
    );
    expect_variant!(completion, Completion, Completion);
    expect_variant!(completed, Completed, Option<CompletedUpload>);
    expect_variant!(bucket, Bucket, Option<BucketRow>);
}

impl From<DataError> for S3Error {
    fn from(e: DataError) -> Self {
        match e {
            DataError::PreconditionFailed => S3Error::PreconditionFailed,
            DataError::NoSuchKey => S3Error::NoSuchKey,
            DataError::BlockUnavailable(m) => {
                S3Error::InternalError(format!("block unavailable: {m}"))
            }
            DataError::Storage(m) | DataError::Busy(m) => S3Error::InternalError(m),
            DataError::Transport(m) => S3Error::InternalError(format!("transport: {m}")),
            DataError::Protocol(m) => S3Error::InternalError(format!("protocol: {m}")),
            DataError::Rejected(e) => e,
        }
    }
}

#[cfg(test)]
mod tests;
